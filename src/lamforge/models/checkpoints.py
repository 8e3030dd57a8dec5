"""Finished model folders: a training phase writes `metrics.json` (with "finished": true) last, so a folder that
has it holds a complete model; the pipeline skips such phases and `lamforge run` picks the newest one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

METRICS_FILE = "metrics.json"


def read_metrics(output_dir: str | Path) -> dict[str, Any]:
    path = Path(output_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def trained_max_controls(output_dir: str | Path) -> int:
    """How many controls a trained model was shown per step (its training config's max_controls; 0: all, and for
    folders without a card), so that it is run with the filtering it learned on."""
    return int(read_metrics(output_dir).get("config", {}).get("max_controls") or 0)


def trained_prompt_version(output_dir: str | Path) -> int | None:
    """The prompt version a trained model learned on (lamforge/prompt.py); 1 for a card written before the record
    existed; None for a folder without a card (a base model or a hub id: no prompt learned)."""
    if not (Path(output_dir) / METRICS_FILE).exists():
        return None
    return int(read_metrics(output_dir).get("prompt_version", 1))


def is_finished(output_dir: str | Path) -> bool:
    return bool(read_metrics(output_dir).get("finished", False))


def newest_finished(folders: Iterable[Path]) -> Path | None:
    """The finished folder whose metrics.json was written last, or None."""
    finished = [folder for folder in folders if is_finished(folder)]
    return max(finished, key=lambda folder: (Path(folder) / METRICS_FILE).stat().st_mtime, default=None)
