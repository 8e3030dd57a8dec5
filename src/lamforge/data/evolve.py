"""Data evolving: turn mined task-plan pairs into harder ones that can still be executed.

The paper has an LLM rewrite a task into a harder one that can still be executed, with at most 20 more words,
together with its plan (`LLMEvolver`, origin "evolved:llm"). It works with any chat callable
`chat(messages) -> str`, such as `client_chat(lamforge.llm.LLMClient(...))` for any OpenAI-compatible endpoint
(vLLM, llama.cpp server, Ollama, OpenAI).

Offline there is no LLM good enough for that, so two rules make harder tasks whose plans stay correct by
construction:

- compose ("evolved:compose"): "A, then b" with plan A followed by plan B;
- constraint ("evolved:constraint"): a requirement whose steps are known, such as "with changes recorded" or
  "then export the document as PDF", with those steps added before or after the plan.

Every evolved pair passes the same checks as a mined one (actionable steps, Writer only, the +20-word limit).
Seeds come from the train split only, so nothing derived from a held-out task leaks into training. An evolved
pair's task_id is known before it is made (a hash of method, parents and variant), so an interrupted LLM run
resumes by skipping the ids already written.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

from lamforge.data.plans import (
    OTHER_APP,
    OUTSIDE_APP,
    PlansConfig,
    clean_steps,
    normalise_key,
    normalise_menu_paths,
    normalise_text,
)
from lamforge.records import PlanPair
from lamforge.schema import ActionParseError, extract_json_object

Chat = Callable[[list[dict[str, str]]], str]


@dataclass
class EvolveConfig:
    """How many pairs to evolve and how."""

    n: int = 0
    """Evolved pairs to make. Rule-based: exactly n when the pool allows. LLM: n attempts, since each costs a call;
    a rejected answer is counted and retried on the next run."""
    methods: tuple[str, ...] = ("compose", "constraint")
    """Rule-based methods, used in turn; ignored when an LLM evolver is given."""
    seed: int = 0
    max_extra_words: int = 20
    """The paper's limit on how much longer the evolved task may be than its seed."""
    max_plan_steps: int = 20


@dataclass
class Job:
    """One evolved pair to make: its id is fixed before any work, so a resumed run can skip it."""

    method: str
    parents: tuple[PlanPair, ...]
    variant: int = 0

    @property
    def task_id(self) -> str:
        key = "|".join([self.method, *(p.task_id for p in self.parents), str(self.variant)])
        return "evo-" + hashlib.sha1(key.encode()).hexdigest()[:12]

    @property
    def origin(self) -> str:
        return f"evolved:{self.method}"


@dataclass
class EvolveReport:
    made: Counter = field(default_factory=Counter)  # by origin
    rejected: Counter = field(default_factory=Counter)  # by reason
    skipped_existing: int = 0

    def to_dict(self) -> dict:
        return {"made": dict(self.made), "rejected": dict(self.rejected), "skipped_existing": self.skipped_existing}


# ---------------------------------------------------------------------------------------------------------------
# Checks shared by every method.


def _word_count(text: str) -> int:
    return len(text.split())


def check_evolved(seed: PlanPair, task: str, plan: list[str], config: EvolveConfig) -> str | None:
    """Why an evolved pair is unusable, or None."""
    if not task or not plan:
        return "empty"
    if normalise_key(task) == normalise_key(seed.task):
        return "not_changed"
    if _word_count(task) > _word_count(seed.task) + config.max_extra_words:
        return "too_many_extra_words"
    if len(plan) > config.max_plan_steps:
        return "too_many_steps"
    if len(plan) < len(seed.plan):
        return "plan_shorter_than_seed"
    everything = " ".join([task, *plan])
    if OTHER_APP.search(everything):
        return "other_app_mentioned"
    if OUTSIDE_APP.search(everything):
        return "outside_application"
    return None


def _lower_first(text: str) -> str:
    # "Insert a table" -> "insert a table"; an acronym or CamelCase first word ("PDF", "AutoText") keeps its case.
    first = text.split(" ", 1)[0]
    return text if first[1:2].isupper() else text[:1].lower() + text[1:]


def _join_source(parents: tuple[PlanPair, ...]) -> str:
    return " + ".join(dict.fromkeys(p.source_page for p in parents))


# ---------------------------------------------------------------------------------------------------------------
# Rule-based evolvers.


