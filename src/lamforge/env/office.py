"""One private LibreOffice process under Xvfb, reached over a named pipe, with crash and hang detection.

The office runs with its own profile (so it never touches the user's), listens on a named pipe (never on a
network socket), and runs lamforge's in-process script (office_side/lamforge_office.py) for every request that
would otherwise take hundreds of UNO round trips.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from lamforge.env.reaper import forget, remove_on_exit, remove_tree
from lamforge.env.sandbox import INSIDE_TMP, SandboxError, display_socket, keyring_filter, probe, sandboxed

OFFICE_SCRIPT = Path(__file__).parent / "office_side" / "lamforge_office.py"
INSTALL_HINT = (
    "apt-get install libreoffice-writer python3-uno libreoffice-script-provider-python xvfb xdotool "
    "(and run lamforge from a venv made with /usr/bin/python3 -m venv --system-site-packages, so `import uno` works)"
)

# Profile settings that keep a fresh profile from opening first-run dialogs or writing recovery data, and turn
# off AutoCorrect while typing, so typed text lands exactly as given (task checkers compare text).
REGISTRY_XCU = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="ShowTipOfTheDay" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Setup/Office"><prop oor:name="ooSetupInstCompleted" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Recovery/AutoSave"><prop oor:name="Enabled" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Recovery/RecoveryInfo"><prop oor:name="Enabled" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Save/Document"><prop oor:name="WarnAlienFormat" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="UseSystemFileDialog" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Writer/Layout/Other"><prop oor:name="MeasureUnit" oor:op="fuse"><value>2</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="ChangeDash" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="ReplaceDoubleQuote" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="ReplaceSingleQuote" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="CapitalAtStartSentence" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="TwoCapitalsAtStart" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="UseReplacementTable" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="ChangeOrdinalNumber" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="AddNonBreakingSpace" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="ChangeUnderlineWeight" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="SetINetAttr" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/AutoCorrect"><prop oor:name="SetDOIAttr" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"""


