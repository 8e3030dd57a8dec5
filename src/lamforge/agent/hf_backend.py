"""The local Hugging Face model as a backend: guided or free JSON decoding over a KV cache kept across calls.

Guided decoding writes the action's JSON skeleton itself and lets the model choose only the values: the function
among the schema's, the control name among the live controls' names, the status; the arguments are generated
freely, but for select_text's text (one of the request's quotes, or else text the document has),
select_paragraph's indices (paragraphs the document has) and set_edit_text's text for a spin box (one of the
request's numbers). What the rules allow at a step comes from
agent/decoding_rules.py, which a served LAM's request schema reads too. The cache (agent/kv_cache.py) keeps the
last prompt and a pool of recent control lists, so a step pays only for the tokens that changed.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

# torch is imported where it is used: start-up time for commands that only name this module.

from lamforge.agent.backends import BackendError, BackendReply, prompt_mismatch
from lamforge.agent.decoding_rules import SELECTIONS, DecodingRules, acts_before_selecting, step_limits
from lamforge.agent.grounded_text import occurs, partial_string_value
from lamforge.agent.kv_cache import CachedDecoder, common_prefix
from lamforge.models.base_model import BaseModelError
from lamforge.models.checkpoints import trained_max_controls
# The one place chat messages become token ids, shared with training (a small module without heavy imports).
from lamforge.models.formatting import build_prompt_ids, render_prompt_text
from lamforge.models.loading import load_policy, quantize_int8, resolve_dtype
from lamforge.prompt import named_controls
from lamforge.schema import FUNCTIONS, Action, HistoryItem, Observation, Status, json_value_end


@dataclass
class HFBackendConfig(DecodingRules):
    """The local model and how it decodes. The decoding rules' switches are the fields it takes from DecodingRules
    (agent/decoding_rules.py), where each rule's measurements are."""

    model: str = "default"
    """A model folder (a trained LAM or a base model), a Hugging Face id, 'default' (SmolLM2-135M) or 'tiny'."""
    decoding: Literal["guided", "free"] = "guided"
    """'guided' writes the JSON skeleton itself and lets the model choose only the values: the function among the
    schema's, the control name among the live controls' names, the status; it generates the args freely (but those
    that select, see grounded_text, quoted_text and grounded_paragraphs). The control label is copied from the
    chosen control. 'free' lets the model write the whole JSON."""
    thought: Literal["skip", "model"] = "skip"
    """Guided decoding: 'skip' leaves out the optional thought (saves most output tokens); 'model' lets the model
    decide whether to write one."""
    plan: Literal["skip", "model"] = "skip"
    """Guided decoding: the same choice for the optional remaining plan."""
    max_new_tokens: int = 160
    """Cap on freely generated tokens per reply; the JSON normally closes long before."""
    dtype: str = "auto"
    """'auto' (bfloat16 on a CPU that runs it natively, float32 on one that does not, bfloat16 or float16 on a
    GPU: see models/loading.py, resolve_dtype), 'float32', 'bfloat16', 'float16', or 'int8' (CPU only: dynamic
    int8 quantisation of the linear layers; a trained LAM lost most of its accuracy in it, docs/results.md)."""
    device: str = "auto"
    """'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1', ..."""
    threads: int | None = None
    """torch CPU threads (process-wide); None keeps torch's default."""
    prefix_cache: bool = True
    """Keep the KV cache between calls and reuse its longest common prefix with the next prompt."""
    prefix_pool: int = 8
    """Also keep the KV caches of this many recent control lists (about 60 MB each for SmolLM2-135M), so that
    returning to a window seen before (the main window after a dialog, the same dialog in another task) does not
    recompute its controls. 0 turns the pool off."""
    temperature: float = 0.0
    """0 is greedy. Above 0, every choice is sampled (self-boosting's k attempts must differ to explore)."""
    seed: int | None = None
    """Seed of the sampler when temperature > 0."""
    name_prior: float = 0.0
    """Guided decoding: added to the model's score (a logit) of every control the task names word for word
    (prompt.named_controls: "Strikethrough" for "strike through 'X'") and the episode has not acted on yet, when it
    chooses among the window's controls. 0 leaves the choice to the model alone."""


