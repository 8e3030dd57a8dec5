"""`lamforge pipeline --preset tiny`: every stage runs end to end (the numbers mean nothing), and a rerun resumes."""

import json
import os
import subprocess
import sys
from html import escape as html_escape
from pathlib import Path

import pytest

from lamforge.allocator import jemalloc_library
from lamforge.jsonl import read_jsonl
from lamforge.models.checkpoints import read_metrics

pytestmark = [pytest.mark.office, pytest.mark.long]


def test_tiny_pipeline_runs_every_stage_and_resumes(tmp_path):
    out = tmp_path / "tiny"
    cmd = [sys.executable, "-m", "lamforge.cli", "pipeline", "--preset", "tiny", "--out", str(out)]
    env = dict(os.environ, DISPLAY="")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The run ends with the report's path, whole on one line though the log is 80 columns wide and the path longer.
    assert f"report: {out / 'report' / 'report.html'}\n" in done.stdout
    extra = {r["task_id"] for r in read_jsonl(out / "data" / "oracle_extra" / "samples.jsonl")}
    assert len(extra) == 2  # the preset's one more demonstration of each file family
    trained = {r["task_id"] for r in read_jsonl(out / "data" / "demonstrations.jsonl")}
    assert extra <= trained
    for name in ("lam1", "lam2", "lam3", "rm", "lam4"):
        assert (out / "models" / name / "README.md").exists(), name
    # The command restarted under jemalloc (lamforge/allocator.py), the office and the bridge included.
    lam2 = read_metrics(out / "models" / "lam2")
    assert lam2["training"]["allocator"] == ("jemalloc" if jemalloc_library() else "libc")
    # Phase 2 drew the file families' samples twice as often (the preset's category_weights).
    weights = json.loads(Path(lam2["config"]["family_weights"]).read_text())
    assert weights["export_pdf"] == weights["save_docx"] == 2.0 and weights["bold"] == 1.0
    for name in ("lam1", "lam2", "lam3", "lam4"):
        steps = json.loads((out / "eval" / "offline" / f"{name}.json").read_text())["steps"]
        rows = steps["rows"]  # one per held-out step the model was scored on
        assert steps["steps"] == len(rows) > 0, name
        assert steps["ssr"] == round(100 * sum(r["step"] for r in rows) / len(rows), 1), name  # the rows' own rate
    online = json.loads((out / "eval" / "online" / "online.json").read_text())
    assert set(online) == {"test", "unseen_phrasing", "unseen_family"}
    assert online["test"]["reference"]["tsr"] == 100.0  # the oracle solves what it is asked
    html = (out / "report" / "report.html").read_text()
    assert "Offline" in html and "data:image/png;base64" in html
    assert "<h2>Training</h2>" in html and "<td>RM</td>" in html and "Pipeline time per stage" in html
    # The CPU the models trained on, beside their times (cards and report): it sets the times ~3x either way.
    assert lam2["training"]["cpu"] and f"Trained on {html_escape(lam2['training']['cpu'])}" in html
    timings = json.loads((out / "timings.json").read_text())
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    rerun = json.loads((out / "timings.json").read_text())
    stages = [k for k in timings if k != "pipeline_wall_this_run"]
    assert {k: rerun[k] for k in stages} == {k: timings[k] for k in stages}  # nothing ran twice
    assert again.stdout.count("already done") >= 10
