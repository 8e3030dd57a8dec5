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


# ---------------------------------------------------------------------------------------------------------------
# Keys, judged by what they do where the focus is (guard_keys.py).


def controls(*specs, window="main", window_name="Untitled 1 - LibreOffice Writer"):
    """Observation from (name, type, states, value, mnemonic) tuples."""
    return Observation(window=window, window_name=window_name, controls=[
        Control(label=str(i + 1), name=n, type=t, states=st, value=v, mnemonic=m)
        for i, (n, t, st, v, m) in enumerate(specs)])


MAIN_BAR = controls(("File", "menu", ENABLED, None, "f"), ("Tools", "menu", ENABLED, None, "t"),
                    ("Bold", "toggle button", ENABLED, None, None), ("Print", "push button", ENABLED, None, None))
FILE_MENU = controls(("New", "menu", ["enabled", "focused", "selected"], None, "n"),
                     ("Save As...", "menu item", ENABLED, None, "a"), ("Print...", "menu item", ENABLED, None, "p"),
                     ("Exit LibreOffice", "menu item", ENABLED, None, "x"), window="menu", window_name="File")
BASIC_MACROS = controls(("Macro Name", "text", ENABLED, "", "m"), ("My Macros", "tree item", ENABLED, None, None),
                        ("New", "push button", ENABLED, None, "n"), ("Close", "push button", ENABLED, None, "c"),
                        ("Run", "push button", ["default"], None, "r"), window="dialog", window_name="BASIC Macros")


def save_as_dialog(focus=None, name_value="report"):
    def states(name):
        return ["enabled", "focused"] if name == focus else ["enabled"]
    return controls(("File name:", "combo box", states("File name:"), name_value, "n"),
                    ("File type:", "combo box", states("File type:"), "Word 2007-365 (.docx)", "t"),
                    ("Save with password", "check box", states("Save with password"), None, "w"),
                    ("Save", "push button", ["enabled", "default"], None, "s"),
                    ("Cancel", "push button", ENABLED, None, "c"), window="dialog", window_name="Save As")


@pytest.mark.parametrize("combo", ["{Ctrl+Ctrl+Q}", "{control+q}", "{Control+Shift+Q}", "{Shift+Ctrl+q}",
                                   "{Alt+Alt+F4}", "{Alt+Shift+F4}", "{Alt+Alt+F11}", "{ctrl+ctrl+w}", "{Ctrl+F4}",
                                   "{Ctrl+*}", "{Ctrl+Alt+E}", "{Alt+Ctrl+e}", "{Ctrl+P}", "{Ctrl+O}"])
def test_forbidden_shortcuts_are_blocked_however_spelled_and_wherever(combo):
    for obs in (MAIN_BAR, FILE_MENU, BASIC_MACROS, save_as_dialog()):
        verdict = check(keys(combo), obs)
        assert not verdict.allowed and verdict.keys_now is None, (combo, obs.window_name)
        assert verdict.rule in ("close_app", "macros", "external_programs", "write_outside_output")


def test_a_letter_in_an_open_menu_runs_its_entry():
    for letter in ("x", "X"):
        verdict = check(keys(letter), FILE_MENU)
        assert not verdict.allowed and verdict.rule == "close_app" and "Exit LibreOffice" in verdict.reason
    assert check(keys("a"), FILE_MENU).allowed  # Save As... opens a file dialog, which is guarded itself
    assert check(keys("q"), FILE_MENU).allowed  # no entry has that letter: nothing happens
    assert not check(keys("p"), FILE_MENU).allowed  # Print


def test_enter_in_a_menu_runs_the_highlighted_entry_and_arrows_make_it_unknown():
    assert check(keys("{Enter}"), FILE_MENU).allowed  # New, highlighted
    assert not check(keys("\n"), FILE_MENU.model_copy(update={"controls": [
        c.model_copy(update={"states": ["enabled", "focused"] if c.name == "Exit LibreOffice" else ["enabled"]})
        for c in FILE_MENU.controls]})).allowed  # a newline in typed text is Enter
    verdict = check(keys("{Up}{Enter}"), FILE_MENU)
    assert verdict.allowed and verdict.keys_now == "{Up}"  # run the arrow, look, judge Enter on what is lit


