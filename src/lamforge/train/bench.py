"""Training speed and memory on this machine: ways of running the same SFT data, side by side, in one run.

Configurations (naive and exact each in its own process, so its peak memory, model loading included, is its own;
quick_before and quick in one process, taking turns batch by batch, so that a busy machine slows both alike):

- naive: full fine-tune, fp32, micro-batches padded to their longest example, the model's own loss (logits over
  the whole sequence), no prefix sharing, random batches;
- exact: LoRA (r=16, all linear layers, no dropout), bf16 autocast, the shared prefix of a micro-batch run once,
  logits only at target positions, batches filled per window: the exact gradient;
- quick_before: the quick preset's phase 2 before the document-grouped batches (commit 2e45b07): exact with
  prompt_gradients=False, batches of 4 filled per window;
- quick: the quick preset's phase-2 settings as they are now (batch size, micro-batch size, prompt gradients,
  batches filled per window and document, LoRA on the top `lora_layers` layers), read from the preset.

Every configuration trains on batches of its own real schedule (`runtime.batch_schedule` over the whole data, as
training draws them) until it has trained `samples` examples, after one warm-up batch. The examples come from a
collected samples.jsonl (`--data`) or are synthetic ones. The numbers that compare are seconds per example and
examples per second; tokens/s counts prompt + target + EOS of every example trained (no padding; tokens a shared
prefix does not recompute still count for every example they stand in for).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

from lamforge.jsonl import read_jsonl
from lamforge.models.base_model import resolve_model
from lamforge.models.cpu import cpu_has_bf16
from lamforge.models.formatting import IGNORE_INDEX, encode_example
from lamforge.models.loading import load_model, load_tokenizer
from lamforge.records import StepSample
from lamforge.train.config import SFTConfig, build_config
from lamforge.train.data import prefix_group, record_messages
from lamforge.train.synthetic import synthetic_step_samples

CONFIGS = ("naive", "exact", "quick_before", "quick")


@dataclass
class BenchConfig:
    lora: bool
    prompt_gradients: bool
    batch_size: int
    micro_batch_size: int
    grouping: str  # none | window | window+document
    lora_layers: int = 0  # LoRA on the top N decoder layers; 0: all
    prompt_tail: int = 0  # with a frozen prompt, its last N tokens still train (SFTConfig.prompt_tail)


def bench_config(name: str, batch_size: int, micro_batch_size: int) -> BenchConfig:
    """The settings of a configuration; naive and exact use the command's batch sizes."""
    if name == "naive":
        return BenchConfig(False, True, batch_size, micro_batch_size, "none")
    if name == "exact":
        return BenchConfig(True, True, batch_size, micro_batch_size, "window")
    if name == "quick_before":
        return BenchConfig(True, False, 4, 4, "window")
    if name == "quick":
        quick = build_config("2", preset="quick")
        return BenchConfig(quick.use_lora, quick.prompt_gradients, quick.batch_size, quick.micro_batch_size,
                           "window+document" if quick.share_prefix else "none", quick.lora_layers, quick.prompt_tail)
    raise ValueError(f"unknown bench configuration {name!r}; choose from {', '.join(CONFIGS)}")


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def bench_samples(n: int, seed: int, data: str = ""):
    """The examples: every sample of a collected samples.jsonl when given (n is then a lower bound), else n
    synthetic ones."""
    if not data:
        return synthetic_step_samples(n, seed=seed)
    records = read_jsonl(data, StepSample)
    if len(records) < n:
        raise ValueError(f"{data} has {len(records)} samples; the bench needs {n}")
    return records


def _groups(records, grouping: str):
    if grouping == "none":
        return None
    keys = [prefix_group(r) for r in records]
    return [k[:1] for k in keys] if grouping == "window" else keys


