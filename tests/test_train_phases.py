"""End-to-end: every phase trains on synthetic data with the tiny model and writes a loadable, documented model;
interrupted runs resume where they stopped; one offline PPO batch improves its objective against a fixed reference."""

from __future__ import annotations

import json
import os
import random
import signal

import pytest
import torch
from typer.testing import CliRunner

from lamforge.schema import parse_action
from lamforge.models.checkpoints import read_metrics
from lamforge.models.loading import load_policy
from lamforge.train.cli import app
from lamforge.train.config import build_config
from lamforge.jsonl import write_jsonl
from lamforge.train.data import encode_records
from lamforge.train.evaluate import generate_reply
from lamforge.train.ppo_offline import AdaptiveKL, ppo_batch, reference_distributions, train_ppo
from lamforge.train.reward import load_reward_model, score_samples, train_reward_model
from lamforge.signals import stop_signals_interrupt
from lamforge.train import runtime
from lamforge.train.runtime import STATE_DIR, TrainingInterrupted, add_lora, make_optimizer
from lamforge.train.selfboost import failed_task_ids
from lamforge.train.sft import train_sft
from lamforge.train.synthetic import synthetic_plan_pairs, synthetic_step_samples


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matmuls are too small to gain from threads, and on a busy machine idle-waiting OpenMP
    threads make them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

