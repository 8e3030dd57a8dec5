"""The one action and observation schema: the functions and their validated arguments, `Action` and its parser,
`Observation`, and the history the model is shown.

Data collection, training, the agent runtime and evaluation all import these types, so what a model is trained on
is exactly what it sees and emits at run time. The prompt text is rendered from them in prompt.py; the function
list the model reads there is generated from the same definitions that validate and execute actions (BrowserGym's
rule: one source, no drift). The dataset records built from them are in records.py.
"""

from __future__ import annotations

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
        # Surrounding spaces are a decoding slip, never a wish: after `"path": "` the model can emit " name.docx"
        # (a space-led token), which saved " sister_letter.docx" beside the file the user asked for.
        value = value.strip()
        if any(ord(c) < 32 or c == "\x7f" for c in value):  # NUL made the path functions raise; no file has one
            raise ValueError("path holds a control character")
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


# The X keysym names of ASCII punctuation: `xdotool key` takes keysym names only. Given the character itself it
# exited with an error on '-', '.', '[', '|' (the episode ended as an environment error) and dropped '*', '/', ','.
PUNCTUATION_KEYSYMS = {
    "!": "exclam", '"': "quotedbl", "#": "numbersign", "$": "dollar", "%": "percent", "&": "ampersand",
    "'": "apostrophe", "(": "parenleft", ")": "parenright", "*": "asterisk", "+": "plus", ",": "comma", "-": "minus",
    ".": "period", "/": "slash", ":": "colon", ";": "semicolon", "<": "less", "=": "equal", ">": "greater",
    "?": "question", "@": "at", "[": "bracketleft", "\\": "backslash", "]": "bracketright", "^": "asciicircum",
    "_": "underscore", "`": "grave", "{": "braceleft", "|": "bar", "}": "braceright", "~": "asciitilde",
}


def xdotool_key(names: list[str]) -> str:
    """check_key_combo's names as one `xdotool key` argument: ASCII punctuation by its keysym name, another
    character that is not an ASCII letter or digit by its Unicode keysym ('é' -> 'U00E9')."""
    def keysym(name: str) -> str:
        if len(name) != 1 or (name.isascii() and name.isalnum()):
            return name
        return PUNCTUATION_KEYSYMS.get(name) or f"U{ord(name):04X}"
    return "+".join(keysym(name) for name in names)


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


def json_value_end(text: str, opening: str = "{") -> int:
    """Index just past the first JSON object ('{'), array ('[') or string ('"') in text, chosen by its opening
    character, or -1 when it does not close. Brackets inside strings and escaped quotes do not count. The one
    scanner: the action parser, the guided decoder's stops and the LLM roles' answers all use it."""
    closing = {"{": "}", "[": "]", '"': '"'}[opening]
    start = text.find(opening)
    if start < 0:
        return -1
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
                if opening == '"':
                    return i + 1
        elif ch == '"':
            in_string = True
        elif ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def extract_json_object(text: str) -> str:
    """The first balanced {...} in text; models often wrap JSON in prose or code fences."""
    start = text.find("{")
    if start < 0:
        raise ActionParseError("no JSON object found in the output")
    end = json_value_end(text, "{")
    if end < 0:
        raise ActionParseError("the JSON object is not closed")
    return text[start:end]


def parse_action(data: str | dict | Action) -> Action:
    """Parse model output (text or dict) into an Action, or raise ActionParseError with a readable reason."""
    if isinstance(data, Action):
        return data
    if isinstance(data, str):
        try:
            data = json.loads(extract_json_object(data))
        except json.JSONDecodeError as exc:
            raise ActionParseError(f"invalid JSON: {exc.msg} at char {exc.pos}") from exc
        except (ValueError, RecursionError) as exc:  # an integer past 4300 digits; arrays nested ~1000 deep
            raise ActionParseError(f"invalid JSON: {str(exc)[:200] or type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise ActionParseError("the action must be a JSON object")
    try:
        return Action.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'action'}: {e['msg']}" for e in exc.errors())
        raise ActionParseError(problems) from exc


# ---------------------------------------------------------------------------------------------------------------
# Observations.


def control_name_key(name: str) -> str:
    """What two control names must share to be the same name: case, "…" for "...", the "~" of a mnemonic and runs
    of spaces do not count. Grounding and the metrics compare names through it."""
    return " ".join(name.lower().replace("…", "...").replace("~", "").split())


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
