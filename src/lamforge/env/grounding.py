"""Grounding: resolve an action's control to a live control of the current observation.

The label is tried first and its name cross-checked; a stale or wrong label falls back to fuzzy name matching
(UFO's rule: rapidfuzz partial ratio >= 70). Every decision is reported, so data and evaluation can tell a model
that picked the right control by name from one that pointed at the right label.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from rapidfuzz import fuzz

from lamforge.schema import FUNCTIONS, Action, Control, Observation, control_name_key

MATCH_THRESHOLD = 70.0


class Grounding(BaseModel):
    decision: Literal["exact", "by_name", "rejected", "none"]
    label: str | None = None
    name: str | None = None
    score: float = 0.0
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.decision != "rejected"


def name_score(wanted: str, have: str) -> float:
    """100 for the same name; otherwise the partial ratio, slightly discounted so exact names win ties."""
    a, b = control_name_key(wanted), control_name_key(have)
    if not a or not b:
        return 0.0
    if a == b:
        return 100.0
    return max(fuzz.ratio(a, b), 0.95 * fuzz.partial_ratio(a, b))


def best_by_name(name: str, controls: list[Control]) -> tuple[Control | None, float]:
    best, best_score = None, 0.0
    for control in controls:
        score = name_score(name, control.name)
        # Among equal scores, an enabled control is the one a person would mean.
        if score > best_score or (score == best_score and best is not None and control.enabled and not best.enabled):
            best, best_score = control, score
    return best, best_score


def ground(action: Action, obs: Observation, threshold: float = MATCH_THRESHOLD) -> Grounding:
    if not FUNCTIONS[action.function].needs_control:
        return Grounding(decision="none", reason=f"{action.function} acts on the document or the focus, not a control")
    by_label = obs.control(action.control_label) if action.control_label else None
    if by_label is not None:
        if not action.control_name or name_score(action.control_name, by_label.name) >= 90:
            return Grounding(decision="exact", label=by_label.label, name=by_label.name, score=100.0,
                             reason="label found" + (" and name matches" if action.control_name else ""))
    if action.control_name:
        control, score = best_by_name(action.control_name, obs.controls)
        if control is not None and score >= threshold:
            why = "label not in observation" if by_label is None else f"label {action.control_label} is {by_label.name!r}"
            return Grounding(decision="by_name", label=control.label, name=control.name, score=score,
                             reason=f"{why}; matched name with score {score:.0f}")
        return Grounding(decision="rejected", score=score,
                         reason=f"no control named like {action.control_name!r} (best score {score:.0f} < {threshold:.0f})")
    return Grounding(decision="rejected", reason=f"label {action.control_label!r} is not in the observation and no name was given")