RESTART_CODE = 81
START_ATTEMPTS = 2
# The office's environment is built, not inherited: a caller's PATH that starts with another Python's bin (a pyenv
# or conda Python running a script that calls lamforge) makes the office's embedded Python load that Python's
# standard library, and its script provider fails with std::bad_alloc; PYTHONPATH/PYTHONHOME, LD_LIBRARY_PATH or
# UNO_PATH break it the same way. Only the user's identity and locale pass through.
OFFICE_PATH = "/usr/bin:/bin"
PASSED_ENV = ("HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "XAUTHORITY")


class OfficeError(RuntimeError):
    """The office is missing, crashed, hung or refused a request. The episode is an environment error."""


class OfficeNotInstalled(OfficeError):
    pass


class OfficeScriptError(RuntimeError):
    """lamforge's in-office script, or xdotool's input, failed on a request; the office itself is fine."""


def find_binary(*names: str) -> str | None:
    """The first of `names` on the caller's PATH, else on the office's own (OFFICE_PATH).

    Why both: the caller's PATH first finds an office installed elsewhere (/opt/libreoffice/program), and the
    office's own still finds the system one when lamforge runs in a process whose PATH lacks /usr/bin (a service,
    a notebook kernel started with a minimal environment); the office runs with OFFICE_PATH either way."""
    search = os.pathsep.join(p for p in (os.environ.get("PATH", ""), OFFICE_PATH) if p)
    return next((found for name in names if (found := shutil.which(name, path=search))), None)


def require_binaries() -> tuple[str, str]:
    soffice = find_binary("soffice", "libreoffice")
    xvfb = find_binary("Xvfb")
    missing = [name for name, path in (("LibreOffice (soffice)", soffice), ("Xvfb", xvfb)) if not path]
    if missing:
        raise OfficeNotInstalled(f"{' and '.join(missing)} not found. Install with: {INSTALL_HINT}")
    try:
        import_uno()
    except ImportError as exc:
        raise OfficeNotInstalled(f"the Python-UNO bridge is not importable ({exc}). {INSTALL_HINT}") from exc
    if not OFFICE_SCRIPT.exists():
        raise OfficeNotInstalled(f"lamforge's office script is missing at {OFFICE_SCRIPT}")
    return soffice, xvfb


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """Why the office cannot run sandboxed on this machine (env/sandbox.py), or None when it can; probed once."""
    return probe(find_binary("bwrap"))


def office_binary(soffice: str) -> str:
    """soffice.bin itself, not the wrapper script: the wrapper's launcher would outlive a killed parent."""
    binary = Path(os.path.realpath(soffice)).parent / "soffice.bin"
    return str(binary) if binary.exists() else soffice


def _die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to signal the child when the process that started it dies (also on SIGKILL), so a killed pipeline
    leaves no office or Xvfb behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _terminate_with_parent() -> None:
    # Xvfb gets SIGTERM, not SIGKILL: it then removes its /tmp/.X*-lock file and socket itself.
    _die_with_parent(signal.SIGTERM)


def office_environment(display: str, tmpdir: Path, authority: Path | None = None) -> dict[str, str]:
    """The environment soffice runs in, whatever the caller's is (see OFFICE_PATH); `authority`: the X cookie of a
    display lamforge started."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("LC_")}
    if authority is not None:
        env["XAUTHORITY"] = str(authority)
    return {**env, "PATH": OFFICE_PATH, "DISPLAY": display, "SAL_USE_VCLPLUGIN": "gen", "TMPDIR": str(tmpdir)}


def x_client_environment(display: str, authority: Path | None) -> dict[str, str]:
    """The environment of the X clients lamforge runs itself (xdotool, the screenshot): the display and its cookie."""
    return {**os.environ, "DISPLAY": display, **({"XAUTHORITY": str(authority)} if authority else {})}


def pipe_paths(pipe: str, profile: Path) -> list[Path]:
    """The named pipes (sockets) soffice makes in /tmp: the one lamforge connects to, and its single-instance pipe,
    named after the MD5 of the profile URL's UTF-16 code units, in hex without zero padding (as
    desktop/source/app/officeipcthread.cxx makes it). osl puts both in /tmp, whatever TMPDIR says."""
    digest = hashlib.md5(profile.as_uri().encode("utf-16-le")).digest()
    uid = os.getuid()
    return [Path(f"/tmp/OSL_PIPE_{uid}_{pipe}"),
            Path(f"/tmp/OSL_PIPE_{uid}_SingleOfficeIPC_{''.join(format(b, 'x') for b in digest)}")]


def import_uno():
    """Import the UNO bridge without keeping its import hook.

    Why: `import uno` replaces builtins.__import__ with a hook for `from com.sun.star... import` that turns a
    ModuleNotFoundError into a plain ImportError, which breaks optional imports in other libraries (transformers'
    tqdm probing, for one) imported later in the same process. lamforge builds UNO structs with
    uno.createUnoStruct instead, so the hook is not needed.
    """
    import builtins

    saved = builtins.__import__
    import uno

    builtins.__import__ = saved
    return uno


_ABORTER = []


def interaction_aborter():
    """A UNO XInteractionHandler that answers every question of the office with Abort, for a store's descriptor.

    Why: without a handler in its descriptor, a store the office cannot do (a full disk, a folder where the file
    should go) asks the document's own UI handler, which shows an "Error" dialog and blocks the call until the
    watchdog kills the office (measured: 60 s, then the office and the episode were gone). With this one the store
    fails at once with its IOException. A UNO object made in Python needs unohelper, whose imports need the hook
    import_uno drops; it is put back for those two imports only.
    """
    if not _ABORTER:
        import builtins

        uno = import_uno()
        saved = builtins.__import__
        builtins.__import__ = uno._uno_import
        try:
            import unohelper
            from com.sun.star.task import XInteractionHandler
        finally:
            builtins.__import__ = saved
        abort = uno.getTypeByName("com.sun.star.task.XInteractionAbort")

        class AbortEveryRequest(unohelper.Base, XInteractionHandler):
            def handle(self, request):
                for choice in request.getContinuations():
                    if choice.queryInterface(abort):
                        choice.select()
                        return

        _ABORTER.append(AbortEveryRequest())
    return _ABORTER[0]


def property_values(**values):
    uno = import_uno()
    props = []
    for name, value in values.items():
        prop = uno.createUnoStruct("com.sun.star.beans.PropertyValue")
        prop.Name, prop.Value = name, value
        props.append(prop)
    return tuple(props)


def write_authority(path: Path) -> None:
    """An X authority file with one fresh MIT-MAGIC-COOKIE-1 for any display of this machine, readable by this user
    only. Why: an Xvfb started without one lets every local user connect, read the office's windows and type into
    them (and through Tools > Macros run code as the user lamforge runs as). Written by hand: the format is five
    length-prefixed fields (libXau's XauWriteAuth), and the xauth program is one more package to install. Family
    0xFFFF with an empty address and display number matches any display, which is needed because Xvfb picks its
    number after it has read the file."""
    cookie = secrets.token_bytes(16)
    fields = (b"", b"", b"MIT-MAGIC-COOKIE-1", cookie)
    entry = struct.pack(">H", 0xFFFF) + b"".join(struct.pack(">H", len(f)) + f for f in fields)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(entry)


class VirtualDisplay:
    """An Xvfb server on a free display number that only holders of its cookie (`authority`) may connect to."""

    def __init__(self, size: str = "1280x1024x24"):
        _, xvfb = require_binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="lamforge-xvfb-"))  # 0700
        remove_on_exit(self.folder)
        self.authority = self.folder / "Xauthority"
        write_authority(self.authority)
        read_fd, write_fd = os.pipe()
        # -displayfd lets Xvfb pick a free display itself, so parallel workers never race for a number.
        self.proc = subprocess.Popen(
            [xvfb, "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp", "-auth",
             str(self.authority)],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_terminate_with_parent,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()
        if not number:
            self.close()
            raise OfficeError("Xvfb did not start")
        self.display = f":{number}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
        forget(self.folder)


class Office:
    """A running soffice with a private profile; `call()` invokes the in-process script with a watchdog.

    With `writable` (a list of folders), the office runs in a sandbox where only those folders, its profile and a
    private /tmp can be written (env/sandbox.py); OfficeNotInstalled says why when this machine cannot do that."""

    def __init__(self, display: str | None = None, start_timeout: float = 60.0, call_timeout: float = 20.0,
                 writable: list[Path] | None = None):
        self.soffice, _ = require_binaries()
        self.writable = None if writable is None else [Path(folder).resolve() for folder in writable]
        if self.writable is not None and (problem := sandbox_problem()):
            raise OfficeNotInstalled(f"the office cannot run sandboxed: {problem}")
        for folder in self.writable or []:
            # The office sets whatever modes it likes in its folders (a setuid file, as root a setuid-root one);
            # only a parent that no one else may enter keeps other users of the machine from what it leaves there.
            parent = folder.parent.stat()
            if parent.st_uid != os.getuid() or parent.st_mode & 0o077:
                raise OfficeError(f"a sandboxed office may write only into folders that lie in a folder only you can "
                                  f"enter (mode 0700); {folder.parent} is not one")
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self._own_display = None
        # A sandboxed office gets an X server of its own even on a desktop: on the user's display, the input it
        # could send (XTEST) would reach every window there, a terminal among them.
        if display is None and (self.writable is not None or not os.environ.get("DISPLAY")):
            self._own_display = VirtualDisplay()
            display = self._own_display.display
        self.display = display or os.environ["DISPLAY"]
        self.authority = self._own_display.authority if self._own_display else None  # else the caller's XAUTHORITY
        self.proc: subprocess.Popen | None = None
        self.profile: Path | None = None
        self._temporary: list[Path] = []
        self.ctx = None
        self.desktop = None
        self._scripts: dict = {}
        if self.writable is not None:
            try:
                display_socket(self.display)
            except SandboxError as exc:
                self.close()
                raise OfficeError(str(exc)) from exc
        try:
            self.start()
        except BaseException:
            self.close()  # the Xvfb started for it, and anything the failed start left
            raise

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start soffice and connect; any failure is retried once on a fresh profile, then raised as OfficeError."""
        last: Exception | None = None
        for _ in range(START_ATTEMPTS):
            try:
                self._start_once()
                return
            except OfficeNotInstalled:
                raise
            except Exception as exc:  # noqa: BLE001  a UNO exception too: a bridge disposed right after connecting,
                last = exc  # the script provider's bad_alloc, a refused connection
                self.kill()
                self._remove_profile()
        where = " in its sandbox (bubblewrap; `lamforge run --no-sandbox` runs it without)" if self.writable else ""
        raise OfficeError(f"LibreOffice did not start{where} ({START_ATTEMPTS} attempts); last error: "
                          f"{type(last).__name__}: {last}") from last

    def _start_once(self) -> None:
        uno = import_uno()

        root = Path(tempfile.mkdtemp(prefix="lamforge-office-"))
        self.pipe = f"lamforge-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if self.writable is None:
            self.profile = self._profile_seen = root
            # Everything the office leaves in /tmp is registered before it exists, so that it goes even if this
            # process is killed during the start; the office's own temporary folders (lu*.tmp) go inside the profile.
            self._temporary = [root, *pipe_paths(self.pipe, root)]
        else:
            # root/tmp is the sandbox's /tmp (inside root, a 0700 folder the office does not see, so the modes it
            # sets cannot open it to other users): the profile and both pipes are made in it; the one lamforge
            # connects to is reached through a symlink where the bridge looks for it.
            (root / "tmp").mkdir(mode=0o700)
            self.profile, self._profile_seen = root / "tmp" / "profile", INSIDE_TMP / "profile"
            self.profile.mkdir()
            pipe = pipe_paths(self.pipe, self._profile_seen)[0]
            self._temporary = [root, pipe]
        for path in self._temporary:
            remove_on_exit(path)
        if self.writable is not None:
            pipe.unlink(missing_ok=True)
            pipe.symlink_to(root / "tmp" / pipe.name)
        user = self.profile / "user"
        (user / "Scripts" / "python").mkdir(parents=True)
        (self.profile / "tmp").mkdir()
        (user / "registrymodifications.xcu").write_text(REGISTRY_XCU)
        shutil.copy(OFFICE_SCRIPT, user / "Scripts" / "python" / OFFICE_SCRIPT.name)
        self.proc = self._launch()
        self.ctx = self._connect(uno)
        smgr = self.ctx.ServiceManager
        self.desktop = smgr.createInstanceWithContext("com.sun.star.frame.Desktop", self.ctx)
        factory = smgr.createInstanceWithContext("com.sun.star.script.provider.MasterScriptProviderFactory", self.ctx)
        provider = factory.createScriptProvider("")
        self._scripts = {
            "safe": provider.getScript(f"vnd.sun.star.script:{OFFICE_SCRIPT.name}$safe?language=Python&location=user")
        }
        self.call("ping")

    def _connect(self, uno):
        """The office's component context, once it listens on the pipe."""
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        deadline = time.time() + self.start_timeout
        relaunches = 0
        while True:
            try:
                return resolver.resolve(f"uno:pipe,name={self.pipe};urp;StarOffice.ComponentContext")
            except Exception as exc:  # NoConnectException until the office listens
                if self.proc.poll() == RESTART_CODE and relaunches < 2:
                    # A new profile makes soffice.bin exit with "restart requested" once (the wrapper's launcher
                    # would relaunch it); the profile is ready now.
                    relaunches += 1
                    self.proc = self._launch()
                    continue
                if self.proc.poll() is not None:
                    raise OfficeError(f"soffice exited during start (code {self.proc.returncode})") from exc
                if time.time() > deadline:
                    raise OfficeError(f"soffice did not accept a connection within {self.start_timeout:.0f} s") from exc
                time.sleep(0.1)

    def _launch(self) -> subprocess.Popen:
        argv = [
            office_binary(self.soffice), f"-env:UserInstallation={self._profile_seen.as_uri()}", "--norestore",
            "--nologo", "--nodefault", "--nolockcheck", "--nofirststartwizard",
            f"--accept=pipe,name={self.pipe};urp;StarOffice.ComponentContext",
        ]
        env = office_environment(self.display, self._profile_seen / "tmp", self.authority)
        with contextlib.ExitStack() as closing:
            inherited: tuple[int, ...] = ()
            if self.writable is not None:
                seccomp_fd = closing.enter_context(keyring_filter())
                inherited = (seccomp_fd,)
                argv = sandboxed(argv, find_binary("bwrap"), self.profile.parent, self.writable, self.display,
                                 program_folder=Path(office_binary(self.soffice)).resolve().parent.parent,
                                 authority=self.authority, seccomp_fd=seccomp_fd)
                # No home folder inside: the office's own files stay in its profile.
                env["HOME"] = str(self._profile_seen)
            # The process group is the office's (killed as one by kill()); under the sandbox its leader is bwrap,
            # whose --die-with-parent takes the office along (the office itself runs in a session of its own there).
            proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, pass_fds=inherited,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        for path in self._temporary:
            remove_on_exit(path, pid=proc.pid)  # removed once this office process is gone
        return proc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.ctx = self.desktop = None
        self._scripts = {}

    def restart(self) -> None:
        self.kill()
        self._remove_profile()
        self.start()

    def close(self) -> None:
        if self.desktop is not None and self.alive():
            try:
                self.guarded(self.desktop.terminate, timeout=5)
            except Exception:  # noqa: BLE001  closing never fails: the office is killed below whatever happened
                # A bridge that dies during terminate() raises pyuno's RuntimeException, sometimes one pyuno cannot
                # even convert ("Couldn't convert <traceback> to a UNO type"); it ended a tiny pipeline run once.
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self._remove_profile()
        if self._own_display is not None:
            self._own_display.close()
            self._own_display = None

    def _remove_profile(self) -> None:
        """Remove the profile and the pipes of an office that has exited (close() and kill() wait for it)."""
        for path in getattr(self, "_temporary", []):
            if path.is_dir() and not path.is_symlink():
                remove_tree(path)
            else:
                path.unlink(missing_ok=True)
            forget(path)
        self._temporary = []
        self.profile = None

    # -- calls ----------------------------------------------------------------------------------------------

    def guarded(self, fn, *args, timeout: float | None = None):
        """Run a UNO call; a hang past `timeout` kills the office, which unblocks the call as a disposed bridge."""
        if not self.alive():
            raise OfficeError("the office is not running (it crashed or was killed)")
        fired = threading.Event()

        def on_timeout():
            fired.set()
            self.kill()

        timer = threading.Timer(timeout or self.call_timeout, on_timeout)
        timer.start()
        try:
            return fn(*args)
        except Exception as exc:
            if fired.is_set():
                raise OfficeError(f"the office hung for {timeout or self.call_timeout:.0f} s and was killed") from exc
            # pyuno names its exception classes in full ("com.sun.star.lang.DisposedException"), and an office
            # that quits is still alive for a moment while its bridge is already gone.
            kind = type(exc).__name__.rsplit(".", 1)[-1]
            if kind == "DisposedException" or "Binary URP bridge" in str(exc) or not self.alive():
                raise OfficeError(f"the office crashed: {exc}") from exc
            raise
        finally:
            timer.cancel()

    def call(self, name: str, payload: dict | None = None, timeout: float | None = None) -> dict:
        script = self._scripts.get("safe")
        if script is None:
            raise OfficeError("the office is not running (it crashed or was killed)")
        result = json.loads(self.guarded(lambda: script.invoke((name, json.dumps(payload or {})), (), ())[0], timeout=timeout))
        if "script_error" in result:
            raise OfficeScriptError(f"office-side {name} failed:\n{result['script_error']}")
        return result

    def screenshot(self, path: Path, timeout: float = 30.0) -> Path:
        """A PNG of the whole display at `path`, taken by a child process: an X server the office grabbed would
        block the grab for ever (and Ctrl-C with it) in this one; a child is killed after `timeout`."""
        grab = "import sys; from PIL import ImageGrab; ImageGrab.grab(xdisplay=sys.argv[1]).save(sys.argv[2])"
        try:
            # -I: no current folder, PYTHONPATH or user site on the path (a planted PIL/ there would run as us).
            done = subprocess.run([sys.executable, "-I", "-c", grab, self.display, str(path)], timeout=timeout,
                                  env=x_client_environment(self.display, self.authority), capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise OfficeScriptError(f"the screenshot took more than {timeout:.0f} s (the display is held)") from None
        if done.returncode != 0:
            said = (done.stderr or "").strip().splitlines()
            raise OfficeScriptError(f"the screenshot failed: {said[-1] if said else f'exit {done.returncode}'}")
        return path

    def xdotool(self, *args: str, check: bool = True) -> str:
        """Real X input events (XTEST), as a person's keyboard and mouse would send them."""
        xdotool = find_binary("xdotool")
        if xdotool is None:
            raise OfficeNotInstalled(f"xdotool not found. Install with: {INSTALL_HINT}")
        done = subprocess.run([xdotool, *args], env=x_client_environment(self.display, self.authority), timeout=30,
                              capture_output=True, text=True)
        if check and done.returncode != 0:
            # A killed office takes its windows with it before the process is reaped, so typing can fail first:
            # wait a moment for the process, and report a dead office as the crash it is, not as an xdotool error.
            if self.proc is not None:
                try:
                    self.proc.wait(1)
                except subprocess.TimeoutExpired:
                    pass
            if not self.alive():
                raise OfficeError("the office is not running (it crashed or was killed)")
            # The office is fine, the input was not sent: the step's own error (the agent sees it and goes on), not
            # an environment error with a bare CalledProcessError as its reason.
            said = (done.stderr or done.stdout or "").strip().splitlines()
            raise OfficeScriptError(f"xdotool {' '.join(args)} failed (exit {done.returncode})"
                                    + (f": {said[-1][:200]}" if said else ""))
        return done.stdout
