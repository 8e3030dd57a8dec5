"""The LLM paraphraser of train instructions, against a real local HTTP server (tests/llm_server.py)."""

from __future__ import annotations

import json

import pytest
from llm_server import Fail, llm_server  # noqa: F401  (fixture)

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.data.evolve import client_chat
from lamforge.data.paraphrase import (ParaphraseReport, check_paraphrase, instruction_values, paraphrase_instances,
                                      paraphrase_with_endpoint)
from lamforge.llm import LLMClient
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.splits import sample_instances


@pytest.fixture(scope="module")
def sized():
    """A font_size instance: its phrase and its size are the values a paraphrase must keep."""
    return sample_instances("train", 1, families=["font_size"])[0]


def held_out(instance) -> str:
    family = REGISTRY[instance.family]
    return family.instruction(instance.params, len(family.phrasings) - 1)


def answer(text: str) -> str:
    return json.dumps({"request": text})


def test_values_are_the_arguments_the_instruction_states(sized):
    values = instruction_values(sized)
    assert sized.params["phrase"] in values and str(sized.params["size"]) in values
    assert sized.params["decoy"] not in values  # a parameter the request does not mention


def test_a_paraphrase_that_keeps_every_value_replaces_the_instruction(llm_server, sized):
    phrase, size = sized.params["phrase"], sized.params["size"]
    good = f"I need the words '{phrase}' set at {size} pt, could you do that?"
    server = llm_server([answer(good)])
    report = ParaphraseReport()
    (out,) = paraphrase_instances([sized], client_chat(LLMClient(server.url)), workers=1, report=report)
    assert out.instruction == good and out.task_id == sized.task_id and out.params == sized.params
    assert report.paraphrased == 1
    prompt = server.chat_requests[0].body["messages"][1]["content"]
    assert json.dumps(phrase) in prompt and sized.instruction in prompt


def test_a_paraphrase_that_drops_or_changes_a_value_keeps_the_rule_phrasing(llm_server, sized):
    phrase, size = sized.params["phrase"], sized.params["size"]
    bad = [
        answer(f"Make '{phrase}' bigger."),  # the size is gone
        answer(f"Make '{phrase.upper()}' {size} pt."),  # the phrase changed case
        answer(f"Make '{phrase}' {size} pt, or 99 pt if that fits better."),  # a number added
        "Sure! Here you go: make it bigger",  # not the JSON asked for
        answer(held_out(sized)),  # the held-out phrasing, which training must never see
    ]
    server = llm_server(bad)
    report = ParaphraseReport()
    chat = client_chat(LLMClient(server.url))
    outs = [paraphrase_instances([sized], chat, workers=1, report=report)[0] for _ in bad]
    assert all(o.instruction == sized.instruction for o in outs)
    assert report.paraphrased == 0
    assert report.kept_rules == {"dropped_or_changed_value": 2, "added_number": 1, "unparsable_answer": 1,
                                 "held_out_phrasing": 1}


def test_an_endpoint_error_stops_the_calls_and_keeps_every_instruction(llm_server):
    instances = sample_instances("train", 4, families=["comment", "font_size"])
    server = llm_server([Fail(400, "model not loaded")])
    report = ParaphraseReport()
    out = paraphrase_instances(instances, client_chat(LLMClient(server.url, max_retries=0)), workers=1, report=report)
    assert [o.instruction for o in out] == [i.instruction for i in instances]
    assert "model not loaded" in report.endpoint_error
    assert len(server.chat_requests) == 1


def test_held_out_splits_are_never_paraphrased(llm_server):
    instances = sample_instances("unseen_phrasing", 2) + sample_instances("test", 2)
    server = llm_server([answer("anything")])
    out = paraphrase_instances(instances, client_chat(LLMClient(server.url)), workers=1)
    assert out == instances and not server.chat_requests


def test_without_an_endpoint_nothing_is_called(monkeypatch, llm_server, sized):
    server = llm_server([answer("anything")])
    monkeypatch.delenv("LAMFORGE_LLM_URL", raising=False)
    assert paraphrase_with_endpoint([sized]) == [sized]
    monkeypatch.setenv("LAMFORGE_LLM_URL", server.url)
    paraphrase_with_endpoint([sized])
    assert len(server.chat_requests) == 1


def test_check_paraphrase_reasons(sized):
    phrase, size = sized.params["phrase"], sized.params["size"]
    ok = f"Please resize '{phrase}' to {size} pt."
    assert check_paraphrase(ok, sized, held_out(sized)) is None
    assert check_paraphrase(f'Resize "{phrase}" to {size} pt, like "the title".', sized,
                            held_out(sized)) == "added_quoted_text"
    assert check_paraphrase(sized.instruction + "!", sized, held_out(sized)) == "unchanged"
    assert check_paraphrase(ok + " " + " ".join(["very"] * 80), sized, held_out(sized)) == "too_long"
    # One word off the held-out phrasing is refused too: it would teach the phrasing unseen_phrasing measures.
    near = held_out(sized).rstrip(".") + " now."
    assert check_paraphrase(near, sized, held_out(sized)) == "near_held_out_phrasing", near
