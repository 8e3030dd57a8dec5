"""The office sandbox (env/sandbox.py): the office can write only into the folders it is given, whatever it is told.

The live tests run the office under bubblewrap and tell it, through the environment and with no guard in between,
to write into a user's folder: by a direct save, and by the route a review found the guard missed (Insert >
Hyperlink's New Document page). The same route in an office without the sandbox is the control: it does plant the
file, so the sandbox is what stops it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from lamforge.env.office import OfficeError, OfficeScriptError, sandbox_problem
from lamforge.env.sandbox import SandboxError, keyring_filter, probe, sandboxed
from lamforge.schema import Action, Observation

TEXTS = ["Quarterly report", "Sales grew by ten percent in the north."]


def test_only_the_system_folders_and_the_named_ones(tmp_path):
    argv = sandboxed(["soffice.bin", "--accept=pipe"], "/usr/bin/bwrap", tmp_path / "root", [tmp_path / "out"], ":3",
                     program_folder=tmp_path / "libreoffice")
    assert argv[0] == "/usr/bin/bwrap" and "/" not in [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    assert {"--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session"} <= set(argv)
    assert argv[argv.index("--cap-drop") + 1] == "ALL"  # also as root
    binds = [argv[i + 1:i + 3] for i, arg in enumerate(argv) if arg == "--bind"]
    # The private /tmp first, then the writable folders over it (a later mount covers an earlier one).
    assert binds == [[str(tmp_path / "root"), "/tmp"], [str((tmp_path / "out").resolve())] * 2]
    read_only = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    assert "/usr" in read_only and str(tmp_path / "libreoffice") in read_only  # an office outside /usr and /opt
    assert [p for p in read_only if p.startswith("/tmp/.X11-unix")] in ([], ["/tmp/.X11-unix/X3"])  # that one only
    assert argv[argv.index("--") + 1:] == ["soffice.bin", "--accept=pipe"]
    with pytest.raises(SandboxError, match="local X display"):  # ssh -X: the user's desktop, over the network
        sandboxed(["x"], "bwrap", tmp_path, [], "localhost:10.0")


def test_inside_no_capabilities_home_run_other_displays_or_writes(tmp_path):
    """The sandbox itself, with a shell in place of the office (run as root here, which bwrap would otherwise leave
    with every capability)."""
    require_sandbox()
    (tmp_path / "root").mkdir()
    (tmp_path / "out").mkdir()
    script = ("grep CapEff /proc/self/status; ls /tmp/.X11-unix 2>/dev/null | tr '\\n' ' '; echo; "
              "for p in \"$0\" /run /var; do ls -d \"$p\" >/dev/null 2>&1 && echo seen $p; done; "
              "touch /usr/x /x 2>/dev/null && echo wrote a system folder; "
              # the same value written back: a sysctl left writable is found without changing the machine's
              "v=$(cat /proc/sys/fs/lease-break-time); (echo $v > /proc/sys/fs/lease-break-time) 2>/dev/null "
              "&& echo wrote a sysctl; test -w /proc/sysrq-trigger && echo sysrq writable; "
              "touch \"$1/made\" && echo wrote out")
    done = subprocess.run(sandboxed(["/bin/sh", "-c", script, str(Path.home()), str(tmp_path / "out")],
                                    shutil.which("bwrap"), tmp_path / "root", [tmp_path / "out"], ":7"),
                          capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0].split() == ["CapEff:", "0000000000000000"]
    assert lines[1].strip() in ("", "X7")  # no other X server's socket (X7 exists only where that display runs)
    # No home folder, no /run or /var, no write outside `out`: not in /usr, the root, a sysctl or the SysRq trigger.
    assert lines[2:] == ["wrote out"], lines
    assert (tmp_path / "out" / "made").exists()


# The keyring calls by number (x86_64), as the office would make them: argv[1] "read" only asks for the user's
# keyring; "all" also adds a key named argv[2] to it and requests one. errno 1 is EPERM, the filter's answer.
KEYRING_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
KEY_SPEC_USER_KEYRING, KEYCTL_GET_KEYRING_ID = -4, 0
name = sys.argv[2].encode()
calls = [("keyctl", lambda: libc.syscall(250, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0))]
if sys.argv[1] == "all":
    calls += [("add_key", lambda: libc.syscall(248, b"user", name, b"x", 1, KEY_SPEC_USER_KEYRING)),
              ("request_key", lambda: libc.syscall(249, b"user", name, None, 0))]
said = []
for call_name, call in calls:
    result = call()
    said.append(f"{call_name} {'-1 ' + str(ctypes.get_errno()) if result < 0 else 'ok'}")
print(";".join(said))
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the probe calls the keyring by its x86_64 numbers")
def test_inside_no_kernel_keyring(tmp_path):
    """The user's keyring (kerberos tickets, disk keys) is not a namespace; the sandbox's seccomp program refuses the
    keyring calls. The control: outside, the same process reaches the user's keyring."""
    require_sandbox()
    (tmp_path / "root").mkdir()
    name = f"lamforge-probe-{os.getpid()}-{time.time_ns()}"
    outside = subprocess.run(["/usr/bin/python3", "-I", "-c", KEYRING_PROBE, "read", name], capture_output=True,
                             text=True, timeout=60)
    assert outside.returncode == 0, outside.stderr
    assert outside.stdout.strip() == "keyctl ok"
    with keyring_filter() as seccomp_fd:
        inside = subprocess.run(sandboxed(["/usr/bin/python3", "-I", "-c", KEYRING_PROBE, "all", name],
                                          shutil.which("bwrap"), tmp_path / "root", [], ":7", seccomp_fd=seccomp_fd),
                                capture_output=True, text=True, timeout=60, pass_fds=(seccomp_fd,))
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.strip() == "keyctl -1 1;add_key -1 1;request_key -1 1"
    assert name not in Path("/proc/keys").read_text()


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


