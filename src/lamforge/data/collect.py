"""The dataflow: instantiate -> execute -> evaluate -> post-process, resumable and parallel.

Tasks are drawn by the one sampler (tasks/splits.py) and run by the one episode runner (agent/episode.py), in this
process, in local worker processes, or in Ray actors (ray_rollouts.py), one office each; only this process writes
the run folder (run_folder.py says what is in it and how a killed run resumes). `--shard i/n` runs one share of the
tasks, for batch schedulers without Ray; shards.py merges the shard folders.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

import lamforge.tasks.families  # noqa: F401  (registers the task families, also in spawned workers)
from lamforge.agent.episode import backends_of, run_episode
from lamforge.agent.factory import make_backend
from lamforge.agent.loop import Agent, AgentConfig
from lamforge.data.judge import judge
from lamforge.data.paraphrase import ParaphraseReport, paraphrase_with_endpoint
from lamforge.data.run_folder import (  # noqa: F401  (load_records and recover: the run folder's, re-exported)
    SAMPLES,
    SUMMARY,
    RunWriter,
    load_records,
    recover,
    write_identity,
)
from lamforge.data.runlock import exclusive_run_folder
from lamforge.jsonl import write_json
from lamforge.env.office import require_binaries
from lamforge.env.writer_env import WriterEnv
from lamforge.progress import Progress
from lamforge.records import StepSample
from lamforge.tasks.base import TaskInstance
from lamforge.tasks.splits import sample_instances


@dataclass
class CollectConfig:
    out: Path
    """Run folder."""
    demonstrator: str = "oracle"
    """oracle | plan | llm | model"""
    split: str = "train"
    n: int = 100
    """Task instances to collect (the same instances on every run with the same seed)."""
    workers: int = 2
    """Parallel workers (local processes or Ray actors), each with its own LibreOffice."""
    seed: int = 0
    plans: Path | None = None
    """Mined plans (for the plan demonstrator)."""
    model: str | None = None
    """Trained checkpoint (for the model demonstrator)."""
    attempts: int = 1
    """Attempts per task; the first success wins (self-boosting samples up to k)."""
    temperature: float = 0.0
    max_steps: int = 20
    screenshots: bool = False
    judge: bool = False
    """Also ask the configured LLM endpoint for a verdict and report its agreement with the checker."""
    families: list[str] | None = None
    task_ids: list[str] | None = None
    """Collect exactly these instances (from a previous run's failures, say) instead of sampling n."""
    paraphrase: bool = True
    """Reword train instructions with the configured LLM endpoint (LAMFORGE_LLM_URL), every value kept
    (data/paraphrase.py); nothing happens without an endpoint."""
    device: str = "auto"
    """Where the model demonstrator's weights go. 'auto': local worker i takes GPU i mod the GPU count, a Ray actor
    the GPU Ray gave it, and without a GPU the CPU; or one device for all: 'cpu', 'cuda:1', ..."""
    name_prior: float = 0.0
    """The model demonstrator's prior for the controls a task names (HFBackendConfig.name_prior); 0: none."""
    dtype: str = "auto"
    """The model demonstrator's weights (models/loading.py): 'auto' is bfloat16 on a CPU that runs it natively,
    else float32; greedy replies can differ between the two (1 of 360 steps did), so an A/B may pin one."""
    ray: str | None = None
    """Run the episodes in Ray actors, one office each: 'auto' (the cluster RAY_ADDRESS names or `ray start` began
    on this machine, else a new local instance), 'local' (a new local instance) or a cluster address (host:port,
    ray://host:port). None: local worker processes."""
    document_draws: int = 1
    """Train tasks start from this many draws of each train document (tasks/templates.drawn_templates): 1 is the 13
    registry documents; more vary the documents as the requests already are."""
    shard: str | None = None
    """'i/n' (0 <= i < n): run only the i-th of n shares of the sampled tasks; `lamforge data merge` joins the
    shard folders."""


# Fields that say which records a run folder holds; merged folders must agree on them (shards.py).
IDENTITY_FIELDS = ("demonstrator", "split", "n", "seed", "families", "task_ids", "model", "plans", "attempts",
                   "temperature", "max_steps", "paraphrase", "document_draws", "name_prior")


def identity(config: CollectConfig) -> dict:
    values = asdict(config)
    return {**{k: str(values[k]) if isinstance(values[k], Path) else values[k] for k in IDENTITY_FIELDS},
            "shard": config.shard}


# ---------------------------------------------------------------------------------------------------------------
# One task


def to_samples(record: dict) -> list[dict]:
    """Post-process: each executed step becomes a state -> action sample."""
    samples = []
    for step in record["steps"]:
        if not step.get("state") or not step.get("action"):
            continue
        action = json.loads(step["action"])
        samples.append(StepSample(
            sample_id=f"{record['trajectory_id']}-s{step['step']}",
            trajectory_id=record["trajectory_id"], task_id=record["task_id"], family=record["family"],
            category=record["category"], state=step["state"], target=step["action"],
            success=record["success"], acceptable=[action["control_name"]] if action.get("control_name") else [],
            source=record["demonstrator"],
        ).model_dump())
    return samples


def worker_device(setting: str, index: int) -> str:
    """The device of worker `index` for a model demonstrator: 'auto' spreads the workers over the GPUs this process
    sees (a Ray actor sees only its own), so that they do not all load onto cuda:0."""
    if setting != "auto":
        return setting
    import torch

    count = torch.cuda.device_count()
    return f"cuda:{index % count}" if count else "cpu"


class TaskRunner:
    """Owns one WriterEnv and one demonstrator; runs task instances end to end with the one episode runner."""

    def __init__(self, config: CollectConfig, worker_index: int = 0):
        self.config = config
        self.env = WriterEnv(max_steps=config.max_steps + 5)
        options = ({"device": worker_device(config.device, worker_index), "dtype": config.dtype,
                    "name_prior": config.name_prior} if config.demonstrator == "model" else {})
        self.backend = make_backend(config.demonstrator, config.plans, config.model, **options)
        if config.temperature and hasattr(getattr(self.backend, "config", None), "temperature"):
            self.backend.config.temperature = config.temperature  # sampled attempts for self-boosting
        self.agent = Agent(backend=self.backend, env=self.env,
                           config=AgentConfig(max_steps=config.max_steps, record_prompts=True))

    def close(self) -> None:
        self.env.close()

    def run(self, instance: TaskInstance) -> dict:
        """The task's record: a trajectories.jsonl line, decision states still in its steps."""
        episode = None
        for attempt in range(1, self.config.attempts + 1):
            out_dir = Path(self.config.out) / "files" / f"{instance.task_id}-a{attempt}"
            for _ in range(2):  # an office crash fails only this try: it is retried once
                episode = run_episode(self.env, instance, self.agent, out_dir, demonstrator=self.config.demonstrator,
                                      attempt=attempt, judge=judge if self.config.judge else None)
                if episode.outcome != "env_error":
                    break
            if episode.success:
                break
        return episode.model_dump(mode="json")


def scratch_runner(config_dict: dict, scratch: str) -> TaskRunner:
    """A Ray actor's runner: the task files go to the actor's own `scratch` folder, and Ray gave a model actor its
    own GPU (CUDA_VISIBLE_DEVICES), index 0 of what it sees."""
    return TaskRunner(CollectConfig(**{**config_dict, "out": scratch}), worker_index=0)


# ---------------------------------------------------------------------------------------------------------------
# Local workers


def run_in_process(config: CollectConfig, todo: list[TaskInstance], commit: Callable[[dict], None]) -> None:
    runner = TaskRunner(config)
    try:
        for instance in todo:
            commit(runner.run(instance))
    finally:
        runner.close()


def _worker(config_dict: dict, index: int, tasks: mp.Queue, results: mp.Queue) -> None:
    config = CollectConfig(**config_dict)
    parent = os.getppid()
    runner = None
    try:
        runner = TaskRunner(config, worker_index=index)
        while True:
            if os.getppid() != parent:
                # The pipeline was killed: stop before the next task (all of them are queued from the start), close
                # the office on the way out, and do not wait to hand over results nobody reads.
                results.cancel_join_thread()
                return
            try:
                item = tasks.get(timeout=1.0)
            except queue.Empty:
                continue
            if item is None:
                return
            instance = TaskInstance.model_validate_json(item)
            results.put(json.dumps(runner.run(instance)))
    except Exception as exc:
        results.put(json.dumps({"worker_error": f"{type(exc).__name__}: {exc}"}))
    finally:
        if runner is not None:
            runner.close()


def run_in_processes(config: CollectConfig, todo: list[TaskInstance], commit: Callable[[dict], None],
                     workers: int) -> None:
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    config_dict = asdict(config)
    procs = [ctx.Process(target=_worker, args=(config_dict, i, tasks, results), daemon=True) for i in range(workers)]
    for p in procs:
        p.start()
    for instance in todo:
        tasks.put(instance.model_dump_json())
    for _ in procs:
        tasks.put(None)
    pending = len(todo)
    stopped = True  # until the loop ends normally: Ctrl-C, SIGTERM (lamforge/signals.py) or an error
    try:
        while pending:
            try:
                record = json.loads(results.get(timeout=5))
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    raise RuntimeError("all collection workers died; see the records written so far")
                continue
            if "worker_error" in record:
                raise RuntimeError(f"a collection worker failed to start: {record['worker_error']}")
            commit(record)
            pending -= 1
        stopped = False
    finally:
        # Tasks no worker took (the workers died, or a worker's error stopped the run) would otherwise keep this
        # process from exiting: the queue's feeder thread waits to flush them into a pipe that nobody reads.
        tasks.cancel_join_thread()
        for p in procs:
            if stopped:  # the tasks in flight are lost, as a stop promises; their workers would run the queue on
                p.terminate()
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()


# ---------------------------------------------------------------------------------------------------------------
# The run


def parse_shard(spec: str) -> tuple[int, int]:
    """'i/n' -> (i, n), with 0 <= i < n."""
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        raise ValueError(f"bad shard {spec!r}: write it as i/n, e.g. 0/4 for the first of 4 shares") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"bad shard {spec!r}: i/n needs n >= 1 and 0 <= i < n (shares are numbered from 0)")
    return index, count