def short_steps(n: int, seed: int):
    return synthetic_step_samples(n, seed=seed, min_controls=3, max_controls=6)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Runs phases 1, 2, 3, rm and 4 once, in order, each from the previous one's output."""
    root = tmp_path_factory.mktemp("pipeline")
    steps = short_steps(24, seed=11)
    write_jsonl(root / "plans.jsonl", synthetic_plan_pairs(16, seed=1))
    write_jsonl(root / "steps.jsonl", steps)
    # Exploration results: a success on the first failed task, a failure on the second.
    failed = failed_task_ids(steps)
    explored = [s.model_copy(update={"sample_id": s.sample_id + "-lam2", "success": True, "source": "lam2"})
                for s in steps if s.task_id == failed[0]]
    explored += [s.model_copy(update={"sample_id": s.sample_id + "-lam2", "source": "lam2"}) for s in steps if s.task_id == failed[1]]
    write_jsonl(root / "explored.jsonl", explored)
    config_file = root / "train.toml"
    config_file.write_text(
        f'preset = "tiny"\nruns_dir = "{root / "runs"}"\nmax_steps = 2\neval_generate = 1\nmax_new_tokens = 12\n'
        f'eval_fraction = 0.3\nmax_controls = 4\n'
        f'[phase1]\ntrain_file = "{root / "plans.jsonl"}"\n'
        f'[phase2]\ntrain_file = "{root / "steps.jsonl"}"\n'
        f'[phase3]\ntrain_file = "{root / "steps.jsonl"}"\nnew_samples_file = "{root / "explored.jsonl"}"\n'
        f'eval_loss_examples = 1\n'
        f'[rm]\ntrain_file = "{root / "steps.jsonl"}"\nmax_steps = 3\neval_loss_examples = 3\n'
        f'[phase4]\ntrain_file = "{root / "steps.jsonl"}"\n'
    )
    runner = CliRunner()
    result = runner.invoke(app, ["--phase", "1", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    train_sft(build_config("2", config_file), "2")
    train_sft(build_config("3", config_file), "3")
    train_reward_model(build_config("rm", config_file))
    train_ppo(build_config("4", config_file))
    return {"root": root, "runs": root / "runs", "config": config_file, "steps": steps, "failed": failed}


@pytest.mark.parametrize("name,phase", [("lam1", "1"), ("lam2", "2"), ("lam3", "3"), ("lam4", "4")])
def test_each_policy_is_a_loadable_documented_hf_model(pipeline, name, phase):
    folder = pipeline["runs"] / name
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    assert not (folder / STATE_DIR).exists()  # cleaned up once finished
    card = (folder / "README.md").read_text()
    assert "## Data" in card and "## Settings" in card and "## Metrics" in card
    metrics = read_metrics(folder)
    assert metrics["phase"] == phase and metrics["finished"] and metrics["format"] == "merged"
    assert metrics["training"]["steps"] == 2
    assert "val_loss" in metrics["metrics"]
    model, tokenizer = load_policy(folder)
    messages = pipeline["steps"][0].messages()
    reply = generate_reply(model, tokenizer, messages, max_new_tokens=4)
    # Greedy: the model card's exact-match rates are reproducible from the saved policy.
    assert reply == generate_reply(model, tokenizer, messages, max_new_tokens=4)


def test_every_phase_trains_and_runs_on_the_same_control_filter(pipeline):
    """max_controls, set once for the pipeline, is in every card; the backend and the reward scorer take it from
    there, and training rendered the steps with it (fewer tokens where a step had more controls)."""
    from lamforge.agent.hf_backend import HFBackend, HFBackendConfig
    from lamforge.models.checkpoints import trained_max_controls

    runs = pipeline["runs"]
    assert [trained_max_controls(runs / n) for n in ("lam1", "lam2", "lam3", "rm", "lam4")] == [4] * 5
    assert HFBackend(HFBackendConfig(model=str(runs / "lam2"), device="cpu")).max_controls == 4
    model, tokenizer = load_policy(runs / "lam2")
    steps = pipeline["steps"]
    assert any(len(s.state.observation.controls) > 4 for s in steps)
    shown, whole = encode_records(tokenizer, steps, 10**9, 4), encode_records(tokenizer, steps, 10**9)
    assert shown.tokens < whole.tokens
    assert max(len(r.record.state.shown(4).observation.controls) for r in shown.examples) == 4


def test_phase_chain_starts_each_phase_from_the_previous(pipeline):
    runs = pipeline["runs"]
    assert read_metrics(runs / "lam1")["config"]["init_from"] == "tiny"
    assert read_metrics(runs / "lam2")["config"]["init_from"] == str(runs / "lam1")
    assert read_metrics(runs / "lam3")["config"]["init_from"] == str(runs / "lam2")
    assert read_metrics(runs / "rm")["config"]["init_from"] == str(runs / "lam3")
    assert read_metrics(runs / "lam4")["config"]["reward_model"] == str(runs / "rm")


def test_phase3_reports_recovered_tasks(pipeline):
    metrics = read_metrics(pipeline["runs"] / "lam3")
    assert metrics["metrics"]["self_boosting_failed_tasks"] == len(pipeline["failed"])
    assert metrics["metrics"]["self_boosting_attempted_tasks"] == 2
    assert metrics["metrics"]["self_boosting_recovered_tasks"] == 1
    assert metrics["metrics"]["self_boosting_new_successful_steps"] == 2
    # The validation loss is capped at eval_loss_examples (a full pass costs more than training on CPU).
    assert metrics["metrics"]["val_loss_examples"] == 1 < metrics["metrics"]["held_out_examples"]
    assert read_metrics(pipeline["runs"] / "lam2")["metrics"]["val_loss_examples"] == read_metrics(pipeline["runs"] / "lam2")["metrics"]["held_out_examples"]
    assert "recovered 1 of" in (pipeline["runs"] / "lam3" / "README.md").read_text()


def test_reward_model_scores_are_probabilities(pipeline):
    folder = pipeline["runs"] / "rm"
    assert (folder / "adapter_config.json").exists()
    metrics = read_metrics(folder)["metrics"]
    assert metrics["held_out_scored"] == 3 < metrics["held_out_steps"]
    # Accuracy over the scored steps only: a whole number of the 3, each a positive or a negative.
    assert metrics["held_out_positives"] + metrics["held_out_negatives"] == 3
    assert metrics["held_out_accuracy"] * 3 == pytest.approx(round(metrics["held_out_accuracy"] * 3))
    model, tokenizer = load_reward_model(folder)
    scores = score_samples(model, pipeline["steps"][:5], tokenizer, max_controls=4)  # as the card says
    assert len(scores) == 5 and all(0.0 < s < 1.0 for s in scores)
    assert len(set(round(s, 6) for s in scores)) > 1  # the head reads the input
    # The same samples, so the same micro-batches: under bf16 autocast padding shifts scores by ~1e-4. A folder is
    # scored with the controls its card says it was trained on.
    assert score_samples(folder, pipeline["steps"][:5]) == pytest.approx(scores, abs=1e-5)


def test_ppo_history_records_kl_to_reference(pipeline):
    metrics = read_metrics(pipeline["runs"] / "lam4")
    history = metrics["history"]
    assert len(history) == 2
    assert history[0]["kl_to_ref_before"] == pytest.approx(0.0, abs=1e-6)  # starts at LAM3
    assert all(h["kl_to_ref"] >= 0 for h in history)
    assert metrics["metrics"]["final_kl_coef"] > 0


def test_ppo_batch_improves_objective_and_keeps_reference_fixed(pipeline):
    config = build_config("4", pipeline["config"], overrides={"ppo_epochs": 3, "mini_batch_size": 1, "learning_rate": 3e-3})
    tokenizer = load_policy(pipeline["runs"] / "lam3")[1]
    torch.manual_seed(0)
    model = add_lora(load_policy(pipeline["runs"] / "lam3")[0], config)
    optimizer = make_optimizer(model, config.learning_rate)
    failed = [s for s in pipeline["steps"] if not s.success][:3]
    examples = encode_records(tokenizer, failed, 4096).examples
    encoded = [e.encoded for e in examples]
    device = torch.device("cpu")
    ref_before = reference_distributions(model, encoded, tokenizer.pad_token_id, device, False, True)
    stats = ppo_batch(model, optimizer, examples, [0.5, -0.5, 0.25], AdaptiveKL(0.01, 0.1, 10000), config,
                      tokenizer.pad_token_id, device, False, random.Random(0))
    assert stats["kl_to_ref_before"] == pytest.approx(0.0, abs=1e-6)
    assert stats["kl_to_ref"] > 0
    assert stats["surrogate_after"] < stats["surrogate_before"]
    ref_after = reference_distributions(model, encoded, tokenizer.pad_token_id, device, False, True)
    for a, b in zip(ref_before, ref_after):
        assert torch.allclose(a, b, atol=1e-6)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_interrupted_training_resumes_from_the_saved_step(pipeline, tmp_path):
    overrides = {"train_file": str(pipeline["root"] / "steps.jsonl"), "max_steps": 4, "save_every": 100,
                 "eval_generate": 0, "init_from": "tiny"}
    straight = build_config("2", preset="tiny", overrides={**overrides, "output_dir": str(tmp_path / "straight")})
    train_sft(straight, "2")
    resumed = build_config("2", preset="tiny", overrides={**overrides, "output_dir": str(tmp_path / "resumed")})
    with pytest.raises(TrainingInterrupted) as stop:
        train_sft(resumed, "2", stop_after=1)
    assert stop.value.step == 1
    assert (tmp_path / "resumed" / STATE_DIR / "model.safetensors").exists()  # accelerate's save_state folder
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    train_sft(resumed, "2")
    metrics = read_metrics(tmp_path / "resumed")
    assert metrics["training"]["resumed_from_step"] == 1
    assert len(metrics["losses"]) == 4
    assert metrics["losses"] == pytest.approx(read_metrics(tmp_path / "straight")["losses"], rel=1e-4)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_resume_refuses_a_start_model_trained_again_at_the_same_path(pipeline, tmp_path):
    overrides = {"train_file": str(pipeline["root"] / "steps.jsonl"), "max_steps": 2, "save_every": 100,
                 "eval_generate": 0, "eval_loss_examples": 1}
    start = tmp_path / "lam1"
    train_sft(build_config("2", preset="tiny", overrides={**overrides, "init_from": "tiny", "output_dir": str(start)}), "2")
    config = build_config("2", preset="tiny", overrides={**overrides, "init_from": str(start),
                                                         "output_dir": str(tmp_path / "lam2")})
    with pytest.raises(TrainingInterrupted):
        train_sft(config, "2", stop_after=1)
    card = start / "metrics.json"
    card.write_text(card.read_text().replace("{", '{"trained": "again", ', 1))  # a new card: LAM1 trained again
    with pytest.raises(RuntimeError, match=f"training from an earlier {start}, which was trained again since; delete"):
        train_sft(config, "2")


def test_kept_layer_states_train_the_same_model_and_survive_a_resume(pipeline, tmp_path):
    """LoRA on the top layer only, two epochs: later draws start from the kept states of layer 0's output. The run
    stops after its first epoch and resumes; its losses and weights are those of a run that keeps nothing."""
    overrides = {"train_file": str(pipeline["root"] / "steps.jsonl"), "max_steps": 0, "epochs": 2, "batch_size": 8,
                 "micro_batch_size": 4, "save_every": 100, "eval_generate": 0, "init_from": "tiny", "lora_layers": 1,
                 "share_prefix": True}
    plain = build_config("2", preset="tiny", overrides={**overrides, "keep_layer_states": False,
                                                        "output_dir": str(tmp_path / "plain")})
    train_sft(plain, "2")
    kept = build_config("2", preset="tiny", overrides={**overrides, "output_dir": str(tmp_path / "kept")})
    with pytest.raises(TrainingInterrupted):
        train_sft(kept, "2", stop_after=2)
    assert len(list((tmp_path / "kept" / "layer_states").glob("*.pt"))) >= 8
    train_sft(kept, "2")
    card = read_metrics(tmp_path / "kept")
    states = card["training"]["layer_states"]
    assert states["draws_from_cache"] > 0 and states["first_layer"] == 1
    assert "layer_states" not in read_metrics(tmp_path / "plain")["training"]
    assert not (tmp_path / "kept" / "layer_states").exists()  # removed with the resume state
    assert card["losses"] == pytest.approx(read_metrics(tmp_path / "plain")["losses"], rel=1e-4)
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "kept")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_saves_the_resume_state_like_ctrl_c(pipeline, tmp_path, monkeypatch, stop):
    """`kill` (SIGTERM) or a closed terminal (SIGHUP) after the second update: the run saves at update 2, not at its
    last periodic save (none here), and resumes from there. Without the handler the signal ends this process."""
    updates = []
    update = runtime.Meter.update

    def update_then_signal(meter, loss, tokens):
        update(meter, loss, tokens)
        updates.append(loss)
        if len(updates) == 2:
            os.kill(os.getpid(), stop)

    monkeypatch.setattr(runtime.Meter, "update", update_then_signal)
    # The loop takes over only a signal left at its default action; a test run started under `nohup` ignores SIGHUP.
    previous = signal.signal(stop, signal.SIG_DFL)
    overrides = {"train_file": str(pipeline["root"] / "steps.jsonl"), "max_steps": 4, "save_every": 100,
                 "eval_generate": 0, "init_from": "tiny", "output_dir": str(tmp_path / "run")}
    config = build_config("2", preset="tiny", overrides=overrides)
    with pytest.raises(TrainingInterrupted) as stopped:
        train_sft(config, "2")
    assert stopped.value.step == 2
    assert (tmp_path / "run" / STATE_DIR / "model.safetensors").exists()
    assert signal.getsignal(stop) is signal.SIG_DFL  # the handler is the training loop's only
    signal.signal(stop, previous)
    monkeypatch.setattr(runtime.Meter, "update", update)
    train_sft(config, "2")
    assert read_metrics(tmp_path / "run")["training"]["resumed_from_step"] == 2


def test_a_stop_after_the_last_update_keeps_every_update(pipeline, tmp_path, monkeypatch):
    """The held-out evaluation and the export after the last update take minutes on a CPU; a stop there resumes at
    the end instead of redoing the updates since the last periodic save (all four here)."""
    import lamforge.train.sft as sft

    overrides = {"train_file": str(pipeline["root"] / "steps.jsonl"), "max_steps": 4, "save_every": 100,
                 "eval_generate": 0, "init_from": "tiny", "output_dir": str(tmp_path / "run")}
    config = build_config("2", preset="tiny", overrides=overrides)
    evaluate = sft.evaluate_policy

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sft, "evaluate_policy", stopped)
    with pytest.raises(KeyboardInterrupt):
        train_sft(config, "2")
    assert (tmp_path / "run" / STATE_DIR / "model.safetensors").exists()
    monkeypatch.setattr(sft, "evaluate_policy", evaluate)
    train_sft(config, "2")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["training"]["resumed_from_step"] == 4 and len(metrics["losses"]) == 4
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if "train_state" in p.name) == []