def require_sandbox() -> None:
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap (bwrap) is not installed (Debian package bubblewrap); run `make setup`",
                    pytrace=False)
    if problem := sandbox_problem():
        pytest.skip(f"this kernel or container refuses the sandbox: {problem}")


@pytest.fixture
def sandboxed_env(tmp_path, monkeypatch):
    require_sandbox()
    from lamforge.env import WriterEnv

    out = tmp_path / "out"
    out.mkdir()
    # A desktop's display (here one that does not exist): a sandboxed office runs on an X server of its own instead.
    monkeypatch.setenv("DISPLAY", ":4242")
    env = WriterEnv(max_steps=20, writable=[out])
    yield env, out
    env.close()


def hyperlink_new_document(env, target: Path) -> None:
    """Insert > Hyperlink, its New Document page, File: set to `target`, Apply: the office makes that file."""
    def control(name: str):
        # The dialog and its pages come up a moment after the key or click (longer on a just-started office).
        deadline = time.monotonic() + 10
        while True:
            found = [c for c in Observation.model_validate(env.observe()).controls if c.name == name and c.enabled]
            if found or time.monotonic() > deadline:
                return found[0] if found else pytest.fail(f"no control {name!r} came up")
            time.sleep(0.2)

    steps = [Action(function="keyboard_input", args={"keys": "{Ctrl+K}"}), lambda: Action(
        function="click_input", control_label=control("New Document").label, control_name="New Document"),
        lambda: Action(function="set_edit_text", control_label=control("File:").label, control_name="File:",
                       args={"text": str(target)}),
        lambda: Action(function="click_input", control_label=control("Apply").label, control_name="Apply")]
    for step in steps:
        _, _, _, _, info = env.step(step() if callable(step) else step)
        assert not info["env_error"] and not info["error"], info


def appears(path: Path, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.exists()


@pytest.mark.office
def test_sandboxed_office_cannot_write_into_a_users_folder(sandboxed_env, document, user_folder, tmp_path,
                                                            monkeypatch):
    env, out = sandboxed_env
    before = document.read_bytes()
    env.reset(options={"doc": str(document), "out_dir": str(out)})
    assert env.save_as(out / "result.odt").stat().st_size > 0  # its own folder works

    with pytest.raises(OSError, match="could not save"):
        env.save_as(document)  # over the user's file
    with pytest.raises(OSError, match="could not save"):
        env.save_as(user_folder / "new.odt")  # beside it
    with pytest.raises(OSError, match="outside the folders"):  # this process makes no folder there either
        env.save_as(user_folder / "made" / "deeper" / "x.odt")
    env.office.call("ping")
    hyperlink_new_document(env, user_folder / "planted.odt")

    assert not appears(user_folder / "planted.odt", within_s=2)
    assert document.read_bytes() == before
    assert sorted(p.name for p in user_folder.iterdir()) == ["report.docx"]
    assert env.office.display != ":4242"
    assert [p.name for p in out.iterdir()] == ["result.odt"]
    assert env.office.alive()

    # A crashed office starts again in its sandbox, and closing leaves nothing behind.
    with pytest.raises(OfficeScriptError, match="took more than"):  # a held display cannot hang a screenshot
        env.office.screenshot(tmp_path / "shot.png", timeout=0.01)
    planted = tmp_path / "cwd" / "PIL"  # a folder someone else controls: its PIL must not be the one imported
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("raise SystemExit('the planted PIL ran')")
    with monkeypatch.context() as m:
        m.chdir(planted.parent)
        assert env.screenshot(tmp_path / "shot.png").stat().st_size > 0

    # Every folder the office may write lies in a 0700 folder it does not see: no mode it sets there opens them.
    for folder in env.writable[:1] + [env.office.profile.parent]:
        assert folder.parent.stat().st_mode & 0o777 == 0o700 and folder.parent not in env.writable

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
    assert appears(user_folder / "planted.odt")
    writer_env.office.call("close_popups")


@pytest.mark.office
def test_the_documents_copy_never_goes_through_a_planted_symlink(writer_env, document, user_folder, tmp_path,
                                                                 monkeypatch):
    """The copy is made in a folder the office may write: a symlink it planted at the copy's name is refused, not
    followed (a review had a sandboxed office turn the copy of the next episode into a write over a user's file)."""
    victim = user_folder / "victim.txt"
    victim.write_text("the user's")
    planted = tmp_path / "episode"
    planted.mkdir()
    (planted / document.name).symlink_to(victim)
    real = tempfile.mkdtemp
    monkeypatch.setattr("lamforge.env.writer_env.tempfile.mkdtemp",
                        lambda prefix=None, dir=None: str(planted) if prefix == "doc-" else real(prefix=prefix, dir=dir))
    with pytest.raises(FileExistsError):
        writer_env.reset(options={"doc": str(document)})
    assert victim.read_text() == "the user's"


def test_a_folder_other_users_can_reach_is_refused(tmp_path):
    """The office may set any mode in its folders (a setuid file, as root a setuid-root one): only folders inside a
    folder no one else may enter are accepted."""
    require_sandbox()
    from lamforge.env.office import Office

    shared = tmp_path / "shared"
    (shared / "out").mkdir(parents=True)
    shared.chmod(0o755)
    with pytest.raises(OfficeError, match="mode 0700"):
        Office(writable=[shared / "out"])
