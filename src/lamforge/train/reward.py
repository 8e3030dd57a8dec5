"""The reward model: LAM3's backbone with a scalar head and a LoRA adapter (paper: r=8, alpha 32, dropout 0.1),
trained with MSE on per-step labels, +1 for steps of successful trajectories and -1 for failed ones. A step's
score is sigmoid(head output), in (0, 1).

TRL's RewardTrainer does not fit: it learns from chosen/rejected pairs (Bradley-Terry), while the paper regresses
each step onto its trajectory's outcome. The loop below is the SFT loop with a different loss.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from lamforge.jsonl import read_jsonl
from lamforge.models.checkpoints import is_finished, trained_max_controls
from lamforge.models.loading import load_model, load_tokenizer
from lamforge.records import StepSample
from lamforge.train import runtime
from lamforge.train.batching import autocast, last_token_hidden, make_micro_batch, unwrap
from lamforge.train.model_card import write_card
from lamforge.train.config import RewardConfig
from lamforge.train.data import data_summary, encode_records, split_records
from lamforge.train.distributed import call
from lamforge.train.loop import TrainLoop


def binary_metrics(scores: list[float], labels: list[bool]) -> dict[str, float]:
    """Accuracy at 0.5 and ROC AUC of sigmoid scores against success labels.

    AUC is the Mann-Whitney statistic (ties count half), written out to avoid a scikit-learn dependency for one
    function.
    """
    if not scores:
        return {}
    accuracy = sum((s > 0.5) == bool(y) for s, y in zip(scores, labels)) / len(scores)
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    metrics = {"accuracy": accuracy, "positives": len(positives), "negatives": len(negatives)}
    if positives and negatives:
        ranked = sorted(scores)
        # average 1-based rank of each distinct value, so ties share their ranks
        rank: dict[float, float] = {}
        i = 0
        while i < len(ranked):
            j = i
            while j + 1 < len(ranked) and ranked[j + 1] == ranked[i]:
                j += 1
            rank[ranked[i]] = (i + j) / 2 + 1
            i = j + 1
        rank_sum = sum(rank[s] for s in positives)
        metrics["auc"] = (rank_sum - len(positives) * (len(positives) + 1) / 2) / (len(positives) * len(negatives))
    return metrics


def balanced_sample(examples: list, n: int, seed: int, label) -> list:
    """Up to `n` of `examples` (all when n <= 0), drawn so both classes of label(example) are as equal as they can be.

    Failed steps are ~3% of the data: a plain random 24 held-out steps had one failure, so the AUC was the rank of
    that one step (0.09 on one run, 0.78 on another). Every failure that fits is scored, up to half of `n`, and the
    rest are successes; a seeded shuffle picks which.
    """
    shuffled = random.Random(seed).sample(examples, len(examples))
    if n <= 0 or n >= len(examples):
        return shuffled
    positives = [e for e in shuffled if label(e)]
    negatives = [e for e in shuffled if not label(e)]
    take_negatives = min(len(negatives), max(n // 2, n - len(positives)))
    return negatives[:take_negatives] + positives[: n - take_negatives]


def head_outputs(model, batch) -> torch.Tensor:
    """Head outputs [B] (before the sigmoid) at each example's last token."""
    return unwrap(model).score(last_token_hidden(model, batch)).float().squeeze(-1)


def raw_scores(model, batch, device, bf16) -> torch.Tensor:
    """head_outputs on `device`, through the distributed wrapper when `model` is one (distributed.call)."""
    with autocast(device, bf16):
        return call(model, head_outputs, batch.to(device))


@torch.no_grad()
def score_encoded(model, encoded: list, pad_id: int, micro_batch_size: int, share_prefix: bool, device, bf16) -> list[float]:
    """Sigmoid scores in the order of `encoded` (chunks of similar prompts share more of their pass; mapped back)."""
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].input_ids)
    scores: list[float] = []
    for start in range(0, len(order), micro_batch_size):
        chunk = [encoded[i] for i in order[start : start + micro_batch_size]]
        batch = make_micro_batch(chunk, pad_id, share_prefix, prompt_gradients=False)  # no gradients here anyway
        scores += torch.sigmoid(raw_scores(model, batch, device, bf16)).tolist()
    result = [0.0] * len(encoded)
    for position, index in enumerate(order):
        result[index] = scores[position]
    return result


