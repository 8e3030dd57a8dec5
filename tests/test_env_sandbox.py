"""The office sandbox (env/sandbox.py): the office can write only into the folders it is given, whatever it is told.

The live tests run the office under bubblewrap and tell it, through the environment and with no guard in between,
to write into a user's folder: by a direct save, and by the route a review found the guard missed (Insert >
Hyperlink's New Document page). The same route in an office without the sandbox is the control: it does plant the
file, so the sandbox is what stops it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from lamforge.env.office import sandbox_problem
from lamforge.env.sandbox import probe, sandboxed
from lamforge.schema import Action, Observation

TEXTS = ["Quarterly report", "Sales grew by ten percent in the north."]


def test_everything_read_only_but_the_named_folders(tmp_path):
    argv = sandboxed(["soffice.bin", "--accept=pipe"], "/usr/bin/bwrap", tmp_path / "root", [tmp_path / "out"])
    assert argv[:4] == ["/usr/bin/bwrap", "--ro-bind", "/", "/"]
    assert {"--unshare-net", "--unshare-pid", "--die-with-parent"} <= set(argv)
    binds = [argv[i + 1:i + 3] for i, arg in enumerate(argv) if arg == "--bind"]
    # The private /tmp first, then the writable folders over it (a later mount covers an earlier one).
    assert binds == [[str(tmp_path / "root"), "/tmp"], [str((tmp_path / "out").resolve())] * 2]
    assert argv[argv.index("--") + 1:] == ["soffice.bin", "--accept=pipe"]
    # An X server over TCP (ssh -X) needs the network; a local one does not.
    assert "--unshare-net" not in sandboxed(["x"], "bwrap", tmp_path, [], display="localhost:10.0")


def test_probe_says_what_is_missing():
    assert "apt-get install bubblewrap" in probe(None)
    assert "could not start a sandbox" in probe("/bin/false")


@pytest.fixture
def user_folder():
    """A user's folder outside /tmp (the sandbox's /tmp is private anyway), so that the test shows the read-only
    mount refusing the write, not a write that lands in the private /tmp."""
    folder = Path(tempfile.mkdtemp(prefix="lamforge-test-user-", dir="/var/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def document(user_folder) -> Path:
    import docx

    path = user_folder / "report.docx"
    d = docx.Document()
    for text in TEXTS:
        d.add_paragraph(text)
    d.save(path)
    return path


@pytest.fixture
def sandboxed_env(tmp_path):
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap (bwrap) is not installed (Debian package bubblewrap); run `make setup`",
                    pytrace=False)
    if problem := sandbox_problem():
        pytest.skip(f"this kernel or container refuses the sandbox: {problem}")
    from lamforge.env import WriterEnv

    out = tmp_path / "out"
    out.mkdir()
    env = WriterEnv(max_steps=20, writable=[out])
    yield env, out
    env.close()


def hyperlink_new_document(env, target: Path) -> None:
    """Insert > Hyperlink, its New Document page, File: set to `target`, Apply: the office makes that file."""
    def control(name: str):
        obs = Observation.model_validate(env.observe())
        return next(c for c in obs.controls if c.name == name)

    steps = [Action(function="keyboard_input", args={"keys": "{Ctrl+K}"}), lambda: Action(
        function="click_input", control_label=control("New Document").label, control_name="New Document"),
        lambda: Action(function="set_edit_text", control_label=control("File:").label, control_name="File:",
                       args={"text": str(target)}),
        lambda: Action(function="click_input", control_label=control("Apply").label, control_name="Apply")]
    for step in steps:
        _, _, _, _, info = env.step(step() if callable(step) else step)
        assert not info["env_error"], info


@pytest.mark.office
def test_sandboxed_office_cannot_write_into_a_users_folder(sandboxed_env, document, user_folder, tmp_path):
    env, out = sandboxed_env
    before = document.read_bytes()
    env.reset(options={"doc": str(document), "out_dir": str(out)})
    assert env.save_as(out / "result.odt").stat().st_size > 0  # its own folder works

    with pytest.raises(OSError, match="could not save"):
        env.save_as(document)  # over the user's file
    with pytest.raises(OSError, match="could not save"):
        env.save_as(user_folder / "new.odt")  # beside it
    env.save_as(tmp_path / "in-tmp.odt")  # the office's /tmp is its own: the write lands there, not in the user's
    hyperlink_new_document(env, user_folder / "planted.odt")

    assert document.read_bytes() == before
    assert sorted(p.name for p in user_folder.iterdir()) == ["report.docx"]
    assert not (tmp_path / "in-tmp.odt").exists()
    assert [p.name for p in out.iterdir()] == ["result.odt"]
    assert env.office.alive()

    # A crashed office starts again in its sandbox, and closing leaves nothing behind.
    env.office.kill()
    env.reset(options={"doc": str(document), "out_dir": str(out)})
    with pytest.raises(OSError, match="could not save"):
        env.save_as(user_folder / "new.odt")
    root, pipe = env.office.profile.parent, Path(f"/tmp/OSL_PIPE_{os.getuid()}_{env.office.pipe}")
    assert pipe.is_symlink()
    env.close()
    assert not root.exists() and not pipe.is_symlink()


@pytest.mark.office
def test_control_the_hyperlink_route_plants_a_file_without_the_sandbox(writer_env, document, user_folder, tmp_path):
    writer_env.reset(options={"doc": str(document), "out_dir": str(tmp_path)})
    hyperlink_new_document(writer_env, user_folder / "planted.odt")
    assert (user_folder / "planted.odt").exists()
    writer_env.office.call("close_popups")
