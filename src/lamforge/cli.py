"""The `lamforge` command: mounts each stage's own Typer app, and runs the whole recipe (`lamforge pipeline`).

Every `lamforge` invocation imports every stage's CLI module, so those modules import their stage's heavy parts
(torch, transformers, the office bridge, the HTTP server) inside the commands that need them: start-up time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from lamforge.agent.cli import app as agent_app, run, serve, verify_tasks
from lamforge.allocator import restart_with_jemalloc
from lamforge.console import print_error, print_warning
from lamforge.data.cli import app as data_app
from lamforge.env.cli import app as env_app
from lamforge.eval.cli import app as eval_app, report
from lamforge.models.loading import DTYPE_HELP
from lamforge.tasks.cli import app as tasks_app
from lamforge.train.cli import app as train_app

app = typer.Typer(help="Build, run and evaluate a Large Action Model on LibreOffice Writer.", no_args_is_help=True)

for name, stage_app in (("env", env_app), ("tasks", tasks_app), ("data", data_app), ("train", train_app),
                        ("agent", agent_app), ("eval", eval_app)):
    app.add_typer(stage_app, name=name)
# Commands used often enough to sit at the top: `lamforge run`, `lamforge serve`, `lamforge report`.
app.command("run")(run)
app.command("serve")(serve)
app.command("report")(report)
# `tasks verify` runs each solution through the agent's episode runner, and tasks may not import agent: the command
# is the agent stage's, listed with the task suite's.
tasks_app.command("verify")(verify_tasks)


@app.command("pipeline")
def pipeline(preset: str = typer.Option("quick", help="tiny (CI, minutes) | quick (this machine, < 2 h) | full (GPU)"),
             out: Optional[Path] = typer.Option(None, help="Run folder (out/<preset> by default)."),
             skip_online: bool = typer.Option(False, help="Stop after offline evaluation."),
             ray: Optional[str] = typer.Option(
                 None, "--ray", help="Run collection, exploration and online evaluation in Ray actors: auto, local "
                                     "or a cluster ADDRESS."),
             dtype: str = typer.Option("auto", help=f"The weights exploration and evaluation load the models in: "
                                                    f"{DTYPE_HELP}."),
             document_draws: Optional[int] = typer.Option(
                 None, min=1, help="Train tasks start from this many draws of each of the 13 train documents (default: "
                                   "the preset's, 1).")):
    """The main job: mine plans, collect trajectories, train LAM1-LAM4 and the reward model, evaluate, report."""
    from lamforge.pipeline import run_pipeline  # start-up time: the pipeline imports torch and every stage
    from lamforge.signals import stop_signals_interrupt
    from lamforge.train.runtime import TrainingInterrupted

    try:
        with stop_signals_interrupt():  # SIGTERM, SIGHUP: as Ctrl-C in every stage, not only in training
            run_pipeline(preset, out or Path("out") / preset, skip_online=skip_online, ray=ray, dtype=dtype,
                         document_draws=document_draws)
    except TrainingInterrupted as stop:  # Ctrl-C, SIGTERM or SIGHUP during a training phase: not an error
        print_warning(f"{stop}; run the same command to resume")
        raise typer.Exit(130)
    except KeyboardInterrupt:  # in another stage: what each stage finished is kept (collections task by task)
        print_warning("stopped; run the same command to resume")
        raise typer.Exit(130)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:  # OSError: a full disk, a permission
        print_error(str(exc))
        raise typer.Exit(1)


# Commands that restart under jemalloc (lamforge/allocator.py): the ones that train.
JEMALLOC_COMMANDS = ("pipeline", "train")


def main() -> None:
    """The `lamforge` executable. The jemalloc restart happens here, before the command runs, and not in the commands:
    a program that calls `app` itself (a test's CliRunner, a launcher's worker script) must never have its process
    replaced under it."""
    args = sys.argv[1:]
    if args and args[0] in JEMALLOC_COMMANDS and not {"--help", "-h"} & set(args):
        missing = restart_with_jemalloc()
        if missing:
            print_warning(missing)
    app()


if __name__ == "__main__":
    main()
