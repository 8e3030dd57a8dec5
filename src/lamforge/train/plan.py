"""`lamforge train plan`: the memory per GPU of each phase, worked out from the model's shape and the phase's
config before anything is loaded, and whether it fits.

A plan is arithmetic, not a measurement. Every term below says what it counts; the assumptions it cannot know
(reply length, allocator overhead, the attention kernel) are ASSUMPTIONS, printed with the plan. It plans for the
worst case: every example max_length tokens long, no shared prefix.

Model shapes come from the model's config.json when it is on disk (a folder, a phase's output, the Hugging Face
cache), else from KNOWN_SHAPES, a small table of the models the presets name and a few common ones: the plan runs
offline and never downloads or loads a model.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from lamforge.models.base_model import DEFAULT_MODEL, TINY_MODEL, _ALIASES, models_dir, tiny_config
from lamforge.train.config import PHASES, CommonConfig, build_config

GIB = 2**30
ASSUMPTIONS = {
    "target_tokens_per_example": 256,  # reply + EOS; actions are ~40-100 tokens, plans a few hundred
    "reserve_gib": 2.0,  # CUDA context, cuBLAS and attention workspaces
    "fragmentation": 0.10,  # caching-allocator slack, as a share of everything else
    "attention": "fused SDPA kernel (no seq x seq matrix is kept); grouped K/V expanded to all heads, as "
                 "transformers does on CUDA when it passes a mask",
    "gpu_bf16": True,  # A100/H100-class GPUs: bf16 = 'auto' means bf16
}


class PlanError(ValueError):
    """A model whose shape the plan cannot find, or settings it cannot plan."""


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool
    head_dim: int = 0

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.head_dim or self.hidden // self.heads)

    @property
    def q_dim(self) -> int:
        return self.heads * (self.head_dim or self.hidden // self.heads)

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer: q, k, v, o, gate, up, down (what 'all-linear' LoRA
        adapts)."""
        h, i = self.hidden, self.intermediate
        return [(h, self.q_dim), (h, self.kv_dim), (h, self.kv_dim), (self.q_dim, h), (h, i), (h, i), (i, h)]

    @property
    def layer_params(self) -> int:
        return sum(a * b for a, b in self.linears()) + 2 * self.hidden  # + two norms

    @property
    def outer_params(self) -> int:
        """Embeddings, the final norm and the LM head (shared with the embeddings when tied)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.outer_params

    def lora_params(self, rank: int) -> int:
        return self.layers * sum(rank * (a + b) for a, b in self.linears())


def _shape(hidden, intermediate, layers, heads, kv_heads, vocab, tied, head_dim=0) -> ModelShape:
    return ModelShape(hidden, intermediate, layers, heads, kv_heads, vocab, tied, head_dim)


# Numbers from each model's config.json on the Hugging Face hub.
KNOWN_SHAPES: dict[str, ModelShape] = {
    "mistralai/Mistral-7B-Instruct-v0.3": _shape(4096, 14336, 32, 32, 8, 32768, False),
    "meta-llama/Llama-3.1-8B-Instruct": _shape(4096, 14336, 32, 32, 8, 128256, False),
    "Qwen/Qwen2.5-7B-Instruct": _shape(3584, 18944, 28, 28, 4, 152064, False),
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": _shape(2048, 8192, 24, 32, 32, 49152, True),
    "HuggingFaceTB/SmolLM2-135M-Instruct": _shape(576, 1536, 30, 9, 3, 49152, True),
}
ALIASES = {"default": "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def shape_from_config(config: dict) -> ModelShape:
    heads = config["num_attention_heads"]
    return ModelShape(hidden=config["hidden_size"], intermediate=config["intermediate_size"],
                      layers=config["num_hidden_layers"], heads=heads,
                      kv_heads=config.get("num_key_value_heads") or heads, vocab=config["vocab_size"],
                      # transformers' own default is True, but Llama-family configs that omit it mean False; the
                      # untied reading counts more memory, so it errs on the safe side
                      tied_embeddings=bool(config.get("tie_word_embeddings", False)),
                      head_dim=config.get("head_dim") or 0)


def find_shape(name: str) -> tuple[ModelShape, str]:
    """(shape, where it came from) for a model name, without loading the model: its config.json on disk (a
    folder, the offline default's converted folder, the Hugging Face cache), else KNOWN_SHAPES."""
    alias = _ALIASES.get(name)
    candidates = [Path(name).expanduser() / "config.json"]
    if alias == DEFAULT_MODEL:
        candidates.append(models_dir() / DEFAULT_MODEL / "config.json")
    elif alias == TINY_MODEL:
        return shape_from_config(tiny_config(49152, 1, 2, 2).to_dict()), "base_model.tiny_config"
    elif name.count("/") == 1:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
            if isinstance(cached, str):
                candidates.append(Path(cached))
        except ImportError:
            pass
    for path in candidates:
        if path.is_file():
            return shape_from_config(json.loads(path.read_text())), str(path)
    key = ALIASES.get(name, name)
    if key in KNOWN_SHAPES:
        return KNOWN_SHAPES[key], f"lamforge.train.plan.KNOWN_SHAPES[{key!r}]"
    raise PlanError(f"no shape for model {name!r}: give a local model folder (its config.json is read), a Hugging "
                    f"Face id in the local cache, or one of {', '.join(KNOWN_SHAPES)}")


# ---------------------------------------------------------------------------------------------------------------
# The arithmetic.


def activation_bytes_per_token_layer(shape: ModelShape, act: int, lora_r: int, recompute: bool,
                                     expanded_kv: bool = True) -> int:
    """Bytes one token keeps for the backward pass in one decoder layer, counted tensor by tensor the way autograd
    saves them (after Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
    redone for RMSNorm, SwiGLU, grouped K/V and LoRA on every linear layer of a frozen base: a frozen linear keeps
    nothing, its LoRA A keeps its input). `act` is the bytes of an activation (2 under bf16).

    Without recomputation: each RMSNorm keeps an fp32 copy of its input (4h bytes; under fp32 that is the input
    itself); the norm outputs (2h, inputs of q/k/v and gate/up); the attention's q, K, V and output (3h + 2 kv; the
    output is also o's input, and K/V are the cache's tensors); gate, SiLU output, up and their product (4i); the
    LoRA A outputs (7 r); the softmax statistics (4 bytes a head). `expanded_kv`: transformers repeats grouped K/V
    to every head on CUDA whenever it passes a mask (a shared prefix), so K and V take 2h, not 2 kv.
    With recomputation (distributed.recompute_activations) the norms and the MLP keep only their inputs: the
    residual before each norm and the two norm outputs.
    tests/test_train_plan.py checks this count against the tensors autograd saves on CPU.
    """
    h, i, r = shape.hidden, shape.intermediate, lora_r
    kv = 2 * h if expanded_kv else 2 * shape.kv_dim
    softmax_stats = 4 * shape.heads
    if recompute:
        # norm1 in/out, q, attention out, norm2 in/out; K, V; LoRA A of q, k, v, o
        return act * (6 * h + 4 * r) + act * kv + softmax_stats
    return 2 * (4 * h + 4) + act * (4 * h + 4 * i + 7 * r) + act * kv + softmax_stats


def activation_bytes_per_token(shape: ModelShape, act: int, lora_r: int, recompute: bool,
                               expanded_kv: bool = True) -> int:
    """Bytes one token keeps in the whole decoder stack: every layer's count, less what the first layer's input
    norm would keep without recomputation: its input, the output of frozen embeddings, needs no gradient, so that
    norm keeps nothing (a recomputed norm keeps its input all the same)."""
    first_norm = 0 if recompute else 4 * shape.hidden + 4
    return shape.layers * activation_bytes_per_token_layer(shape, act, lora_r, recompute, expanded_kv) - first_norm


def phase_plan(config: CommonConfig, phase: str, shape: ModelShape, gpus: int) -> dict:
    """Memory per GPU of one phase (GiB, by component) with the config's sharding, precision and batch."""
    sharded = config.sharding != "none" and gpus > 1
    bf16 = str(config.bf16).lower() not in ("false", "0", "no") and ASSUMPTIONS["gpu_bf16"]
    act = 2 if bf16 else 4  # bytes of an activation under autocast
    lora_r = config.lora_r if config.use_lora else 0
    quant = config.base_quantization
    linear_params = shape.layers * sum(a * b for a, b in shape.linears())
    if not config.use_lora:
        weight_bytes = 4 * shape.params  # a full fine-tune keeps fp32 weights (runtime.weight_dtype)
    elif quant == "4bit":
        # NF4: 4 bits + an absmax per 64 weights, itself 8-bit with double quantisation: ~4.13 bits
        weight_bytes = linear_params * 4.127 / 8 + act * (shape.params - linear_params)
    elif quant == "8bit":
        weight_bytes = linear_params * (1 + 4 / shape.hidden) + act * (shape.params - linear_params)  # + row scales
    else:
        weight_bytes = act * shape.params
    trainable = shape.lora_params(lora_r) if config.use_lora else shape.params
    if phase == "rm":
        trainable += shape.hidden  # the score head
    # gradient (fp32) and AdamW's two fp32 moments; LoRA weights themselves are fp32 too (PEFT upcasts them over a
    # bf16 base), a full fine-tune's are already counted in weight_bytes
    state_bytes = trainable * (4 + 8 + (4 if config.use_lora else 0))
    gathered = 0.0
    if sharded:
        weight_bytes /= gpus
        state_bytes /= gpus
        # FSDP/ZeRO-3 gather the layer they run and prefetch the next; the outer weights (embeddings, head) stay
        # gathered from the forward to the backward.
        gathered = act * (2 * shape.layer_params + shape.outer_params)
    elif gpus > 1:
        state_bytes += 4 * trainable  # DDP's gradient buckets

    # Rows one process runs in one micro-batch: its share of a global batch, at most micro_batch_size (a PPO
    # minibatch runs as one micro-batch).
    rows = math.ceil(config.mini_batch_size / gpus) if phase == "4" else \
        min(config.micro_batch_size, math.ceil(config.batch_size / gpus))
    length = config.max_length
    target = min(ASSUMPTIONS["target_tokens_per_example"], length)
    grad_tokens = rows * (length if config.prompt_gradients else min(length, target + 1 + config.prompt_tail))
    final_norm = 4 * shape.hidden + 4  # every token's final RMSNorm keeps an fp32 copy of its input

    def activations(recompute: bool) -> float:
        return grad_tokens * (activation_bytes_per_token(shape, act, lora_r, recompute) + final_norm)

    kept = activations(config.gradient_checkpointing)
    # The backward pass holds one layer's activations once more (recomputed, or as their gradients).
    working = grad_tokens * activation_bytes_per_token_layer(shape, act, lora_r, False)
    passing = (2 * shape.hidden + 3 * shape.intermediate) * act  # a no-gradient layer's live tensors per token
    cache = shape.layers * 2 * shape.kv_dim * act  # K and V of every layer per token
    if not config.prompt_gradients:
        # The prompt runs without gradients: its KV cache in every layer, and one layer's passing tensors.
        kept += rows * max(0, length - target - config.prompt_tail) * (cache + passing)
    # Logits only at target positions, fp32: the logits, the log-softmax kept for the loss, their gradient.
    parts = {"weights": weight_bytes + gathered, "trainable_state": state_bytes, "activations": kept,
             "backward_working_set": working, "logits": rows * target * shape.vocab * 12}
    if phase == "4":
        # Old and reference log-distributions of the whole PPO batch, and its no-gradient pass (one micro-batch).
        parts["ppo_distributions"] = config.batch_size * target * shape.vocab * 4 * 2
        parts["ppo_no_grad_pass"] = config.batch_size * length * (cache + passing)
    subtotal = sum(parts.values())
    reserve = ASSUMPTIONS["reserve_gib"] * GIB + ASSUMPTIONS["fragmentation"] * subtotal
    total = subtotal + reserve
    gib = {k: round(v / GIB, 2) for k, v in parts.items()}
    gib["reserve"] = round(reserve / GIB, 2)
    before = {}
    if phase == "4":
        # Before training, phase 4 scores its steps with the reward model (fp32 on every GPU, no gradients, 4
        # micro-batches a pass) and frees it: a peak of its own, apart from training's.
        scoring = 4 * shape.params + 4 * config.micro_batch_size * length * (cache + passing)
        scoring_total = scoring * (1 + ASSUMPTIONS["fragmentation"]) + ASSUMPTIONS["reserve_gib"] * GIB
        before = {"reward_scoring_total_gib": round(scoring_total / GIB, 2)}
        total = max(total, scoring_total)
    if sharded or quant != "none":
        # The saved policy is merged into an unquantized base that the main process loads while the training
        # model is still held (TrainLoop.trained_model).
        saving = weight_bytes + gathered + state_bytes + act * shape.params
        saving_total = saving * (1 + ASSUMPTIONS["fragmentation"]) + ASSUMPTIONS["reserve_gib"] * GIB
        before["saving_total_gib"] = round(saving_total / GIB, 2)
        total = max(total, saving_total)
    gib["total"] = round(total / GIB, 2)
    return {**before,
        "params": shape.params, "trainable_params": trainable,
        "weights_dtype": quant if quant != "none" else ("bf16" if act == 2 and config.use_lora else "fp32"),
        "sharding": config.sharding if sharded else ("none" if gpus == 1 else "none (DDP)"),
        "gradient_checkpointing": config.gradient_checkpointing, "prompt_gradients": config.prompt_gradients,
        "rows_per_micro_batch": rows, "tokens_per_row": length,
        "activations_gib": {"with_checkpointing": round(activations(True) / GIB, 2),
                            "without_checkpointing": round(activations(False) / GIB, 2)},
        "gib": gib,
    }


def make_plan(preset: str | None, gpus: int, gpu_mem_gib: float, phases: list[str] | None = None,
              file: str | Path | None = None, overrides: dict | None = None, model: str | None = None) -> dict:
    """The plan of each phase: per-GPU memory by component, and whether it fits `gpu_mem_gib`."""
    if gpus < 1 or gpu_mem_gib <= 0:
        raise PlanError("--gpus must be at least 1 and --gpu-mem positive")
    phases = phases or list(PHASES)
    first = build_config("1", file, preset, overrides)
    base_name = model or first.init_from
    base_shape, base_source = find_shape(base_name)
    out: dict = {"preset": preset, "gpus": gpus, "gpu_mem_gib": gpu_mem_gib, "assumptions": dict(ASSUMPTIONS),
                 "phases": {}}
    for phase in phases:
        config = build_config(phase, file, preset, overrides)
        shape, source, name = base_shape, base_source, base_name
        if model is None and config.init_from != first.init_from:
            try:
                shape, source = find_shape(config.init_from)
                name = config.init_from
            except PlanError:
                pass  # a phase's input that does not exist yet has phase 1's architecture
        plan = phase_plan(config, phase, shape, gpus)
        plan["model"], plan["shape_from"] = name, source
        plan["shape"] = asdict(shape)
        plan["fits"] = plan["gib"]["total"] <= gpu_mem_gib
        out["phases"][phase] = plan
    out["fits"] = all(p["fits"] for p in out["phases"].values())
    return out


def refusal(plan: dict) -> str:
    """Why a plan does not fit, and what would help; '' when it fits."""
    over = [(phase, p) for phase, p in plan["phases"].items() if not p["fits"]]
    if not over:
        return ""
    lines = [f"phase {phase} needs {p['gib']['total']} GiB per GPU, more than the {plan['gpu_mem_gib']} GiB given "
             f"({', '.join(f'{k} {v}' for k, v in p['gib'].items() if k != 'total')})" for phase, p in over]
    config = next(p for _, p in over)
    hints = ["lower micro_batch_size"]
    if not config["gradient_checkpointing"]:
        hints.append("set gradient_checkpointing=true")
    if config["sharding"] in ("none", "none (DDP)"):
        hints.append("shard over several GPUs (sharding=fsdp)")
    if config["weights_dtype"] not in ("4bit", "8bit"):
        hints.append("load the base in 4 bits (base_quantization=4bit)")
    lines.append("to fit: " + ", ".join(hints))
    return "; ".join(lines)
