"""The `lamforge` command: a thin shell that mounts each stage's own Typer app."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(help="Build, run and evaluate a Large Action Model on LibreOffice Writer.", no_args_is_help=True)

# Each stage owns its commands in <stage>/cli.py; a stage that is not built yet simply has no commands.
STAGES = {
    "env": "lamforge.env.cli",
    "tasks": "lamforge.tasks.cli",
    "data": "lamforge.data.cli",
    "train": "lamforge.train.cli",
    "agent": "lamforge.agent.cli",
    "eval": "lamforge.eval.cli",
}

for name, module_name in STAGES.items():
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        continue
    app.add_typer(module.app, name=name)
    # Top-level commands a stage exposes directly (`lamforge run`, `lamforge serve`, `lamforge pipeline`, ...).
    for command in getattr(module, "TOP_LEVEL", []):
        app.command(command.__name__.rstrip("_"))(command)


if __name__ == "__main__":
    app()
