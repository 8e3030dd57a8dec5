"""Training records in, encoded examples out: reading JSONL, the held-out split, and per-phase selection."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, TypeVar

from pydantic import BaseModel

from lamforge.prompt import render_control_groups, render_document, render_plan_prompt, render_plan_target
from lamforge.records import PlanPair, StepSample
from lamforge.schema import parse_action
from lamforge.models.formatting import Encoded, encode_example

def held_out(task_id: str, fraction: float, seed: int = 0) -> bool:
    """A stable, order-free split by task: all steps of a task land on the same side."""
    digest = hashlib.sha256(f"{seed}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


Record = TypeVar("Record", bound=BaseModel)


def split_records(records: list[Record], eval_records: list[Record] | None, fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    if eval_records is not None:
        return records, eval_records
    train = [r for r in records if not held_out(r.task_id, fraction, seed)]
    held = [r for r in records if held_out(r.task_id, fraction, seed)]
    if not train:  # tiny data sets: never hold out everything
        return records, []
    return train, held


@dataclass
class Example:
    """One encoded training example and the record it came from."""

    encoded: Encoded
    record: BaseModel
    target: str


@dataclass
class EncodedSet:
    examples: list[Example] = field(default_factory=list)
    dropped_too_long: int = 0

    @property
    def tokens(self) -> int:
        return sum(len(e.encoded) for e in self.examples)

    @property
    def target_tokens(self) -> int:
        return sum(len(e.encoded) - e.encoded.prompt_length for e in self.examples)


def record_messages(record: BaseModel, max_controls: int = 0) -> tuple[list[dict[str, str]], str]:
    """The prompt messages and the target text of a record: the one mapping from data to model text. A step is
    shown with at most `max_controls` controls (0: all; StepState.shown), as the trained model will be run."""
    if isinstance(record, PlanPair):
        return render_plan_prompt(record.task), render_plan_target(record.plan)
    if isinstance(record, StepSample):
        # Both rendered now, so data recorded under an older prompt or field order trains on the current one.
        return record.state.shown(max_controls).messages(), parse_action(record.target).to_json()
    raise TypeError(f"cannot train on {type(record).__name__}")


def prefix_group(record: BaseModel, max_controls: int = 0) -> tuple[str, ...]:
    """What a record's prompt may share with others beyond the system prompt, coarse to fine: a step's control list
    (the main window's is the same in every task), then the document, which render first, then the step itself
    (its reworded copies, data.reworded, differ only in the task line, which renders last). Steps on the same
    template in the same window share the first two until an edit lands (most of a step prompt). Plan pairs share
    nothing. With `max_controls`, the list is the one the record is rendered with (record_messages)."""
    if isinstance(record, StepSample):
        obs = record.state.shown(max_controls).observation
        step = f"{record.trajectory_id}|{record.step}"
        return "\n".join(render_control_groups(obs.controls)), render_document(obs), step
    return ("",)


MIN_FAMILY_WEIGHT = 0.1  # a family the model already gets right keeps a tenth of its draws, so it is not forgotten


class FamilyWeightsError(ValueError):
    """A family_weights file that cannot be used; the message says why."""


def failure_weight(ssr: float, steps: int) -> float:
    """A family's share of failed held-out steps, with add-one smoothing (Laplace): a validation split has 2-20 steps
    per family, and 2 of 2 right is weak evidence that a family needs no more training."""
    return max(MIN_FAMILY_WEIGHT, (steps * (1 - ssr / 100) + 1) / (steps + 2))


def load_family_weights(path: str | Path) -> dict[str, float]:
    """{family: weight} from a JSON mapping, or from a `lamforge eval offline` report of held-out steps (the
    smoothed share of failed steps, failure_weight): train where an earlier model failed."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FamilyWeightsError(f"family_weights {path}: cannot read it as JSON ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("steps"), dict) and "per_family" in data["steps"]:
        data = {family: failure_weight(m["ssr"], m["steps"]) for family, m in data["steps"]["per_family"].items()}
    if not isinstance(data, dict) or not data or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in data.values()):
        raise FamilyWeightsError(f"family_weights {path}: expected {{family: weight >= 0}} or an offline report's "
                                 "per-family results")
    if not any(data.values()):
        raise FamilyWeightsError(f"family_weights {path}: every weight is zero")
    return {str(k): float(v) for k, v in data.items()}


def example_weights(records: list[BaseModel], weights: dict[str, float]) -> list[float]:
    """Each record's family weight; a family the weights do not name gets their mean (no evidence either way)."""
    mean = sum(weights.values()) / len(weights)
    return [weights.get(getattr(r, "family", ""), mean) for r in records]


def encode_records(tokenizer, records: Iterable[BaseModel], max_length: int, max_controls: int = 0) -> EncodedSet:
    out = EncodedSet()
    for record in records:
        messages, target = record_messages(record, max_controls)
        encoded = encode_example(tokenizer, messages, target)
        if len(encoded) > max_length:
            out.dropped_too_long += 1
            continue
        out.examples.append(Example(encoded=encoded, record=record, target=target))
    return out


def data_summary(path: str, records: list[BaseModel]) -> dict:
    """What a model card says about a data file: where from, how many records, tasks and outcomes."""
    summary = {"file": str(path), "records": len(records), "tasks": len({getattr(r, "task_id", "") for r in records})}
    if records and isinstance(records[0], StepSample):
        summary["successful_steps"] = sum(r.success for r in records)
        summary["failed_steps"] = sum(not r.success for r in records)
        summary["trajectories"] = len({r.trajectory_id for r in records})
    if path:
        summary["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if Path(path).exists() else ""
    return summary
