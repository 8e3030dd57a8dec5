"""Phase 4: offline PPO on the steps of failed trajectories -> LAM4. No new interaction with the app.

Why a hand-written loop: TRL's PPO trainer (removed from TRL 1.x; in 0.x it was online-only) generates fresh
responses from the policy and scores them. Here the actions are fixed, recorded steps, so each one is a one-step
episode whose reward the reward model gives once, before training:

- reward R: sigmoid score of (state, action), min-max normalised over the data set to [-0.5, 0.5] (paper);
- advantage A = R, shared by the action's tokens: the reward arrives at the last token of a one-step episode, so
  no value function or GAE is needed (and no whitening, so the reward model's sign is kept);
- clipped surrogate per token: -min(r * A, clip(r, 1 - eps, 1 + eps) * A) with r = pi_theta / pi_old, where
  pi_old is the policy at the start of each batch;
- KL penalty to LAM3: the policy is LAM3 plus a LoRA adapter, so the reference is the same model with the adapter
  disabled. Online PPO puts a sampled log-ratio into the reward; on recorded actions that log-ratio is not a KL
  (it turns negative as soon as the policy lowers a failed action's probability, and the penalty would become a
  bonus). So the penalty here is the exact KL(pi_theta || pi_ref) over the vocabulary at each action token,
  added to the loss: loss = surrogate + kl_coef * KL, both averaged over action tokens;
- adaptive KL coefficient (Ziegler et al. 2019) towards target_kl, starting from init_kl_coef.

Paper settings: lr 1.4e-5, batch 8, minibatch 1, 4 PPO epochs, target KL 0.1, initial KL coefficient 0.2.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lamforge.jsonl import read_jsonl
from lamforge.models.checkpoints import is_finished
from lamforge.models.loading import load_tokenizer
from lamforge.records import StepSample
from lamforge.train import runtime
from lamforge.train.batching import autocast, make_micro_batch, target_logits
from lamforge.train.model_card import write_card
from lamforge.train.config import PPOConfig
from lamforge.train.data import Example, data_summary, encode_records, split_records
from lamforge.train.distributed import call, inner
from lamforge.models.formatting import Encoded
from lamforge.train.loop import LocalSteps, TrainLoop
from lamforge.train.reward import load_reward_model, score_encoded
from lamforge.train.sft import evaluate_policy


@dataclass
class AdaptiveKL:
    """Ziegler et al.'s controller: nudge the coefficient so the observed KL approaches the target."""

    value: float
    target: float
    horizon: int

    def update(self, observed_kl: float, n_samples: int) -> None:
        error = max(-0.2, min(0.2, observed_kl / self.target - 1))
        self.value *= 1 + error * n_samples / self.horizon


def normalise_rewards(scores: list[float]) -> list[float]:
    """Min-max to [-0.5, 0.5]; identical scores carry no preference and map to 0."""
    low, high = min(scores), max(scores)
    if high - low < 1e-12:
        return [0.0] * len(scores)
    return [(s - low) / (high - low) - 0.5 for s in scores]


def action_logprobs(model, examples: list[Encoded], pad_id: int, device, bf16, share_prefix: bool,
                    prompt_gradients: bool = True):
    """Per example: the log-probabilities of its action tokens [T] and the full distributions there [T, V]."""
    batch = make_micro_batch(examples, pad_id, share_prefix, prompt_gradients)
    with autocast(device, bf16):
        logits, targets, rows = call(model, target_logits, batch.to(device))
    log_dist = torch.log_softmax(logits, dim=-1)
    chosen = log_dist.gather(1, targets.unsqueeze(1)).squeeze(1)
    return [chosen[rows == i] for i in range(len(examples))], [log_dist[rows == i] for i in range(len(examples))]


def token_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) at each position [T] from log-distributions [T, V]."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def surrogate_loss(new: list[torch.Tensor], old: list[torch.Tensor], advantages: list[float], cliprange: float):
    """PPO's clipped objective as a loss (mean over action tokens) and the share of clipped tokens."""
    losses, clipped, count = [], 0.0, 0
    for new_lp, old_lp, advantage in zip(new, old, advantages):
        ratio = torch.exp(new_lp - old_lp)
        unclipped = ratio * advantage
        bounded = torch.clamp(ratio, 1 - cliprange, 1 + cliprange) * advantage
        losses.append(-torch.minimum(unclipped, bounded))
        clipped += float(((ratio - 1).abs() > cliprange).sum())
        count += ratio.numel()
    return torch.cat(losses).mean(), clipped / max(1, count)


def reference_distributions(model, examples, pad_id, device, bf16, share_prefix) -> list[torch.Tensor]:
    """LAM3's log-distributions at the action tokens: the policy with its LoRA adapter switched off."""
    with torch.no_grad(), inner(model).disable_adapter():
        return action_logprobs(model, examples, pad_id, device, bf16, share_prefix)[1]


