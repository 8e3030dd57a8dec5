"""`lamforge data ...`: build the training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from lamforge.console import print_error, print_warning
from lamforge.data.evolve import EvolveReport, client_chat
from lamforge.data.plan_pairs import make_plan_files
from lamforge.data.plans import DEFAULT_HELP_DIR, CleaningReport, HelpNotFoundError
from lamforge.env.office import OfficeNotInstalled
from lamforge.jsonl import write_jsonl
from lamforge.models.loading import DTYPE_HELP
from lamforge.prompt import NAME_PRIOR_HELP

# `collect` imports the dataflow inside itself and `plans` the LLM client: start-up time (the agent's backends, the
# models and the openai SDK are seconds that every `lamforge` invocation would pay, since it imports this module).

app = typer.Typer(help="Build the training data (phase 1: task-plan pairs from the help).", no_args_is_help=True)
err = Console(stderr=True)

DEFAULT_OUT = Path("out/data/plans.jsonl")


def _report_tables(report: CleaningReport, evolve_report: EvolveReport | None, files: dict[str, int]) -> list[Table]:
    stages = Table(title=f"Task-plan pairs from the help ({report.pages_read} pages read)")
    stages.add_column("cleaning step")
    stages.add_column("pairs left", justify="right")
    stages.add_column("dropped", justify="right")
    stages.add_column("example dropped")
    for name, left, dropped in report.stages:
        reason = name.removeprefix("drop ")
        stages.add_row(name, str(left), str(dropped) if name != "raw pairs" else "", report.examples.get(reason, ""))

    raw = Table(title="Raw pairs by layout and module")
    raw.add_column("kind")
    raw.add_column("pairs", justify="right")
    for pattern, n in sorted(report.raw_by_pattern.items()):
        raw.add_row(f"layout {pattern}", str(n))
    for module, n in sorted(report.raw_by_module.items()):
        raw.add_row(f"module {module}", str(n))

    steps = Table(title="Steps of pairs from Writer and shared pages")
    steps.add_column("step count")
    steps.add_column("n", justify="right")
    for name, n in sorted(report.step_counts.items()):
        steps.add_row(name, str(n))

    tables = [raw, stages, steps]
    if evolve_report is not None:
        evolved = Table(title="Evolved pairs")
        evolved.add_column("outcome")
        evolved.add_column("n", justify="right")
        for origin, n in sorted(evolve_report.made.items()):
            evolved.add_row(f"made {origin}", str(n))
        for reason, n in sorted(evolve_report.rejected.items()):
            evolved.add_row(f"rejected: {reason}", str(n))
        if evolve_report.skipped_existing:
            evolved.add_row("already in the file (resumed)", str(evolve_report.skipped_existing))
        tables.append(evolved)
    written = Table(title="Files")
    written.add_column("file")
    written.add_column("pairs", justify="right")
    for path, n in files.items():
        written.add_row(path, str(n))
    tables.append(written)
    return tables


@app.command("plans")
def plans(
    help_dir: Path = typer.Option(DEFAULT_HELP_DIR, help="LibreOffice help language folder (holds text/)."),
    out: Path = typer.Option(DEFAULT_OUT, help="Output JSONL; <stem>.train.jsonl and <stem>.test.jsonl go beside it."),
    evolve_n: int = typer.Option(0, "--evolve", min=0, help="Evolved pairs to add (from the train split)."),
    test_fraction: float = typer.Option(0.1, min=0.0, max=1.0, help="Share of help pairs held out as test."),
    seed: int = typer.Option(0, help="Seed for choosing evolution seeds and rules."),
    llm_url: Optional[str] = typer.Option(
        None, envvar="LAMFORGE_LLM_URL", help="OpenAI-compatible base URL (…/v1); with it, evolving uses the LLM."
    ),
    llm_model: Optional[str] = typer.Option(
        None, envvar="LAMFORGE_LLM_MODEL", help="Model name; default: the first the server lists."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the counts as JSON instead of tables."),
) -> None:
    """Mine task-plan pairs from LibreOffice's help, clean them, optionally evolve more, and write JSONL."""
    from lamforge.llm import LLMClient, LLMError  # start-up time: the openai SDK takes ~0.4 s to import

    try:
        chat = client_chat(LLMClient(url=llm_url, model=llm_model)) if llm_url and evolve_n else None
        made = make_plan_files(out, help_dir, evolve_n, test_fraction, seed, chat=chat, console=err)
    except HelpNotFoundError as exc:
        print_error(str(exc))
        raise typer.Exit(1) from None
    except LLMError as exc:
        print_error(f"{exc} (pairs made so far are in {out}; rerun to resume)")
        raise typer.Exit(1) from None
    if json_output:
        summary = {
            "help_pairs": len(made.help_pairs),
            "report": made.report.to_dict(),
            "evolve": made.evolve_report.to_dict() if made.evolve_report else None,
            "files": made.files,
        }
        typer.echo(json.dumps(summary, indent=2))
    else:
        console = Console()
        for table in _report_tables(made.report, made.evolve_report, made.files):
            console.print(table)
        console.print(f"[bold]{len(made.help_pairs)}[/bold] cleaned task-plan pairs from the help, "
                      f"{made.files[str(out)]} in {out}.")


