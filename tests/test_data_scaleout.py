"""Collection spread out: Ray actors (one office each) with a single, idempotent writer; shards merged without Ray."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lamforge.cli import app
from lamforge.data.collect import CollectConfig, collect
from lamforge.data.ray_rollouts import gpu_share_per_actor
from lamforge.data.shards import MergeRefused, merge_runs, parse_shard
from lamforge.tasks.splits import sample_instances

pytestmark = pytest.mark.office
FAMILIES = ["bold", "align", "line_spacing"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _assert_whole(out: Path, n: int) -> list[str]:
    """n tasks, each once, and exactly the samples of their steps."""
    records = _lines(out / "trajectories.jsonl")
    ids = [r["task_id"] for r in records]
    assert len(ids) == len(set(ids)) == n
    samples = _lines(out / "samples.jsonl")
    assert len({s["sample_id"] for s in samples}) == len(samples) == sum(len(r["steps"]) for r in records)
    assert {s["task_id"] for s in samples} == set(ids)
    return ids


@pytest.mark.long
def test_ray_actors_collect_and_a_killed_actor_loses_and_duplicates_nothing(tmp_path, ray_env):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lamforge.cli", "data", "collect", "--ray", "local", "--workers", "2", "--n", "6",
           "--out", str(out), "--json"] + sum((["--family", f] for f in FAMILIES), [])
    env = dict(ray_env, DISPLAY="")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        trajectories = out / "trajectories.jsonl"
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if trajectories.exists() and trajectories.read_text().count("\n") >= 1:
                break
            time.sleep(0.2)
        actors = {pid: cmd for pid, cmd in _descendants(proc.pid).items() if cmd.startswith("ray::RolloutActor")}
        assert len(actors) == 2, actors
        victim = sorted(actors)[0]
        offices = [pid for pid, cmd in _descendants(victim).items() if "soffice" in cmd]
        assert offices  # the actor owns its office
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    # Ray restarted the actor and retried its task: the run still ends whole.
    assert json.loads(stdout)["tasks"] == 6
    ids = _assert_whole(out, 6)
    assert set(ids) == {i.task_id for i in sample_instances("train", 6, families=FAMILIES)}
    assert not any(_alive(pid) for pid in [victim, *offices])  # the killed actor took its office with it
    assert not (out / "files").exists()  # actors save task files in their own scratch folders, not the run folder
    # A rerun finds everything there and writes nothing twice.
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["this_run"]["tasks"] == 0
    assert _assert_whole(out, 6) == ids


@pytest.mark.long
def test_shards_collect_disjoint_shares_and_merge_once(tmp_path):
    with pytest.raises(ValueError, match="0 <= i < n"):
        parse_shard("2/2")
    shards = [tmp_path / "s0", tmp_path / "s1"]
    for i, folder in enumerate(shards):
        summary = collect(CollectConfig(out=folder, n=3, workers=1, families=FAMILIES, shard=f"{i}/2"),
                          show_progress=False)
        assert summary["shard"] == f"{i}/2"
    share = [{r["task_id"] for r in _lines(f / "trajectories.jsonl")} for f in shards]
    assert len(share[0]) == 2 and len(share[1]) == 1 and not share[0] & share[1]
    assert share[0] | share[1] == {i.task_id for i in sample_instances("train", 3, families=FAMILIES)}

    merged = tmp_path / "merged"
    summary = merge_runs(shards, merged)
    assert summary["tasks"] == 3 and summary["missing_tasks"] == 0 and summary["merged"]["new_tasks"] == 3
    ids = _assert_whole(merged, 3)
    assert sorted(p.stem for p in (merged / "ufo").glob("*.json")) == sorted(ids)
    # Merging again, in any order, adds nothing.
    assert merge_runs(shards[::-1], merged)["merged"] == {
        "folders": [str(f) for f in shards[::-1]], "shards": ["0/2", "1/2"], "new_tasks": 0, "already_there": 3}
    assert _assert_whole(merged, 3) == ids

    # A folder collected with other settings is refused, and nothing is written.
    other = tmp_path / "other"
    shutil.copytree(shards[1], other)
    identity = json.loads((other / "collect.json").read_text())
    (other / "collect.json").write_text(json.dumps(dict(identity, seed=7)))
    with pytest.raises(MergeRefused, match="seed 0 vs 7"):
        merge_runs([shards[0], other], tmp_path / "refused")
    assert not (tmp_path / "refused" / "trajectories.jsonl").exists()
    result = CliRunner().invoke(app, ["data", "merge", str(other), "--out", str(merged)])
    # On one line however long the temporary path: errors are not wrapped at the console's width.
    assert result.exit_code == 1 and f"error: {merged} holds another run: seed" in result.output
    assert _assert_whole(merged, 3) == ids


def test_model_actors_get_a_gpu_each_or_an_equal_share_that_schedules_them_all():
    assert gpu_share_per_actor(0, 4) == 0  # a CPU cluster: no GPU asked for, or the actors would never start
    assert gpu_share_per_actor(4, 4) == gpu_share_per_actor(8, 2) == 1  # one GPU each
    for gpus, workers in [(1, 2), (3, 4), (2, 5), (1, 1)]:
        share = gpu_share_per_actor(gpus, workers)
        per_gpu = int(1 / share + 1e-9)  # actors that Ray fits on one GPU
        assert per_gpu * gpus >= workers  # every actor is scheduled
        assert (per_gpu - 1) * gpus < workers  # and no GPU carries more of them than it must


def test_bad_shard_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["data", "collect", "--shard", "3", "--n", "2", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "write it as i/n" in result.output
    assert not (tmp_path / "x" / "trajectories.jsonl").exists()


def test_an_unknown_dtype_is_refused_before_any_office_starts(tmp_path):
    result = CliRunner().invoke(app, ["data", "collect", "--demonstrator", "model", "--model", "tiny",
                                      "--dtype", "float7", "--n", "2", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "unknown dtype 'float7'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "x").exists()
