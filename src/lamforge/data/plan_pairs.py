"""Phase-1 data end to end: mine the help, clean, evolve, and write plans.jsonl with its train and test files.

`lamforge data plans` and the pipeline's first stage both call `make_plan_files`; the command only prints.
Rule-based evolved pairs are remade on every run (they are deterministic). LLM-evolved pairs cost calls, so those
already in the file are kept and the rest are appended one by one as they come: an interrupted run loses at most
the call in flight, and a rerun resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from rich.console import Console
from rich.progress import track

from lamforge.data.evolve import Chat, EvolveConfig, EvolveReport, LLMEvolver, evolve, iter_jobs, run_job
from lamforge.data.plans import DEFAULT_HELP_DIR, CleaningReport, PlansConfig, build_plans, split_of, split_paths, \
    write_splits
from lamforge.jsonl import JsonlAppender, drop_torn_tail, read_jsonl, write_jsonl
from lamforge.records import PlanPair


@dataclass
class PlanFiles:
    """What a run made: the cleaned help pairs, the reports of cleaning and evolving, and pairs per file."""

    help_pairs: list[PlanPair]
    report: CleaningReport
    evolve_report: EvolveReport | None
    files: dict[str, int]


def make_plan_files(out: Path, help_dir: Path = DEFAULT_HELP_DIR, evolve_n: int = 0, test_fraction: float = 0.1,
                    seed: int = 0, chat: Chat | None = None, console: Console | None = None) -> PlanFiles:
    """Write `out` (every pair) and its split files. With `chat`, evolving asks that LLM instead of the rules.

    Raises HelpNotFoundError without the help, and what `chat` raises (LLMError) after keeping the pairs made so
    far; console: where progress shows (None: no progress)."""
    out = Path(out)
    pairs, report = build_plans(PlansConfig(help_dir=help_dir, test_fraction=test_fraction),
                                show_progress=console is not None, console=console)
    drop_torn_tail(out)
    kept_llm = [p for p in read_jsonl(out, PlanPair, missing_ok=True) if p.origin == "evolved:llm"]
    evolve_config = EvolveConfig(n=evolve_n, seed=seed)
    evolve_report = EvolveReport() if evolve_n or kept_llm else None
    train_pool = [p for p in pairs if split_of(p, test_fraction) == "train"]
    rule_pairs = [] if chat else evolve(train_pool, evolve_config, evolve_report)
    write_jsonl(out, [*pairs, *kept_llm, *rule_pairs])
    if chat and evolve_n:
        _evolve_with_llm(train_pool, evolve_config, out, kept_llm, evolve_report, chat, console)
    everything = read_jsonl(out, PlanPair)
    counts = write_splits(everything, out, test_fraction)
    files = {str(out): len(everything), **{str(path): counts[s] for s, path in split_paths(out).items()}}
    return PlanFiles(help_pairs=pairs, report=report, evolve_report=evolve_report, files=files)


def _evolve_with_llm(pool, config: EvolveConfig, out: Path, existing, report: EvolveReport, chat: Chat,
                     console: Console | None) -> None:
    """Append each LLM-evolved pair as it comes, so an interrupted run loses at most the call in flight."""
    done = {p.task_id for p in existing}
    evolver = LLMEvolver(chat)
    jobs = list(islice(iter_jobs(pool, config, llm=True), config.n))
    with JsonlAppender(out) as appender:
        for job in track(jobs, description="Evolving with the LLM", console=console, transient=True,
                         disable=console is None):
            if job.task_id in done:
                report.skipped_existing += 1
                continue
            result = run_job(job, config, evolver)
            if isinstance(result, str):
                report.rejected[result] += 1
                continue
            report.made[result.origin] += 1
            appender.append(result)
