"""The plan follower (the `plan` demonstrator): turns the help-mined plan of the most similar task into actions.

It retrieves the nearest mined task with all-MiniLM-L6-v2, then grounds the plan's words (menu paths, button, tab
and field names, shortcuts) on live controls one at a time. It fails where the plan cannot be grounded, and those
failures are what self-boosting explores later.
"""

from __future__ import annotations

import re
import time
from functools import cached_property
from pathlib import Path

from rapidfuzz import fuzz

from lamforge.agent.backends import BackendReply
from lamforge.jsonl import read_jsonl
from lamforge.models.embeddings import load_minilm
from lamforge.records import PlanPair
from lamforge.schema import Action, Observation, Status
from lamforge.tasks.base import TaskInstance

_QUOTED = re.compile(r"'([^']{2,80})'|\"([^\"]{2,80})\"")
_MENU_STEP = re.compile(r"\b(?:choose|select|open|go to)\s+(.+?)(?:\.|$)", re.IGNORECASE)
_CLICK = re.compile(r"\b(?:click|press)\s+(?:the\s+)?(.+?)(?:\s+(?:button|icon|tab|box|option))?(?:\.|,|$)",
                    re.IGNORECASE)
_SHORTCUT = re.compile(r"\b((?:(?:Ctrl|Shift|Alt)\+)+(?:F\d{1,2}|[A-Za-z0-9]|Enter|Space|Tab))\b")
GROUND_MIN = 80


class PlanBackend:
    """Turns the nearest mined plan into actions, one grounded control at a time."""

    name = "plan"

    def __init__(self, plans_path: Path):
        self.plans = read_jsonl(plans_path, PlanPair)
        if not self.plans:
            raise ValueError(f"no plans in {plans_path}; run `lamforge data plans` first")
        self._queue: list[tuple[str, str]] = []
        self._started = False

    @cached_property
    def _index(self):
        encoder = load_minilm()
        vectors = encoder.encode([p.task for p in self.plans], normalize_embeddings=True, batch_size=64)
        return encoder, vectors

    def nearest_plans(self, instruction: str, k: int = 5) -> list[PlanPair]:
        encoder, vectors = self._index
        # The quoted target words say nothing about how to do the task; they only mislead the retrieval.
        query = encoder.encode([_QUOTED.sub("the text", instruction)], normalize_embeddings=True)[0]
        return [self.plans[int(i)] for i in (-(vectors @ query)).argsort()[:k]]

    def start(self, instance: TaskInstance) -> None:
        candidates = self.nearest_plans(instance.instruction)
        # The closest plan that names something to do in the app (a menu path, a button, a shortcut).
        self.plan = next((p for p in candidates if any(plan_targets(s) or _SHORTCUT.search(s) for s in p.plan)),
                         candidates[0])
        self._queue = []
        quoted = [a or b for a, b in _QUOTED.findall(instance.instruction)]
        if quoted:
            self._queue.append(("select", quoted[0]))
        for step in self.plan.plan:
            for target in plan_targets(step):
                self._queue.append(("click", target))
            for combo in _SHORTCUT.findall(step):
                self._queue.append(("keys", combo))
        self._started = True

    def reset(self) -> None:
        pass

    def decide(self, messages, obs: Observation, task, history) -> BackendReply:
        t0 = time.perf_counter()
        action = self._next(obs)
        return BackendReply(text=action.to_json(), latency_s=time.perf_counter() - t0)

    def _next(self, obs: Observation) -> Action:
        while self._queue:
            kind, target = self._queue.pop(0)
            if kind == "select":
                return Action(function="select_text", args={"text": target}, plan=[t for _, t in self._queue])
            if kind == "keys":
                return Action(function="keyboard_input", args={"keys": "{" + target + "}"},
                              plan=[t for _, t in self._queue] or None)
            best, score = None, 0.0
            for c in obs.controls:
                s = fuzz.ratio(target.lower(), c.name.lower().rstrip(".").replace("~", ""))
                if s > score:
                    best, score = c, s
            if best is not None and score >= GROUND_MIN:
                return Action(control_label=best.label, control_name=best.name, function="click_input",
                              plan=[t for _, t in self._queue] or None)
            # Words of the plan that name no control here (prose, or a step for another window) are skipped.
        if obs.window == "dialog":
            ok = next((c for c in obs.controls if c.name in ("OK", "Insert", "Close")), None)
            if ok is not None:
                return Action(control_label=ok.label, control_name=ok.name, function="click_input",
                              status=Status.FINISH)
        return Action(function="summary", args={"text": f"followed the plan for: {self.plan.task}"},
                      status=Status.FINISH)


def plan_targets(step: str) -> list[str]:
    """Control names a plan step mentions: menu path segments and clicked buttons/tabs."""
    targets: list[str] = []
    menu = _MENU_STEP.search(step)
    if menu and ">" in menu.group(1):
        targets += [seg.strip().strip("'\" ").removesuffix(" tab").strip() for seg in menu.group(1).split(">")]
    for match in _CLICK.finditer(step):
        name = match.group(1).strip().strip("'\" ")
        if 1 <= len(name.split()) <= 4:
            targets.append(name)
    return [t for t in targets if t]
