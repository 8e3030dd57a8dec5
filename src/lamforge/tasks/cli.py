"""`lamforge tasks ...`: browse, sample and verify the task suite."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The verified Writer task suite.", no_args_is_help=True)
console = Console()


def _registry():
    import lamforge.tasks.families  # noqa: F401
    from lamforge.tasks.base import REGISTRY

    return REGISTRY


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")):
    """List task families."""
    from lamforge.tasks.splits import UNSEEN_FAMILIES

    rows = [{"id": f.id, "category": f.category, "phrasings": len(f.phrasings), "held_out": f.id in UNSEEN_FAMILIES,
             "example": f.phrasings[0]} for f in _registry().values()]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{len(rows)} task families")
    for column in ("id", "category", "phrasings", "held_out", "example"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["id"], r["category"], str(r["phrasings"]), "yes" if r["held_out"] else "", r["example"])
    console.print(table)


@app.command()
def show(family: str):
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
    for instance in sample_instances("train", 2, families=[family]):
        console.print_json(instance.model_dump_json())


@app.command()
def sample(family: str = typer.Option(None, help="Only this family."), n: int = 5, seed: int = 0,
           split: str = typer.Option("train", help="train | test | unseen_phrasing | unseen_family")):
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
def variety(split: str = typer.Option("train", help="train | test | unseen_phrasing | unseen_family"),
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


@app.command()
def verify(family: list[str] = typer.Option(None, help="Families to verify (repeatable); all by default."),
           n: int = typer.Option(5, help="Instances per family."), as_json: bool = typer.Option(False, "--json")):
    """Run reference solutions and negative controls in the live app."""
    from lamforge.tasks.verify import summarize, verify as run

    registry = _registry()
    families = family or list(registry)
    unknown = [f for f in families if f not in registry]
    if unknown:
        console.print(f"[red]unknown families: {unknown}[/red]")
        raise typer.Exit(1)
    summary = summarize(run(families, n, progress=not as_json))
    if as_json:
        print(json.dumps(summary, indent=1))
    else:
        table = Table(title=f"reference pass rate {summary['reference_pass_rate']:.1%} over {summary['instances']} instances")
        for column in ("family", "category", "pass", "untouched rejected", "wrong rejected", "mean steps"):
            table.add_column(column)
        for r in summary["per_family"]:
            table.add_row(r["family"], r["category"], f"{r['reference_passed']}/{r['instances']}",
                          f"{r['untouched_rejected']}/{r['instances']}", f"{r['wrong_rejected']}/{r['instances']}",
                          str(r["mean_steps"]))
        console.print(table)
        for r in summary["per_family"]:
            for failure in r["failures"]:
                console.print(f"[yellow]{failure}[/yellow]")
    ok = summary["reference_pass_rate"] >= 0.98 and summary["negatives_all_rejected"]
    raise typer.Exit(0 if ok else 1)


@app.command("build-templates")
def build_templates_cmd(out: str = typer.Option(None, help="Folder; the cache by default.")):
    """Generate the template documents (idempotent)."""
    from pathlib import Path

    from lamforge.tasks.templates import build_templates

    for info in build_templates(Path(out) if out else None):
        console.print(f"{info.id:28} {info.split:5} {info.format:4} {'written' if info.written else 'cached '} {info.path}")
