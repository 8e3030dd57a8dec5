"""More ways of asking for every recorded step: copies of step samples with the request reworded.

A LAM that saw each demonstration asked one way learns to replay routes rather than read the request (issue 15:
on held-out tasks it aligned a paragraph through the Character dialog). A reworded copy keeps the step's state and
action and changes only the task line, which the prompt renders last; training batches keep a step and its copies
together (`train.data.prefix_group`), so a copy shares the forward pass of everything above that line. Measured
(docs/results.md, "A/B: reworded copies ..."): a copy still costs about what a sample does, and one epoch
with copies trained a worse LAM than two epochs without; the quick preset does not use them.

Rewordings come from the family's training phrasings through `tasks.phrasing.vary`, the rules the task sampler
uses: argument values stay verbatim and the held-out phrasing (the unseen-phrasing split) is never produced.
`data.paraphrase` is the other source of wordings: an LLM, before collection, replacing an instance's instruction;
these copies need no endpoint and no new collection.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.data.run_folder import load_records, load_samples
from lamforge.records import StepSample
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.phrasing import phrasing_key, vary

MARK = "~r"  # sample_id of a copy: <the step's sample_id>~r<k>
DRAWS_PER_COPY = 8  # rewordings drawn per wanted copy before a family runs out of new ones


def rewordings(family_id: str, params: dict, instruction: str, copies: int, seed: str) -> list[str]:
    """Up to `copies` instructions for the task, each a different phrasing from `instruction` and from each other
    (compared by `phrasing_key`); fewer when the family's training phrasings give no more."""
    family = REGISTRY.get(family_id)
    if family is None or copies <= 0:
        return []
    training = family.phrasings[:-1]  # the last phrasing is the unseen-phrasing split's
    rng = random.Random(f"rephrase|{seed}")
    seen = {phrasing_key(instruction)}
    follows = family.follows({**params, "request": instruction})  # the recorded actions' reading of the request
    out: list[str] = []
    for _ in range(copies * DRAWS_PER_COPY):
        try:
            text = vary(rng.choice(training), params, rng, family.phrasings[-1])
        except (KeyError, IndexError):  # a phrasing names a parameter this instance does not have
            continue
        if phrasing_key(text) not in seen and family.follows({**params, "request": text}) == follows:
            seen.add(phrasing_key(text))
            out.append(text)
            if len(out) == copies:
                break
    return out


def rephrase_samples(samples: Iterable[StepSample], trajectories: Iterable[dict], copies: int,
                     seed: int = 0) -> list[StepSample]:
    """The samples, each successful one followed by up to `copies` reworded copies (the same rewording for every
    step of a trajectory, as a user asks once). Failed trajectories stay as they are: the reward model and PPO
    learn from them as recorded."""
    params = {t["trajectory_id"]: (t.get("family", ""), t.get("params") or {}) for t in trajectories}
    out: list[StepSample] = []
    cache: dict[str, list[str]] = {}
    for sample in samples:
        out.append(sample)
        if not sample.success or copies <= 0 or sample.trajectory_id not in params:
            continue
        if sample.trajectory_id not in cache:
            family, values = params[sample.trajectory_id]
            cache[sample.trajectory_id] = rewordings(family, values, sample.task, copies,
                                                     f"{seed}|{sample.trajectory_id}")
        for k, task in enumerate(cache[sample.trajectory_id], start=1):
            state = sample.state.model_copy(update={"task": task})
            out.append(sample.model_copy(update={"sample_id": f"{sample.sample_id}{MARK}{k}", "state": state,
                                                 "source": f"{sample.source}+reworded"}))
    return out


def reworded_run_folders(folders: Iterable[Path], copies: int, seed: int = 0) -> list[StepSample]:
    """The step samples of collection run folders, in order, with `copies` reworded copies of each successful one
    (the folders' trajectories give each task's family and parameters)."""
    folders = [Path(f) for f in folders]
    samples = [StepSample.model_validate(s) for f in folders if f.exists() for s in load_samples(f)]
    trajectories = [t for f in folders if f.exists() for t in load_records(f)]
    return rephrase_samples(samples, trajectories, copies, seed)
