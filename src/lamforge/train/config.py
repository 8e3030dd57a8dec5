"""Typed configs for the four training phases and the reward model, with the paper's defaults and three presets.

One dataclass per method, TRL style: every field has a default and a docstring. Defaults are the paper's
settings (Mistral-7B, SFT lr 2e-5 cosine with 2 warm-up steps, batch 16, 3 epochs; reward model LoRA r=8/32/0.1;
PPO lr 1.4e-5, batch 8, minibatch 1, 4 epochs, target KL 0.1, initial KL coef 0.2). Presets are just values:

- tiny: the 2-layer random model and a handful of steps, for tests;
- quick: SmolLM2-135M-Instruct with LoRA and bf16 autocast, sized for a 2-core CPU;
- full: Mistral-7B-Instruct on one 80 GB GPU or N of them, LoRA in bf16 over a bf16 base with recomputed
  activations (`lamforge train plan --preset full` prints its memory; a full fine-tune of 7B needs sharding).

A config file (TOML, YAML or JSON) names a preset and overrides any field:

    preset = "quick"
    train_file = "data/steps_train.jsonl"
    output_dir = "runs/lam2"
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PHASES = ("1", "2", "3", "rm", "4")
OUTPUT_NAMES = {"1": "lam1", "2": "lam2", "3": "lam3", "rm": "rm", "4": "lam4"}
PREVIOUS = {"2": "lam1", "3": "lam2", "rm": "lam3", "4": "lam3"}
PRESETS = ("tiny", "quick", "full")
SECTIONS = {"1": "phase1", "2": "phase2", "3": "phase3", "rm": "rm", "4": "phase4"}


# Fields that take one of a few words; anything else is refused when the config is built.
CHOICES = {"sharding": ("none", "fsdp", "zero3"), "base_quantization": ("none", "8bit", "4bit")}


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which field and why."""


