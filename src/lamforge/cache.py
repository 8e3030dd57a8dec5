"""Where lamforge keeps what it builds once per machine: converted models, template documents, LibreOffice's
templates. $LAMFORGE_CACHE, or ~/.cache/lamforge."""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "LAMFORGE_CACHE"


def cache_dir() -> Path:
    root = os.environ.get(ENV_CACHE)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "lamforge"