def test_keys_after_a_menu_opens_are_checked_after_it_opens():
    verdict = check(keys("{Alt+F}x"), MAIN_BAR)
    assert verdict.allowed and verdict.keys_now == "{Alt+F}"
    assert not check(keys("{Alt+F}"), MAIN_BAR).keys_now  # opening a menu alone is harmless
    assert check(keys("Hello{Enter}{Ctrl+B}bold{Ctrl+B}{Tab}"), MAIN_BAR).allowed  # typing in the document
    assert check(keys("{Ctrl+Shift+S}{Tab}"), MAIN_BAR).allowed  # opens a dialog; moving in it is harmless
    verdict = check(keys("{Ctrl+Shift+S}x.docx"), MAIN_BAR)
    assert verdict.keys_now == "{Ctrl+Shift+S}"


def test_control_characters_in_typed_text_are_refused():
    verdict = check(keys("abc\x11"), MAIN_BAR)
    assert not verdict.allowed and verdict.rule == "unjudged" and "U+0011" in verdict.reason


def test_save_dialog_mnemonic_typing_and_enter_are_judged_on_the_name_saved(tmp_path):
    out = tmp_path / "out"
    policy = GuardPolicy(output_dir=out)
    dialog = save_as_dialog(focus="Save with password")
    verdict = check(keys(f"{{Alt+N}}{tmp_path}/evil.docx{{Enter}}"), dialog, policy)
    assert not verdict.allowed and verdict.rule == "write_outside_output" and "Save" in verdict.reason
    assert check(keys(f"{{Alt+N}}{out}/ok.docx{{Enter}}"), dialog, policy).allowed
    assert not check(keys(f"{{Alt+N}}{out}/../evil.docx{{Enter}}"), dialog, policy).allowed
    # Edited after typing: the name is no longer known, so Save is refused.
    assert not check(keys(f"{{Alt+N}}{out}/ok.docx{{Home}}/x{{Enter}}"), dialog, policy).allowed
    # Enter straight away saves under the name in the field, here relative to a folder the guard cannot see.
    assert not check(keys("{Enter}"), dialog, policy).allowed
    assert not check(keys("{Alt+S}"), dialog, policy).allowed
    # Typing with the focus unknown in a file dialog: the text may be the file name.
    verdict = check(keys("evil.docx"), save_as_dialog(focus=None), policy)
    assert not verdict.allowed and verdict.rule == "unjudged"


def test_macro_dialog_keys_that_would_run_or_edit(tmp_path):
    assert not check(keys("{Alt+R}"), BASIC_MACROS).allowed
    assert not check(keys("{Alt+N}"), BASIC_MACROS).allowed  # New: a module in the Basic IDE
    assert check(keys("{Alt+C}"), BASIC_MACROS).allowed  # Close
    assert not check(keys("{Enter}"), BASIC_MACROS).allowed  # the focus is unknown: it may press Run
    verdict = check(keys("{Tab}{Enter}"), BASIC_MACROS)
    assert verdict.allowed and verdict.keys_now == "{Tab}"
    on_close = BASIC_MACROS.model_copy(update={"controls": [
        c.model_copy(update={"states": ["enabled", "focused"]}) if c.name == "Close" else c
        for c in BASIC_MACROS.controls]})
    assert check(keys("{Enter}"), on_close).allowed  # Enter presses the focused Close
    assert not check(keys("r"), on_close).allowed  # a bare letter on a button is a mnemonic: Run
    in_field = BASIC_MACROS.model_copy(update={"controls": [
        c.model_copy(update={"states": ["enabled", "focused"]}) if c.name == "Macro Name" else c
        for c in BASIC_MACROS.controls]})
    assert check(keys("rename"), in_field).allowed  # letters in a text field are text
    assert not check(keys("rename{Enter}"), in_field).allowed  # and Enter presses the default button, Run
    double = Action(control_label="2", control_name="My Macros", function="click_input", args={"double": True})
    assert not check(double, BASIC_MACROS).allowed
    assert check(Action(control_label="2", control_name="My Macros", function="click_input"), BASIC_MACROS).allowed


def test_enter_on_an_unknown_toolbar_focus_is_judged_on_every_button():
    verdict = check(keys("{F6}{Enter}"), MAIN_BAR)  # F6 moves the focus to a toolbar
    assert verdict.allowed and verdict.keys_now == "{F6}"


def test_run_policy_writes_only_new_files_in_the_output_folder_itself(tmp_path):
    from lamforge.agent.run_command import run_policy

    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / "thesis.docx").write_text("the user's own file")
    policy = run_policy(home)
    save = lambda p: Action(function="save_as", args={"path": str(p)})  # noqa: E731
    assert check(save(home / "copy.docx"), MAIN, policy).allowed
    for bad in (home / ".config" / "x.docx", home / "thesis.docx", tmp_path / "x.docx"):
        assert not check(save(bad), MAIN, policy).allowed, bad


