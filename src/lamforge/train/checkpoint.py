"""Finished models on disk: save a policy (merged weights or a LoRA adapter) with its model card and metrics, and
load it back for inference. `load_policy` is what the agent runtime and evaluation call."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from lamforge.train.base_model import load_tokenizer

METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"

PHASE_TITLES = {
    "1": "LAM1: task-plan pretraining (task -> plan)",
    "2": "LAM2: learning from the demonstrator (state -> action)",
    "3": "LAM3: self-boosting (demonstrator + own successful explorations)",
    "rm": "Reward model: LAM3 backbone with a scalar head (MSE on +1/-1 step labels, sigmoid scores)",
    "4": "LAM4: offline PPO on failed trajectories with reward-model advantages",
}


def is_finished(output_dir: Path) -> bool:
    path = Path(output_dir) / METRICS_FILE
    return path.exists() and json.loads(path.read_text()).get("finished", False)


def load_policy(path: str | Path, device: str | None = None, dtype: torch.dtype | None = None):
    """(model, tokenizer) for inference from a phase's output folder, a base model name, or a hub id.

    Adapter folders are merged on load, so inference never pays for LoRA's extra matmuls.
    """
    from transformers import AutoModelForCausalLM

    from lamforge.train.base_model import resolve_model

    path_str = str(path)
    folder = Path(path_str)
    if (folder / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(path_str), dtype=dtype or torch.float32)
    tokenizer = load_tokenizer(path_str)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if device:
        model.to(device)
    return model, tokenizer


# ---------------------------------------------------------------------------------------------------------------
# Model card and metrics.


def _table(rows: dict[str, Any]) -> str:
    lines = ["| name | value |", "|---|---|"]
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


def write_card(output_dir: Path, phase: str, info: dict[str, Any]) -> None:
    """README.md (a Hugging Face model card) and metrics.json: what data, which settings, what came out."""
    info = {"phase": phase, "finished": True, "written": time.strftime("%Y-%m-%d %H:%M:%S"), **info}
    (output_dir / METRICS_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
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
        "## Use\n\n```python\nfrom lamforge.train.checkpoint import load_policy\n"
        f"model, tokenizer = load_policy({str(output_dir)!r})\n```\n\n"
        "Prompts must be built with `lamforge.train.formatting.build_prompt_ids`, the function training used."
    )
    (output_dir / CARD_FILE).write_text("\n\n".join(parts) + "\n")


def read_metrics(output_dir: str | Path) -> dict[str, Any]:
    path = Path(output_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else {}