@dataclass(frozen=True)
class Constraint:
    """A requirement added to a task, with the steps that meet it. Menu paths are those of LibreOffice 7.4's help."""

    name: str
    phrase: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    avoid: str = ""  # a seed whose task or plan mentions this already has the constraint

    def apply(self, task: str) -> str:
        task = task.rstrip(" .")
        return f"{self.phrase} {_lower_first(task)}" if self.before else f"{task}, {self.phrase}"


CONSTRAINTS = (
    Constraint(
        "track_changes", "With changes recorded,", before=("Choose Edit > Track Changes > Record Changes.",),
        avoid="track changes|record changes|recorded changes",
    ),
    Constraint(
        "formatting_marks", "With formatting marks shown,", before=("Choose View > Formatting Marks.",),
        avoid="formatting marks|nonprinting characters",
    ),
    Constraint(
        "pdf", "then export the document as PDF",
        after=("Choose File > Export As > Export as PDF.", "Click Export.", "Type a file name and click Save."),
        avoid="pdf|export",
    ),
    Constraint(
        "docx", "then save the document in Word format",
        after=(
            "Choose File > Save As.",
            "Select Word 2007-365 in the File type list.",
            "Type a file name and click Save.",
            "Click Use Word 2007-365! to keep the format.",
        ),
        avoid="save as|word format|microsoft word|docx",
    ),
    Constraint(
        "print_preview", "then check the result in the print preview",
        after=("Choose File > Print Preview.", "Click Close Preview."),
        avoid="print preview",
    ),
    Constraint(
        "spelling", "then check the spelling of the document",
        after=("Choose Tools > Spelling.", "Click Ignore Once or Correct for each word it reports.", "Click Close."),
        avoid="spelling|spellcheck",
    ),
)


def _mentions(pair: PlanPair, pattern: str) -> bool:
    return bool(pattern) and re.search(pattern, " ".join([pair.task, *pair.plan]), re.IGNORECASE) is not None


def evolve_constraint(job: Job, config: EvolveConfig) -> PlanPair | str:
    seed = job.parents[0]
    rng = random.Random(job.task_id)
    options = [c for c in CONSTRAINTS if not _mentions(seed, c.avoid)]
    if not options:
        return "no_constraint_fits"
    constraint = rng.choice(options)
    task = constraint.apply(seed.task)
    plan = [*constraint.before, *seed.plan, *constraint.after]
    return _finish(job, seed, task, plan, config)


def evolve_compose(job: Job, config: EvolveConfig) -> PlanPair | str:
    first, second = job.parents
    task = f"{first.task.rstrip(' .')}, then {_lower_first(second.task.rstrip(' .'))}"
    return _finish(job, first, task, [*first.plan, *second.plan], config)


def _finish(job: Job, seed: PlanPair, task: str, plan: list[str], config: EvolveConfig) -> PlanPair | str:
    reason = check_evolved(seed, task, plan, config)
    if reason:
        return reason
    return PlanPair(task_id=job.task_id, task=task, plan=plan, source_page=_join_source(job.parents), origin=job.origin)


RULES: dict[str, Callable[[Job, EvolveConfig], PlanPair | str]] = {
    "compose": evolve_compose,
    "constraint": evolve_constraint,
}


# ---------------------------------------------------------------------------------------------------------------
# The LLM evolver (the paper's method).

EVOLVE_SYSTEM_PROMPT = (
    "You are an expert user of LibreOffice Writer who writes training data for an agent that operates Writer's "
    "menus, dialogs and toolbars."
)
EVOLVE_USER_PROMPT = """Rewrite the task below into a harder task that can still be executed in LibreOffice Writer \
alone, on an ordinary text document, and write the complete plan for the new task.
Rules:
- The new task adds at most {max_extra} words to the original task.
- It must be concrete and checkable: no subjective goals, no other applications, nothing that depends on the \
computer or the version.
- The plan is the ordered list of steps a user follows in Writer; write menu paths as "Choose Format > Paragraph".
- Reply with JSON only: {{"task": "...", "plan": ["step 1", "step 2", ...]}}

Original task: {task}
Original plan:
{plan}"""