def test_a_stop_signal_keeps_a_callers_own_handler():
    """A notebook or a service that handles SIGTERM itself keeps its handler while lamforge trains."""
    own = lambda signum, frame: None  # noqa: E731
    before = signal.signal(signal.SIGTERM, own)
    try:
        with stop_signals_interrupt():
            assert signal.getsignal(signal.SIGTERM) is own
            assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, before)


def test_cli_says_how_to_resume_an_interrupted_phase(monkeypatch, tmp_path):
    """Ctrl-C or a stop signal in a training phase of `lamforge pipeline` is a pause, not an error."""
    import lamforge.pipeline
    from lamforge.cli import app as lamforge_app

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted(300, tmp_path / "models" / "lam2")

    monkeypatch.setattr(lamforge.pipeline, "run_pipeline", interrupted)
    result = CliRunner().invoke(lamforge_app, ["pipeline", "--out", str(tmp_path)])
    assert result.exit_code == 130
    assert (f"warning: stopped; the resume state in {tmp_path / 'models' / 'lam2' / STATE_DIR} continues from step "
            "300; run the same command to resume") in result.output
    assert "error" not in result.output


def test_pipeline_refuses_an_unknown_dtype_before_any_stage(tmp_path):
    from lamforge.cli import app as lamforge_app

    result = CliRunner().invoke(lamforge_app, ["pipeline", "--preset", "tiny", "--out", str(tmp_path / "run"),
                                               "--dtype", "float7"])
    assert result.exit_code == 1 and "unknown dtype 'float7'" in result.output
    assert not (tmp_path / "run").exists()


