"""Training on N processes (accelerate; DDP over gloo on this CPU): 2 processes train the tiny model on the same
global batches as 1 and give the same losses and weights; a run interrupted on one number of processes resumes
on another; activation recomputation keeps the loss and gradients and keeps fewer tensors; settings this machine
cannot honour fail with a message.

Tolerance of 2 processes against 1 (fp32, LoRA dropout 0 so that no random mask depends on which process a row
lands on): losses within 1e-5 relative, weights within 1e-5 absolute. They differ only in the order float sums are
taken (gradients summed across processes); measured differences are ~1e-7 and ~1e-8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lamforge.models import loading
from lamforge.train import distributed, runtime
from lamforge.train.batching import make_micro_batch, target_loss_sum
from lamforge.models.checkpoints import read_metrics
from lamforge.train.cli import app
from lamforge.train.config import SFTConfig, build_config
from lamforge.jsonl import write_jsonl
from lamforge.models.formatting import encode_example
from lamforge.train.ppo_offline import train_ppo
from lamforge.train.reward import train_reward_model
from lamforge.train.runtime import STATE_DIR, TrainingInterrupted
from lamforge.train.sft import train_sft
from lamforge.train.synthetic import synthetic_step_samples

from helpers import saved_in_layers

LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
WORKER = Path(__file__).with_name("train_worker.py")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_shard_gives_each_process_a_contiguous_near_equal_share():
    rows = list(range(7))
    shares = [distributed.shard(rows, r, 3) for r in range(3)]
    assert shares == [[0, 1, 2], [3, 4], [5, 6]]
    assert distributed.shard([5], 1, 2) == []  # a batch smaller than the process count leaves a process empty
    # Every process runs as many micro-batches as the busiest, at least one.
    assert distributed.micro_batch_count(rows, 3, 2) == 2
    assert distributed.micro_batch_count([5], 2, 2) == 1


@pytest.mark.parametrize("prompt_gradients", [True, False])
def test_recomputed_activations_keep_loss_and_gradients_and_keep_fewer_tensors(prompt_gradients):
    tokenizer = loading.load_tokenizer("tiny")
    samples = synthetic_step_samples(3, seed=7, min_controls=3, max_controls=9)
    batch = make_micro_batch([encode_example(tokenizer, s.messages(), s.target) for s in samples],
                             tokenizer.pad_token_id, prompt_gradients=prompt_gradients)

    def run(recompute: bool):
        torch.manual_seed(0)
        model = runtime.add_lora(loading.load_model("tiny"), SFTConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0))
        with torch.no_grad():  # a non-zero B, so gradients reach every LoRA matrix
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.02)
        if recompute:
            assert distributed.recompute_activations(model) == 3 * len(distributed.decoder_of(model).layers)
        with saved_in_layers(model) as kept:
            loss, _ = target_loss_sum(model, batch)
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        return float(loss.detach()), grads, sum(kept.values())

    loss, grads, kept = run(False)
    loss_r, grads_r, kept_r = run(True)
    assert loss_r == loss
    assert all(torch.equal(grads[n], grads_r[n]) for n in grads)
    # With prompt gradients every token's norms and MLP are recomputed (measured: 67% of the tensors kept); with
    # a frozen prompt most of what is kept is the prompt's K/V, which recomputation leaves alone (82%).
    assert kept_r < (0.75 if prompt_gradients else 0.9) * kept


def _cli(args):
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_settings_this_machine_cannot_honour_fail_with_a_message(tmp_path):
    write_jsonl(tmp_path / "steps.jsonl", synthetic_step_samples(4, seed=1))
    base = ["--phase", "2", "--preset", "tiny", "--set", f"train_file={tmp_path / 'steps.jsonl'}",
            "--set", f"runs_dir={tmp_path}", "--set", "init_from=tiny"]
    code, output = _cli(base + ["--set", "sharding=fsdp"])
    assert code == 1 and "needs GPUs" in output and "Traceback" not in output
    code, output = _cli(base + ["--set", "base_quantization=4bit"])
    assert code == 1 and "bitsandbytes" in output and "Traceback" not in output
    code, output = _cli(base + ["--set", "sharding=ddp"])
    assert code == 1 and "sharding: expected one of none, fsdp, zero3" in output
    with pytest.raises(distributed.SetupError, match="deepspeed"):
        distributed.zero3_plugin(SFTConfig(), bf16=False)
    plugin = distributed.fsdp_plugin()  # what sharding = 'fsdp' hands to accelerate on a GPU machine
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward


def _launch(tmp_path: Path, commands: list[list[str]]) -> list[int]:
    """Run `commands` in a 2-process gloo group (torchrun); returns each command's exit code (the same on both)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LAMFORGE_NO_PROGRESS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(WORKER), json.dumps(commands)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reports = [json.loads((tmp_path / f"exit-codes-{rank}.json").read_text()) for rank in (0, 1)]
    assert reports[0] == reports[1]
    return reports[0]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.long
