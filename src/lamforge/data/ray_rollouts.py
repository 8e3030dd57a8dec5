"""Rollouts on Ray: collection, exploration and online evaluation episodes in Ray actors, one office per actor.

Each actor owns a TaskRunner (collect.py) (one WriterEnv, one demonstrator) and returns each task's record to the driver, the
collecting process, which is the only writer of the run folder (run_folder.py): an actor writes nothing there. So
whatever the actors do (die, restart, run a task twice), a task lands once.

Failures: an actor that dies (a crashed node, a kill) is restarted by Ray, which starts a fresh office, and its
task in flight is retried (max_restarts, max_task_retries). An actor that cannot come back is dropped and its task
goes to another; when none is left the run stops with the cause, keeping every record written so far, and a rerun
resumes.

GPUs: a model demonstrator's actors ask Ray for one GPU each when the cluster has as many, else an equal share
(gpu_share_per_actor), so Ray pins each to its own GPU, or to one it shares with as few as possible
(CUDA_VISIBLE_DEVICES), and `device='auto'` loads it there.

Ray is imported only here, so runs without `--ray` never load it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import lamforge
from lamforge.tasks.base import TaskInstance

# Restarts of a dead actor (each starts a new office), and retries of the call it was running when it died.
MAX_RESTARTS = 3
MAX_TASK_RETRIES = 3
# How often a task whose actor could not be restarted is handed to another actor.
MAX_REQUEUES = 2


def _ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'ray>=2.60' (a lamforge dependency)") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str, workers: int = 1) -> Iterator[None]:
    """Connected to Ray for the block: to the cluster at `address`, or to a new local instance ('local'; 'auto' when
    no cluster is found). Reuses a connection this process already has, and leaves it open; shuts down only what
    it started."""
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    from ray.exceptions import AuthenticationError

    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    connected = False
    if address != "local":
        try:
            # The cluster's nodes run this process's lamforge, shipped with the job (a few MB), so that every actor
            # samples, runs and records tasks as the driver does; the nodes need lamforge's dependencies installed.
            ray.init(address=address, runtime_env={"py_modules": [str(Path(lamforge.__file__).parent)]}, **options)
            connected = True
        except (ConnectionError, AuthenticationError) as exc:
            if address != "auto":
                raise RuntimeError(
                    f"no Ray cluster at {address!r}, or it refused this process: {exc}. Start one with `ray start "
                    f"--head`, or use --ray local for a Ray instance on this machine. A cluster with token "
                    f"authentication (Ray's default) needs RAY_AUTH_MODE=token here, and its token in RAY_AUTH_TOKEN "
                    f"or ~/.ray/auth_token") from None
    if not connected:
        # One CPU per actor, at least as many as the machine has. Ray's servers cannot be held to loopback: its
        # gRPC servers listen on every interface and its runtime-env agent on the node's address (Ray 2.60 has no
        # setting for either, and turns a loopback _node_ip_address into the node's address). Its token
        # authentication, on by default for a new local instance (RAY_AUTH_MODE unset), guards them.
        _start_local(ray, max(workers, os.cpu_count() or 1), options)
    try:
        # Ray's driver prints its error messages (a worker that died, say) to stdout; they are diagnostics, and
        # stdout carries the command's output (`--json`).
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        ray.shutdown()


def _start_local(ray, cpus: int, options: dict) -> None:
    """A new local Ray instance. Ray gives its node a fixed 30 s to start (not a setting in Ray 2.60) and then raises
    a bare Exception; on a machine busy with other work that happens, so one more try, then a clear error."""
    for attempt in (1, 2):
        try:
            ray.init(address="local", num_cpus=cpus, **options)
            return
        except Exception as exc:  # Ray raises a bare Exception for the timeout
            with contextlib.suppress(Exception):
                ray.shutdown()
            if attempt == 2:
                raise RuntimeError(f"Ray could not start a local instance: {exc} (twice; is the machine "
                                   f"overloaded?). Run without --ray to use local worker processes") from None
            print(f"Ray did not start ({exc}); trying once more", file=sys.stderr)


class RolloutActor:
    """One office and one demonstrator in a Ray worker process (the remote class is made in run_on_ray)."""

    def __init__(self, config_dict: dict, make_runner: Callable[[dict, str], object]):
        from lamforge.env.reaper import remove_on_exit  # in the actor's process

        # The files a task saves go to the actor's own scratch folder, not the run folder: the actor may be on
        # another machine, and nothing reads them after the check. The reaper removes it however the actor ends.
        self.scratch = tempfile.mkdtemp(prefix="lamforge-rollout-")
        remove_on_exit(self.scratch)
        self.runner = make_runner(config_dict, self.scratch)

    def pid(self) -> int:
        return os.getpid()

    def run(self, instance_json: str) -> str:
        return json.dumps(self.runner.run(TaskInstance.model_validate_json(instance_json)))

    def close(self) -> None:
        from lamforge.env.reaper import forget

        self.runner.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        forget(self.scratch)


def gpu_share_per_actor(gpus: float, workers: int) -> float:
    """The GPU each model actor asks Ray for: a whole one while there are enough, else an equal share, so that
    every actor gets scheduled (an actor that asks for more than the cluster has would wait forever) and Ray puts
    at most ceil(workers / gpus) actors on one GPU. 0 without GPUs."""
    whole = int(gpus)
    if whole < 1:
        return 0
    return 1 / math.ceil(workers / whole) if workers > whole else 1


def run_on_ray(config, todo: list[TaskInstance], commit: Callable[[dict], None], workers: int,
               make_runner: Callable[[dict, str], object]) -> None:
    """Run `todo` on `workers` actors; `commit` gets each record here, in the driver, as it arrives. Each actor
    makes its runner with `make_runner(config_dict, scratch_folder)` (collect.scratch_runner): this module does not
    import the dataflow, which imports it."""
    ray = _ray()
    from ray.exceptions import RayActorError

    with ray_session(config.ray, workers):
        # An actor waits for its CPU until one is free: more actors than the cluster has CPUs would never finish.
        workers = max(1, min(workers, int(ray.cluster_resources().get("CPU", workers))))
        wants_gpu = config.demonstrator == "model" and not config.device.startswith("cpu")
        gpu_share = gpu_share_per_actor(ray.cluster_resources().get("GPU", 0), workers) if wants_gpu else 0
        actor_class = ray.remote(RolloutActor).options(
            num_cpus=1, num_gpus=gpu_share, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)
        # Actors start in another folder (or on another machine, where these must be at the same path): the
        # plans file and a checkpoint folder go to them as absolute paths.
        config_dict = {**asdict(config), "ray": None, "plans": _absolute(config.plans),
                       "model": _absolute(config.model)}
        actors = [actor_class.remote(config_dict, make_runner) for _ in range(workers)]
        waiting = deque(todo)
        requeued: dict[str, int] = {}
        abandoned: list[str] = []
        in_flight: dict = {}  # ObjectRef -> (actor, instance)

        def hand_out(actor) -> None:
            if waiting:
                instance = waiting.popleft()
                in_flight[actor.run.remote(instance.model_dump_json())] = (actor, instance)

        for actor in actors:
            hand_out(actor)
        try:
            while in_flight:
                (ref,), _ = ray.wait(list(in_flight), num_returns=1)
                actor, instance = in_flight.pop(ref)
                try:
                    record = json.loads(ray.get(ref))
                except RayActorError as exc:  # the actor is gone for good: restarts spent, or its start failed
                    actors = [a for a in actors if a is not actor]
                    requeued[instance.task_id] = requeued.get(instance.task_id, 0) + 1
                    if requeued[instance.task_id] <= MAX_REQUEUES:
                        waiting.appendleft(instance)
                    else:
                        abandoned.append(instance.task_id)
                    if not actors:
                        raise RuntimeError(f"every rollout actor died; the records so far are written, rerun to "
                                           f"resume. Last cause: {_cause(exc)}") from None
                    busy = {id(a) for a, _ in in_flight.values()}
                    for idle in (a for a in actors if id(a) not in busy):
                        hand_out(idle)
                    continue
                commit(record)
                hand_out(actor)
        finally:
            with contextlib.suppress(Exception):
                ray.get([a.close.remote() for a in actors], timeout=60)  # close the offices before the processes
            for actor in actors:
                ray.kill(actor)
        if abandoned:
            raise RuntimeError(f"{len(abandoned)} task(s) lost their actors {MAX_REQUEUES + 1} times (e.g. "
                               f"{abandoned[0]}); the rest is written, rerun to try them again")


def _absolute(path: str | Path | None) -> str | None:
    """A path that exists here, made absolute; anything else (None, a model hub id) as it is."""
    if path is None:
        return None
    return str(Path(path).resolve()) if Path(path).exists() else str(path)


def _cause(exc: Exception) -> str:
    """The last line of a Ray error: the exception that killed the actor, when it raised one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
