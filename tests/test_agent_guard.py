"""The safety guard: what it blocks, what it lets through, and explicit allowances."""

import os

import pytest

from lamforge.agent.guard import GuardPolicy, check, path_inside
from lamforge.schema import Action, Control, Observation

ENABLED = ["enabled"]


def obs_with(*controls, window="main", window_name="Untitled 1 - LibreOffice Writer"):
    return Observation(window=window, window_name=window_name, controls=[
        Control(label=str(i), name=name, type=type_, states=states, value=value)
        for i, (name, type_, states, value) in enumerate(
            (c + (ENABLED, None))[:4] if len(c) == 2 else c for c in controls)
    ])


def click(obs, name):
    control = next(c for c in obs.controls if c.name == name)
    return Action(control_label=control.label, control_name=control.name, function="click_input")


def keys(text):
    return Action(function="keyboard_input", args={"keys": text})


MAIN = obs_with(("Bold", "push button"), ("Close Document", "push button"), ("Macros", "menu item"),
                ("Run", "push button"), ("Python", "list item"))


@pytest.mark.parametrize("name, rule", [("Close Document", "close_app"), ("Macros", "macros")])
def test_blocks_dangerous_controls_in_main_window(name, rule):
    verdict = check(click(MAIN, name), MAIN)
    assert not verdict.allowed and verdict.rule == rule and name in verdict.reason


def test_allows_ordinary_controls_and_ordinary_words():
    # "Run" and "Python" are only macro words inside the macro dialogs.
    for name in ("Bold", "Run", "Python"):
        assert check(click(MAIN, name), MAIN).allowed, name


@pytest.mark.parametrize("name", ["E~xit LibreOffice", "Exit LibreOffice", "Close Window", "Quit", "Close", "Run Macro…",
                                  "Basic IDE...", "Organize Macros", "Extension Manager..."])
def test_blocks_menu_items_whatever_their_punctuation(name):
    menu = obs_with((name, "menu item"), window="menu", window_name="File")
    assert not check(click(menu, name), menu).allowed


def test_close_button_of_a_dialog_only_closes_the_dialog():
    dialog = obs_with(("Close", "push button"), window="dialog", window_name="Find and Replace")
    assert check(click(dialog, "Close"), dialog).allowed


def test_run_button_of_the_macro_dialog_is_blocked():
    dialog = obs_with(("Run", "push button"), window="dialog", window_name="Basic Macros")
    verdict = check(click(dialog, "Run"), dialog)
    assert not verdict.allowed and verdict.rule == "macros"


def test_blocks_by_the_control_really_hit_not_only_by_the_name_given():
    # The model names "Bold" but points at the label of Close Document; grounding checks the name and falls back
    # to "Bold", so this one is allowed; the reverse (a harmless name on a dangerous label that grounds to it) is not.
    action = Action(control_label="1", control_name="Close Document", function="click_input")
    assert not check(action, MAIN).allowed
    action = Action(control_label="1", function="click_input")  # label only: grounds exactly to Close Document
    assert not check(action, MAIN).allowed


@pytest.mark.parametrize("combo", ["{Alt+F4}", "{Ctrl+Q}", "{ctrl+w}", "abc{Ctrl+F4}", "{Alt+F11}", "{Shift+Ctrl+W}"])
def test_blocks_closing_and_macro_shortcuts(combo):
    verdict = check(keys(combo), MAIN)
    assert not verdict.allowed and verdict.rule in ("close_app", "macros")


@pytest.mark.parametrize("text", ["Hello {Enter}", "{Ctrl+B}", "{Ctrl+S}", "{Alt+F}", "Quit smoking"])
def test_allows_ordinary_typing_and_shortcuts(text):
    assert check(keys(text), MAIN).allowed


def test_enter_on_a_focused_close_button_is_blocked():
    obs = obs_with(("Close Document", "push button", ["enabled", "focused"], None))
    assert not check(keys("{Enter}"), obs).allowed
    assert check(keys("{Tab}"), obs).allowed


def test_save_as_only_inside_the_output_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    policy = GuardPolicy(output_dir=out)
    save = lambda p: Action(function="save_as", args={"path": str(p)})  # noqa: E731
    assert check(save(out / "a.docx"), MAIN, policy).allowed
    assert check(save(out / "sub" / "a.odt"), MAIN, policy).allowed
    for bad in (tmp_path / "a.docx", out / ".." / "a.docx", "/etc/passwd.docx", "~/a.docx"):
        verdict = check(save(bad), MAIN, policy)
        assert not verdict.allowed and verdict.rule == "write_outside_output", bad
    # No output folder: no writes at all.
    assert not check(save(out / "a.docx"), MAIN, GuardPolicy()).allowed


