"""The dataflow against the real app: oracle collection, outputs, the llm demonstrator over HTTP, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_server import llm_server  # noqa: F401  (pytest fixture)
from lamforge.data.collect import CollectConfig, collect, recover
from lamforge.records import StepSample

pytestmark = pytest.mark.office
FAMILIES = ["bold", "align", "line_spacing", "save_docx"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_oracle_collection_outputs(tmp_path):
    summary = collect(CollectConfig(out=tmp_path, n=4, workers=1, families=FAMILIES), show_progress=False)
    assert summary["tasks"] == 4 and summary["successes"] == 4, summary  # save_docx: the guard allows the out folder
    trajectories = _lines(tmp_path / "trajectories.jsonl")
    assert {t["family"] for t in trajectories} == set(FAMILIES)
    for t in trajectories:
        assert t["success"] and t["reason"] and t["steps"]
        assert all("grounding" in s and "timings" in s for s in t["steps"])
    import datasets

    samples = datasets.load_dataset("json", data_files=str(tmp_path / "samples.jsonl"), split="train")
    assert len(samples) == sum(len(t["steps"]) for t in trajectories) == summary["samples"]
    first = samples[0]
    assert first["state"]["task"] and first["state"]["observation"]["controls"] and json.loads(first["target"])["function"]
    # The samples keep the structured state; the prompt is rendered from it when needed.
    sample = StepSample.model_validate(first)
    assert f"\nTask: {sample.task}" in sample.messages()[1]["content"]
    ufo = json.loads((tmp_path / "ufo" / f"{trajectories[0]['task_id']}.json").read_text())
    assert set(ufo) == {"unique_id", "app", "original", "instantiation_result", "execution_result", "time_cost"}
    assert ufo["execution_result"]["result"]["complete"] == "yes" and isinstance(ufo["execution_result"]["error"], str)
    # A second run of the same command finds everything done.
    again = collect(CollectConfig(out=tmp_path, n=4, workers=1, families=FAMILIES), show_progress=False)
    assert again["this_run"]["tasks"] == 0 and again["tasks"] == 4


def test_demonstrations_on_drawn_documents(tmp_path):
    """Train tasks on other draws of the train documents: built, opened and solved like the registry's own; the
    header's words avoid the drawn document's (Writer's word completion)."""
    from typer.testing import CliRunner

    from lamforge.cli import app

    out = tmp_path / "drawn"
    args = ["data", "collect", "--n", "3", "--workers", "1", "--document-draws", "6", "--out", str(out),
            "--family", "header_text", "--family", "insert_table", "--family", "find_replace", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    trajectories = _lines(out / "trajectories.jsonl")
    assert len(trajectories) == 3 and all(t["success"] for t in trajectories), trajectories
    assert sum("~" in t["template_id"] for t in trajectories) >= 2
    assert json.loads((out / "collect.json").read_text())["document_draws"] == 6
    refused = CliRunner().invoke(app, ["data", "collect", "--split", "test", "--document-draws", "2", "--n", "1",
                                       "--out", str(tmp_path / "test")])
    assert refused.exit_code == 1 and "train split only" in refused.output
    assert not (tmp_path / "test").exists()  # refused before the run folder is made


def test_llm_demonstrator_over_http(tmp_path, llm_server, monkeypatch):  # noqa: F811
    server = llm_server(['{"function": "summary", "args": {"text": "nothing to do"}, "status": "FINISH"}'])
    monkeypatch.setenv("LAMFORGE_LLM_URL", server.url)
    monkeypatch.setenv("LAMFORGE_LLM_MODEL", "scripted")
    summary = collect(CollectConfig(out=tmp_path, n=1, workers=1, demonstrator="llm", families=["bold"]),
                      show_progress=False)
    assert summary["tasks"] == 1 and summary["failures"] == 1  # the checker is not fooled by FINISH
    # With an endpoint, the train instruction is first offered for paraphrasing; this server answers with an action,
    # not a paraphrase, so the instance keeps its rule-based wording.
    assert summary["this_run"]["paraphrase"]["kept_rule_phrasing"] == {"unparsable_answer": 1}
    # The run says which backend decided (a local model's names its dtype, which the CPU chooses).
    assert summary["this_run"]["backends"] == ["openai:scripted"]
    assert _lines(tmp_path / "trajectories.jsonl")[0]["backend"] == "openai:scripted"
    request = server.chat_requests[1].body
    assert "\nTask: " in request["messages"][1]["content"]
    record = _lines(tmp_path / "trajectories.jsonl")[0]
    assert record["outcome"] == "failure" and "not bold" in record["reason"]


def test_recover_drops_half_written_lines_and_orphan_samples(tmp_path):
    (tmp_path / "trajectories.jsonl").write_text('{"task_id": "a"}\n{"task_id": "b", "ste')
    (tmp_path / "samples.jsonl").write_text('{"task_id": "a", "x": 1}\n{"task_id": "b", "x": 2}\n{"task_id": "c"')
    assert recover(tmp_path) == {"a"}
    assert (tmp_path / "trajectories.jsonl").read_text() == '{"task_id": "a"}\n'
    assert (tmp_path / "samples.jsonl").read_text() == '{"task_id": "a", "x": 1}\n'


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.long
def test_killed_collection_resumes_without_loss_or_duplicates(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lamforge.cli", "data", "collect", "--n", "8", "--workers", "2", "--out", str(out),
           "--json"] + sum((["--family", f] for f in FAMILIES[:3]), [])
    env = dict(os.environ, DISPLAY="")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    trajectories = out / "trajectories.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if trajectories.exists() and len(trajectories.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    # The command alone, as `kill -9 PID` or a crash would: its workers must notice and stop on their own (they ran
    # on through every queued task, each with its office, and then hung at exit), and the rerun must resume.
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline and _group_alive(proc.pid):
        time.sleep(0.5)
    orphans = _group_alive(proc.pid)
    if orphans:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not orphans, "collection workers outlived their killed command by a minute"
    first = len(trajectories.read_text().splitlines())
    assert 2 <= first < 8
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    records = _lines(trajectories)
    ids = [r["task_id"] for r in records]
    assert len(ids) == len(set(ids)) == 8
    samples = _lines(out / "samples.jsonl")
    sample_ids = [s["sample_id"] for s in samples]
    assert len(sample_ids) == len(set(sample_ids))
    assert {s["task_id"] for s in samples} == set(ids)
    assert len(samples) == sum(len(r["steps"]) for r in records)
    assert json.loads(done.stdout)["this_run"]["tasks"] == 8 - first


def test_collection_without_an_office_stops_before_recording_anything(tmp_path):
    # Without the check, each episode became an environment-error record, the run exited 0, and a rerun after
    # installing LibreOffice skipped every task as done.
    # No office on the caller's PATH nor on the office's own (OFFICE_PATH, where it is also looked for).
    out = tmp_path / "run"
    argv = ["lamforge", "data", "collect", "--n", "4", "--workers", "2", "--out", str(out), "--family", "bold"]
    script = (f"import sys, lamforge.env.office as office; office.OFFICE_PATH = {str(tmp_path)!r}; sys.argv = {argv!r}\n"
              "from lamforge.cli import app\napp()")
    done = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PATH=str(tmp_path)), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "LibreOffice (soffice)" in done.stderr + done.stdout and "apt-get install" in done.stderr + done.stdout
    assert not (out / "trajectories.jsonl").exists()


def test_a_run_whose_workers_die_says_so_and_exits(tmp_path):
    # A script without a __main__ guard: each spawned worker re-runs it and dies (a process started while the worker
    # is still bootstrapping). The run must end with the error, not hang at exit on the ~400 tasks (~120 kB, more
    # than a pipe holds) left in the workers' queue (it did, for > 30 min). Tasks built by hand: no sampler to load.
    script = tmp_path / "collect_script.py"
    script.write_text(
        "from lamforge.data.collect import CollectConfig, run_in_processes\n"
        "from lamforge.tasks.base import TaskInstance\n"
        "todo = [TaskInstance(task_id=f'bold-{i}', family='bold', category='character', template_id='none',\n"
        "                     instruction='Make it bold ' * 20, params={}, phrasing=0, split='train')\n"
        "        for i in range(400)]\n"
        f"run_in_processes(CollectConfig(out={str(tmp_path / 'run')!r}, n=400, workers=2), todo, lambda r: None, 2)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "all collection workers died" in done.stderr


@pytest.mark.long
def test_task_ids_come_back_only_with_the_families_they_were_sampled_with():
    from lamforge.tasks.splits import sample_instances

    sampled = sample_instances("train", 6, seed=1, families=["italic", "bold", "underline"])
    wanted = [i.task_id for i in sampled[3:]]
    again = sample_instances("train", len(wanted), seed=1, families=["italic", "bold", "underline"], task_ids=wanted)
    assert [i.task_id for i in again] == wanted
    # Other families shift the shared random stream: a clear error, not an endless search.
    with pytest.raises(ValueError, match="not among the train instances"):
        sample_instances("train", len(wanted), seed=1, families=["italic", "bold", "align"], task_ids=wanted)


def test_the_model_demonstrator_loads_in_the_dtype_and_with_the_prior_asked_for(tmp_path, monkeypatch):
    """CollectConfig.dtype and name_prior reach the backend (eval online --dtype / --name-prior for an A/B), and the
    prior is part of a run folder's identity: a folder from before it counts as none."""
    from lamforge.data.collect import identity
    from lamforge.data.run_folder import read_identity, write_identity

    import lamforge.data.collect as collect_module

    asked = {}

    def make_backend(demonstrator, plans, model, **options):
        asked.update(options, demonstrator=demonstrator, model=model)
        raise RuntimeError("stopped here by the test")

    monkeypatch.setattr(collect_module, "make_backend", make_backend)
    monkeypatch.setattr(collect_module, "WriterEnv", lambda **kwargs: None)  # no office: only the plumbing is tested
    with pytest.raises(RuntimeError, match="stopped here"):
        collect_module.TaskRunner(CollectConfig(out=tmp_path, demonstrator="model", model="tiny", dtype="float32",
                                                device="cpu", name_prior=8.0))
    assert asked == {"demonstrator": "model", "model": "tiny", "device": "cpu", "dtype": "float32", "name_prior": 8.0}
    config = CollectConfig(out=tmp_path, demonstrator="model", model="tiny")
    old = {k: v for k, v in identity(config).items() if k != "name_prior"}
    write_identity(tmp_path, old)
    assert read_identity(tmp_path) == identity(config) != identity(CollectConfig(out=tmp_path, demonstrator="model",
                                                                                  model="tiny", name_prior=8.0))