# select_text's arguments as Action.to_json writes them, up to the span's first character (derived from it, so
# the two cannot drift apart). ' "' is a token of its own in SmolLM2's tokenizer, so the span's first token is the
# one the model was trained on there.
_SPAN = Action(function="select_text", args={"text": "SPAN"}).to_json()
SELECT_TEXT_HEAD = _SPAN.split('"args":', 1)[1].split("SPAN")[0]
# set_edit_text's arguments up to the text's opening quote, derived from Action.to_json in the same way.
SET_EDIT_TEXT_HEAD = Action(function="set_edit_text", control_name="X", control_label="1",
                            args={"text": "TEXT"}).to_json().split('"args":', 1)[1].split("TEXT")[0]
# select_paragraph's arguments up to the start index, derived from Action.to_json in the same way.
SELECT_PARAGRAPH_HEAD = Action(function="select_paragraph", args={"start_index": 0, "end_index": 0}).to_json() \
    .split('"args":', 1)[1].split("0")[0]
GROUNDED_TOP_K = 64
"""Candidates per token a grounded span is chosen from, likeliest first; when none keeps the span in the
document, the span ends there (or, before its first character, is written freely)."""


def _string_end(text: str) -> int:
    """Index just past the first complete JSON string in text ('  "a \\" b", ...' -> after the closing quote), or -1."""
    return json_value_end(text, '"')


def _value_end(text: str) -> int:
    """End of the args value, which must be an object. Anything else is cut at once: the parser reports it and the
    loop asks for a repair, instead of spending the token budget on it."""
    stripped = text.lstrip()
    if not stripped:
        return -1
    if stripped[0] != "{":
        return len(text)
    return json_value_end(text, "{")


def json_object_end(text: str) -> int:
    """Index just past the first balanced {...} in text, or -1 (free decoding stops there)."""
    return json_value_end(text, "{")


def control_list_prefix(tokenizer, messages: list[dict[str, str]], prompt: list[int]) -> list[int]:
    """The prompt's tokens up to the end of the control list (the "Window:" line starts after it), or [] when the
    prompt has no such line or the cut does not fall on a token boundary."""
    text = render_prompt_text(tokenizer, messages)
    cut = text.find("\nWindow: ")
    if cut < 0:
        return []
    head = tokenizer(text[: cut + 1], add_special_tokens=False)["input_ids"]
    return head if prompt[: len(head)] == head else []


