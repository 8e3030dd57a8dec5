"""Supervised fine-tuning for phases 1-3, as one plain loop.

- Phase 1: task -> plan on the mined task-plan pairs -> LAM1.
- Phase 2: state -> action JSON on the demonstrator's successful steps -> LAM2.
- Phase 3: the same on the union with LAM2's own successful explorations -> LAM3.

The loss is on target tokens only (the reply and its EOS), averaged over the target tokens of each optimizer
batch. Learning rate: linear warm-up then cosine decay, as in the paper.
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from lamforge.jsonl import read_jsonl
from lamforge.models.checkpoints import is_finished
from lamforge.models.loading import load_tokenizer
from lamforge.records import PlanPair, StepSample
from lamforge.train.batching import autocast, decoder_of, make_micro_batch, micro_batches, target_loss_sum
from lamforge.train.model_card import write_card
from lamforge.train.config import SFTConfig
from lamforge.train.data import EncodedSet, data_summary, encode_records, load_family_weights, split_records
from lamforge.train.distributed import call
from lamforge.train.evaluate import action_accuracy, plan_accuracy, validation_loss
from lamforge.train.layer_cache import open_layer_cache
from lamforge.train.loop import TrainLoop
from lamforge.train.selfboost import NewSamples, collect_new_samples, failed_task_ids, union_with_explorations


LAYER_STATES = "layer_states"  # output_dir's folder of kept layer states (train/layer_cache.py)


def load_phase_records(config: SFTConfig, phase: str, new_samples: NewSamples = None):
    """(train records, held-out records, data section of the model card, extra metrics) for an SFT phase."""
    if not config.train_file:
        raise ValueError(f"phase {phase} needs train_file (JSONL of {'PlanPair' if phase == '1' else 'StepSample'} records)")
    if config.family_weights:
        load_family_weights(config.family_weights)  # a bad weights file fails here, before minutes of model loading
    kind = PlanPair if phase == "1" else StepSample
    records = read_jsonl(config.train_file, kind)
    if config.limit_train:
        records = records[: config.limit_train]
    eval_records = read_jsonl(config.eval_file, kind) if config.eval_file else None
    data = {"train_file": data_summary(config.train_file, records)}
    extra: dict = {}
    if phase == "3":
        source = new_samples if new_samples is not None else (config.new_samples_file or None)
        explored = collect_new_samples(source, Path(config.init_from), failed_task_ids(records))
        boost = union_with_explorations(records, explored)
        records = boost.samples
        extra["self_boosting"] = boost.summary()
        data["new_samples"] = {"source": str(config.new_samples_file or type(new_samples).__name__), **boost.summary()}
    elif phase == "2":
        records = [r for r in records if r.success]
    train, held = split_records(records, eval_records, config.eval_fraction, config.seed)
    if phase != "1":
        held = [r for r in held if r.success]  # exact match needs right answers
    if eval_records is not None:
        data["eval_file"] = data_summary(config.eval_file, eval_records)
    return train, held, data, extra


def train_sft(config: SFTConfig, phase: str = "2", new_samples: NewSamples = None, stop_after: int | None = None,
              overwrite: bool = False) -> Path:
    """Train one SFT phase and write a finished model folder; resumes from a saved state in output_dir.

    Runs alike in one process and in N launched ones (each trains its share of every global batch). `stop_after`
    ends this run after that many optimizer steps (as an interruption would), for tests and for splitting long runs.
    """
    output_dir = Path(config.output_dir)
    if is_finished(output_dir) and not overwrite:
        return output_dir
    loop = TrainLoop(config, f"phase {phase}")

    train_records, held_records, data_info, extra = load_phase_records(config, phase, new_samples)
    tokenizer = load_tokenizer(config.init_from)
    train = encode_records(tokenizer, train_records, config.max_length, config.max_controls)
    held = encode_records(tokenizer, held_records, config.max_length, config.max_controls)
    if not train.examples:
        raise ValueError(f"no training examples left (of {len(train_records)} records, {train.dropped_too_long} longer than max_length)")
    data_info["encoded"] = _encoded_summary(train, held)

    model = loop.load_model(config.init_from)
    model.train()
    start = loop.start_supervised(model, [e.record for e in train.examples])
    schedule = loop.schedule
    pad = tokenizer.pad_token_id
    layer_cache, line = open_layer_cache(config, decoder_of(model), schedule, start,
                                         [e.encoded.input_ids for e in train.examples], output_dir / LAYER_STATES,
                                         loop.processes)
    if line and loop.is_main:
        print(f"phase {phase}: {line}", file=sys.stderr, flush=True)

    def train_step(step: int) -> tuple[dict, int]:
        encoded = [train.examples[i].encoded for i in schedule[step]]
        rows = sorted(range(len(encoded)), key=lambda i: encoded[i].input_ids)  # the order micro_batches uses
        mine, padding = loop.my_rows(rows, config.micro_batch_size)
        parts = micro_batches([encoded[i] for i in mine], config.micro_batch_size, pad, loop.share_prefix,
                              config.prompt_gradients, config.prompt_tail,
                              keys=[schedule[step][i] for i in mine]) if mine else []
        # Padding micro-batches only keep the processes in step; their loss counts zero.
        dummy = [make_micro_batch([encoded[rows[0]]], pad, loop.share_prefix, config.prompt_gradients,
                                  config.prompt_tail)] * padding
        (n_targets,) = loop.reduce_sum(sum(p.target_tokens for p in parts))
        total = 0.0
        for k, part in enumerate(parts + dummy):
            with loop.micro_step(last=k == len(parts) + len(dummy) - 1):
                with autocast(loop.device, loop.bf16):
                    loss_sum, _ = call(loop.model, target_loss_sum, part.to(loop.device), layer_cache)
                if k < len(parts):
                    loss = loss_sum / n_targets
                    total += loss_sum.detach().item()
                else:
                    loss = loss_sum * 0.0
                # Each process holds its rows' share of the batch loss; the reduction averages over processes.
                loop.backward(loss * loop.processes if loop.processes > 1 else loss)
        loop.optimizer_step(config.max_grad_norm)
        (total,) = loop.reduce_sum(total)
        return {"loss": total / n_targets}, sum(len(e) for e in encoded)

    seconds = loop.run(train_step, lambda record, meter: {"loss": f"{record['loss']:.3f}",
                                                          "speed": f"{meter.tokens_per_second:.0f} tok/s"}, stop_after)
    model = loop.trained_model(lambda: loop.load_model(config.init_from, quantized=False))
    if loop.is_main:
        training = {"layer_states": layer_cache.describe()} if layer_cache else {}
        _write_policy(model, tokenizer, held, phase, config, loop, data_info, extra, len(train.examples), start,
                      seconds, training)
    loop.finish()
    if loop.is_main:
        shutil.rmtree(output_dir / LAYER_STATES, ignore_errors=True)
    return output_dir


def _write_policy(model, tokenizer, held: EncodedSet, phase: str, config: SFTConfig, loop: TrainLoop, data_info: dict,
                  extra: dict, examples: int, start: int, seconds: float, more: dict | None = None) -> None:
    """Merge, evaluate and save the policy with its model card (main process)."""
    if config.use_lora and config.merge:
        model = model.merge_and_unload()
    metrics = evaluate_policy(model, tokenizer, held, phase, config, loop.device, loop.bf16)
    metrics.update({f"self_boosting_{k}": v for k, v in extra.get("self_boosting", {}).items()})
    fmt = "merged" if config.use_lora and config.merge else ("lora-adapter" if config.use_lora else "full")
    model.save_pretrained(loop.output_dir)
    tokenizer.save_pretrained(loop.output_dir)
    losses = [record["loss"] for record in loop.history]
    training = {
        "steps": len(loop.schedule), "resumed_from_step": start, "examples": examples,
        "epochs": config.epochs, "first_loss": losses[0] if losses else math.nan,
        "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])), "seconds_this_run": round(seconds, 1),
        "tokens_per_second": round(loop.meter.tokens_per_second, 1), **loop.describe(), **(more or {}),
    }
    notes = []
    if "self_boosting" in extra:
        sb = extra["self_boosting"]
        notes.append(f"Self-boosting recovered {sb['recovered_tasks']} of {sb['failed_tasks']} tasks the demonstrator "
                     f"failed ({100 * sb['recovery_rate']:.1f}%), adding {sb['new_successful_steps']} steps.")
    write_card(loop.output_dir, phase, {"format": fmt, "config": asdict(config), "data": data_info,
                                        "training": training, "metrics": metrics, "losses": losses, "notes": notes})


def evaluate_policy(model, tokenizer, held: EncodedSet, phase: str, config, device, bf16) -> dict:
    metrics: dict = {"held_out_examples": len(held.examples)}
    if not held.examples:
        return metrics
    scored = held.examples[: config.eval_loss_examples] if config.eval_loss_examples > 0 else held.examples
    metrics["val_loss"] = validation_loss(model, scored, tokenizer.pad_token_id, config.micro_batch_size,
                                          config.share_prefix, device, bf16)
    metrics["val_loss_examples"] = len(scored)
    sample = held.examples[: config.eval_generate]
    if sample:
        accuracy = plan_accuracy if phase == "1" else action_accuracy
        metrics.update(accuracy(model, tokenizer, sample, config.max_new_tokens))
    return metrics


def _encoded_summary(train: EncodedSet, held: EncodedSet) -> dict:
    return {
        "train_examples": len(train.examples), "train_tokens": train.tokens, "train_target_tokens": train.target_tokens,
        "held_out_examples": len(held.examples), "dropped_too_long": train.dropped_too_long + held.dropped_too_long,
    }
