"""Held-out numbers every phase writes into its model card: validation loss on target tokens, and the exact-match
rates of greedy decoding (lamforge.metrics: actions field by field, plans by step text). Offline evaluation's
paper metrics (SSR and the rest) are another measure, of the guided runtime decoder."""

from __future__ import annotations

import torch

from lamforge.metrics import exact_match, exact_match_rates, plan_exact_match, plan_exact_match_rates
from lamforge.models.formatting import build_prompt_ids
from lamforge.prompt import parse_plan
from lamforge.train.batching import autocast, micro_batches, target_loss_sum
from lamforge.train.data import Example, record_messages


@torch.no_grad()
def validation_loss(model, examples: list[Example], pad_id: int, micro_batch_size: int, share_prefix: bool,
                    device: torch.device, bf16: bool) -> float:
    """Mean cross-entropy per target token."""
    if not examples:
        return float("nan")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    # No gradients here, so the frozen-prompt path (which shares documents across rows) computes the same loss.
    for batch in micro_batches([e.encoded for e in examples], micro_batch_size, pad_id, share_prefix, prompt_gradients=False):
        with autocast(device, bf16):
            loss, n = target_loss_sum(model, batch.to(device))
        total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(1, count)


@torch.no_grad()
def generate_reply(model, tokenizer, messages: list[dict[str, str]], max_new_tokens: int = 160) -> str:
    """Greedy decoding from the training prompt format; the text up to EOS."""
    device = next(model.parameters()).device
    ids = torch.tensor([build_prompt_ids(tokenizer, messages)], device=device)
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, use_cache=True,
    )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def action_accuracy(model, tokenizer, examples: list[Example], max_new_tokens: int) -> dict[str, float]:
    """Exact-match rates of greedy actions on held-out steps (lamforge.metrics.exact_match_rates)."""
    if not examples:
        return {}
    was_training = model.training
    model.eval()
    rows = [exact_match(generate_reply(model, tokenizer, record_messages(e.record)[0], max_new_tokens), e.target)
            for e in examples]
    model.train(was_training)
    return {**exact_match_rates(rows), "generated": len(rows)}


def plan_accuracy(model, tokenizer, examples: list[Example], max_new_tokens: int) -> dict[str, float]:
    """Exact-match rates of greedy plans on held-out task-plan pairs (lamforge.metrics.plan_exact_match_rates)."""
    if not examples:
        return {}
    was_training = model.training
    model.eval()
    rows = []
    for example in examples:
        messages, _ = record_messages(example.record)
        predicted = parse_plan(generate_reply(model, tokenizer, messages, max_new_tokens))
        rows.append(plan_exact_match(predicted, example.record.plan))
    model.train(was_training)
    return {**plan_exact_match_rates(rows), "generated": len(rows)}
