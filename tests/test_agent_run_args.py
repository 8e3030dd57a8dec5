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

from lamforge.agent import run_command, user_files
from lamforge.agent.run_command import newest_trained_lam, run

app = typer.Typer()
app.command()(run)
RUN_CHECKED = run_command._run_checked  # the real one, before the fixture below replaces it


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
    (["Do it", "--out", "{tmp}/" + "r" * 260 + ".docx"], "the name is too long for this file system"),
    (["Do it", "--out", "{tmp}"], "is a folder"),
    (["Do it", "--out", "{tmp}/notes.txt/r.docx"], "cannot write in"),
    (["Do it", "--in-place"], "needs --doc"),
    (["Do it", "--doc", "{doc}", "--in-place", "--out", "{tmp}/other.docx"], "leave --out out"),
    (["Do it", "--out", "{tmp}/r.docx", "--model", "tiny", "--endpoint", "http://127.0.0.1:1/v1"], "not both"),
    (["Do it", "--out", "{tmp}/r.docx", "--endpoint", "127.0.0.1:8000"], "not an http(s) URL"),
    (["Do it", "--out", "{tmp}/r.docx", "--model", "./no/such/model"], "not a model folder"),
    (["Do it", "--out", "{tmp}/r.docx", "--model", "tiny", "--screenshots", "{tmp}/notes.txt"], "screenshots"),
    (["Do it", "--out", "{tmp}/r.docx", "--model", "tiny", "--dtype", "int8"], "unknown dtype 'int8'"),
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


def test_an_existing_output_is_replaced_only_with_overwrite(document, tmp_path, monkeypatch):
    taken = tmp_path / "report.docx"
    taken.write_bytes(document.read_bytes())
    code, said, _ = invoke("Do it", "--doc", str(document), "--out", str(taken), "--model", "tiny")
    assert code == 2 and f"{taken} exists" in said and "--overwrite" in said and "report.backup.docx" in said
    chosen = {}
    monkeypatch.setattr(run_command, "_run_checked", lambda *a: chosen.setdefault("out", a[2]))
    code, said, _ = invoke("Do it", "--doc", str(document), "--out", str(taken), "--overwrite", "--model", "tiny")
    assert code == 0 and chosen["out"] == taken.resolve()


def test_a_name_too_long_for_its_backup_is_refused_before_the_run(tmp_path):
    import docx

    long_doc = tmp_path / ("n" * 245 + ".docx")  # fits; NAME.backup.docx does not
    docx.Document().save(long_doc)
    code, said, _ = invoke("Do it", "--doc", str(long_doc), "--in-place", "--model", "tiny")
    assert code == 2 and "too long to keep the old file beside it" in said


def test_screenshots_never_replace_another_runs(tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "step-01.png").write_bytes(b"an earlier run's picture")
    code, said, _ = invoke("Do it", "--out", str(tmp_path / "r.docx"), "--model", "tiny", "--screenshots", str(shots))
    assert code == 2 and "another run's step-NN.png" in said