def load_reward_model(path: str | Path, device: str | None = None):
    """(model, tokenizer) of a trained reward model folder (LoRA adapter + head over the LAM3 it names)."""
    from peft import PeftModel

    path = Path(path)
    config_file = path / "adapter_config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{path} is not a reward model folder (no adapter_config.json)")
    base = json.loads(config_file.read_text())["base_model_name_or_path"]
    model = load_model(base, "scorer", dtype=torch.float32)  # the head's weights come from the adapter
    model = PeftModel.from_pretrained(model, path)
    model.eval()
    tokenizer = load_tokenizer(str(path))
    if device:
        model.to(device)
    return model, tokenizer


def score_samples(path_or_model, samples: list[StepSample], tokenizer=None, micro_batch_size: int = 4,
                  device: str = "cpu", max_controls: int | None = None) -> list[float]:
    """Sigmoid scores of step samples (state + the action taken) from a reward model folder or a loaded model.
    max_controls: the controls shown (StepState.shown); None takes a folder's card value (0 for a loaded model)."""
    if isinstance(path_or_model, (str, Path)):
        model, tokenizer = load_reward_model(path_or_model, device)
        if max_controls is None:
            max_controls = trained_max_controls(path_or_model)
    else:
        model = path_or_model
    # Every sample is scored, however long.
    encoded = encode_records(tokenizer, samples, max_length=10**9, max_controls=max_controls or 0)
    dev = torch.device(device)
    return score_encoded(model, [e.encoded for e in encoded.examples], tokenizer.pad_token_id, micro_batch_size, True,
                         dev, runtime.use_bf16("auto", dev))


def train_reward_model(config: RewardConfig, stop_after: int | None = None, overwrite: bool = False) -> Path:
    output_dir = Path(config.output_dir)
    if is_finished(output_dir) and not overwrite:
        return output_dir
    if not config.train_file:
        raise ValueError("the reward model needs train_file (JSONL StepSamples of successful and failed trajectories)")
    if not config.use_lora:
        raise ValueError("the reward model is trained as a LoRA adapter over LAM3 (use_lora must be true)")
    loop = TrainLoop(config, "reward model")
    records = read_jsonl(config.train_file, StepSample)[: config.limit_train or None]
    eval_records = read_jsonl(config.eval_file, StepSample) if config.eval_file else None
    tokenizer = load_tokenizer(config.init_from)
    train_records, held_records = split_records(records, eval_records, config.eval_fraction, config.seed)
    train = encode_records(tokenizer, train_records, config.max_length, config.max_controls)
    held = encode_records(tokenizer, held_records, config.max_length, config.max_controls)
    if not train.examples:
        raise ValueError("no reward-model training examples left after max_length filtering")
    labels = [1.0 if e.record.success else -1.0 for e in train.examples]
    n_pos = sum(y > 0 for y in labels)
    n_neg = len(labels) - n_pos
    # Balanced weights make each class contribute half of the loss whatever the success rate of the data.
    weight = {1.0: len(labels) / (2 * n_pos) if n_pos else 1.0, -1.0: len(labels) / (2 * n_neg) if n_neg else 1.0}
    if not config.balance_classes:
        weight = {1.0: 1.0, -1.0: 1.0}

    def build(quantized: bool = True):
        # LAM3 has no scalar head yet; SEQ_CLS LoRA also trains and saves the new head.
        model = loop.load_model(config.init_from, "scorer", quantized=quantized)
        unwrap(model).config.pad_token_id = tokenizer.pad_token_id
        return model

    model = build()
    model.train()
    start = loop.start_supervised(model, [e.record for e in train.examples])
    schedule = loop.schedule

    def train_step(step: int) -> tuple[dict, int]:
        indices = sorted(schedule[step], key=lambda i: train.examples[i].encoded.input_ids)
        mine, padding = loop.my_rows(indices, config.micro_batch_size)
        chunks = [(mine[b : b + config.micro_batch_size], 1.0) for b in range(0, len(mine), config.micro_batch_size)]
        chunks += [(indices[:1], 0.0)] * padding  # padding keeps the processes in step; its loss counts zero
        total = 0.0
        for k, (chunk, counts) in enumerate(chunks):
            with loop.micro_step(last=k == len(chunks) - 1):
                batch = make_micro_batch([train.examples[i].encoded for i in chunk], tokenizer.pad_token_id,
                                         loop.share_prefix, config.prompt_gradients)
                target = torch.tensor([labels[i] for i in chunk], device=loop.device)
                weights = torch.tensor([weight[labels[i]] for i in chunk], device=loop.device)
                predicted = raw_scores(loop.model, batch, loop.device, loop.bf16)
                loss = (weights * F.mse_loss(predicted, target, reduction="none")).sum() / len(indices)
                total += counts * float(loss.detach())
                loss = loss if counts else loss * 0.0
                # Each process holds its rows' share of the batch loss; the reduction averages over processes.
                loop.backward(loss * loop.processes if loop.processes > 1 else loss)
        loop.optimizer_step(config.max_grad_norm)
        (total,) = loop.reduce_sum(total)
        return {"loss": total}, sum(len(train.examples[i].encoded) for i in indices)

    seconds = loop.run(train_step, lambda record, meter: {"loss": f"{record['loss']:.3f}",
                                                          "speed": f"{meter.tokens_per_second:.0f} tok/s"}, stop_after)
    model = loop.trained_model(lambda: build(quantized=False))
    if loop.is_main:
        _write_reward_model(model, tokenizer, train, held, records, labels, weight, config, loop, start, seconds)
    loop.finish()
    return output_dir


