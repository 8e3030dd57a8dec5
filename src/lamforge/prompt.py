"""The one prompt renderer: the only place an observation, the history and the task become model text, and the
readers that take a rendered prompt apart again (the controls it shows, its task line) for offline evaluation and
the server. Also the phase-1 task -> plan prompt and its target.

Training, the agent runtime and every backend render with these functions, so a model sees at run time exactly
the text it was trained on.
"""

from __future__ import annotations

import ast
import json
import re

from lamforge.schema import FUNCTIONS, Control, HistoryItem, Observation, Paragraph

SYSTEM_PROMPT = (
    "You are lamforge, an agent that operates LibreOffice Writer. Each turn you see the task, the controls of the "
    "active window, the document and your previous actions. Reply with one JSON action: "
    '{"function", "control_name", "control_label", "args", "status"} and optionally "thought" first and "plan" last. '
    "Functions that act on a control take its name from the list, and as its label its position in the list (1 for "
    "the first). status is CONTINUE, FINISH after the last "
    "action, or FAIL if the task cannot be done.\nFunctions:\n"
    + "\n".join(f"- {spec.signature()}: {spec.doc}" for spec in FUNCTIONS.values())
)

# What a trained model's card records (train/model_card.py), so that a model trained on other prompts says so when
# it is loaded (agent/hf_backend.py). 1: until 2026-11-30; 2: the paragraphs the task names, above the task line;
# 3: the document collapsed to one line while a menu or dialog is open; 4: the history just above the task line.
PROMPT_VERSION = 4

# Prompt budget: the canvas tells the model what is where, not every word (targets are named in the task), and
# prompt tokens are most of the cost of training and of each step on a CPU.
MAX_CANVAS_PARAGRAPHS = 30
MAX_PARAGRAPH_CHARS = 60
MAX_CELL_CHARS = 16
MAX_HISTORY = 8
MAX_MENTIONED = 2
MENTION_HEAD_CHARS, MENTION_TAIL_CHARS = 60, 90


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
                lines.append(key)  # the row keeps its place; its cells are joined into the line below
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
    """The canvas in the main window; one line while a menu or a dialog is open.

    Why: a menu or dialog step is decided by the task, the window's controls and the history, not by the text
    behind it (the selection and the paragraphs the task names still render, below), and the canvas was ~360 of
    the ~1,000-1,260 tokens of such a prompt: half of all step samples are in a menu or dialog.
    """
    if obs.window != "main":
        body = sum(1 for p in obs.canvas if not p.table)
        return f"Document: {body} paragraphs, behind the {obs.window}"
    return "\n".join(["Document:", *render_canvas(obs.canvas)])


def render_volatile(obs: Observation) -> str:
    """What changes at almost every step: the controls' states and values, and the selection."""
    return "\n".join([*render_states(obs.controls), f"Selection: {_clip(obs.selection, 120)!r}"])


def render_observation(obs: Observation) -> str:
    return "\n".join([render_controls(obs), render_document(obs), render_volatile(obs)])


# A quoted span: an opening quote at the start or after a space or bracket, a closing one before the end, a space or
# punctuation, so that the apostrophe in "don't" opens nothing.
_QUOTED = re.compile(r"""(?:^|(?<=[\s(\[]))(?:'([^']+?)'|"([^"]+?)"|“([^”]+?)”|‘([^’]+?)’)(?=$|[\s.,;:!?)\]…])""")
# Not the start of a value that follows a paragraph named otherwise: "the 'X…' paragraph 0.8 cm in", "the last
# paragraph 1.5 Lines line spacing" name no paragraph 0 or 1.
_NUMBERED = re.compile(r"\bparagraphs?\s+(?:number\s+|no\.\s*|#)?(\d+)(?!\.?\d)", re.IGNORECASE)


def _quote_text(match: re.Match) -> str:
    return next(g for g in match.groups() if g is not None)


def quoted_spans(task: str) -> list[str]:
    """The task's quoted spans as written, in order: ['We are', 'Dark Red 2'] for "give 'We are' the colour
    "Dark Red 2"". Curly and straight quotes count; the apostrophe in "don't" does not."""
    return [_quote_text(m) for m in _QUOTED.finditer(task)]