def test_two_processes_match_one_and_resume_across_process_counts(tmp_path):
    """One launch of 2 processes covers SFT, the reward model and PPO. Phase 2 runs 1 process (step 1), then 2
    (steps 2-5, resumed from the 1-process state, stopped), then 1 again (step 6, resumed from the 2-process
    state); its losses and final weights must equal a straight 1-process run's. The reward model and PPO run
    whole on 2 processes against 1."""
    write_jsonl(tmp_path / "steps.jsonl", synthetic_step_samples(24, seed=11, min_controls=3, max_controls=6))
    common = {"train_file": str(tmp_path / "steps.jsonl"), "init_from": "tiny", "lora_dropout": 0.0, "bf16": "false",
              "num_threads": 1, "eval_generate": 0, "eval_loss_examples": 2, "save_every": 100}
    sft = {**common, "max_steps": 6}
    rm = {**common, "max_steps": 3}

    def config(phase, name, values):
        return build_config(phase, preset="tiny", overrides={**values, "output_dir": str(tmp_path / name)})

    train_sft(config("2", "sft-1", sft), "2")
    with pytest.raises(TrainingInterrupted):
        train_sft(config("2", "sft-mixed", sft), "2", stop_after=1)
    train_reward_model(config("rm", "rm-1", rm))
    ppo = {**common, "max_steps": 2, "reward_model": str(tmp_path / "rm-1")}
    train_ppo(config("4", "ppo-1", ppo))

    def cli(phase, name, values, *extra):
        sets = [arg for key, value in {**values, "output_dir": str(tmp_path / name)}.items()
                for arg in ("--set", f"{key}={value}")]
        return ["train", "--phase", phase, "--preset", "tiny", *sets, *extra]

    codes = _launch(tmp_path, [cli("2", "sft-mixed", sft, "--stop-after", "4"), cli("rm", "rm-2", rm),
                               cli("4", "ppo-2", ppo)])
    assert codes == [130, 0, 0]  # 130: stopped with the resume state saved
    assert (tmp_path / "sft-mixed" / STATE_DIR).is_dir()
    train_sft(config("2", "sft-mixed", sft), "2")

    straight, mixed = read_metrics(tmp_path / "sft-1"), read_metrics(tmp_path / "sft-mixed")
    assert mixed["training"]["resumed_from_step"] == 5 and mixed["training"]["processes"] == 1
    assert mixed["losses"] == pytest.approx(straight["losses"], rel=LOSS_RTOL)
    a, b = _weights(tmp_path / "sft-1"), _weights(tmp_path / "sft-mixed")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=WEIGHT_ATOL, rtol=0) for k in a)

    rm_1, rm_2 = read_metrics(tmp_path / "rm-1"), read_metrics(tmp_path / "rm-2")
    assert rm_2["training"]["processes"] == 2 and rm_2["training"]["distributed"] == "MULTI_CPU"
    assert rm_2["losses"] == pytest.approx(rm_1["losses"], rel=LOSS_RTOL)
    assert rm_2["metrics"]["held_out_accuracy"] == rm_1["metrics"]["held_out_accuracy"]

    ppo_1, ppo_2 = read_metrics(tmp_path / "ppo-1")["history"], read_metrics(tmp_path / "ppo-2")["history"]
    assert len(ppo_1) == len(ppo_2) == 2
    for one, two in zip(ppo_1, ppo_2):
        assert two["ppo_loss"] == pytest.approx(one["ppo_loss"], rel=LOSS_RTOL, abs=1e-8)
        assert two["kl_to_ref"] == pytest.approx(one["kl_to_ref"], rel=1e-3, abs=1e-9)
        assert two["surrogate_after"] == pytest.approx(one["surrogate_after"], rel=LOSS_RTOL, abs=1e-8)
    a, b = _weights(tmp_path / "ppo-1"), _weights(tmp_path / "ppo-2")
    assert all(torch.allclose(a[k], b[k], atol=WEIGHT_ATOL, rtol=0) for k in a)
    # The model card and weights are written once, by the main process: no second copy, no leftover state.
    assert not (tmp_path / "ppo-2" / STATE_DIR).exists()
    files = [sorted(p.name for p in (tmp_path / name).iterdir()) for name in ("rm-1", "rm-2")]
    assert files[0] == files[1]