@app.command("collect")
def collect_cmd(
    demonstrator: str = typer.Option("oracle", help="oracle | plan | llm | model"),
    split: str = typer.Option("train", help="train | validation | test | unseen_phrasing | unseen_family | lo_templates"),
    n: int = typer.Option(100, help="Task instances (the same ones on every run with the same seed)."),
    workers: int = typer.Option(2, help="Parallel workers, each with its own LibreOffice."),
    out: Path = typer.Option(Path("out/data/collect"), help="Run folder; rerun the same command to resume."),
    seed: int = 0,
    plans: Path = typer.Option(Path("out/data/plans.jsonl"), help="Mined plans, for the plan demonstrator."),
    model: Optional[str] = typer.Option(None, help="Trained LAM checkpoint, for the model demonstrator."),
    attempts: int = typer.Option(1, help="Attempts per task; the first success wins."),
    max_steps: int = typer.Option(20),
    judge: bool = typer.Option(False, help="Also ask the configured LLM endpoint (LAMFORGE_LLM_URL) for a verdict."),
    family: Optional[list[str]] = typer.Option(None, help="Only these families (repeatable)."),
    paraphrase: bool = typer.Option(
        True, help="With an LLM endpoint (LAMFORGE_LLM_URL), reword train instructions, every value kept."),
    ray: Optional[str] = typer.Option(
        None, "--ray", help="Run the workers as Ray actors: auto (the running cluster, else a local instance), "
                            "local, or a cluster ADDRESS."),
    shard: Optional[str] = typer.Option(
        None, help="i/n: collect only the i-th of n shares of the tasks (from 0); join them with `lamforge data "
                   "merge`."),
    document_draws: int = typer.Option(
        1, min=1, help="Train tasks start from this many draws of each train document (1: the 13 fixed ones)."),
    device: str = typer.Option("auto", help="The model demonstrator's device: auto (a GPU per worker), cpu, cuda:1."),
    dtype: str = typer.Option("auto", help=f"The model demonstrator's weights: {DTYPE_HELP}."),
    name_prior: float = typer.Option(0.0, min=0.0, help=NAME_PRIOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Instantiate tasks, run a demonstrator in live Writer, check each result, and write trajectories and samples."""
    from lamforge.data.collect import CollectConfig, collect  # start-up time: the agent, models and task suite
    from lamforge.models.loading import dtype_problem
    from lamforge.tasks.splits import document_draws_problem

    problem = dtype_problem(dtype) or document_draws_problem(split, document_draws)
    if problem:  # before any office starts or the run folder is made
        print_error(problem)
        raise typer.Exit(1)
    console = Console(stderr=as_json)
    config = CollectConfig(out=out, demonstrator=demonstrator, split=split, n=n, workers=workers, seed=seed,
                           plans=plans, model=model, attempts=attempts, max_steps=max_steps, judge=judge,
                           families=family or None, paraphrase=paraphrase, ray=ray, shard=shard, device=device,
                           dtype=dtype, document_draws=document_draws, name_prior=name_prior)
    from lamforge.signals import stop_signals_interrupt

    try:
        with stop_signals_interrupt():  # SIGTERM, SIGHUP: as Ctrl-C, the workers stopped, every finished task kept
            summary = collect(config, show_progress=not as_json)
    except KeyboardInterrupt:
        print_warning(f"stopped; the tasks finished so far are in {out}; run the same command to go on")
        raise typer.Exit(130)
    except (OfficeNotInstalled, FileNotFoundError, ValueError, RuntimeError, OSError) as exc:
        print_error(str(exc))
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    run = summary["this_run"]
    console.print(f"{summary['tasks']} tasks ({summary['successes']} succeeded, {summary['success_rate']:.1%}); "
                  f"{summary['samples']} samples; this run: {run['tasks']} tasks in {run['wall_s']} s = "
                  f"{run['tasks_per_hour']} tasks/hour with {run['workers']} worker(s); time split {run['time_split_s']}")
    console.print(f"written to {out}/trajectories.jsonl, samples.jsonl, ufo/, summary.json", soft_wrap=True)


@app.command("merge")
def merge_cmd(
    shards: list[Path] = typer.Argument(..., help="Run folders of `lamforge data collect --shard i/n`."),
    out: Path = typer.Option(..., help="The merged run folder; merging again adds only what is new."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Merge shard run folders into one: each task once, refusing folders collected with other settings."""
    from lamforge.data.runlock import RunFolderBusy
    from lamforge.data.shards import MergeRefused, merge_runs  # start-up time, as collect

    console = Console(stderr=as_json)
    try:
        summary = merge_runs(shards, out)
    except (MergeRefused, RunFolderBusy) as exc:
        print_error(str(exc))
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    merged = summary["merged"]
    console.print(f"{summary['tasks']} tasks in {out} ({merged['new_tasks']} new, {merged['already_there']} already "
                  f"there; {summary['missing_tasks']} of {summary['expected_tasks']} not collected yet), "
                  f"{summary['samples']} samples", soft_wrap=True)


@app.command("reword")
def reword_cmd(
    folders: list[Path] = typer.Argument(..., help="Run folders of `lamforge data collect` (their samples.jsonl and "
                                                   "trajectories.jsonl)."),
    out: Path = typer.Option(..., help="The training file to write: the folders' samples with the copies."),
    copies: int = typer.Option(1, min=0, help="Reworded copies of each successful step."),
    seed: int = typer.Option(0, help="Seed of the rewordings."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
):
    """Training data with each successful step also asked other ways: copies whose request is reworded by the
    family's training phrasings (values verbatim, never the held-out phrasing). Train phase 2 or 3 on --out."""
    from lamforge.data.reworded import MARK, reworded_run_folders
    from lamforge.data.run_folder import SAMPLES

    console = Console(stderr=as_json)
    missing = [str(f) for f in folders if not (f / SAMPLES).exists()]
    if missing:
        print_error(f"no samples.jsonl in {', '.join(missing)} (not a `data collect` run folder)")
        raise typer.Exit(1)
    samples = reworded_run_folders(folders, copies, seed)
    write_jsonl(out, samples)
    added = sum(MARK in s.sample_id for s in samples)
    counts = {"out": str(out), "samples": len(samples), "recorded": len(samples) - added, "reworded_copies": added}
    if as_json:
        typer.echo(json.dumps(counts, indent=2))
        return
    console.print(f"{counts['recorded']} recorded samples + {added} reworded copies -> {out}", soft_wrap=True)


@app.command("bench")
def bench_cmd(
    n: int = typer.Option(12, help="Task instances, the same ones for each executor."),
    workers: int = typer.Option(2, help="Workers of each executor, each with its own LibreOffice."),
    rounds: int = typer.Option(1, help="Runs of each executor, in alternating order (ABBA...), summed."),
    family: Optional[list[str]] = typer.Option(
        None, help="Only these families (repeatable); default: bold, align, line_spacing."),
    ray: str = typer.Option("local", "--ray", help="The Ray executor's cluster: local, auto or an ADDRESS."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
):
    """Collection throughput of Ray actors against local worker processes: the oracle on the same tasks, each run
    into a fresh folder, timed from its start (offices, and Ray's start, included) to its last record."""
    import tempfile

    from lamforge.data.collect import CollectConfig, collect  # start-up time, as collect_cmd

    console = Console(stderr=as_json)
    families = family or ["bold", "align", "line_spacing"]
    runs: dict[str, list[dict]] = {"processes": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="lamforge-bench-") as tmp:
        for round_ in range(rounds):
            # Alternate which goes first, so that a load that drifts during the bench falls on both alike.
            order = ("processes", "ray") if round_ % 2 == 0 else ("ray", "processes")
            for name in order:
                config = CollectConfig(out=Path(tmp) / f"{name}-{round_}", n=n, workers=workers, families=families,
                                       paraphrase=False, ray=ray if name == "ray" else None)
                try:
                    summary = collect(config, show_progress=False)
                except (OfficeNotInstalled, ValueError, RuntimeError) as exc:
                    print_error(f"{name}: {exc}")
                    raise typer.Exit(1)
                runs[name].append({"tasks": summary["this_run"]["tasks"], "successes": summary["successes"],
                                   "wall_s": summary["this_run"]["wall_s"]})
    results = {}
    for name, done in runs.items():
        tasks, wall = sum(r["tasks"] for r in done), sum(r["wall_s"] for r in done)
        results[name] = {"tasks": tasks, "successes": sum(r["successes"] for r in done), "wall_s": round(wall, 1),
                         "tasks_per_hour": round(tasks / wall * 3600, 1) if wall else 0.0,
                         "wall_s_per_round": [r["wall_s"] for r in done]}
    local, remote = results["processes"]["tasks_per_hour"], results["ray"]["tasks_per_hour"]
    report = {"n": n, "workers": workers, "rounds": rounds, "families": families, **results,
              "ray_vs_processes": round(remote / local, 3) if local else None}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for name, r in results.items():
        console.print(f"{name:>9}: {r['tasks']} tasks ({r['successes']} succeeded) in {r['wall_s']} s = "
                      f"{r['tasks_per_hour']} tasks/hour")
    console.print(f"Ray / processes: {report['ray_vs_processes']}x")
