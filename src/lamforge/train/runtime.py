"""Pieces every training loop uses and nothing phase-specific: device and precision, LoRA, the optimizer and its
schedule, the batch order, the fields a resume must match, and a progress bar with the loss. The loop itself (and
its resume state) is loop.py."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lamforge.models.checkpoints import METRICS_FILE
from lamforge.models.cpu import cpu_has_bf16
from lamforge.progress import Progress
from lamforge.train.config import CommonConfig

STATE_DIR = "train_state"

# Fields that change what a run computes; a resume state made with other values would continue a different run.
TRAJECTORY_FIELDS = (
    "init_from", "train_file", "eval_file", "eval_fraction", "max_length", "seed", "use_lora", "lora_r", "lora_alpha",
    "lora_dropout", "lora_target_modules", "lora_layers", "learning_rate", "warmup_steps", "batch_size", "epochs", "weight_decay",
    "new_samples_file", "reward_model", "mini_batch_size", "ppo_epochs", "cliprange", "init_kl_coef", "target_kl",
    "limit_train", "base_quantization", "sharding", "family_weights", "max_controls",
)


class TrainingInterrupted(RuntimeError):
    """Training stopped early (Ctrl-C, SIGTERM, SIGHUP or a step limit for this run); the resume state is saved."""

    def __init__(self, step: int, output_dir: Path):
        super().__init__(f"stopped; the resume state in {output_dir / STATE_DIR} continues from step {step}")
        self.step = step
        self.output_dir = output_dir


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no GPU; use device = 'cpu' or 'auto'")
    return torch.device(name)


def use_bf16(setting: str, device: torch.device) -> bool:
    setting = str(setting).lower()
    if setting in ("true", "1", "yes"):
        return True
    if setting in ("false", "0", "no"):
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def weight_dtype(config: CommonConfig, device: torch.device, bf16: bool) -> torch.dtype:
    """bf16 weights only for a frozen base on a GPU; on CPU autocast is as fast, and an fp32 base keeps merging
    small LoRA updates into the weights exact."""
    return torch.bfloat16 if bf16 and device.type == "cuda" and config.use_lora else torch.float32


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def add_lora(model, config: CommonConfig, task_type: str = "CAUSAL_LM"):
    """Wrap a model with a fresh LoRA adapter; for full fine-tuning, return it unchanged."""
    if not config.use_lora:
        return model
    from peft import LoraConfig, get_peft_model

    targets = config.lora_target_modules
    target_modules = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    layers = None
    if config.lora_layers:
        # PEFT takes a layer list only with named modules: 'all-linear' becomes the decoder's linear layer names.
        total = model.config.num_hidden_layers
        layers = list(range(max(0, total - config.lora_layers), total))
        if target_modules == "all-linear":
            head = model.get_output_embeddings()
            target_modules = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                                     if isinstance(module, torch.nn.Linear) and module is not head
                                     and ".layers." in name})
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=target_modules, task_type=task_type, layers_to_transform=layers)
    return get_peft_model(model, lora)


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(model, learning_rate: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trainable_parameters(model), lr=learning_rate, weight_decay=weight_decay)


def make_scheduler(optimizer, warmup_steps: int, total_steps: int):
    """The paper's schedule: linear warm-up, then cosine decay to zero."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup_steps, num_training_steps=max(1, total_steps))


def epoch_draws(n_examples: int, rng: random.Random, weights: list[float] | None = None) -> list[int]:
    """One epoch's examples in random order: each once, or with `weights` (one per example) each drawn about
    weight-proportionally often, n_examples draws in expectation. Stochastic rounding of the expected counts rather
    than independent draws, so that an example of weight 1 is seen about once per epoch, not Poisson(1) times."""
    if weights is None:
        order = list(range(n_examples))
    else:
        scale = n_examples / sum(weights)
        order = []
        for i, weight in enumerate(weights):
            expected = weight * scale
            order += [i] * (int(expected) + (rng.random() < expected - int(expected)))
    rng.shuffle(order)
    return order


