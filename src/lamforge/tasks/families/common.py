"""Samplers and checks shared by several families."""

from __future__ import annotations

import random
from typing import Callable

from lamforge.env.docstate import DocState, Run
from lamforge.tasks.base import Verdict, failed, passed
from lamforge.tasks.templates import TemplateDoc


def body_phrase(template: TemplateDoc, rng: random.Random, min_words: int = 1, max_words: int = 3) -> dict | None:
    """A phrase that occurs once in the document, inside a plain body paragraph, and a different one for wrong edits."""
    body = set(template.body_paragraph_indices(min_words=6))
    candidates = []
    for phrase in template.phrases(min_words=min_words, max_words=max_words):
        locations = template.find(phrase)
        if len(locations) == 1 and locations[0].paragraph in body and len(phrase) >= 4:
            candidates.append((phrase, locations[0].paragraph))
    if len(candidates) < 2:
        return None
    (phrase, paragraph), (decoy, _) = rng.sample(candidates, 2)
    return {"phrase": phrase, "paragraph": paragraph, "decoy": decoy}


def body_paragraph(template: TemplateDoc, rng: random.Random) -> dict | None:
    body = template.body_paragraph_indices(min_words=8)
    if len(body) < 2:
        return None
    index, decoy = rng.sample(body, 2)
    text = template.paragraph(index).text
    return {"index": index, "decoy": decoy, "start": " ".join(text.split()[:4])}


def phrase_has(state: DocState, params: dict, what: str, test: Callable[[Run], bool]) -> Verdict:
    """The phrase carries the format, and the rest of its paragraph does not (so "format everything" fails)."""
    phrase = params["phrase"]
    runs = state.runs_of(phrase)
    if not runs:
        return failed(f"{phrase!r} is no longer in the document")
    if not all(test(r) for r in runs):
        return failed(f"{phrase!r} is not {what}")
    hit = state.find(phrase)
    paragraph, start = hit
    outside = [r for r in paragraph.runs if r.kind == "Text" and (r.end <= start or r.start >= start + len(phrase))]
    spill = [r.text for r in outside if test(r) and r.text.strip()]
    if spill:
        return failed(f"{what} was applied beyond {phrase!r}: {spill[0][:40]!r}")
    return passed(f"{phrase!r} is {what}, and the rest of its paragraph is not")


def paragraph_has(state: DocState, params: dict, what: str, test, others_unchanged: Callable | None = None) -> Verdict:
    index = params["index"]
    if index >= len(state.paragraphs):
        return failed(f"paragraph {index} is gone")
    p = state.paragraphs[index]
    if not p.text.startswith(params["start"]):
        return failed(f"paragraph {index} changed its text")
    if not test(p):
        return failed(f"paragraph {index} is not {what}")
    decoy = state.paragraphs[params["decoy"]]
    if test(decoy):
        return failed(f"paragraph {params['decoy']} was also changed to {what}")
    return passed(f"paragraph {index} is {what}")
