"""The one schema: validation, parsing of model output, and prompt rendering."""

import json
import os

import pytest

from lamforge.prompt import (mentioned_paragraphs, named_controls, names_several_paragraphs, parse_controls,
                             parse_plan, quoted_spans, render_plan_target, render_prompt)
from lamforge.schema import (
    FUNCTIONS,
    Action,
    ActionParseError,
    Control,
    HistoryItem,
    Observation,
    Paragraph,
    Status,
    check_key_combo,
    parse_action,
)


def test_action_round_trip_and_defaults_dropped_from_target():
    a = Action(control_label="3", control_name="Bold", function="click_input", args={})
    assert a.args == {"button": "left", "double": False}
    target = a.to_json()
    assert json.loads(target) == {"control_label": "3", "control_name": "Bold", "function": "click_input",
                                  "args": {}, "status": "CONTINUE"}
    assert parse_action(target) == a
    # Decision order: what to do, which control by name, then its label.
    assert list(json.loads(target)) == ["function", "control_name", "control_label", "args", "status"]


@pytest.mark.parametrize("bad, why", [
    ({"function": "nope"}, "unknown function"),
    ({"function": "click_input", "args": {}}, "needs a control"),
    ({"function": "insert_table", "args": {"rows": 0, "columns": 2}}, "rows"),
    ({"function": "select_paragraph", "args": {"start_index": 3, "end_index": 1}}, "end_index"),
    ({"function": "save_as", "args": {"path": "x.exe"}}, "must end in"),
    ({"function": "keyboard_input", "args": {"keys": "{Meta+X}"}}, "unknown modifier"),
    ({"function": "summary", "args": {"text": "x", "extra": 1}}, "extra"),
    ({"function": "summary", "status": "MAYBE"}, "status"),
])
def test_invalid_actions_raise_readable_errors(bad, why):
    with pytest.raises(ActionParseError, match=why):
        parse_action(bad)


def test_save_as_path_loses_surrounding_spaces_everywhere_it_is_read():
    # A space-led token after `"path": "` saved " sister_letter.docx" beside the file asked for (stop 36's LAM4).
    action = parse_action('{"function": "save_as", "args": {"path": " sister_letter.docx "}, "status": "FINISH"}')
    assert action.args["path"] == "sister_letter.docx" == action.typed_args().path
    assert json.loads(action.to_json())["args"]["path"] == "sister_letter.docx"
    with pytest.raises(ActionParseError, match="must end in"):
        parse_action({"function": "save_as", "args": {"path": "   "}})


def test_parse_action_from_noisy_model_output():
    text = 'Sure! ```json\n{"function": "keyboard_input", "args": {"keys": "a } b"}, "status": "FINISH"}\n``` done'
    a = parse_action(text)
    assert a.args["keys"] == "a } b" and a.status is Status.FINISH
    with pytest.raises(ActionParseError, match="not closed"):
        parse_action('{"function": "summary"')
    with pytest.raises(ActionParseError, match="no JSON"):
        parse_action("I cannot do that")


def test_key_combos():
    assert check_key_combo("Ctrl+Shift+b") == ["ctrl", "shift", "b"]
    assert check_key_combo("Enter") == ["Return"]
    with pytest.raises(ValueError):
        check_key_combo("Ctrl+")


def test_render_prompt_contains_state_history_and_plan():
    obs = Observation(title="t", controls=[Control(label="1", name="Bold", type="toggle button", states=["enabled", "checked"]),
                                           Control(label="2", name="Paste", type="push button", states=[])],
                      canvas=[Paragraph(index=0, text="Hello", style="Heading 1", bold=None)], selection="Hello")
    history = [HistoryItem(action=Action(function="select_text", args={"text": "Hello"}), result="selected 'Hello'")]
    messages = render_prompt("Bold Hello", 2, obs, history, plan=["click Bold"])
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    for expected in ("Task: Bold Hello", "Step: 2", "toggle button: Bold\npush button: Paste\n",
                     "Checked: Bold", "Disabled: Paste", "¶0 <Heading 1, part bold> Hello", "select_text", "- click Bold",
                     "Selection: 'Hello'"):
        assert expected in user
    for name in FUNCTIONS:
        assert name in messages[0]["content"]


LONG = ("Many place names still remember the ford or bridge that first let travellers cross, and the markets that "
        "grew beside it kept the name long after the crossing itself had been replaced in stone.")


def _essay() -> list[Paragraph]:
    return [Paragraph(index=0, text="Rivers and Cities", style="Title"),
            Paragraph(index=1, text="Don't miss the crossings: they made the towns."),
            Paragraph(index=2, text=LONG),
            Paragraph(index=3, text="Cell text", table="T1 r1c1"),
            Paragraph(index=4, text="The earliest farming villages grew up along the great rivers.")]


