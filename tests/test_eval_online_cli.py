"""`lamforge eval online` from the command line, in live Writer, limited to the categories a run trained on."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.office


def _online(tmp_path, *extra, env=None):
    cmd = [sys.executable, "-m", "lamforge.cli", "eval", "online", "--agents", "reference", "--n", "3",
           "--split", "test", "--out", str(tmp_path / "online"), "--json", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.long
def test_category_limits_the_test_tasks(tmp_path):
    done = _online(tmp_path, "--category", "paragraph")
    assert done.returncode == 0, done.stderr[-3000:]
    reference = json.loads(done.stdout)["test"]["reference"]
    assert reference["tasks"] == 3
    assert set(reference["by"]["category"]) == {"paragraph"}
    assert reference["tsr"] == 100.0


def test_unknown_category_is_a_clear_error(tmp_path):
    done = _online(tmp_path, "--category", "charcter")
    assert done.returncode == 1
    assert "unknown task categories" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.long
def test_agents_run_on_their_splits_and_the_baselines_on_fewer_tasks(tmp_path):
    from lamforge.eval.online import run_online

    summary = run_online(["reference", "retrieval"], tmp_path / "online", {"test": 2, "unseen_family": 1},
                         split_agents={"test": ["reference", "retrieval"], "unseen_family": ["reference"]},
                         agent_limits={"retrieval": 1}, progress=False)
    assert set(summary) == {"test", "unseen_family"}
    assert summary["test"]["reference"]["tasks"] == 2 and summary["test"]["retrieval"]["tasks"] == 1
    assert set(summary["unseen_family"]) == {"reference"}
    first = json.loads((tmp_path / "online" / "test" / "retrieval" / "trajectories.jsonl").read_text())["task_id"]
    reference = (tmp_path / "online" / "test" / "reference" / "trajectories.jsonl").read_text()
    assert first in reference  # the limited agent ran the first of the same instances


@pytest.mark.long
def test_online_evaluation_runs_on_ray_actors(tmp_path, ray_env):
    # ray_env: this test's Ray instance keeps its session folder to itself (another test worker may run Ray too)
    done = _online(tmp_path, "--category", "paragraph", "--ray", "local", "--workers", "2", env=ray_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["test"]["reference"]["tasks"] == 3
    run = json.loads((tmp_path / "online" / "test" / "reference" / "summary.json").read_text())["this_run"]
    assert run["executor"] == "ray (local)" and run["tasks"] == 3


def test_an_unknown_dtype_is_refused_before_any_office_starts(tmp_path):
    done = _online(tmp_path, "--dtype", "float7")
    assert done.returncode == 1 and "unknown dtype 'float7'" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "online").exists()
