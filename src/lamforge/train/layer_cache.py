"""What the frozen bottom layers make of each training example, kept across epochs.

With LoRA on the top N decoder layers only (`lora_layers`), the layers below never change during a phase, so the
hidden states that enter the first adapted layer are the same at every draw of an example. The first draw runs the
whole decoder and keeps them (on disk, one file per example: 576 floats a token for SmolLM2, ~3 MB for a step
sample); later draws start from them and run only the adapted layers. It is the same computation, rounded as the
micro-batch that first drew the example rounded it: in fp32 the loss from kept states matched the plain one to 1e-6
on collected samples; under bf16 autocast SmolLM2's states entering layer 15 (its residual stream holds values near
25,000) differ from a plain forward's by ~6e-4 (relative norm) in any micro-batch arrangement, kept or not.
docs/results.md, "Kept layer states", has the measurements.

Written by hand: transformers runs a decoder from token ids or input embeddings, not from a middle layer, so
`run_top` repeats the few lines of its decoder loop (mask, rotary embedding, layers, final norm) from that layer on.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import shutil
import warnings
from array import array
from collections import Counter
from pathlib import Path

import torch


def unsupported_reason(decoder) -> str | None:
    """Why this decoder cannot start from a middle layer here (None: it can)."""
    from transformers import masking_utils

    if not all(hasattr(decoder, name) for name in ("layers", "norm", "rotary_emb", "config")):
        return f"{type(decoder).__name__} is not a decoder of the Llama kind (layers, norm, rotary_emb)"
    if "layer_idx" not in inspect.signature(masking_utils.create_causal_mask).parameters:
        return "this transformers cannot size a causal mask by a middle layer (transformers 5 can)"
    if "cache" not in inspect.signature(decoder.forward).parameters:
        return "this transformers passes the KV cache under an older name (transformers 5 is needed)"
    if getattr(decoder.config, "attention_dropout", 0.0):
        return "the model's attention dropout makes the unadapted layers' output differ from draw to draw"
    return None


FINGERPRINT = "fingerprint"
SPARE_GB = 2.0  # disk left free beside the kept states, for the resume state and the finished model


def open_layer_cache(config, decoder, schedule: list[list[int]], start: int, token_ids: list[list[int]],
                     folder: Path, processes: int = 1) -> tuple[LayerCache | None, str]:
    """The cache for a phase's remaining batches `schedule[start:]` over examples with these token ids, and a line
    that says what it keeps or why there is none. A folder left by a stopped run of the same model and data is
    reused; one of other data or another model is emptied first."""
    if not (config.keep_layer_states and config.use_lora and config.lora_layers > 0):
        return None, ""
    first = decoder.config.num_hidden_layers - config.lora_layers
    if first <= 0:
        return None, ""
    if processes > 1 or config.sharding != "none":
        reason = "it is kept for training in one process only"
    else:
        reason = unsupported_reason(decoder)
    if reason:
        return None, f"layer states are not kept: {reason}"
    draws = Counter(key for batch in schedule[start:] for key in batch)
    wanted = {key for key, count in draws.items() if count > 1}
    if not wanted and not folder.exists():
        return None, ""
    digest = hashlib.sha256(f"{first}|{decoder.config.hidden_size}".encode())
    # The weights that make the kept states, not the path they came from: a model at the same path trained again
    # (a new LAM1 before phase 2 resumes) must not meet the old model's states. ~0.2 s for SmolLM2's bottom half.
    for part in (decoder.embed_tokens, *decoder.layers[:first]):
        for tensor in part.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    for ids in token_ids:
        digest.update(len(ids).to_bytes(4, "little"))
        digest.update(array("l", ids).tobytes())
    mark = folder / FINGERPRINT
    if folder.exists() and (not mark.exists() or mark.read_text() != digest.hexdigest()):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mark.write_text(digest.hexdigest())
    cache = LayerCache(folder, first, wanted)
    if not wanted and not cache.known & draws.keys():
        shutil.rmtree(folder)
        return None, ""
    size = sum(len(token_ids[key]) for key in wanted - cache.known) * decoder.config.hidden_size * 4 / 1e9
    free = shutil.disk_usage(folder).free / 1e9
    if size + SPARE_GB > free:
        cache.stopped = f"~{size:.1f} GB more needed, {free:.1f} GB free"
        return cache, (f"layer states are not kept: they need ~{size:.1f} GB and {folder} has {free:.1f} GB free "
                       f"(keeping {SPARE_GB:.0f} GB spare); draws of examples not kept already run every layer")
    return cache, (f"keeping layers 0-{first - 1}'s states of {len(wanted)} examples drawn more than once "
                   f"(~{size:.1f} GB in {folder}; {len(cache.known)} kept already)")


def run_top(decoder, first: int, kv, hidden: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor):
    """Decoder layers `first`.. on `hidden` (the states entering layer `first`) on top of `kv` (None: from scratch);
    returns (last hidden state after the final norm, the extended cache). The same steps as the model's forward."""
    from transformers import DynamicCache
    from transformers.masking_utils import create_causal_mask

    if kv is None:
        kv = DynamicCache(config=decoder.config)
    # The bottom layers' caches stay empty, so the mask is sized by layer `first`'s.
    causal = create_causal_mask(config=decoder.config, inputs_embeds=hidden, attention_mask=mask, cache=kv,
                                position_ids=positions, layer_idx=first)
    rotary = decoder.rotary_emb(hidden, position_ids=positions)
    for layer in decoder.layers[first : decoder.config.num_hidden_layers]:
        hidden = layer(hidden, attention_mask=causal, position_embeddings=rotary, position_ids=positions, cache=kv,
                       use_cache=True)
    return decoder.norm(hidden), kv


