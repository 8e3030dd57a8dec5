"""Phase 3 data: the demonstrator's successes plus LAM2's own checker-verified successes on the tasks the
demonstrator failed (paper: LAM2 recovered 496 of 2,284 failed tasks, 21.7%).

Exploration itself (LAM2 acting in the live app, up to k attempts per task) belongs to the agent/dataflow side.
It reaches training as StepSamples: a JSONL file, an iterable, or a callable `explore(lam2_dir, failed_task_ids)`
that yields them. Only samples of successful trajectories join the training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Union

from lamforge.records import StepSample
from lamforge.jsonl import read_jsonl

Explorer = Callable[[Path, list[str]], Iterable[StepSample]]
NewSamples = Union[str, Path, Iterable[StepSample], Explorer, None]


def failed_task_ids(samples: list[StepSample]) -> list[str]:
    """Tasks with at least one trajectory and no successful one: what self-boosting retries."""
    succeeded = {s.task_id for s in samples if s.success}
    return sorted({s.task_id for s in samples} - succeeded)


def collect_new_samples(source: NewSamples, lam2_dir: Path, failed: list[str]) -> list[StepSample]:
    if source is None:
        return []
    if isinstance(source, (str, Path)):
        return read_jsonl(source, StepSample) if str(source) else []
    if callable(source):
        return list(source(lam2_dir, failed))
    return list(source)


@dataclass
class SelfBoostData:
    samples: list[StepSample]  # union of the demonstrator's and the new successful samples
    failed_tasks: int  # tasks the demonstrator failed
    attempted_tasks: int  # failed tasks that exploration returned anything for
    recovered_tasks: int  # failed tasks with a checker-verified successful exploration
    new_samples: int  # successful exploration steps added

    @property
    def recovery_rate(self) -> float:
        return self.recovered_tasks / self.failed_tasks if self.failed_tasks else 0.0

    def summary(self) -> dict:
        return {
            "failed_tasks": self.failed_tasks, "attempted_tasks": self.attempted_tasks,
            "recovered_tasks": self.recovered_tasks, "recovery_rate": round(self.recovery_rate, 4),
            "new_successful_steps": self.new_samples, "union_steps": len(self.samples),
        }


def union_with_explorations(demonstrated: list[StepSample], explored: list[StepSample]) -> SelfBoostData:
    failed = set(failed_task_ids(demonstrated))
    wins = [s for s in explored if s.success]
    known = {s.sample_id for s in demonstrated}
    added = [s for s in wins if s.sample_id not in known]
    base = [s for s in demonstrated if s.success]
    return SelfBoostData(
        samples=base + added,
        failed_tasks=len(failed),
        attempted_tasks=len(failed & {s.task_id for s in explored}),
        recovered_tasks=len(failed & {s.task_id for s in wins}),
        new_samples=len(added),
    )
