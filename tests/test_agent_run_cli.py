"""`lamforge run` on a user's own .docx, in live Writer, with an OpenAI-compatible endpoint the test serves."""

import json
import os
import subprocess
import sys

import pytest

from llm_server import llm_server  # noqa: F401  (pytest fixture)

from lamforge.prompt import parse_controls

pytestmark = pytest.mark.office


def _bold_reply(body):
    """A scripted 'model': select the phrase, then press the Bold control it finds in the prompt, then finish."""
    prompt = body["messages"][-1]["content"]
    if "Previous actions: none" in prompt:
        return json.dumps({"function": "select_text", "args": {"text": "net profit"}})
    label = next(c.label for c in parse_controls(prompt) if c.name == "Bold")
    return json.dumps({"control_label": label, "control_name": "Bold", "function": "click_input", "args": {},
                       "status": "FINISH"})


def test_run_edits_a_users_docx_and_saves_it(tmp_path, llm_server):  # noqa: F811
    import docx

    src = tmp_path / "mine.docx"
    d = docx.Document()
    d.add_paragraph("This year net profit rose by ten percent.")
    d.save(src)
    server = llm_server([_bold_reply])
    out = tmp_path / "result" / "mine-bold.docx"
    cmd = [sys.executable, "-m", "lamforge.cli", "run", "Bold 'net profit'", "--doc", str(src), "--out", str(out),
           "--endpoint", server.url, "--endpoint-model", "scripted", "--json", "--screenshots", str(tmp_path / "shots")]
    done = subprocess.run(cmd, env=dict(os.environ, DISPLAY=""), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trajectory = json.loads(done.stdout)
    assert trajectory["outcome"] == "finish" and len(trajectory["steps"]) == 2
    runs = [r for p in docx.Document(str(out)).paragraphs for r in p.runs]
    assert any(r.text == "net profit" and r.bold for r in runs)
    assert not any(r.bold for r in runs if "net profit" not in r.text)
    assert len(list((tmp_path / "shots").glob("*.png"))) == 2
    assert "select_text" in done.stderr and "Bold" in done.stderr  # steps are printed as they happen
    assert "the office runs sandboxed" in " ".join(done.stderr.split())  # bubblewrap, as `make setup` installs it


def test_run_saves_nothing_when_the_model_gives_up(tmp_path, llm_server):  # noqa: F811
    server = llm_server(['{"function": "summary", "args": {"text": "cannot"}, "status": "FAIL"}'])
    out = tmp_path / "out.odt"
    cmd = [sys.executable, "-m", "lamforge.cli", "run", "Do something impossible", "--out", str(out),
           "--endpoint", server.url, "--endpoint-model", "scripted", "--no-sandbox"]
    done = subprocess.run(cmd, env=dict(os.environ, DISPLAY=""), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "fail" in done.stderr and "not saved" in done.stderr
    assert "sandbox" not in done.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_in_place_keeps_a_backup_and_save_on_fail_saves(tmp_path, llm_server, monkeypatch):  # noqa: F811
    """The 2e45b07 loss, replayed: the model empties the document and gives up. With --in-place --save-on-fail the
    emptied result is written (atomically) over the input, and the original is kept beside it. (In-process, to
    spare a second interpreter start; the office is real.)"""
    import docx
    from typer.testing import CliRunner

    from lamforge.cli import app

    src = tmp_path / "mine.docx"
    d = docx.Document()
    d.add_paragraph("Keep this sentence.")
    d.save(src)
    original = src.read_bytes()
    server = llm_server([json.dumps({"function": "keyboard_input", "args": {"keys": "{Ctrl+A}{Delete}"}}),
                         json.dumps({"function": "summary", "args": {"text": "gave up"}, "status": "FAIL"})])
    monkeypatch.delenv("DISPLAY", raising=False)
    result = CliRunner().invoke(app, ["run", "Rewrite it", "--doc", str(src), "--in-place", "--save-on-fail",
                                      "--endpoint", server.url, "--endpoint-model", "scripted"],
                                env={"COLUMNS": "400"})
    said = " ".join(result.output.split())
    assert result.exit_code == 1, said[-3000:]
    backup = tmp_path / "mine.backup.docx"
    assert backup.read_bytes() == original and f"kept the original as {backup}" in said
    assert [p.text for p in docx.Document(str(src)).paragraphs] == [""]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.backup.docx", "mine.docx"]  # no temporary left


def test_the_agent_writes_only_into_its_staging_folder_and_run_copies_new_files_out(tmp_path, llm_server,
                                                                                     monkeypatch):  # noqa: F811
    """The agent's own saves land in a private staging folder, whatever path it names; afterwards the command
    copies them next to the result under free names. A save aimed at the user's document is refused (it is outside
    that folder) and the document is untouched."""
    import docx
    from typer.testing import CliRunner

    from lamforge.cli import app

    src = tmp_path / "mine.docx"
    d = docx.Document()
    d.add_paragraph("Keep this sentence.")
    d.save(src)
    original = src.read_bytes()
    (tmp_path / "summary.pdf").write_bytes(b"the user's own pdf")
    server = llm_server([json.dumps({"function": "save_as", "args": {"path": "summary.pdf"}}),
                         json.dumps({"function": "save_as", "args": {"path": str(src)}}),
                         json.dumps({"function": "save_as", "args": {"path": str(tmp_path / "new.odt")}}),
                         json.dumps({"function": "summary", "args": {"text": "done"}, "status": "FINISH"})])
    monkeypatch.delenv("DISPLAY", raising=False)
    result = CliRunner().invoke(app, ["run", "Save a PDF copy", "--doc", str(src), "--out", str(tmp_path / "r.docx"),
                                      "--endpoint", server.url, "--endpoint-model", "scripted"],
                                env={"COLUMNS": "400"})
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said[-3000:]
    assert src.read_bytes() == original and (tmp_path / "summary.pdf").read_bytes() == b"the user's own pdf"
    assert (tmp_path / "summary-2.pdf").read_bytes().startswith(b"%PDF") and "summary-2.pdf" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.docx", "r.docx", "summary-2.pdf", "summary.pdf"]
    assert said.count("outside the output folder") >= 2  # both saves aimed at the user's folder were refused


def test_a_file_that_appears_during_the_run_is_not_replaced_and_backups_keep_their_names(tmp_path, llm_server,
                                                                                          monkeypatch):  # noqa: F811
    """Checked again at the end: an output that appeared while the agent worked (no --overwrite) stays, and the
    result takes r-2.docx. With --overwrite, the old output is backed up before the agent's files are copied out,
    so a file the agent saved as r.backup.docx never takes the backup's name."""
    import docx
    from typer.testing import CliRunner

    from lamforge.cli import app

    src = tmp_path / "mine.docx"
    d = docx.Document()
    d.add_paragraph("Keep this sentence.")
    d.save(src)
    out = tmp_path / "r.docx"

    def appear(body):
        out.write_bytes(b"the user's file, saved meanwhile")
        return json.dumps({"function": "summary", "args": {"text": "done"}, "status": "FINISH"})

    monkeypatch.delenv("DISPLAY", raising=False)
    run = ["run", "Do it", "--doc", str(src), "--out", str(out), "--endpoint", "", "--endpoint-model", "scripted"]
    run[run.index("--endpoint") + 1] = llm_server([appear]).url
    result = CliRunner().invoke(app, run, env={"COLUMNS": "400"})
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "appeared during the run" in said, said[-2000:]
    assert out.read_bytes() == b"the user's file, saved meanwhile" and (tmp_path / "r-2.docx").exists()

    server = llm_server([json.dumps({"function": "save_as", "args": {"path": "r.backup.docx"}}),
                         json.dumps({"function": "summary", "args": {"text": "done"}, "status": "FINISH"})])
    run[run.index("--endpoint") + 1] = server.url
    result = CliRunner().invoke(app, [*run, "--overwrite"], env={"COLUMNS": "400"})
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said[-2000:]
    assert (tmp_path / "r.backup.docx").read_bytes() == b"the user's file, saved meanwhile"
    assert (tmp_path / "r.backup-2.docx").read_bytes()[:2] == b"PK"  # the agent's copy, under a free name


def test_screenshots_never_write_through_a_link_planted_in_their_folder(tmp_path, llm_server,
                                                                        monkeypatch):  # noqa: F811
    from typer.testing import CliRunner

    from lamforge.cli import app

    shots, victim = tmp_path / "shots", tmp_path / "thesis.docx"
    victim.write_bytes(b"the user's thesis")

    def plant(body):
        (shots / "step-02.png").symlink_to(victim)  # another user of the folder, while the agent works
        return json.dumps({"function": "keyboard_input", "args": {"keys": "a"}})

    server = llm_server([plant, json.dumps({"function": "summary", "args": {"text": "done"}, "status": "FINISH"})])
    monkeypatch.delenv("DISPLAY", raising=False)
    result = CliRunner().invoke(app, ["run", "Type a", "--out", str(tmp_path / "r.odt"), "--screenshots", str(shots),
                                      "--endpoint", server.url, "--endpoint-model", "scripted"],
                                env={"COLUMNS": "400"})
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said[-2000:]
    assert victim.read_bytes() == b"the user's thesis" and "not saving the screenshot of step 2" in said
    assert (shots / "step-01.png").read_bytes()[:4] == b"\x89PNG"
