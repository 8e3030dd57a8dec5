"""The one action and observation schema, and the one prompt renderer.

Data collection, training, the agent runtime and evaluation all import these types and functions, so what a
model is trained on is exactly what it sees and emits at run time. The function list the model reads in its
system prompt is generated from the same definitions that validate and execute actions (BrowserGym's rule:
one source, no drift).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class Status(str, Enum):
    CONTINUE = "CONTINUE"
    FINISH = "FINISH"
    FAIL = "FAIL"


# ---------------------------------------------------------------------------------------------------------------
# Function arguments: one strict model per function.


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClickArgs(_Args):
    button: Literal["left", "right", "middle"] = "left"
    double: bool = False


class SetEditTextArgs(_Args):
    text: str = Field(max_length=2000)
    clear_current_text: bool = True


class KeyboardArgs(_Args):
    keys: str = Field(min_length=1, max_length=500)

    @field_validator("keys")
    @classmethod
    def _known_keys(cls, value: str) -> str:
        for token in parse_keys(value):
            if token[0] == "key":
                check_key_combo(token[1])
        return value


class WheelArgs(_Args):
    wheel_dist: int = Field(ge=-50, le=50)


class SelectTextArgs(_Args):
    text: str = Field(min_length=1, max_length=500)
    occurrence: int = Field(default=1, ge=1, le=100)


class SelectParagraphArgs(_Args):
    start_index: int = Field(ge=0)
    end_index: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "SelectParagraphArgs":
        if self.end_index < self.start_index:
            raise ValueError("end_index must be >= start_index")
        return self


class InsertTableArgs(_Args):
    rows: int = Field(ge=1, le=100)
    columns: int = Field(ge=1, le=60)


SAVE_FORMATS = (".docx", ".odt", ".pdf")


class SaveAsArgs(_Args):
    path: str = Field(min_length=1, max_length=500)

    @field_validator("path")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if PurePath(value).suffix.lower() not in SAVE_FORMATS:
            raise ValueError(f"path must end in one of {', '.join(SAVE_FORMATS)}")
        return value


class SummaryArgs(_Args):
    text: str = Field(default="", max_length=2000)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    args: type[_Args]
    needs_control: bool
    doc: str

    def signature(self) -> str:
        params = []
        for field_name, info in self.args.model_fields.items():
            params.append(field_name if info.is_required() else f"{field_name}={info.default!r}")
        return f"{self.name}({', '.join(params)})"


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in [
        FunctionSpec("click_input", ClickArgs, True, "click a control: button, menu, menu item, tab, list item, check box"),
        FunctionSpec("set_edit_text", SetEditTextArgs, True, "set the text or number of an edit, spin or combo box"),
        FunctionSpec("keyboard_input", KeyboardArgs, False, "type text into the focused control; {Enter}, {Ctrl+B} for keys"),
        FunctionSpec("wheel_mouse_input", WheelArgs, False, "scroll the document; positive scrolls up"),
        FunctionSpec("select_text", SelectTextArgs, False, "select the n-th occurrence of text in the document"),
        FunctionSpec("select_paragraph", SelectParagraphArgs, False, "select paragraphs start_index..end_index"),
        FunctionSpec("insert_table", InsertTableArgs, False, "insert a table at the cursor"),
        FunctionSpec("save_as", SaveAsArgs, False, "save the document; the extension picks .docx, .odt or .pdf"),
        FunctionSpec("summary", SummaryArgs, False, "do nothing in the app; report text (use with FINISH or FAIL)"),
    ]
}


# ---------------------------------------------------------------------------------------------------------------
# Keys for keyboard_input: literal text, with {Key} or {Mod+Key} tokens for special keys and shortcuts.

SPECIAL_KEYS = {
    "enter": "Return", "return": "Return", "tab": "Tab", "esc": "Escape", "escape": "Escape",
    "backspace": "BackSpace", "delete": "Delete", "del": "Delete", "space": "space", "home": "Home", "end": "End",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right", "pageup": "Prior", "pagedown": "Next",
    "insert": "Insert", **{f"f{i}": f"F{i}" for i in range(1, 13)},
}
MODIFIERS = {"ctrl": "ctrl", "control": "ctrl", "shift": "shift", "alt": "alt"}
_KEY_TOKEN = re.compile(r"\{([^{}]+)\}")


def parse_keys(keys: str) -> list[tuple[str, str]]:
    """Split a keys string into ('text', literal) and ('key', combo) tokens."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    for match in _KEY_TOKEN.finditer(keys):
        if match.start() > pos:
            tokens.append(("text", keys[pos : match.start()]))
        tokens.append(("key", match.group(1)))
        pos = match.end()
    if pos < len(keys):
        tokens.append(("text", keys[pos:]))
    return tokens


