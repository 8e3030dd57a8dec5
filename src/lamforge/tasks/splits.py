"""Deterministic task splits.

- train and test use different template documents (a template's `split` field), so test documents and their
  parameters are never seen in training.
- unseen_phrasing: test documents, phrased only with each family's last phrasing, which train and test never use.
- unseen_family: whole families that no training touches, on test documents.
- lo_templates: the seen families on LibreOffice's own templates (lo_templates.py), documents lamforge did not
  generate; evaluation only. A family that fits none of them is absent from it.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import lamforge.tasks.families  # noqa: F401  (registers every family)
from lamforge.tasks.base import REGISTRY, TaskInstance
from lamforge.tasks.templates import LO_SPLIT, TemplateDoc, list_templates

SPLITS = ("train", "test", "unseen_phrasing", "unseen_family", LO_SPLIT)
# A LibreOffice template rejects more parameter draws (lo_fit), so a family is exhausted on the lo_templates split only
# after this many seeds in a row gave no instance on any document; generated templates keep the old rule (one).
LO_PATIENCE = 8
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
    if split == LO_SPLIT:
        names = [f for f in names if f in lo_families()]
    return [f for f in names if categories is None or REGISTRY[f].category in categories]


def templates_for(split: str) -> list[TemplateDoc]:
    """The documents a split's tasks start from: train templates, LibreOffice's (lo_templates), or test templates."""
    return list_templates("train" if split == "train" else LO_SPLIT if split == LO_SPLIT else "test")


@lru_cache(maxsize=1)
def lo_families() -> tuple[str, ...]:
    """The seen families that give at least one task on LibreOffice's templates."""
    held_out = set(UNSEEN_FAMILIES)
    templates = templates_for(LO_SPLIT)
    return tuple(f for f in REGISTRY if f not in held_out and next(_stream(f, templates, LO_SPLIT, 0), None))


def sample_instances(split: str, n: int, seed: int = 0, families: list[str] | None = None) -> list[TaskInstance]:
    """n instances, round-robin over families so every family is represented; deterministic for (split, n, seed)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    wanted = families or families_for(split)
    templates = templates_for(split)
    streams = {f: _stream(f, templates, split, seed) for f in wanted}
    out: list[TaskInstance] = []
    seen: set[str] = set()
    while len(out) < n and streams:
        for family in list(streams):
            instance = next(streams[family], None)
            if instance is None:
                del streams[family]
                continue
            if instance.task_id not in seen:
                seen.add(instance.task_id)
                out.append(instance)
            if len(out) == n:
                break
    return out


def _stream(family_id: str, templates, split: str, seed: int):
    family = REGISTRY[family_id]
    patience = LO_PATIENCE if split == LO_SPLIT else 1
    misses = 0
    # Templates first, then seeds: consecutive instances of a family land on different documents.
    for s in itertools.count(seed * 1000):
        produced = False
        for template in templates:
            instance = family.instantiate(template, s, split)
            if instance is not None:
                produced = True
                yield instance
        misses = 0 if produced else misses + 1
        if misses >= patience or s > seed * 1000 + 200:
            return
