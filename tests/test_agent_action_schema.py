"""The action's JSON schema for an observation (what a served model is constrained to) accepts exactly the actions
that parse and name a live control, checked with the reference JSON-schema validator."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from lamforge.agent.action_schema import action_json_schema, valid_action, with_label_of_name
from lamforge.schema import FIELD_ORDER, FUNCTIONS, Action, Control, Observation, Status


def make_obs() -> Observation:
    names = [("Bold", "push button"), ("Italic", "push button"), ("Font Size", "combo box"),
             ("Save As…", "menu item")]
    controls = [Control(label=str(i), name=n, type=t, states=["enabled"]) for i, (n, t) in enumerate(names, start=1)]
    # A repeated name: the enabled one is the control the name stands for (as in the local guided decoder).
    controls += [Control(label="5", name="Bold", type="push button", states=[])]
    return Observation(controls=controls)


OBS = make_obs()

VALID = [
    Action(control_label="2", control_name="Italic", function="click_input"),
    Action(control_label="1", control_name="Bold", function="click_input", args={"double": True}, status="FINISH"),
    Action(control_label="3", control_name="Font Size", function="set_edit_text", args={"text": '14 "pt" é'}),
    Action(function="keyboard_input", args={"keys": "Hello{Enter}"}),
    Action(function="wheel_mouse_input", args={"wheel_dist": -50}),
    Action(function="select_paragraph", args={"start_index": 0, "end_index": 1}, status="FAIL"),
    Action(function="insert_table", args={"rows": 2, "columns": 3}),
    Action(function="save_as", args={"path": "out.odt"}),
    Action(function="summary", args={"text": "done"}, status="FINISH"),
]

INVALID = {
    "control not in the window": {"function": "click_input", "control_name": "Underline", "control_label": "1",
                                  "args": {}, "status": "CONTINUE"},
    "label not in the window": {"function": "click_input", "control_name": "Bold", "control_label": "9",
                                "args": {}, "status": "CONTINUE"},
    "unknown function": {"function": "drag", "args": {}, "status": "CONTINUE"},
    "control function without a control": {"function": "click_input", "args": {}, "status": "CONTINUE"},
    "control on a function that takes none": {"function": "keyboard_input", "control_name": "Bold",
                                              "control_label": "1", "args": {"keys": "a"}, "status": "CONTINUE"},
    "argument out of range": {"function": "wheel_mouse_input", "args": {"wheel_dist": 99}, "status": "CONTINUE"},
    "missing argument": {"function": "insert_table", "args": {"rows": 2}, "status": "CONTINUE"},
    "unknown argument": {"function": "summary", "args": {"text": "x", "loud": True}, "status": "FINISH"},
    "unknown status": {"function": "summary", "args": {}, "status": "DONE"},
    "thought not enabled": {"thought": "hm", "function": "summary", "args": {}, "status": "FINISH"},
}


def validator(obs: Observation = OBS, **options) -> Draft202012Validator:
    schema = action_json_schema(obs, **options)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("action", VALID, ids=lambda a: a.function)
def test_every_function_written_as_trained_is_accepted(action):
    assert validator().is_valid(json.loads(action.to_json()))


@pytest.mark.parametrize("case", list(INVALID))
def test_what_parse_action_or_the_window_would_reject_is_refused(case):
    assert not validator().is_valid(INVALID[case])


def test_no_controls_leaves_only_functions_that_need_none():
    schema = action_json_schema(Observation())
    functions = [branch["properties"]["function"]["const"] for branch in schema["anyOf"]]
    assert functions == [f for f, spec in FUNCTIONS.items() if not spec.needs_control]


def test_properties_come_in_the_trained_order_with_optional_thought_and_plan():
    check = validator(thought=True, plan=True)
    action = Action(thought="t", control_label="1", control_name="Bold", function="click_input", plan=["a", "b"])
    assert check.is_valid(json.loads(action.to_json()))
    click = action_json_schema(OBS, thought=True, plan=True)["anyOf"][0]
    assert list(click["properties"]) == list(FIELD_ORDER)
    assert click["required"] == ["function", "control_name", "control_label", "args", "status"]
    assert click["properties"]["status"]["enum"] == [s.value for s in Status]


def test_label_is_copied_from_the_chosen_name():
    # The schema cannot tie the label to the name; after parsing, the name decides (the enabled "Bold" is label 1).
    text = '{"function": "click_input", "control_name": "Bold", "control_label": "3", "args": {}, "status": "CONTINUE"}'
    assert with_label_of_name(text, OBS) == Action(control_label="1", control_name="Bold",
                                                   function="click_input").to_json()
    for untouched in ["not json", '{"function": "click_input", "control_name": "Nope", "args": {}}']:
        assert with_label_of_name(untouched, OBS) == untouched


def test_valid_action_means_parsed_and_naming_a_live_control():
    assert valid_action(VALID[0].to_json(), OBS)
    assert valid_action(VALID[3].to_json(), OBS)
    assert not valid_action('{"function": "click_input", "control_name": "Underline", "args": {}}', OBS)
    assert not valid_action("I would click Bold.", OBS)


def test_a_control_that_is_disabled_everywhere_is_not_offered():
    # The office refuses to click or type into it, so neither the schema nor valid_action allows it; its label is
    # still copied, so the loop can report the office's own message.
    obs = make_obs()
    obs.controls.append(Control(label="6", name="Paste", type="push button", states=["visible"]))
    paste = Action(control_label="6", control_name="Paste", function="click_input").to_json()
    assert not validator(obs).is_valid(json.loads(paste))
    assert not valid_action(paste, obs)
    assert "Paste" not in action_json_schema(obs)["anyOf"][0]["properties"]["control_name"]["enum"]
    assert with_label_of_name(paste.replace('"6"', '"1"'), obs) == paste


# -- the decoding rules narrow the schema (agent/decoding_rules.py) -------------------------------------------------

def rules_schema(obs: Observation, task: str, history: list, rules=None, **kwargs) -> dict:
    from lamforge.agent.decoding_rules import DecodingRules, step_limits

    limits = step_limits(obs, task, history, rules or DecodingRules())
    return action_json_schema(obs, names=limits.names, args=limits.args_schemas(), **kwargs)


def accepts(schema: dict, action: Action | dict) -> bool:
    return Draft202012Validator(schema).is_valid(json.loads(action.to_json()) if isinstance(action, Action)
                                                 else action)


def document(*texts: str) -> Observation:
    from lamforge.schema import Paragraph

    return Observation(controls=make_obs().controls, canvas=[Paragraph(index=i, text=t) for i, t in enumerate(texts)])


def test_a_quoted_request_limits_select_text_to_its_quotes_found_in_the_document():
    obs = document("The quick brown fox.", "Jumps over the dog.")
    schema = rules_schema(obs, "Make 'brown fox' and 'lazy cat' bold", [])
    assert accepts(schema, Action(function="select_text", args={"text": "brown fox"}))
    assert not accepts(schema, Action(function="select_text", args={"text": "brown"}))  # cut short
    assert not accepts(schema, Action(function="select_text", args={"text": "lazy cat"}))  # not in the document
    # No quote in the request: any span (the local decoder's token-by-token grounding has no schema form).
    assert accepts(rules_schema(obs, "Make the first word bold", []),
                   Action(function="select_text", args={"text": "brown"}))


def test_select_paragraph_takes_the_documents_paragraphs_one_unless_the_request_names_several():
    from lamforge.agent.decoding_rules import DecodingRules

    obs = document("A", "B", "C")
    one = rules_schema(obs, "Centre paragraph 1", [])
    several = rules_schema(obs, "Centre paragraphs 1 to 2", [])
    pick = lambda s, e: {"function": "select_paragraph", "args": {"start_index": s, "end_index": e},  # noqa: E731
                         "status": "CONTINUE"}
    assert accepts(one, pick(1, 1)) and not accepts(one, pick(1, 2)) and not accepts(one, pick(3, 3))
    assert accepts(several, pick(1, 2)) and not accepts(several, pick(2, 1))  # the end not before the start
    assert accepts(rules_schema(obs, "Centre paragraph 1", [], DecodingRules.none()), pick(7, 2))  # rules off


def history_of(*actions: Action) -> list:
    from lamforge.schema import HistoryItem

    return [HistoryItem(action=a, result="clicked") for a in actions]


def test_history_rules_take_the_untouched_ok_and_the_last_toggle_out_of_a_dialog():
    from lamforge.agent.decoding_rules import DecodingRules

    controls = [Control(label="1", name="Underline", type="check box", states=["enabled"]),
                Control(label="2", name="Shadow", type="check box", states=["enabled"]),
                Control(label="3", name="OK", type="push button", states=["enabled"])]
    dialog = Observation(window="dialog", window_name="Character", controls=controls)
    click = lambda name: Action(function="click_input", control_name=name, control_label="9")  # noqa: E731
    opened = history_of(click("Character..."))
    assert not accepts(rules_schema(dialog, "underline it", opened), click("OK").model_copy(update={"control_label": "3"}))
    toggled = history_of(click("Character..."), click("Underline"))
    schema = rules_schema(dialog, "underline it", toggled)
    assert accepts(schema, Action(function="click_input", control_name="OK", control_label="3"))
    assert not accepts(schema, Action(function="click_input", control_name="Underline", control_label="1"))
    # Rules off, or the history unknown (a client that does not send it): both are offered again.
    for off in (rules_schema(dialog, "underline it", toggled, DecodingRules.none()),
                rules_schema(dialog, "underline it", None)):
        assert accepts(off, Action(function="click_input", control_name="Underline", control_label="1"))


def test_a_served_lam_clicks_only_the_numbered_items_the_request_names():
    from lamforge.agent.decoding_rules import DecodingRules

    sizes = [Control(label=str(i), name=n, type="list item", states=["enabled"])
             for i, n in enumerate(["16 pt", "26 pt", "Bold"], 1)]
    dialog = Observation(window="dialog", window_name="Character", controls=sizes)
    click = lambda name, label: Action(function="click_input", control_name=name, control_label=label)  # noqa: E731
    schema = rules_schema(dialog, "Set “it” to 26-point type", [])
    assert accepts(schema, click("26 pt", "2")) and accepts(schema, click("Bold", "3"))
    assert not accepts(schema, click("16 pt", "1"))
    assert accepts(rules_schema(dialog, "Set “it” to 26-point type", [], DecodingRules.none()), click("16 pt", "1"))
    assert accepts(rules_schema(dialog, "Make “it” bigger", []), click("16 pt", "1"))  # no number: the model's