# Words that make a request about several paragraphs: "paragraphs", "lines" (not a spacing value such as "1.15
# Lines"), a numbered range ("8-12", "3 to 4"; not "paragraph 1 to 1.15 Lines"). A false "several" only leaves the
# end to the model.
_SEVERAL = re.compile(r"\bparagraphs\b|(?<!\d\.\d\d )(?<!\d\.\d )\blines\b|\d+\s*(?:-|–|to)\s*\d+(?![.\d])",
                      re.IGNORECASE)


def names_several_paragraphs(task: str) -> bool:
    """Whether the request may be about more than one paragraph ("alphabetize paragraphs 3 to 8", "the 6 lines
    beginning with 'Item…'"); "the 'PhD in…' paragraph to 1.15 Lines" is about one."""
    return bool(_SEVERAL.search(task))


# A paragraph named by its role or place, the way people ask: "the title", "the subtitle", "the heading", "the
# second heading", "the first paragraph", "the last paragraph". Not "the Title style" or "the title page", and not a
# bare "the paragraph" (which a quote or a number names).
_ORDINALS = {"first": 1, "opening": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10, "last": -1, "final": -1, "1st": 1, "2nd": 2, "3rd": 3}
_ROLE = re.compile(r"\bthe\s+(?:(" + "|".join(_ORDINALS) + r")\s+)?(?:document(?:'s)?\s+|main\s+)?"
                   r"(paragraph|heading|title|subtitle)\b(?!(?:\s*\d)?\s+(?:paragraph\s+)?(?:style|page)s?\b)",
                   re.IGNORECASE)


def _is_heading(p: Paragraph) -> bool:
    return p.style in ("Title", "Subtitle") or p.style.startswith("Heading")


def paragraph_by_role(match: re.Match, body: list[Paragraph]) -> Paragraph | None:
    """The paragraph a _ROLE match names in the document's body paragraphs, or None. Ordinals count the non-empty
    paragraphs of their kind: headings among the "Heading n" ones, paragraphs among those that are neither a
    heading nor a title; "the title" is the Title paragraph, or a first paragraph that is a heading."""
    ordinal, noun = (match.group(1) or "").lower(), match.group(2).lower()
    written = [p for p in body if p.text.strip()]
    if noun == "paragraph":
        if not ordinal:
            return None
        candidates = [p for p in written if not _is_heading(p)]
    elif noun == "heading":
        candidates = [p for p in written if p.style.startswith("Heading")]
    else:
        style = noun.capitalize()
        candidates = [p for p in written if p.style == style]
        if not candidates and noun == "title" and written and _is_heading(written[0]):
            candidates = written[:1]
    position = _ORDINALS.get(ordinal, 1)
    if not candidates or position > len(candidates):
        return None
    return candidates[position - 1] if position > 0 else candidates[position]


def _unquoted(task: str) -> str:
    """The task with its quotes blanked out (same length): a quote's words name text, not a role."""
    return _QUOTED.sub(lambda m: " " * len(m.group(0)), task)


def role_named_paragraphs(task: str, canvas: list[Paragraph]) -> list[Paragraph]:
    """The body paragraphs the task names by role or place only ("the title", "the last paragraph"), in its order."""
    body = [p for p in canvas if not p.table]
    picked: dict[int, Paragraph] = {}
    for m in _ROLE.finditer(_unquoted(task)):
        hit = paragraph_by_role(m, body)
        if hit is not None:
            picked.setdefault(hit.index, hit)
    return list(picked.values())