def render_evolve_prompt(seed: PlanPair, max_extra_words: int = 20) -> list[dict[str, str]]:
    plan = "\n".join(f"{i}. {step}" for i, step in enumerate(seed.plan, start=1))
    user = EVOLVE_USER_PROMPT.format(max_extra=max_extra_words, task=seed.task, plan=plan)
    return [{"role": "system", "content": EVOLVE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_evolved(text: str) -> tuple[str, list[str]]:
    """The task and plan of an LLM answer; raises ValueError if it is not the JSON asked for."""
    try:
        data = json.loads(extract_json_object(text))
    except (ActionParseError, json.JSONDecodeError) as exc:
        raise ValueError(f"no JSON object in the answer: {exc}") from exc
    task, plan = data.get("task"), data.get("plan")
    if not isinstance(task, str) or not isinstance(plan, list) or not all(isinstance(s, str) for s in plan):
        raise ValueError('the answer must be {"task": str, "plan": [str, ...]}')
    return task, plan


class LLMEvolver:
    """Rewrites a pair with any chat callable; the answer is cleaned with the same rules as mined steps."""

    def __init__(self, chat: Chat, plans_config: PlansConfig | None = None):
        self.chat = chat
        self.plans_config = plans_config or PlansConfig()

    def __call__(self, job: Job, config: EvolveConfig) -> PlanPair | str:
        seed = job.parents[0]
        answer = self.chat(render_evolve_prompt(seed, config.max_extra_words))
        try:
            task, raw_plan = parse_evolved(answer)
        except ValueError:
            return "unparsable_answer"
        task = normalise_menu_paths(normalise_text(task)).rstrip(" .")
        counts: Counter = Counter()
        plan = clean_steps(raw_plan, self.plans_config, counts)
        if counts["steps_kept"] < counts["steps_raw"]:
            return "plan_has_unusable_steps"
        return _finish(job, seed, task, plan, config)


# ---------------------------------------------------------------------------------------------------------------
# Choosing seeds and running jobs.


def iter_jobs(pool: list[PlanPair], config: EvolveConfig, llm: bool = False) -> Iterator[Job]:
    """An endless, fixed sequence of jobs for a given pool and seed; callers take as many as they need."""
    if not pool:
        return
    methods = ("llm",) if llm else config.methods
    unknown = [m for m in methods if m not in RULES and m != "llm"]
    if unknown:
        raise ValueError(f"unknown evolve method(s) {', '.join(unknown)}; expected {', '.join(RULES)}")
    order = list(pool)
    random.Random(config.seed).shuffle(order)
    for i in itertools.count():
        seed = order[i % len(order)]
        variant = i // len(order)  # a seed used again gets a new id, hence a new constraint or partner
        method = methods[i % len(methods)]
        if method == "compose":
            if len(order) < 2:
                continue
            partner = order[(i * 7 + 1 + variant) % len(order)]
            if partner.task_id == seed.task_id:
                partner = order[(i * 7 + 2 + variant) % len(order)]
            yield Job(method, (seed, partner), variant)
        else:
            yield Job(method, (seed,), variant)


def run_job(job: Job, config: EvolveConfig, llm: LLMEvolver | None = None) -> PlanPair | str:
    """The evolved pair, or the reason it was rejected."""
    if job.method == "llm":
        if llm is None:
            raise ValueError("an llm job needs an LLMEvolver")
        return llm(job, config)
    return RULES[job.method](job, config)


MAX_ATTEMPTS_PER_PAIR = 5


def evolve(pool: list[PlanPair], config: EvolveConfig, report: EvolveReport | None = None) -> list[PlanPair]:
    """Rule-based evolution of `pool` (pass train pairs only): n pairs, deterministic for a given pool and config.

    A rejected job (a compose whose task would grow by more than 20 words, say) is replaced by the next one.
    """
    report = report if report is not None else EvolveReport()
    out: list[PlanPair] = []
    for job in itertools.islice(iter_jobs(pool, config), config.n * MAX_ATTEMPTS_PER_PAIR):
        if len(out) >= config.n:
            break
        result = run_job(job, config)
        if isinstance(result, str):
            report.rejected[result] += 1
        else:
            report.made[result.origin] += 1
            out.append(result)
    return out


def client_chat(client, temperature: float = 0.7) -> Chat:
    """A chat callable over `lamforge.llm.LLMClient`; sampling (temperature > 0) gives varied rewrites."""
    return lambda messages: client.chat(messages, temperature=temperature).text