def test_save_as_through_a_symlink_out_of_the_folder_is_blocked(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "link")
    policy = GuardPolicy(output_dir=out)
    verdict = check(Action(function="save_as", args={"path": str(out / "link" / "a.docx")}), MAIN, policy)
    assert not verdict.allowed and str(elsewhere) in verdict.reason


def save_dialog(file_name_value=None, folder=None, focused=False):
    controls = [("File name:", "combo box", ["enabled"] + (["focused"] if focused else []), file_name_value),
                ("Save", "push button"), ("Cancel", "push button")]
    if folder is not None:
        controls.append(("Folder", "edit", ENABLED, folder))
    return obs_with(*controls, window="dialog", window_name="Save As")


def test_file_dialog_path_typed_outside_is_blocked(tmp_path):
    policy = GuardPolicy(output_dir=tmp_path / "out")
    dialog = save_dialog()
    typed = Action(control_label="0", control_name="File name:", function="set_edit_text", args={"text": "/tmp/x.docx"})
    verdict = check(typed, dialog, policy)
    assert not verdict.allowed and "file dialog" in verdict.reason
    inside = Action(control_label="0", control_name="File name:", function="set_edit_text",
                    args={"text": str(tmp_path / "out" / "x.docx")})
    assert check(inside, dialog, policy).allowed


def test_file_dialog_keyboard_typing_into_the_focused_name_field(tmp_path):
    policy = GuardPolicy(output_dir=tmp_path / "out")
    dialog = save_dialog(focused=True)
    assert not check(keys("/home/user/x.docx{Enter}"), dialog, policy).allowed
    assert check(keys(str(tmp_path / "out" / "x.docx") + "{Enter}"), dialog, policy).allowed


def test_file_dialog_bare_name_uses_the_dialog_folder(tmp_path):
    policy = GuardPolicy(output_dir=tmp_path / "out")
    name_only = Action(control_label="0", control_name="File name:", function="set_edit_text", args={"text": "x.docx"})
    assert not check(name_only, save_dialog(), policy).allowed  # folder unknown
    assert check(name_only, save_dialog(folder=str(tmp_path / "out")), policy).allowed
    assert not check(name_only, save_dialog(folder=str(tmp_path)), policy).allowed


def test_pressing_save_checks_the_name_already_in_the_field(tmp_path):
    policy = GuardPolicy(output_dir=tmp_path / "out")
    outside = save_dialog(file_name_value="/tmp/report.docx")
    assert not check(click(outside, "Save"), outside, policy).allowed
    assert check(click(outside, "Cancel"), outside, policy).allowed
    inside = save_dialog(file_name_value=str(tmp_path / "out" / "report.docx"))
    assert check(click(inside, "Save"), inside, policy).allowed


def test_explicit_allowances_lift_only_their_rule(tmp_path):
    policy = GuardPolicy(output_dir=tmp_path, allow={"write_outside_output", "macros"})
    assert check(Action(function="save_as", args={"path": "/tmp/x.docx"}), MAIN, policy).allowed
    assert check(click(MAIN, "Macros"), MAIN, policy).allowed
    assert not check(click(MAIN, "Close Document"), MAIN, policy).allowed
    with pytest.raises(ValueError, match="unknown guard rule"):
        GuardPolicy(allow={"everything"})


def test_policy_blocked_names():
    policy = GuardPolicy(blocked_names=("Bold",))
    verdict = check(click(MAIN, "Bold"), MAIN, policy)
    assert not verdict.allowed and "blocked list" in verdict.reason


def test_check_accepts_observation_dicts():
    assert not check(click(MAIN, "Close Document"), MAIN.model_dump()).allowed


def test_path_inside_without_folder():
    inside, why = path_inside("/tmp/a.docx", None)
    assert not inside and "no output folder" in why


def test_relative_save_as_resolves_inside_the_output_folder(tmp_path):
    """WriterEnv saves relative paths into its output folder; the guard must judge the same path."""
    from lamforge.agent.guard import GuardPolicy, check
    from lamforge.schema import Action, Observation

    policy = GuardPolicy(output_dir=tmp_path)
    assert check(Action(function="save_as", args={"path": "copy.docx"}), Observation(), policy).allowed
    assert not check(Action(function="save_as", args={"path": "../escape.docx"}), Observation(), policy).allowed
