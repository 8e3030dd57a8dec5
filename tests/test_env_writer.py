"""WriterEnv against the real LibreOffice under Xvfb."""

import os
import signal
import time

import pytest

from helpers import click, control
from lamforge.env.office import Office
from lamforge.schema import Action, Observation

pytestmark = pytest.mark.office


def test_reset_blank_observation_has_main_window_controls(writer_env):
    obs, info = writer_env.reset()
    o = Observation.model_validate(obs)
    assert o.window == "main"
    assert "LibreOffice Writer" in o.title
    names = {c.name for c in o.controls}
    assert {"Bold", "Italic", "Format", "Insert"} <= names
    labels = [c.label for c in o.controls]
    assert len(labels) == len(set(labels))
    assert writer_env.observation_space.contains(obs)
    assert info["reset_ms"] > 0


def test_type_select_and_press_bold(writer_env):
    writer_env.reset()
    obs, _, _, _, info = writer_env.step({"function": "keyboard_input", "args": {"keys": "Quarterly revenue grew{Enter}Next"}})
    assert info["error"] is None
    obs, _, _, _, info = writer_env.step({"function": "select_text", "args": {"text": "revenue"}})
    assert info["error"] is None and Observation.model_validate(obs).selection == "revenue"
    click(writer_env, obs, "Bold")
    state = writer_env.doc_state()
    assert [p.text for p in state.paragraphs] == ["Quarterly revenue grew", "Next"]
    assert all(r.bold for r in state.runs_of("revenue"))
    assert not any(r.bold for r in state.runs_of("Quarterly"))
    canvas = Observation.model_validate(writer_env.observe()).canvas
    assert canvas[0].bold is None and canvas[1].bold is False  # mixed, then plain


def test_select_text_ignores_case_only_for_the_one_loose_match(writer_env):
    writer_env.reset()
    writer_env.step({"function": "keyboard_input", "args": {"keys": "All lanterns glow{Enter}Parks and parks"}})
    obs, _, _, _, info = writer_env.step({"function": "select_text", "args": {"text": "all lanterns"}})
    assert info["error"] is None and "case ignored" in info["result"]
    assert Observation.model_validate(obs).selection == "All lanterns"
    obs, _, _, _, info = writer_env.step({"function": "select_text", "args": {"text": "parks"}})
    assert info["error"] is None and Observation.model_validate(obs).selection == "parks"  # an exact match wins
    for text in ("PARKS", "all lanterns glow now"):  # two loose matches, none at all: the model is told
        _, _, _, _, info = writer_env.step({"function": "select_text", "args": {"text": text}})
        assert info["error"] == f"{text!r} occurs 0 time(s) in the document"
    _, _, _, _, info = writer_env.step({"function": "select_text", "args": {"text": "all lanterns", "occurrence": 2}})
    assert info["error"] == "'all lanterns' occurs 0 time(s) in the document"


def test_paragraph_dialog_sets_line_spacing(writer_env):
    obs, _ = writer_env.reset()
    writer_env.step({"function": "keyboard_input", "args": {"keys": "Spaced paragraph"}})
    obs = click(writer_env, writer_env.observe(), "Format", "menu")
    assert Observation.model_validate(obs).window == "menu"
    obs = click(writer_env, obs, "Paragraph...")
    o = Observation.model_validate(obs)
    assert o.window == "dialog" and o.window_name == "Paragraph"
    obs = click(writer_env, obs, "Indents & Spacing", "page tab")
    obs = click(writer_env, obs, "Proportional", "list item")
    spin = control(obs, "of", "spin box")
    obs = click(writer_env, obs, "of", "spin box")  # a spin box has no accessible action: clicking it focuses it
    obs, _, _, _, info = writer_env.step(Action(control_label=spin.label, control_name="of", function="set_edit_text",
                                                args={"text": "150%"}))
    assert info["error"] is None, info
    obs = click(writer_env, obs, "OK", "push button")
    assert Observation.model_validate(obs).window == "main"
    p = writer_env.doc_state().paragraphs[0]
    assert (p.line_spacing_mode, p.line_spacing) == (0, 150)


