"""`lamforge tasks ...`: browse and sample the task suite. `tasks verify` runs its solutions through the agent, so it
is the agent stage's command (agent/cli.py), mounted here by lamforge/cli.py."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

# The commands import the task suite inside themselves: start-up time (registering the families loads faker and
# builds the phrasings, ~0.15 s, and every `lamforge` invocation imports this module).

app = typer.Typer(help="The verified Writer task suite.", no_args_is_help=True)
console = Console()


def _registry():
    import lamforge.tasks.families  # noqa: F401
    from lamforge.tasks.base import REGISTRY

    return REGISTRY


def known_split(split: str | None) -> str | None:
    """Typer callback of every --split option: an unknown split is refused before the command runs, by name."""
    from lamforge.tasks.splits import SPLITS

    if split is not None and split not in SPLITS:
        raise typer.BadParameter(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"),
          split: str = typer.Option(None, callback=known_split, help="Only the families this split covers (lo_templates, say), with the "
                                               "documents they fit and what is left out.")):
    """List task families."""
    from lamforge.tasks.splits import UNSEEN_FAMILIES, families_for

    registry = _registry()
    covered = families_for(split) if split else list(registry)
    rows = [{"id": f.id, "category": f.category, "phrasings": len(f.phrasings), "held_out": f.id in UNSEEN_FAMILIES,
             "example": f.phrasings[0]} for f in registry.values() if f.id in covered]
    summary = _split_summary(split, covered) if split else None
    if summary:
        for row in rows:
            row["documents"] = summary["documents_per_family"][row["id"]]
    if as_json:
        print(json.dumps({"split": split, "families": rows, **summary} if summary else rows, indent=1))
        return
    table = Table(title=f"{len(rows)} task families" + (f" in the {split} split" if split else ""))
    columns = ("id", "category", "phrasings", "held_out", "example") + (("documents",) if summary else ())
    for column in columns:
        table.add_column(column)
    for r in rows:
        table.add_row(r["id"], r["category"], str(r["phrasings"]), "yes" if r["held_out"] else "", r["example"],
                      *((str(r["documents"]),) if summary else ()))
    console.print(table)
    if summary:
        console.print(f"{len(summary['documents'])} documents; families absent (fit no document): "
                      f"{', '.join(summary['families_absent']) or 'none'}")
        by_reason: dict[str, list[str]] = {}
        for tid, reason in summary["documents_excluded"].items():
            by_reason.setdefault(reason, []).append(tid)
        for reason, ids in by_reason.items():
            shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
            console.print(f"[yellow]{len(ids)} left out[/yellow] ({shown}): {reason}")


def _split_summary(split: str, covered: list[str]) -> dict | None:
    """For lo_templates: its documents, those left out and why, and how many documents each family fits."""
    from lamforge.tasks.splits import LO_PATIENCE, families_for, templates_for
    from lamforge.tasks.templates import LO_SPLIT

    if split != LO_SPLIT:
        return None
    from lamforge.tasks.lo_templates import catalogue

    registry = _registry()
    documents = templates_for(split)
    fits = {f: sum(any(registry[f].instantiate(d, s, split) for s in range(LO_PATIENCE)) for d in documents)
            for f in covered}
    seen = families_for("test")
    return {"documents": [d.id for d in documents], "documents_excluded": catalogue().excluded,
            "families_absent": [f for f in seen if f not in covered], "documents_per_family": fits}


@app.command()
def show(family: str, split: str = typer.Option("train", callback=known_split, help="The split the example instances come from.")):
    """Show one family: its phrasings and an example instance."""
    from lamforge.tasks.splits import sample_instances

    registry = _registry()
    if family not in registry:
        console.print(f"[red]unknown family {family!r}[/red]; see `lamforge tasks list`")
        raise typer.Exit(1)
    f = registry[family]
    console.print(f"[bold]{f.id}[/bold] ({f.category})")
    for i, p in enumerate(f.phrasings):
        console.print(f"  {i}{' (held out)' if i == len(f.phrasings) - 1 else ''}: {p}")
    instances = sample_instances(split, 2, families=[family])
    if not instances:
        console.print(f"{family} has no instances in the {split} split (it fits none of its documents)")
    for instance in instances:
        console.print_json(instance.model_dump_json())


@app.command()
def sample(family: str = typer.Option(None, help="Only this family."), n: int = 5, seed: int = 0,
           split: str = typer.Option("train", callback=known_split, help="train | validation | test | unseen_phrasing | unseen_family | lo_templates")):
    """Print N task instances as JSON lines."""
    from lamforge.tasks.splits import sample_instances

    _registry()
    try:
        instances = sample_instances(split, n, seed=seed, families=[family] if family else None)
    except (ValueError, KeyError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1)
    for instance in instances:
        print(instance.model_dump_json())


@app.command()
def variety(split: str = typer.Option("train", callback=known_split, help="train | validation | test | unseen_phrasing | unseen_family"),
            n: int = typer.Option(1000, help="Instances to sample."), seed: int = 0,
            as_json: bool = typer.Option(False, "--json")):
    """How varied the requests are: distinct instructions, wordings (values masked) and argument values per family."""
    from lamforge.tasks.phrasing import variety as measure
    from lamforge.tasks.splits import sample_instances

    registry = _registry()
    try:
        instances = sample_instances(split, n, seed=seed)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1)
    per_family = measure(instances, lambda f: registry[f].phrasings)
    totals = {k: sum(v[k] for v in per_family.values()) for k in ("instances", "instructions", "wordings")}
    if as_json:
        print(json.dumps({"split": split, "n": n, "seed": seed, "total": totals, "per_family": per_family}, indent=1))
        return
    table = Table(title=f"{totals['instances']} {split} instances: {totals['instructions']} distinct instructions, "
                        f"{totals['wordings']} distinct wordings")
    for column in ("family", "instances", "instructions", "wordings", "distinct argument values"):
        table.add_column(column)
    for family, m in per_family.items():
        values = ", ".join(f"{k} {v}" for k, v in m["argument_values"].items())
        table.add_row(family, str(m["instances"]), str(m["instructions"]), str(m["wordings"]), values)
    console.print(table)


@app.command("build-templates")
def build_templates_cmd(out: str = typer.Option(None, help="Folder; the cache by default.")):
    """Generate the template documents (idempotent)."""
    from pathlib import Path

    from lamforge.tasks.template_files import build_templates

    for info in build_templates(Path(out) if out else None):
        console.print(f"{info.id:28} {info.split:5} {info.format:4} {'written' if info.written else 'cached '} {info.path}")
