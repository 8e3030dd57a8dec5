"""Offline evaluation: the model predicts each held-out step from the recorded state, scored against the reference.

Decoding is the runtime's (the local HF backend, guided by the labels shown in the prompt), so offline and online
numbers come from the same policy.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from lamforge.agent.factory import make_backend
from lamforge.jsonl import read_jsonl, write_json
from lamforge.metrics import aggregate, aggregate_plans, args_by_value_novelty, plan_match, score_step, training_values
from lamforge.progress import track
from lamforge.prompt import parse_plan, render_plan_prompt
from lamforge.records import PlanPair, StepSample


def load_samples(path: Path, successful_only: bool = True, limit: int | None = None) -> list[StepSample]:
    samples = read_jsonl(path, StepSample)
    if successful_only:
        samples = [s for s in samples if s.success]
    if limit:
        keep = list(dict.fromkeys(s.trajectory_id for s in samples))[:limit]
        samples = [s for s in samples if s.trajectory_id in set(keep)]
    return samples


def evaluate_steps(backend, samples: list[StepSample], progress: bool = True,
                   train_values: set[str] | None = None) -> dict:
    """Step metrics of held-out samples; with `train_values` (training_values of the training targets), also Args
    Acc split by whether the step's argument values occur in training."""
    keep = getattr(backend, "max_controls", 0)  # a LAM is shown the controls it was trained with
    states = [sample.state.shown(keep) for sample in samples]
    messages = [state.messages() for state in states]
    rows: list[dict | None] = [None] * len(samples)
    # Steps are decoded in the order of their prompts' text, so that steps on the same window and document follow
    # each other and the backend's KV cache reuses their common prefix (the first steps of tasks on one document,
    # the same dialog in several tasks); each step is decided from its own prompt alone, and the rows keep the
    # samples' order.
    order = sorted(range(len(samples)), key=lambda i: [m["content"] for m in messages[i]])
    for i in track(order, description="offline eval", disable=not progress):
        sample, state = samples[i], states[i]
        try:
            text = backend.decide(messages[i], state.observation, state.task, state.history).text
        except Exception as exc:  # a failed decode is a wrong step, not a crashed evaluation
            text = f"error: {exc}"
        row = score_step(text, sample.target, sample.acceptable)
        rows[i] = dict(row, trajectory_id=sample.trajectory_id, family=sample.family, category=sample.category,
                       predicted=text, target=sample.target)
    result = aggregate(rows)
    if train_values is not None:
        result.update(args_by_value_novelty(rows, train_values))
    by_family = defaultdict(list)
    for r in rows:
        by_family[r["family"]].append(r)
    result["per_family"] = {f: aggregate(rs) for f, rs in sorted(by_family.items())}
    by_category = defaultdict(list)
    for r in rows:
        by_category[r["category"]].append(r)
    result["per_category"] = {c: aggregate(rs) for c, rs in sorted(by_category.items())}
    result["rows"] = rows
    return result


def evaluate_plans(backend, pairs: list[PlanPair], progress: bool = True) -> dict:
    rows = []
    for pair in track(pairs, description="plan eval", disable=not progress):
        text, *_ = backend.complete(render_plan_prompt(pair.task), max_new_tokens=160, stop_at_json=False)
        rows.append(dict(plan_match(parse_plan(text), pair.plan), task_id=pair.task_id))
    return aggregate_plans(rows)


def run_offline(model: str, data: Path, plans: Path | None = None, limit: int | None = None, out: Path | None = None,
                progress: bool = True, plan_limit: int | None = None, train_data: Path | None = None,
                dtype: str = "auto") -> dict:
    """limit: steps of at most this many trajectories; plan_limit: at most this many task-plan pairs; train_data:
    the training samples, for Args Acc by value novelty; dtype: the model's weights (models/loading.py)."""
    # Every training target counts, successful or not: a value the model was ever shown is not new to it.
    seen = training_values(s.target for s in load_samples(train_data, successful_only=False)) if train_data else None
    backend = make_backend("model", model=model, dtype=dtype)
    # The backend's name says its dtype: greedy replies can differ between float32 and bfloat16 (1 of 360 steps did).
    result = {"model": str(model), "backend": backend.name,
              "steps": evaluate_steps(backend, load_samples(data, limit=limit), progress, seen)}
    if plans is not None and Path(plans).exists():
        pairs = read_jsonl(plans, PlanPair)
        result["plans"] = evaluate_plans(backend, pairs[:plan_limit], progress)
    if out is not None:
        write_json(out, result)  # whole or not at all: the pipeline takes an existing file as a finished stage
    return result
