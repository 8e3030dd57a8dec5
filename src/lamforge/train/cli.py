"""`lamforge train`: one command per phase, plus the speed bench.

    lamforge train --phase 1|2|3|rm|4 --config FILE [--preset tiny|quick|full] [--set key=value ...]
    lamforge train bench [--json]
    lamforge train plan --preset full --gpus N --gpu-mem GIB [--json]
    lamforge train show-config --phase 2 --preset quick
    lamforge train prepare-model
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from lamforge.console import print_error, print_warning
from lamforge.jsonl import DataError
from lamforge.models.base_model import BaseModelError, ensure_default_model, ensure_tiny_model
from lamforge.models.checkpoints import read_metrics
from lamforge.train.bench import CONFIGS as BENCH_CONFIGS
from lamforge.train.config import PHASES, ConfigError, build_config
from lamforge.train.plan import PlanError, make_plan, refusal

# The commands import the training code (torch, transformers) inside themselves: start-up time. Every `lamforge`
# invocation imports this module.

app = typer.Typer(help="Train the LAM: phases 1-3 (SFT), rm (reward model) and 4 (offline PPO).", invoke_without_command=True)
console = Console(stderr=True)


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _fail(message: str, code: int = 1):
    print_error(message)
    raise typer.Exit(code)


@app.callback()
def train(
    ctx: typer.Context,
    phase: Optional[str] = typer.Option(None, "--phase", help=f"Which phase to train: {', '.join(PHASES)}."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/YAML/JSON config file (a preset plus overrides)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="tiny, quick or full; overrides the file's preset."),
    set_: list[str] = typer.Option([], "--set", help="Override one field, e.g. --set learning_rate=1e-4 (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Train again even if output_dir holds a finished model."),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", min=1, help="End this run after N optimizer "
                                             "steps with the resume state saved (split a long run into sessions)."),
) -> None:
    """Train one phase. Interrupted runs resume from their last saved step when the same command is run again.

    On N processes, start the same command under a launcher: `accelerate launch -m lamforge.cli train ...` or
    `torchrun --nproc_per_node N -m lamforge.cli train ...` (README, "Training on N GPUs").
    """
    if ctx.invoked_subcommand is not None:
        return
    if phase is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    from lamforge.train.distributed import is_main_process
    from lamforge.train.runtime import TrainingInterrupted

    main = is_main_process()  # under a launcher every process runs this command; one of them reports
    try:
        cfg = build_config(phase, config, preset, _overrides(set_))
        if main:
            console.print(f"phase {phase} -> {cfg.output_dir} (from {cfg.init_from})")
        if phase in ("1", "2", "3"):
            from lamforge.train.sft import train_sft

            out = train_sft(cfg, phase, overwrite=overwrite, stop_after=stop_after)
        elif phase == "rm":
            from lamforge.train.reward import train_reward_model

            out = train_reward_model(cfg, overwrite=overwrite, stop_after=stop_after)
        else:
            from lamforge.train.ppo_offline import train_ppo

            out = train_ppo(cfg, overwrite=overwrite, stop_after=stop_after)
    except TrainingInterrupted as stop:
        if main:
            print_warning(f"{stop}; run the same command to resume")
        raise typer.Exit(130)
    except (ConfigError, DataError, BaseModelError, FileNotFoundError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    if not main:
        return
    metrics = read_metrics(out).get("metrics", {})
    table = Table(title=f"{out}")
    table.add_column("metric")
    table.add_column("value")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


@app.command("show-config")
def show_config(
    phase: str = typer.Option(..., "--phase"),
    config: Optional[Path] = typer.Option(None, "--config"),
    preset: Optional[str] = typer.Option(None, "--preset"),
    set_: list[str] = typer.Option([], "--set"),
) -> None:
    """Print the resolved config of a phase (defaults < preset < file < --set) as JSON."""
    try:
        cfg = build_config(phase, config, preset, _overrides(set_))
    except ConfigError as exc:
        _fail(str(exc))
    print(json.dumps(dataclasses.asdict(cfg), indent=2))


@app.command("plan")
def plan(
    preset: Optional[str] = typer.Option(None, "--preset", help="tiny, quick or full."),
    gpus: int = typer.Option(1, "--gpus", help="GPUs (processes) the run will use."),
    gpu_mem: float = typer.Option(80.0, "--gpu-mem", help="Memory of one GPU in GiB."),
    phase: list[str] = typer.Option([], "--phase", help=f"Phase to plan, repeatable (default: {', '.join(PHASES)})."),
    config: Optional[Path] = typer.Option(None, "--config", help="Config file, as for training."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set sharding=fsdp (repeatable)."),
    model: Optional[str] = typer.Option(None, "--model", help="Plan for this model's shape instead of the config's."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Memory per GPU of each phase (weights, LoRA and optimizer state, activations at the preset's lengths and
    micro-batch, with and without checkpointing), worked out before anything is loaded. Exits 1 if it does not fit."""
    try:
        result = make_plan(preset, gpus, gpu_mem, phase or None, config, _overrides(set_), model)
    except (ConfigError, PlanError) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        table = Table(title=f"memory per GPU (GiB), {gpus} GPU(s) of {gpu_mem:g} GiB, preset {preset}")
        for column in ("phase", "weights", "LoRA+Adam", "activations", "(no ckpt)", "backward", "other",
                       "reserve", "total", "fits"):
            table.add_column(column)
        for name, p in result["phases"].items():
            g = p["gib"]
            other = sum(v for k, v in g.items() if k not in ("weights", "trainable_state", "activations",
                                                              "backward_working_set", "reserve", "total"))
            table.add_row(name, str(g["weights"]), str(g["trainable_state"]), str(g["activations"]),
                          str(p["activations_gib"]["without_checkpointing"]), str(g["backward_working_set"]),
                          f"{other:.2f}", str(g["reserve"]), str(g["total"]), "yes" if p["fits"] else "[red]no[/red]")
        Console(width=120).print(table)
        first = next(iter(result["phases"].values()))
        console.print(f"model {first['model']} ({first['params'] / 1e9:.2f}B parameters, shape from "
                      f"{first['shape_from']}); assumptions: {result['assumptions']}")
    if not result["fits"]:
        _fail(f"the plan does not fit: {refusal(result)}")


