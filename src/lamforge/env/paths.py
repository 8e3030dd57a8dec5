"""How a path the agent names becomes a file: one function for the environment that writes it (`save_as`) and the
guard that judges it (agent/guard_rules.py). When the two read a path differently, the guard judges one file and
the environment writes another: '~/notes.docx' was judged as a new file in the home folder and written to a folder
literally named '~' below the output folder, and '"notes.docx' as notes.docx while '"notes.docx' was written."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_path(path: str | Path, base: str | Path | None = None) -> Path:
    """The absolute real path: surrounding spaces and double quotes dropped (a file dialog's name field accepts a
    quoted name), '~' expanded, a relative path taken from base (or the working directory), '..' and symlinks
    resolved (also for a file that does not exist yet)."""
    p = Path(os.path.expanduser(str(path).strip().strip('"')))
    if not p.is_absolute():
        p = Path(base or os.getcwd()) / p
    return p.resolve()
