"""Held-out numbers every phase writes into its model card until the evaluation stage has its own:
validation loss on target tokens, and greedy-decoding exact match (actions) or step match (plans)."""

from __future__ import annotations

import torch

from lamforge.schema import ActionParseError, parse_action, parse_plan
from lamforge.train.batching import autocast, micro_batches, target_loss_sum
from lamforge.train.data import Example, record_messages
from lamforge.train.formatting import build_prompt_ids


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


def compare_actions(predicted: str, target: str) -> dict[str, bool]:
    """Field-wise match of a predicted action against the target; an unparsable prediction matches nothing."""
    want = parse_action(target)
    try:
        got = parse_action(predicted)
    except ActionParseError:
        return {"parsed": False, "function": False, "control": False, "args": False, "status": False, "exact": False}
    result = {
        "parsed": True,
        "function": got.function == want.function,
        "control": got.control_name == want.control_name,
        "args": got.args == want.args,
        "status": got.status == want.status,
    }
    result["exact"] = all(result[k] for k in ("function", "control", "args", "status"))
    return result


def action_accuracy(model, tokenizer, examples: list[Example], max_new_tokens: int) -> dict[str, float]:
    """Exact-match action accuracy (function, control_name, args and status all right) and its parts."""
    if not examples:
        return {}
    was_training = model.training
    model.eval()
    rows = [compare_actions(generate_reply(model, tokenizer, record_messages(e.record)[0], max_new_tokens), e.target) for e in examples]
    model.train(was_training)
    keys = ("exact", "parsed", "function", "control", "args", "status")
    metrics = {f"{k}_acc" if k != "parsed" else "parse_rate": sum(r[k] for r in rows) / len(rows) for k in keys}
    metrics["generated"] = len(rows)
    return metrics


def _norm(step: str) -> str:
    return " ".join(step.lower().split())


def plan_accuracy(model, tokenizer, examples: list[Example], max_new_tokens: int) -> dict[str, float]:
    """Plan exact match and step precision/recall (normalised exact step text) on held-out task-plan pairs."""
    if not examples:
        return {}
    was_training = model.training
    model.eval()
    exact = precision = recall = 0.0
    for example in examples:
        messages, _ = record_messages(example.record)
        predicted = [_norm(s) for s in parse_plan(generate_reply(model, tokenizer, messages, max_new_tokens))]
        wanted = [_norm(s) for s in example.record.plan]
        hits = len(set(predicted) & set(wanted))
        exact += predicted == wanted
        precision += hits / len(predicted) if predicted else 0.0
        recall += hits / len(wanted) if wanted else 0.0
    model.train(was_training)
    n = len(examples)
    return {"plan_exact": exact / n, "step_precision": precision / n, "step_recall": recall / n, "generated": n}