class SavingEnv:
    """Stands in for the office's store in these file-handling tests: writes `content` where save_as is told."""

    def __init__(self, content: bytes = b"the result", fail: bool = False):
        self.content, self.fail, self.paths = content, fail, []

    def save_as(self, path):
        self.paths.append(Path(path))
        Path(path).write_bytes(self.content[: len(self.content) // 2] if self.fail else self.content)
        if self.fail:
            raise OSError("No space left on device")
        return Path(path)


def test_save_keeps_the_replaced_files_permissions_and_leaves_nothing_half_written(tmp_path):
    folder, private = tmp_path / "folder", tmp_path / "private"
    folder.mkdir()
    private.mkdir(mode=0o700)
    target = folder / ("r" * 250 + ".docx")  # a temporary name built on it would not fit
    target.write_bytes(b"the user's private draft")
    target.chmod(0o600)
    env = SavingEnv()

    def save(env, replace, mode):
        staged = user_files.stage_result(env, private, target.suffix)
        user_files.install(staged, target, replace=replace, mode=mode, like=target if replace else None)

    save(env, True, 0o600)
    assert target.read_bytes() == b"the result" and target.stat().st_mode & 0o777 == 0o600
    assert env.paths[0].parent == private  # the office writes into the private folder, never the user's
    with pytest.raises(OSError, match="No space left"):
        save(SavingEnv(fail=True), True, 0o600)
    assert target.read_bytes() == b"the result" and [p.name for p in folder.iterdir()] == [target.name]
    with pytest.raises(FileExistsError):  # a new output never replaces a file that is there
        save(SavingEnv(b"other"), False, 0o644)
    assert target.read_bytes() == b"the result" and [p.name for p in folder.iterdir()] == [target.name]


def test_a_write_never_follows_a_symlink_swapped_in_for_its_temporary(tmp_path, monkeypatch):
    """Another user of the output folder replaces the temporary with a symlink to a private file between its
    creation and the mode change: the change goes through the open descriptor, never through the name."""
    folder = tmp_path / "shared"
    folder.mkdir()
    victim = tmp_path / "id_key"
    victim.write_text("secret")
    victim.chmod(0o600)
    source = tmp_path / "result.docx"
    source.write_bytes(b"the result")
    real_copy = user_files.shutil.copyfileobj

    def copy_then_swap(src, dst, length):
        real_copy(src, dst, length)
        (temporary,) = [p for p in folder.iterdir() if p.name.startswith(".lamforge-")]
        temporary.unlink()
        temporary.symlink_to(victim)

    monkeypatch.setattr(user_files.shutil, "copyfileobj", copy_then_swap)
    user_files.install(source, folder / "out.docx", replace=False, mode=0o666)
    assert victim.stat().st_mode & 0o777 == 0o600 and victim.read_text() == "secret"


def test_a_new_output_and_the_agents_files_are_as_private_as_the_document(tmp_path):
    doc = tmp_path / "draft.docx"
    doc.write_bytes(b"private")
    doc.chmod(0o600)
    assert user_files.new_file_mode(doc) == 0o600
    doc.chmod(0o777)  # a document from a mount that marks everything 0777: the umask still applies
    mask = os.umask(0o077)
    try:
        assert user_files.new_file_mode(doc) == 0o600
    finally:
        os.umask(mask)
    doc.chmod(0o600)
    staging, folder = tmp_path / "staging", tmp_path / "out"
    staging.mkdir()
    folder.mkdir()
    (staging / "copy.pdf").write_bytes(b"%PDF")
    ((published_from, published),) = user_files.publish_staged(staging, folder, user_files.new_file_mode(doc))
    assert published.stat().st_mode & 0o777 == 0o600


def test_a_backup_cut_short_never_stands_as_the_backup(document, monkeypatch):
    original = document.read_bytes()
    backup = user_files.keep_backup(document)
    assert backup.name == "mine.backup.docx" and backup.read_bytes() == original
    assert backup.stat().st_mtime_ns == document.stat().st_mtime_ns
    backup.unlink()
    (document.parent / "mine.backup.docx").symlink_to(document.parent / "gone.docx")  # dangling: a name taken too
    assert user_files.keep_backup(document).name == "mine.backup-2.docx"
    (document.parent / "mine.backup-2.docx").unlink()
    (document.parent / "mine.backup.docx").unlink()

    def copy_then_fail(source, destination, length):
        destination.write(source.read()[:10])
        raise OSError("No space left on device")

    monkeypatch.setattr(user_files.shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(OSError):
        user_files.keep_backup(document)
    assert sorted(p.name for p in document.parent.iterdir()) == ["mine.docx"] and document.read_bytes() == original


def test_a_stop_signal_during_the_run_leaves_the_output_as_it_was(document, tmp_path, monkeypatch):
    """`kill` while the agent works: the command says the output is untouched and exits 130, instead of dying with
    its temporary file and the office left behind. (The agent's run is replaced by the signal; no office starts.)"""
    import signal

    from lamforge.agent.loop import Agent

    taken = tmp_path / "report.docx"
    taken.write_bytes(b"the user's older report")
    monkeypatch.setattr(run_command, "_run_checked", RUN_CHECKED)
    monkeypatch.setattr(Agent, "run", lambda self, *a, **k: os.kill(os.getpid(), signal.SIGTERM))
    code, said, _ = invoke("Do it", "--doc", str(document), "--out", str(taken), "--overwrite",
                           "--endpoint", "http://127.0.0.1:9/v1", "--endpoint-model", "m")
    assert code == 130 and f"stopped before the result was saved; {taken} is as it was" in said, said
    assert taken.read_bytes() == b"the user's older report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.docx", "report.docx"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_file_open_in_another_office_is_not_replaced(document, tmp_path):
    (tmp_path / ".~lock.mine.docx#").write_text("Ada Lovelace,ada,laptop,03.12.2026 19:20,file:///home/ada/.config;")
    code, said, _ = invoke("Do it", "--doc", str(document), "--in-place", "--model", "tiny")
    assert code == 2 and "is open in LibreOffice (by ada;" in said and "close it there first" in said
    code, said, _ = invoke("Do it", "--out", str(document), "--overwrite", "--model", "tiny")
    assert code == 2 and "is open in LibreOffice" in said


def test_a_killed_runs_unfinished_save_is_removed_by_the_next_run(document, tmp_path, monkeypatch):
    """`kill -9` mid-save leaves .lamforge-PID-XXXXXXXX.docx beside the output: the next run in that folder removes
    it once its process is gone and it is old; a running save's temporary and the user's own files stay."""
    import subprocess

    gone = subprocess.Popen(["true"])  # a process id that was used and is free again
    gone.wait()
    old = time.time() - 3600
    stale = tmp_path / f".lamforge-{gone.pid}-0123abcd.docx"
    running = tmp_path / f".lamforge-{os.getpid()}-0123abcd.docx"
    fresh = tmp_path / f".lamforge-{gone.pid}-89abcdef.odt"
    users = tmp_path / f".lamforge-{gone.pid}-notours.docx"
    upper = tmp_path / f".lamforge-{gone.pid}-00ff00ff.DOCX"  # --out Report.DOCX keeps its suffix's case
    huge = tmp_path / ".lamforge-99999999999999999999-0123abcd.docx"  # no process id: os.kill would overflow
    for path in (stale, running, fresh, users, upper, huge):
        path.write_bytes(b"half a document")
    for path in (stale, running, users, upper, huge):
        os.utime(path, (old, old))
    monkeypatch.setattr(run_command, "_run_checked", lambda *a, **k: None)
    code, said, _ = invoke("Do it", "--doc", str(document), "--out", str(tmp_path / "result.docx"), "--endpoint",
                           "http://127.0.0.1:9/v1", "--endpoint-model", "m")
    assert code == 0 and f"removed {stale}, the unfinished save of an earlier run that was killed" in said, said
    assert not stale.exists() and not upper.exists()
    assert running.exists() and fresh.exists() and users.exists() and huge.exists()


def test_dtype_reaches_the_local_model(document, tmp_path, monkeypatch):
    from lamforge.agent import factory
    from lamforge.agent.backends import BackendError

    asked = {}

    def make_backend(kind, **kwargs):
        asked.update(kwargs)
        raise BackendError("stopped here by the test")

    monkeypatch.setattr(factory, "make_backend", make_backend)
    monkeypatch.setattr(run_command, "_run_checked", RUN_CHECKED)
    code, said, _ = invoke("Do it", "--doc", str(document), "--out", str(tmp_path / "r.docx"), "--model", "tiny",
                           "--dtype", "float32")
    assert code == 1 and "stopped here by the test" in said and asked == {"model": "tiny", "dtype": "float32"}, said


def test_publish_staged_never_replaces_a_file(tmp_path):
    staging, folder = tmp_path / "staging", tmp_path / "home"
    staging.mkdir()
    folder.mkdir()
    for name, text in (("a.pdf", "new a"), ("b.odt", "new b"), ("r.docx", "the result"), (".~lock.b.odt#", "lock"),
                       (".bash_profile", "a dotfile"), ("x\nname.docx", "a control character"),
                       ("conftest.py", "no document: pytest would run it in the user's folder"), ("Makefile", "no")):
        (staging / name).write_text(text)
    (folder / "a.pdf").write_text("the user's a")
    (folder / "a-2.pdf").write_text("the user's a-2")
    published = user_files.publish_staged(staging, folder, 0o644, skip={"r.docx"})
    assert [(s.name, p.name) for s, p in published] == [("a.pdf", "a-3.pdf"), ("b.odt", "b.odt")]
    assert (folder / "a.pdf").read_text() == "the user's a" and (folder / "a-3.pdf").read_text() == "new a"
    assert sorted(p.name for p in folder.iterdir()) == ["a-2.pdf", "a-3.pdf", "a.pdf", "b.odt"]


def test_a_staged_file_is_copied_only_as_a_plain_file(tmp_path):
    """What the office left in its folder is read only as a plain file under that very name: a symlink (to a file
    the office could not read itself, or /proc/self/environ), a FIFO (whose open would wait for ever) and a folder
    are refused with an OSError at once, and nothing is made beside the target."""
    staging, home, secret = tmp_path / "staging", tmp_path / "home", tmp_path / "secret.txt"
    staging.mkdir()
    home.mkdir()
    secret.write_text("private")
    (staging / "link.pdf").symlink_to(secret)
    (staging / "environ.odt").symlink_to("/proc/self/environ")
    os.mkfifo(staging / "fifo.pdf")
    (staging / "folder.pdf").mkdir()
    for name in ("link.pdf", "environ.odt", "fifo.pdf", "folder.pdf"):
        with pytest.raises(OSError, match="not copied|Is a directory"):
            user_files.install(staging / name, home / name, replace=False, mode=0o644)
    with open(staging / "sparse.pdf", "wb") as sparse:  # costs the office nothing; copied, it would fill the disk
        sparse.truncate(user_files.MAX_COPY_BYTES + 1)
    with pytest.raises(OSError, match="larger than 1 GiB"):
        user_files.install(staging / "sparse.pdf", home / "sparse.pdf", replace=False, mode=0o644)
    assert list(home.iterdir()) == []
    assert user_files.publish_staged(staging, home, 0o644, on_error=lambda *_: None) == []
    assert list(home.iterdir()) == []


def test_publishing_is_bounded_and_tries_no_taken_name(tmp_path, monkeypatch):
    """At most MAX_PUBLISHED_FILES files, and a name taken up to -MAX_NUMBERED_NAMES is given up without copying
    (install copies before it links: each taken name tried used to cost a whole copy)."""
    staging, home = tmp_path / "staging", tmp_path / "home"
    staging.mkdir()
    home.mkdir()
    for i in range(user_files.MAX_PUBLISHED_FILES + 3):
        (staging / f"z-page-{i:02d}.pdf").write_bytes(b"%PDF")  # after report.docx
    (staging / "report.docx").write_bytes(b"the agent's")
    (home / "report.docx").write_bytes(b"the user's")
    for n in range(2, user_files.MAX_NUMBERED_NAMES + 1):
        (home / f"report-{n}.docx").write_bytes(b"taken")
    copies, errors = [], []
    real_install = user_files.install
    monkeypatch.setattr(user_files, "install", lambda src, *a, **k: copies.append(src.name) or real_install(src, *a, **k))
    published = user_files.publish_staged(staging, home, 0o644, on_error=lambda f, exc: errors.append((f.name, exc)))
    assert len(published) == user_files.MAX_PUBLISHED_FILES and "report.docx" not in copies
    assert ("report.docx", "no free name") in [(name, str(exc).split(" up to")[0].split("] ")[-1]) for name, exc in errors]
    assert sum("more than" in str(exc) for _, exc in errors) == 3
    assert (home / "report.docx").read_bytes() == b"the user's"


def test_names_the_office_chose_are_printed_as_they_are():
    from lamforge.agent.run_command import shown

    assert shown("[bold]x[/bold].pdf") == "\\[bold]x\\[/bold].pdf"  # markup escaped, not applied
    assert shown("a\x1bc.pdf") == "'a\\x1bc.pdf'"  # no escape sequence reaches the terminal


def test_odd_outputs_and_locks_get_a_message_not_a_traceback(document, tmp_path):
    (tmp_path / "loop1.docx").symlink_to(tmp_path / "loop2.docx")
    (tmp_path / "loop2.docx").symlink_to(tmp_path / "loop1.docx")
    code, said, _ = invoke("Do it", "--doc", str(document), "--out", str(tmp_path / "loop1.docx"), "--model", "tiny")
    assert code == 2 and "cannot be resolved" in said
    code, said, _ = invoke("Do it", "--out", str(tmp_path / ".lamforge-4242-0123abcd.docx"), "--model", "tiny")
    assert code == 2 and "lamforge gives its temporary files" in said  # a later run would remove it
    (tmp_path / ".~lock.mine.docx#").mkdir()  # a lock the check cannot read still says the file is open
    code, said, _ = invoke("Do it", "--doc", str(document), "--in-place", "--model", "tiny")
    assert code == 2 and "is open in LibreOffice (by ?" in said


def test_the_output_is_checked_again_when_the_run_ends(tmp_path):
    out = tmp_path / "r.docx"
    assert run_command.final_target(out, may_replace=False) == (out, None)
    out.write_bytes(b"appeared during the run")
    target, why = run_command.final_target(out, may_replace=False)
    assert target == tmp_path / "r-2.docx" and "appeared during the run" in why
    assert run_command.final_target(out, may_replace=True) == (out, None)  # --overwrite, --in-place
    (tmp_path / ".~lock.r.docx#").write_text("Ada,ada,laptop,05.12.2026 22:40,file:///home/ada;")
    target, why = run_command.final_target(out, may_replace=True)
    assert target == tmp_path / "r-2.docx" and "open in LibreOffice now (by ada" in why


def test_a_replaced_file_keeps_its_extended_attributes(tmp_path):
    target, source = tmp_path / "r.docx", tmp_path / "new.docx"
    target.write_bytes(b"old")
    source.write_bytes(b"new")
    try:
        os.setxattr(target, "user.lamforge_test", b"kept")
    except OSError:
        pytest.skip("this file system keeps no user extended attributes")
    user_files.install(source, target, replace=True, mode=0o640, like=target)
    assert target.read_bytes() == b"new" and os.getxattr(target, "user.lamforge_test") == b"kept"
    assert target.stat().st_mode & 0o777 == 0o640


def test_a_lock_that_is_no_file_is_never_read_and_counts_as_held(tmp_path):
    doc = tmp_path / "mine.docx"
    doc.write_bytes(b"x")
    os.mkfifo(tmp_path / ".~lock.mine.docx#")  # reading a FIFO would wait for a writer forever
    assert run_command.open_elsewhere(doc).startswith("by ?")


def test_an_output_that_became_a_link_during_the_run_is_not_followed(tmp_path):
    out, elsewhere = tmp_path / "r.docx", tmp_path / "private.docx"
    elsewhere.write_bytes(b"another file")
    out.symlink_to(elsewhere)
    target, why = run_command.final_target(out, may_replace=True)
    assert target == tmp_path / "r-2.docx" and "symbolic link" in why


def test_a_document_named_like_a_temporary_is_refused(tmp_path):
    doc = tmp_path / ".lamforge-4242-0123abcd.docx"
    import docx

    docx.Document().save(doc)
    code, said, _ = invoke("Do it", "--doc", str(doc), "--out", str(tmp_path / "r.docx"), "--model", "tiny")
    assert code == 2 and "rename it first" in said and doc.exists()
