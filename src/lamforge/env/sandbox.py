"""An office that can write only into the folders lamforge names: LibreOffice under bubblewrap (`bwrap`).

Why: the guard (agent/guard.py) judges each action by the names of the controls it reaches, so a dialog that writes
where it is told and that the guard does not know by name can still write into a user's folder (a review found
Insert > Hyperlink's New Document page doing so). Under the sandbox the file system itself refuses: the whole tree
is mounted read-only, and only the named folders are writable; the office's /tmp is a private folder (its profile
and its pipes live there, so a user's file in the real /tmp is out of reach too); it has no network. bubblewrap is
the well-kept tool for exactly this (Flatpak runs every application in it); lamforge only builds its command line.

The office's pipes are made in the private /tmp, which is not the caller's; lamforge reaches the one it connects to
through a symlink at the name the UNO bridge looks for in the real /tmp.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

BWRAP_HINT = "apt-get install bubblewrap"
INSIDE_TMP = Path("/tmp")


def sandboxed(argv: Sequence[str], bwrap: str, private_tmp: Path, writable: Sequence[Path],
              display: str = ":0") -> list[str]:
    """`argv` run by bubblewrap: everything read-only, `private_tmp` as /tmp, the `writable` folders writable at
    their own paths, a fresh /dev and /proc, and the sandbox killed with the process that started it; no network,
    unless `display` is an X server reached over TCP (`host:10`, as ssh's X forwarding sets it).

    The X server's sockets (/tmp/.X11-unix) and an X authority file in /tmp are mounted into the private /tmp read-only:
    connecting to a socket needs no write access to its file system."""
    local_display = display.startswith(":") or display.startswith("unix:")
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
            *(["--unshare-net"] if local_display else []), "--die-with-parent",
            "--bind", str(private_tmp), str(INSIDE_TMP)]
    x11 = Path("/tmp/.X11-unix")
    if x11.is_dir():
        args += ["--ro-bind", str(x11), str(x11)]
    xauthority = os.environ.get("XAUTHORITY")
    if xauthority and Path(xauthority).is_file() and INSIDE_TMP in Path(xauthority).parents:
        args += ["--ro-bind", xauthority, xauthority]
    for folder in writable:
        folder = Path(folder).resolve()
        args += ["--bind", str(folder), str(folder)]
    return [*args, "--", *argv]


def probe(bwrap: str | None) -> str | None:
    """Why this machine cannot run the office sandboxed, or None when it can: `bwrap` is there and starts a sandbox
    as sandboxed() builds it (some kernels and container runtimes refuse the namespaces it needs)."""
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed; install it with: {BWRAP_HINT}"
    with tempfile.TemporaryDirectory(prefix="lamforge-sandbox-probe-") as probe:
        try:
            done = subprocess.run(sandboxed(["/bin/true"], bwrap, Path(probe), []), capture_output=True, text=True,
                                  timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start a sandbox: {exc}"
    if done.returncode != 0:
        said = (done.stderr or "").strip().splitlines()
        return f"bubblewrap could not start a sandbox here ({said[-1] if said else f'exit {done.returncode}'})"
    return None
