"""Micro-batches and the forward pass shared by SFT, the reward model and PPO.

Two things make CPU training fast here, and both are exact (same loss and gradients as the plain forward):

- Shared prefix. All step prompts start with the same ~330-token system prompt. A micro-batch runs that prefix
  once (batch 1) and the rest of every example on top of its KV cache; gradients flow back through the cache
  into the one prefix pass. Packing would also avoid padding, but on CPU its block-diagonal attention still
  costs (sum of lengths)^2, and it would still run the system prompt once per example.
- Logits only where there is a loss. The vocabulary projection (49k x 576 for SmolLM2) is a fifth of the forward
  cost per token; only target tokens (a few % of a step sample) need it.

The suffixes of a micro-batch are right-padded; sorting each optimizer batch by length keeps that padding small.

One option is not exact: `prompt_gradients=False` runs each prompt (all but its last token) without gradients and
only the last prompt token and the action with them. The loss is the same; the gradient leaves out how LoRA changes
the prompt's keys and values. A step sample is ~97% prompt, and a forward without autograd costs about a third of
forward + backward, so on CPU this is ~2.5x faster per sample and holds no activations for the prompt.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lamforge.train.formatting import IGNORE_INDEX, Encoded

MIN_SHARED_PREFIX = 16  # shorter common prefixes are not worth a separate pass


@dataclass
class MicroBatch:
    prefix_ids: torch.Tensor | None  # [1, P]: the prompt prefix every example shares, or None
    input_ids: torch.Tensor  # [B, S]: each example after the prefix, right-padded
    labels: torch.Tensor  # [B, S]: IGNORE_INDEX on prompt and padding
    attention_mask: torch.Tensor | None  # [B, P + F + S]; None when nothing is padded
    lengths: list[int]  # real length of each row of input_ids
    frozen_ids: torch.Tensor | None = None  # [B, F]: prompt tokens run without gradients, right-padded
    frozen_lengths: list[int] | None = None  # real length of each row of frozen_ids
    freeze_prompt: bool = False  # the shared prefix and frozen_ids run without gradients

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix_ids is None else self.prefix_ids.shape[1]

    @property
    def target_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    def to(self, device) -> "MicroBatch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return MicroBatch(move(self.prefix_ids), move(self.input_ids), move(self.labels), move(self.attention_mask),
                          self.lengths, move(self.frozen_ids), self.frozen_lengths, self.freeze_prompt)


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


def make_micro_batch(examples: list[Encoded], pad_id: int, share_prefix: bool = True,
                     prompt_gradients: bool = True) -> MicroBatch:
    prefix = 0
    if share_prefix and len(examples) > 1:
        # Stop one token before the first target token: the last prefix position predicts the first suffix token,
        # and that prediction (a prompt token) must carry no loss, or splitting would drop it.
        prefix = min(common_prefix_length([e.input_ids for e in examples]), min(e.prompt_length for e in examples) - 1)
        if prefix < MIN_SHARED_PREFIX:
            prefix = 0
    # Without prompt gradients, each row's prompt up to its last token goes to the frozen part; the last prompt
    # token stays in the trained part, because its hidden state predicts the first action token.
    cuts = [prefix if prompt_gradients else max(prefix, e.prompt_length - 1) for e in examples]
    frozen = [e.input_ids[prefix:cut] for e, cut in zip(examples, cuts)]
    rows = [e.input_ids[cut:] for e, cut in zip(examples, cuts)]
    lengths = [len(r) for r in rows]
    frozen_lengths = [len(f) for f in frozen]
    input_ids = _right_pad(rows, pad_id)
    label_ids = _right_pad([e.labels[cut:] for e, cut in zip(examples, cuts)], IGNORE_INDEX)
    frozen_ids = _right_pad(frozen, pad_id) if max(frozen_lengths) else None
    width, frozen_width = input_ids.shape[1], 0 if frozen_ids is None else frozen_ids.shape[1]
    attention_mask = None
    if prefix or frozen_ids is not None or min(lengths) != width:
        attention_mask = torch.zeros((len(rows), prefix + frozen_width + width), dtype=torch.long)
        attention_mask[:, :prefix] = 1
        for i, (f, n) in enumerate(zip(frozen_lengths, lengths)):
            attention_mask[i, prefix : prefix + f] = 1
            attention_mask[i, prefix + frozen_width : prefix + frozen_width + n] = 1
    prefix_ids = torch.tensor([examples[0].input_ids[:prefix]]) if prefix else None
    return MicroBatch(prefix_ids, input_ids, label_ids, attention_mask, lengths,
                      frozen_ids, frozen_lengths if frozen_ids is not None else None, not prompt_gradients)


def micro_batches(examples: list[Encoded], size: int, pad_id: int, share_prefix: bool = True,
                  prompt_gradients: bool = True) -> list[MicroBatch]:
    """Split an optimizer batch into micro-batches of similar length (less padding, longer shared prefixes)."""
    ordered = sorted(examples, key=len)
    return [make_micro_batch(ordered[i : i + size], pad_id, share_prefix, prompt_gradients)
            for i in range(0, len(ordered), size)]


def unwrap(model):
    """The transformers model inside a PEFT wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_of(model):
    return unwrap(model).get_decoder()


