"""The decoding rules: what a policy may choose at one step, beyond the action's schema, and the one place that
computes it for both ways a LAM is decoded.

Each rule comes from an invariant of the training data that a trained LAM broke on held-out tasks (the README's
"What each lever did" has each A/B). `step_limits` reads the step (the observation, the request, the history) once
and says what is allowed; the local guided decoder (hf_backend.py) chooses among exactly that, and a served LAM
(vLLM, llama.cpp, through backends.OpenAIBackend) gets the same limits in its request's JSON schema
(`StepLimits.names` and `StepLimits.args_schemas` feed action_schema.action_json_schema). Two rules are not
expressible in a JSON schema and are applied to the served reply instead: a second click on the main window's toggle
ends the episode (`StepLimits.repeated_toggle`), and a reply that would act on the selection (Format, the toolbar)
before selecting is asked again among the selections (`acts_before_selecting`). Two rules stay local: `grounded_text` keeps a span to text the
document has, token by token, which no JSON schema can say (only the quotes' enum can), and `request_numbers`' text
for a spin box, which depends on the control chosen before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lamforge.agent.action_schema import actionable_controls, grammar_safe
from lamforge.agent.grounded_text import document_paragraphs, document_spans, occurs
from lamforge.prompt import mentioned_paragraphs, names_several_paragraphs, quoted_spans, role_named_paragraphs
from lamforge.schema import Action, ActionParseError, Control, HistoryItem, Observation, Status, parse_action

TOGGLES = ("toggle button", "check box")
"""Control types whose click flips a state, so that a second click undoes the first (DecodingRules.untoggle)."""
DIALOG_OPENERS = ("...", "…")
"""How LibreOffice ends the name of a menu item or button that opens a dialog ("Character...")."""
SELECTIONS = ("select_text", "select_paragraph")
"""The functions that select in the document."""
MENUS = ("menu", "menu item")
"""Control types that open or choose in a menu rather than act on the selection."""
SPIN_BOX = "spin box"
"""The control type of a dialog's numeric fields (a size, a margin, a count of rows)."""
NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")
"""A number as requests write it ("26", "2.55"; "5x2" is two)."""
NUMBERED_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*(?:pt|cm|mm|in|%|\")?")
"""A control named by a number alone, with or without a unit: the list items "26 pt", "100%"."""
NUMERIC_VALUE = re.compile(r"-?\d+(?:[.,]\d+)?\s*(\S*)")
"""A spin box's value: a number and its unit ("2.50 cm", "1")."""