def check_key_combo(combo: str) -> list[str]:
    """Return the xdotool key names of a combo like 'Ctrl+Shift+B'; raise ValueError on unknown keys."""
    parts = [p.strip() for p in combo.split("+") if p.strip()]
    if not parts:
        raise ValueError(f"empty key token {{{combo}}}")
    names = []
    for part in parts[:-1]:
        if part.lower() not in MODIFIERS:
            raise ValueError(f"unknown modifier {part!r} in {{{combo}}}")
        names.append(MODIFIERS[part.lower()])
    last = parts[-1]
    if last.lower() in SPECIAL_KEYS:
        names.append(SPECIAL_KEYS[last.lower()])
    elif len(last) == 1 and last.isprintable():
        names.append(last.lower() if len(parts) > 1 else last)
    else:
        raise ValueError(f"unknown key {last!r} in {{{combo}}}")
    return names


# ---------------------------------------------------------------------------------------------------------------
# The action.


FIELD_ORDER = ("thought", "function", "control_name", "control_label", "args", "status", "plan")


class Action(BaseModel):
    """One step of a LAM, in UFO's field names. `args` is validated against the function's argument model.

    The model writes the fields in decision order (see `to_json`): what to do, then which control by name, and
    only then the control's label, which is a lookup once the name is chosen."""

    model_config = ConfigDict(extra="forbid")

    thought: str | None = None
    control_label: str | None = None
    control_name: str | None = None
    function: str
    args: dict[str, Any] = Field(default_factory=dict)
    status: Status = Status.CONTINUE
    plan: list[str] | None = None

    @field_validator("function")
    @classmethod
    def _known_function(cls, value: str) -> str:
        if value not in FUNCTIONS:
            raise ValueError(f"unknown function {value!r}; expected one of {', '.join(FUNCTIONS)}")
        return value

    @model_validator(mode="after")
    def _valid_args(self) -> "Action":
        spec = FUNCTIONS[self.function]
        self.args = spec.args.model_validate(self.args).model_dump()
        if spec.needs_control and not self.control_label and not self.control_name:
            raise ValueError(f"{self.function} needs a control_label or control_name")
        return self

    def typed_args(self) -> _Args:
        return FUNCTIONS[self.function].args.model_validate(self.args)

    def to_json(self) -> str:
        """The training target and the wire format: fixed key order, no None fields, compact.

        UFO writes the label first. A small model cannot recall an arbitrary number ("57") from the task, but it
        can name the control the task talks about ("Italic"); with the name first the label is a copy (guided
        decoding copies it), and with the function first the model decides whether a control is needed at all.
        """
        data = self.model_dump(mode="json", exclude_none=True)
        data["args"] = self.typed_args().model_dump(mode="json", exclude_defaults=True)
        ordered = {k: data[k] for k in FIELD_ORDER if k in data}
        return json.dumps(ordered, ensure_ascii=False, separators=(", ", ": "))


class ActionParseError(ValueError):
    """Model output that is not a valid action; the message says why, for a repair prompt."""


def extract_json_object(text: str) -> str:
    """The first balanced {...} in text; models often wrap JSON in prose or code fences."""
    start = text.find("{")
    if start < 0:
        raise ActionParseError("no JSON object found in the output")
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    raise ActionParseError("the JSON object is not closed")


def parse_action(data: str | dict | Action) -> Action:
    """Parse model output (text or dict) into an Action, or raise ActionParseError with a readable reason."""
    if isinstance(data, Action):
        return data
    if isinstance(data, str):
        try:
            data = json.loads(extract_json_object(data))
        except json.JSONDecodeError as exc:
            raise ActionParseError(f"invalid JSON: {exc.msg} at char {exc.pos}") from exc
    if not isinstance(data, dict):
        raise ActionParseError("the action must be a JSON object")
    try:
        return Action.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'action'}: {e['msg']}" for e in exc.errors())
        raise ActionParseError(problems) from exc


# ---------------------------------------------------------------------------------------------------------------
# Observations.


class Control(BaseModel):
    label: str
    name: str
    type: str
    states: list[str] = Field(default_factory=list)
    value: str | None = None
    rect: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, width, height on screen
    mnemonic: str | None = None
    """The letter that activates the control from the keyboard: with Alt in a dialog or on the menu bar, alone in
    an open menu (a text field has its label's). Not shown to the model; the safety guard reads it."""

    @property
    def enabled(self) -> bool:
        return "enabled" in self.states


