"""`lamforge tasks verify`: reference solutions must pass; untouched documents and wrong edits must fail.

Each solution acts as an agent (the reference backend) through the one episode runner, agent/episode.py, so the check
is made on the path collection and evaluation take: the agent loop, its guard, the same setup and checker. That is
why it lives in the agent stage, above the task suite it verifies.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from lamforge.agent.backends import ReferenceBackend, reference_callable
from lamforge.agent.episode import Episode, run_episode
from lamforge.agent.loop import Agent, AgentConfig
from lamforge.env.writer_env import WriterEnv
from lamforge.progress import Progress
from lamforge.tasks.base import REGISTRY, TaskInstance
from lamforge.tasks.splits import sample_instances

# A solution still going after this many steps is stuck: the bound keeps it from stalling the whole run.
MAX_STEPS = 25


class FamilyReport(BaseModel):
    family: str
    category: str
    instances: int = 0
    reference_passed: int = 0
    untouched_rejected: int = 0
    wrong_rejected: int = 0
    mean_steps: float = 0.0
    mean_seconds: float = 0.0
    failures: list[str] = Field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return self.reference_passed / self.instances if self.instances else 0.0

    @property
    def negatives_ok(self) -> bool:
        return self.untouched_rejected == self.instances and self.wrong_rejected == self.instances


def verify(families: list[str], n: int, env: WriterEnv | None = None, progress: bool = True,
           split: str | None = None) -> list[FamilyReport]:
    """n instances per family: from train and test documents, or all from `split` (lo_templates, say)."""
    own_env = env is None
    env = env or WriterEnv()
    reports = []
    try:
        with tempfile.TemporaryDirectory() as tmp, Progress(disable=not progress) as bar:
            task = bar.add_task("verifying", total=len(families) * n)
            for family_id in families:
                family = REGISTRY[family_id]
                # Instances from both train and test documents, as every split's tasks must be checkable.
                instances = (sample_instances(split, n, families=[family_id]) if split else
                             sample_instances("train", (n + 1) // 2, families=[family_id])
                             + sample_instances("test", n // 2, families=[family_id]))
                report = FamilyReport(family=family_id, category=family.category, instances=len(instances))
                steps, seconds = [], []
                for instance in instances:
                    out = Path(tmp) / instance.task_id
                    episode = _run_solution(env, instance, family.solve, out / "ref")
                    steps.append(len(episode.steps))
                    seconds.append(episode.timing.total_s)
                    # A reference passes only as it ran: every step without an error, then FINISH and the check.
                    if episode.success and episode.ran_clean:
                        report.reference_passed += 1
                    else:
                        report.failures.append(f"{instance.task_id} reference: {_why(episode)}")
                    if not run_episode(env, instance, None, out / "untouched").success:
                        report.untouched_rejected += 1
                    else:
                        report.failures.append(f"{instance.task_id}: the untouched document passed the check")
                    wrong = _run_solution(env, instance, family.wrong, out / "wrong", name="wrong-edit")
                    # Only a wrong edit that ran to the end and was then rejected counts: one that could not run
                    # proves nothing about the checker.
                    if wrong.ran_clean and wrong.outcome == "failure":
                        report.wrong_rejected += 1
                    elif wrong.success:
                        report.failures.append(f"{instance.task_id}: the wrong edit passed the check")
                    else:
                        report.failures.append(f"{instance.task_id}: the wrong edit did not run: {_why(wrong)}")
                    bar.advance(task)
                report.mean_steps = round(statistics.mean(steps), 2) if steps else 0.0
                report.mean_seconds = round(statistics.mean(seconds), 2) if seconds else 0.0
                reports.append(report)
    finally:
        if own_env:
            env.close()
    return reports


def _run_solution(env: WriterEnv, instance: TaskInstance, program, out_dir: Path, name: str = "reference") -> Episode:
    agent = Agent(backend=ReferenceBackend(reference_callable(instance, program)), env=env,
                  config=AgentConfig(max_steps=MAX_STEPS))
    return run_episode(env, instance, agent, out_dir, demonstrator=name)


def _why(episode: Episode) -> str:
    """The episode's reason, with the first step that failed (a solution that broke says where)."""
    failed = next((s for s in episode.steps if s.error), None)
    return episode.reason + (f" (step {failed.step}: {failed.error})" if failed else "")


def summarize(reports: list[FamilyReport]) -> dict:
    total = sum(r.instances for r in reports)
    passed = sum(r.reference_passed for r in reports)
    by_category: dict[str, dict] = {}
    for r in reports:
        c = by_category.setdefault(r.category, {"families": 0, "instances": 0, "reference_passed": 0, "negatives_rejected": 0, "negatives": 0})
        c["families"] += 1
        c["instances"] += r.instances
        c["reference_passed"] += r.reference_passed
        c["negatives_rejected"] += r.untouched_rejected + r.wrong_rejected
        c["negatives"] += 2 * r.instances
    for c in by_category.values():
        c["pass_rate"] = round(c["reference_passed"] / c["instances"], 4) if c["instances"] else 0.0
    return {
        "families": len(reports),
        "instances": total,
        "reference_passed": passed,
        "negatives_rejected": sum(r.untouched_rejected + r.wrong_rejected for r in reports),
        "negatives": 2 * total,
        "reference_pass_rate": round(passed / total, 4) if total else 0.0,
        "negatives_all_rejected": all(r.negatives_ok for r in reports),
        "by_category": by_category,
        "per_family": [dict(r.model_dump(), pass_rate=round(r.pass_rate, 4)) for r in reports],
    }