class HFBackend:
    """A local causal LM as the policy: greedy, KV-cached, guided or free JSON decoding."""

    def __init__(self, config: HFBackendConfig | None = None, model=None, tokenizer=None, **overrides):
        import torch

        self.config = config or HFBackendConfig(**overrides)
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.dtype = resolve_dtype(self.config.dtype, device)
            if model is None:
                model, tokenizer = load_policy(self.config.model, device=device, dtype=self.dtype)
                if self.config.dtype == "int8":
                    model = quantize_int8(model)
        except BaseModelError as exc:
            raise BackendError(str(exc)) from exc
        if tokenizer is None:
            raise BackendError("pass the tokenizer together with the model")
        mismatch = prompt_mismatch(self.config.model)
        if mismatch:
            warnings.warn(mismatch, stacklevel=2)
        self.model, self.tokenizer = model, tokenizer
        self.dtype = "int8" if self.config.dtype == "int8" else str(getattr(model, "dtype", self.dtype))
        self.dtype = self.dtype.removeprefix("torch.")
        self.name = f"hf:{Path(str(self.config.model)).name}:{self.dtype}"
        # The agent loop and offline evaluation show the model as many controls as it was trained with.
        self.max_controls = trained_max_controls(self.config.model)  # 0 for a hub id or a base model: no card
        self.stop_ids = {i for i in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None))
                         if isinstance(i, int)}
        eos = getattr(model.generation_config, "eos_token_id", None)
        if isinstance(eos, list):
            self.stop_ids.update(eos)
        self.max_context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self._decoder = CachedDecoder(model, self.config.prefix_cache, self.config.prefix_pool)
        self._lock = threading.Lock()  # one sequence, one cache: the server's threads take turns
        # One tiny forward now: it runs transformers' lazy imports before the env imports `uno` (see RetrievalBackend
        # in agent/backends.py) and takes the kernels' first-call set-up out of the first step's latency.
        self._decoder.sync(self.encode("{") or [0])

    def reset(self) -> None:
        pass  # the prefix cache is keyed by tokens, so it stays valid across episodes

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    # -- free decoding ------------------------------------------------------------------------------------------

    def _sampler(self):
        import torch

        if getattr(self, "_rng", None) is None:
            self._rng = torch.Generator().manual_seed(self.config.seed if self.config.seed is not None else 0)
        return self._rng

    def _pick_token(self, logits) -> int:
        if self.config.temperature <= 0:
            return int(logits.argmax())
        import torch

        probs = torch.softmax(logits.float() / self.config.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._sampler()))

    def _pick_branch(self, candidates: list[int], logits, bonus: dict[int, float] | None = None) -> int:
        """Among the first tokens of the remaining options: the likeliest, or a sample at temperature > 0. bonus
        adds to a candidate's logit (the name prior)."""
        bonus = bonus or {}
        if self.config.temperature <= 0:
            return max(candidates, key=lambda t: float(logits[t]) + bonus.get(t, 0.0))
        import torch

        scores = torch.tensor([float(logits[t]) + bonus.get(t, 0.0) for t in candidates]) / self.config.temperature
        return candidates[int(torch.multinomial(torch.softmax(scores, dim=0), 1, generator=self._sampler()))]

    def _generate(self, prompt: list[int], prefix: str, stop: Callable[[str], int], budget: int) -> tuple[str, int, str]:
        """Greedy tokens after prompt + prefix until stop(text) >= 0 (cut there), EOS or budget.
        Returns (text, tokens, finish_reason)."""
        logits = self._decoder.sync(prompt + self.encode(prefix))
        generated: list[int] = []
        while len(generated) < budget:
            token = self._pick_token(logits)
            if token in self.stop_ids:
                return self.tokenizer.decode(generated), len(generated), "stop"
            generated.append(token)
            text = self.tokenizer.decode(generated)
            end = stop(text)
            if end >= 0:
                return text[:end], len(generated), "stop"
            logits = self._decoder.sync(self._decoder.ids + [token])
        return self.tokenizer.decode(generated), len(generated), "length"

    def _grounded_string(self, prompt: list[int], prefix: str, spans: list[str], budget: int) -> tuple[str, int] | None:
        """A JSON string body after prompt + prefix whose value occurs in `spans`, with its closing quote and what
        the closing token carried after it ('."}' -> '.', then '"}'). Returns (text, tokens); None when no candidate
        starts a span the document has (the caller then lets the model write freely)."""
        import torch

        logits = self._decoder.sync(prompt + self.encode(prefix))
        generated: list[int] = []
        while len(generated) < budget:
            allowed = []
            for token in torch.topk(logits, min(GROUNDED_TOP_K, logits.shape[-1])).indices.tolist():
                if token in self.stop_ids:
                    continue
                piece = self.tokenizer.decode(generated + [token])
                end = json_value_end('"' + piece, '"')
                value = partial_string_value(piece if end < 0 else piece[: end - 2])
                # A span must close with something to select in it: a bare space would select a stray blank.
                if value is None or (end >= 0 and not value.strip()) or (value and not occurs(value, spans)):
                    continue
                allowed.append(token)
                if self.config.temperature <= 0:
                    break  # greedy: the likeliest allowed token
            if not allowed:
                break
            token = self._pick_branch(allowed, logits)
            generated.append(token)
            piece = self.tokenizer.decode(generated)
            if json_value_end('"' + piece, '"') >= 0:
                return piece, len(generated)
            logits = self._decoder.sync(self._decoder.ids + [token])
        # Out of candidates or budget: the span ends here, re-escaped so a half-written escape cannot swallow the quote.
        value = partial_string_value(self.tokenizer.decode(generated)) or ""
        if not value.strip():
            return None
        return json.dumps(value, ensure_ascii=False)[1:], len(generated)

    def complete(self, messages: list[dict[str, str]], max_new_tokens: int | None = None,
                 stop: list[str] | None = None, stop_at_json: bool = True) -> tuple[str, int, int, str]:
        """Free greedy completion of a chat (the server's path). Returns (text, prompt_tokens, completion_tokens,
        finish_reason). With stop_at_json, a reply that starts with '{' ends where that object closes."""
        stops = [s for s in (stop or []) if s]

        def stopper(text: str) -> int:
            cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
            if stop_at_json and text.lstrip().startswith("{"):
                end = json_object_end(text)
                if end >= 0:
                    cuts.append(end)
            return min(cuts, default=-1)

        with self._lock:
            prompt = build_prompt_ids(self.tokenizer, messages)
            self._check_length(prompt)
            text, n, reason = self._generate(prompt, "", stopper, max_new_tokens or self.config.max_new_tokens)
        return text, len(prompt), n, reason

    def _check_length(self, prompt: list[int]) -> None:
        if len(prompt) >= self.max_context:
            raise BackendError(f"the prompt has {len(prompt)} tokens; the model takes at most {self.max_context}")

    # -- guided decoding ----------------------------------------------------------------------------------------

    def _guided(self, prompt: list[int], obs: Observation, task: str = "", history: list[HistoryItem] | None = None,
                only: tuple[str, ...] | None = None) -> tuple[str, int]:
        """Write Action.to_json()'s skeleton and let the model fill the values. Returns (text, free tokens).
        only: the functions it may choose among (all by default).

        Every choice among fixed strings is greedy over the tokens of the candidates, tokenised in context, so the
        model reads exactly the tokens it was trained on; forced tokens cost no model call of their own (they are
        fed together with the next decision).
        """
        cfg = self.config
        state = {"text": "", "free": 0}
        limits = step_limits(obs, task, history, cfg)
        used = frozenset(item.action.control_name for item in history or [] if item.action.control_name)

        def choose(options: list[str], prior: list[float] | None = None) -> int:
            text = state["text"]
            seqs = self.tokenizer([text + o for o in options], add_special_tokens=False)["input_ids"]
            alive, j = list(range(len(options))), 0
            if len(options) > 1:
                j = min(common_prefix(seqs[0], s) for s in seqs[1:])
            while len(alive) > 1:
                branches: dict[int, list[int]] = {}
                for i in alive:
                    if len(seqs[i]) > j:
                        branches.setdefault(seqs[i][j], []).append(i)
                if not branches:
                    break
                if len(branches) > 1:
                    logits = self._decoder.sync(prompt + seqs[alive[0]][:j])
                    bonus = {tok: max(prior[i] for i in members) for tok, members in branches.items()} if prior else None
                    best = self._pick_branch(list(branches), logits, bonus)
                    alive = branches[best]
                else:
                    alive = next(iter(branches.values()))
                j += 1
            state["text"] = text + options[alive[0]]
            return alive[0]

        def free(prefix_key: str, stop: Callable[[str], int], if_empty: str) -> None:
            state["text"] += prefix_key
            budget = max(1, cfg.max_new_tokens - state["free"])
            piece, n, _ = self._generate(prompt, state["text"], stop, budget)
            # A model that stops (EOS) where a value must come gets the empty value, so the skeleton stays valid.
            state["text"] += piece if piece.strip() else if_empty
            state["free"] += n

        def pick(options: list[tuple[str, str]]) -> str:
            """Choose among (kind, text) options; returns the kind."""
            return options[choose([text for _, text in options])][0]

        # Names, not labels, are what the model chooses among (Action.to_json's order); the label is looked up.
        by_name = limits.controls
        # Each option carries the fixed text that follows it. BPE merges a value's closing quote with what comes
        # next ('",', '"}'), so an option cut at its bare quote ends in a token the model never saw there, and
        # where one option is a prefix of another ("Format" and "Formatting Marks", "5" and "57") the model would
        # be choosing between an untrained token and the longer option.
        first = [("thought", '{"thought":')] if cfg.thought == "model" else []
        if pick(first + [("function", '{"function": "')]) == "thought":
            free("", _string_end, ' ""')
            state["text"] += ', "function": "'
        functions = [f for f, spec in FUNCTIONS.items()
                     if (by_name or not spec.needs_control) and f in (only or FUNCTIONS)]
        function = functions[choose([f'{f}", "control_name": "' if FUNCTIONS[f].needs_control else f'{f}", "args":'
                                     for f in functions])]
        if FUNCTIONS[function].needs_control:
            names = limits.names(function)
            # A control acted on already has served the request: favouring it again made the model click it in a loop.
            prior = ([cfg.name_prior if named and name not in used else 0.0
                      for name, named in zip(names, named_controls(task, names))]
                     if cfg.name_prior and task else None)
            name = names[choose([f'{json.dumps(n, ensure_ascii=False)[1:]}, "control_label": '
                                 f'{json.dumps(by_name[n].label, ensure_ascii=False)}, "args":' for n in names], prior)]
            done = limits.repeated_toggle(function, name)
            if done is not None:
                return done.to_json(), state["free"]
        spans = limits.spans if function == "select_text" else None
        if spans and limits.quotes:
            # Each option carries the text that follows it (see `first` above): one quote may begin another.
            choose([f'{SELECT_TEXT_HEAD}{json.dumps(q, ensure_ascii=False)[1:]}}}, "status": "'
                    for q in limits.quotes])
        elif function == "set_edit_text" and (texts := limits.edit_texts(name)):
            choose([f'{SET_EDIT_TEXT_HEAD}{json.dumps(t, ensure_ascii=False)[1:]}}}, "status": "' for t in texts])
        elif function == "select_paragraph" and limits.paragraphs:
            # Digits are tokens of their own: "1" and "15" part at their second token, where the text after "1" is.
            start = limits.paragraphs[choose([f'{SELECT_PARAGRAPH_HEAD}{i}, "end_index": ' for i in limits.paragraphs])]
            choose([f'{i}}}, "status": "' for i in limits.ends(start)])
        else:
            span = None
            if spans:
                budget = max(1, cfg.max_new_tokens - state["free"])
                span = self._grounded_string(prompt, state["text"] + SELECT_TEXT_HEAD, spans, budget)
            if span is None:
                free("", _value_end, " {}")
            else:
                head = SELECT_TEXT_HEAD + span[0]
                end = json_value_end(head, "{")
                state["text"] += head[:end] if end >= 0 else head
                state["free"] += span[1]
                if end < 0:  # the rest of the object (an occurrence, the closing brace)
                    free("", lambda t: max(-1, json_value_end(head + t, "{") - len(head)), "}")
            state["text"] += ', "status": "'
        endings = [("end", '"}')] + ([("plan", '", "plan":')] if cfg.plan == "model" else [])
        kind = pick([(kind, status.value + ending) for status in Status for kind, ending in endings])
        if kind == "plan":
            free("", lambda t: json_value_end(t, "["), " []")
            state["text"] += "}"
        return state["text"], state["free"]

    def decide(self, messages, obs, task, history) -> BackendReply:
        start = time.perf_counter()
        with self._lock:
            passes_before = self._decoder.forward_passes
            prompt = build_prompt_ids(self.tokenizer, messages)
            self._check_length(prompt)
            if self._decoder.pool_size:
                self._decoder.remember(control_list_prefix(self.tokenizer, messages, prompt))
            if self.config.decoding == "guided":
                obs = Observation.model_validate(obs) if isinstance(obs, dict) else obs
                text, _ = self._guided(prompt, obs, task, history)
                if self.config.select_first and acts_before_selecting(text, obs, task, history):
                    text, _ = self._guided(prompt, obs, task, history, only=SELECTIONS)
            else:
                text, _, _ = self._generate(prompt, "", json_object_end, self.config.max_new_tokens)
            passes = self._decoder.forward_passes - passes_before
        return BackendReply(text=text, tokens_generated=len(self.encode(text)), prompt_tokens=len(prompt),
                            latency_s=time.perf_counter() - start, forward_passes=passes)