class Paragraph(BaseModel):
    index: int
    text: str
    style: str = ""
    align: str = "left"
    bold: bool | None = False  # None: mixed within the paragraph
    italic: bool | None = False
    underline: bool | None = False
    list_label: str = ""
    table: str = ""  # "T1 r2c3" when the paragraph is a table cell


class Observation(BaseModel):
    """What the model sees: the active window's controls and the document canvas."""

    title: str = ""
    window: Literal["main", "dialog", "menu"] = "main"
    window_name: str = ""
    controls: list[Control] = Field(default_factory=list)
    canvas: list[Paragraph] = Field(default_factory=list)
    selection: str = ""

    def control(self, label: str) -> Control | None:
        return next((c for c in self.controls if c.label == label), None)


class HistoryItem(BaseModel):
    """A past step as the model sees it: the action and what came of it."""

    action: Action
    result: str = ""


# ---------------------------------------------------------------------------------------------------------------
# Prompt rendering: the only place observation + history become model text.

SYSTEM_PROMPT = (
    "You are lamforge, an agent that operates LibreOffice Writer. Each turn you see the task, the controls of the "
    "active window, the document and your previous actions. Reply with one JSON action: "
    '{"function", "control_name", "control_label", "args", "status"} and optionally "thought" first and "plan" last. '
    "Functions that act on a control take its name from the list, and as its label its position in the list (1 for "
    "the first). status is CONTINUE, FINISH after the last "
    "action, or FAIL if the task cannot be done.\nFunctions:\n"
    + "\n".join(f"- {spec.signature()}: {spec.doc}" for spec in FUNCTIONS.values())
)

# Prompt budget: the canvas tells the model what is where, not every word (targets are named in the task), and
# prompt tokens are most of the cost of training and of each step on a CPU.
MAX_CANVAS_PARAGRAPHS = 30
MAX_PARAGRAPH_CHARS = 60
MAX_CELL_CHARS = 16
MAX_HISTORY = 8