def test_pipeline_document_draws_is_a_run_setting(tmp_path):
    """--document-draws replaces the preset's: a run folder made with another count is refused before any stage."""
    from lamforge.cli import app as lamforge_app
    from lamforge.pipeline import PRESETS, check_same_settings

    run = tmp_path / "run"
    run.mkdir()
    check_same_settings(run, PRESETS["tiny"])  # a tiny run folder on the registry's documents
    result = CliRunner().invoke(lamforge_app, ["pipeline", "--preset", "tiny", "--out", str(run),
                                               "--document-draws", "3"])
    assert result.exit_code == 1 and "other settings (document_draws;" in result.output
    assert sorted(p.name for p in run.iterdir()) == ["data", "pipeline.json"]
    result = CliRunner().invoke(lamforge_app, ["pipeline", "--preset", "tiny", "--out", str(run),
                                               "--document-draws", "0"])
    assert result.exit_code == 2 and "document-draws" in result.output


def test_resume_refuses_a_changed_config(pipeline, tmp_path):
    overrides = {"train_file": str(pipeline["root"] / "steps.jsonl"), "max_steps": 3, "eval_generate": 0,
                 "init_from": "tiny", "output_dir": str(tmp_path / "run")}
    with pytest.raises(TrainingInterrupted):
        train_sft(build_config("2", preset="tiny", overrides=overrides), "2", stop_after=1)
    changed = build_config("2", preset="tiny", overrides={**overrides, "learning_rate": 0.5})
    with pytest.raises(RuntimeError, match="learning_rate"):
        train_sft(changed, "2")


