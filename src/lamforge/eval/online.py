"""Online evaluation: every agent runs every test task in live Writer; the family's checker decides success.

Each (split, agent) pair is a dataflow run folder, so evaluation resumes exactly like collection and keeps every
trajectory for the report's viewer. All agents run in the same command on the same task instances.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from lamforge.agent.episode import backends_of
from lamforge.data.collect import CollectConfig, collect, load_records
from lamforge.jsonl import write_json
from lamforge.tasks.splits import families_for
from lamforge.tasks.templates import LO_SPLIT

# lo_templates: the seen families on LibreOffice's own template documents, which lamforge did not generate.
EVAL_SPLITS = ("test", "unseen_phrasing", "unseen_family", LO_SPLIT)


def agent_spec(name: str, checkpoints: Path | None) -> tuple[str, str | None]:
    """(demonstrator, model) for an agent name: base, lam1..lam4, reference, retrieval, or a checkpoint folder."""
    if name == "reference":
        return "oracle", None
    if name == "retrieval":
        return "retrieval", None
    if name == "base":
        return "model", "default"
    if name.startswith("lam") and checkpoints is not None:
        return "model", str(Path(checkpoints) / name)
    if Path(name).is_dir():
        return "model", name
    raise ValueError(f"unknown agent {name!r}: use base, lam1-lam4 (with --checkpoints), reference, retrieval or a model folder")


def run_online(agents: list[str], out: Path, n: int | dict[str, int], checkpoints: Path | None = None,
               splits=EVAL_SPLITS, n_held_out: int | None = None, workers: int = 1, max_steps: int = 15,
               progress: bool = True, categories: list[str] | None = None,
               split_agents: dict[str, list[str]] | None = None, agent_limits: dict[str, int] | None = None,
               ray: str | None = None, dtype: str = "auto", name_prior: float = 0.0) -> dict:
    """Every agent on the tasks of every split.

    n is the number of test (and validation) tasks (the held-out splits get n_held_out, or n/2), or a count per
    split. The validation split runs only when asked for (splits): it is for choosing settings, test for reporting.
    split_agents limits a split to some agents; agent_limits runs an agent on only the first so many tasks of each
    split (the same instances: the sampler is deterministic and draws them in order).
    categories limits the test and unseen-phrasing tasks to the categories a run trained on; unseen families stay
    whole, since none of them was trained on anyway. ray runs the episodes in Ray actors (CollectConfig.ray); open
    a ray_session around the call to keep one Ray connection for every agent and split. dtype: the model agents'
    weights (CollectConfig.dtype); name_prior: their prior for the controls a task names (CollectConfig.name_prior)."""
    results = {}
    for split in splits:
        if isinstance(n, dict):
            count = n.get(split, 0)
        else:
            count = n if split in ("test", "validation") else (n_held_out or max(1, n // 2))
        if not count:
            continue
        families = families_for(split, categories) if categories and split != "unseen_family" else None
        for agent in agents:
            if split_agents is not None and agent not in split_agents.get(split, agents):
                continue
            demonstrator, model = agent_spec(agent, checkpoints)
            if model and model != "default" and not Path(model).exists():
                results.setdefault(split, {})[agent] = {"missing": f"no checkpoint at {model}"}
                continue
            limit = (agent_limits or {}).get(agent)
            config = CollectConfig(out=out / split / agent, demonstrator=demonstrator, model=model, split=split,
                                   n=min(count, limit) if limit else count, workers=workers, max_steps=max_steps,
                                   families=families, ray=ray, dtype=dtype, name_prior=name_prior)
            collect(config, show_progress=progress)
    summary = summarize_online(out, agents, splits)
    write_json(out / "online.json", summary)
    return summary


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def agent_metrics(records: list[dict], difficulty: dict[str, int]) -> dict:
    if not records:
        return {"tasks": 0}
    scored = [r for r in records if r["outcome"] != "env_error"]
    times = [r["timing"]["execute_s"] for r in scored]
    steps = [len(r["steps"]) for r in scored]
    latencies = [sum(s["timings"].values()) for r in scored for s in r["steps"] if s.get("timings")]
    breakdown: dict[str, dict[str, list[int]]] = {"family": defaultdict(list), "category": defaultdict(list),
                                                   "difficulty": defaultdict(list)}
    for r in scored:
        breakdown["family"][r["family"]].append(r["success"])
        breakdown["category"][r["category"]].append(r["success"])
        d = difficulty.get(r["task_id"])
        breakdown["difficulty"]["unknown" if d is None else ("1-2 steps" if d <= 2 else "3-5 steps" if d <= 5 else "6+ steps")].append(r["success"])
    return {
        "tasks": len(scored),
        "env_errors": len(records) - len(scored),
        "tsr": round(100 * sum(r["success"] for r in scored) / len(scored), 1) if scored else 0.0,
        "median_time_s": _median(times),
        "mean_time_s": round(statistics.mean(times), 3) if times else 0.0,
        "mean_steps": round(statistics.mean(steps), 2) if steps else 0.0,
        "median_step_latency_s": _median(latencies),
        "p95_step_latency_s": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 3) if latencies else 0.0,
        "backends": backends_of(records),  # a local model's dtype, say
        "by": {k: {g: {"tsr": round(100 * sum(v) / len(v), 1), "tasks": len(v)} for g, v in sorted(groups.items())}
               for k, groups in breakdown.items()},
    }


def summarize_online(out: Path, agents: list[str], splits=EVAL_SPLITS) -> dict:
    summary: dict = {}
    for split in splits:
        reference = load_records(out / split / "reference") if "reference" in agents else []
        difficulty = {r["task_id"]: len(r["steps"]) for r in reference if r["success"]}
        ran = [a for a in agents if (out / split / a / "trajectories.jsonl").exists()]
        if ran:
            summary[split] = {agent: agent_metrics(load_records(out / split / agent), difficulty) for agent in ran}
    return summary
