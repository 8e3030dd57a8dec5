"""The dataflow: instantiate -> execute -> evaluate -> post-process, resumable and parallel.

Outputs in the run folder:
- trajectories.jsonl  every task, success or failure, with its steps, outcome and the checker's reason
- samples.jsonl       step-wise StepSamples (the structured decision state -> action JSON)
- ufo/<task_id>.json  each task in UFO dataflow's result schema, so UFO users can read our data
- summary.json        counts, success rate, throughput and where the time went

Resume rule: a task is done when its trajectory line is in trajectories.jsonl. Its samples are written first and
the trajectory line last, so after a kill the samples of a task without a trajectory line are dropped and the task
runs again: nothing is lost, duplicated or half-written.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

import lamforge.tasks.families  # noqa: F401  (registers the task families, also in spawned workers)
from lamforge.agent.factory import make_backend
from lamforge.agent.guard import GuardPolicy
from lamforge.agent.loop import Agent, AgentConfig
from lamforge.data.instantiate import instantiate
from lamforge.data.judge import judge
from lamforge.data.paraphrase import ParaphraseReport, paraphrase_with_endpoint
from lamforge.data.runlock import exclusive_run_folder
from lamforge.env.office import OfficeError
from lamforge.env.writer_env import WriterEnv
from lamforge.progress import Progress
from lamforge.records import StepSample
from lamforge.schema import Observation
from lamforge.tasks.base import REGISTRY, TaskInstance
from lamforge.tasks.template_files import template_path


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
    """Parallel workers, each with its own LibreOffice."""
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


# ---------------------------------------------------------------------------------------------------------------
# Files


def _repair_jsonl(path: Path) -> None:
    """Drop a half-written last line left by a kill."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _append(handle, record: dict) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def recover(out: Path) -> set[str]:
    """Task ids already done; samples of unfinished tasks are removed."""
    out.mkdir(parents=True, exist_ok=True)
    trajectories, samples = out / "trajectories.jsonl", out / "samples.jsonl"
    _repair_jsonl(trajectories)
    _repair_jsonl(samples)
    done = set()
    if trajectories.exists():
        done = {json.loads(line)["task_id"] for line in trajectories.read_text().splitlines() if line.strip()}
    if samples.exists():
        lines = samples.read_text().splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line)["task_id"] in done]
        if len(kept) != len(lines):
            tmp = samples.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            tmp.replace(samples)
    return done


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


def ufo_record(record: dict) -> dict:
    """UFO dataflow's result schema (errors as strings, as its schema says)."""
    return {
        "unique_id": record["task_id"],
        "app": "writer",
        "original": {"original_task": record["instruction"], "original_steps": record.get("plan") or []},
        "instantiation_result": {
            "choose_template": {"result": record["template_id"], "error": ""},
            "prefill": {"result": {"instantiated_request": record["instruction"],
                                   "instantiated_plan": [json.loads(s["action"]) for s in record["steps"] if s.get("action")]},
                        "error": ""},
            "instantiation_evaluation": {"result": {"judge": True, "thought": "sampled from a verified task family",
                                                    "request_type": record["family"]}, "error": ""},
        },
        "execution_result": {
            "result": {"complete": "yes" if record["success"] else "no", "reason": record["reason"],
                       "outcome": record["outcome"], "judge": record.get("judge")},
            "error": "" if record["outcome"] != "env_error" else record["reason"],
        },
        "time_cost": {"instantiation": record["timing"]["instantiate_s"], "execution": record["timing"]["execute_s"],
                      "evaluation": record["timing"]["evaluate_s"], "total": record["timing"]["total_s"]},
    }


