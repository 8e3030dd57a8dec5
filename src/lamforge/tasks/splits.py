"""Deterministic task splits, and the one sampler every command draws its task instances from.

- train and test use different template documents (a template's `split` field), so test documents and their
  parameters are never seen in training.
- validation: the train families and phrasings on documents of their own (new draws of the train kinds), for
  choosing settings by A/B without looking at test; nearer to train than test is (the same content pools).
- unseen_phrasing: test documents, phrased only with each family's last phrasing, which train and test never use.
- unseen_family: whole families that no training touches, on test documents.
- lo_templates: the seen families on LibreOffice's own templates (lo_templates.py), documents lamforge did not
  generate; evaluation only. A family that fits none of them is absent from it.
- named_by_role: test documents, requests that name their paragraph by role or place ("the title", "the second
  heading", "the last paragraph"; role_requests.py); evaluation only.

Collection, online evaluation, `tasks verify`, `agent bench` and `tasks sample` all call sample_instances, so a
(split, n, seed) names the same instances wherever it is used, and what the disjointness tests check is what runs.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

import lamforge.tasks.families  # noqa: F401  (registers every family)
from lamforge.models.embeddings import load_minilm
from lamforge.tasks.base import REGISTRY, TaskInstance
from lamforge.tasks.role_requests import ROLE_FAMILIES, ROLE_SPLIT, instantiate_by_role
from lamforge.tasks.templates import LO_SPLIT, TemplateDoc, drawn_templates, list_templates

SPLITS = ("train", "validation", "test", "unseen_phrasing", "unseen_family", LO_SPLIT, ROLE_SPLIT)
# A family belongs to the lo_templates split when one of its first LO_PATIENCE seeds gives an instance on one of
# LibreOffice's templates: they reject more parameter draws than generated ones (lo_fit).
LO_PATIENCE = 8
# Template choice weighs each document by exp((similarity - best) / TEMPERATURE): the best matches dominate.
TEMPERATURE = 0.05
# Draws in a row that may give nothing (the document drawn does not fit the family) before the family is exhausted.
DRAWS_PER_FAMILY = 40
# One family per category, chosen to have a seen sibling that uses the same kind of route.
UNSEEN_FAMILIES = ("strikethrough", "spacing_below", "footer_text", "bookmark", "delete_paragraph")


def families_for(split: str, categories: list[str] | None = None) -> list[str]:
    """The split's families, optionally only those of the given categories (a run sized to a subset)."""
    if categories is not None:
        unknown = sorted(set(categories) - {f.category for f in REGISTRY.values()})
        if unknown:
            raise ValueError(f"unknown task categories {unknown}")
    held_out = [f for f in UNSEEN_FAMILIES if f in REGISTRY]
    names = held_out if split == "unseen_family" else [f for f in REGISTRY if f not in held_out]
    if split == ROLE_SPLIT:
        names = [f for f in ROLE_FAMILIES if f in names]
    if split == LO_SPLIT:
        names = [f for f in names if f in lo_families()]
    return [f for f in names if categories is None or REGISTRY[f].category in categories]


def document_draws_problem(split: str, document_draws: int) -> str | None:
    """Why a split cannot start from `document_draws` draws of its documents, or None; a command checks it before
    anything starts."""
    if document_draws < 1:
        return f"document_draws must be at least 1 (the registry's own documents), not {document_draws}"
    if document_draws != 1 and split != "train":
        return f"document_draws applies to the train split only (held-out documents stay fixed), not to {split!r}"
    return None


def templates_for(split: str, document_draws: int = 1) -> list[TemplateDoc]:
    """The documents a split's tasks start from: train, validation or LibreOffice's (lo_templates) templates, or the
    test templates (test and the unseen splits). document_draws > 1: each train document and that many - 1 other
    draws of its builder (templates.drawn_templates); train only."""
    problem = document_draws_problem(split, document_draws)
    if problem:
        raise ValueError(problem)
    if document_draws != 1:
        return drawn_templates(document_draws)
    return list_templates(split if split in ("train", "validation", LO_SPLIT) else "test")


@lru_cache(maxsize=1)
def lo_families() -> tuple[str, ...]:
    """The seen families that give at least one task on LibreOffice's templates."""
    held_out = set(UNSEEN_FAMILIES)
    templates = templates_for(LO_SPLIT)
    return tuple(f for f in REGISTRY if f not in held_out
                 and any(REGISTRY[f].instantiate(t, s, LO_SPLIT) for s in range(LO_PATIENCE) for t in templates))


def family_query(family_id: str) -> str:
    family = REGISTRY[family_id]
    return family.description or family.phrasings[1].replace("{", "").replace("}", "")


@lru_cache(maxsize=8)
def _embed(texts: tuple[str, ...]):
    # Cached: verify samples each family on its own, and every call would otherwise re-encode all documents.
    return load_minilm().encode(list(texts), normalize_embeddings=True)


def template_scores(family_ids: list[str], templates: list[TemplateDoc]) -> dict[str, list[float]]:
    """Cosine similarity of each family's request to each template's one-line description."""
    sims = _embed(tuple(family_query(f) for f in family_ids)) @ _embed(tuple(t.description for t in templates)).T
    return {f: [float(x) for x in sims[i]] for i, f in enumerate(family_ids)}


def sample_instances(split: str, n: int, seed: int = 0, families: list[str] | None = None,
                     task_ids: list[str] | None = None, document_draws: int = 1) -> list[TaskInstance]:
    """n instances, round-robin over families so every family is represented; deterministic for (split, n, seed,
    families, document_draws), and the first n of a larger draw are the n of a smaller one. With `task_ids`, exactly
    those instances come back, in draw order. document_draws > 1 (train only): the tasks start from that many draws
    of each train document instead of one (templates_for).

    As in UFO's dataflow, each draw picks the template document by matching the family's request against the
    templates' one-line descriptions with all-MiniLM-L6-v2, sampled with probability rising steeply with similarity:
    the best matches dominate, and every document the family fits still appears.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    family_ids = families or families_for(split)
    unknown = [f for f in family_ids if f not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown task families {unknown}; see `lamforge tasks list`")
    templates = templates_for(split, document_draws)
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
                                 f"seed {seed} over these families; sample them with the families, split, seed "
                                 f"and document draws they were collected with")
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
    for _ in range(DRAWS_PER_FAMILY):
        template = rng.choices(templates, weights=weights)[0]
        counters[family_id] += 1
        draw_seed = seed * 100_000 + counters[family_id]
        instance = (instantiate_by_role(family, template, draw_seed) if split == ROLE_SPLIT
                    else family.instantiate(template, draw_seed, split))
        if instance is not None:
            return instance
    return None
