"""Demonstrators: the agents whose trajectories become training data, all speaking the one action schema.

- oracle: the task family's reference solution (grounded on the live observation by control names).
- plan:   follows the help-derived plan of the most similar mined task, grounding its words (menu paths, button,
          tab and field names) on live controls; it fails where the plan cannot be grounded, and those failures are
          what self-boosting explores later.
- llm:    any OpenAI-compatible chat endpoint, prompted with the one prompt renderer.
- model:  a trained LAM checkpoint, through the local HF backend.
Each is an agent backend (lamforge.agent.backends), so the dataflow runs them with the same loop as the runtime.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz

from lamforge.agent.backends import BackendReply, ReferenceBackend
from lamforge.schema import Action, Observation, PlanPair, Status
from lamforge.tasks.base import REGISTRY, ControlNotFound, TaskInstance

DEMONSTRATORS = ("oracle", "plan", "llm", "model", "retrieval")


def reference_callable(instance: TaskInstance, program=None):
    """Adapt a family's solution generator to ReferenceBackend's `solution(obs) -> Action | None`."""
    family = REGISTRY[instance.family]
    program = program or family.solve
    state = {"gen": None}

    def step(obs: Observation):
        try:
            if state["gen"] is None:
                state["gen"] = program(instance.params, obs)
                return next(state["gen"])
            return state["gen"].send(obs)
        except StopIteration:
            return None

    return step


class OracleBackend(ReferenceBackend):
    name = "oracle"

    def start(self, instance: TaskInstance) -> None:
        self.set_solution(reference_callable(instance))


# ---------------------------------------------------------------------------------------------------------------
# The plan follower.

_QUOTED = re.compile(r"'([^']{2,80})'|\"([^\"]{2,80})\"")
_MENU_STEP = re.compile(r"\b(?:choose|select|open|go to)\s+(.+?)(?:\.|$)", re.IGNORECASE)
_CLICK = re.compile(r"\b(?:click|press)\s+(?:the\s+)?(.+?)(?:\s+(?:button|icon|tab|box|option))?(?:\.|,|$)", re.IGNORECASE)
_SHORTCUT = re.compile(r"\b((?:(?:Ctrl|Shift|Alt)\+)+(?:F\d{1,2}|[A-Za-z0-9]|Enter|Space|Tab))\b")
GROUND_MIN = 80


class PlanBackend:
    """Turns the nearest mined plan into actions, one grounded control at a time."""

    name = "plan"

    def __init__(self, plans_path: Path):
        self.plans = [PlanPair.model_validate_json(line) for line in Path(plans_path).read_text().splitlines() if line.strip()]
        if not self.plans:
            raise ValueError(f"no plans in {plans_path}; run `lamforge data plans` first")
        self._queue: list[tuple[str, str]] = []
        self._started = False

    @lru_cache(maxsize=1)
    def _index(self):
        from sentence_transformers import SentenceTransformer

        from lamforge.agent.backends import minilm_path

        encoder = SentenceTransformer(str(minilm_path()), device="cpu")
        vectors = encoder.encode([p.task for p in self.plans], normalize_embeddings=True, batch_size=64)
        return encoder, vectors

    def nearest_plans(self, instruction: str, k: int = 5) -> list[PlanPair]:
        encoder, vectors = self._index()
        # The quoted target words say nothing about how to do the task; they only mislead the retrieval.
        query = encoder.encode([_QUOTED.sub("the text", instruction)], normalize_embeddings=True)[0]
        return [self.plans[int(i)] for i in (-(vectors @ query)).argsort()[:k]]

    def start(self, instance: TaskInstance) -> None:
        candidates = self.nearest_plans(instance.instruction)
        # The closest plan that names something to do in the app (a menu path, a button, a shortcut).
        self.plan = next((p for p in candidates if any(plan_targets(s) or _SHORTCUT.search(s) for s in p.plan)), candidates[0])
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
                return Action(function="keyboard_input", args={"keys": "{" + target + "}"}, plan=[t for _, t in self._queue] or None)
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
                return Action(control_label=ok.label, control_name=ok.name, function="click_input", status=Status.FINISH)
        return Action(function="summary", args={"text": f"followed the plan for: {self.plan.task}"}, status=Status.FINISH)


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


# ---------------------------------------------------------------------------------------------------------------


def make_demonstrator(name: str, plans_path: Path | None = None, model: str | None = None):
    if name == "oracle":
        return OracleBackend()
    if name == "plan":
        if plans_path is None or not Path(plans_path).exists():
            raise FileNotFoundError("the plan demonstrator needs mined plans: run `lamforge data plans` first")
        return PlanBackend(plans_path)
    if name == "llm":
        from lamforge.agent.backends import OpenAIBackend
        from lamforge.llm import LLMClient

        return OpenAIBackend(client=LLMClient.from_env())
    if name == "model":
        if not model:
            raise ValueError("the model demonstrator needs --model DIR (a trained LAM checkpoint)")
        from lamforge.agent.backends import HFBackend, HFBackendConfig

        return HFBackend(HFBackendConfig(model=str(model)))
    if name == "retrieval":
        from lamforge.agent.backends import RetrievalBackend

        return RetrievalBackend()
    raise ValueError(f"unknown demonstrator {name!r}; expected one of {', '.join(DEMONSTRATORS)}")
