"""A token sequence whose KV cache survives between calls, and a pool of cached control lists: what makes a local
model's step cheap on a CPU, where consecutive prompts share most of their tokens.

Written by hand rather than with `model.generate` because guided decoding needs two things generate does not do:
feeding a chunk of forced tokens in one forward pass, and cropping the cache back to the longest common prefix
with a re-tokenised sequence (the prompt of the next step, or the reply after forced text was added).
"""

from __future__ import annotations

import copy
import inspect
from collections import OrderedDict
from typing import Any


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i



class CachedDecoder:
    """Decoding over one token sequence whose KV cache survives between calls (see the module's docstring)."""

    def __init__(self, model, prefix_cache: bool = True, pool_size: int = 0):
        import torch
        from transformers import DynamicCache

        self.torch = torch
        self._cache_class = DynamicCache  # resolved now: see agent/backends.py, RetrievalBackend, on importing after `uno`
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
        if self.cache is None or common_prefix(self.ids, prefix) < len(prefix):
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
        common = common_prefix(self.ids, target) if (self.cache is not None and self.prefix_cache) else 0
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
