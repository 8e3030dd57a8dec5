"""LLM paraphrases of train instructions: more ways of asking than the phrasing rules know, every value kept.

With an endpoint configured (LAMFORGE_LLM_URL), collection asks the LLM to reword each train instruction the way
another person would ask (the evolver's role for requests, as the paper has an LLM evolve tasks). Each answer is
checked before it replaces the rule-based instruction:

- every argument value of the instruction (the phrase, size, URL, comment text, ...) appears verbatim;
- no number and no double-quoted text appears that the instruction did not have (a value was changed or added);
- it is neither the instruction itself nor the family's held-out phrasing (after phrasing_key), so the
  unseen-phrasing split stays unseen;
- it is one request of a sensible length.

An answer that fails keeps the instance's rule-based phrasing, and the report counts why. Without an endpoint
nothing is called and instructions stay as the rules made them. LLM answers are sampled (temperature > 0), so a
rerun may word an instance differently; its task id, parameters and checker are the same.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from lamforge.data.evolve import Chat, client_chat
from lamforge.llm import LLMClient, LLMError, configured
from lamforge.schema import ActionParseError, extract_json_object
from lamforge.tasks.base import REGISTRY, TaskInstance
from lamforge.tasks.phrasing import phrasing_key

PARAPHRASE_SYSTEM_PROMPT = (
    "You rewrite requests that people send to an assistant that operates LibreOffice Writer for them."
)
PARAPHRASE_USER_PROMPT = """Rewrite the request below the way a different person might ask for the same thing. \
Change the wording and the sentence structure freely; keep the meaning.
Rules:
- Copy each of these values exactly, character for character (same case, same punctuation): {values}
- Add no other values: no new numbers, names, quoted text or file names.
- One or two sentences, no greeting on its own line, no explanation.
- Reply with JSON only: {{"request": "..."}}

Request: {instruction}"""

_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
_DOUBLE_QUOTED = re.compile(r"[\"“”]([^\"“”]+)[\"“”]")


def instruction_values(instance: TaskInstance) -> list[str]:
    """The parameter values the instruction states, longest first (the arguments a paraphrase must keep)."""
    values = {str(v) for v in instance.params.values() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    present = [v for v in values if v and _mentions(instance.instruction, v)]
    return sorted(present, key=len, reverse=True)


def _mentions(text: str, value: str) -> bool:
    if re.fullmatch(r"[\d.]+", value):
        return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w]|\.\d)", text) is not None
    return value in text


def check_paraphrase(text: str, instance: TaskInstance, held_out: str) -> str | None:
    """Why a paraphrase cannot replace the instruction, or None when it can."""
    if not text or "\n" in text.strip():
        return "not_one_request"
    if len(text.split()) > 2 * len(instance.instruction.split()) + 12:
        return "too_long"
    values = instruction_values(instance)
    if any(not _mentions(text, v) for v in values):
        return "dropped_or_changed_value"
    allowed_numbers = set(_NUMBER.findall(instance.instruction))
    if any(n not in allowed_numbers for n in _NUMBER.findall(text)):
        return "added_number"
    if any(q not in instance.instruction for q in _DOUBLE_QUOTED.findall(text)):
        return "added_quoted_text"
    key = phrasing_key(text)
    if key == phrasing_key(instance.instruction):
        return "unchanged"
    if key == phrasing_key(held_out):
        return "held_out_phrasing"
    if fuzz.ratio(_masked_key(text, values), _masked_key(held_out, values)) >= NEAR_HELD_OUT:
        return "near_held_out_phrasing"
    return None


# How alike (rapidfuzz ratio, values masked) a paraphrase and the held-out phrasing may be. An LLM's rewording can
# land one word off the held-out one ("I'd like X in bold" against "I'd like X bold"); only an exact match was
# refused, so it could teach the phrasing the unseen_phrasing split measures. 85: above the closest rule-made
# training phrasings (84 and 80, underline and paragraph_style, 2026-12-03 audit).
NEAR_HELD_OUT = 85


def _masked_key(text: str, values: list[str]) -> str:
    for value in sorted(values, key=len, reverse=True):
        text = re.sub(re.escape(value), " VALUE ", text, flags=re.IGNORECASE)
    return phrasing_key(text)


def render_paraphrase_prompt(instance: TaskInstance) -> list[dict[str, str]]:
    values = "; ".join(json.dumps(v, ensure_ascii=False) for v in instruction_values(instance)) or "(none)"
    user = PARAPHRASE_USER_PROMPT.format(values=values, instruction=instance.instruction)
    return [{"role": "system", "content": PARAPHRASE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_paraphrase(answer: str) -> str:
    """The request of an LLM answer; raises ValueError if it is not the JSON asked for."""
    try:
        data = json.loads(extract_json_object(answer))
    except (ActionParseError, json.JSONDecodeError) as exc:
        raise ValueError(f"no JSON object in the answer: {exc}") from exc
    request = data.get("request") if isinstance(data, dict) else None
    if not isinstance(request, str):
        raise ValueError('the answer must be {"request": str}')
    return " ".join(request.split())


@dataclass
class ParaphraseReport:
    paraphrased: int = 0
    kept_rules: Counter = field(default_factory=Counter)  # by reason
    endpoint_error: str | None = None

    def to_dict(self) -> dict:
        return {"paraphrased": self.paraphrased, "kept_rule_phrasing": dict(self.kept_rules),
                "endpoint_error": self.endpoint_error}


class LLMParaphraser:
    """Rewords one instance's instruction with any chat callable; returns (instruction, reason it was kept)."""

    def __init__(self, chat: Chat):
        self.chat = chat

    def __call__(self, instance: TaskInstance) -> tuple[str, str | None]:
        family = REGISTRY[instance.family]
        held_out = family.instruction(instance.params, len(family.phrasings) - 1)
        try:
            text = parse_paraphrase(self.chat(render_paraphrase_prompt(instance)))
        except ValueError:
            return instance.instruction, "unparsable_answer"
        reason = check_paraphrase(text, instance, held_out)
        return (instance.instruction, reason) if reason else (text, None)


