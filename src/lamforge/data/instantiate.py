"""Instantiation: pick a template document for each task by semantic similarity, then sample its parameters.

As in UFO's dataflow, the template is chosen by matching the task against the templates' one-line descriptions
with all-MiniLM-L6-v2 embeddings. Among the templates a family can use (its sampler finds targets in them), the
choice is sampled with probability rising steeply with similarity, so the best matches dominate but every suitable
document still appears.
"""

from __future__ import annotations

import math
import random

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.models.embeddings import load_minilm
from lamforge.tasks.base import REGISTRY, TaskInstance
from lamforge.tasks.splits import families_for, templates_for
from lamforge.tasks.templates import TemplateDoc

TEMPERATURE = 0.05


def family_query(family_id: str) -> str:
    family = REGISTRY[family_id]
    return family.description or family.phrasings[1].replace("{", "").replace("}", "")


def template_scores(family_ids: list[str], templates: list[TemplateDoc]) -> dict[str, list[float]]:
    encoder = load_minilm()
    t_vec = encoder.encode([t.description for t in templates], normalize_embeddings=True)
    f_vec = encoder.encode([family_query(f) for f in family_ids], normalize_embeddings=True)
    sims = f_vec @ t_vec.T
    return {f: [float(x) for x in sims[i]] for i, f in enumerate(family_ids)}


def instantiate(split: str, n: int, seed: int = 0, families: list[str] | None = None,
                task_ids: list[str] | None = None) -> list[TaskInstance]:
    """n instances round-robin over families (deterministic for split, n, seed)."""
    family_ids = families or families_for(split)
    templates = templates_for(split)
    if not family_ids or not templates:
        return []  # e.g. lo_templates on a machine without LibreOffice's templates
    scores = template_scores(family_ids, templates)
    rng = random.Random(f"instantiate|{split}|{seed}")
    out: list[TaskInstance] = []
    seen: set[str] = set()
    wanted = set(task_ids or [])
    budget = len(wanted) if wanted else n
    counters = {f: 0 for f in family_ids}
    exhausted: set[str] = set()
    draws = 0
    while len(out) < budget and len(exhausted) < len(family_ids):
        for family_id in family_ids:
            if family_id in exhausted:
                continue
            draws += 1
            if wanted and draws > 20 * len(wanted) + 1000:
                # The draws share one random stream, so ids come back only with the families, split and seed they
                # were sampled with; anything else would draw forever.
                missing = sorted(wanted - {i.task_id for i in out})
                raise ValueError(f"{len(missing)} task ids (e.g. {missing[0]}) are not among the {split} instances of "
                                 f"seed {seed} over these families; sample them with the families, split and seed "
                                 f"they were collected with")
            instance = _draw(family_id, templates, scores[family_id], counters, rng, split, seed)
            if instance is None:
                exhausted.add(family_id)
                continue
            if instance.task_id in seen:
                continue
            seen.add(instance.task_id)
            if not wanted or instance.task_id in wanted:
                out.append(instance)
            if len(out) >= budget:
                return out
    return out


def _draw(family_id, templates, sims, counters, rng, split, seed) -> TaskInstance | None:
    family = REGISTRY[family_id]
    weights = [math.exp((s - max(sims)) / TEMPERATURE) for s in sims]
    for _ in range(40):
        template = rng.choices(templates, weights=weights)[0]
        counters[family_id] += 1
        instance = family.instantiate(template, seed * 100_000 + counters[family_id], split)
        if instance is not None:
            return instance
    return None