class TaskRunner:
    """Owns one WriterEnv and one demonstrator; runs task instances end to end."""

    def __init__(self, config: CollectConfig):
        self.config = config
        self.env = WriterEnv(max_steps=config.max_steps + 5)
        self.backend = make_backend(config.demonstrator, config.plans, config.model)
        if config.temperature and hasattr(getattr(self.backend, "config", None), "temperature"):
            self.backend.config.temperature = config.temperature  # sampled attempts for self-boosting
        self.agent = Agent(backend=self.backend, env=self.env,
                           config=AgentConfig(max_steps=config.max_steps, record_prompts=True))

    def close(self) -> None:
        self.env.close()

    def run(self, instance: TaskInstance) -> dict:
        record = None
        for attempt in range(1, self.config.attempts + 1):
            record = self._attempt(instance, attempt)
            if record["outcome"] == "env_error":
                record = self._attempt(instance, attempt)  # an office crash fails only this try; retried once
            if record["success"]:
                break
        return record

    def _attempt(self, instance: TaskInstance, attempt: int) -> dict:
        family = REGISTRY[instance.family]
        t0 = time.perf_counter()
        out_dir = self.config.out / "files" / f"{instance.task_id}-a{attempt}"
        base = {"task_id": instance.task_id, "trajectory_id": f"{instance.task_id}-{self.config.demonstrator}-a{attempt}",
                "family": instance.family, "category": instance.category, "instruction": instance.instruction,
                "template_id": instance.template_id, "params": instance.params, "split": instance.split,
                "demonstrator": self.config.demonstrator, "attempt": attempt, "steps": [], "judge": None}
        timing = {"instantiate_s": 0.0, "execute_s": 0.0, "evaluate_s": 0.0}
        try:
            obs, _ = self.env.reset(options={"doc": str(template_path(instance.template_id)), "out_dir": str(out_dir)})
            for prep in family.setup(instance.params):
                obs, _, _, _, info = self.env.step(prep)
                if info["error"]:
                    raise RuntimeError(f"task setup failed: {info['error']}")
            self.env.reset_step_count()
            before = self.env.doc_state() if self.config.judge else None
            if hasattr(self.backend, "start"):
                self.backend.start(instance)
            self.agent.policy = GuardPolicy(output_dir=out_dir)  # file tasks may write here and nowhere else
            t1 = time.perf_counter()
            timing["instantiate_s"] = t1 - t0
            result = self.agent.run(instance.instruction, obs=Observation.model_validate(obs))
            t2 = time.perf_counter()
            timing["execute_s"] = t2 - t1
            steps = [s.model_dump(mode="json") for s in result.steps]
            if result.outcome == "env_error":
                return dict(base, steps=steps, success=False, outcome="env_error", reason=result.reason,
                            timing=dict(timing, total_s=time.perf_counter() - t0))
            state = self.env.doc_state()
            verdict = family.check(instance.params, state, out_dir)
            judge = self._judge(instance, result, before, state) if self.config.judge else None
            timing["evaluate_s"] = time.perf_counter() - t2
            reason = verdict.reason if verdict.success or result.outcome == "finish" else f"{result.outcome}: {result.reason}; {verdict.reason}"
            return dict(base, steps=steps, success=verdict.success, outcome="success" if verdict.success else "failure",
                        reason=reason, agent_outcome=result.outcome, judge=judge, plan=self._plan(),
                        timing=dict(timing, total_s=time.perf_counter() - t0))
        except Exception as exc:  # one broken task must not stop the run; it is recorded with its reason
            outcome = "env_error" if isinstance(exc, OfficeError) else "failure"
            return dict(base, success=False, outcome=outcome, reason=f"{type(exc).__name__}: {exc}",
                        timing=dict(timing, total_s=time.perf_counter() - t0))

    def _plan(self) -> list[str] | None:
        """The mined plan the plan demonstrator followed (UFO's original_steps)."""
        plan = getattr(self.backend, "plan", None)
        return list(plan.plan) if plan is not None and hasattr(plan, "plan") else None

    def _judge(self, instance, result, before, after) -> dict | None:
        return judge(instance.instruction, result, before, after)


# ---------------------------------------------------------------------------------------------------------------
# Workers


def _worker(config_dict: dict, tasks: mp.Queue, results: mp.Queue) -> None:
    config = CollectConfig(**config_dict)
    parent = os.getppid()
    runner = None
    try:
        runner = TaskRunner(config)
        while True:
            try:
                item = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:
                    return  # the pipeline was killed: stop, and close the office on the way out
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


