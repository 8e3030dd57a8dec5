"""JSON Lines files: the one reader, the one writer and the one appender, for pydantic records and plain dicts;
and the one atomic writer of a whole JSON document (write_json).

A bad line is an error that names the file and the line, never a silent stop. Whole files are written to a
temporary file that replaces the target only when complete, so a killed process leaves the old file or the new one,
never half of it. Files that grow while a long job runs (collected trajectories, LLM-evolved pairs) are appended
to line by line and synced, so a kill loses at most the line being written; `drop_torn_tail` removes that
half-written last line before the file is read again or appended to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, TypeVar, overload

from pydantic import BaseModel, ValidationError

Record = TypeVar("Record", bound=BaseModel)


class DataError(ValueError):
    """An unusable data file; the message names the file and line."""


@overload
def read_jsonl(path: str | Path, kind: type[Record], *, missing_ok: bool = False) -> list[Record]: ...


@overload
def read_jsonl(path: str | Path, kind: None = None, *, missing_ok: bool = False) -> list[dict]: ...


def read_jsonl(path, kind=None, *, missing_ok=False):
    """Every record of the file, validated as `kind` (None: plain dicts). missing_ok: a missing file has none."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise DataError(f"data file not found: {path}")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                records.append(kind.model_validate(data) if kind is not None else _as_dict(data))
            except (json.JSONDecodeError, ValidationError, TypeError) as exc:
                raise DataError(f"{path}:{number}: not a {kind.__name__ if kind else 'JSON object'}: "
                                f"{_reason(exc)}") from exc
    return records


def _as_dict(data: Any) -> dict:
    if not isinstance(data, dict):
        raise TypeError(f"a JSON {type(data).__name__}, not an object")
    return data


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def record_line(record: BaseModel | dict) -> str:
    """One record as its line (no newline): pydantic's JSON of a model, compact JSON of a dict, UTF-8 unescaped."""
    if isinstance(record, BaseModel):
        return record.model_dump_json()
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: str | Path, records: Iterable[BaseModel | dict]) -> int:
    """Write records atomically (temporary file, then rename); returns how many were written."""
    n = 0

    def fill(handle) -> None:
        nonlocal n
        for record in records:
            handle.write(record_line(record) + "\n")
            n += 1

    _replace_whole(Path(path), fill)
    return n


def _replace_whole(path: Path, fill) -> None:
    """Write path through a temporary file beside it (per process: parallel builders may write one file), synced,
    then renamed over it: a kill leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, data: Any, indent: int | None = 1, **dumps) -> Path:
    """Write one JSON document atomically, as write_jsonl does: summaries, timings, model cards and the like are
    read back when a killed run resumes, and a half-written one stopped the resume with a JSON syntax error."""
    text = json.dumps(data, indent=indent, **dumps)  # first: a value JSON cannot hold leaves no file behind
    path = Path(path)
    _replace_whole(path, lambda handle: handle.write(text))
    return path


def drop_torn_tail(path: str | Path) -> bool:
    """Remove a last line without its newline (an append a kill cut short); True when there was one."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    with path.open("r+b") as handle:
        handle.truncate(data.rfind(b"\n") + 1)
    return True


class JsonlAppender:
    """Appends records to a JSONL file that a killed run may have left with a torn last line (dropped on open).

        with JsonlAppender(path) as out:
            out.append(record)   # written at once; out.sync() makes everything appended so far durable

    Resume rule for callers: what `read_jsonl` returns after `drop_torn_tail` is done; the rest is redone.
    """

    def __init__(self, path: str | Path, sync_each: bool = False):
        self.path = Path(path)
        self.sync_each = sync_each
        self.path.parent.mkdir(parents=True, exist_ok=True)
        drop_torn_tail(self.path)
        self._handle = self.path.open("a", encoding="utf-8")

    def append(self, record: BaseModel | dict) -> None:
        self._handle.write(record_line(record) + "\n")
        if self.sync_each:
            self.sync()
        else:
            self._handle.flush()

    def sync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self.sync()
            self._handle.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
