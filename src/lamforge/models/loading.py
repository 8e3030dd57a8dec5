"""The one model loader: a tokenizer, a model to train (causal LM, or the reward model's scorer), or a trained
policy for inference, from a base model name, a phase's output folder or a hub id.

torch, transformers and peft are imported inside the functions: start-up time. Modules that only name these
functions (the command line, the light agent backends) must not pay seconds for them at import.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from lamforge.models.base_model import BaseModelError, resolve_model
from lamforge.models.cpu import cpu_has_bf16


@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' load report where a missing weight is expected (a new reward head)."""
    from transformers.utils import logging

    before = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name_or_path))
    if tokenizer.pad_token_id is None:
        # Padding is masked out everywhere, so any token will do; EOS is the usual choice (Mistral has no pad).
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise BaseModelError(f"{name_or_path} has no chat template; use an instruct/chat model or a trained LAM")
    return tokenizer


def load_model(name_or_path: str, kind: str = "causal-lm", dtype=None, device=None, quantization=None):
    """A causal LM, or with kind="scorer" the same backbone with transformers' one-output regression head
    (`AutoModelForSequenceClassification`, num_labels=1): the reward model.

    `quantization` is a transformers BitsAndBytesConfig (4/8-bit base). On a GPU the weights load straight onto
    it (device_map), so N processes of a launched run do not each hold a copy in host memory first.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs = {"dtype": dtype or torch.float32}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    on_gpu = device is not None and torch.device(device).type == "cuda"
    if on_gpu:
        kwargs["device_map"] = {"": torch.device(device)}
    path = resolve_model(name_or_path)
    if kind == "scorer":
        with quiet_loading():  # the head is new, so transformers' report of its missing weights is expected
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kwargs)
    elif kind == "causal-lm":
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    if device is not None and not on_gpu:
        model.to(device)
    return model


def load_policy(name_or_path: str | Path, device: str | None = None, dtype=None):
    """(model, tokenizer) for inference from a phase's output folder, a base model name, or a hub id; in eval
    mode, LoRA adapters merged (inference never pays for their extra matmuls). Every expected failure (no such
    model, a folder without weights, a hub id not cached offline, no chat template) is a BaseModelError."""
    import torch

    path = str(name_or_path)
    try:
        if (Path(path) / "adapter_config.json").exists():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32).merge_and_unload()
            if device:
                model.to(device)
        else:
            model = load_model(path, "causal-lm", dtype, device)
        tokenizer = load_tokenizer(path)
    except OSError as exc:
        raise BaseModelError(f"cannot load the model {path}: {exc}") from exc
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


INFERENCE_DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
DTYPE_HELP = (f"auto (bfloat16 where the CPU runs it natively, else float32), {', '.join(INFERENCE_DTYPES[1:-1])} or "
              f"{INFERENCE_DTYPES[-1]}")
"""The dtype choices as the commands' --dtype help says them."""


def dtype_problem(name: str, allowed: tuple[str, ...] = INFERENCE_DTYPES) -> str | None:
    """Why `name` is not a dtype to load a model in (None when it is): commands check it before they start."""
    if name in allowed:
        return None
    return f"unknown dtype {name!r}; use {', '.join(allowed[:-1])} or {allowed[-1]}"


def resolve_dtype(name: str, device: str):
    """The torch dtype to load weights in for inference ('int8' loads float32 and is quantised after loading)."""
    import torch

    if name == "int8":
        if not device.startswith("cpu"):
            raise BaseModelError("dtype int8 (dynamic quantisation) runs on CPU only; use bfloat16 or float16 on a GPU")
        return torch.float32
    if name != "auto":
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise BaseModelError(dtype_problem(name) or f"unknown dtype {name!r}")
        return dtype
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # bfloat16 where the CPU runs it natively: on a Zen 4 (AVX-512 bf16, no AMX) a trained LAM decided 360 recorded
    # steps in 0.70x float32's time, first steps and later ones alike, with the same reply on 359; online its median
    # test task took 3.9 s against 5.0 (docs/results.md, "bf16 inference"). Elsewhere torch emulates bf16, ~100x slower.
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


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
