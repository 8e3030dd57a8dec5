"""`lamforge eval offline|online`: the paper's offline and online evaluations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from lamforge.console import print_error
from lamforge.jsonl import DataError
from lamforge.models.loading import DTYPE_HELP
from lamforge.prompt import NAME_PRIOR_HELP

# Each command imports its implementation inside itself: start-up time (every `lamforge` invocation imports this
# module; offline evaluation loads the agent's backends and the openai SDK, online the office and the task suite).

app = typer.Typer(help="Evaluate LAMs offline (held-out steps) and online (live Writer tasks).", no_args_is_help=True)
console = Console()


@app.command()
def offline(model: str = typer.Option(..., help="A trained LAM folder (or 'default' for the base model)."),
            data: Path = typer.Option(..., help="Held-out samples.jsonl (from `lamforge data collect --split test`)."),
            plans: Optional[Path] = typer.Option(None, help="Held-out task-plan pairs for the phase-1 plan metrics."),
            limit: Optional[int] = typer.Option(None, help="At most this many trajectories."),
            plan_limit: Optional[int] = typer.Option(None, help="At most this many task-plan pairs."),
            out: Optional[Path] = typer.Option(None, help="Write the full result (with every prediction) here."),
            train_data: Optional[Path] = typer.Option(
                None, help="The training samples.jsonl: adds Args Acc on steps whose argument values no training "
                           "target has (args_acc_unseen_values) and on the rest."),
            dtype: str = typer.Option("auto", help=f"The model's weights: {DTYPE_HELP}."),
            as_json: bool = typer.Option(False, "--json")):
    """Object, Operation, Args and Status accuracy, step and task success rate on held-out trajectories."""
    from lamforge.agent.backends import BackendError
    from lamforge.eval.offline import run_offline

    for path in (data, train_data):
        if path is not None and not path.exists():
            print_error(f"{path} not found")
            raise typer.Exit(1)
    try:
        result = run_offline(model, data, plans, limit, out, progress=not as_json, plan_limit=plan_limit,
                             train_data=train_data, dtype=dtype)
    except (DataError, BackendError) as exc:
        print_error(str(exc))
        raise typer.Exit(1)
    steps = {k: v for k, v in result["steps"].items() if k not in ("rows", "per_family")}
    if as_json:
        print(json.dumps({"model": model, "backend": result["backend"], "steps": steps, "plans": result.get("plans")},
                         indent=1))
        return
    table = Table(title=f"offline: {model} ({result['backend']})")
    keys = ["object_acc", "operation_acc", "args_acc", "status_acc", "ssr", "tsr", "ssr_exact", "tsr_exact", "steps",
            "tasks"]
    keys += [k for k in ("args_acc_unseen_values", "steps_unseen_values", "args_acc_seen_values", "steps_seen_values")
             if k in steps]
    for key in keys:
        table.add_column(key)
    table.add_row(*[str(steps.get(k)) for k in keys])
    console.print(table)
    if result.get("plans"):
        console.print(f"plans: {result['plans']}")


@app.command()
def online(agents: str = typer.Option("reference,retrieval", help="Comma-separated: base, lam1..lam4, reference, retrieval, or model folders."),
           checkpoints: Optional[Path] = typer.Option(None, help="Folder with lam1..lam4 checkpoints."),
           n: int = typer.Option(20, help="Test (or validation) tasks (the held-out sets get n/2 each)."),
           out: Path = typer.Option(Path("out/eval/online")),
           workers: int = typer.Option(1),
           split: Optional[list[str]] = typer.Option(
               None, help="Only these splits (repeatable). Default: test and the held-out ones; `--split validation` "
                          "for A/Bs that choose settings (documents of their own, never test's)."),
           category: Optional[list[str]] = typer.Option(
               None, help="Only test, validation and unseen-phrasing tasks of these categories (repeatable), as a pipeline "
                          "preset with categories evaluates."),
           ray: Optional[str] = typer.Option(
               None, "--ray", help="Run the workers as Ray actors: auto (the running cluster, else a local "
                                   "instance), local, or a cluster ADDRESS."),
           dtype: str = typer.Option("auto", help=f"The model agents' weights: {DTYPE_HELP}."),
           name_prior: float = typer.Option(0.0, min=0.0, help=NAME_PRIOR_HELP),
           as_json: bool = typer.Option(False, "--json")):
    """Every agent runs every task of the splits in the live app: TSR, time per task, steps and step latency."""
    import contextlib

    from lamforge.data.ray_rollouts import ray_session  # start-up time, as run_online
    from lamforge.eval.online import EVAL_SPLITS, run_online
    from lamforge.models.loading import dtype_problem

    problem = dtype_problem(dtype)
    if problem:  # before any office starts
        print_error(problem)
        raise typer.Exit(1)
    names = [a.strip() for a in agents.split(",") if a.strip()]
    try:
        with ray_session(ray, workers) if ray else contextlib.nullcontext():  # one Ray connection for every agent
            summary = run_online(names, out, n, checkpoints, splits=tuple(split or EVAL_SPLITS), workers=workers,
                                 progress=not as_json, categories=category or None, ray=ray, dtype=dtype,
                                 name_prior=name_prior)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print_error(str(exc))
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(summary, indent=1))
        return
    for split_name, per_agent in summary.items():
        table = Table(title=f"online, {split_name}")
        for column in ("agent", "TSR %", "tasks", "median s/task", "steps", "median s/step"):
            table.add_column(column)
        for agent, m in per_agent.items():
            table.add_row(agent, str(m.get("tsr", "-")), str(m.get("tasks", 0)), str(m.get("median_time_s", "-")),
                          str(m.get("mean_steps", "-")), str(m.get("median_step_latency_s", "-")))
        console.print(table)


def report(run: Path = typer.Option(Path("out/quick"), help="A pipeline run folder."),
           out: Optional[Path] = typer.Option(None, help="Report folder (run/report by default).")):
    """Write the self-contained HTML (and Markdown) report of a run."""
    from lamforge.eval.report import write_report

    html_path, md_path = write_report(run, out)
    console.print(f"report: {html_path} and {md_path}", soft_wrap=True)