def _write_reward_model(model, tokenizer, train, held, records, labels, weight, config: RewardConfig, loop: TrainLoop,
                        start: int, seconds: float) -> None:
    """Score held-out and training steps, save the adapter and head with the model card (main process)."""
    model.eval()
    device, bf16 = loop.device, loop.bf16
    def succeeded(example) -> bool:
        return example.record.success

    scored = balanced_sample(held.examples, config.eval_loss_examples, config.seed, succeeded)
    held_scores = score_encoded(model, [e.encoded for e in scored], tokenizer.pad_token_id,
                                config.micro_batch_size, config.share_prefix, device, bf16)
    metrics = {"held_out_steps": len(held.examples), "held_out_scored": len(scored)}
    metrics.update({f"held_out_{k}": v for k, v in binary_metrics(held_scores, [e.record.success for e in scored]).items()})
    train_probe = balanced_sample(train.examples, max(len(scored), 32), config.seed, succeeded)
    probe_scores = score_encoded(model, [e.encoded for e in train_probe], tokenizer.pad_token_id,
                                 config.micro_batch_size, config.share_prefix, device, bf16)
    metrics.update({f"train_{k}": v for k, v in binary_metrics(probe_scores, [e.record.success for e in train_probe]).items()})
    model.save_pretrained(loop.output_dir)
    tokenizer.save_pretrained(loop.output_dir)
    losses = [record["loss"] for record in loop.history]
    n_pos = sum(y > 0 for y in labels)
    data = {"train_file": data_summary(config.train_file, records),
            "encoded": {"train_steps": len(train.examples), "successful_steps": n_pos,
                        "failed_steps": len(labels) - n_pos, "held_out_steps": len(held.examples),
                        "dropped_too_long": train.dropped_too_long + held.dropped_too_long}}
    training = {"steps": len(loop.schedule), "resumed_from_step": start,
                "first_loss": losses[0] if losses else math.nan,
                "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])), "seconds_this_run": round(seconds, 1),
                **loop.describe(), "class_weights": {"success": weight[1.0], "failure": weight[-1.0]}}
    note = "Score a step with lamforge.train.reward.score_samples(folder, samples): sigmoid of the head, in (0, 1)."
    write_card(loop.output_dir, "rm", {"format": "lora-adapter", "config": asdict(config), "data": data,
                                       "training": training, "metrics": metrics, "losses": losses, "notes": [note]})