@dataclass
class CommonConfig:
    runs_dir: str = "runs"
    """Folder of a pipeline's models; output_dir and init_from default to runs_dir/lam1, lam2, lam3, rm, lam4."""
    output_dir: str = "runs/model"
    """Where the finished model, its model card and its resume state are written (default: runs_dir/<phase>)."""
    init_from: str = "default"
    """The model to start from: a folder, a Hugging Face id, 'default' or 'tiny'. Phase 1 starts from the preset's
    base model; the others default to the previous phase's output (2 <- lam1, 3 <- lam2, rm and 4 <- lam3)."""
    train_file: str = ""
    """JSONL training records: PlanPair lines for phase 1, StepSample lines for the other phases."""
    eval_file: str = ""
    """Held-out JSONL records of the same kind; empty: hold out `eval_fraction` of the tasks of train_file."""
    eval_fraction: float = 0.1
    """Share of tasks (not steps, so no task leaks across the split) held out when eval_file is empty."""
    max_length: int = 2048
    """Longest prompt + target in tokens; longer records are dropped and counted in the model card."""
    seed: int = 0
    use_lora: bool = True
    """Train a LoRA adapter instead of all weights (policies are merged into full weights when saved)."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = "all-linear"
    """PEFT's target_modules: 'all-linear' or a comma-separated list of module names."""
    lora_layers: int = 0
    """Adapt only the top N decoder layers (0: all). The layers below then need no backward pass, and with a frozen
    prompt the action's tokens run through them without gradients: on SmolLM2-135M, the top 15 of 30 layers halve
    the cost of the trained part of a step (3.7 s against 7.2 s per batch of 16, prompt excluded)."""
    keep_layer_states: bool = True
    """With lora_layers, keep on disk (output_dir/layer_states, removed when the phase ends) what the unadapted
    layers make of each example drawn more than once, so its later draws run only the adapted layers: the same
    computation, up to float rounding (train/layer_cache.py). Supervised phases in one process; ~3 MB per
    1,300-token example of SmolLM2, and kept only where the disk has room for it."""
    bf16: str = "auto"
    """'auto': bf16 where the hardware has it (autocast on CPU, bf16 weights on GPU); 'true' or 'false' to force."""
    device: str = "auto"
    """'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1', ... Under a launcher (`accelerate launch`,
    `torchrun`) with N processes, each process takes its own local GPU; give 'auto', 'cuda' or 'cpu' there."""
    sharding: str = "none"
    """How N processes hold the model. 'none': each holds all of it and gradients are averaged (DDP; gloo on CPU).
    'fsdp' (PyTorch FSDP2) or 'zero3' (DeepSpeed ZeRO-3, needs the deepspeed package): weights, gradients and
    optimizer state are split across the GPUs, for models that do not fit one. Sharding needs GPUs, and every
    process must then run the same layer calls, so micro-batches run without the shared-prefix split (same loss,
    more compute)."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's norms and MLP in the backward pass instead of keeping their activations
    (see `lamforge train plan` for what it saves). The same loss and gradients; attention is not recomputed,
    because the shared-prefix forward extends a KV cache that a recomputed layer would extend twice."""
    base_quantization: str = "none"
    """'4bit' (NF4 with double quantisation: QLoRA) or '8bit' loads the frozen base with bitsandbytes on a GPU;
    the LoRA adapter trains in fp32 and is merged into the unquantized base when the policy is saved. 'none': the
    base in bf16 (GPU) or fp32 (CPU)."""
    num_threads: int = 0
    """CPU threads for torch; 0 keeps torch's default (one per core). Fewer can be faster on a shared machine."""
    micro_batch_size: int = 4
    """Examples per forward pass; gradients accumulate up to the batch size. Lower it to save memory."""
    share_prefix: bool = True
    """Run the prompt prefix that a micro-batch's examples share (the system prompt) once, not once per example."""
    prompt_gradients: bool = True
    """Backpropagate through the prompt. False runs each prompt without gradients and trains only through its last
    token and the target: same loss, ~2.5x faster on CPU, far less memory, but the gradient leaves out how LoRA
    changes the prompt's keys and values (an approximation; see train/batching.py)."""
    prompt_tail: int = 0
    """With prompt_gradients false, the last this many prompt tokens still run with gradients, so LoRA learns how
    to represent them for the action: a step prompt ends with the task line (median 31 tokens, p95 42, with the
    chat template's closing tokens). 0: only the last prompt token. Used by the supervised phases (1-3)."""
    save_every: int = 20
    """Save the resume state every this many optimizer steps (and on Ctrl-C)."""
    max_steps: int = 0
    """Stop after this many optimizer steps in total; 0: train the full number of epochs."""
    eval_loss_examples: int = 256
    """Held-out examples the validation loss is taken over (0: all). On CPU a full pass over 10% of a few thousand
    ~1,500-token steps takes longer than the training it measures."""
    eval_generate: int = 32
    """Held-out examples to decode greedily for exact-match accuracy (decoding is the slow part of evaluation)."""
    max_new_tokens: int = 160
    """Decoding limit for evaluation."""
    limit_train: int = 0
    """Use only the first N training records (0: all); for quick trials."""
    family_weights: str = ""
    """Spend each epoch's samples where a model fails: a JSON file of {family: weight}, or a `lamforge eval offline`
    report of an earlier model on held-out steps (its smoothed share of failed steps, at least 0.1). An epoch then
    draws each example weight-proportionally often (as many draws as examples in all); empty: each example once."""
    max_controls: int = 0
    """Show the model at most this many main-window controls per step, the menus and those most related to the task
    (models/relevance.py); 0: all. The model card records it and the agent and offline evaluation run the model with
    it; a pipeline's phases should all use the same value."""


