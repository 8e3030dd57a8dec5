"""Backends: what decides the next action, behind one interface.

    reply = backend.decide(messages, obs, task, history)   # -> BackendReply(text, tokens, latency)

`messages` come from `lamforge.prompt.render_prompt`, the renderer training uses; the loop parses `reply.text`
with `lamforge.schema.parse_action`. The backends (agent/factory.py makes any of them by name):

- HFBackend (agent/hf_backend.py): a local Hugging Face causal LM (the trained LAM), with guided decoding and a KV
  cache kept across calls.
- OpenAIBackend: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, OpenAI, `lamforge serve`),
  guided by the action's JSON schema for the live observation, which the server enforces. A `lamforge serve`
  endpoint also gets the observation itself and says how its model was trained, so it decodes as the local
  backend does.
- ReferenceBackend: a fixed solution, or a callable `solution(obs) -> Action`; OracleBackend: a task family's
  reference solution for the instance it is started on, the upper bound (and the oracle demonstrator).
- RetrievalBackend: a non-LLM baseline that clicks the control whose name is most similar to the task, then
  finishes (all-MiniLM-L6-v2 embeddings). Weak by design: the floor any trained model has to beat.
- PlanBackend (agent/plan_backend.py): follows the nearest help-mined plan (the plan demonstrator).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from lamforge.agent.action_schema import action_json_schema, with_label_of_name
from lamforge.agent.decoding_rules import SELECTIONS, DecodingRules, acts_before_selecting, step_limits
from lamforge.llm import LLMClient, LLMError
from lamforge.models.base_model import BaseModelError
from lamforge.models.checkpoints import trained_prompt_version
from lamforge.models.embeddings import load_minilm
from lamforge.prompt import PROMPT_VERSION
from lamforge.schema import Action, ActionParseError, HistoryItem, Observation, Status, parse_action
from lamforge.tasks.base import REGISTRY, TaskInstance

logger = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """A backend that cannot run (missing model, package or endpoint); the message says what to do."""


class BackendReply(BaseModel):
    text: str
    tokens_generated: int = 0
    prompt_tokens: int = 0
    latency_s: float = 0.0
    forward_passes: int = 0  # model calls for this reply (local model only): the real cost of a decision on CPU


def prompt_mismatch(model: str | Path, trained_on: int | None = None) -> str | None:
    """Why a trained model may do worse than its card says: it learned on another version of the prompt than the
    one this lamforge renders (a folder without the record predates PROMPT_VERSION 2). `trained_on` is the
    version when known otherwise (what a `lamforge serve` endpoint lists); None for base models and matches."""
    if trained_on is None:
        trained_on = trained_prompt_version(str(model))
    if trained_on is None or trained_on == PROMPT_VERSION:
        return None
    return (f"{model} was trained on prompt version {trained_on}, and this lamforge renders version "
            f"{PROMPT_VERSION} (lamforge/prompt.py says what changed): its accuracy may be lower than measured; "
            "retrain it (lamforge pipeline) to match")


@runtime_checkable
class Backend(Protocol):
    name: str

    def reset(self) -> None:
        """Forget per-episode state; the loop calls it before each episode."""

    def decide(self, messages: list[dict[str, str]], obs: Observation, task: str,
               history: list[HistoryItem]) -> BackendReply:
        ...


# ---------------------------------------------------------------------------------------------------------------
# Any OpenAI-compatible endpoint.


GUIDED_FORMS = ("auto", "json_schema", "json_object", "structured_outputs", "none")
ENV_GUIDED = "LAMFORGE_LLM_GUIDED"
# 'auto' tries these in turn and keeps the first the server accepts: the OpenAI form (vLLM, llama.cpp's
# llama-server, SGLang), then llama-cpp-python's (its server rejects the OpenAI form with 422), then nothing.
AUTO_FORMS = ("json_schema", "json_object", "none")


def constraint_fields(form: str, schema: dict) -> dict:
    """The request fields that carry `schema` in one server dialect (see GUIDED_FORMS and the README)."""
    if form == "json_schema":
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "lamforge_action", "schema": schema}}}
    if form == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if form == "structured_outputs":
        return {"structured_outputs": {"json": schema}}
    return {}


def refuses_form(exc: LLMError) -> bool:
    """A server's answer that it does not take a constraint form: 400/422, or llama-cpp-python's 500 that names
    the field (its server reports a request that fails validation as a 500)."""
    return exc.status in (400, 422) or (exc.status == 500 and "response_format" in str(exc))


# `lamforge serve`'s side of the protocol: GET /models lists its model with this key (how the model was trained:
# max_controls, prompt_version), and a chat request may carry the structured observation in this field. Other
# servers are sent neither: OpenAI's own API refuses a request with a field it does not know.
SERVED_CARD = "lamforge"
OBSERVATION_FIELD = "lamforge_observation"
HISTORY_FIELD = "lamforge_history"
"""The episode's history, sent with the observation: the decoding rules that read it (agent/decoding_rules.py)
hold on the server only when it knows the history."""


class OpenAIBackend:
    """A chat endpoint as the policy. Works with `lamforge serve`, vLLM, llama.cpp, Ollama and OpenAI.

    Decoding is guided by the server: each request carries the action's JSON schema for the live observation
    (`action_schema.action_json_schema`), so a served LAM chooses its function, control name and status among
    valid values as the local guided decoder does. `guided` picks the form the server takes (GUIDED_FORMS;
    default $LAMFORGE_LLM_GUIDED, else 'auto'); 'none' sends no constraint.

    The decoding rules (agent/decoding_rules.py; `rules`, all on by default; DecodingRules.none() for none)
    narrow that schema as they narrow the local decoder's choices: the control names, select_text's quotes,
    select_paragraph's indices. Two are applied to the reply: a second click on the main window's last toggle
    ends the episode, and a reply that opens Format before anything is selected is asked again among the
    selections. A/B (README, "What each lever did"): a llama.cpp-served LAM4 solved 83 of 110 held-out tasks with
    the rules and 69 without.

    `lamforge serve` ignores the schema and guides itself, as HFBackend does. When its listing says the model is
    its own (SERVED_CARD), each request also carries the observation and the history (OBSERVATION_FIELD,
    HISTORY_FIELD): the server then has the document to ground `select_text` spans in, the controls' states, which
    it could not read back from the prompt, and what the rules read from the history; and the agent loop shows the
    model as many controls as it was trained with (`max_controls`).
    """

    def __init__(self, client: LLMClient | None = None, max_tokens: int = 300, temperature: float = 0.0,
                 guided: str | None = None, thought: Literal["skip", "model"] = "skip",
                 plan: Literal["skip", "model"] = "skip", rules: DecodingRules | None = None,
                 **client_args):
        guided = guided or os.environ.get(ENV_GUIDED) or "auto"
        if guided not in GUIDED_FORMS:
            raise BackendError(f"unknown guided-decoding form {guided!r}; choose one of {', '.join(GUIDED_FORMS)}")
        self.client = client or LLMClient(**client_args)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.guided = guided
        self.thought, self.plan = thought == "model", plan == "model"
        self.rules = rules or DecodingRules()
        self.name = f"openai:{self.client.model or self.client.base_url}"
        self._card: dict | None = None
        self._probed = False

    @property
    def served_card(self) -> dict | None:
        """What a `lamforge serve` endpoint lists about its model (SERVED_CARD), asked once the server answers;
        None for any other server (one without a listing included), and while none answers (asked again next
        time: a server may still be starting)."""
        if not self._probed:
            try:
                entries = self.client.model_entries()
            except LLMError as exc:
                logger.debug("no model listing from %s: %s", self.client.base_url, exc)
                if exc.status is None:
                    return None
                entries = []
            self._probed = True
            wanted = self.client.model
            entry = next((e for e in entries if e.get("id") == wanted), None) if wanted else (entries or [None])[0]
            card = (entry or {}).get(SERVED_CARD)
            self._card = card if isinstance(card, dict) else None
            mismatch = self._card and prompt_mismatch(f"the model at {self.client.base_url}",
                                                      self._card.get("prompt_version"))
            if mismatch:
                logger.warning(mismatch)
        return self._card

    @property
    def max_controls(self) -> int | None:
        """How many controls the served model was trained to see (the agent loop filters to them); None when the
        server does not say (any server but `lamforge serve`), and the loop then shows all."""
        card = self.served_card
        if card is None:
            return None
        try:
            return int(card.get("max_controls") or 0)
        except (TypeError, ValueError):
            logger.warning("the model card at %s says max_controls=%r; showing every control",
                           self.client.base_url, card.get("max_controls"))
            return None

    @property
    def forms(self) -> tuple[str, ...]:
        """The forms still to try, best first; 'auto' narrows to the one the server accepted."""
        return AUTO_FORMS if self.guided == "auto" else (self.guided,)

    def reset(self) -> None:
        pass

    def _chat(self, messages, schema: dict, extra: dict):
        forms = self.forms
        for i, form in enumerate(forms):
            try:
                result = self.client.chat(messages, max_tokens=self.max_tokens, temperature=self.temperature,
                                          **constraint_fields(form, schema), **extra)
            except LLMError as exc:
                if not refuses_form(exc) or i == len(forms) - 1:
                    raise
                continue
            if len(forms) > 1:
                if form == "none":
                    logger.warning("%s accepts no JSON-schema constraint: decoding is unguided", self.client.base_url)
                self.guided = form
            return result
        raise AssertionError("unreachable")

    def decide(self, messages, obs, task, history) -> BackendReply:
        obs = Observation.model_validate(obs) if isinstance(obs, dict) else obs
        history = history or []
        if self.served_card is not None:  # lamforge serve applies the rules itself, given what they read
            extra = {OBSERVATION_FIELD: obs.model_dump(mode="json"),
                     HISTORY_FIELD: [item.model_dump(mode="json") for item in history]}
            result = self._chat(messages, action_json_schema(obs, thought=self.thought, plan=self.plan), extra)
            return self._reply(result, result.text if self.guided == "none" else with_label_of_name(result.text, obs))
        limits = step_limits(obs, task, history, self.rules)

        def ask(functions: tuple[str, ...] | None = None):
            schema = action_json_schema(obs, thought=self.thought, plan=self.plan, names=limits.names,
                                        args=limits.args_schemas(), functions=functions)
            return self._chat(messages, schema, {})

        result = ask()
        if self.guided == "none":
            return self._reply(result, result.text)
        text, spent = with_label_of_name(result.text, obs), 0.0
        if self.rules.select_first and acts_before_selecting(text, obs, task, history):
            spent, result = result.latency_s, ask(SELECTIONS)
            text = with_label_of_name(result.text, obs)
        try:
            action = parse_action(text)
        except ActionParseError:
            return self._reply(result, text, spent)  # the loop reports it and asks for a repair
        done = limits.repeated_toggle(action.function, action.control_name)
        return self._reply(result, done.to_json() if done is not None else text, spent)

    @staticmethod
    def _reply(result, text: str, earlier_s: float = 0.0) -> BackendReply:
        """earlier_s: the time of a request this reply replaced (a select-first retry)."""
        return BackendReply(text=text, tokens_generated=result.completion_tokens,
                            prompt_tokens=result.prompt_tokens, latency_s=result.latency_s + earlier_s)


# ---------------------------------------------------------------------------------------------------------------
# Reference solutions.

SolutionStep = Action | dict | str | None
Solution = Callable[[Observation], SolutionStep] | Iterable[SolutionStep]


def finish_action(text: str) -> Action:
    return Action(function="summary", args={"text": text}, status=Status.FINISH)


class ReferenceBackend:
    """A task family's reference solution as the policy, to measure the upper bound of the whole system.

    `solution` is either a callable `solution(obs) -> Action | dict | JSON text | None` that reads the live
    observation (so it can find controls by name and keep its own step state), or a fixed sequence of actions.
    None, or the end of the sequence, means done: the backend then answers FINISH.
    """

    name = "reference"

    def __init__(self, solution: Solution | None = None):
        self.set_solution(solution)

    def set_solution(self, solution: Solution | None) -> None:
        self.solution = solution
        self._steps = None

    def reset(self) -> None:
        self._steps = None

    def _next(self, obs: Observation) -> SolutionStep:
        if self.solution is None:
            raise BackendError("ReferenceBackend has no solution; call set_solution(...) for the task first")
        if callable(self.solution) and not isinstance(self.solution, (list, tuple)):
            return self.solution(obs)
        if self._steps is None:
            self._steps = iter(self.solution)
        return next(self._steps, None)

    def decide(self, messages, obs, task, history) -> BackendReply:
        start = time.perf_counter()
        step = self._next(obs)
        action = finish_action("the reference solution has no more steps") if step is None else parse_action(step)
        return BackendReply(text=action.to_json(), latency_s=time.perf_counter() - start)


def reference_callable(instance: TaskInstance, program=None):
    """Adapt a family's solution generator to ReferenceBackend's `solution(obs) -> Action | None`."""
    family = REGISTRY[instance.family]
    program = program or family.solve
    # The request as worded rides along: a solution may follow the order in which it names things (and an LLM
    # paraphrase changes the wording after the parameters were drawn, so only the instance knows it).
    params = {**instance.params, "request": instance.instruction}
    state = {"gen": None}

    def step(obs: Observation):
        try:
            if state["gen"] is None:
                state["gen"] = program(params, obs)
                return next(state["gen"])
            return state["gen"].send(obs)
        except StopIteration:
            return None

    return step


class OracleBackend(ReferenceBackend):
    """The reference solution of the task instance it was last started on: `start(instance)` before each task."""

    name = "oracle"

    def start(self, instance: TaskInstance) -> None:
        self.set_solution(reference_callable(instance))


# ---------------------------------------------------------------------------------------------------------------
# The retrieval baseline.

CLICKABLE_TYPES = ("button", "menu", "check box", "radio", "tab", "list item", "toggle", "link", "tree item")


class RetrievalBackend:
    """Click the control whose name is closest to the task in embedding space, then FINISH.

    This is UFO's template-matching idea (all-MiniLM-L6-v2 similarity) used as a policy: no planning, no memory,
    one click. It is the non-LLM floor of the benchmark.
    """

    name = "retrieval"

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu"):
        # Loaded now, not at the first decision: once the env has imported `uno`, its import hook turns
        # ModuleNotFoundError into ImportError, which breaks optional imports inside these libraries.
        try:
            self._model = load_minilm(str(model_path) if model_path else None, device)
        except BaseModelError as exc:
            raise BackendError(f"the retrieval baseline needs all-MiniLM-L6-v2: {exc}") from exc
        self._name_vectors: dict[str, Any] = {}

    def _embed(self, texts: list[str]):
        missing = [t for t in dict.fromkeys(texts) if t not in self._name_vectors]
        if missing:
            vectors = self._model.encode(missing, normalize_embeddings=True, convert_to_tensor=True)
            self._name_vectors.update(zip(missing, vectors))
        return [self._name_vectors[t] for t in texts]

    def reset(self) -> None:
        pass

    def rank(self, task: str, obs: Observation) -> list[tuple[float, str]]:
        """(similarity, label) of the clickable, enabled controls, best first."""
        import torch

        candidates = [c for c in obs.controls if c.name.strip() and c.enabled
                      and any(t in c.type.lower() for t in CLICKABLE_TYPES)]
        if not candidates:
            return []
        query = self._model.encode([task], normalize_embeddings=True, convert_to_tensor=True)[0]
        names = torch.stack(self._embed([c.name for c in candidates]))
        scores = (names @ query).tolist()
        return sorted(zip(scores, (c.label for c in candidates)), key=lambda x: -x[0])

    def decide(self, messages, obs, task, history) -> BackendReply:
        start = time.perf_counter()
        ranked = [] if history else self.rank(task, obs)
        if ranked:
            control = obs.control(ranked[0][1])
            action = Action(thought=f"closest control to the task (cosine {ranked[0][0]:.2f})",
                            control_label=control.label, control_name=control.name, function="click_input")
        else:
            action = finish_action("retrieval baseline: done" if history else "retrieval baseline: no clickable control")
        return BackendReply(text=action.to_json(), latency_s=time.perf_counter() - start)