def test_keys_typed_in_a_dialog_show_in_the_next_observation(writer_env):
    """The Special Characters search filters its grid after the typed keys reach the office; the step waits for
    the dialog to change and hold still, so its observation already lists the found symbol (a clean-clone CI run
    once observed the unfiltered grid). A wait with nothing changing ends at its timeout and says so."""
    writer_env.reset()
    obs = click(writer_env, writer_env.observe(), "Insert", "menu")
    obs = click(writer_env, obs, "Special Character...")
    assert Observation.model_validate(obs).window_name == "Special Characters"
    obs = click(writer_env, obs, "Search:", "text")
    obs, _, _, _, info = writer_env.step({"function": "keyboard_input", "args": {"keys": "section sign"}})
    assert info["error"] is None
    assert any(c.name == "§" and c.type == "table cell" for c in Observation.model_validate(obs).controls)
    office = writer_env._office()
    still = office.call("digest")["digest"]
    t0 = time.perf_counter()
    assert office.call("settle", {"changed_from": still, "timeout_s": 0.5}) == {"ok": True, "changed": False,
                                                                                "stable": False}
    assert time.perf_counter() - t0 < 5
    # A half-read search changes the window too; the text typed must show before the window counts as settled.
    search = next(c for c in Observation.model_validate(obs).controls if c.name == "Search:")
    assert search.value == "section sign"
    office.xdotool("key", "ctrl+a", "BackSpace")
    office.call("settle", {"changed_from": still})
    cleared = office.call("digest")["digest"]
    office.xdotool("type", "--delay", "6", "--", "sec")
    assert office.call("settle", {"changed_from": cleared, "shows": "section", "timeout_s": 0.5}) == {
        "ok": True, "changed": False, "stable": False, "shows": False}
    office.xdotool("type", "--delay", "6", "--", "tion")
    assert office.call("settle", {"changed_from": cleared, "shows": "section"}) == {
        "ok": True, "changed": True, "stable": True, "shows": True}
    click(writer_env, obs, "Cancel", "push button")
    assert Observation.model_validate(writer_env.observe()).window == "main"


def test_set_edit_text_and_keyboard_in_toolbar_combo(writer_env):
    obs, _ = writer_env.reset()
    writer_env.step({"function": "keyboard_input", "args": {"keys": "Big words"}})
    obs, _, _, _, _ = writer_env.step({"function": "select_paragraph", "args": {"start_index": 0, "end_index": 0}})
    size = control(obs, "Font Size", "combo box")
    assert size.value == "12 pt"
    obs, _, _, _, info = writer_env.step(Action(control_label=size.label, control_name=size.name, function="set_edit_text",
                                                args={"text": "20"}))
    assert info["error"] is None, info
    writer_env.step({"function": "keyboard_input", "args": {"keys": "{Enter}"}})
    assert {r.font_size for r in writer_env.doc_state().runs_of("Big words")} == {20.0}


def test_invalid_actions_are_reported_not_raised(writer_env):
    writer_env.reset()
    cases = [
        "not json at all",
        {"function": "fly_to_moon", "args": {}},
        {"function": "insert_table", "args": {"rows": 0, "columns": 3}},
        {"function": "click_input", "args": {}},  # no control
        {"control_label": "9999", "control_name": "No Such Button", "function": "click_input", "args": {}},
        {"function": "select_text", "args": {"text": "absent words"}},
        {"function": "keyboard_input", "args": {"keys": "{Hyper+Q}"}},
    ]
    for action in cases:
        obs, reward, terminated, truncated, info = writer_env.step(action)
        assert info["error"], action
        assert not terminated and not info["env_error"]
        assert Observation.model_validate(obs).window == "main"
    rejected = writer_env.step({"control_label": "9999", "control_name": "No Such Button", "function": "click_input"})[4]
    assert rejected["grounding"]["decision"] == "rejected"