def select_shard(instances: list[TaskInstance], spec: str) -> list[TaskInstance]:
    index, count = parse_shard(spec)
    return instances[index::count]


def plan_tasks(config: CollectConfig) -> list[TaskInstance]:
    """The run's instances: the deterministic sample, or this shard's share of it."""
    instances = sample_instances(config.split, config.n, seed=config.seed, families=config.families,
                                 task_ids=config.task_ids, document_draws=config.document_draws)
    return select_shard(instances, config.shard) if config.shard else instances


@exclusive_run_folder
def collect(config: CollectConfig, show_progress: bool = True) -> dict:
    config.out = Path(config.out)
    if not config.ray:
        # Before any task runs: without an office every episode would be recorded as an environment error, and
        # those records count as done, so a rerun after installing LibreOffice would collect nothing. (Ray's
        # workers run on other machines, which check their own.)
        require_binaries()
    t_start = time.perf_counter()
    t0 = time.perf_counter()
    instances = plan_tasks(config)
    instantiate_s = time.perf_counter() - t0
    new_records: list[dict] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ok {task.fields[ok]}")]
    with RunWriter(config.out) as writer, Progress(*columns, disable=not show_progress) as bar:
        write_identity(config.out, identity(config))
        todo = [i for i in instances if i.task_id not in writer.done]
        paraphrased = None
        if config.paraphrase and todo:
            paraphrased = ParaphraseReport()
            todo = paraphrase_with_endpoint(todo, paraphrased)
        workers = max(1, min(config.workers, len(todo)))
        task_bar = bar.add_task(f"collect {config.demonstrator}", total=len(todo), ok=0)

        def commit(record: dict) -> None:
            if writer.commit(record, to_samples(record)):
                new_records.append(record)
                bar.update(task_bar, advance=1, ok=sum(r["success"] for r in new_records))

        if todo and config.ray:
            from lamforge.data.ray_rollouts import run_on_ray  # Ray loads only for --ray runs

            run_on_ray(config, todo, commit, workers, make_runner=scratch_runner)
        elif todo and workers == 1:
            run_in_process(config, todo, commit)
        elif todo:
            run_in_processes(config, todo, commit, workers)

    summary = summarize(config, {i.task_id for i in instances}, new_records, instantiate_s,
                        time.perf_counter() - t_start)
    if paraphrased is not None and (paraphrased.paraphrased or paraphrased.kept_rules):
        summary["this_run"]["paraphrase"] = paraphrased.to_dict()
    write_json(config.out / SUMMARY, summary)
    return summary