def batch_schedule(n_examples: int, batch_size: int, epochs: float, seed: int, max_steps: int = 0,
                   groups: list[str | tuple[str, ...]] | None = None,
                   weights: list[float] | None = None) -> list[list[int]]:
    """Example indices of every optimizer step, fixed by the seed, so a resumed run sees the same batches.

    With `groups` (one key per example), each epoch fills batches from one group where it can: examples whose
    prompts share a long prefix then share its forward pass in a micro-batch (batching.make_micro_batch). A key
    may be a tuple of levels from coarse to fine, e.g. (the window's control list, the document): batches are
    filled from the finest level first, the leftovers of each fine group from their coarser group, and what is
    left after the coarsest level fills mixed batches. Every example is seen once per epoch (with `weights`,
    about weight-proportionally often; see epoch_draws), and batch order is shuffled. A fractional `epochs` keeps
    that share of the whole epochs' steps (1.5: the first epoch and the first half of the second's batches).
    """
    steps: list[list[int]] = []
    whole_epochs = math.ceil(epochs)
    for epoch in range(whole_epochs):
        rng = random.Random(f"{seed}:{epoch}")
        order = epoch_draws(n_examples, rng, weights)
        n_drawn = len(order)
        if groups is None:
            steps += [order[i : i + batch_size] for i in range(0, n_drawn, batch_size)]
            continue
        keys = [g if isinstance(g, tuple) else (g,) for g in groups]
        batches, rest = [], order
        for level in reversed(range(max(len(k) for k in keys))):
            by_group: dict[tuple[str, ...], list[int]] = {}
            for i in rest:
                by_group.setdefault(keys[i][: level + 1], []).append(i)
            rest = []
            for members in by_group.values():
                whole = len(members) - len(members) % batch_size
                batches += [members[i : i + batch_size] for i in range(0, whole, batch_size)]
                rest += members[whole:]
        batches += [rest[i : i + batch_size] for i in range(0, len(rest), batch_size)]
        rng.shuffle(batches)
        steps += batches
    if epochs != whole_epochs:
        steps = steps[: round(len(steps) * epochs / whole_epochs)]
    if max_steps:
        while len(steps) < max_steps and n_examples:  # more steps than epochs give: keep cycling
            steps += batch_schedule(n_examples, batch_size, 1, seed + len(steps), groups=groups, weights=weights)
        steps = steps[:max_steps]
    return steps


# Fields naming a model this run starts from or scores with: the same path may hold a model trained again since.
MODEL_FIELDS = ("init_from", "reward_model")


def trajectory(config: CommonConfig) -> dict:
    """The values of TRAJECTORY_FIELDS: what a resume state must have been saved with. For a finished lamforge model
    in a MODEL_FIELDS path, also which training made it (a digest of its model card): a LAM1 trained again at the
    same path before phase 2 resumes would otherwise go on from LAM2 weights trained on top of the old one."""
    values = dataclasses.asdict(config)
    fields = {k: values[k] for k in TRAJECTORY_FIELDS if k in values}
    for name in MODEL_FIELDS:
        card = Path(str(values.get(name) or "")) / METRICS_FILE
        if values.get(name) and card.is_file():
            fields[f"{name} made"] = hashlib.sha256(card.read_bytes()).hexdigest()[:16]
    return fields


# ---------------------------------------------------------------------------------------------------------------
# Progress.


@dataclass
class Meter:
    """Running numbers the progress bar and the model card show."""

    started: float = dataclasses.field(default_factory=time.perf_counter)
    tokens: int = 0
    loss: float = math.nan
    losses: list = dataclasses.field(default_factory=list)

    def update(self, loss: float, tokens: int) -> None:
        self.loss = loss
        self.losses.append(loss)
        self.tokens += tokens

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / max(1e-9, time.perf_counter() - self.started)


def progress_bar(description: str, disable: bool = False):
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=disable,
    )
