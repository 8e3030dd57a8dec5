"""Micro-batches and the forward pass shared by SFT, the reward model and PPO.

Two things make CPU training fast here, and both are exact (same loss and gradients as the plain forward):

- Shared prefix. All step prompts start with the same ~330-token system prompt. A micro-batch runs that prefix
  once (batch 1) and the rest of every example on top of its KV cache; gradients flow back through the cache
  into the one prefix pass. Packing would also avoid padding, but on CPU its block-diagonal attention still
  costs (sum of lengths)^2, and it would still run the system prompt once per example.
- Logits only where there is a loss. The vocabulary projection (49k x 576 for SmolLM2) is a fifth of the forward
  cost per token; only target tokens (a few % of a step sample) need it.

The suffixes of a micro-batch are right-padded.

One option is not exact: `prompt_gradients=False` runs each prompt (all but its last token) without gradients and
only the last prompt token and the action with them. The loss is the same; the gradient leaves out how LoRA changes
the prompt's keys and values. A step sample is ~97% prompt, and a forward without autograd costs about a third of
forward + backward, so on CPU this is ~2.5x faster per sample and holds no activations for the prompt.
`prompt_tail=N` keeps the last N prompt tokens (the task line) in the trained part, so that gradient covers how
LoRA represents the request; the loss is still the same.

A frozen prompt also lets rows share more than the common prefix: rows of a micro-batch whose prompts go on alike
(the same document after the same window's controls, ~350 tokens) form a branch that runs that segment once, on a
copy of the prefix's cache (a copy is only possible without an autograd graph). Prefix and segments together
cover ~90% of a step prompt when the batch schedule fills batches per window and document.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lamforge.models.formatting import IGNORE_INDEX, Encoded
from lamforge.train.layer_cache import run_top

MIN_SHARED_PREFIX = 16  # shorter common prefixes are not worth a separate pass
BRANCH_OVERHEAD = 64  # tokens' worth of cost of one more forward pass (a branch of a frozen micro-batch)


@dataclass
class Branch:
    """Rows of a micro-batch that run together on top of its shared prefix.

    With a frozen prompt, rows that share more than the micro-batch's prefix (the same document after the same
    control list) form a branch: their common `segment` runs once (batch 1), then each row's remaining prompt
    (`frozen_ids`, right-padded) without gradients, then the trained part (`input_ids`). With prompt gradients a
    micro-batch is one branch with neither segment nor frozen part.
    """

    rows: list[int]  # positions of these rows in the micro-batch's examples
    input_ids: torch.Tensor  # [n, S]: the trained part of each row, right-padded
    labels: torch.Tensor  # [n, S]: IGNORE_INDEX on prompt and padding
    lengths: list[int]  # real length of each row of input_ids
    segment_ids: torch.Tensor | None = None  # [1, C]: prompt tokens these rows share beyond the prefix
    frozen_ids: torch.Tensor | None = None  # [n, F]: the rest of each row's prompt, run without gradients
    frozen_lengths: list[int] | None = None

    @property
    def segment_length(self) -> int:
        return 0 if self.segment_ids is None else self.segment_ids.shape[1]

    def to(self, device) -> "Branch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Branch(self.rows, move(self.input_ids), move(self.labels), self.lengths, move(self.segment_ids),
                      move(self.frozen_ids), self.frozen_lengths)


@dataclass
class MicroBatch:
    prefix_ids: torch.Tensor | None  # [1, P]: the prompt prefix every example shares, or None
    branches: list[Branch]
    freeze_prompt: bool = False  # the prefix, segments and frozen parts run without gradients
    keys: list[int] | None = None  # each example's key in a layer cache (its index in the training data), in order

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix_ids is None else self.prefix_ids.shape[1]

    @property
    def size(self) -> int:
        return sum(len(b.rows) for b in self.branches)

    @property
    def lengths(self) -> list[int]:
        """Trained-part length of each example, in the order the examples were given."""
        out = [0] * self.size
        for branch in self.branches:
            for row, length in zip(branch.rows, branch.lengths):
                out[row] = length
        return out

    @property
    def target_tokens(self) -> int:
        return sum(int((b.labels[:, 1:] != IGNORE_INDEX).sum()) for b in self.branches)

    def to(self, device) -> "MicroBatch":
        prefix = None if self.prefix_ids is None else self.prefix_ids.to(device)
        return MicroBatch(prefix, [b.to(device) for b in self.branches], self.freeze_prompt, self.keys)


def common_prefix_length(sequences: list[list[int]]) -> int:
    shortest = min(len(s) for s in sequences)
    first = sequences[0]
    for i in range(shortest):
        if any(s[i] != first[i] for s in sequences[1:]):
            return i
    return shortest


def _right_pad(rows: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def _branch(examples: list[Encoded], rows: list[int], start: int, cuts: list[int], pad_id: int,
            share: bool = True) -> Branch:
    """A branch of `rows`: tokens from `start` up to each row's cut are prompt without gradients (with `share`,
    the part all rows have in common becomes the segment), tokens from the cut on are trained."""
    frozen = [examples[r].input_ids[start : cuts[r]] for r in rows]
    shared = common_prefix_length(frozen) if share and len(rows) > 1 and min(map(len, frozen)) else 0
    segment = torch.tensor([frozen[0][:shared]]) if shared else None
    frozen = [f[shared:] for f in frozen]
    frozen_lengths = [len(f) for f in frozen]
    return Branch(
        rows=rows,
        input_ids=_right_pad([examples[r].input_ids[cuts[r] :] for r in rows], pad_id),
        labels=_right_pad([examples[r].labels[cuts[r] :] for r in rows], IGNORE_INDEX),
        lengths=[len(examples[r]) - cuts[r] for r in rows],
        segment_ids=segment,
        frozen_ids=_right_pad(frozen, pad_id) if max(frozen_lengths) else None,
        frozen_lengths=frozen_lengths if max(frozen_lengths) else None,
    )


def _branch_rows(examples: list[Encoded], start: int, cuts: list[int]) -> list[list[int]]:
    """Rows grouped into branches so that the frozen tokens to run are fewest: runs of rows in token order, each
    running its common segment once (worth it only above BRANCH_OVERHEAD tokens: a branch is one more pass), found
    by dynamic programming over the runs; rows that share with no other row form one branch together."""
    frozen = {r: examples[r].input_ids[start : cuts[r]] for r in range(len(examples))}
    order = sorted(frozen, key=lambda r: frozen[r])
    adjacent = [common_prefix_length([frozen[a], frozen[b]]) for a, b in zip(order, order[1:])]
    best = [0.0] + [float("inf")] * len(order)  # best[j]: least cost of the first j rows
    choice = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        shared = None
        for i in range(j - 1, -1, -1):  # the run order[i:j]
            if i < j - 1:
                shared = adjacent[i] if shared is None else min(shared, adjacent[i])
            tokens = sum(len(frozen[r]) for r in order[i:j])
            cost = tokens if shared is None else tokens - (j - i - 1) * shared + BRANCH_OVERHEAD
            if best[i] + cost < best[j]:
                best[j], choice[j] = best[i] + cost, i
    runs, j = [], len(order)
    while j:
        runs.append(order[choice[j] : j])
        j = choice[j]
    singles = [run[0] for run in runs if len(run) == 1]
    return [run for run in reversed(runs) if len(run) > 1] + ([singles] if singles else [])


def make_micro_batch(examples: list[Encoded], pad_id: int, share_prefix: bool = True,
                     prompt_gradients: bool = True, prompt_tail: int = 0, keys: list[int] | None = None) -> MicroBatch:
    """One micro-batch; every output that is per example (lengths, target rows, last-token states) keeps the order
    of `examples`. Without prompt gradients, the last `prompt_tail` prompt tokens of each row train with them.
    `keys` name the examples in a layer cache (train/layer_cache.py)."""
    prefix = 0
    if share_prefix and len(examples) > 1:
        # Stop one token before the first target token: the last prefix position predicts the first suffix token,
        # and that prediction (a prompt token) must carry no loss, or splitting would drop it.
        prefix = min(common_prefix_length([e.input_ids for e in examples]), min(e.prompt_length for e in examples) - 1)
        if prefix < MIN_SHARED_PREFIX:
            prefix = 0
    prefix_ids = torch.tensor([examples[0].input_ids[:prefix]]) if prefix else None
    if prompt_gradients:
        rows = list(range(len(examples)))
        return MicroBatch(prefix_ids, [_branch(examples, rows, prefix, [prefix] * len(examples), pad_id)],
                          keys=keys)
    # Without prompt gradients, each row's prompt up to its last token (or its last prompt_tail tokens) is frozen;
    # the last prompt token stays in the trained part, because its hidden state predicts the first action token.
    cuts = [max(prefix, e.prompt_length - 1 - prompt_tail) for e in examples]
    groups = _branch_rows(examples, prefix, cuts) if share_prefix else [list(range(len(examples)))]
    return MicroBatch(prefix_ids, [_branch(examples, rows, prefix, cuts, pad_id, share_prefix) for rows in groups],
                      freeze_prompt=True, keys=keys)


def micro_batches(examples: list[Encoded], size: int, pad_id: int, share_prefix: bool = True,
                  prompt_gradients: bool = True, prompt_tail: int = 0,
                  keys: list[int] | None = None) -> list[MicroBatch]:
    """Split an optimizer batch into micro-batches of consecutive examples in token order, so that examples whose
    prompts share a prefix (the same window and document) land in the same micro-batch and share its pass. The
    examples of a micro-batch are in that order, not the order given: callers that need per-example outputs in
    their own order build one micro-batch with make_micro_batch. `keys` (one per example) go along with them."""
    order = sorted(range(len(examples)), key=lambda i: examples[i].input_ids)
    return [make_micro_batch([examples[i] for i in part], pad_id, share_prefix, prompt_gradients, prompt_tail,
                             None if keys is None else [keys[i] for i in part])
            for part in (order[i : i + size] for i in range(0, len(order), size))]


def unwrap(model):
    """The transformers model inside a PEFT wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_of(model):
    return unwrap(model).get_decoder()


