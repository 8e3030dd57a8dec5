"""The one training loop of SFT, the reward model and offline PPO, on Hugging Face accelerate.

A phase hands it a model, an optimizer, its global batch schedule and a function that trains one global batch.
The loop does what every phase shares:

- where the run happens: one CPU, one GPU, or N processes started by a launcher (distributed.make_accelerator);
- which rows of a global batch this process trains (distributed.shard), padded so that every process runs the
  same number of micro-batches; gradients are reduced once per optimizer step;
- the resume state: accelerate's save_state/load_state (trainable weights, optimizer, schedule, random states)
  plus a Progress record (the global step, each step's numbers, the config and batches the run followed),
  written atomically by the main process. It is keyed by the global step and the global schedule, not by rank,
  so an interrupted run resumes with another number of processes;
- the progress bar, and Ctrl-C (or SIGTERM, SIGHUP: lamforge/signals.py), on the main process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from lamforge.allocator import running_under_jemalloc
from lamforge.models.cpu import cpu_name
from lamforge.models.loading import load_model
from lamforge.train import distributed, runtime
from lamforge.signals import stop_signals_interrupt
from lamforge.train.config import CommonConfig
from lamforge.train.data import example_weights, load_family_weights, prefix_group
from lamforge.train.runtime import STATE_DIR, TrainingInterrupted

PROGRESS_FILE = "custom_checkpoint_0.pkl"  # accelerate's file for the first object registered for checkpointing
WEIGHTS_FILE = "model.safetensors"  # accelerate's file for the first model's weights


@dataclass
class Progress:
    """What a resume needs besides weights, optimizer and random states."""

    step: int = 0
    """Global optimizer steps done."""
    history: list = field(default_factory=list)
    """One record per step: {'loss': ...} for SFT and the reward model, PPO's statistics for phase 4."""
    extra: dict = field(default_factory=dict)
    """A phase's own running values (PPO's KL coefficient)."""
    trajectory: dict = field(default_factory=dict)
    """The config fields that decide what the run computes (runtime.TRAJECTORY_FIELDS)."""
    schedule: str = ""
    """Fingerprint of the global batches trained so far; a resume must start with the same batches."""
    processes: int = 1
    """How many processes wrote the state (a resume may use another number)."""

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def fingerprint(batches: list[list[int]]) -> str:
    return hashlib.sha256(json.dumps(batches).encode()).hexdigest()[:16]


