"""`lamforge run` checks every argument before it loads a model or starts the office, and never takes its input
as its output. These run the command in-process (Typer's runner): each answer comes in well under a second."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lamforge.agent import run_command
from lamforge.agent.run_command import newest_trained_lam, run

app = typer.Typer()
app.command()(run)


def invoke(*args: str):
    """(exit code, what it printed as one line: Typer's error box unwrapped), seconds."""
    start = time.perf_counter()
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    said = " ".join(result.output.replace("│", " ").split())
    return result.exit_code, said, time.perf_counter() - start


@pytest.fixture
def document(tmp_path) -> Path:
    import docx

    path = tmp_path / "mine.docx"
    d = docx.Document()
    d.add_paragraph("The user's only copy.")
    d.save(path)
    return path


@pytest.fixture(autouse=True)
def no_model_may_load(monkeypatch):
    """Arguments are checked first: a test here that got as far as loading a model or starting the office fails."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model or the office was started before the arguments were checked")

    monkeypatch.setattr(run_command, "_run_checked", refuse)


def test_input_is_never_the_output(document, tmp_path):
    original = document.read_bytes()
    link = tmp_path / "link.docx"
    os.symlink(document, link)
    for out in (document, link, tmp_path / "." / "mine.docx"):
        code, said, _ = invoke("Rewrite it", "--doc", str(document), "--out", str(out), "--model", "tiny")
        assert code == 2 and "is the input document" in said and "--in-place" in said
    assert document.read_bytes() == original


@pytest.mark.parametrize("args, message", [
    (["   ", "--out", "{tmp}/r.docx"], "the instruction is empty"),
    (["Do it", "--out", "{tmp}/r.docx", "--max-steps", "0"], "max-steps"),
    (["Do it", "--out", "{tmp}/r.docx", "--max-steps", "-5"], "max-steps"),
    (["Do it", "--doc", "{tmp}/missing.docx", "--out", "{tmp}/r.docx"], "does not exist"),
    (["Do it", "--doc", "{tmp}", "--out", "{tmp}/r.docx"], "is not a file"),
    (["Do it", "--doc", "{tmp}/notes.txt", "--out", "{tmp}/r.docx"], "edits .docx and .odt"),
    (["Do it", "--doc", "{tmp}/broken.docx", "--out", "{tmp}/r.docx"], "not well-formed XML"),
    (["Do it"], "give --out"),
    (["Do it", "--out", "{tmp}/r.txt"], "must end in .docx, .odt, .pdf"),
    (["Do it", "--out", "{tmp}"], "is a folder"),
    (["Do it", "--out", "{tmp}/notes.txt/r.docx"], "cannot write in"),
    (["Do it", "--in-place"], "needs --doc"),
    (["Do it", "--doc", "{doc}", "--in-place", "--out", "{tmp}/other.docx"], "leave --out out"),
    (["Do it", "--out", "{tmp}/r.docx", "--model", "tiny", "--endpoint", "http://127.0.0.1:1/v1"], "not both"),
    (["Do it", "--out", "{tmp}/r.docx", "--endpoint", "127.0.0.1:8000"], "not an http(s) URL"),
    (["Do it", "--out", "{tmp}/r.docx", "--model", "./no/such/model"], "not a model folder"),
    (["Do it", "--out", "{tmp}/r.docx", "--model", "tiny", "--screenshots", "{tmp}/notes.txt"], "screenshots"),
])
def test_bad_arguments_are_refused_clearly_and_at_once(args, message, document, tmp_path):
    (tmp_path / "notes.txt").write_text("not a document")
    (tmp_path / "broken.docx").write_bytes(document.read_bytes())
    import zipfile

    with zipfile.ZipFile(document) as zin, zipfile.ZipFile(tmp_path / "broken.docx", "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, b"<w:document><w:body>" if item.filename == "word/document.xml" else zin.read(item))
    args = [a.replace("{tmp}", str(tmp_path)).replace("{doc}", str(document)) for a in args]
    code, said, seconds = invoke(*args)
    assert code == 2 and message in said and "Traceback" not in said, said
    assert seconds < 2


def finished_lam(root: Path, run_name: str, mtime: float, finished: bool = True) -> Path:
    folder = root / run_name / "models" / "lam4"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"finished": finished}))
    os.utime(folder / "metrics.json", (mtime, mtime))
    return folder


def test_without_a_model_run_uses_the_newest_finished_lam4(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert newest_trained_lam() is None
    code, said, _ = invoke("Do it", "--out", str(tmp_path / "r.docx"))
    assert code == 2 and "make demo" in said and "no trained model" in said
    finished_lam(tmp_path / "out", "quick", mtime=1_000)
    newest = finished_lam(tmp_path / "out", "tiny", mtime=2_000)
    finished_lam(tmp_path / "out", "half", mtime=3_000, finished=False)  # still training
    assert newest_trained_lam() == Path("out/tiny/models/lam4")
    chosen = {}
    monkeypatch.setattr(run_command, "_run_checked", lambda *a: chosen.setdefault("model", a[5]))
    code, said, _ = invoke("Do it", "--out", str(tmp_path / "r.docx"))
    assert code == 0 and Path(chosen["model"]).resolve() == newest.resolve()
    assert "using the newest trained LAM: out/tiny/models/lam4" in said