class LayerCache:
    """Per-example hidden states entering decoder layer `first`, one file per example key in `folder`."""

    def __init__(self, folder: Path, first: int, wanted: set[int] | None = None):
        self.folder, self.first = Path(folder), first
        self.wanted = wanted  # the keys worth storing (drawn again later); None: every key
        self.folder.mkdir(parents=True, exist_ok=True)
        self.known = {int(p.stem) for p in self.folder.glob("*.pt") if p.stem.isdigit()}
        self.hits = self.misses = 0
        self.stopped: str | None = None  # why no more states are stored (a full disk)

    def has_all(self, keys) -> bool:
        return keys is not None and all(k in self.known for k in keys)

    def load(self, key: int) -> torch.Tensor:
        return torch.load(self.folder / f"{key}.pt", map_location="cpu", weights_only=True, mmap=True)

    def wants(self, key: int) -> bool:
        """Whether a state for `key` would be stored now (worth keeping, not kept yet, room left)."""
        return not self.stopped and key not in self.known and (self.wanted is None or key in self.wanted)

    def store(self, key: int, states: torch.Tensor) -> None:
        if not self.wants(key):
            return
        path, tmp = self.folder / f"{key}.pt", self.folder / f".{key}.pt.tmp"
        try:
            torch.save(states.detach().to("cpu", copy=True).contiguous(), tmp)
            os.replace(tmp, path)  # a kill mid-write leaves a .tmp, never a half file under the real name
        except OSError as error:
            # Training goes on without the cache rather than stopping a run over it.
            self.stopped = f"{error.strerror or error} ({self.folder})"
            tmp.unlink(missing_ok=True)
            warnings.warn(f"no more layer states are kept: {self.stopped}; later epochs run every layer", stacklevel=2)
            return
        self.known.add(key)

    @contextlib.contextmanager
    def capture(self, decoder):
        """Record the hidden states entering layer `first` at each decoder call inside the block, in call order."""
        seen: list[torch.Tensor] = []

        def hook(_module, args, kwargs):
            seen.append((args[0] if args else kwargs["hidden_states"]).detach())

        handle = decoder.layers[self.first].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield seen
        finally:
            handle.remove()

    def describe(self) -> dict:
        return {"first_layer": self.first, "examples_kept": len(self.known), "draws_from_cache": self.hits,
                "draws_run_whole": self.misses, "stopped": self.stopped}
