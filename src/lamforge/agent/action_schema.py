"""The action's JSON schema for one observation: the decoding constraint an inference server enforces.

The local backend guides decoding token by token; a served model (vLLM, llama.cpp) gets the same limits as a JSON
schema that the server compiles into a grammar: the function is one of `schema.FUNCTIONS`, each with its own
argument model's schema, the control name one of the live observation's names, the status one of `Status`. It is
generated from `schema.py`'s definitions, so it cannot drift from what `parse_action` accepts.

A JSON schema cannot tie one field to another (the label to the chosen name), so the label is limited to the live
labels and then copied from the chosen control after parsing, as the local guided decoder copies it.
"""

from __future__ import annotations

from typing import Callable

from lamforge.schema import FIELD_ORDER, FUNCTIONS, ActionParseError, Control, Observation, Status, parse_action

OPTIONAL_FIELDS = ("thought", "plan")


def without_length_caps(schema):
    """`schema` without maxLength. llama.cpp's converters turn a length cap into one nested grammar rule per
    character (2,000 for a summary's text), which llama-cpp-python's grammar parser refuses and then crashes on;
    the request's max_tokens bounds the reply instead, and parse_action still checks every length."""
    if isinstance(schema, dict):
        return {k: without_length_caps(v) for k, v in schema.items() if k != "maxLength"}
    if isinstance(schema, list):
        return [without_length_caps(v) for v in schema]
    return schema


def grammar_safe(value: str) -> bool:
    """Whether a string can be an enum value of the schema. llama.cpp's grammar converter (llama-cpp-python
    0.3.36's) writes a value with a double quote as a grammar its own parser refuses, and its server then dies
    (measured: the Special Character dialog's `"` cell, 2026-12-05); a backslash comes out as an unterminated JSON
    string. Such values are left out of the enums a server gets: the local guided decoder still offers them."""
    return '"' not in value and "\\" not in value


def controls_by_name(obs: Observation) -> dict[str, Control]:
    """The control each name stands for: the first with that name, or the first enabled one if that is disabled."""
    by_name: dict[str, Control] = {}
    for c in obs.controls:
        if c.name and (c.name not in by_name or (c.enabled and not by_name[c.name].enabled)):
            by_name[c.name] = c
    return by_name


def actionable_controls(obs: Observation) -> dict[str, Control]:
    """The controls an action may name, by name: the enabled ones. The office refuses to click or type into a
    disabled control, so offering one offers an error: in the Zen 4 `make demo`'s LAM4 runs (2026-12-04) the one
    target of 5,936 recorded (demonstrations and online steps) on a control with no enabled instance was LAM4
    clicking the greyed-out "Hiragana" for "block capitals", which ended that task."""
    return {name: c for name, c in controls_by_name(obs).items() if c.enabled}


def action_json_schema(obs: Observation, thought: bool = False, plan: bool = False,
                       names: Callable[[str], list[str]] | None = None, args: dict[str, dict] | None = None,
                       functions: tuple[str, ...] | None = None) -> dict:
    """One branch per function, its properties in `Action.to_json`'s order (the order the model was trained on;
    llama.cpp and xgrammar generate properties in schema order). thought/plan: allow the optional fields.

    The decoding rules (agent/decoding_rules.py, StepLimits) narrow it: `names(function)` the control names a
    function may act on (default: every actionable control), `args` a function's argument schema, `functions`
    the functions to choose among (default: all)."""
    by_name = actionable_controls(obs)
    branches = []
    for function, spec in FUNCTIONS.items():
        if spec.needs_control and not by_name:
            continue  # no control to act on: only the functions that need none
        if functions is not None and function not in functions:
            continue
        choices = [n for n in (names(function) if names is not None and spec.needs_control else by_name)
                   if grammar_safe(n)]
        if spec.needs_control and not choices:
            continue
        fields = {
            "thought": {"type": "string"},
            "function": {"const": function},
            "control_name": {"enum": choices},
            "control_label": {"enum": list(dict.fromkeys(by_name[n].label for n in choices))},
            "args": without_length_caps((args or {}).get(function) or spec.args.model_json_schema()),
            "status": {"enum": [s.value for s in Status]},
            "plan": {"type": "array", "items": {"type": "string"}},
        }
        allowed = {"thought": thought, "plan": plan, "control_name": spec.needs_control,
                   "control_label": spec.needs_control}
        keys = [k for k in FIELD_ORDER if allowed.get(k, True)]
        branches.append({
            "type": "object",
            "properties": {k: fields[k] for k in keys},
            "required": [k for k in keys if k not in OPTIONAL_FIELDS],
            "additionalProperties": False,
        })
    return {"title": "lamforge action", "anyOf": branches}


def with_label_of_name(text: str, obs: Observation) -> str:
    """The action in `text` with its label copied from the control its name chose, as `Action.to_json`; text that
    is not a valid action, or names no live control, comes back unchanged for the agent loop to report."""
    try:
        action = parse_action(text)
    except ActionParseError:
        return text
    control = controls_by_name(obs).get(action.control_name or "")
    if control is None:
        return text
    action.control_label = control.label
    return action.to_json()


def valid_action(text: str, obs: Observation) -> bool:
    """What guided decoding guarantees: `text` parses as an action, and one that acts on a control names an enabled
    control of `obs` exactly."""
    try:
        action = parse_action(text)
    except ActionParseError:
        return False
    return not FUNCTIONS[action.function].needs_control or action.control_name in actionable_controls(obs)
