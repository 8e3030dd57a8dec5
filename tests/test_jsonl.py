"""The one JSONL module: strict reads that name the bad line, atomic writes, appends that survive a kill."""

import json

import pytest

from lamforge.jsonl import DataError, JsonlAppender, drop_torn_tail, read_jsonl, write_jsonl
from lamforge.records import PlanPair

PAIRS = [PlanPair(task_id=f"t{i}", task=f"Task {i}", plan=["Click OK."]) for i in range(3)]


def test_records_round_trip_as_models_and_as_dicts(tmp_path):
    path = tmp_path / "sub" / "pairs.jsonl"
    assert write_jsonl(path, PAIRS) == 3
    assert read_jsonl(path, PlanPair) == PAIRS
    assert [r["task_id"] for r in read_jsonl(path)] == ["t0", "t1", "t2"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["pairs.jsonl"]  # no temporary left


def test_a_bad_line_is_an_error_that_names_the_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, PAIRS)
    path.write_text(path.read_text() + "\n" + '{"task_id": "x"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:5: not a PlanPair: task: Field required"):
        read_jsonl(path, PlanPair)
    path.write_text("[1, 2]\n")
    with pytest.raises(DataError, match=r"pairs.jsonl:1: not a JSON object"):
        read_jsonl(path)


def test_a_missing_file_is_an_error_unless_allowed(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        read_jsonl(tmp_path / "none.jsonl")
    assert read_jsonl(tmp_path / "none.jsonl", missing_ok=True) == []


def test_appends_resume_after_a_torn_last_line(tmp_path):
    path = tmp_path / "grow.jsonl"
    with JsonlAppender(path) as out:
        out.append(PAIRS[0])
        out.append({"task_id": "t1", "task": "Task 1", "plan": []})
    with path.open("a") as handle:
        handle.write('{"task_id": "t2", "ta')  # what a kill in the middle of a write leaves
    with pytest.raises(DataError, match="grow.jsonl:3"):
        read_jsonl(path)
    assert drop_torn_tail(path) and not drop_torn_tail(path)
    assert [r["task_id"] for r in read_jsonl(path)] == ["t0", "t1"]
    with path.open("a") as handle:
        handle.write('{"task_id": "t2", "ta')
    with JsonlAppender(path, sync_each=True) as out:  # opening drops the torn line, then appends after it
        out.append(PAIRS[2])
    assert [r.task_id for r in read_jsonl(path, PlanPair)] == ["t0", "t1", "t2"]


def test_write_json_replaces_a_file_whole_or_not_at_all(tmp_path):
    from lamforge.jsonl import write_json

    path = write_json(tmp_path / "run" / "summary.json", {"tasks": 3})
    assert json.loads(path.read_text()) == {"tasks": 3}
    with pytest.raises(TypeError):
        write_json(path, {"tasks": object()})  # cannot be written: the old file stands, and nothing beside it
    assert json.loads(path.read_text()) == {"tasks": 3} and [p.name for p in path.parent.iterdir()] == ["summary.json"]
