"""One writer per run folder: a collector holds an exclusive lock on its run folder while it writes to it.

Why: two `lamforge data collect` runs into the same --out both resume from the same trajectories.jsonl, so every
task id was collected twice and the counts doubled. The lock is an OS file lock (filelock, flock on Linux), so a
killed collector leaves no stale lock behind: the kernel releases it with the process.
"""

from __future__ import annotations

import functools
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = ".collect.lock"


class RunFolderBusy(RuntimeError):
    """Another process is writing to this run folder."""


def lock_run_folder(folder: Path) -> FileLock:
    """The folder's lock, acquired; raises RunFolderBusy at once if another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunFolderBusy(f"{folder} is being written by another collector (it holds {folder / LOCK_FILE}); "
                            f"wait for it to finish, or collect into another --out") from None
    return lock


def exclusive_run_folder(collect):
    """Decorate collect(config, ...) so that it holds config.out's lock while it runs."""

    @functools.wraps(collect)
    def locked(config, *args, **kwargs):
        lock = lock_run_folder(Path(config.out))
        try:
            return collect(config, *args, **kwargs)
        finally:
            lock.release()

    return locked