@exclusive_run_folder
def collect(config: CollectConfig, show_progress: bool = True) -> dict:
    config.out = Path(config.out)
    t_start = time.perf_counter()
    done = recover(config.out)
    t0 = time.perf_counter()
    instances = instantiate(config.split, config.n, seed=config.seed, families=config.families, task_ids=config.task_ids)
    instantiate_s = time.perf_counter() - t0
    todo = [i for i in instances if i.task_id not in done]
    paraphrased = None
    if config.paraphrase:
        paraphrased = ParaphraseReport()
        todo = paraphrase_with_endpoint(todo, paraphrased)
    workers = max(1, min(config.workers, len(todo)))
    ufo_dir = config.out / "ufo"
    ufo_dir.mkdir(parents=True, exist_ok=True)

    new_records: list[dict] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ok {task.fields[ok]}")]
    with open(config.out / "samples.jsonl", "a") as samples_f, open(config.out / "trajectories.jsonl", "a") as traj_f, \
            Progress(*columns, disable=not show_progress) as bar:
        task_bar = bar.add_task(f"collect {config.demonstrator}", total=len(todo), ok=0)

        def commit(record: dict) -> None:
            for sample in to_samples(record):
                _append(samples_f, sample)
            _sync(samples_f)
            slim = dict(record, steps=[{k: v for k, v in st.items() if k != "state"} for st in record["steps"]])
            _append(traj_f, slim)  # the commit marker: written last; decision states live in samples.jsonl only
            _sync(traj_f)
            (ufo_dir / f"{record['task_id']}.json").write_text(json.dumps(ufo_record(record), indent=1))
            new_records.append(record)
            bar.update(task_bar, advance=1, ok=sum(r["success"] for r in new_records))

        if todo and workers == 1:
            runner = TaskRunner(config)
            try:
                for instance in todo:
                    commit(runner.run(instance))
            finally:
                runner.close()
        elif todo:
            ctx = mp.get_context("spawn")
            tasks, results = ctx.Queue(), ctx.Queue()
            config_dict = asdict(config)
            procs = [ctx.Process(target=_worker, args=(config_dict, tasks, results), daemon=True) for _ in range(workers)]
            for p in procs:
                p.start()
            for instance in todo:
                tasks.put(instance.model_dump_json())
            for _ in procs:
                tasks.put(None)
            pending = len(todo)
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
            finally:
                for p in procs:
                    p.join(timeout=30)
                    if p.is_alive():
                        p.terminate()

    summary = summarize(config, instances, new_records, instantiate_s, time.perf_counter() - t_start)
    if paraphrased is not None and (paraphrased.paraphrased or paraphrased.kept_rules):
        summary["this_run"]["paraphrase"] = paraphrased.to_dict()
    (config.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_records(out: Path) -> list[dict]:
    path = Path(out) / "trajectories.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def summarize(config: CollectConfig, instances: list[TaskInstance], new_records: list[dict], instantiate_s: float,
              wall_s: float) -> dict:
    records = load_records(config.out)
    wanted = {i.task_id for i in instances}
    records = [r for r in records if r["task_id"] in wanted]
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
        "tasks": len(records),
        "successes": n_ok,
        "failures": len(records) - n_ok,
        "success_rate": round(n_ok / len(records), 4) if records else 0.0,
        "env_errors": sum(r["outcome"] == "env_error" for r in records),
        "samples": sum(1 for _ in open(config.out / "samples.jsonl")) if (config.out / "samples.jsonl").exists() else 0,
        "this_run": {"tasks": len(new_records), "wall_s": round(wall_s, 1), "workers": config.workers,
                     "tasks_per_hour": round(len(new_records) / wall_s * 3600, 1) if new_records and wall_s else 0.0,
                     "time_split_s": timing},
        "per_family": {f: {"success": s, "tasks": t} for f, (s, t) in sorted(by_family.items())},
    }
    if judged:
        agree = sum((r["judge"].get("verdict") == "yes") == r["success"] for r in judged)
        summary["judge"] = {"judged": len(judged), "agreement_with_checker": round(agree / len(judged), 4)}
    return summary
