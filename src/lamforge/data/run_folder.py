"""A collection run folder and its one writer.

Files:
- trajectories.jsonl  every task, success or failure, with its steps, outcome and the checker's reason
- samples.jsonl       step-wise StepSamples (the structured decision state -> action JSON)
- ufo/<task_id>.json  each task in UFO dataflow's result schema, so UFO users can read our data
- collect.json        what was collected: demonstrator, split, seed, families, ... (`lamforge data merge` compares it)
- summary.json        counts, success rate, throughput and where the time went

The writer is single and idempotent. Single: only the process that holds the folder's lock (runlock.py) writes, and
workers, processes or Ray actors alike, only hand it their records. Idempotent: a task lands once, keyed by its id;
a record for a task already in the folder is dropped, whoever sent it and however often.

Resume rule: a task is done when its trajectory line is in trajectories.jsonl. Its samples are written first and
the trajectory line last, so after a kill the samples of a task without a trajectory line are dropped and the task
runs again: nothing is lost, duplicated or half-written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lamforge.jsonl import drop_torn_tail, write_json

TRAJECTORIES, SAMPLES, IDENTITY, SUMMARY = "trajectories.jsonl", "samples.jsonl", "collect.json", "summary.json"
UFO = "ufo"


def _lines(path: Path) -> list[str]:
    """The file's complete lines: a last line without its newline is still being written (or was cut by a kill)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [line for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def recover(out: Path) -> set[str]:
    """Task ids already done; samples of unfinished tasks are removed."""
    out.mkdir(parents=True, exist_ok=True)
    trajectories, samples = out / TRAJECTORIES, out / SAMPLES
    drop_torn_tail(trajectories)
    drop_torn_tail(samples)
    done = {json.loads(line)["task_id"] for line in _lines(trajectories)}
    lines = _lines(samples)
    kept = [line for line in lines if json.loads(line)["task_id"] in done]
    if len(kept) != len(lines):
        tmp = samples.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(samples)
    return done


def load_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in _lines(Path(out) / TRAJECTORIES)]


def load_samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in _lines(Path(out) / SAMPLES)]


def read_identity(out: Path) -> dict | None:
    path = Path(out) / IDENTITY
    if not path.exists():
        return None
    # A folder from before document draws existed holds tasks on the registry's documents: one draw; one from
    # before the name prior, a model demonstrator without it.
    return {"document_draws": 1, "name_prior": 0.0, **json.loads(path.read_text())}


def write_identity(out: Path, identity: dict) -> None:
    write_json(Path(out) / IDENTITY, identity)


class RunWriter:
    """Appends finished tasks to a run folder: samples, then the trajectory line (the commit marker), then UFO's file.

    Open it in the process that holds the folder's lock; `commit` drops a task that is already there."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.done = recover(self.out)
        self._ufo_dir = self.out / UFO
        self._ufo_dir.mkdir(parents=True, exist_ok=True)
        self._samples = open(self.out / SAMPLES, "a")
        self._trajectories = open(self.out / TRAJECTORIES, "a")

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._samples.close()
        self._trajectories.close()

    def commit(self, record: dict, samples: list[dict]) -> bool:
        """Write one task; False (and nothing written) when its id is already in the folder."""
        if record["task_id"] in self.done:
            return False
        for sample in samples:
            self._samples.write(json.dumps(sample, ensure_ascii=False) + "\n")
        _sync(self._samples)
        # Decision states live in samples.jsonl only; the trajectory line is written last, as the commit marker.
        slim = dict(record, steps=[{k: v for k, v in st.items() if k != "state"} for st in record["steps"]])
        self._trajectories.write(json.dumps(slim, ensure_ascii=False) + "\n")
        _sync(self._trajectories)
        self.done.add(record["task_id"])
        (self._ufo_dir / f"{record['task_id']}.json").write_text(json.dumps(ufo_record(record), indent=1))
        return True


def ufo_record(record: dict) -> dict:
    """UFO dataflow's result schema (errors as strings, as its schema says)."""
    timing = record.get("timing") or {}
    return {
        "unique_id": record["task_id"],
        "app": "writer",
        "original": {"original_task": record["instruction"], "original_steps": record.get("plan") or []},
        "instantiation_result": {
            "choose_template": {"result": record["template_id"], "error": ""},
            "prefill": {"result": {"instantiated_request": record["instruction"],
                                   "instantiated_plan": [json.loads(s["action"]) for s in record["steps"]
                                                         if s.get("action")]},
                        "error": ""},
            "instantiation_evaluation": {"result": {"judge": True, "thought": "sampled from a verified task family",
                                                    "request_type": record["family"]}, "error": ""},
        },
        "execution_result": {
            "result": {"complete": "yes" if record["success"] else "no", "reason": record["reason"],
                       "outcome": record["outcome"], "judge": record.get("judge")},
            "error": "" if record["outcome"] != "env_error" else record["reason"],
        },
        "time_cost": {"instantiation": timing.get("instantiate_s", 0.0), "execution": timing.get("execute_s", 0.0),
                      "evaluation": timing.get("evaluate_s", 0.0), "total": timing.get("total_s", 0.0)},
    }


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())