@app.command("prepare-model")
def prepare_model(tiny: bool = typer.Option(False, "--tiny", help="Also build the tiny random test model.")) -> None:
    """Convert the offline default model (SmolLM2-135M-Instruct GGUF) into a cached HF checkpoint, once."""
    try:
        console.print(f"default model: {ensure_default_model()}")
        if tiny:
            console.print(f"tiny model: {ensure_tiny_model()}")
    except BaseModelError as exc:
        _fail(str(exc))


@app.command("bench")
def bench(
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    model: str = typer.Option("default", "--model", help="Model to bench (default: SmolLM2-135M-Instruct)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Batch size of the naive and exact configurations."),
    micro_batch_size: int = typer.Option(4, "--micro-batch-size", help="Micro-batch size of naive and exact."),
    samples: int = typer.Option(32, "--samples", help="Examples each configuration trains, after a warm-up batch."),
    data: Optional[Path] = typer.Option(None, "--data", help="Train on a collected samples.jsonl (real prompts) "
                                        "instead of synthetic samples."),
    configs: str = typer.Option(",".join(BENCH_CONFIGS), "--configs", help="Comma-separated configurations."),
) -> None:
    """Training speed and peak memory of the same data run several ways: naive full fine-tune, exact LoRA, the
    quick preset before and now."""
    from lamforge.train.bench import run_bench

    names = tuple(c.strip() for c in configs.split(",") if c.strip())
    try:
        with console.status(f"benchmarking {', '.join(names)} (minutes)"):
            result = run_bench(model, batch_size, micro_batch_size, samples, str(data or ""), names)
    except (BaseModelError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"training speed, {model}, {result['examples_from']}")
    for column in ("config", "batch/micro", "s/example", "examples/s", "tokens/s", "peak RSS GB"):
        table.add_column(column)
    for name in names:
        r = result[name]
        settings = f"{r['settings']['batch_size']}/{r['settings']['micro_batch_size']}"
        table.add_row(name, settings, str(r["seconds_per_example"]), str(r["examples_per_second"]),
                      str(r["tokens_per_second"]), str(r["peak_rss_gb"]))
    Console().print(table)
    Console().print("speed-ups (ratio of seconds per example): "
                    + ", ".join(f"{k} {v}x" for k, v in result["speedups"].items()))