def test_stale_label_grounds_by_name(writer_env):
    obs, _ = writer_env.reset()
    italic = control(obs, "Italic")
    wrong_label = control(obs, "Bold").label
    _, _, _, _, info = writer_env.step(Action(control_label=wrong_label, control_name="Italic", function="click_input"))
    assert info["grounding"]["decision"] == "by_name" and info["grounding"]["label"] == italic.label


def test_finish_terminates_and_max_steps_truncates(writer_env):
    writer_env.reset()
    _, _, terminated, truncated, _ = writer_env.step({"function": "summary", "args": {"text": "done"}, "status": "FINISH"})
    assert terminated and not truncated
    writer_env.reset()
    writer_env.max_steps = 2
    try:
        writer_env.step({"function": "summary", "args": {}})
        _, _, terminated, truncated, _ = writer_env.step({"function": "summary", "args": {}})
        assert truncated and not terminated
    finally:
        writer_env.max_steps = 30


def test_open_docx_insert_table_and_save(writer_env, tmp_path):
    docx = pytest.importorskip("docx")
    path = tmp_path / "in.docx"
    d = docx.Document()
    d.add_heading("Annual Report", level=1)
    d.add_paragraph("The board met twice.")
    d.save(path)
    obs, _ = writer_env.reset(options={"doc": str(path)})
    canvas = Observation.model_validate(obs).canvas
    assert [p.text for p in canvas] == ["Annual Report", "The board met twice."]
    assert canvas[0].style == "Heading 1"
    writer_env.step({"function": "insert_table", "args": {"rows": 2, "columns": 3}})
    assert writer_env.doc_state().tables[0].shape == (2, 3)
    for suffix in (".odt", ".docx", ".pdf"):
        out = tmp_path / f"out{suffix}"
        _, _, _, _, info = writer_env.step({"function": "save_as", "args": {"path": str(out)}})
        assert info["error"] is None and out.stat().st_size > 0
    assert docx.Document(str(path)).paragraphs[1].text == "The board met twice."  # the original is untouched


def test_save_as_writes_the_file_the_guard_judged(writer_env, tmp_path, monkeypatch):
    """'~' and a quoted name mean to the environment what they mean to the guard (env/paths.py): with the output
    folder as the home folder, save_as '~/a.docx' wrote into a new folder named '~', and '"b.docx' to a file named
    with the quote, while the guard had judged out/a.docx and out/b.docx."""
    from lamforge.agent.guard import GuardPolicy, check

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("HOME", str(out))
    writer_env.reset(options={"out_dir": str(out)})
    policy = GuardPolicy(output_dir=out)
    for path, written in (("~/a.docx", out / "a.docx"), ('"b.docx', out / "b.docx"), (' c.odt', out / "c.odt")):
        action = {"function": "save_as", "args": {"path": path}}
        assert check(Action.model_validate(action), Observation(), policy).allowed
        _, _, _, _, info = writer_env.step(action)
        assert info["error"] is None and written.stat().st_size > 0, (path, info)
    assert sorted(p.name for p in out.iterdir()) == ["a.docx", "b.docx", "c.odt"]


def test_a_save_the_office_refuses_is_an_oserror_that_says_so(writer_env, tmp_path):
    """At once, and the office stays: without an interaction handler of our own it showed an Error dialog and the
    call hung until the watchdog killed the office (60 s)."""
    writer_env.reset(options={"out_dir": str(tmp_path)})
    pid = writer_env.office.proc.pid
    (tmp_path / "taken.docx").mkdir()  # a folder where the file should go
    started = time.monotonic()
    with pytest.raises(OSError, match=f"the office could not save {tmp_path / 'taken.docx'}: .*impl_store"):
        writer_env.save_as(tmp_path / "taken.docx")
    assert time.monotonic() - started < 15
    assert writer_env.office.alive() and writer_env.office.proc.pid == pid
    assert writer_env.observe()["window"] == "main"  # no dialog left open


