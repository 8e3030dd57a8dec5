"""Training on N processes with Hugging Face accelerate: the accelerator a config asks for, the wrapper that lets
DDP, FSDP and DeepSpeed see the shared-prefix forward, each process's share of a global batch, 4/8-bit base
loading and activation recomputation.

The same code runs on one CPU, one GPU, and N processes started by a launcher (`accelerate launch`, `torchrun`):
accelerate reads the launcher's environment, so nothing here changes between them.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from functools import partial

import torch

from lamforge.train import runtime
from lamforge.train.batching import decoder_of, unwrap
from lamforge.train.config import CommonConfig


BARRIER_TIMEOUT = timedelta(hours=2)


class SetupError(RuntimeError):
    """A distributed or precision setting this machine cannot honour; the message says what to change."""


def world_size() -> int:
    """Processes the launcher started (1 without a launcher); read before any process group exists."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a launched run, or the only process; for output that should appear once."""
    return os.environ.get("RANK", "0") == "0"


def make_accelerator(config: CommonConfig, bf16: bool | None = None):
    """The Accelerator for a run: CPU or GPU per `config.device`, DDP/FSDP2/ZeRO-3 per `config.sharding`.

    Precision stays lamforge's own (runtime.use_bf16, batching.autocast) without sharding, so a CPU run computes
    what it computed before accelerate; sharded runs hand bf16 to FSDP's or DeepSpeed's mixed precision, which
    keeps an fp32 master copy of the shards.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs

    device = runtime.pick_device(config.device)
    if device.type == "cuda" and device.index is not None:
        if world_size() > 1:
            raise SetupError(f"device {config.device!r} names one GPU, but {world_size()} processes were launched; "
                             "each process takes its own GPU: use device = 'cuda' or 'auto'")
        torch.cuda.set_device(device.index)
    sharded = config.sharding != "none"
    if sharded and device.type != "cuda":
        raise SetupError(f"sharding = {config.sharding!r} needs GPUs (accelerate runs FSDP and DeepSpeed only on "
                         "accelerators); on CPU use sharding = 'none', which runs DDP over gloo")
    bf16 = runtime.use_bf16(config.bf16, device) if bf16 is None else bf16
    plugins = {}
    if config.sharding == "fsdp":
        plugins["fsdp_plugin"] = fsdp_plugin()
    elif config.sharding == "zero3":
        plugins["deepspeed_plugin"] = zero3_plugin(config, bf16)
    # Each phase may ask for other plugins or precision than the previous one in the same process (the pipeline,
    # tests). accelerate keeps one AcceleratorState per process and refuses changes to it, so it is reset here; the
    # process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(
        cpu=device.type == "cpu",
        mixed_precision="bf16" if sharded and bf16 else "no",
        # A global batch is split across the processes (its examples are what the schedule says), so the learning
        # rate schedule steps once per global batch, not once per process.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        # The main process evaluates and saves a phase's model while the others wait for it (the next phase starts
        # from that folder); decoding 200 held-out steps of a 7B model outlasts NCCL's default 10 minutes.
        kwargs_handlers=[InitProcessGroupKwargs(timeout=BARRIER_TIMEOUT)],
        **plugins,
    )


def fsdp_plugin():
    """FSDP2 over the decoder layers (ForwardCall names their class); sharded checkpoints that torch's distributed
    checkpoint reshards when a run resumes on another number of GPUs."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin(fsdp_version=2, reshard_after_forward=True,
                                          auto_wrap_policy="transformer_based_wrap",
                                          state_dict_type="SHARDED_STATE_DICT", cpu_ram_efficient_loading=False)


def zero3_plugin(config: CommonConfig, bf16: bool):
    """DeepSpeed ZeRO-3 with lamforge's own schedule: one DeepSpeed step per global batch (lamforge accumulates
    micro-batches itself), clipping at max_grad_norm, 16-bit weights gathered when the policy is saved."""
    if importlib.util.find_spec("deepspeed") is None:
        raise SetupError("sharding = 'zero3' needs DeepSpeed: pip install deepspeed (or use sharding = 'fsdp')")
    from accelerate.utils import DeepSpeedPlugin

    ds_config = {
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": getattr(config, "max_grad_norm", 1.0),
        "zero_optimization": {"stage": 3, "overlap_comm": True, "stage3_gather_16bit_weights_on_model_save": True},
        "bf16": {"enabled": bool(bf16)},
        "zero_allow_untested_optimizer": True,  # torch's AdamW over the LoRA parameters
    }
    return DeepSpeedPlugin(hf_ds_config=ds_config)


# ---------------------------------------------------------------------------------------------------------------
# The model wrapper and calls through it.


