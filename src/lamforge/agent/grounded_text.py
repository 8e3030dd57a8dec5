"""Text the document contains: what guided decoding lets a model write as select_text's argument (and the
paragraphs it has, for select_paragraph's).

Why: trained LAMs asked for spans the document does not have, and the episode went on from an empty selection. In
the make-demo LAM4's online run, 7 of its 95 tasks took such a step and 6 of those failed: the "…" of "the paragraph
starting 'The company chose the…'" copied into the span, or a last word ("week.") from other training documents.
The guided decoder already keeps control names to the live controls; this keeps selected text to the live document
in the same way: each token must leave the string a part of some paragraph's text (case ignored, as the office's
select_text accepts a span that differs only in case when it is the only such match).

The partial JSON string is read with the standard json module (a cut escape dropped), not a partial-JSON library:
one string body is all it ever reads.
"""

from __future__ import annotations

import json

from lamforge.schema import Observation

CANVAS_LIMIT = 200
"""Paragraphs the office reports at most (env/office_side/lamforge_office.py, _canvas's limit). A canvas this long
may be cut short, so a span outside it may still exist: nothing is constrained then."""


def _canvas_whole(obs: Observation) -> bool:
    """Whether the canvas shows the whole document: not empty, and not possibly cut at CANVAS_LIMIT."""
    return bool(obs.canvas) and len(obs.canvas) < CANVAS_LIMIT


def document_spans(obs: Observation) -> list[str] | None:
    """The texts a selected span must lie within (casefolded), or None when the canvas cannot tell (empty or cut)."""
    if not _canvas_whole(obs):
        return None
    spans = [p.text.casefold() for p in obs.canvas if p.text]
    return spans or None


def document_paragraphs(obs: Observation) -> list[int] | None:
    """The indices select_paragraph may name (the body's paragraphs; table cells have none), or None when the
    canvas cannot tell (empty or cut)."""
    if not _canvas_whole(obs):
        return None
    return sorted({p.index for p in obs.canvas if p.index >= 0}) or None


def partial_string_value(body: str) -> str | None:
    """The value of a JSON string's body so far ('a \\"b' -> 'a "b'); an escape still being written is left out.
    None when the body is not JSON at all (a raw control character)."""
    body = body.rstrip("\ufffd")  # a character whose UTF-8 bytes are split across tokens is checked when whole
    for cut in range(0, 6):  # the longest unfinished escape, '\\u12', leaves up to 5 characters to drop
        try:
            return json.loads('"' + body[: len(body) - cut] + '"')
        except json.JSONDecodeError:
            continue
    return None


def occurs(value: str, spans: list[str]) -> bool:
    key = value.casefold()
    return any(key in span for span in spans)
