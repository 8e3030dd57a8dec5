"""Remove lamforge's temporary files when the process ends, however it ends: a clean exit, SIGTERM, SIGKILL or a crash.

Why a separate process: a process killed with SIGKILL (or one that crashes) runs no cleanup code at all, and Python's
default SIGTERM does not run `finally` blocks or atexit handlers either. So each lamforge process starts one small
watcher (this file, run as a script with the standard library only) and tells it, over a pipe, which paths to
remove. The watcher reads until the pipe closes, which the kernel does when its parent ends for any reason; it then
waits for the processes it was told about (the office, which dies with its parent) and removes the paths. A path
the parent removed itself is forgotten first. No library does this for a process that cannot clean up after itself
(tempfile and atexit both run inside the dying process).

    remove_on_exit(profile_dir, pid=office_pid)
    ...
    shutil.rmtree(profile_dir); forget(profile_dir)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_watcher: subprocess.Popen | None = None
_watcher_pid = 0  # the process that started the watcher (a forked child must start its own)


def _send(message: dict) -> None:
    global _watcher, _watcher_pid
    with _lock:
        if _watcher is None or _watcher_pid != os.getpid() or _watcher.poll() is not None:
            # -I -S: no site packages, no user paths, no environment: the watcher starts fast and imports nothing
            # of the caller's.
            _watcher = subprocess.Popen([sys.executable, "-I", "-S", str(Path(__file__).resolve())],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, text=True)
            _watcher_pid = os.getpid()
        try:
            _watcher.stdin.write(json.dumps(message) + "\n")
            _watcher.stdin.flush()
        except (BrokenPipeError, OSError):
            _watcher = None


def remove_tree(path: str | Path) -> None:
    """shutil.rmtree that also takes what a program made unremovable for its owner: a folder chmod-ed to 000 (the
    office can do that in every folder it may write) is made accessible again and the removal retried. Only folders
    inside the tree are touched, never through a symlink (rmtree follows none); a missing tree and errors past that
    are ignored, as a cleanup must not fail. Only for a tree no running program can change: the retries go by path
    name, so a program that swapped a folder for a symlink meanwhile could aim them elsewhere."""
    top = os.path.abspath(path)
    retried: set[str] = set()

    def plain_folder(folder: str) -> bool:
        return os.path.isdir(folder) and not os.path.islink(folder)

    def retry(function, failed, exc_info):
        if not isinstance(exc_info[1], PermissionError) or failed in retried:
            return
        retried.add(failed)
        parent = os.path.dirname(failed)
        try:
            if failed != top and plain_folder(parent):
                os.chmod(parent, 0o700)
            if plain_folder(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, onerror=retry)
            else:
                function(failed)
        except OSError:
            pass

    shutil.rmtree(top, onerror=retry)  # Python 3.11: onerror (3.12 names it onexc)


def remove_on_exit(path: str | Path, pid: int | None = None) -> None:
    """Remove `path` (a file, socket or folder) when this process ends, after process `pid` has exited."""
    _send({"add": str(path), "pid": pid})


def forget(path: str | Path) -> None:
    """The caller removed `path` itself; the watcher must not touch that name again (it may be reused)."""
    _send({"forget": str(path)})


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (OSError, IndexError):
        return False


def _watch() -> None:
    paths: dict[str, int | None] = {}
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "add" in message:
            paths[message["add"]] = message.get("pid")
        else:
            paths.pop(message.get("forget"), None)
    deadline = time.time() + 10
    while any(pid and _running(pid) for pid in paths.values()) and time.time() < deadline:
        time.sleep(0.1)
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            try:
                remove_tree(path)
            except OSError:
                pass
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


if __name__ == "__main__":
    _watch()
