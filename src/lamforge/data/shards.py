"""Sharding without Ray: `--shard i/n` collects one share of a run's tasks (collect.py picks it), `lamforge data
merge` joins the shares.

For plain batch schedulers (Slurm arrays, one job per machine): every job samples the same instances (the sampler
is deterministic for split, n, seed and families) and keeps every n-th, starting at the i-th, so the shares are
disjoint, cover the run, and each has every family in proportion. Each job writes its own run folder; the merge
writes one folder through the same single, idempotent writer, so merging again, or merging a shard that grew since,
adds only what is new, and never duplicates a task.
"""

from __future__ import annotations

from pathlib import Path

from lamforge.data.collect import CollectConfig, parse_shard, summarize
from lamforge.data.run_folder import SUMMARY, RunWriter, load_records, load_samples, read_identity, write_identity
from lamforge.data.runlock import lock_run_folder
from lamforge.jsonl import write_json


class MergeRefused(ValueError):
    """The folders do not hold shares of one run."""


def merge_runs(folders: list[Path], out: Path) -> dict:
    """Merge shard run folders into `out`; raises MergeRefused when their collection settings differ."""
    folders = [Path(f) for f in folders]
    if not folders:
        raise MergeRefused("nothing to merge: name the shard folders")
    common = _common_identity(folders)
    lock = lock_run_folder(Path(out))
    try:
        existing = read_identity(out)
        if existing is not None and _without_shard(existing) != common:
            raise MergeRefused(f"{out} holds another run: {_differences(_without_shard(existing), common)}")
        shards_merged, added, already = set(), 0, 0
        with RunWriter(out) as writer:
            write_identity(out, {**common, "shard": None})
            for folder in folders:
                samples: dict[str, list[dict]] = {}
                for sample in load_samples(folder):
                    samples.setdefault(sample["task_id"], []).append(sample)
                for record in load_records(folder):
                    if writer.commit(record, samples.get(record["task_id"], [])):
                        added += 1
                    else:
                        already += 1
                shards_merged.add(read_identity(folder)["shard"])
            tasks = len(writer.done)
        expected = len(common["task_ids"]) if common.get("task_ids") else common["n"]
        summary = _summary(out, common)
        summary.update(expected_tasks=expected, missing_tasks=max(0, expected - tasks),
                       merged={"folders": [str(f) for f in folders], "shards": sorted(s for s in shards_merged if s),
                               "new_tasks": added, "already_there": already})
        write_json(Path(out) / SUMMARY, summary)
        return summary
    finally:
        lock.release()


def _without_shard(identity: dict) -> dict:
    return {k: v for k, v in identity.items() if k != "shard"}


def _differences(a: dict, b: dict) -> str:
    return "; ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _common_identity(folders: list[Path]) -> dict:
    common, first = None, None
    counts = set()
    for folder in folders:
        identity = read_identity(folder)
        if identity is None:
            raise MergeRefused(f"{folder} is not a collection run folder (it has no collect.json)")
        if identity.get("shard"):
            counts.add(parse_shard(identity["shard"])[1])
        if common is None:
            common, first = _without_shard(identity), folder
        elif _without_shard(identity) != common:
            raise MergeRefused(f"{folder} and {first} were collected with different settings: "
                               f"{_differences(common, _without_shard(identity))}")
    if len(counts) > 1:
        raise MergeRefused(f"the folders split the run into different numbers of shares: {sorted(counts)}")
    return common


def _summary(out: Path, identity: dict) -> dict:
    """collect's summary of the merged folder (no tasks ran in this process, so no throughput)."""
    config = CollectConfig(out=Path(out), **{k: v for k, v in identity.items() if k != "shard"})
    summary = summarize(config, None, [], 0.0, 0.0)
    del summary["this_run"]
    return summary