def hidden_states(model, batch: MicroBatch) -> torch.Tensor:
    """Last-layer hidden states [B, S] of the input_ids part: the shared prefix run once, then the frozen prompt
    part (if any), then input_ids on top of their KV cache."""
    decoder = decoder_of(model)
    if batch.prefix_ids is None and batch.frozen_ids is None:
        return decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).last_hidden_state
    rows, device = batch.input_ids.shape[0], batch.input_ids.device
    cache, seen = None, 0
    with torch.no_grad() if batch.freeze_prompt else contextlib.nullcontext():
        if batch.prefix_ids is not None:
            prefix_out = decoder(input_ids=batch.prefix_ids, use_cache=True)
            cache = _cache_of(prefix_out)
            cache.batch_repeat_interleave(rows)
            seen = batch.prefix_length
        if batch.frozen_ids is not None:
            width = batch.frozen_ids.shape[1]
            positions = torch.arange(seen, seen + width, device=device).unsqueeze(0).expand(rows, -1)
            frozen_out = decoder(input_ids=batch.frozen_ids, attention_mask=batch.attention_mask[:, : seen + width],
                                 position_ids=positions, use_cache=True,
                                 **({_cache_kwarg(decoder): cache} if cache is not None else {}))
            cache = _cache_of(frozen_out)
    # Each row continues at its own position: its frozen part may be shorter than the padded width.
    offsets = torch.tensor(batch.frozen_lengths or [0] * rows, device=device) + batch.prefix_length
    positions = offsets.unsqueeze(1) + torch.arange(batch.input_ids.shape[1], device=device).unsqueeze(0)
    out = decoder(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=positions,
        use_cache=True,
        **{_cache_kwarg(decoder): cache},
    )
    return out.last_hidden_state


def _cache_of(output):
    return getattr(output, "cache", None) or output.past_key_values


def _cache_kwarg(decoder) -> str:
    """transformers 5 renamed `past_key_values` to `cache`; accept both so older versions keep working."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def target_logits(model, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits [N, V] (fp32) at the N positions that predict a target token, the targets [N], and each one's row [N]."""
    hidden = hidden_states(model, batch)
    targets = batch.labels[:, 1:]
    where = targets != IGNORE_INDEX
    head = unwrap(model).get_output_embeddings()
    logits = head(hidden[:, :-1][where]).float()
    rows = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1).expand_as(targets)[where]
    return logits, targets[where], rows


def target_loss_sum(model, batch: MicroBatch) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over target tokens, and their count (the caller normalises over the whole batch)."""
    logits, targets, _ = target_logits(model, batch)
    return F.cross_entropy(logits, targets, reduction="sum"), targets.numel()


def target_logprobs(model, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each target token [N] and its row [N]."""
    logits, targets, rows = target_logits(model, batch)
    return torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1), rows


def last_token_hidden(model, batch: MicroBatch) -> torch.Tensor:
    """Hidden state [B, H] at each example's last token (the EOS after the action): the reward model's input."""
    hidden = hidden_states(model, batch)
    last = torch.tensor(batch.lengths, device=hidden.device) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CPU or GPU; a no-op context when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