def paraphrase_instances(instances: list[TaskInstance], chat: Chat, workers: int = 4,
                         report: ParaphraseReport | None = None) -> list[TaskInstance]:
    """Train instances with LLM-paraphrased instructions where the paraphrase keeps every value; others unchanged.

    The first endpoint error (unreachable, refused, no completion) stops the calls: the remaining instances keep
    their rule-based phrasing and the report carries the error, instead of every task waiting out its retries.
    """
    report = report if report is not None else ParaphraseReport()
    paraphraser = LLMParaphraser(chat)
    todo = [i for i in instances if i.split == "train"]

    def one(instance: TaskInstance) -> tuple[str, str | None]:
        if report.endpoint_error:
            return instance.instruction, "endpoint_error"
        try:
            return paraphraser(instance)
        except LLMError as exc:
            report.endpoint_error = report.endpoint_error or str(exc)
            return instance.instruction, "endpoint_error"

    # Calls are I/O: a few in flight at once keep a local server busy without flooding it.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = dict(zip((i.task_id for i in todo), pool.map(one, todo)))
    out = []
    for instance in instances:
        if instance.task_id not in results:
            out.append(instance)
            continue
        text, reason = results[instance.task_id]
        if reason:
            report.kept_rules[reason] += 1
            out.append(instance)
        else:
            report.paraphrased += 1
            out.append(instance.model_copy(update={"instruction": text}))
    return out


def paraphrase_with_endpoint(instances: list[TaskInstance], report: ParaphraseReport | None = None,
                             workers: int = 4) -> list[TaskInstance]:
    """paraphrase_instances with the endpoint of LAMFORGE_LLM_URL; the instances unchanged when none is set."""
    if not configured() or not any(i.split == "train" for i in instances):
        return instances
    return paraphrase_instances(instances, client_chat(LLMClient()), workers, report)