@dataclass
class SFTConfig(CommonConfig):
    """Supervised fine-tuning: phase 1 (task -> plan), phase 2 (state -> action) and phase 3 (the union)."""

    learning_rate: float = 2e-5
    """Peak learning rate; cosine decay after warm-up (paper: 2e-5 for a full fine-tune)."""
    warmup_steps: int = 2
    batch_size: int = 16
    """Examples per optimizer step."""
    epochs: float = 3
    """Passes over the training data; a fraction stops the last pass part way (1.5: one pass and half of a second),
    with the learning-rate schedule sized to the steps that run."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    merge: bool = True
    """Save the policy as merged full weights (fast loading for the agent) rather than as an adapter."""
    new_samples_file: str = ""
    """Phase 3: JSONL StepSamples that LAM2's exploration produced on the tasks the demonstrator failed."""


@dataclass
class RewardConfig(CommonConfig):
    """The reward model: LAM3's backbone with a scalar head, MSE on +1/-1 step labels, scores squashed by a sigmoid."""

    learning_rate: float = 1e-4
    warmup_steps: int = 2
    batch_size: int = 16
    epochs: float = 1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    balance_classes: bool = True
    """Weight the MSE so successful and failed steps count equally (failed steps are usually the majority)."""


@dataclass
class PPOConfig(CommonConfig):
    """Offline PPO on the steps of failed trajectories, scored by the reward model, with a KL penalty to LAM3."""

    reward_model: str = ""
    """The reward model folder (default: runs_dir/rm)."""
    learning_rate: float = 1.4e-5
    batch_size: int = 8
    """Samples whose old log-probabilities are taken together before the PPO epochs."""
    mini_batch_size: int = 1
    """Samples per optimizer step within a PPO epoch."""
    ppo_epochs: int = 4
    epochs: float = 1
    """Passes over the failed-trajectory steps."""
    cliprange: float = 0.2
    """PPO's ratio clip epsilon."""
    init_kl_coef: float = 0.2
    target_kl: float = 0.1
    """Target of the adaptive KL controller (Ziegler et al. 2019), per sample, summed over response tokens."""
    kl_horizon: int = 10000
    adaptive_kl: bool = True
    max_grad_norm: float = 1.0
    merge: bool = True
    micro_batch_size: int = 1
    lora_dropout: float = 0.0
    """Dropout would make the old and new log-probabilities differ at ratio 1; PPO needs it off."""


CONFIG_CLASSES: dict[str, type[CommonConfig]] = {"1": SFTConfig, "2": SFTConfig, "3": SFTConfig, "rm": RewardConfig, "4": PPOConfig}