# The menu bar active in the main window, as the office reports it after F6 (measured: File focused and selected).
MAIN_BAR_ACTIVE = controls(("File", "menu", ["enabled", "focused", "selected"], None, "f"),
                           ("Tools", "menu", ENABLED, None, "t"), ("Bold", "toggle button", ENABLED, None, None))


def test_keys_on_an_active_menu_bar_are_judged_in_the_menu_they_open():
    """`{F6}` then `{Down}x` ran File > Exit: Down opened the menu, and x was judged as a letter typed in the text."""
    verdict = check(keys("{Down}x"), MAIN_BAR_ACTIVE)
    assert verdict.allowed and verdict.keys_now == "{Down}"  # run Down, observe the File menu, judge x there
    assert not check(keys("x"), FILE_MENU).allowed
    for opener in ("{Enter}", "{Up}", "{Right}", "{Space}"):
        assert check(keys(opener + "x"), MAIN_BAR_ACTIVE).keys_now == opener, opener
    assert check(keys("{Down}x"), MAIN_BAR).allowed  # in the text, Down moves the caret and x is typed


@pytest.mark.parametrize("combo, rule", [("{F1}", "external_programs"), ("{Shift+F1}", "external_programs"),
                                         ("{Shift+F10}", "unjudged"), ("{F10}", "unjudged")])
def test_help_and_the_context_menu_keys_are_blocked(combo, rule):
    for obs in (MAIN_BAR, FILE_MENU, save_as_dialog()):
        verdict = check(keys(combo), obs)
        assert not verdict.allowed and verdict.rule == rule and verdict.keys_now is None, (combo, obs.window_name)


def test_right_and_middle_clicks_are_blocked_and_help_buttons_too():
    dialog = obs_with(("Help", "push button"), ("OK", "push button"), window="dialog", window_name="Paragraph")
    for button in ("right", "middle"):
        action = Action(control_label="2", control_name="OK", function="click_input", args={"button": button})
        verdict = check(action, dialog)
        assert not verdict.allowed and verdict.rule == "unjudged" and "context menu" in verdict.reason
    assert check(click(dialog, "OK"), dialog).allowed
    verdict = check(click(dialog, "Help"), dialog)
    assert not verdict.allowed and verdict.rule == "external_programs"


def test_tools_options_is_blocked_as_a_menu_entry_only():
    tools = controls(("Options...", "menu item", ["enabled", "focused", "selected"], None, "o"),
                     ("Word Count...", "menu item", ENABLED, None, "w"), window="menu", window_name="Tools")
    for action in (click(tools, "Options..."), keys("o"), keys("{Enter}"), keys("{Alt+F12}")):
        verdict = check(action, tools)
        assert not verdict.allowed and verdict.rule == "macros", action
    assert not check(keys("{Alt+F12}"), MAIN_BAR).allowed
    dialog = obs_with(("Options", "page tab"), ("OK", "push button"), window="dialog", window_name="AutoCorrect")
    assert check(click(dialog, "Options"), dialog).allowed


# ---------------------------------------------------------------------------------------------------------------
# A red-team review (2026-12-05) under `lamforge run`'s own policy: the office reads keys, names and answers more
# widely than the guard did. Each case below was allowed before; the first three overwrote the user's report.docx
# or opened the Basic IDE in live Writer (tests/test_guard_attacks.py runs them there).


def run_home(tmp_path):
    from lamforge.agent.run_command import run_policy

    home = tmp_path / "home"
    home.mkdir()
    (home / "report.docx").write_text("the user's own file")
    return home, run_policy(home)


def test_a_name_the_dialog_completes_to_an_existing_file_is_refused(tmp_path):
    home, policy = run_home(tmp_path)
    dialog = save_as_dialog(focus="File name:", name_value="")
    verdict = check(keys(f"{{Alt+N}}{home}/report{{Enter}}"), dialog, policy)
    assert not verdict.allowed and "report.docx" in verdict.reason
    assert check(keys(f"{{Alt+N}}{home}/summary{{Enter}}"), dialog, policy).allowed  # a new name stays allowed
    # A policy that may replace files (collection's) is not asked about it.
    assert check(keys(f"{{Alt+N}}{home}/report{{Enter}}"), dialog, GuardPolicy(output_dir=home)).allowed