@pytest.mark.parametrize("task, named", [
    ("give the paragraph \"Many place names still…\" center alignment", [2]),  # ellipsis cut, quote found inside
    ("Add a table after the paragraph that begins 'many place names'.", [2]),  # case does not matter
    ("Bold “farming villages” and then ‘Rivers and’", [4, 0]),  # curly quotes, in the task's order
    ("Make paragraph 4 italic", [4]),
    ("Turn paragraphs 1 to 2 into a list", [1]),  # a range names its first paragraph
    ("Don't touch 'Cell text' or 'nowhere at all'", []),  # an apostrophe opens no quote; table cells are not named
    ("Bold 'a', 'b', 'c' in paragraph 0, 1, 2", [0]),  # quotes under 3 characters name nothing
    ("move the 'Rivers and…' paragraph 1.5 cm in from the left", [0]),  # a value after it is no paragraph 1
    ("Give paragraph 4. Then stop.", [4]),  # a full stop after the number is no decimal point
])
def test_paragraphs_the_task_names_are_found_by_quote_or_number(task, named):
    assert [p.index for p in mentioned_paragraphs(task, _essay())] == named


def _report() -> list[Paragraph]:
    return [Paragraph(index=0, text="Annual Report", style="Title"), Paragraph(index=1, text=""),
            Paragraph(index=2, text="Summary", style="Heading 1"), Paragraph(index=3, text="Sales rose in spring."),
            Paragraph(index=4, text="Costs fell.", style="Text Body"), Paragraph(index=5, text="a | b", table="T1 r1c1"),
            Paragraph(index=6, text="Outlook", style="Heading 2"), Paragraph(index=7, text="More growth ahead."),
            Paragraph(index=8, text="   ")]


@pytest.mark.parametrize("task, named", [
    ("Make the title bold", [0]),
    ("Make the document title bold", [0]),
    ("Center the first paragraph", [3]),  # headings, the title and empty paragraphs are not "paragraphs"
    ("Justify the second paragraph, please", [4]),
    ("Double-space the last paragraph", [7]),  # an empty last one and table cells do not count
    ("Italicise the heading", [2]), ("Underline the second heading", [6]), ("underline the LAST heading", [6]),
    ("Center the third paragraph and the title", [7, 0]),  # in the task's order
    ("Indent the tenth paragraph", []), ("Underline the subtitle", []),  # nothing of the kind
    ("Indent the paragraph by 1 cm", []),  # no place: a bare "the paragraph" names nothing
    ("Set paragraph 4 to the Title style", [4]), ("Use the Heading 2 style for paragraph 3", [3]),  # style names
    ("Center the title page", []), ("Apply the Heading 2 paragraph style to paragraph 3", [3]),
    ("Give the title 1.5 Lines line spacing", [0]),  # a number after the role is a value, not a style's
    ("Give the last paragraph 1.15 Lines line spacing", [7]),  # ... nor a paragraph's number
    ("Bold 'the first paragraph' please", []),  # a quote is text to find, not a place
])
def test_paragraphs_named_by_role_or_place(task, named):
    assert [p.index for p in mentioned_paragraphs(task, _report())] == named


def test_a_document_without_a_title_style_has_its_first_heading_as_title():
    canvas = [Paragraph(index=0, text=""), Paragraph(index=1, text="Rivers", style="Heading 1"),
              Paragraph(index=2, text="Body.")]
    assert [p.index for p in mentioned_paragraphs("make the title bold", canvas)] == [1]
    assert mentioned_paragraphs("make the title bold", canvas[2:]) == []  # a first paragraph of body text is no title


def test_quoted_spans_are_read_as_written():
    assert quoted_spans("Bold “farming villages”, then ‘Rivers and’ and \"A 'b' c\"") == \
        ["farming villages", "Rivers and", "A 'b' c"]
    assert quoted_spans("Don't touch the paragraph starting 'We are…'.") == ["We are…"]  # no quote at "Don't"
    assert quoted_spans("make the title bold") == []


@pytest.mark.parametrize("task, several", [
    ("Would you alphabetize paragraphs 3 to 8?", True), ("put bullets in front of paragraphs 1-2", True),
    ("convert the 6 lines beginning with the line 'Item…'", True), ("sort lines 8-12", True),
    ("Set the line spacing of the 'PhD in…' paragraph to 1.15 Lines", False),  # a spacing value
    ("Use 1.5 Lines line spacing for paragraph 4", False), ("Make paragraph 4 italic", False),
    ("Set paragraph 1 to 1.15 Lines", False),  # "1 to 1.15" is no range
])
def test_requests_that_may_name_several_paragraphs(task, several):
    assert names_several_paragraphs(task) == several