def _extend(decoder, cache, ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor):
    """Run ids on top of cache (None: from scratch); returns (output, the extended cache)."""
    kwargs = {_cache_kwarg(decoder): cache} if cache is not None else {}
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
    return out, _cache_of(out)


def branch_hidden_states(model, batch: MicroBatch, layer_cache=None) -> list[torch.Tensor]:
    """Last-layer hidden states [n, S] of each branch's trained part: the shared prefix run once, then per branch
    its segment once, each row's frozen prompt (if any), and the trained part on top of that KV cache.

    With a `layer_cache` (train/layer_cache.py) and keys on the micro-batch, a micro-batch whose every example was
    drawn before starts from the kept states and runs only the adapted layers; any other runs every layer and keeps
    its examples' states."""
    decoder = decoder_of(model)
    if layer_cache is None or batch.keys is None:
        return _run_branches(batch, _whole_decoder(decoder), _TokenPieces(batch))
    if not layer_cache.has_all(batch.keys) and not any(layer_cache.wants(key) for key in batch.keys):
        layer_cache.misses += batch.size  # nothing here to keep: no capture, no copies
        return _run_branches(batch, _whole_decoder(decoder), _TokenPieces(batch))
    if layer_cache.has_all(batch.keys):
        layer_cache.hits += batch.size
        device = batch.branches[0].input_ids.device
        states = [layer_cache.load(key).to(device) for key in batch.keys]

        def top_layers(kv, hidden, mask, positions):
            return run_top(decoder, layer_cache.first, kv, hidden, mask, positions)

        return _run_branches(batch, top_layers, _StatePieces(batch, states))
    layer_cache.misses += batch.size
    with layer_cache.capture(decoder) as seen:
        out = _run_branches(batch, _whole_decoder(decoder), _TokenPieces(batch))
    for key, states in zip(batch.keys, _row_states(batch, seen)):
        layer_cache.store(key, states)
    return out


