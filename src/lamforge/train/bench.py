"""Training speed and memory on this machine: lamforge's SFT step against a naive baseline, in one run.

- naive: full fine-tune, fp32, micro-batches padded to their longest example, the model's own loss (logits over
  the whole sequence), no prefix sharing;
- lamforge: LoRA (r=16, all linear layers, no dropout), bf16 autocast, the shared system-prompt prefix run once per
  micro-batch, logits only at target positions: the exact gradient;
- frozen_prompt: lamforge with prompt_gradients=False (the quick preset): each prompt runs without gradients.

Both train the same examples (synthetic step samples of real shape, ~700-1,000 tokens, mostly prompt; or, with
--data, samples drawn from a collected samples.jsonl, ~1,500 tokens) with the
loss on target tokens only, in optimizer batches of the same size and the same micro-batch size. Each runs in
its own process so its peak memory (max RSS, model loading included) is its own.

Tokens/s counts the same "useful" tokens for both: prompt + target (+ EOS) of every example trained, no padding.
Tokens that prefix sharing does not recompute still count for every example they stand in for, exactly as in the
naive run, so the ratio of tokens/s equals the ratio of examples/s.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = ("naive", "lamforge", "frozen_prompt")


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def bench_samples(n: int, seed: int, data: str = ""):
    """n step samples: drawn (seeded) from a collected samples.jsonl when given, else synthetic ones."""
    import random

    from lamforge.schema import StepSample
    from lamforge.train.data import read_jsonl
    from lamforge.train.synthetic import synthetic_step_samples

    if not data:
        return synthetic_step_samples(n, seed=seed)
    records = read_jsonl(data, StepSample)
    if len(records) < n:
        raise ValueError(f"{data} has {len(records)} samples; the bench needs {n}")
    return random.Random(seed).sample(records, n)


def measure(config: str, model_name: str, batch_size: int, micro_batch_size: int, steps: int, seed: int = 0,
            data: str = "") -> dict:
    """Train `steps` optimizer steps of `batch_size` examples after one warm-up step; return speed and memory."""
    import torch

    from lamforge.train import runtime
    from lamforge.train.base_model import load_causal_lm, load_tokenizer
    from lamforge.train.batching import autocast, micro_batches, target_loss_sum
    from lamforge.train.config import SFTConfig
    from lamforge.train.data import record_messages
    from lamforge.train.formatting import IGNORE_INDEX, encode_example
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(model_name)
    warmup = 2
    samples = bench_samples(warmup + batch_size * steps, seed, data)
    encoded = [encode_example(tokenizer, *record_messages(s)) for s in samples]
    device = torch.device("cpu")
    fast = config != "naive"
    bf16 = fast and runtime.cpu_has_bf16()
    model = load_causal_lm(model_name)
    model.config.use_cache = False
    if fast:
        model = runtime.add_lora(model, SFTConfig(lora_r=16, lora_alpha=32, lora_dropout=0.0))
    model.train()
    optimizer = runtime.make_optimizer(model, 1e-5)
    pad = tokenizer.pad_token_id

    def naive_loss(batch):
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

    def step(batch) -> float:
        if fast:
            parts = micro_batches(batch, micro_batch_size, pad, share_prefix=True,
                                  prompt_gradients=config != "frozen_prompt")
            n_targets = sum(p.target_tokens for p in parts)
            total = 0.0
            for part in parts:
                with autocast(device, bf16):
                    loss_sum, _ = target_loss_sum(model, part)
                (loss_sum / n_targets).backward()
                total += loss_sum.item()
        else:
            # The usual padded batches: examples in data order, not sorted by length.
            n_targets = sum(len(e) - e.prompt_length for e in batch)
            total = 0.0
            for i in range(0, len(batch), micro_batch_size):
                loss_sum, _ = naive_loss(batch[i : i + micro_batch_size])
                (loss_sum / n_targets).backward()
                total += loss_sum.item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total / max(1, n_targets)

    step(encoded[:warmup])
    measured = encoded[warmup:]
    load_before = _load_average()
    started, cpu_started = time.perf_counter(), time.process_time()
    losses = [step(measured[i * batch_size : (i + 1) * batch_size]) for i in range(steps)]
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    tokens = sum(len(e) for e in measured)
    return {
        "config": config,
        "examples": len(measured),
        "useful_tokens": tokens,
        "target_tokens": sum(len(e) - e.prompt_length for e in measured),
        "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds, 1),
        "examples_per_second": round(len(measured) / seconds, 3),
        "cpu_seconds": round(cpu_seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "first_loss": round(losses[0], 4),
        "bf16_autocast": bf16,
        "lora": fast,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(load_before, 2), round(_load_average(), 2)],
    }


def run_bench(model_name: str = "default", batch_size: int = 8, micro_batch_size: int = 4, steps: int = 1,
              data: str = "") -> dict:
    """Both configurations, each in a fresh process; the lamforge/naive speed ratio."""
    from lamforge.train.base_model import resolve_model

    resolve_model(model_name)  # convert the GGUF once, outside the timed children
    results = {}
    for config in CONFIGS:
        command = [sys.executable, "-m", "lamforge.train.bench", config, model_name, str(batch_size), str(micro_batch_size), str(steps), data]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode < 0:  # a signal; SIGKILL here is nearly always the kernel's out-of-memory killer
            raise RuntimeError(f"bench {config} was killed by signal {-proc.returncode} (out of memory? the naive "
                               f"configuration needs ~20 GB at micro-batch 4 on 1,500-token prompts; try "
                               f"--micro-batch-size 2)")
        if proc.returncode != 0:
            raise RuntimeError(f"bench {config} failed:\n{proc.stderr[-3000:]}")
        results[config] = json.loads(proc.stdout.strip().splitlines()[-1])
    naive, fast = results["naive"], results["lamforge"]
    return {
        "model": model_name,
        "batch_size": batch_size,
        "micro_batch_size": micro_batch_size,
        "measured_steps": steps,
        "examples_from": data or "synthetic step samples",
        "tokens_counted": "prompt + target + EOS of every example trained; padding excluded; same examples for both",
        "naive": naive,
        "lamforge": fast,
        "frozen_prompt": results["frozen_prompt"],
        "speedup": round(fast["tokens_per_second"] / naive["tokens_per_second"], 2),
        "speedup_frozen_prompt": round(results["frozen_prompt"]["tokens_per_second"] / naive["tokens_per_second"], 2),
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__":
    config, model_name, batch, micro, steps, data = sys.argv[1:7]
    print(json.dumps(measure(config, model_name, int(batch), int(micro), int(steps), data=data)))