@dataclass
class DecodingRules:
    """Which rules hold. All are on by default; each can be turned off for an A/B."""

    untoggle: Literal["avoid", "model"] = "avoid"
    """When the model would click the toggle button or check box the previous step clicked (which undoes that
    click: Bold on, Bold off). 'avoid': in the main window, where the first click took effect at once, the episode
    ends there (FINISH); in a dialog, where nothing takes effect before OK, that control is taken out of the choice
    and the model clicks its next likeliest. 'model' lets the model click it. No demonstration clicks one control
    twice in a row; the quick preset's LAM4 did so on 3 of 4 unseen strikethrough tasks, and on the Insert (page
    break) check box. A/B against 'model' (README, "What each lever did"): validation 30 -> 31 of 44, unseen
    families 4 -> 7 of 20, test and lo_templates the same counts."""
    untouched_ok: Literal["avoid", "model"] = "avoid"
    """In a dialog where nothing has been done since it opened (page-tab clicks aside; see untouched_dialog):
    'avoid' takes its OK button out of the choice, so that the model's next likeliest control is clicked; 'model'
    lets the model press OK. Every OK of the oracle's demonstrations follows an action in its dialog (272 of 272 in
    the quick preset's data); the LAM opened the Character dialog and pressed OK without setting the font or size
    it was asked for. A/B against 'model' (README, "What each lever did"): unseen phrasings 10 -> 11 of 12, the
    other splits the same counts (5 more trajectories changed, all failing before and after)."""
    select_first: bool = True
    """When the task names a paragraph or quotes the document's text, nothing has been selected yet and the model
    would open the Format menu or click a control that is no menu (the toolbar's Center or Bold), it selects
    instead (select_text or select_paragraph, the model's choice and arguments): these act on the selection. No
    demonstration does either first when the task names a paragraph (0 of 570 such steps in the Zen 3 run's data:
    552 select, 14 open Edit for Find & Replace, 2 type keys, 2 open Tools or Insert). A/B (README, "What each lever
    did"): Format alone, lo_templates 23 -> 25 of 34, the other splits the same counts; the toolbar too: see
    docs/results.md, "A/B: a selection before the toolbar"."""
    grounded_paragraphs: bool = True
    """select_paragraph's indices are paragraphs the document has (agent/grounded_text.py), the end not before the
    start. Off, the model writes them freely (an end before the start is then an invalid action: the Zen 2 LAM4
    wrote 5..1 once). A/B (README, "What each lever did"): the same counts on every split; a select_paragraph step
    takes ~1 s less locally (fewer model calls)."""
    one_paragraph: bool = True
    """With grounded_paragraphs: select_paragraph selects one paragraph (the end is the start) unless the request
    may name several ("paragraphs", "lines", "3 to 8": prompt.names_several_paragraphs). In the training data every
    select_paragraph of a request without those words selects one paragraph (227 of 227); the LAM selected 5..15
    for "the 'PhD in Egg Engineering…' paragraph". A/B (README, "What each lever did"): lo_templates 25 -> 27 of
    34, the other splits the same counts."""
    grounded_text: bool = True
    """select_text's text may only be text the document contains (agent/grounded_text.py). Off, the model writes it
    freely, as every other argument. Local decoding only: a JSON schema cannot say "a substring of the document"."""
    quoted_text: bool = True
    """With grounded_text: when the request quotes text the document has, select_text's text is one of those
    quotes, whole and as the request writes it (the model chooses which). Every select_text of the training data
    with a quote in its request selects exactly a quote (318 of 318 in the quick preset's data), but the LAM cut
    "voluptate velit" to "voluptate" and wrote 'Duis aute irure' as "DUIS". Off, the span is written token by token
    within the document only. A/B: README, "What each lever did". A request with no quote that names its
    paragraphs by role only ("italicise the title", "justify the last paragraph": prompt.role_named_paragraphs) has
    their texts as its quotes, and select_paragraph starts at one of them (with grounded_paragraphs): 21 -> 35 of
    48 such requests (docs/results.md, "A/B: paragraphs named by role or place")."""

    request_numbers: bool = True
    """A number the action writes or clicks is one the request has (its quotes aside): set_edit_text into a spin
    box writes one of them, in the unit the box shows ("2.55 cm"; "6" in a box without one), and among the
    controls named by a number alone (the Character dialog's "26 pt"), only those the request names can be
    clicked when any of them is there. In the quick preset's data every such action does so (160 of 160 spin box
    entries, 16 of 16 numbered list items); the LAM wrote "4.5 cm" for a 4 cm margin and clicked "16 pt" for
    26-point type. A served LAM gets the clicks' limit (names); the spin box's text is a local rule, since a JSON
    schema's text cannot depend on the control chosen before it."""

    @classmethod
    def none(cls) -> "DecodingRules":
        """Every rule off: the model's own choices within the action's schema."""
        return cls(untoggle="model", untouched_ok="model", select_first=False, grounded_paragraphs=False,
                   one_paragraph=False, grounded_text=False, quoted_text=False, request_numbers=False)


def request_numbers(task: str) -> tuple[str, ...]:
    """The numbers a request writes outside its quotes ("Put a 4-row, 3-column table after 'In 2024 we…'" -> 4,
    3), in order, once each."""
    for quote in quoted_spans(task):
        task = task.replace(quote, " ")
    return tuple(dict.fromkeys(NUMBER.findall(task)))


