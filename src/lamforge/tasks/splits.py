"""Deterministic task splits.

- train and test use different template documents (a template's `split` field), so test documents and their
  parameters are never seen in training.
- unseen_phrasing: test documents, phrased only with each family's last phrasing, which train and test never use.
- unseen_family: whole families that no training touches, on test documents.
"""

from __future__ import annotations

import itertools

from lamforge.tasks.base import REGISTRY, TaskInstance
from lamforge.tasks.templates import list_templates

SPLITS = ("train", "test", "unseen_phrasing", "unseen_family")
# One family per category, chosen to have a seen sibling that uses the same kind of route.
UNSEEN_FAMILIES = ("strikethrough", "spacing_below", "footer_text", "bookmark", "delete_paragraph")


def families_for(split: str, categories: list[str] | None = None) -> list[str]:
    """The split's families, optionally only those of the given categories (a run sized to a subset)."""
    import lamforge.tasks.families  # noqa: F401  (registers every family)

    if categories is not None:
        unknown = sorted(set(categories) - {f.category for f in REGISTRY.values()})
        if unknown:
            raise ValueError(f"unknown task categories {unknown}")
    held_out = [f for f in UNSEEN_FAMILIES if f in REGISTRY]
    names = held_out if split == "unseen_family" else [f for f in REGISTRY if f not in held_out]
    return [f for f in names if categories is None or REGISTRY[f].category in categories]


def sample_instances(split: str, n: int, seed: int = 0, families: list[str] | None = None) -> list[TaskInstance]:
    """n instances, round-robin over families so every family is represented; deterministic for (split, n, seed)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    wanted = families or families_for(split)
    templates = list_templates("train" if split == "train" else "test")
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
    # Templates first, then seeds: consecutive instances of a family land on different documents.
    for s in itertools.count(seed * 1000):
        produced = False
        for template in templates:
            instance = family.instantiate(template, s, split)
            if instance is not None:
                produced = True
                yield instance
        if not produced or s > seed * 1000 + 200:
            return