# Preset values per phase. "*" applies to every phase; a phase's own entry wins.
PRESET_VALUES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "1": {"init_from": "tiny"},
        "*": {"batch_size": 4, "micro_batch_size": 2, "epochs": 1, "max_steps": 4, "save_every": 2,
              "eval_generate": 2, "max_new_tokens": 24, "learning_rate": 1e-3, "lora_r": 4, "lora_alpha": 8,
              "max_length": 1536, "prompt_gradients": False},  # as quick, so CI runs every phase that way
        "2": {"prompt_tail": 64},  # a trained tail as in quick (128 there; 64 keeps the tiny runs short)
        "rm": {"lora_r": 4, "lora_alpha": 16, "max_steps": 6},
        "4": {"batch_size": 2, "mini_batch_size": 1, "ppo_epochs": 2, "learning_rate": 1e-3, "micro_batch_size": 1},
    },
    "quick": {
        # Sized by measurement on a 2-core CPU: with a frozen prompt, grouped control names and window-grouped
        # batches, phase 2 trains ~0.55 step samples/s (0.39 before those two changes; medians of 4 batches of 8
        # of the quick run's samples), so each phase gets a step budget rather than epochs. No LoRA dropout: on
        # CPU it copies every adapted layer's input.
        "*": {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "micro_batch_size": 4, "max_length": 1536,
              "prompt_gradients": False, "eval_generate": 8, "eval_loss_examples": 24, "save_every": 5,
              "lora_layers": 15},
        "1": {"init_from": "default", "learning_rate": 5e-4, "epochs": 1, "max_steps": 15, "lora_layers": 0},
        # Epochs matter more than anything else tried. On 7 character families (132 samples, 18 test steps), one
        # epoch (16 updates of 8) left the LAM repeating select_text at step 2: SSR 39-50% with LoRA at 3e-3, full
        # fine-tuning at 2e-4, or prompt gradients at 5e-4. 2.4 epochs at 5e-4 gave 50%; 96 updates of 4 at 2e-3
        # (2.9 epochs) gave 88.9%.
        # All 38 trained families (~2,200 step samples): one epoch (138 updates of 16) left the LAM replaying the
        # Character-dialog route (offline SSR 36.9% on the 44 test tasks, run of 2026-11-30): the character-only
        # A/B found the same after one epoch and needed ~3 (run F in docs/results.md). Two epochs fitted beside the
        # other stages; three (below, arm F) are over the 2-hour budget and chosen for quality.
        # Batches of 16 share their (controls, document) prefixes, and LoRA on the top 15 layers halves the cost
        # of the trained part (see `lamforge train bench`).
        # The task line trains with gradients (prompt_tail 64 covers it whole): on the same data, offline Args
        # 78.0 -> 83.9, online test 20 -> 22 of 44, unseen phrasings 5 -> 9 of 12, for 1.24x phase 2's time
        # (the prompt_tail A/B in docs/results.md).
        # The history sits just above the task line (prompt version 4) and prompt_tail 128 covers it for most
        # steps: online test 20 -> 23 of 44, lo_templates 15 -> 18 of 34 for 1.09x phase 2's time (arm G).
        # A third epoch (arm F: arm E's LAM2 trained one more epoch, a fresh schedule) took offline exact TSR
        # from 40.9 to 63.6 and online test from 20 to 28 of 44 for +34 minutes. docs/results.md has both A/Bs.
        # Batches of 8 (arm B8): updates, not passes, were what one epoch lacked. One epoch in batches of 8 (278
        # updates) costs what one in batches of 16 costs (0.77 against 0.75 s per example: a batch of 8 still shares
        # its window's prefix) and took offline exact TSR from 7-9 to 15 of 44, online test from 8-10 to 15 of 44,
        # lo_templates from 4-7 to 14 of 34. Two epochs of 8 (556 updates, 73 minutes) replace three of 16 (414
        # updates, ~108 minutes estimated): online test 26 of 44 (three of 16: 28), lo_templates 17 of 34 (17),
        # unseen phrasings 5 of 12 (9). docs/results.md has the A/B.
        # One epoch in batches of 4 (arm B4: 555 updates, 34.6 minutes, 0.91 s per example) then matched two of 8
        # online, 50 against 49 of the same 95 tasks (test 24 against 26 of 44, lo_templates 16 against 17 of 34,
        # unseen phrasings 9 against 5 of 12; offline exact TSR 50.0 against 54.5) in 47% of phase 2's time.
        # Half an epoch more (arm E15: 1,164 updates of 4, affordable since the loop runs under jemalloc): arm IP's
        # data and LAM1, LAM2 online with grounded spans, test 38 of 44, lo_templates 26 of 34, unseen phrasings
        # 9 of 12: 74 of the 95 online tasks, against arm IP's 62 (31, 22 and 8), offline exact TSR
        # 70.5 -> 86.4, for 66.3 against 46.3 minutes of phase 2. docs/results.md has the A/B.
        # A quarter more (arm E175: 1,356 updates, 64.4 minutes, flat at 2.85 s per update): the fresh make demo's
        # data, LAM1 and seed, so its LAM2 is the other arm; online test 34 -> 38 of 44, offline SSR 92.3 -> 95.8 and
        # TSR 77.3 -> 86.4 (exact TSR 75.0 both); on the held-out splits 11 of 12 phrasings, 25 of 34 lo_templates.
        # One draw, in the direction of every earlier epoch A/B. docs/results.md has it.
        "2": {"learning_rate": 2e-3, "epochs": 1.75, "max_steps": 0, "batch_size": 4, "micro_batch_size": 4,
              "prompt_tail": 128},
        "3": {"learning_rate": 2e-4, "epochs": 1, "max_steps": 6},
        "rm": {"learning_rate": 2e-4, "epochs": 1, "lora_r": 8, "lora_alpha": 32, "lora_dropout": 0.1, "max_steps": 6},
        "4": {"learning_rate": 5e-5, "max_steps": 2},
    },
    "full": {
        # Sized with `lamforge train plan --preset full`: micro-batches of 8 rows of 4,096 tokens with prompt
        # gradients need 239 GiB per GPU; 2 rows with recomputed norms and MLPs 39 GiB, so one 80 GB GPU (or 8,
        # sharded) holds it. The batch stays 16 (accumulated over micro-batches).
        "*": {"lora_r": 64, "lora_alpha": 128, "micro_batch_size": 2, "gradient_checkpointing": True,
              "max_length": 4096, "eval_generate": 200, "save_every": 50, "device": "cuda"},
        "1": {"init_from": "mistralai/Mistral-7B-Instruct-v0.3", "learning_rate": 1e-4},
        "2": {"learning_rate": 1e-4},
        "3": {"learning_rate": 5e-5},
        "rm": {"lora_r": 8, "lora_alpha": 32, "lora_dropout": 0.1},
        "4": {"micro_batch_size": 1},
    },
}


