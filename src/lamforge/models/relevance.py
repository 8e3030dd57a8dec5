"""Which controls of a window a model is shown: the ones most related to the task, as UFO filters them.

A score per control mixes how much of its name occurs in the request (rapidfuzz's partial ratio: "Bold" in "make it
bold") with how close the two are in meaning (all-MiniLM-L6-v2, the embedder the dataflow already uses; it ranks
"Font Color" first for "color the word red", though not for "make the word red"). Two kinds of controls are always
shown:
- the menus: the menu bar is the way to every dialog, and a request never names it ("set two columns" goes through
  Format). Scored by their names, menus were 60 of the 77 demonstration targets a 35-control filter dropped;
- focused, checked or pressed controls: they say what state the document is in.

Measured on the quick pipeline's 560 oracle main-window steps with a control target (2026-12-01): keeping 35 of the
76 main-window controls, names alone dropped the target in 13.8% of steps; menus kept, 3.4%; menus kept and half
the score from meaning, 1.6% (mostly "Unordered List" for a bulleted list, which neither measure links).
Trained with 35 controls, a one-epoch LAM was 1.26x slower per example (the cut lists no longer share a batch's
prefix) and no better online than a seed replicate of the unfiltered one (docs/results.md,
"A/B: controls filtered by relevance"), so no preset uses it.
"""

from __future__ import annotations

from functools import lru_cache

from rapidfuzz import fuzz

from lamforge.schema import Control, Observation

ALWAYS_SHOWN_TYPES = ("menu",)
ALWAYS_SHOWN_STATES = frozenset({"focused", "checked", "pressed"})
# Share of the score from meaning, the rest from the name: 0.3 dropped 2.3% of the targets, 1.0 1.4% (but lost
# "Right" for right-aligning), 0.5 1.6%.
MEANING_WEIGHT = 0.5


@lru_cache(maxsize=4096)
def _embedding(text: str):
    from lamforge.models.embeddings import load_minilm  # sentence-transformers only when a filter runs

    return load_minilm().encode([text], normalize_embeddings=True)[0]


def _relevance(control: Control, query: str) -> float:
    """0-100: the name's partial match in the query, mixed with the cosine of their embeddings."""
    if not control.name:
        return 0.0
    by_name = fuzz.partial_ratio(control.name.lower(), query.lower())
    by_meaning = 100.0 * float(_embedding(control.name) @ _embedding(query))
    return (1 - MEANING_WEIGHT) * by_name + MEANING_WEIGHT * by_meaning


def filter_controls(obs: Observation, task: str, keep: int | None, plan: list[str] | None = None) -> Observation:
    """At most `keep` controls (the always-shown ones first, then by relevance to the task and plan), in their
    original order and with their original labels, so grounding is unaffected. A dialog or menu is shown whole: it
    is small, and any entry of it may be the answer. `keep` None or 0 shows everything."""
    if not keep or obs.window != "main" or len(obs.controls) <= keep:
        return obs
    query = " ".join([task, *(plan or [])])

    def score(control: Control) -> float:
        if ALWAYS_SHOWN_STATES & set(control.states) or control.type in ALWAYS_SHOWN_TYPES:
            return 1000.0
        return _relevance(control, query)

    ranked = sorted(range(len(obs.controls)), key=lambda i: -score(obs.controls[i]))
    chosen = sorted(ranked[:keep])
    return obs.model_copy(update={"controls": [obs.controls[i] for i in chosen]})