def same_number(a: str, b: str) -> bool:
    return float(a) == float(b)


def untouched_dialog(obs: Observation, history: list[HistoryItem]) -> bool:
    """Whether the window is a dialog in which nothing has been done: since the click that opened it, only its page
    tabs were clicked. A dialog opened another way (a shortcut) is not known to be untouched."""
    if obs.window == "main":
        return False
    tabs = {c.name for c in obs.controls if c.type == "page tab"}
    for item in reversed(history):
        name, clicked = item.action.control_name or "", item.action.function == "click_input"
        if clicked and name.endswith(DIALOG_OPENERS):
            return True
        if not (clicked and name in tabs):
            return False
    return False


def acts_before_selecting(text: str, obs: Observation, task: str, history: list[HistoryItem] | None) -> bool:
    """Whether `text` acts on the selection in the main window (the Format menu, or a control that is no menu: the
    toolbar's Center, Bold, Character Highlighting Color) while the task names a paragraph (by number, a quote of
    its text or its role: prompt.mentioned_paragraphs) and no step has selected anything yet
    (DecodingRules.select_first). The other menus may come first (Edit > Find & Replace). False when the history is
    not known (None): a selection may have been made."""
    if history is None or obs.window != "main" or any(
            item.action.function in (*SELECTIONS, "keyboard_input") for item in history):
        return False  # not the main window, or selected (perhaps by keys): parse nothing
    try:
        action = parse_action(text)
    except ActionParseError:
        return False
    if action.function != "click_input":
        return False
    control = next((c for c in obs.controls if c.name == action.control_name), None)
    acts = action.control_name == "Format" or (control is not None and control.type not in MENUS)
    return acts and bool(mentioned_paragraphs(task, obs.canvas))


@dataclass
class StepLimits:
    """What the rules allow at one step (step_limits)."""

    controls: dict[str, Control]
    """The controls an action may name, by name (action_schema.actionable_controls), before the rules."""
    main_window: bool
    last_toggle: str | None = None
    """The live toggle the previous step clicked, when untoggle is 'avoid'."""
    no_ok: bool = False
    """An untouched dialog: its OK push button is no option (untouched_ok)."""
    spans: list[str] | None = None
    """The texts select_text's span must lie within (grounded_text), or None: unconstrained."""
    quotes: tuple[str, ...] = ()
    """select_text's text is one of these, when any (quoted_text)."""
    paragraphs: list[int] | None = None
    """The indices select_paragraph chooses among (grounded_paragraphs), or None: written freely."""
    one_paragraph: bool = False
    """select_paragraph's end is its start (one_paragraph, and the request does not name several)."""
    numbers: tuple[str, ...] = ()
    """The request's numbers, when request_numbers holds and it has any."""

    def names(self, function: str) -> list[str]:
        """The control names `function` may act on, in the window's order. A rule never leaves no name."""
        names = list(self.controls)
        if function == "click_input" and self.last_toggle and not self.main_window and len(names) > 1:
            names = [n for n in names if n != self.last_toggle]
        if self.no_ok and len(names) > 1 and "OK" in names and self.controls["OK"].type == "push button":
            names = [n for n in names if n != "OK"]
        if function == "click_input" and self.numbers:
            numbered = {n: m.group(1) for n in names if (m := NUMBERED_NAME.fullmatch(n))}
            named = {n for n, value in numbered.items() if any(same_number(value, x) for x in self.numbers)}
            if named:
                names = [n for n in names if n not in numbered or n in named]
        return names

    def edit_texts(self, name: str) -> list[str]:
        """The texts set_edit_text may write into the control `name`: for a spin box showing a number, the
        request's numbers in its unit; [] where the text is free."""
        control = self.controls.get(name)
        if not self.numbers or control is None or control.type != SPIN_BOX:
            return []
        value = NUMERIC_VALUE.fullmatch((control.value or "").strip())
        if value is None:
            return []
        unit = value.group(1)
        return [f"{number} {unit}" if unit else number for number in self.numbers]

    def repeated_toggle(self, function: str, name: str | None) -> Action | None:
        """The action that ends the episode instead, when `function` on `name` would click the main window's toggle
        a second time (untoggle 'avoid'); None otherwise."""
        if self.main_window and function == "click_input" and name is not None and name == self.last_toggle:
            return Action(function="summary", args={"text": f"clicked {name}; a second click would undo it"},
                          status=Status.FINISH)
        return None

    def ends(self, start: int) -> list[int]:
        """The end indices select_paragraph may take after `start`."""
        return [i for i in self.paragraphs or [] if i == start or (i > start and not self.one_paragraph)]

    def args_schemas(self) -> dict[str, dict]:
        """The argument schemas these limits narrow, by function, for a server's grammar: select_text's text one
        of the quotes, select_paragraph's start one of the paragraphs and its end one of `ends(start)`."""
        narrowed: dict[str, dict] = {}
        quotes = [q for q in self.quotes if grammar_safe(q)]
        if quotes and len(quotes) == len(self.quotes):
            narrowed["select_text"] = {"type": "object", "properties": {"text": {"enum": quotes}},
                                       "required": ["text"], "additionalProperties": False}
        if self.paragraphs:
            # A JSON schema cannot tie the end to the start: one branch per start.
            narrowed["select_paragraph"] = {"anyOf": [
                {"type": "object", "properties": {"start_index": {"const": start},
                                                  "end_index": {"enum": self.ends(start)}},
                 "required": ["start_index", "end_index"], "additionalProperties": False}
                for start in self.paragraphs]}
        return narrowed


