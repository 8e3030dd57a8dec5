"""One episode of a task instance: open its document, run its setup actions, let an agent act, check the result.

Collection and online evaluation (data/collect.py), `tasks verify` (agent/verify.py) and `agent bench` all run
their episodes here and get the same record, `Episode`, whose steps are the agent loop's `StepRecord`s. A reference
solution or a wrong edit acts as an agent too, through the reference backend, so what verification checks is the
path collection takes: the loop, its guard, the same setup and checker.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field

from lamforge.agent.guard import GuardPolicy
from lamforge.agent.loop import Agent, AgentResult, StepRecord
from lamforge.env.docstate import DocState
from lamforge.env.office import OfficeError
from lamforge.schema import Observation
from lamforge.tasks.base import REGISTRY, TaskInstance
from lamforge.tasks.template_files import template_path

Outcome = Literal["success", "failure", "env_error"]
# judge(instruction, the agent's result, document before, document after) -> the verdict (data/judge.py)
Judge = Callable[[str, AgentResult, DocState, DocState], "dict | None"]


class EpisodeTiming(BaseModel):
    instantiate_s: float = 0.0
    """Opening the template document and running the task's setup actions."""
    execute_s: float = 0.0
    """The agent's steps."""
    evaluate_s: float = 0.0
    """The checker (and the judge, when asked)."""
    total_s: float = 0.0


class Episode(BaseModel):
    """One try at one task instance: a line of a run folder's trajectories.jsonl (whose key order it keeps)."""

    task_id: str
    trajectory_id: str
    family: str
    category: str
    instruction: str
    template_id: str
    params: dict
    split: str
    demonstrator: str
    """The agent that acted: a collection's demonstrator (oracle, plan, llm, model, retrieval) or the backend's name."""
    backend: str = ""
    """The backend that decided, when an agent acted (hf:lam4:bfloat16, openai:MODEL): a local model's weights are
    bfloat16 or float32 as the CPU decides (models/loading.py), and greedy replies can differ between the two."""
    attempt: int = 1
    steps: list[StepRecord] = Field(default_factory=list)
    judge: dict | None = None
    success: bool = False
    outcome: Outcome = "failure"
    """As the family's checker decided; env_error when the office failed, which is not the agent's fault."""
    reason: str = ""
    agent_outcome: str | None = None
    """The agent loop's own end (finish, fail, max_steps, env_error); None when no agent ran."""
    plan: list[str] | None = None
    """The mined plan the plan demonstrator followed (UFO's original_steps)."""
    timing: EpisodeTiming = Field(default_factory=EpisodeTiming)

    @property
    def ran_clean(self) -> bool:
        """The agent ended by FINISH and none of its steps failed."""
        return self.agent_outcome == "finish" and not any(s.error for s in self.steps)


def backends_of(records: list[dict]) -> list[str]:
    """The backends that decided these episodes (trajectories.jsonl lines), for a run's summary and its metrics."""
    return sorted({r.get("backend") or "" for r in records} - {""})


def run_episode(env, instance: TaskInstance, agent: Agent | None, out_dir: Path, *, demonstrator: str | None = None,
                attempt: int = 1, judge: Judge | None = None) -> Episode:
    """Reset `env` to the instance's document, run its setup, let `agent` act, and let the family's checker decide.

    `agent` None checks the document as setup left it (the untouched negative control). Nothing raises for a broken
    task: an exception becomes the episode's reason, an office failure its env_error outcome. Files the task writes
    may go into `out_dir` and nowhere else (the guard's policy)."""
    family = REGISTRY[instance.family]
    backend = getattr(agent.backend, "name", type(agent.backend).__name__) if agent else ""
    name = demonstrator or backend or "untouched"
    episode = Episode(task_id=instance.task_id, trajectory_id=f"{instance.task_id}-{name}-a{attempt}",
                      family=instance.family, category=instance.category, instruction=instance.instruction,
                      template_id=instance.template_id, params=instance.params, split=instance.split,
                      demonstrator=name, backend=backend, attempt=attempt)
    timing = episode.timing
    t0 = time.perf_counter()
    try:
        obs, _ = env.reset(options={"doc": str(template_path(instance.template_id)), "out_dir": str(out_dir)})
        for prep in family.setup(instance.params):
            obs, _, _, _, info = env.step(prep)
            if info["error"]:
                episode.outcome = "env_error" if info.get("env_error") else "failure"
                episode.reason = f"task setup failed: {info['error']}"
                return episode
        env.reset_step_count()
        before = env.doc_state() if judge is not None else None
        t1 = time.perf_counter()
        timing.instantiate_s = t1 - t0
        result = None
        if agent is not None:
            if hasattr(agent.backend, "start"):
                agent.backend.start(instance)
            agent.policy = GuardPolicy(output_dir=out_dir)
            result = agent.run(instance.instruction, obs=Observation.model_validate(obs))
            episode.steps, episode.agent_outcome = result.steps, result.outcome
        t2 = time.perf_counter()
        timing.execute_s = t2 - t1
        if result is not None and result.outcome == "env_error":
            episode.outcome, episode.reason = "env_error", result.reason
            return episode
        state = env.doc_state()
        verdict = family.check(instance.params, state, out_dir)
        if judge is not None and result is not None:
            episode.judge = judge(instance.instruction, result, before, state)
        timing.evaluate_s = time.perf_counter() - t2
        episode.success, episode.outcome = verdict.success, "success" if verdict.success else "failure"
        episode.reason = (verdict.reason if verdict.success or result is None or result.outcome == "finish"
                          else f"{result.outcome}: {result.reason}; {verdict.reason}")
        episode.plan = _followed_plan(agent.backend) if agent is not None else None
        return episode
    except Exception as exc:  # one broken task must not stop a run; it is recorded with its reason
        # Its steps are left out: an episode that broke before its check must not become training samples.
        episode.steps, episode.agent_outcome, episode.plan, episode.judge = [], None, None, None
        episode.success, episode.outcome = False, "env_error" if isinstance(exc, OfficeError) else "failure"
        episode.reason = f"{type(exc).__name__}: {exc}"
        return episode
    finally:
        timing.total_s = time.perf_counter() - t0


def _followed_plan(backend) -> list[str] | None:
    plan = getattr(backend, "plan", None)
    return list(plan.plan) if plan is not None and hasattr(plan, "plan") else None