class LocalSteps:
    """The steps of a training loop for a bare model in one process: plain torch calls. ppo_batch runs on this
    when a unit test or tool hands it a model and optimizer without a TrainLoop."""

    processes = 1
    rank = 0

    def __init__(self, model=None, optimizer=None, share_prefix: bool = True):
        self.model = model
        self.optimizer = optimizer
        self.scheduler = None
        self.share_prefix = share_prefix

    def my_rows(self, rows: list, micro_batch_size: int) -> tuple[list, int]:
        """This process's rows of a global batch, and how many padding micro-batches it adds (see TrainLoop)."""
        return list(rows), 0

    def micro_step(self, last: bool = True):
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip(self, max_grad_norm: float) -> None:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)

    def optimizer_step(self, max_grad_norm: float) -> None:
        self.clip(max_grad_norm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def reduce_sum(self, *values: float) -> list[float]:
        return list(values)


class TrainLoop(LocalSteps):
    """One phase's run: the accelerator, the model it trains, the resume state and the loop over global batches."""

    def __init__(self, config: CommonConfig, title: str):
        super().__init__()
        self.config = config
        self.title = title
        self.output_dir = Path(config.output_dir)
        runtime.seed_everything(config.seed)  # the same LoRA initialisation in every process and as before
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        device = runtime.pick_device(config.device)
        self.bf16 = runtime.use_bf16(config.bf16, device)
        self.accelerator = distributed.make_accelerator(config, self.bf16)
        # Under a launcher accelerate names the CPU "cpu:0"; some kernels take another path for an indexed CPU
        # device than for "cpu" (scores differ in the last bits), so N processes would not compute what 1 does.
        self.device = self.accelerator.device if self.accelerator.device.type != "cpu" else torch.device("cpu")
        self.processes = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.sharded = config.sharding != "none"
        # Sharded processes must run the same layer calls; the shared-prefix split makes them data-dependent.
        self.share_prefix = config.share_prefix and not self.sharded
        self.schedule: list[list[int]] = []
        self.progress = Progress(trajectory=runtime.trajectory(config), processes=self.processes)
        self.start = 0
        self.saved_step = 0
        self.meter = runtime.Meter()

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def describe(self) -> dict:
        """Where and how the run trained, for the model card."""
        return {"device": str(self.device), "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
                "bf16": self.bf16, "processes": self.processes,
                "distributed": self.accelerator.distributed_type.value, "sharding": self.config.sharding,
                "gradient_checkpointing": self.config.gradient_checkpointing,
                "base_quantization": self.config.base_quantization, "share_prefix_used": self.share_prefix,
                "allocator": "jemalloc" if running_under_jemalloc() else "libc"}

    # -- model -----------------------------------------------------------------------------------------------

    def load_model(self, name: str, kind: str = "causal-lm", quantized: bool = True):
        """The model a phase trains: the base in the run's dtype (4/8-bit when configured), on this process's
        device, with a fresh LoRA adapter, and activation recomputation when configured."""
        config = self.config
        quantization = distributed.quantization_config(config, self.bf16) if quantized else None
        model = load_model(name, kind, dtype=runtime.weight_dtype(config, self.device, self.bf16), device=self.device,
                           quantization=quantization)
        model.config.use_cache = False
        model = runtime.add_lora(model, config, task_type="SEQ_CLS" if kind == "scorer" else "CAUSAL_LM")
        if config.gradient_checkpointing:
            distributed.recompute_activations(model)
        return model

    def start_supervised(self, model, records: list) -> int:
        """The optimizer, the batch order over `records` (batches filled per shared prompt prefix when the config
        shares prefixes), the warm-up + cosine schedule, and `prepare`: what SFT and the reward model start alike.
        PPO has its own order (rollout batches) and no scheduler, so it calls `prepare` itself."""
        config = self.config
        optimizer = runtime.make_optimizer(model, config.learning_rate, config.weight_decay)
        groups = [prefix_group(r, config.max_controls) for r in records] if config.share_prefix else None
        weights = example_weights(records, load_family_weights(config.family_weights)) if config.family_weights else None
        schedule = runtime.batch_schedule(len(records), config.batch_size, config.epochs, config.seed,
                                          config.max_steps, groups=groups, weights=weights)
        scheduler = runtime.make_scheduler(optimizer, config.warmup_steps, len(schedule))
        return self.prepare(model, optimizer, scheduler, schedule)

    def prepare(self, model, optimizer, scheduler, schedule: list[list[int]]) -> int:
        """Wrap the model for the run (DDP, FSDP or DeepSpeed through accelerate) and load the resume state if
        output_dir has one; returns the global step to start from."""
        self.schedule = schedule
        wrapped = distributed.ForwardCall(model)
        if not self.sharded:
            # Every process loads the same base weights from disk; DDP need not broadcast the frozen ones.
            frozen = [name for name, p in wrapped.named_parameters() if not p.requires_grad]
            wrapped._ddp_params_and_buffers_to_ignore = frozen
        # The model is on its device already (load_model); a quantized one must not be moved by accelerate. The
        # optimizer keeps device placement, so a resumed state lands where the parameters are.
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            wrapped, optimizer, scheduler, device_placement=[False, True, True])
        self.accelerator.register_for_checkpointing(self.progress)
        self.accelerator.register_save_state_pre_hook(self._save_trainable)
        self.accelerator.register_load_state_pre_hook(self._load_trainable)
        self.start = self.saved_step = self._resume()
        return self.start

    def trained_model(self, rebuild: Callable[[], torch.nn.Module]):
        """The trained model for evaluation and saving, on the main process (None on the others).

        When every process holds the whole unquantized model, that model itself. A sharded or quantized run
        gathers the trained weights into `rebuild()`, a fresh full-precision model with a fresh adapter, so the
        saved policy merges into unquantized weights (QLoRA's usual end).
        """
        if not self.sharded and self.config.base_quantization == "none":
            return distributed.inner(self.model) if self.is_main else None
        state = self.accelerator.get_state_dict(self.model)  # gathers shards; complete on the main process
        if not self.is_main:
            return None
        fresh = rebuild()
        wanted = {name: p for name, p in fresh.named_parameters() if p.requires_grad}
        missing = [name for name in wanted if f"model.{name}" not in state]
        if missing:
            raise RuntimeError(f"the gathered weights lack {len(missing)} trained tensors, e.g. {missing[0]}")
        with torch.no_grad():
            for name, param in wanted.items():
                param.copy_(state[f"model.{name}"].to(param.device, param.dtype))
        return fresh

    # -- one optimizer step ----------------------------------------------------------------------------------

    def my_rows(self, rows: list, micro_batch_size: int) -> tuple[list, int]:
        """This process's rows of a global batch (sorted by the caller) and how many padding micro-batches it
        runs after them: every process runs as many micro-batches as the busiest one, because DDP reduces
        gradients once per process and FSDP/ZeRO-3 gather weights in lockstep. A padding micro-batch is the
        batch's first row with its loss weighted zero."""
        mine = distributed.shard(list(rows), self.rank, self.processes)
        needed = distributed.micro_batch_count(list(rows), self.processes, micro_batch_size)
        return mine, needed - math.ceil(len(mine) / micro_batch_size)

    def micro_step(self, last: bool = True):
        """Context of one micro-batch's forward and backward: gradients are reduced across processes only on the
        last micro-batch of a step (accumulated locally before it)."""
        self.accelerator.sync_gradients = last
        return contextlib.nullcontext() if last else self.accelerator.no_sync(self.model)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def clip(self, max_grad_norm: float) -> None:
        self.accelerator.sync_gradients = True
        self.accelerator.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], max_grad_norm)

    def reduce_sum(self, *values: float) -> list[float]:
        """Sums over processes (the values themselves in one process)."""
        if self.processes == 1:
            return list(values)
        total = self.accelerator.reduce(torch.tensor(values, dtype=torch.float64, device=self.device), "sum")
        return total.tolist()

    # -- the loop --------------------------------------------------------------------------------------------

    def run(self, train_step: Callable[[int], tuple[dict, int]], show: Callable[[dict, runtime.Meter], dict],
            stop_after: int | None = None) -> float:
        """Train global batches from the resume point to the end of the schedule; returns the seconds it took.

        train_step(step) -> (the step's record, tokens of its global batch); show(record, meter) -> the progress
        bar's loss and speed fields. The state is saved every save_every steps; `stop_after` ends this run after
        that many steps, as an interruption would.
        """
        total = len(self.schedule)
        started = time.perf_counter()
        with stop_signals_interrupt(), runtime.progress_bar(self.title, disable=not self.is_main) as progress:
            bar = progress.add_task(self.title, total=total, completed=self.start, loss="-", speed="")
            try:
                for step in range(self.start, total):
                    record, tokens = train_step(step)
                    self.progress.history.append(record)
                    self.progress.step = done = step + 1
                    self.meter.update(record.get("loss", math.nan), tokens)
                    progress.update(bar, completed=done, **show(record, self.meter))
                    # At the last step too: the held-out evaluation and the model's export after it take minutes
                    # on a CPU, and a stop there would otherwise redo the steps since the last periodic save.
                    if done % self.config.save_every == 0 or done == total:
                        self.save()
                    if stop_after is not None and done - self.start >= stop_after and done < total:
                        self.save()
                        raise TrainingInterrupted(done, self.output_dir)
            except KeyboardInterrupt:
                # With several processes a save from a signal handler's unwinding could wait forever on a process
                # that is already gone; the last periodic save stands.
                if self.processes == 1:
                    self.save()
                raise TrainingInterrupted(self.saved_step, self.output_dir) from None
        return time.perf_counter() - started

    @property
    def history(self) -> list[dict]:
        return self.progress.history

    def finish(self) -> None:
        """After the main process wrote the phase's model: it removes the resume state; every process waits for
        that and releases accelerate's references."""
        if self.is_main:
            for name in (STATE_DIR, f".{STATE_DIR}.tmp", f".{STATE_DIR}.old"):  # save()'s, left by a kill inside it
                shutil.rmtree(self.output_dir / name, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.free_memory()

    # -- resume state ----------------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the resume state into a fresh folder, then swap it in: the old state stays until the new one is
        complete. Every process writes its random state; the main process the rest."""
        acc = self.accelerator
        self.progress.schedule = fingerprint(self.schedule[: self.progress.step])
        self.progress.processes = self.processes
        tmp = self.output_dir / f".{STATE_DIR}.tmp"
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if self.is_main:
            final, old = self.output_dir / STATE_DIR, self.output_dir / f".{STATE_DIR}.old"
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        self.saved_step = self.progress.step

    def _state_folder(self) -> Path | None:
        # .old: a crash between the two renames of save()
        for folder in (self.output_dir / STATE_DIR, self.output_dir / f".{STATE_DIR}.old"):
            if folder.is_dir():
                return folder
        return None

    def _resume(self) -> int:
        folder = self._state_folder()
        if folder is None:
            return 0
        if not (folder / PROGRESS_FILE).exists():
            raise RuntimeError(f"{folder} was written by an older lamforge and cannot be resumed; "
                               "delete it to start over")
        saved = torch.load(folder / PROGRESS_FILE, map_location="cpu", weights_only=False)
        # A key the saved state lacks was not recorded by the lamforge that saved it: not a difference.
        changed = sorted(k for k, v in self.progress.trajectory.items()
                         if k in saved["trajectory"] and saved["trajectory"][k] != v and k != "max_steps")
        retrained = [k.removesuffix(" made") for k in changed if k.endswith(" made")]
        if retrained:
            model = self.progress.trajectory[retrained[0]]
            raise RuntimeError(f"{folder} was saved while training from an earlier {model}, which was trained again "
                               f"since; delete {folder} to train from the new one")
        if changed:
            raise RuntimeError(f"{folder} was saved by a run with other settings ({', '.join(changed)}); "
                               f"use the same config to resume, or delete that folder to start over")
        if fingerprint(self.schedule[: saved["step"]]) != saved["schedule"]:
            raise RuntimeError(f"{folder} was saved after other batches than this run's schedule starts with (did the "
                               f"training data change?); use the same data to resume, or delete that folder")
        self.accelerator.load_state(str(folder))
        return self.progress.step

    def _trainable(self, model) -> dict[str, torch.nn.Parameter]:
        from accelerate.utils import extract_model_from_parallel

        return {n: p for n, p in extract_model_from_parallel(model).named_parameters() if p.requires_grad}

    def _save_trainable(self, models, weights, output_dir) -> None:
        """accelerate's save hook: keep only the trained weights (a LoRA adapter is megabytes, the base gigabytes,
        and every process loads the base from disk anyway). Sharded runs save through FSDP/DeepSpeed instead."""
        for i, model in enumerate(models[: len(weights)]):
            weights[i] = {n: p.detach().cpu().contiguous() for n, p in self._trainable(model).items()}

    def _load_trainable(self, models, input_dir) -> None:
        """accelerate's load hook, the other half of _save_trainable; it loads the models itself, so it empties
        `models` (accelerate then loads none)."""
        if not models:
            return
        from safetensors.torch import load_file

        saved = load_file(str(Path(input_dir) / WEIGHTS_FILE))
        for model in models:
            params = self._trainable(model)
            if set(saved) != set(params):
                raise RuntimeError(f"{input_dir}: its trained weights do not match this model's; "
                                   "delete it to start over")
            with torch.no_grad():
                for name, param in params.items():
                    param.copy_(saved[name].to(param.device, param.dtype))
        models.clear()