def _clip(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SHOWN_STATES = ("checked", "pressed", "selected", "focused")
_STATE_LINES = {"checked": "Checked", "pressed": "Pressed", "selected": "Selected", "focused": "Focused", "disabled": "Disabled"}


def render_name(name: str) -> str:
    """A control name as it appears in a list: bare, or JSON-quoted where bare would not read back (a table cell
    named "|", a name with outer spaces)."""
    if not name or "|" in name or "\n" in name or name[0] == '"' or name != name.strip():
        return json.dumps(name, ensure_ascii=False)
    return name


def render_names(names: list[str]) -> str:
    return " | ".join(render_name(n) for n in names)


def parse_names(text: str) -> list[str]:
    """The inverse of render_names."""
    names, rest = [], text
    while rest:
        if rest[0] == '"':
            name, end = json.JSONDecoder().raw_decode(rest)
            names.append(name)
            rest = rest[end:].removeprefix(" | ")
        else:
            name, _, rest = rest.partition(" | ")
            names.append(name)
    return names


def render_control_groups(controls: list[Control]) -> list[str]:
    """Controls as one line per run of the same role: "menu: File | Edit | View".

    Names only, no labels: names are unique within a window (the office side numbers repeats, "Increase #2") and a
    label is the control's position in the list, so neither adds information, and "[65] toggle button \"Left\""
    costs three times the tokens of "Left" in a group. The main window's ~80 controls were ~870 tokens, over half
    of a step prompt; grouped names are ~380. Prompt tokens are nearly all of training's and each step's cost on a
    CPU.
    """
    lines: list[str] = []
    run: list[Control] = []
    for control in [*controls, None]:
        if run and (control is None or control.type != run[0].type):
            lines.append(f"{run[0].type}: {render_names([c.name for c in run])}")
            run = []
        if control is not None:
            run.append(control)
    return lines


def _flags(control: Control) -> list[str]:
    return [s for s in _SHOWN_STATES if s in control.states] + ([] if control.enabled else ["disabled"])


def render_states(controls: list[Control]) -> list[str]:
    """What changes from step to step (checked, disabled, a combo box's text), after the stable list.

    Kept apart from the control lines so that the list itself is the same token sequence at every step in a
    window: selecting text enables Cut and Copy, and with the flags inline that alone would end the prefix that
    the agent's KV cache and training's shared-prefix pass reuse a few lines into the list.
    """
    lines = []
    flags = {c.label: _flags(c) for c in controls}
    for state, title in _STATE_LINES.items():
        names = [c.name for c in controls if state in flags[c.label]]
        if names:
            lines.append(f"{title}: {render_names(names)}")
    values = [c for c in controls if c.value not in (None, "", c.name)]
    if values:
        lines.append("Values:")
        lines += [f"{render_name(c.name)} = {_clip(c.value, 40)!r}" for c in values]
    return lines


_GROUP_LINE = re.compile(r"^(?P<type>[a-z0-9][a-z0-9 ]*): (?P<names>.*)$")
_STATE_LINE = re.compile(r"^(?P<title>" + "|".join(_STATE_LINES.values()) + r"): (?P<names>.*)$")
_VALUE_LINE = re.compile(r"^(?P<name>\"(?:[^\"\\]|\\.)*\"|.+?) = (?P<value>'.*'|\".*\")$")


def parse_controls(prompt: str) -> list[Control]:
    """The controls a rendered prompt shows, read back with their states and values (offline evaluation decodes
    against the same controls the model saw, without the live app). Labels are positions in the list, as the
    office side numbers them."""
    controls: dict[str, Control] = {}
    flags: dict[str, set[str]] = {}
    states = {title: state for state, title in _STATE_LINES.items()}
    in_list = False
    for line in prompt.splitlines():
        if line == "Controls:":
            in_list = True
        elif line.startswith("Window: "):
            in_list = False
        elif in_list and (m := _GROUP_LINE.match(line)):
            for name in parse_names(m.group("names")):
                controls[name] = Control(label=str(len(controls) + 1), name=name, type=m.group("type"))
        elif m := _STATE_LINE.match(line):
            for name in parse_names(m.group("names")):
                flags.setdefault(name, set()).add(states[m.group("title")])
        elif m := _VALUE_LINE.match(line):
            name = m.group("name")
            name = json.loads(name) if name.startswith('"') else name
            if name in controls:
                controls[name].value = ast.literal_eval(m.group("value"))
    for name, control in controls.items():
        shown = flags.get(name, set())
        control.states = [s for s in _SHOWN_STATES if s in shown] + ([] if "disabled" in shown else ["enabled"])
    return list(controls.values())


def render_paragraph(p: Paragraph) -> str:
    marks = [p.style or "Default"]
    if p.align != "left":
        marks.append(p.align)
    for flag in ("bold", "italic", "underline"):
        value = getattr(p, flag)
        if value is None:
            marks.append(f"part {flag}")
        elif value:
            marks.append(flag)
    prefix = f"{p.list_label} " if p.list_label else ""
    where = f"{p.table} " if p.table else ""
    return f"¶{p.index} {where}<{', '.join(marks)}> {prefix}{_clip(p.text, MAX_PARAGRAPH_CHARS)}"


def render_canvas(canvas: list[Paragraph]) -> list[str]:
    """Body paragraphs one per line; a table as one line per row ("T1 row 2: a | b | c")."""
    lines: list[str] = []
    rows: dict[tuple[str, int], list[str]] = {}
    shown = 0
    for p in canvas:
        if p.table:
            table, cell = p.table.split(" ", 1)
            row = int("".join(ch for ch in cell if ch.isdigit()) or 0)
            key = (table, row)
            if key not in rows:
                rows[key] = []
                lines.append(key)  # placeholder, filled below
            rows[key].append(_clip(p.text, MAX_CELL_CHARS))
            continue
        if shown < MAX_CANVAS_PARAGRAPHS:
            lines.append(render_paragraph(p))
        shown += 1
    out = [f"{key[0]} row {key[1]}: " + " | ".join(rows[key]) if isinstance(key, tuple) else key for key in lines]
    if shown > MAX_CANVAS_PARAGRAPHS:
        out.append(f"… {shown - MAX_CANVAS_PARAGRAPHS} more paragraphs")
    return out


def render_controls(obs: Observation) -> str:
    # The window line goes after the list: the main window's title names the document, and putting it first
    # would end the shared prefix of consecutive prompts right there.
    lines = ["Controls:", *render_control_groups(obs.controls)]
    lines.append(f"Window: {obs.window} \"{obs.window_name or obs.title}\"")
    return "\n".join(lines)


def render_document(obs: Observation) -> str:
    return "\n".join(["Document:", *render_canvas(obs.canvas)])


def render_volatile(obs: Observation) -> str:
    """What changes at almost every step: the controls' states and values, and the selection."""
    return "\n".join([*render_states(obs.controls), f"Selection: {_clip(obs.selection, 120)!r}"])


def render_observation(obs: Observation) -> str:
    return "\n".join([render_controls(obs), render_document(obs), render_volatile(obs)])


def render_history(history: list[HistoryItem]) -> str:
    if not history:
        return "Previous actions: none"
    shown = history[-MAX_HISTORY:]
    first = len(history) - len(shown) + 1
    lines = ["Previous actions:"]
    for i, item in enumerate(shown, start=first):
        a = item.action
        target = f" on \"{a.control_name}\"" if a.control_name else ""
        lines.append(f"{i}. {a.function}({json.dumps(a.args, ensure_ascii=False)}){target} -> {_clip(item.result, 100)}")
    return "\n".join(lines)


def render_prompt(
    task: str,
    step: int,
    obs: Observation,
    history: list[HistoryItem] | None = None,
    plan: list[str] | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one decision. Training, the agent and every backend call this one function.

    Ordered from what changes least to what changes most, because consecutive prompts that share a token prefix
    share its computation (training's shared-prefix pass, the runtime's KV cache): the window's control list (the
    main window's is the same in every task), the document (the same for the steps of a task until an edit lands),
    the history, the step number, the controls' states and the selection. The task comes last although it does
    not change within an episode: a 135M model trained for minutes followed what was near the answer (it copied
    the selection) and not the task a thousand tokens up; re-reading ~20 task tokens per step costs little.
    """
    parts = [render_controls(obs), render_document(obs), render_history(history or [])]
    if plan:
        parts.append("Previous plan:\n" + "\n".join(f"- {s}" for s in plan))
    parts += [f"Step: {step}", render_volatile(obs), f"Task: {task}", "Next action JSON:"]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(parts)}]


def prompt_task(messages: list[dict[str, str]]) -> str:
    """The task line of a rendered prompt (offline evaluation and the server read it back)."""
    for line in messages[-1]["content"].splitlines():
        if line.startswith("Task: "):
            return line.removeprefix("Task: ")
    return ""


PLAN_SYSTEM_PROMPT = (
    "You are lamforge, an expert in LibreOffice Writer. Given a task, write the plan a user follows in the "
    "application, one step per line."
)


def render_plan_prompt(task: str) -> list[dict[str, str]]:
    """Phase-1 (task-plan) prompt; the target is render_plan_target(plan)."""
    return [{"role": "system", "content": PLAN_SYSTEM_PROMPT}, {"role": "user", "content": f"Task: {task}\nPlan:"}]


def render_plan_target(plan: list[str]) -> str:
    return "\n".join(f"{i}. {step}" for i, step in enumerate(plan, start=1))


def parse_plan(text: str) -> list[str]:
    steps = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(\d+[.)]|[-*•])\s*", "", line).strip()
        if line:
            steps.append(line)
    return steps


# ---------------------------------------------------------------------------------------------------------------
# Dataset records shared by data, train and eval.


class PlanPair(BaseModel):
    """A task-plan pair (phase-1 data). `origin` says how it was made: 'help', 'evolved:compose', 'evolved:llm', ..."""

    task_id: str
    task: str
    plan: list[str]
    source_page: str = ""
    origin: str = "help"


class StepState(BaseModel):
    """Everything one decision is made from: the task, the step number, the observation the model was shown, its
    memory of past steps and the plan it wrote last. `messages()` renders it with the one prompt renderer.

    Data keeps this structure, not rendered text, so a change to the prompt needs no new data: training, offline
    evaluation and the runtime all render at the time they run, with the renderer of the code they run.
    """

    task: str
    step: int
    observation: Observation
    history: list[HistoryItem] = Field(default_factory=list)
    plan: list[str] | None = None

    def messages(self) -> list[dict[str, str]]:
        return render_prompt(self.task, self.step, self.observation, self.history, self.plan)


LEGACY_SAMPLE = (
    "this step sample was recorded by an older lamforge, which stored only the rendered prompt text, not the "
    "observation it was rendered from; the prompt cannot be re-rendered from it. Collect the data again with "
    "`lamforge data collect` (or rerun the pipeline's collection stages into a new folder)"
)


class StepSample(BaseModel):
    """One state -> action sample (phases 2-4, reward model, offline eval).

    `state` is what the model decided from (rendered by StepState.messages at training and evaluation time);
    `target` is Action.to_json() of the step taken. `success` is the outcome of the whole trajectory, which the
    reward model labels +1/-1. `acceptable` lists control names equivalent to the target's control, for Object Acc.
    """

    sample_id: str
    trajectory_id: str
    task_id: str
    family: str = ""
    category: str = ""
    state: StepState
    target: str
    success: bool = True
    acceptable: list[str] = Field(default_factory=list)
    source: str = ""  # demonstrator or model that produced the step

    @model_validator(mode="before")
    @classmethod
    def _not_legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "messages" in data and "state" not in data:
            raise ValueError(LEGACY_SAMPLE)
        return data

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def task(self) -> str:
        return self.state.task

    def messages(self) -> list[dict[str, str]]:
        return self.state.messages()