class ForwardCall(torch.nn.Module):
    """Runs `fn(model, *args)` as this module's forward, so that the wrapper accelerate puts around it (DDP, FSDP,
    a DeepSpeed engine) sees every pass.

    batching.py does not call model.forward: it runs the decoder on KV caches and the head only at target
    positions. DDP prepares its gradient reduction, FSDP gathers the root's weights and DeepSpeed fetches
    partitions only inside the wrapper's forward, so the loops call the model through this module.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        inner_model = unwrap(model)
        self.config = inner_model.config  # accelerate's FSDP setup reads it (tied embeddings)
        self._no_split_modules = getattr(inner_model, "_no_split_modules", None)  # FSDP wraps these layer classes

    def forward(self, fn, *args):
        return fn(self.model, *args)


def call(model, fn, *args):
    """fn(model, *args) through the distributed wrapper when `model` is one a TrainLoop prepared; else directly
    (a bare model in unit tests and tools)."""
    from accelerate.utils import extract_model_from_parallel

    if isinstance(extract_model_from_parallel(model), ForwardCall):
        return model(fn, *args)
    return fn(model, *args)


def inner(model):
    """The PEFT or transformers model inside whatever wrappers a TrainLoop put around it."""
    from accelerate.utils import extract_model_from_parallel

    found = extract_model_from_parallel(model)
    return found.model if isinstance(found, ForwardCall) else found


# ---------------------------------------------------------------------------------------------------------------
# Each process's rows of a global batch.


def shard(rows: list, rank: int, processes: int) -> list:
    """This process's contiguous share of a global batch's rows: sizes differ by at most one. Callers sort rows by
    tokens first, so rows that share a prompt prefix stay on one process and keep sharing its pass."""
    base, extra = divmod(len(rows), processes)
    start = rank * base + min(rank, extra)
    return rows[start : start + base + (rank < extra)]


def micro_batch_count(rows: list, processes: int, size: int) -> int:
    """Micro-batches every process runs for a global batch: the most any process needs, at least one. Each
    process can compute it alone (the split is deterministic), so no message is exchanged."""
    return max(1, max(-(-len(shard(rows, r, processes)) // size) for r in range(processes)))


# ---------------------------------------------------------------------------------------------------------------
# Base weights in 4 or 8 bits.


def quantization_config(config: CommonConfig, bf16: bool):
    """transformers' BitsAndBytesConfig for `config.base_quantization`, or None; a clear error where bitsandbytes
    or a GPU is missing."""
    if config.base_quantization == "none":
        return None
    if not config.use_lora:
        raise SetupError("base_quantization needs use_lora = true: a quantized base is frozen, only an adapter trains")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise SetupError(f"base_quantization = {config.base_quantization!r} needs bitsandbytes: "
                         "pip install bitsandbytes (on a machine with a CUDA GPU), or set base_quantization = 'none'")
    if not torch.cuda.is_available():
        raise SetupError(f"base_quantization = {config.base_quantization!r} needs a CUDA GPU; torch sees none")
    from transformers import BitsAndBytesConfig

    if config.base_quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if bf16 else torch.float16
    # Storage in the compute dtype lets FSDP shard the packed weights like any bf16 tensor (FSDP-QLoRA).
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute, bnb_4bit_quant_storage=compute)


# ---------------------------------------------------------------------------------------------------------------
# Activation recomputation.

RECOMPUTED = ("input_layernorm", "post_attention_layernorm", "mlp")


def recompute_activations(model) -> int:
    """Recompute each decoder layer's two norms and its MLP in the backward pass instead of keeping their
    activations; returns the number of modules changed.

    Not transformers' gradient_checkpointing_enable(): under it a decoder layer drops its KV cache (it sets
    use_cache off and the cache to None), and the shared-prefix forward (batching.py) runs every trained part on a
    cache. Attention stays as it is: it extends the cache, and recomputing it would extend the cache twice. Only
    `forward` is replaced, on the module objects, so parameter names, LoRA and saving do not change.
    """
    changed = 0
    for layer in decoder_of(model).layers:
        for name in RECOMPUTED:
            module = getattr(layer, name, None)
            if module is None or getattr(module, "_lamforge_recomputed", False):
                continue
            module.forward = partial(_recomputed, module.forward)
            module._lamforge_recomputed = True
            changed += 1
    return changed


def _recomputed(forward, *args, **kwargs):
    if not torch.is_grad_enabled():
        return forward(*args, **kwargs)
    from torch.utils.checkpoint import checkpoint

    # Non-reentrant: works when the input needs no gradient (a frozen prompt) and replays dropout's random state.
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)
