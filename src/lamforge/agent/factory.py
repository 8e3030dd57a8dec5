"""The one backend factory: a backend by name, for the command line, the dataflow's demonstrators, evaluation's
agents and the benches. The names are the demonstrators' (`lamforge data collect --demonstrator ...`)."""

from __future__ import annotations

from pathlib import Path

from lamforge.agent.backends import Backend, BackendError, OpenAIBackend, OracleBackend, RetrievalBackend
from lamforge.agent.hf_backend import HFBackend, HFBackendConfig
from lamforge.agent.plan_backend import PlanBackend

BACKENDS = ("oracle", "plan", "llm", "model", "retrieval")


def make_backend(kind: str, plans: Path | None = None, model: str | None = None, **options) -> Backend:
    """- 'model': a local model (`model`: a trained LAM folder, a base model, 'default' or 'tiny'); options are
       HFBackendConfig's (dtype, device, decoding, temperature, ...).
    - 'llm': an OpenAI-compatible endpoint (`model`: the name there; options url, api_key, guided, client, ...;
       without url or client, $LAMFORGE_LLM_URL).
    - 'oracle': the task family's reference solution (call `start(instance)` before each task).
    - 'plan': the help-mined plan follower (`plans`: the mined plans.jsonl).
    - 'retrieval': the MiniLM nearest-control baseline.
    """
    if kind == "model":
        if not model:
            raise BackendError("a local model backend needs a model: a trained LAM folder, 'default' or 'tiny'")
        return HFBackend(HFBackendConfig(model=str(model), **options))
    if kind == "llm":
        return OpenAIBackend(model=model, **options)
    if kind == "oracle":
        return OracleBackend()
    if kind == "plan":
        if plans is None or not Path(plans).exists():
            raise FileNotFoundError("the plan demonstrator needs mined plans: run `lamforge data plans` first")
        return PlanBackend(plans)
    if kind == "retrieval":
        return RetrievalBackend(**options)
    raise BackendError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