def preset_values(preset: str, phase: str) -> dict[str, Any]:
    if preset not in PRESET_VALUES:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESET_VALUES[preset].get("*", {}))
    values.update(PRESET_VALUES[preset].get(phase, {}))
    return values


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        if path.suffix == ".json":
            return json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot parse {path}: {exc}") from exc
    raise ConfigError(f"{path}: config files must be .toml, .yaml or .json")


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Turn CLI strings ('1e-4', 'true') into the field's type; file values are checked the same way."""
    kind = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected {kind}, got {value!r}") from exc
    return value


def build_config(phase: str, file: str | Path | None = None, preset: str | None = None,
                 overrides: dict[str, Any] | None = None) -> CommonConfig:
    """Resolve a phase's config: class defaults < preset < config file < explicit overrides."""
    phase = str(phase)
    if phase not in CONFIG_CLASSES:
        raise ConfigError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
    cls = CONFIG_CLASSES[phase]
    from_file = read_config_file(file) if file else {}
    # A file may hold one section per phase ([phase2], [rm], ...) beside shared top-level values.
    shared = {k: v for k, v in from_file.items() if k not in SECTIONS.values()}
    own = from_file.get(SECTIONS[phase]) or {}
    chosen_preset = preset or own.get("preset") or shared.get("preset")
    values: dict[str, Any] = preset_values(chosen_preset, phase) if chosen_preset else {}
    for source in (shared, own, overrides or {}):
        values.update({k: v for k, v in source.items() if k != "preset"})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown field(s) for phase {phase}: {', '.join(unknown)}")
    # The pipeline chain: each phase writes runs_dir/<name> and starts from the previous phase's folder.
    runs = Path(str(values.get("runs_dir", CommonConfig.runs_dir)))
    values.setdefault("output_dir", str(runs / OUTPUT_NAMES[phase]))
    if phase in PREVIOUS:
        values.setdefault("init_from", str(runs / PREVIOUS[phase]))
    if phase == "4":
        values.setdefault("reward_model", str(runs / "rm"))
    config = cls(**{k: _coerce(cls, k, v) for k, v in values.items()})
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {getattr(config, name)!r}")
    return config


def config_dict(config: CommonConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


__all__ = [
    "CommonConfig", "SFTConfig", "RewardConfig", "PPOConfig", "ConfigError", "PHASES", "PRESETS", "build_config",
    "config_dict", "preset_values", "read_config_file",
]
