"""Reworded copies of step samples (data/reworded.py): the same state and action asked another way, never the
held-out phrasing, values verbatim, and kept in one training batch with their step."""

from __future__ import annotations

import pytest

from lamforge.data.reworded import MARK, rephrase_samples
from lamforge.records import StepSample, StepState
from lamforge.schema import Observation
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.phrasing import argument_keys, phrasing_key
from lamforge.tasks.splits import sample_instances
from lamforge.train.data import prefix_group
from lamforge.train.runtime import batch_schedule


@pytest.fixture(scope="module")
def recorded():
    """Two-step 'trajectories' of 150 train instances, the last one failed."""
    instances = sample_instances("train", 150)
    samples, trajectories = [], []
    for n, instance in enumerate(instances):
        success = n != len(instances) - 1
        tid = f"{instance.task_id}-oracle-a1"
        trajectories.append({"trajectory_id": tid, "family": instance.family, "params": instance.params})
        for step in (1, 2):
            state = StepState(task=instance.instruction, step=step, observation=Observation())
            samples.append(StepSample(sample_id=f"{tid}-s{step}", trajectory_id=tid, task_id=instance.task_id,
                                      family=instance.family, state=state, success=success, source="oracle",
                                      target='{"function": "summary", "args": {}, "status": "FINISH"}'))
    return instances, samples, trajectories


def test_copies_change_only_the_request_and_never_to_the_held_out_phrasing(recorded):
    instances, samples, trajectories = recorded
    out = rephrase_samples(samples, trajectories, copies=2)
    assert out == rephrase_samples(samples, trajectories, copies=2)  # deterministic
    by_id = {s.sample_id: s for s in samples}
    by_task = {i.task_id: i for i in instances}
    copies = [s for s in out if MARK in s.sample_id]
    assert len(copies) > 1.8 * (len(samples) - 2)  # nearly every family has two more wordings
    for copy in copies:
        original = by_id[copy.sample_id.split(MARK)[0]]
        instance = by_task[copy.task_id]
        family = REGISTRY[instance.family]
        assert copy.target == original.target and copy.state.observation == original.state.observation
        assert copy.state.step == original.state.step and copy.source == "oracle+reworded"
        assert phrasing_key(copy.task) != phrasing_key(original.task)
        assert phrasing_key(copy.task) != phrasing_key(family.instruction(instance.params, len(family.phrasings) - 1))
        for key in argument_keys(family.phrasings):  # the request's arguments, verbatim
            assert str(instance.params[key]) in copy.task, (copy.task, key)
    # Every step of a trajectory is asked the same way, as a user asks once.
    first = {s.sample_id: s.task for s in copies if s.state.step == 1}
    for s in copies:
        if s.state.step == 2:
            assert s.task == first[s.sample_id.replace("-s2", "-s1")]


def test_failed_and_unknown_trajectories_get_no_copies(recorded):
    _, samples, trajectories = recorded
    failed = [s for s in samples if not s.success]
    assert rephrase_samples(failed, trajectories, copies=2) == failed
    assert rephrase_samples(samples[:4], [], copies=2) == samples[:4]  # no parameters recorded: nothing to reword
    assert rephrase_samples(samples[:4], trajectories, copies=0) == samples[:4]


def test_a_step_and_its_copy_train_in_the_same_batch(recorded):
    _, samples, trajectories = recorded
    out = rephrase_samples(samples[:40], trajectories, copies=1)
    assert len(out) == 80
    steps = batch_schedule(len(out), 4, 1, seed=0, groups=[prefix_group(s) for s in out])
    batch_of = {i: b for b, rows in enumerate(steps) for i in rows}
    for i, sample in enumerate(out):
        if MARK in sample.sample_id:
            assert batch_of[i] == batch_of[i - 1]  # the copy follows its step in `out`


def test_data_reword_writes_the_training_file_from_run_folders(recorded, tmp_path):
    from typer.testing import CliRunner

    from lamforge.cli import app
    from lamforge.jsonl import read_jsonl, write_jsonl

    _, samples, trajectories = recorded
    folder = tmp_path / "oracle"
    folder.mkdir()
    write_jsonl(folder / "samples.jsonl", samples[:10])
    write_jsonl(folder / "trajectories.jsonl", trajectories)
    out = tmp_path / "train.jsonl"
    result = CliRunner().invoke(app, ["data", "reword", str(folder), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    written = read_jsonl(out, StepSample)
    assert len(written) == 20 and [s.sample_id for s in written[::2]] == [s.sample_id for s in samples[:10]]
    result = CliRunner().invoke(app, ["data", "reword", str(tmp_path / "nothing"), "--out", str(out)])
    assert result.exit_code == 1
    assert f"error: no samples.jsonl in {tmp_path / 'nothing'} (not a `data collect` run folder)\n" in result.output
