"""The shape of a task family (after AndroidWorld's TaskEval), its instances, and the registry.

A family is a class with: an id and category, instruction phrasings with {placeholders}, a parameter sampler bound
to a template document (so targets exist in it), a checker on DocState (and saved files) that returns success plus
a reason, a reference solution that grounds its actions on the live observation by control names, and a
deliberately wrong edit used as a negative control.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import ClassVar, Generator, Iterator

from pydantic import BaseModel, Field

from lamforge.env.docstate import DocState
from lamforge.schema import Action, Observation, Status
from lamforge.tasks.phrasing import vary
from lamforge.tasks.templates import TemplateDoc

# A reference solution is a generator: it yields an Action, receives the observation that followed it, and so on.
Solution = Generator[Action, Observation, None]

# Splits whose instructions are reworded by the phrasing rules (tasks/phrasing.py). The held-out splits keep the
# plain template, so unseen_phrasing measures exactly the held-out wording and unseen_family stays as it was.
# lo_templates asks the way test does, so that its column differs from test's by the documents alone.
VARIED_SPLITS = ("train", "validation", "test", "lo_templates")


class Verdict(BaseModel):
    success: bool
    reason: str

    def __bool__(self) -> bool:
        return self.success


def passed(reason: str) -> Verdict:
    return Verdict(success=True, reason=reason)


def failed(reason: str) -> Verdict:
    return Verdict(success=False, reason=reason)


class TaskInstance(BaseModel):
    """One concrete task: a family, a template document, sampled parameters and one phrasing."""

    task_id: str
    family: str
    category: str
    instruction: str
    template_id: str
    params: dict
    phrasing: int
    split: str  # train | validation | test | unseen_phrasing | unseen_family | lo_templates
    difficulty: int = 0  # steps of the reference solution, filled in by verification/collection


class TaskFamily:
    id: ClassVar[str]
    category: ClassVar[str]
    # At least 5: the last one is reserved for the unseen-phrasing test set and never used in train or test, not
    # even reworded (see tasks/phrasing.py).
    phrasings: ClassVar[list[str]]
    description: ClassVar[str] = ""

    # -- to implement ----------------------------------------------------------------------------------------

    def sample(self, template: TemplateDoc, rng: random.Random) -> dict | None:
        """Parameters whose targets exist in this template, or None when the template does not fit the family."""
        raise NotImplementedError

    def check(self, params: dict, state: DocState, out_dir: Path | None = None) -> Verdict:
        raise NotImplementedError

    def solve(self, params: dict, obs: Observation) -> Solution:
        """The reference solution, grounded on the live observation. Mark the last action with finish().

        `params` are the instance's, plus "request": the instruction as worded (when a runner passes it).
        """
        raise NotImplementedError

    def wrong(self, params: dict, obs: Observation) -> Solution:
        """A plausible but wrong edit (right format on the wrong text, say) that check() must reject."""
        raise NotImplementedError

    def follows(self, params: dict) -> tuple:
        """What of the request's wording (params["request"]) the reference solution follows, such as the order it
        names things in; () when the solution is the same however the request is worded. A recorded step may be
        re-asked in other words (data/reworded.py) only when they agree on it."""
        return ()

    def setup(self, params: dict) -> list[Action]:
        """Actions that prepare the document before the task starts (e.g. bold a phrase for "clear formatting").

        They run after reset and are not part of the trajectory the agent is scored or trained on.
        """
        return []

    # -- shared -----------------------------------------------------------------------------------------------

    def instruction(self, params: dict, phrasing: int) -> str:
        return self.phrasings[phrasing].format(**params)

    def instantiate(self, template: TemplateDoc, seed: int, split: str, phrasing: int | None = None) -> TaskInstance | None:
        rng = random.Random(f"{self.id}|{template.id}|{seed}")
        params = self.sample(template, rng)
        if params is None or template.why_unfit(self.id, params) is not None:
            return None
        if phrasing is None:
            allowed = [len(self.phrasings) - 1] if split == "unseen_phrasing" else list(range(len(self.phrasings) - 1))
            phrasing = rng.choice(allowed)
        digest = hashlib.sha1(f"{self.id}|{template.id}|{seed}|{phrasing}".encode()).hexdigest()[:10]
        instruction = self.instruction(params, phrasing)
        if split in VARIED_SPLITS:
            # Its own stream, keyed by the instance id: the wording is fixed per instance, and the parameter stream
            # above does not depend on how many random draws the rules make.
            wording_rng = random.Random(f"phrasing|{digest}")
            instruction = vary(self.phrasings[phrasing], params, wording_rng, self.phrasings[-1])
        return TaskInstance(
            task_id=f"{self.id}-{digest}", family=self.id, category=self.category, instruction=instruction,
            template_id=template.id, params=params, phrasing=phrasing, split=split,
        )


REGISTRY: dict[str, TaskFamily] = {}


def register(cls: type[TaskFamily]) -> type[TaskFamily]:
    if cls.id in REGISTRY:
        raise ValueError(f"task family {cls.id} is registered twice")
    if len(cls.phrasings) < 5:
        raise ValueError(f"task family {cls.id} needs at least 5 phrasings (4 + 1 held out)")
    REGISTRY[cls.id] = cls()
    return cls


# ---------------------------------------------------------------------------------------------------------------
# Grounding helpers for reference solutions: find controls by name in the live observation, never by fixed label.


class ControlNotFound(LookupError):
    pass


def find(obs: Observation, name: str, type_: str | None = None) -> Iterator:
    for c in obs.controls:
        if c.name == name and (type_ is None or c.type == type_):
            yield c


def control(obs: Observation, name: str, type_: str | None = None):
    hit = next(find(obs, name, type_), None)
    if hit is None:
        raise ControlNotFound(f"no {type_ or 'control'} named {name!r} in the {obs.window} window {obs.window_name!r}")
    return hit


def click(obs: Observation, name: str, type_: str | None = None, **kw) -> Action:
    c = control(obs, name, type_)
    return Action(control_label=c.label, control_name=c.name, function="click_input", **kw)


def set_text(obs: Observation, name: str, text: str, type_: str | None = None, **kw) -> Action:
    c = control(obs, name, type_)
    return Action(control_label=c.label, control_name=c.name, function="set_edit_text", args={"text": text}, **kw)


def keys(keys: str, **kw) -> Action:
    return Action(function="keyboard_input", args={"keys": keys}, **kw)


def select_text(text: str, occurrence: int = 1, **kw) -> Action:
    return Action(function="select_text", args={"text": text, "occurrence": occurrence}, **kw)


def select_paragraphs(start: int, end: int | None = None, **kw) -> Action:
    return Action(function="select_paragraph", args={"start_index": start, "end_index": start if end is None else end}, **kw)


def finish(action: Action) -> Action:
    return action.model_copy(update={"status": Status.FINISH})


def menu_path(obs: Observation, *names: str) -> Solution:
    """Open menus and click the final item: menu_path(obs, "Format", "Paragraph...")."""
    for i, name in enumerate(names):
        obs = yield click(obs, name, "menu" if i == 0 else None)
    return obs


def open_tab(obs: Observation, name: str) -> Solution:
    """Bring a dialog's page tab to the front: click it unless it already is (dialogs reopen on the tab used last).

    Why not always click: clicking the open tab changes nothing on screen, so that step's observation would equal
    the next one's, and a policy could tell the two steps apart only by counting its history.
    """
    if "selected" not in control(obs, name, "page tab").states:
        obs = yield click(obs, name, "page tab")
    return obs