def mentioned_paragraphs(task: str, canvas: list[Paragraph]) -> list[Paragraph]:
    """The body paragraphs the task names: by a quoted span of their text ("the paragraph starting 'Many place
    names…'", "bold 'which I have'"), by number ("paragraph 4") or by role or place ("the title", "the last
    paragraph"), in the order the task names them.

    Why: the canvas clips every paragraph to its first 60 characters, so a task about "the paragraph that begins X"
    made a 135M model look the index up among 30 lines (it copied familiar numbers instead), and a task that acts
    at a paragraph's end asked for text the prompt did not show at all. Roles, because people name paragraphs that
    way and no training request does: asked to "make the title bold", the LAM bolded a span of another paragraph."""
    body = [p for p in canvas if not p.table]
    picked: list[Paragraph] = []
    matches = [*_QUOTED.finditer(task), *_NUMBERED.finditer(task), *_ROLE.finditer(_unquoted(task))]
    for m in sorted(matches, key=lambda m: m.start()):
        if m.re is _NUMBERED:
            index = int(m.group(1))
            hits = [p for p in body if p.index == index]
        elif m.re is _ROLE:
            hit = paragraph_by_role(m, body)
            hits = [hit] if hit else []
        else:
            quote = _quote_text(m).strip().rstrip("…").removesuffix("...").strip()
            key = quote.casefold()
            hits = [p for p in body if key and key in p.text.casefold()][:1] if len(key) >= 3 else []
        for p in hits:
            if p not in picked:
                picked.append(p)
    return picked[:MAX_MENTIONED]


# Words a request uses to say where to act, or to ask politely, rather than which control to use: "the paragraph
# starting ...", "the text ...", "help me ..." would otherwise point at Format > Paragraph..., Format > Text or Help.
_LOCATOR_WORDS = frozenset({"paragraph", "paragraphs", "text", "document", "word", "words", "help"})
_WORD = re.compile(r"[a-z]+")


def _named(word: str, keys: set[str]) -> bool:
    """A control name's word named by the request: the word itself or an inflection ("underlined", "bookmarks",
    "centered"). Prefixes do not count: "formatting" must not name the Form menu."""
    if len(word) < 4:
        return False
    forms = {word, word + "s", word + "es", word + "d", word + "ed", word + "ing"}
    if word.endswith("e"):
        forms.add(word[:-1] + "ing")
    return not forms.isdisjoint(keys)


NAME_PRIOR_HELP = ("A local model's prior for the controls the request names word for word (\"Strikethrough\" for "
                   "\"strike through 'X'\"): added to their logits when it chooses a control; 0: none "
                   "(README, \"What each lever did\").")


def named_controls(task: str, names: list[str]) -> list[bool]:
    """Which of these control names the task names, word for word: "Strikethrough" for "strike through 'X'",
    "Footer" for "put 'Y' in the footer". Quoted spans are left out (they are the text to act on, not a control),
    and so are the words that locate a target (_LOCATOR_WORDS). Two adjacent words of the task also count written
    together, as a control name often joins them."""
    words = _WORD.findall(_QUOTED.sub(" ", task).lower())
    keys = {w for w in words if w not in _LOCATOR_WORDS} | {a + b for a, b in zip(words, words[1:])}
    return [any(_named(w, keys) for w in _WORD.findall(name.lower())) for name in names]


def render_mentioned(task: str, obs: Observation) -> str:
    """The named paragraphs nearly whole (head and tail of a long one), just above the task line, where the
    model reads."""
    lines = []
    for p in mentioned_paragraphs(task, obs.canvas):
        text = p.text.replace("\n", " ")
        if len(text) > MENTION_HEAD_CHARS + MENTION_TAIL_CHARS + 3:
            text = f"{text[:MENTION_HEAD_CHARS].rstrip()} … {text[-MENTION_TAIL_CHARS:].lstrip()}"
        lines.append(f"Named ¶{p.index}: {text}")
    return "\n".join(lines)


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
    the step number, the controls' states and the selection. The task comes last although it does not change
    within an episode: a 135M model trained for minutes followed what was near the answer (it copied the
    selection) and not the task a thousand tokens up; re-reading ~20 task tokens per step costs little. For the
    same reason the paragraphs the task names are repeated, nearly whole, below the selection
    (render_mentioned), and the history comes just above the task: the last `prompt_tail` prompt tokens train
    with gradients, and a dialog step is decided by what was done already (OK comes after the value is set).
    """
    parts = [render_controls(obs), render_document(obs), f"Step: {step}", render_volatile(obs)]
    mentioned = render_mentioned(task, obs)
    if mentioned:
        parts.append(mentioned)
    parts.append(render_history(history or []))
    if plan:
        parts.append("Previous plan:\n" + "\n".join(f"- {s}" for s in plan))
    parts += [f"Task: {task}", "Next action JSON:"]
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