def step_limits(obs: Observation, task: str, history: list[HistoryItem] | None, rules: DecodingRules) -> StepLimits:
    """What `rules` allow at this step. history None: not known (a server's client that does not send it), so the
    rules that read it (untoggle, untouched_ok) do not apply."""
    controls = actionable_controls(obs)
    last = history[-1].action if history else None
    last_click = last.control_name if last is not None and last.function == "click_input" else None
    toggle = (last_click if rules.untoggle == "avoid" and last_click in controls
              and controls[last_click].type in TOGGLES else None)
    spans = document_spans(obs) if rules.grounded_text else None
    task_quotes = quoted_spans(task)
    quotes = tuple(dict.fromkeys(q for q in task_quotes if occurs(q, spans))) if spans and rules.quoted_text else ()
    paragraphs = document_paragraphs(obs) if rules.grounded_paragraphs else None
    # A request that names its paragraphs by role or place only ("underline the first heading", "center the last
    # paragraph") selects those: left free, the LAM copied a word of the request ("first") that the document also
    # had into select_text, and selected the paragraph after the title for "the title". (Quotes and numbers keep
    # the rules above: their requests are the training data's, and these were measured on them.)
    by_role = role_named_paragraphs(task, obs.canvas) if not task_quotes else []
    if by_role and {p.index for p in mentioned_paragraphs(task, obs.canvas)} <= {p.index for p in by_role}:
        if spans and rules.quoted_text:
            quotes = tuple(dict.fromkeys(p.text for p in by_role if occurs(p.text, spans)))
        if paragraphs:
            paragraphs = sorted({p.index for p in by_role} & set(paragraphs)) or paragraphs
    return StepLimits(
        controls=controls, main_window=obs.window == "main", last_toggle=toggle,
        no_ok=rules.untouched_ok == "avoid" and history is not None and untouched_dialog(obs, history),
        spans=spans, quotes=quotes, paragraphs=paragraphs,
        one_paragraph=rules.one_paragraph and not names_several_paragraphs(task),
        numbers=request_numbers(task) if rules.request_numbers else ())