def summarize(config: CollectConfig, wanted: set[str] | None, new_records: list[dict], instantiate_s: float,
              wall_s: float) -> dict:
    """Counts over the folder's records of the `wanted` task ids (all of them when None)."""
    records = [r for r in load_records(config.out) if wanted is None or r["task_id"] in wanted]
    n_ok = sum(r["success"] for r in records)
    by_family: dict[str, list[int]] = {}
    for r in records:
        by_family.setdefault(r["family"], [0, 0])
        by_family[r["family"]][0] += r["success"]
        by_family[r["family"]][1] += 1
    timing = {k: round(sum(r["timing"].get(k, 0.0) for r in new_records), 2) for k in ("instantiate_s", "execute_s", "evaluate_s")}
    timing["instantiate_s"] = round(timing["instantiate_s"] + instantiate_s, 2)
    judged = [r for r in records if r.get("judge")]
    summary = {
        "demonstrator": config.demonstrator,
        "split": config.split,
        **({"shard": config.shard} if config.shard else {}),
        "tasks": len(records),
        "successes": n_ok,
        "failures": len(records) - n_ok,
        "success_rate": round(n_ok / len(records), 4) if records else 0.0,
        "env_errors": sum(r["outcome"] == "env_error" for r in records),
        "samples": sum(1 for _ in open(config.out / SAMPLES)) if (config.out / SAMPLES).exists() else 0,
        "this_run": {"tasks": len(new_records), "wall_s": round(wall_s, 1), "workers": config.workers,
                     "executor": (f"ray ({config.ray})" if config.ray
                                  else "processes" if config.workers > 1 else "in-process"),
                     "tasks_per_hour": round(len(new_records) / wall_s * 3600, 1) if new_records and wall_s else 0.0,
                     "time_split_s": timing,
                     "backends": backends_of(new_records)},
        "per_family": {f: {"success": s, "tasks": t} for f, (s, t) in sorted(by_family.items())},
    }
    if judged:
        agree = sum((r["judge"].get("verdict") == "yes") == r["success"] for r in judged)
        summary["judge"] = {"judged": len(judged), "agreement_with_checker": round(agree / len(judged), 4)}
    return summary