def test_punctuation_and_accented_key_tokens_type_their_characters(writer_env):
    """`xdotool key -` exits with an error (the episode ended as an environment error) and `xdotool key *` types
    nothing: key tokens go by their keysym names. {Ctrl+-} is Writer's soft hyphen. (A non-ASCII character such as
    {é} is typed like text, which under load still drops one now and then: not checked here.)"""
    writer_env.reset()
    for keys in ("a{-}b{*}c{.}", "{\\}{|}{[}", "x{Ctrl+-}y"):
        _, _, _, _, info = writer_env.step({"function": "keyboard_input", "args": {"keys": keys}})
        assert info["error"] is None, (keys, info["error"])
    assert [p.text for p in writer_env.doc_state().paragraphs] == ["a-b*c.\\|[x\xady"]


def test_a_table_inserted_into_a_table_cell_is_observed(writer_env, tmp_path):
    # An agent that inserts a table with the cursor in a cell nests it there; every later observation of that
    # episode used to fail in the office (the nested table read as a paragraph).
    docx = pytest.importorskip("docx")
    path = tmp_path / "table.docx"
    d = docx.Document()
    d.add_paragraph("Prices")
    table = d.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Outer cell", "Next cell"
    d.save(path)
    writer_env.reset(options={"doc": str(path)})
    writer_env.step({"function": "select_text", "args": {"text": "Outer cell"}})
    obs, _, _, _, info = writer_env.step({"function": "insert_table", "args": {"rows": 2, "columns": 2}})
    assert info["error"] is None, info["error"]
    cells = [p for p in Observation.model_validate(obs).canvas if p.table]
    assert [p.text for p in cells].count("") == 4 and {"Next cell", "Prices"} & {p.text for p in cells} == {"Next cell"}
    assert {p.table for p in cells} == {"T1 A1", "T1 B1"}  # the nested table's cells under the outer cell


def test_corrupt_document_gives_clear_error(writer_env, tmp_path):
    bad = tmp_path / "broken.docx"
    bad.write_bytes(b"PK\x03\x04 this is not a real zip")
    with pytest.raises((ValueError, FileNotFoundError)) as exc:
        writer_env.reset(options={"doc": str(bad)})
    assert "broken.docx" in str(exc.value)
    obs, _ = writer_env.reset()  # the env is still usable
    assert Observation.model_validate(obs).window == "main"


def test_killed_office_is_an_env_error_and_next_reset_recovers(writer_env):
    writer_env.reset()
    os.killpg(writer_env.office.proc.pid, signal.SIGKILL)
    obs, reward, terminated, truncated, info = writer_env.step({"function": "keyboard_input", "args": {"keys": "x"}})
    assert info["env_error"] and terminated and "environment error" in info["error"]
    obs, info = writer_env.reset()
    assert Observation.model_validate(obs).window == "main"
    writer_env.step({"function": "keyboard_input", "args": {"keys": "alive"}})
    assert writer_env.doc_state().paragraphs[0].text == "alive"


def test_closing_a_hung_office_never_raises_and_kills_it():
    # A stopped soffice answers nothing, so terminate() hangs as it does when the office hangs: close() must give up
    # on it after its timeout, kill the office and remove its profile, and raise nothing (it runs in cleanup paths).
    office = Office()
    profile = office.profile
    os.killpg(office.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        office.close()
        assert office.proc.poll() is not None
        assert time.monotonic() - started < 30
        assert not profile.exists()
    finally:
        if office.proc.poll() is None:  # close() failed: the stopped office must not outlive the test
            os.killpg(office.proc.pid, signal.SIGKILL)