CONTROL_NAMES = ["Strikethrough", "Underline", "Format", "Form", "Footer", "Header and Footer", "Help",
                 "Paragraph...", "Bookmark...", "Align Right"]


@pytest.mark.parametrize("task, named", [
    ("Apply strikethrough to 'Format the text'.", ["Strikethrough"]),  # the quoted text names nothing
    ("Please strike through \"the end\"", ["Strikethrough"]),  # two words written together
    ("make 'x' underlined", ["Underline"]),  # an inflection
    ("Put 'Acme' in the footer of every page", ["Footer", "Header and Footer"]),
    ("Help me align the paragraph starting 'PhD' right", ["Align Right"]),  # words that locate or ask, not name
    ("Add bookmarks named 'intro' at paragraph 3", ["Bookmark..."]),
    ("Clear the formatting of 'a b c'", []),  # "formatting" names neither Form nor Format
])
def test_the_controls_a_task_names_word_for_word(task, named):
    assert [n for n, hit in zip(CONTROL_NAMES, named_controls(task, CONTROL_NAMES)) if hit] == named


def test_a_named_paragraph_is_shown_with_its_end_and_the_history_just_above_the_task():
    obs = Observation(title="t", canvas=_essay())
    history = [HistoryItem(action=Action(function="select_paragraph", args={"start_index": 2, "end_index": 2}),
                           result="selected ¶2")]
    user = render_prompt("Insert a table after the paragraph starting 'Many place names'", 2, obs, history)[1]["content"]
    lines = user.splitlines()
    named = lines[-5]
    assert named.startswith("Named ¶2: Many place names still") and named.endswith("had been replaced in stone.")
    assert " … " in named and len(named) < len(LONG)  # the middle of a long paragraph is cut, its end kept
    # The history sits between them: within the last prompt_tail tokens, which train with gradients.
    assert lines[-4:-2] == ["Previous actions:", '1. select_paragraph({"start_index": 2, "end_index": 2}) -> selected ¶2']
    assert lines[-2].startswith("Task: ")
    assert "Named" not in render_prompt("Bold the last word", 1, obs)[1]["content"]  # nothing named, no line
    assert "Named ¶0: Rivers and Cities" in render_prompt("Bold the title", 1, obs)[1]["content"]  # named by role


@pytest.mark.parametrize("window", ["menu", "dialog"])
def test_a_menu_or_dialog_hides_the_document_but_not_the_named_paragraphs(window):
    task = "Indent the paragraph starting 'Many place names' by 2 cm"
    shown = render_prompt(task, 1, Observation(title="t", canvas=_essay()))[1]["content"]
    hidden = render_prompt(task, 3, Observation(title="t", window=window, canvas=_essay(), selection=LONG))[1]["content"]
    assert "¶0 <Title> Rivers and Cities" in shown and "Rivers and Cities" not in hidden
    assert f"Document: 4 paragraphs, behind the {window}\n" in hidden  # the table cell is not a body paragraph
    assert "Named ¶2: Many place names still" in hidden and "Selection: 'Many place names" in hidden


def _main_window(bold_checked: bool, paste_enabled: bool, style: str) -> Observation:
    controls = [Control(label="1", name="Bold", type="toggle button", states=["enabled"] + (["checked"] if bold_checked else [])),
                Control(label="2", name="Paste", type="push button", states=["enabled"] if paste_enabled else []),
                Control(label="3", name="Paragraph Style", type="combo box", states=["enabled", "focused"], value=style),
                Control(label="4", name="Italic", type="toggle button", states=["enabled"])]
    return Observation(title="doc.odt - LibreOffice Writer", controls=controls)


def test_control_states_follow_the_stable_list_so_consecutive_prompts_share_it():
    before = render_prompt("t", 1, _main_window(False, False, "Default"))[1]["content"]
    after = render_prompt("t", 2, _main_window(True, True, "Heading 1"))[1]["content"]
    shared = len(os.path.commonprefix([before, after]))
    # Everything up to the step number is shared: the controls, the window, the document.
    assert before[:shared].rstrip().endswith("\nStep:") and "Previous actions" not in before[:shared]
    assert 'toggle button: Italic\nWindow: main "doc.odt - LibreOffice Writer"\nDocument:' in before[:shared]
    assert "Values:\nParagraph Style = 'Heading 1'" in after and "Focused: Paragraph Style" in after


