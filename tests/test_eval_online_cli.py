"""`lamforge eval online` from the command line, in live Writer, limited to the categories a run trained on."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.office


def _online(tmp_path, *extra):
    cmd = [sys.executable, "-m", "lamforge.cli", "eval", "online", "--agents", "reference", "--n", "3",
           "--split", "test", "--out", str(tmp_path / "online"), "--json", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


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
