"""Rule-based rewording of requests (tasks/phrasing.py): varied, deterministic, values verbatim, and never the
held-out phrasing of the unseen-phrasing split."""

from __future__ import annotations

import random
import string
from collections import defaultdict

import pytest

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.phrasing import FRAMES, phrasing_key, split_request, vary, wording
from lamforge.tasks.splits import sample_instances


@pytest.fixture(scope="module")
def train():
    return sample_instances("train", 500)


def held_out(instance) -> str:
    family = REGISTRY[instance.family]
    return family.instruction(instance.params, len(family.phrasings) - 1)


def test_no_train_or_test_instruction_is_the_held_out_phrasing(train):
    instances = train + sample_instances("test", 150)
    clashes = [(i.instruction, held_out(i)) for i in instances
               if i.instruction == held_out(i) or phrasing_key(i.instruction) == phrasing_key(held_out(i))]
    assert not clashes, clashes[:3]


def test_rules_never_produce_the_held_out_phrasing_from_a_training_one():
    # A training phrasing one rule away from the held-out one (politeness and punctuation), and one whose target
    # reference the held-out phrasing uses: neither may come out of vary().
    params = {"phrase": "annual report", "paragraph": 3, "index": 3, "start": "The annual report", "align": "right"}
    cases = [("Make '{phrase}' bold", "Can you make '{phrase}' bold?"),
             ("Align paragraph {index} {align}", "Align the paragraph that begins '{start}' {align}, please.")]
    for training, held in cases:
        outputs = {vary(training, params, random.Random(seed), held) for seed in range(400)}
        assert len(outputs) > 20  # the rules did vary it
        assert phrasing_key(held.format(**params)) not in {phrasing_key(o) for o in outputs}
    outputs = {vary(cases[1][0], params, random.Random(seed), cases[1][1]) for seed in range(400)}
    assert not any("the paragraph that begins" in o.lower() for o in outputs)


def test_frames_never_open_the_way_a_held_out_phrasing_opens():
    openings = {" ".join(phrasing_key(f.phrasings[-1]).split()[:2]) for f in REGISTRY.values()}
    for frame, _ in FRAMES:
        prefix = phrasing_key(frame.split("{")[0])
        if prefix:
            assert " ".join(prefix.split()[:2]) not in openings, frame


def test_unseen_phrasing_split_keeps_the_plain_held_out_template():
    for instance in sample_instances("unseen_phrasing", 60):
        assert instance.instruction == held_out(instance)


def test_arguments_every_phrasing_names_reach_the_instruction_verbatim(train):
    for instance in train:
        family = REGISTRY[instance.family]
        named = [{name for _, name, _, _ in string.Formatter().parse(p) if name} for p in family.phrasings]
        for key in set.intersection(*named):
            assert str(instance.params[key]) in instance.instruction, (key, instance.instruction)


def test_instructions_are_deterministic_and_varied(train):
    again = sample_instances("train", 120)
    assert [(i.task_id, i.instruction) for i in again] == [(i.task_id, i.instruction) for i in train[:120]]
    wordings = defaultdict(set)
    for instance in train:
        wordings[instance.family].add(wording(instance.instruction, instance.params))
    # Over ~13 instances a family, nearly every request is worded differently from the others.
    assert min(len(w) for w in wordings.values()) >= 9, {f: len(w) for f, w in wordings.items()}


def test_split_request_finds_the_imperative_core_and_keeps_a_following_sentence():
    assert split_request("Could you add a hyperlink on '{phrase}'? The address is {url}") == (
        "add a hyperlink on '{phrase}'", "The address is {url}")
    assert split_request("Please put the words '{phrase}' in bold type.") == (
        "put the words '{phrase}' in bold type", "")
    assert split_request("The paragraph beginning '{start}' should be aligned {align}.") is None


def test_phrasing_key_ignores_quotes_case_punctuation_and_politeness():
    assert phrasing_key("Please make “Annual Report” bold!") == phrasing_key("make 'annual report' bold, thanks")
    assert phrasing_key("Make 'x' bold") != phrasing_key("Make 'x' italic")
