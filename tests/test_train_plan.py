"""`lamforge train plan`: memory per GPU before anything is loaded. The full preset fits one 80 GB GPU and 8
sharded; a plan that cannot fit is refused; the model's shape and the activation count agree with the real model
and with what autograd keeps."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from lamforge.models import base_model, loading
from lamforge.train import runtime
from lamforge.train.batching import make_micro_batch, target_loss_sum
from lamforge.train.cli import app
from lamforge.train.config import SFTConfig
from lamforge.train.distributed import recompute_activations
from lamforge.models.formatting import encode_example
from lamforge.train.plan import GIB, KNOWN_SHAPES, activation_bytes_per_token, find_shape, make_plan
from lamforge.train.synthetic import synthetic_step_samples

from helpers import saved_in_layers

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"


@pytest.fixture
def nothing_loads(monkeypatch):
    """A plan reads shapes and does arithmetic: loading a model or tokenizer fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the plan loaded a model")

    monkeypatch.setattr(loading, "load_model", refuse)
    monkeypatch.setattr(loading, "load_tokenizer", refuse)
    monkeypatch.setattr(base_model, "ensure_default_model", refuse)


def test_full_preset_fits_one_80gb_gpu_and_eight_sharded(nothing_loads):
    result = CliRunner().invoke(app, ["plan", "--preset", "full", "--gpus", "1", "--gpu-mem", "80", "--json"])
    assert result.exit_code == 0, result.output
    one = json.loads(result.output[result.output.index("{"):])
    assert one["fits"] and set(one["phases"]) == {"1", "2", "3", "rm", "4"}
    two = one["phases"]["2"]
    assert two["model"] == MISTRAL and two["params"] == KNOWN_SHAPES[MISTRAL].params
    assert two["gib"]["weights"] == pytest.approx(two["params"] * 2 / GIB, abs=0.01)  # bf16
    assert two["trainable_params"] == KNOWN_SHAPES[MISTRAL].lora_params(64)
    assert two["gradient_checkpointing"] and two["rows_per_micro_batch"] == 2 and two["tokens_per_row"] == 4096
    assert two["activations_gib"]["with_checkpointing"] < 0.4 * two["activations_gib"]["without_checkpointing"]
    eight = make_plan("full", 8, 80, overrides={"sharding": "fsdp"})
    assert eight["fits"]
    sharded = eight["phases"]["2"]
    assert sharded["sharding"] == "fsdp"
    assert sharded["gib"]["weights"] < two["gib"]["weights"] / 4  # 1/8 of the weights plus the gathered layers
    assert sharded["gib"]["trainable_state"] == pytest.approx(two["gib"]["trainable_state"] / 8, abs=0.01)


def test_a_plan_that_cannot_fit_is_refused_with_what_to_change(nothing_loads):
    # The full preset as it was: micro-batches of 8 rows, every activation kept.
    result = CliRunner().invoke(app, ["plan", "--preset", "full", "--gpus", "1", "--gpu-mem", "80", "--phase", "2",
                                      "--set", "micro_batch_size=8", "--set", "gradient_checkpointing=false"])
    assert result.exit_code == 1
    assert "phase 2 needs" in result.output and "set gradient_checkpointing=true" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["plan", "--model", "no/such-model", "--gpus", "1"])
    assert result.exit_code == 1 and "no shape for model" in result.output


def test_shape_read_from_a_local_config_matches_the_real_model():
    folder = base_model.ensure_tiny_model()
    shape, source = find_shape(str(folder))
    assert source.endswith("config.json")
    model = loading.load_model(str(folder))
    assert shape.params == sum(p.numel() for p in model.parameters())
    lora = runtime.add_lora(model, SFTConfig(lora_r=4, lora_alpha=8))
    assert shape.lora_params(4) == sum(p.numel() for p in lora.parameters() if p.requires_grad)
    mistral = KNOWN_SHAPES[MISTRAL]
    assert round(mistral.params / 1e9, 2) == 7.25  # Mistral-7B-v0.3 as published


@pytest.mark.parametrize("recompute", [False, True])
def test_activation_count_is_what_autograd_keeps(recompute):
    """On CPU in fp32, one plain pass (no shared prefix, so no mask and grouped K/V stay grouped): the bytes
    autograd keeps in the decoder layers equal the plan's count per token, exactly. (bf16 on a GPU differs only in
    the bytes per activation and a separate fp32 copy in each norm, which the count takes from `act`.)"""
    torch.set_num_threads(1)
    tokenizer = loading.load_tokenizer("tiny")
    samples = synthetic_step_samples(2, seed=7, min_controls=3, max_controls=9)
    batch = make_micro_batch([encode_example(tokenizer, s.messages(), s.target) for s in samples],
                             tokenizer.pad_token_id, share_prefix=False)
    model = runtime.add_lora(loading.load_model("tiny"), SFTConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0))
    if recompute:
        recompute_activations(model)
    with saved_in_layers(model) as kept:
        target_loss_sum(model, batch)
    shape, _ = find_shape("tiny")
    tokens = batch.branches[0].input_ids.numel()  # right-padded rows
    rotary = 2 * tokens * shape.q_dim // shape.heads * 4  # cos and sin, computed once and shared by every layer
    counted = activation_bytes_per_token(shape, 4, 4, recompute, expanded_kv=False)
    assert (sum(kept.values()) - rotary) / tokens == counted