def test_parse_controls_reads_back_names_states_and_values():
    obs = _main_window(True, False, "Text 'quoted' \"both\"")
    parsed = parse_controls(render_prompt("t", 1, obs)[1]["content"])
    assert [(c.label, c.name, c.type) for c in parsed] == [(c.label, c.name, c.type) for c in obs.controls]
    assert [sorted(c.states) for c in parsed] == [sorted(c.states) for c in obs.controls]
    assert [c.value for c in parsed] == [None, None, "Text 'quoted' \"both\"", None]


def test_control_list_is_grouped_names_that_read_back_even_when_odd():
    names = ["File", "|", ";", '"quoted" start', " padded ", "a = b", "x | y", ""]
    controls = [Control(label=str(i), name=name, type="table cell" if i % 2 else "push button",
                        states=["enabled", "checked"] if i == 2 else ["enabled"], value="v" if i == 6 else None)
                for i, name in enumerate(names, start=1)]
    user = render_prompt("t", 1, Observation(controls=controls))[1]["content"]
    assert "table cell: File\npush button: \"|\"\n" in user and "Checked: \"|\"" in user
    parsed = parse_controls(user)
    assert [(c.label, c.name, c.type, c.value) for c in parsed] == [(c.label, c.name, c.type, c.value) for c in controls]
    assert [c.states for c in parsed][1] == ["checked", "enabled"]


def test_plan_rendering_round_trip():
    plan = ["Choose Format > Paragraph", "Click OK"]
    assert parse_plan(render_plan_target(plan)) == plan


def test_training_renders_recorded_targets_in_the_current_field_order():
    from lamforge.train.data import record_messages
    from lamforge.records import StepSample, StepState

    old_order = '{"control_label": "3", "control_name": "Bold", "function": "click_input", "args": {}}'
    state = StepState(task="Bold it", step=1, observation=Observation())
    sample = StepSample(sample_id="s", trajectory_id="t", task_id="k", state=state, target=old_order)
    _, target = record_messages(sample)
    assert target == Action(control_label="3", control_name="Bold", function="click_input").to_json()
    assert target.startswith('{"function": "click_input", "control_name": "Bold"')


def test_samples_of_the_old_rendered_only_format_fail_with_a_clear_message(tmp_path):
    from lamforge.jsonl import DataError, read_jsonl
    from lamforge.records import StepSample

    old = {"sample_id": "s", "trajectory_id": "t", "task_id": "k", "step": 1, "target": "{}",
           "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "Task: y"}]}
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(old) + "\n")
    with pytest.raises(DataError, match=r"samples.jsonl:1: .*older lamforge.*lamforge data collect"):
        read_jsonl(path, StepSample)


def test_a_sample_renders_its_prompt_from_the_structured_state():
    from lamforge.records import StepSample, StepState

    obs = Observation(controls=[Control(label="1", name="Bold", type="toggle button", states=["enabled"])])
    history = [HistoryItem(action=Action(function="select_text", args={"text": "Hello"}), result="selected")]
    state = StepState(task="Bold Hello", step=2, observation=obs, history=history, plan=["click Bold"])
    sample = StepSample(sample_id="s", trajectory_id="t", task_id="k", state=state, target="{}")
    again = StepSample.model_validate_json(sample.model_dump_json())
    assert again.messages() == render_prompt("Bold Hello", 2, obs, history, plan=["click Bold"])
    assert again.step == 2 and again.task == "Bold Hello"


def test_key_tokens_become_keysym_names_xdotool_accepts():
    from lamforge.schema import check_key_combo, xdotool_key

    assert xdotool_key(check_key_combo("-")) == "minus" and xdotool_key(check_key_combo("Ctrl+-")) == "ctrl+minus"
    assert xdotool_key(check_key_combo("é")) == "U00E9" and xdotool_key(check_key_combo("\\")) == "backslash"
    assert xdotool_key(check_key_combo("Ctrl+Shift+B")) == "ctrl+shift+b" and xdotool_key(["F5"]) == "F5"
    assert xdotool_key(check_key_combo("7")) == "7"


@pytest.mark.parametrize("text", [
    '{"function": "select_paragraph", "args": {"start_index": 0, "end_index": ' + "9" * 5000 + "}}",
    '{"thought": ' + "[" * 3000 + "]" * 3000 + ', "function": "summary", "args": {"text": "x"}}',
    '{"function": "save_as", "args": {"path": "a\\u0000.docx"}}',
])
def test_outputs_that_broke_the_parser_or_the_guard_are_parse_errors(text):
    """A 5000-digit integer (Python's int limit), brackets nested past the recursion limit, a NUL in a path (the
    guard's path functions raised on it): each used to escape the agent loop as an exception."""
    from lamforge.schema import ActionParseError, parse_action

    with pytest.raises(ActionParseError):
        parse_action(text)