def _whole_decoder(decoder):
    def run(kv, ids, mask, positions):
        output, kv = _extend(decoder, kv, ids, mask, positions)
        return output.last_hidden_state, kv
    return run


class _TokenPieces:
    """The parts of a micro-batch as token ids, for the whole decoder."""

    def __init__(self, batch: MicroBatch):
        self.batch = batch

    def prefix(self):
        return self.batch.prefix_ids

    def segment(self, branch: Branch):
        return branch.segment_ids

    def frozen(self, branch: Branch):
        return branch.frozen_ids

    def trained(self, branch: Branch):
        return branch.input_ids


class _StatePieces:
    """The same parts as kept hidden states [length, H] per example, cut and right-padded (with zeros, which the
    mask hides) as the token parts are."""

    def __init__(self, batch: MicroBatch, states: list[torch.Tensor]):
        self.batch, self.states = batch, states

    def prefix(self):
        p = self.batch.prefix_length
        return self.states[0][:p].unsqueeze(0) if p else None

    def segment(self, branch: Branch):
        p, c = self.batch.prefix_length, branch.segment_length
        return self.states[branch.rows[0]][p : p + c].unsqueeze(0) if c else None

    def frozen(self, branch: Branch):
        if branch.frozen_ids is None:
            return None
        start = self.batch.prefix_length + branch.segment_length
        return self._pad([self.states[r][start : start + f] for r, f in zip(branch.rows, branch.frozen_lengths)],
                         branch.frozen_ids.shape[1])

    def trained(self, branch: Branch):
        start = self.batch.prefix_length + branch.segment_length
        frozen = branch.frozen_lengths or [0] * len(branch.rows)
        return self._pad([self.states[r][start + f : start + f + n]
                          for r, f, n in zip(branch.rows, frozen, branch.lengths)], branch.input_ids.shape[1])

    @staticmethod
    def _pad(rows: list[torch.Tensor], width: int) -> torch.Tensor:
        out = rows[0].new_zeros((len(rows), width, rows[0].shape[-1]))
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out