def test_cli_reports_missing_data_without_a_traceback(tmp_path):
    result = CliRunner().invoke(app, ["--phase", "2", "--preset", "tiny", "--set", f"train_file={tmp_path / 'none.jsonl'}",
                                      "--set", f"runs_dir={tmp_path}"])
    assert result.exit_code == 1
    assert "data file not found" in result.output
    assert "Traceback" not in result.output


def test_cli_reports_a_bad_family_weights_file_before_loading_a_model(tmp_path):
    weights = tmp_path / "weights.json"
    weights.write_text('{"bold": "high"}')
    result = CliRunner().invoke(app, ["--phase", "2", "--preset", "tiny", "--set", f"family_weights={weights}",
                                      "--set", f"train_file={tmp_path / 'none.jsonl'}", "--set", f"runs_dir={tmp_path}"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: family_weights {weights}: expected {{family: weight >= 0}}" in result.output


def test_show_config_prints_resolved_json():
    result = CliRunner().invoke(app, ["show-config", "--phase", "4", "--preset", "tiny"])
    assert result.exit_code == 0
    config = json.loads(result.output)
    assert config["init_kl_coef"] == 0.2 and config["init_from"].endswith("lam3")


@pytest.mark.slow
def test_real_default_model_trains_a_step_and_decodes(tmp_path):
    """SmolLM2-135M-Instruct (converted from the GGUF on first use): two phase-2 steps, a loadable LAM2 that emits
    a parsable action or at least text."""
    samples = synthetic_step_samples(12, seed=3)
    write_jsonl(tmp_path / "steps.jsonl", samples)
    config = build_config("2", preset="quick", overrides={
        "train_file": str(tmp_path / "steps.jsonl"), "init_from": "default", "output_dir": str(tmp_path / "lam2"),
        "max_steps": 2, "batch_size": 4, "eval_generate": 1, "max_new_tokens": 80})
    out = train_sft(config, "2")
    metrics = read_metrics(out)
    assert metrics["training"]["first_loss"] < 5  # a pretrained model, not a random one
    model, tokenizer = load_policy(out)
    reply = generate_reply(model, tokenizer, samples[0].messages, max_new_tokens=80)
    try:
        parse_action(reply)
    except ValueError:
        pass  # two steps need not teach the format; the check is that the pipeline runs on the real model
    assert reply.strip()