def ppo_batch(model, optimizer, examples: list[Example], rewards: list[float], kl: AdaptiveKL, config: PPOConfig,
              pad_id: int, device, bf16, rng: random.Random, loop: LocalSteps | None = None) -> dict[str, float]:
    """One PPO batch: freeze pi_old, then ppo_epochs passes of minibatch updates; statistics before and after.

    With a TrainLoop of N processes each minibatch is split across them; the no-gradient passes over the whole
    batch (pi_old, the reference, the statistics) run in every process alike. Without one, plain torch steps.
    """
    steps = loop if loop is not None else LocalSteps(model, optimizer, config.share_prefix)
    encoded = [e.encoded for e in examples]
    share = steps.share_prefix
    model.eval()  # no dropout: pi_old and pi_theta must agree exactly before the first update
    ref = reference_distributions(model, encoded, pad_id, device, bf16, share)
    with torch.no_grad():
        old, old_dist = action_logprobs(model, encoded, pad_id, device, bf16, share)
        loss_before, _ = surrogate_loss(old, old, rewards, config.cliprange)
        kl_before = sum(float(token_kl(o, r).sum()) for o, r in zip(old_dist, ref)) / len(examples)
    action_tokens = [len(e) - e.prompt_length for e in encoded]
    clip_fractions, losses, kl_terms = [], [], []
    for _ in range(config.ppo_epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for begin in range(0, len(order), config.mini_batch_size):
            chunk = order[begin : begin + config.mini_batch_size]
            mine, _ = steps.my_rows(chunk, len(chunk))
            rows = mine or chunk[:1]  # a process without rows runs the first one, weighted zero, to stay in step
            new, new_dist = action_logprobs(model, [encoded[i] for i in rows], pad_id, device, bf16, share,
                                            config.prompt_gradients)
            surrogate, clip_fraction = surrogate_loss(new, [old[i] for i in rows], [rewards[i] for i in rows],
                                                      config.cliprange)
            kl_term = torch.cat([token_kl(d, ref[i]) for d, i in zip(new_dist, rows)]).mean()
            loss = surrogate + kl.value * kl_term
            # Both terms are means over this process's action tokens; weighted by its share of the minibatch's
            # tokens they add up, over processes, to the means over the whole minibatch.
            share_of_tokens = sum(action_tokens[i] for i in mine) / sum(action_tokens[i] for i in chunk)
            with steps.micro_step():
                steps.backward(loss * (share_of_tokens * steps.processes) if steps.processes > 1 else loss)
            steps.optimizer_step(config.max_grad_norm)
            numbers = steps.reduce_sum(*(share_of_tokens * x for x in (clip_fraction, float(loss.detach()),
                                                                       float(kl_term.detach()))))
            clip_fractions.append(numbers[0])
            losses.append(numbers[1])
            kl_terms.append(numbers[2])
    with torch.no_grad():
        new, new_dist = action_logprobs(model, encoded, pad_id, device, bf16, share)
        loss_after, _ = surrogate_loss(new, old, rewards, config.cliprange)
        kl_after = sum(float(token_kl(n, r).sum()) for n, r in zip(new_dist, ref)) / len(examples)
    stats = {
        "surrogate_before": float(loss_before), "surrogate_after": float(loss_after),
        "ppo_loss": sum(losses) / len(losses), "kl_to_ref_before": kl_before, "kl_to_ref": kl_after,
        "kl_coef": kl.value, "clip_fraction": sum(clip_fractions) / len(clip_fractions),
        "mean_reward": sum(rewards) / len(rewards),
    }
    if config.adaptive_kl:
        kl.update(kl_after, len(examples))
    return stats


def train_ppo(config: PPOConfig, stop_after: int | None = None, overwrite: bool = False, scores: list[float] | None = None) -> Path:
    """Train LAM4 from LAM3 (init_from) on the failed-trajectory steps of train_file, with the reward model's scores.

    `scores` (sigmoid scores of the failed steps, in file order) skips loading the reward model, for tests.
    """
    output_dir = Path(config.output_dir)
    if is_finished(output_dir) and not overwrite:
        return output_dir
    if not config.train_file:
        raise ValueError("phase 4 needs train_file (JSONL StepSamples; the steps of failed trajectories are used)")
    if scores is None and not config.reward_model:
        raise ValueError("phase 4 needs reward_model (the folder the rm phase wrote)")
    if not config.use_lora:
        raise ValueError("phase 4 keeps LAM3 as the frozen reference under a LoRA adapter; use_lora must be true")
    loop = TrainLoop(config, "phase 4 (PPO)")
    records = read_jsonl(config.train_file, StepSample)
    eval_records = read_jsonl(config.eval_file, StepSample) if config.eval_file else None
    tokenizer = load_tokenizer(config.init_from)
    train_records, held_records = split_records(records, eval_records, config.eval_fraction, config.seed)
    failed = [r for r in train_records if not r.success][: config.limit_train or None]
    train = encode_records(tokenizer, failed, config.max_length, config.max_controls)
    if not train.examples:
        raise ValueError("no steps of failed trajectories to train on")
    held = encode_records(tokenizer, [r for r in held_records if r.success], config.max_length, config.max_controls)

    schedule = runtime.batch_schedule(len(train.examples), config.batch_size, config.epochs, config.seed, config.max_steps)
    # Only the steps the schedule visits are scored: with max_steps on a CPU, a reward-model pass over every
    # failed step would take longer than PPO itself.
    used = sorted({i for batch in schedule for i in batch})
    if scores is None:
        scored = _reward_scores(config, [train.examples[i] for i in used], loop.device)
    elif len(scores) != len(train.examples):
        raise ValueError(f"got {len(scores)} scores for {len(train.examples)} failed steps")
    else:
        scored = [scores[i] for i in used]
    rewards = [0.0] * len(train.examples)
    for i, reward in zip(used, normalise_rewards(scored)):
        rewards[i] = reward

    model = loop.load_model(config.init_from)
    optimizer = runtime.make_optimizer(model, config.learning_rate)
    kl = AdaptiveKL(config.init_kl_coef, config.target_kl, config.kl_horizon)
    loop.progress.extra["kl_coef"] = kl.value
    start = loop.prepare(model, optimizer, None, schedule)
    kl.value = loop.progress.extra["kl_coef"]

    def train_step(step: int) -> tuple[dict, int]:
        indices = schedule[step]
        rng = random.Random(f"{config.seed}:{step}")
        stats = ppo_batch(loop.model, loop.optimizer, [train.examples[i] for i in indices],
                          [rewards[i] for i in indices], kl, config, tokenizer.pad_token_id, loop.device, loop.bf16,
                          rng, loop)
        loop.progress.extra["kl_coef"] = kl.value
        return stats, sum(len(train.examples[i].encoded) for i in indices)

    seconds = loop.run(train_step, lambda stats, meter: {"loss": f"{stats['ppo_loss']:.4f}",
                                                         "speed": f"kl {stats['kl_to_ref']:.3f} coef {kl.value:.3f}"},
                       stop_after)
    model = loop.trained_model(lambda: loop.load_model(config.init_from, quantized=False))
    if loop.is_main:
        history = loop.history
        model = model.merge_and_unload() if config.merge else model
        model.eval()
        metrics = evaluate_policy(model, tokenizer, held, "4", config, loop.device, loop.bf16)
        last = history[-1] if history else {}
        metrics.update({"final_kl_to_ref": last.get("kl_to_ref", math.nan), "final_kl_coef": kl.value,
                        "mean_reward": sum(rewards[i] for i in used) / len(used),
                        "mean_clip_fraction": sum(h["clip_fraction"] for h in history) / max(1, len(history))})
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
        data = {"train_file": data_summary(config.train_file, records),
                "encoded": {"failed_steps": len(train.examples), "dropped_too_long": train.dropped_too_long,
                            "held_out_successful_steps": len(held.examples), "reward_model": config.reward_model,
                            "scored_steps": len(used), "raw_score_mean": sum(scored) / len(scored),
                            "raw_score_min": min(scored), "raw_score_max": max(scored)}}
        updates = len(schedule) * config.ppo_epochs * math.ceil(config.batch_size / config.mini_batch_size)
        training = {"steps": len(schedule), "unit": "PPO batch", "optimizer_updates_about": updates,
                    "resumed_from_step": start, "seconds_this_run": round(seconds, 1), **loop.describe(),
                    "first_ppo_loss": history[0]["ppo_loss"] if history else math.nan,
                    "final_ppo_loss": last.get("ppo_loss", math.nan)}
        write_card(output_dir, "4", {"format": "merged" if config.merge else "lora-adapter", "config": asdict(config),
                                     "data": data, "training": training, "metrics": metrics, "history": history})
    loop.finish()
    return output_dir


def _reward_scores(config: PPOConfig, examples: list, device) -> list[float]:
    """Score the failed steps once with the reward model, then free it before the policy is loaded."""
    model, tokenizer = load_reward_model(config.reward_model, str(device))
    bf16 = runtime.use_bf16(config.bf16, device)
    scores = score_encoded(model, [e.encoded for e in examples], tokenizer.pad_token_id,
                           max(1, config.micro_batch_size) * 4, config.share_prefix, device, bf16)
    del model
    return scores
