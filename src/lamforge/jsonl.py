"""JSON Lines files of pydantic records: the one reader and the one writer.

A bad line is an error that names the file and the line, never a silent stop; writes go to a temporary file that
replaces the target only when complete, so a killed process leaves the old file or the new one, never half of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, TypeVar

from pydantic import BaseModel, ValidationError

Record = TypeVar("Record", bound=BaseModel)


class DataError(ValueError):
    """An unusable data file; the message names the file and line."""


def read_jsonl(path: str | Path, kind: type[Record]) -> list[Record]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    records = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(kind.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise DataError(f"{path}:{number}: not a {kind.__name__}: {_reason(exc)}") from exc
    return records


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> Path:
    """Write records atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        for record in records:
            handle.write(record.model_dump_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path