def _row_states(batch: MicroBatch, seen: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each example's states [its length, H], put together from what layer_cache.capture saw in the decoder calls of
    _run_branches (in its order: prefix, then per branch segment, frozen part, trained part)."""
    calls = iter(seen)
    prefix = next(calls)[0] if batch.prefix_ids is not None else None
    rows: list[torch.Tensor | None] = [None] * batch.size
    for branch in batch.branches:
        segment = next(calls)[0] if branch.segment_ids is not None else None
        frozen = next(calls) if branch.frozen_ids is not None else None
        trained = next(calls)
        for i, row in enumerate(branch.rows):
            parts = [prefix, segment, None if frozen is None else frozen[i, : branch.frozen_lengths[i]],
                     trained[i, : branch.lengths[i]]]
            rows[row] = torch.cat([part for part in parts if part is not None])
    return rows


def _run_branches(batch: MicroBatch, run, pieces) -> list[torch.Tensor]:
    """branch_hidden_states over `pieces` (token ids or kept states), each extension of the KV cache by `run`."""
    device = batch.branches[0].input_ids.device
    prefix_cache, prefix = None, batch.prefix_length
    frozen = torch.no_grad() if batch.freeze_prompt else contextlib.nullcontext()
    if batch.prefix_ids is not None:
        with frozen:
            _, prefix_cache = run(None, pieces.prefix(), None, torch.arange(prefix, device=device)[None])
    out = []
    for number, branch in enumerate(batch.branches):
        n = len(branch.rows)
        # Branches after the first start from a copy: extending a cache changes it in place. Only frozen
        # micro-batches have several branches, and their prefix cache has no autograd graph to copy.
        cache = prefix_cache if number == len(batch.branches) - 1 else copy.deepcopy(prefix_cache)
        seen = prefix
        with frozen:
            if branch.segment_ids is not None:
                c = branch.segment_length
                mask = torch.ones((1, seen + c), dtype=torch.long, device=device)
                _, cache = run(cache, pieces.segment(branch), mask, torch.arange(seen, seen + c, device=device)[None])
                seen += c
            if cache is not None:
                cache.batch_repeat_interleave(n)
            frozen_width = 0 if branch.frozen_ids is None else branch.frozen_ids.shape[1]
            width = branch.input_ids.shape[1]
            mask = torch.zeros((n, seen + frozen_width + width), dtype=torch.long, device=device)
            mask[:, :seen] = 1
            for i, (f, length) in enumerate(zip(branch.frozen_lengths or [0] * n, branch.lengths)):
                mask[i, seen : seen + f] = 1
                mask[i, seen + frozen_width : seen + frozen_width + length] = 1
            if branch.frozen_ids is not None:
                positions = torch.arange(seen, seen + frozen_width, device=device).unsqueeze(0).expand(n, -1)
                _, cache = run(cache, pieces.frozen(branch), mask[:, : seen + frozen_width], positions)
        # Each row continues at its own position: its frozen part may be shorter than the padded width.
        offsets = torch.tensor(branch.frozen_lengths or [0] * n, device=device) + seen
        positions = offsets.unsqueeze(1) + torch.arange(width, device=device).unsqueeze(0)
        trained, _ = run(cache, pieces.trained(branch), mask if cache is not None else None, positions)
        out.append(trained)
    return out


def _cache_of(output):
    return getattr(output, "cache", None) or output.past_key_values


def _cache_kwarg(decoder) -> str:
    """transformers 5 renamed `past_key_values` to `cache`; accept both so older versions keep working."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def target_logits(model, batch: MicroBatch, layer_cache=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits [N, V] (fp32) at the N positions that predict a target token, the targets [N], and each one's row [N]
    (its position in the micro-batch's examples)."""
    head = unwrap(model).get_output_embeddings()
    logits, targets, rows = [], [], []
    for branch, hidden in zip(batch.branches, branch_hidden_states(model, batch, layer_cache)):
        wanted = branch.labels[:, 1:]
        where = wanted != IGNORE_INDEX
        logits.append(head(hidden[:, :-1][where]).float())
        targets.append(wanted[where])
        ids = torch.tensor(branch.rows, device=wanted.device)
        rows.append(ids.unsqueeze(1).expand_as(wanted)[where])
    return torch.cat(logits), torch.cat(targets), torch.cat(rows)


def target_loss_sum(model, batch: MicroBatch, layer_cache=None) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over target tokens, and their count (the caller normalises over the whole batch)."""
    logits, targets, _ = target_logits(model, batch, layer_cache)
    return F.cross_entropy(logits, targets, reduction="sum"), targets.numel()


def target_logprobs(model, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each target token [N] and its row [N]."""
    logits, targets, rows = target_logits(model, batch)
    return torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1), rows


def last_token_hidden(model, batch: MicroBatch) -> torch.Tensor:
    """Hidden state [B, H] at each example's last token (the EOS after the action), in the examples' order: the
    reward model's input."""
    states = [None] * batch.size
    for branch, hidden in zip(batch.branches, branch_hidden_states(model, batch)):
        last = torch.tensor(branch.lengths, device=hidden.device) - 1
        for row, state in zip(branch.rows, hidden[torch.arange(hidden.shape[0], device=hidden.device), last]):
            states[row] = state
    return torch.stack(states)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CPU or GPU; a no-op context when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
