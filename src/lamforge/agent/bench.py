"""`lamforge agent bench`: step latency of the agent in live Writer, split into observe, model and act."""

from __future__ import annotations

import statistics

from lamforge.agent.backends import HFBackend, HFBackendConfig
from lamforge.agent.loop import Agent, AgentConfig


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3) if ordered else 0.0


def run_agent_bench(model: str = "default", tasks: int = 4, max_steps: int = 4, dtype: str = "auto",
                    max_controls: int | None = None) -> dict:
    """Run the model as the agent on test tasks; a warm-up episode first, so load time is not counted."""
    import lamforge.tasks.families  # noqa: F401
    from lamforge.env.writer_env import WriterEnv
    from lamforge.schema import Observation
    from lamforge.tasks.splits import sample_instances
    from lamforge.tasks.templates import template_path

    backend = HFBackend(HFBackendConfig(model=model, dtype=dtype))
    env = WriterEnv(max_steps=max_steps + 5)
    agent = Agent(backend=backend, env=env, config=AgentConfig(max_steps=max_steps, max_controls=max_controls))
    steps = []
    try:
        instances = sample_instances("test", tasks + 1)
        for i, instance in enumerate(instances):
            obs, _ = env.reset(options={"doc": str(template_path(instance.template_id))})
            result = agent.run(instance.instruction, obs=Observation.model_validate(obs))
            if i > 0:
                steps += result.steps
    finally:
        env.close()
    phases = {name: [getattr(s.timings, f"{name}_s") for s in steps] for name in ("observe", "model", "act")}
    totals = [sum(v[i] for v in phases.values()) for i in range(len(steps))]
    return {
        "model": model,
        "dtype": dtype,
        "steps": len(steps),
        "step_s": {"median": _pct(totals, 0.5), "p95": _pct(totals, 0.95)},
        **{f"{name}_s": {"median": _pct(v, 0.5), "p95": _pct(v, 0.95)} for name, v in phases.items()},
        "tokens_generated_per_step": round(statistics.mean(s.tokens_generated for s in steps), 1) if steps else 0.0,
        "prompt_tokens_per_step": round(statistics.mean(s.prompt_tokens for s in steps), 1) if steps else 0.0,
        "target_median_step_s": 1.0,
    }
