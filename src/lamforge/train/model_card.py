"""The model card of a finished phase: README.md (a Hugging Face model card) and metrics.json, written last, so
that `lamforge.models.checkpoints.is_finished` knows the folder is complete. Loading the model back is
`lamforge.models.loading.load_policy`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lamforge.jsonl import write_json
from lamforge.models.checkpoints import METRICS_FILE
from lamforge.prompt import PROMPT_VERSION

CARD_FILE = "README.md"

PHASE_TITLES = {
    "1": "LAM1: task-plan pretraining (task -> plan)",
    "2": "LAM2: learning from the demonstrator (state -> action)",
    "3": "LAM3: self-boosting (demonstrator + own successful explorations)",
    "rm": "Reward model: LAM3 backbone with a scalar head (MSE on +1/-1 step labels, sigmoid scores)",
    "4": "LAM4: offline PPO on failed trajectories with reward-model advantages",
}


def _table(rows: dict[str, Any]) -> str:
    lines = ["| name | value |", "|---|---|"]
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


def write_card(output_dir: Path, phase: str, info: dict[str, Any]) -> None:
    """README.md (a Hugging Face model card) and metrics.json: what data, which settings, what came out."""
    info = {"phase": phase, "finished": True, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            "prompt_version": PROMPT_VERSION, **info}
    write_json(output_dir / METRICS_FILE, info, indent=2, default=str)
    config = info.get("config", {})
    front = [
        "---",
        "library_name: " + ("peft" if info.get("format") == "lora-adapter" else "transformers"),
        f"base_model: {config.get('init_from', '')}",
        "tags: [lamforge, large-action-model, libreoffice-writer, " + f"lam-phase-{phase}]",
        "---",
    ]
    parts = [
        "\n".join(front),
        f"# {PHASE_TITLES.get(phase, phase)}",
        "Built by lamforge, after the four-phase recipe of Wang et al., *Large Action Models: From Inception to "
        "Implementation* (arXiv 2412.10047), on LibreOffice Writer.",
        f"- Format: {info.get('format', '')}\n- Started from: `{config.get('init_from', '')}`",
    ]
    if info.get("notes"):
        parts.append("\n".join(f"- {note}" for note in info["notes"]))
    for title, key in (("Data", "data"), ("Training", "training"), ("Metrics", "metrics"), ("Settings", "config")):
        block = info.get(key)
        if not block:
            continue
        if key == "data":
            rows = []
            for name, summary in block.items():
                rows.append(f"### {name}\n\n" + (_table(summary) if isinstance(summary, dict) else str(summary)))
            parts.append(f"## {title}\n\n" + "\n\n".join(rows))
        else:
            parts.append(f"## {title}\n\n" + _table(block))
    parts.append(
        "## Use\n\n```python\nfrom lamforge.models.loading import load_policy\n"
        f"model, tokenizer = load_policy({str(output_dir)!r})\n```\n\n"
        "Prompts must be built with `lamforge.models.formatting.build_prompt_ids`, the function training used."
    )
    (output_dir / CARD_FILE).write_text("\n\n".join(parts) + "\n")
