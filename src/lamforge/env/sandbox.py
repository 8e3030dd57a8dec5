"""An office that can write only into the folders lamforge names: LibreOffice under bubblewrap (`bwrap`).

Why: the guard (agent/guard.py) judges each action by the names of the controls it reaches, so a dialog that writes
where it is told and that the guard does not know by name can still write into a user's folder (a review found
Insert > Hyperlink's New Document page doing so). Under the sandbox the office sees only the system's programs and
libraries (/usr, /etc, /opt and the like, read-only), the named folders (writable), a private /tmp (its profile and
its pipes live there) and its own X server's socket; no home folder, no /run or /var with other programs' sockets,
no network, no SysV IPC, no capabilities (also when lamforge runs as root), and no other process. bubblewrap is the
well-kept tool for exactly this (Flatpak runs every application in it); lamforge only builds its command line.

The office's pipes are made in the private /tmp, which is not the caller's; lamforge reaches the one it connects to
through a symlink at the name the UNO bridge looks for in the real /tmp.

What the office can still do: read what the system folders hold, and write into the named folders whatever it
likes (symlinks, FIFOs, huge or sparse files, setuid files, other modes). So lamforge reads from those folders only
after the office has been stopped, opens nothing there through a symlink and nothing that is not a plain file of a
bounded size (agent/user_files.py), publishes only document types, and gives the sandbox only folders that lie
inside a 0700 folder it does not see (so no other user of the machine reaches what the office leaves there, however
it sets their modes: a setuid-root file made by an office running as root would otherwise be a way to root).

The kernel keyring is not a namespace: a process of the user's id reaches the user's keys (kerberos tickets, disk
keys) whatever else it is cut off from. A seccomp program refuses the office the three keyring calls, as Docker's
default profile does; libseccomp builds it (keyring_filter) and bwrap loads it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

BWRAP_HINT = "apt-get install bubblewrap"
SECCOMP_HINT = "apt-get install libseccomp2"
KEYRING_CALLS = ("add_key", "request_key", "keyctl")
INSIDE_TMP = Path("/tmp")
# What a program needs from the system, read-only. Where /bin, /lib... are symlinks into /usr (merged /usr, Debian
# 12 and most distributions now), the same symlinks are made inside.
SYSTEM_FOLDERS = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
LOCAL_DISPLAY = re.compile(r"(?:unix)?:(\d+)(?:\.\d+)?")


class SandboxError(RuntimeError):
    """The office cannot be sandboxed as asked (a display it cannot be confined to)."""


def display_socket(display: str) -> Path:
    """The X server's socket for a local display (":3" -> /tmp/.X11-unix/X3); SandboxError for a TCP display (that
    would need the network, and it is a user's desktop, where XTEST input reaches every window)."""
    match = LOCAL_DISPLAY.fullmatch(display)
    if match is None:
        raise SandboxError(f"a sandboxed office needs a local X display, not {display!r}")
    return Path(f"/tmp/.X11-unix/X{match.group(1)}")


@contextlib.contextmanager
def keyring_filter() -> Iterator[int]:
    """An open file descriptor of the seccomp program that refuses the kernel keyring calls (EPERM), for bwrap's
    --seccomp (the child process must inherit it: Popen's pass_fds); closed on leaving. SandboxError where
    libseccomp is missing."""
    try:
        import pyseccomp as seccomp
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        if seccomp.system_arch() == seccomp.Arch.X86_64:
            # The x32 calling convention reaches the same calls by other numbers; the filter must cover it too
            # (a 32-bit call from a 64-bit process is another architecture, which libseccomp kills).
            rules.add_arch(seccomp.Arch.X32)
        for call in KEYRING_CALLS:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), call)
    except (ImportError, OSError, AttributeError, RuntimeError) as exc:
        raise SandboxError(f"libseccomp, which builds the sandbox's syscall filter, is not usable ({exc}); "
                           f"install it with: {SECCOMP_HINT}") from exc
    fd = os.memfd_create("lamforge-seccomp")
    try:
        with os.fdopen(os.dup(fd), "wb") as program:
            rules.export_bpf(program)
        os.lseek(fd, 0, os.SEEK_SET)  # bwrap reads the program from where the descriptor stands
        yield fd
    finally:
        os.close(fd)


def sandboxed(argv: Sequence[str], bwrap: str, private_tmp: Path, writable: Sequence[Path], display: str,
              program_folder: Path | None = None, authority: Path | None = None,
              seccomp_fd: int | None = None) -> list[str]:
    """`argv` run by bubblewrap as the module docstring says: `private_tmp` as /tmp, the `writable` folders at their
    own paths (each, like `private_tmp`, inside a 0700 folder that is not itself given), `display`'s socket alone of the machine's X servers, and `program_folder` (an office installed
    outside the system folders, e.g. /home/me/libreoffice) and `authority` (the display's cookie) read-only;
    `seccomp_fd`, keyring_filter()'s descriptor, loaded before `argv` starts. The sandbox dies with the process that
    started it, and runs in a session of its own (no terminal to push keys into)."""
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--cap-drop", "ALL", "--die-with-parent", "--new-session"]
    for folder in SYSTEM_FOLDERS:
        path = Path(folder)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), folder]
        elif path.is_dir():
            args += ["--ro-bind", folder, folder]
    if program_folder is not None and not any(Path(f) in (program_folder, *program_folder.parents)
                                              for f in SYSTEM_FOLDERS):
        args += ["--ro-bind", str(program_folder), str(program_folder)]
    # A fresh /proc shows only the sandbox's processes, but its /proc/sys is the machine's: sysctls are checked by
    # user id, not capability, so as root the office could set kernel.core_pattern and have the kernel run its
    # program outside. Read-only, with the other files that act on the whole machine.
    args += ["--dev", "/dev", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"]
    for machine_wide in ("/proc/sysrq-trigger", "/proc/irq", "/proc/bus"):
        args += ["--ro-bind-try", machine_wide, machine_wide]
    args += ["--bind", str(private_tmp), str(INSIDE_TMP)]
    socket = display_socket(display)
    if socket.exists():
        args += ["--ro-bind", str(socket), str(socket)]
    if authority is not None:
        args += ["--ro-bind", str(authority), str(authority)]
    for folder in writable:
        folder = Path(folder).resolve()
        args += ["--bind", str(folder), str(folder)]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    # The root bwrap builds the tree on is a tmpfs: read-only too, once every mount point is made.
    return [*args, "--remount-ro", "/", "--", *argv]


def probe(bwrap: str | None) -> str | None:
    """Why this machine cannot run the office sandboxed, or None when it can: `bwrap` is there and starts a sandbox
    as sandboxed() builds it (some kernels and container runtimes refuse the namespaces it needs)."""
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed; install it with: {BWRAP_HINT}"
    with tempfile.TemporaryDirectory(prefix="lamforge-sandbox-probe-") as probe:
        try:
            with keyring_filter() as seccomp_fd:
                done = subprocess.run(sandboxed(["/bin/true"], bwrap, Path(probe), [], ":0", seccomp_fd=seccomp_fd),
                                      capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                                      pass_fds=(seccomp_fd,))
        except SandboxError as exc:
            return str(exc)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start a sandbox: {exc}"
    if done.returncode != 0:
        said = (done.stderr or "").strip().splitlines()
        return f"bubblewrap could not start a sandbox here ({said[-1] if said else f'exit {done.returncode}'})"
    return None
