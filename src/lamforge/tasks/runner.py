"""Run a solution program (a family's reference or wrong edit) on a task instance in the live env, then check it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from lamforge.env.office import OfficeError
from lamforge.env.writer_env import WriterEnv
from lamforge.schema import Action, Observation, Status
from lamforge.tasks.base import REGISTRY, ControlNotFound, Solution, TaskInstance, Verdict
from lamforge.tasks.template_files import template_path


class StepRecord(BaseModel):
    step: int
    observation: dict
    action: dict
    result: str = ""
    error: str | None = None
    grounding: dict | None = None
    ms: float = 0.0


class Episode(BaseModel):
    task_id: str
    family: str
    success: bool
    reason: str
    outcome: str  # success | failure | env_error | solution_error
    steps: list[StepRecord] = Field(default_factory=list)
    seconds: float = 0.0


def run_program(env: WriterEnv, instance: TaskInstance, program: Callable[[dict, Observation], Solution],
                out_dir: Path, max_steps: int = 25, record_observations: bool = False) -> Episode:
    """Reset to the instance's document, run `program` step by step, and let the family's checker decide."""
    family = REGISTRY[instance.family]
    t0 = time.perf_counter()
    steps: list[StepRecord] = []

    def done(success: bool, reason: str, outcome: str) -> Episode:
        return Episode(task_id=instance.task_id, family=instance.family, success=success, reason=reason,
                       outcome=outcome, steps=steps, seconds=time.perf_counter() - t0)

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        obs_dict, _ = env.reset(options={"doc": str(template_path(instance.template_id)), "out_dir": str(out_dir)})
    except OfficeError as exc:
        return done(False, f"environment error at reset: {exc}", "env_error")
    for prep in family.setup(instance.params):
        obs_dict, _, _, _, info = env.step(prep)
        if info["error"]:
            return done(False, f"task setup failed: {info['error']}", "env_error" if info["env_error"] else "solution_error")
    env.reset_step_count()
    obs = Observation.model_validate(obs_dict)
    program_run = program(instance.params, obs)
    try:
        action = next(program_run)
        for step in range(1, max_steps + 1):
            t_step = time.perf_counter()
            new_obs, _, terminated, truncated, info = env.step(action)
            steps.append(StepRecord(step=step, observation=obs_dict if record_observations else {},
                                    action=action.model_dump(mode="json", exclude_none=True), result=info["result"],
                                    error=info["error"], grounding=info["grounding"],
                                    ms=(time.perf_counter() - t_step) * 1000))
            if info["env_error"]:
                return done(False, info["error"], "env_error")
            if info["error"]:
                return done(False, f"step {step} failed: {info['error']}", "solution_error")
            obs_dict = new_obs
            if terminated or truncated:
                break
            action = program_run.send(Observation.model_validate(obs_dict))
    except StopIteration:
        pass  # the program ended without FINISH; the checker still decides
    except ControlNotFound as exc:
        return done(False, f"solution could not ground: {exc}", "solution_error")
    try:
        verdict: Verdict = family.check(instance.params, env.doc_state(), out_dir)
    except OfficeError as exc:
        return done(False, f"environment error while checking: {exc}", "env_error")
    return done(verdict.success, verdict.reason, "success" if verdict.success else "failure")


def run_reference(env: WriterEnv, instance: TaskInstance, out_dir: Path, **kw) -> Episode:
    return run_program(env, instance, REGISTRY[instance.family].solve, out_dir, **kw)


def last_action_finishes(episode: Episode) -> bool:
    return bool(episode.steps) and episode.steps[-1].action.get("status") == Status.FINISH.value


def untouched_check(env: WriterEnv, instance: TaskInstance, out_dir: Path) -> Verdict:
    """Negative control: the checker must reject the document as it was before any action."""
    env.reset(options={"doc": str(template_path(instance.template_id)), "out_dir": str(out_dir)})
    for prep in REGISTRY[instance.family].setup(instance.params):
        env.step(prep)
    return REGISTRY[instance.family].check(instance.params, env.doc_state(), out_dir)


__all__ = ["Action", "Episode", "StepRecord", "last_action_finishes", "run_program", "run_reference", "untouched_check"]