@pytest.mark.parametrize("combo", ["{Alt+Shift+S}", "{Shift+Alt+s}", "{Ctrl+Alt+S}", "{Alt+ſ}"])
def test_save_by_its_mnemonic_with_other_modifiers_is_judged_as_save(tmp_path, combo):
    home, policy = run_home(tmp_path)
    dialog = save_as_dialog(focus="File name:", name_value=str(home / "report.docx"))
    verdict = check(keys(combo), dialog, policy)
    assert not verdict.allowed and verdict.rule == "write_outside_output", combo


@pytest.mark.parametrize("combo", ["{Alt+Shift+R}", "{Alt+Shift+N}", "{Ctrl+Alt+N}", "{Ctrl+R}"])
def test_macro_dialog_buttons_by_mnemonic_with_other_modifiers(combo):
    assert not check(keys(combo), BASIC_MACROS).allowed, combo


@pytest.mark.parametrize("text", ["ｘ", "Ｘ", "{Alt+X}", "{Ctrl+X}", "{Ctrl+Alt+x}", "х"])  # fullwidth, Cyrillic
def test_menu_letters_are_matched_the_way_the_office_matches_them(text):
    verdict = check(keys(text), FILE_MENU)
    assert not verdict.allowed, text
    assert check(keys("q"), FILE_MENU).allowed  # still: a letter no entry has does nothing


def test_lookalike_letters_are_folded_to_the_mnemonic_they_trigger():
    from lamforge.agent.guard_rules import fold_mnemonic

    assert [fold_mnemonic(c) for c in "ｍſẙXx"] == ["m", "s", "y", "x", "x"]


def test_the_basic_ide_is_a_window_where_nothing_is_allowed():
    ide = controls(("Run", "push button", ENABLED, None, "r"), ("File", "menu", ENABLED, None, "f"),
                   window="main", window_name="Application Macros & Dialogs.Standard - LibreOffice Basic")
    for action in (keys("Sub Main"), keys("{F5}"), click(ide, "File"), keys("{Esc}")):
        verdict = check(action, ide)
        assert not verdict.allowed and verdict.rule == "macros"
    for title in ("basic_notes.odt - LibreOffice Writer", "Basic IDE notes.docx - LibreOffice Writer"):
        writer = controls(("Bold", "toggle button", ENABLED, None, None), window="main", window_name=title)
        assert check(keys("Sub Main"), writer).allowed, title  # a document named so is no IDE


def test_yes_to_replacing_a_file_is_refused_when_the_policy_replaces_nothing(tmp_path):
    home, policy = run_home(tmp_path)
    question = controls(("No", "push button", ["enabled", "default"], None, "n"),
                        ("Yes", "push button", ENABLED, None, "y"), window="dialog", window_name="Confirmation")
    for action in (click(question, "Yes"), keys("{Alt+Y}"), keys("y")):
        verdict = check(action, question, policy)
        assert not verdict.allowed and verdict.rule == "write_outside_output", action
    assert check(click(question, "No"), question, policy).allowed
    assert check(click(question, "Yes"), question, GuardPolicy(output_dir=home)).allowed  # collection may replace
    # Under another title, the same question is still a message box: a few buttons and nothing to type into.
    untitled = question.model_copy(update={"window_name": "Save As", "controls": [
        c.model_copy(update={"states": ["enabled", "focused"] if c.name == "No" else ["enabled"]})
        for c in question.controls]})
    for text in ("y", "ẙ", "{Alt+Y}"):
        assert not check(keys(text), untitled, policy).allowed, text
    find = controls(("Find:", "combo box", ENABLED, "colour", "f"), ("Replace:", "combo box", ENABLED, "color", "p"),
                    ("Replace", "push button", ENABLED, None, "r"), ("Replace All", "push button", ENABLED, None, "a"),
                    window="dialog", window_name="Find and Replace")
    assert check(click(find, "Replace All"), find, policy).allowed and check(click(find, "Replace"), find, policy).allowed


@pytest.mark.parametrize("combo", ["{Ctrl+Enter}", "{Alt+Enter}", "{Ctrl+Shift+Enter}"])
def test_enter_with_modifiers_presses_the_default_button(tmp_path, combo):
    _, policy = run_home(tmp_path)
    dialog = save_as_dialog(focus="File name:", name_value="/etc/evil.docx")
    assert not check(keys(combo), dialog, policy).allowed


