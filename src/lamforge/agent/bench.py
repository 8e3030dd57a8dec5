"""`lamforge agent bench`: step latency of the agent in live Writer, split into observe, model and act.

Two modes:
- free (default): the model acts on its own. An untrained model usually answers FINISH at step 1, so this measures
  first steps only.
- teacher-forced (--teacher-forced): the model decides at every step and is timed, but the task's reference
  action is the one executed, so every episode walks the real multi-step route (menus, dialogs) and the prompts,
  KV-cache reuse and observation sizes are those a trained LAM meets. The model's agreement with the reference
  (same function and control) and the share of its replies that are valid actions on a live control are reported
  beside the latency.

The model is a local one (`model`) or one served at an OpenAI-compatible `endpoint` (vLLM, llama.cpp's server),
asked through the endpoint backend with the guided-decoding form `guided`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from lamforge.agent.action_schema import valid_action
from lamforge.agent.backends import Backend, BackendReply, OpenAIBackend, OracleBackend
from lamforge.agent.episode import run_episode
from lamforge.agent.hf_backend import HFBackend, HFBackendConfig
from lamforge.agent.loop import Agent, AgentConfig
from lamforge.env.writer_env import WriterEnv
from lamforge.schema import ActionParseError, Observation, parse_action
from lamforge.tasks.splits import sample_instances


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3) if ordered else 0.0


class TeacherForced:
    """Asks the model (timed) and returns the reference's action; records whether the two agree."""

    name = "teacher-forced"

    def __init__(self, model: Backend, reference):
        self.model, self.reference = model, reference
        self.agreed: list[bool] = []
        self.valid: list[bool] = []
        self.model_s: list[float] = []
        self.tokens: list[int] = []

    def reset(self) -> None:
        self.model.reset()
        self.reference.reset()

    def start(self, instance) -> None:
        self.reference.start(instance)

    def decide(self, messages, obs, task, history) -> BackendReply:
        mine = self.model.decide(messages, obs, task, history)
        truth = self.reference.decide(messages, obs, task, history)
        self.model_s.append(mine.latency_s)
        self.tokens.append(mine.tokens_generated)
        self.valid.append(valid_action(mine.text, obs if isinstance(obs, Observation) else
                                       Observation.model_validate(obs or {})))
        try:
            a, b = parse_action(mine.text), parse_action(truth.text)
            self.agreed.append(a.function == b.function and a.control_name == b.control_name)
        except ActionParseError:
            self.agreed.append(False)
        return BackendReply(text=truth.text, tokens_generated=mine.tokens_generated, prompt_tokens=mine.prompt_tokens,
                            latency_s=mine.latency_s)


def run_agent_bench(model: str = "default", tasks: int = 4, max_steps: int = 4, dtype: str = "auto",
                    max_controls: int | None = None, teacher_forced: bool = False, endpoint: str | None = None,
                    guided: str | None = None) -> dict:
    """Run the model as the agent on test tasks; a warm-up episode first, so load time is not counted. With
    `endpoint`, `model` is the name at the endpoint (None: the first it lists)."""
    if endpoint:
        policy: Backend = OpenAIBackend(url=endpoint, model=model, guided=guided)
    else:
        policy = HFBackend(HFBackendConfig(model=model, dtype=dtype))
    backend = TeacherForced(policy, OracleBackend()) if teacher_forced else policy
    env = WriterEnv(max_steps=max_steps + 5)
    agent = Agent(backend=backend, env=env, config=AgentConfig(max_steps=max_steps, max_controls=max_controls))
    steps, warmup_steps = [], 0
    started = time.perf_counter()
    try:
        instances = sample_instances("test", tasks + 1)
        with tempfile.TemporaryDirectory() as tmp:
            for i, instance in enumerate(instances):
                episode = run_episode(env, instance, agent, Path(tmp) / instance.task_id)
                if i > 0:
                    steps += episode.steps
                else:
                    warmup_steps = len(episode.steps)
    finally:
        env.close()
    phases = {name: [getattr(s.timings, f"{name}_s") for s in steps] for name in ("observe", "model", "act")}
    totals = [sum(v[i] for v in phases.values()) for i in range(len(steps))]
    out = {
        "model": policy.name if endpoint else model,
        "dtype": getattr(policy, "dtype", None),
        **({"guided": policy.guided} if endpoint else {}),
        "mode": "teacher-forced" if teacher_forced else "free",
        "tasks": tasks,
        "steps": len(steps),
        "step_s": {"median": _pct(totals, 0.5), "p95": _pct(totals, 0.95)},
        **{f"{name}_s": {"median": _pct(v, 0.5), "p95": _pct(v, 0.95)} for name, v in phases.items()},
        "tokens_generated_per_step": round(statistics.mean(s.tokens_generated for s in steps), 1) if steps else 0.0,
        "prompt_tokens_per_step": round(statistics.mean(s.prompt_tokens for s in steps), 1) if steps else 0.0,
        "target_median_step_s": 1.0,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if teacher_forced:
        measured = backend.agreed[warmup_steps:]
        out["agreement_with_reference"] = round(sum(measured) / len(measured), 3) if measured else 0.0
        valid = backend.valid[warmup_steps:]
        out["valid_actions"] = round(sum(valid) / len(valid), 3) if valid else 0.0
    return out