def measure(names: list[str], model_name: str, batch_size: int, micro_batch_size: int, samples: int, seed: int = 0,
            data: str = "") -> list[dict]:
    """Train batches of each configuration's schedule until each has done `samples` examples, after one warm-up
    batch each. Several configurations in one process must share the model type (LoRA or not): they take turns
    batch by batch, so a busy machine slows them alike and their ratio stays fair."""
    import torch

    # torch-backed modules: imported here, since `lamforge train` imports this module at start-up for CONFIGS.
    from lamforge.train import runtime
    from lamforge.train.batching import autocast, micro_batches, target_loss_sum

    configs = {name: bench_config(name, batch_size, micro_batch_size) for name in names}
    lora = {c.lora for c in configs.values()}
    if len(lora) != 1:
        raise ValueError("configurations measured in one process must all use LoRA or all not")
    lora = lora.pop()
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(model_name)
    records = bench_samples(samples + max(c.batch_size for c in configs.values()), seed, data)
    plans: dict[str, list[list[int]]] = {}
    for name, config in configs.items():
        schedule = runtime.batch_schedule(len(records), config.batch_size, 1, seed,
                                          groups=_groups(records, config.grouping))
        needed = [schedule[0]]
        while sum(len(b) for b in needed[1:]) < samples and len(needed) < len(schedule):
            needed.append(schedule[len(needed)])
        plans[name] = needed
    encoded = {i: encode_example(tokenizer, *record_messages(records[i]))
               for needed in plans.values() for batch in needed for i in batch}
    device = torch.device("cpu")
    bf16 = lora and cpu_has_bf16()
    # One model (and optimizer) per LoRA layout: configurations that adapt different layers cannot share one.
    models, optimizers = {}, {}
    for layers in sorted({c.lora_layers for c in configs.values()}):
        model = load_model(model_name)
        model.config.use_cache = False
        if lora:
            model = runtime.add_lora(model, SFTConfig(lora_r=16, lora_alpha=32, lora_dropout=0.0,
                                                      lora_layers=layers))
        model.train()
        models[layers], optimizers[layers] = model, runtime.make_optimizer(model, 1e-5)
    pad = tokenizer.pad_token_id

    def naive_loss(model, batch):
        width = max(len(e) for e in batch)
        ids = torch.full((len(batch), width), pad)
        labels = torch.full((len(batch), width), IGNORE_INDEX)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, e in enumerate(batch):
            ids[i, : len(e)] = torch.tensor(e.input_ids)
            labels[i, : len(e)] = torch.tensor(e.labels)
            mask[i, : len(e)] = 1
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        n = int((labels[:, 1:] != IGNORE_INDEX).sum())
        return out.loss * n, n

    def step(config: BenchConfig, batch) -> float:
        model, optimizer = models[config.lora_layers], optimizers[config.lora_layers]
        if config.lora:
            parts = micro_batches(batch, config.micro_batch_size, pad, share_prefix=config.grouping != "none",
                                  prompt_gradients=config.prompt_gradients, prompt_tail=config.prompt_tail)
            n_targets = sum(p.target_tokens for p in parts)
            total = 0.0
            for part in parts:
                with autocast(device, bf16):
                    loss_sum, _ = target_loss_sum(model, part)
                (loss_sum / n_targets).backward()
                total += loss_sum.item()
        else:
            # The usual padded batches: examples in data order, not sorted.
            n_targets = sum(len(e) - e.prompt_length for e in batch)
            total = 0.0
            for i in range(0, len(batch), config.micro_batch_size):
                loss_sum, _ = naive_loss(model, batch[i : i + config.micro_batch_size])
                (loss_sum / n_targets).backward()
                total += loss_sum.item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total / max(1, n_targets)

    for name, config in configs.items():
        step(config, [encoded[i] for i in plans[name][0]])
    seconds = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    losses: dict[str, list[float]] = {name: [] for name in names}
    load_before = _load_average()
    for turn in range(max(len(p) for p in plans.values()) - 1):
        for name, config in configs.items():
            if turn + 1 < len(plans[name]):
                started, cpu_started = time.perf_counter(), time.process_time()
                losses[name].append(step(config, [encoded[i] for i in plans[name][turn + 1]]))
                seconds[name] += time.perf_counter() - started
                cpu[name] += time.process_time() - cpu_started
    results = []
    for name, config in configs.items():
        measured = [[encoded[i] for i in batch] for batch in plans[name][1:]]
        examples = sum(len(b) for b in measured)
        tokens = sum(len(e) for b in measured for e in b)
        results.append({
            "config": name,
            "settings": config.__dict__,
            "examples": examples,
            "batches": len(measured),
            "useful_tokens": tokens,
            "target_tokens": sum(len(e) - e.prompt_length for b in measured for e in b),
            "seconds": round(seconds[name], 2),
            "seconds_per_example": round(seconds[name] / examples, 3),
            "examples_per_second": round(examples / seconds[name], 3),
            "tokens_per_second": round(tokens / seconds[name], 1),
            "cpu_seconds": round(cpu[name], 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "peak_rss_shared_with": [n for n in names if n != name],
            "first_loss": round(losses[name][0], 4),
            "bf16_autocast": bf16,
            "torch_threads": torch.get_num_threads(),
            "load_average": [round(load_before, 2), round(_load_average(), 2)],
        })
    return results


# Configurations measured together in one process, taking turns: they differ only in how batches are formed.
TOGETHER = (("quick_before", "quick"),)


def run_bench(model_name: str = "default", batch_size: int = 8, micro_batch_size: int = 4, samples: int = 32,
              data: str = "", configs: tuple[str, ...] = CONFIGS) -> dict:
    """The configurations one after another, each in a fresh process; speed ratios against each other."""
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown bench configuration(s) {unknown}; choose from {', '.join(CONFIGS)}")
    resolve_model(model_name)  # convert the GGUF once, outside the timed children
    results = {}
    groups = [tuple(c for c in together if c in configs) for together in TOGETHER]
    groups = [g for g in groups if g] + [(c,) for c in configs if not any(c in g for g in groups)]
    for group in groups:
        command = [sys.executable, "-m", "lamforge.train.bench", ",".join(group), model_name, str(batch_size),
                   str(micro_batch_size), str(samples), data]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode < 0:  # a signal; SIGKILL here is nearly always the kernel's out-of-memory killer
            raise RuntimeError(f"bench {group} was killed by signal {-proc.returncode} (out of memory? the naive "
                               f"configuration needs ~20 GB at micro-batch 4 on 1,500-token prompts; try "
                               f"--micro-batch-size 2)")
        if proc.returncode != 0:
            raise RuntimeError(f"bench {group} failed:\n{proc.stderr[-3000:]}")
        for result in json.loads(proc.stdout.strip().splitlines()[-1]):
            results[result["config"]] = result
    ratios = {f"{a}_over_{b}": round(results[b]["seconds_per_example"] / results[a]["seconds_per_example"], 2)
              for a in results for b in results if a != b and b in ("naive", "quick_before")}
    return {
        "model": model_name,
        "examples_from": data or "synthetic step samples",
        "samples_measured_per_config": samples,
        "tokens_counted": "prompt + target + EOS of every example trained; padding excluded; same data for all",
        **results,
        "speedups": ratios,
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__":
    names, model_name, batch, micro, samples, data = sys.argv[1:7]
    print(json.dumps(measure(names.split(","), model_name, int(batch), int(micro), int(samples), data=data)))