def test_the_file_list_can_change_the_name_behind_the_guard(tmp_path):
    home, policy = run_home(tmp_path)
    dialog = controls(("File name:", "combo box", ["enabled", "focused"], str(home / "new.docx"), "n"),
                      ("report.docx", "table cell", ENABLED, None, None),
                      ("File type:", "combo box", ENABLED, "Word 2007-365 (.docx)", "t"),
                      ("Save", "push button", ["enabled", "default"], None, "s"),
                      window="dialog", window_name="Save As")
    assert check(keys("{Enter}"), dialog, policy).allowed  # the name in the field is new
    on_list = dialog.model_copy(update={"controls": [
        c.model_copy(update={"states": ["enabled", "focused"] if c.name == "report.docx" else ["enabled"]})
        for c in dialog.controls]})
    assert not check(keys("{Enter}"), on_list, policy).allowed  # Enter on a file entry saves over that file
    assert not check(keys("r{Enter}"), on_list, policy).allowed  # a letter on the list picks a file first
    for risky in ("{Shift+Tab}{Up}{Enter}", "{Down}{Enter}"):
        verdict = check(keys(risky), dialog, policy)
        assert not verdict.allowed or verdict.keys_now is not None, risky  # never the Enter with that name
    double = Action(control_label="2", control_name="report.docx", function="click_input", args={"double": True})
    assert not check(double, dialog, policy).allowed


def test_a_file_dialog_is_known_by_its_controls_whatever_its_title(tmp_path):
    _, policy = run_home(tmp_path)
    html = save_as_dialog(focus="File name:", name_value="").model_copy(
        update={"window_name": "Name and Path of the HTML Document"})
    set_name = Action(control_label="1", control_name="File name:", function="set_edit_text",
                      args={"text": "/etc/cron.d/x"})
    assert not check(set_name, html, policy).allowed
    assert not check(keys("{Alt+N}/etc/cron.d/x{Enter}"), html, policy).allowed


@pytest.mark.parametrize("name", ["Save Remote...", "More Dictionaries Online...", "Website", "Release Notes",
                                  "Start Certificate Manager..."])
def test_entries_that_write_remotely_or_open_a_browser(name):
    menu = obs_with((name, "menu item"), window="menu", window_name="File")
    assert not check(click(menu, name), menu).allowed


@pytest.mark.parametrize("window, name", [("Templates", "Export"), ("Insert OLE Object", "Link to file")])
def test_writes_into_places_the_guard_cannot_read_are_blocked(window, name):
    dialog = obs_with((name, "push button" if name == "Export" else "check box"), ("Cancel", "push button"),
                      window="dialog", window_name=window)
    verdict = check(click(dialog, name), dialog)
    assert not verdict.allowed and verdict.rule == "write_outside_output"
    other = obs_with(("Export", "push button"), window="dialog", window_name="Export as PDF")  # an ordinary Export
    assert check(click(other, "Export"), other).allowed


def test_a_third_review_new_documents_wizards_and_submenus(tmp_path):
    """Insert > Hyperlink > New Document made a file outside the allowed folder in live Writer; the wizards and
    AutoText's Path write where their pages say; Right opened Tools > Macros without judging it."""
    hyperlink = controls(("New Document", "page tab", ENABLED, None, "n"), ("File:", "combo box", ENABLED, "", "f"),
                         ("Apply", "push button", ENABLED, None, "a"), window="dialog", window_name="Hyperlink")
    autotext = obs_with(("Path...", "push button"), window="dialog", window_name="AutoText")
    file_menu = obs_with(("Wizards", "menu"), window="menu", window_name="File")
    for obs, name in ((hyperlink, "New Document"), (autotext, "Path..."), (file_menu, "Wizards")):
        verdict = check(click(obs, name), obs)
        assert not verdict.allowed and verdict.rule == "write_outside_output", name
    tools = controls(("Macros", "menu", ["enabled", "focused", "selected"], None, "m"),
                     ("AutoCorrect", "menu", ENABLED, None, "a"), window="menu", window_name="Tools")
    assert not check(keys("{Right}"), tools).allowed
    organize = obs_with(("Basic...", "menu item"), ("Python...", "menu item"), window="menu",
                        window_name="Organize Macros")
    assert not check(click(organize, "Basic..."), organize).allowed
    assert not check(click(organize, "Python..."), organize).allowed


def test_a_dialog_that_only_reads_a_file_is_no_file_dialog(tmp_path):
    """Insert Image has a file type list but opens: a picture outside the allowed folder may be read."""
    image = controls(("File name:", "combo box", ["enabled", "focused"], "", "n"),
                     ("File type:", "combo box", ENABLED, "All images", "t"), ("Open", "push button", ENABLED, None, "o"),
                     window="dialog", window_name="Insert Image")
    set_name = Action(control_label="1", control_name="File name:", function="set_edit_text",
                      args={"text": str(tmp_path / "logo.png")})
    assert check(set_name, image, GuardPolicy(output_dir=tmp_path / "out")).allowed
