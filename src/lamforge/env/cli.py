"""`lamforge env ...`: look at what the model sees, and measure the environment."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lamforge.console import print_error
from lamforge.env.bench import run_bench
from lamforge.env.office import OfficeError
from lamforge.env.writer_env import WriterEnv
from lamforge.schema import Action, Observation

app = typer.Typer(help="The LibreOffice Writer environment.", no_args_is_help=True)
console = Console()


def _fail(message: str) -> None:
    print_error(message)
    raise typer.Exit(1)


@app.command()
def probe(doc: Path = typer.Option(None, help="A .docx/.odt to open; a blank document if omitted."),
          as_json: bool = typer.Option(False, "--json", help="Print the observation as JSON.")):
    """Print the observation the model would see for DOC."""
    env = WriterEnv()
    try:
        obs, _ = env.reset(options={"doc": str(doc) if doc else None})
    except (OfficeError, ValueError, FileNotFoundError) as exc:
        env.close()
        _fail(str(exc))
    env.close()
    if as_json:
        print(json.dumps(obs, ensure_ascii=False, indent=1))
        return
    o = Observation.model_validate(obs)
    table = Table(title=f"{o.window} window: {o.window_name} ({len(o.controls)} controls)")
    for column in ("label", "type", "name", "value", "states"):
        table.add_column(column)
    for c in o.controls:
        table.add_row(c.label, c.type, c.name, c.value or "", ", ".join(c.states))
    console.print(table)
    canvas = Table(title=f"canvas ({len(o.canvas)} paragraphs)")
    for column in ("¶", "style", "align", "text"):
        canvas.add_column(column)
    for p in o.canvas:
        canvas.add_row(str(p.index) if p.index >= 0 else p.table, p.style, p.align, p.text[:80])
    console.print(canvas)


@app.command()
def bench(as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
          n: int = typer.Option(40, help="Observations to time."),
          sandbox: bool = typer.Option(False, "--sandbox", help="Time the office in the sandbox `lamforge run` "
                                                                "starts it in.")):
    """Observation, action and reset latency (p50/p95), beside a naive per-node UNO walk."""
    try:
        result = run_bench(n_observe=n, sandbox=sandbox)
    except OfficeError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(result, indent=1))
        return
    table = Table(title="lamforge env bench")
    table.add_column("measure")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    for key in ("observe", "observe_in_office", "action_click", "action_select_paragraph", "reset"):
        table.add_row(key, str(result[key]["p50_ms"]), str(result[key]["p95_ms"]))
    console.print(table)
    console.print(f"controls: {result['controls']}; naive UNO walk: {result['naive_uno_walk']['median_ms']} ms "
                  f"({result['naive_uno_walk']['nodes']} nodes); speed-up {result['speedup_vs_naive']}x")


@app.command()
def demo(out: Path = typer.Option(Path("out/env-demo.docx"), help="Where to save the edited document.")):
    """Drive Writer through a few real actions and save the result (the pre-pipeline `make demo`)."""
    env = WriterEnv()
    try:
        obs, _ = env.reset()
        steps = [
            {"function": "keyboard_input", "args": {"keys": "lamforge demo{Enter}This sentence has a bold word."}},
            {"function": "select_text", "args": {"text": "bold"}},
        ]
        for action in steps:
            obs, _, _, _, info = env.step(action)
            console.print(f"{action['function']}: {info['result'] or info['error']}")
        bold = next(c for c in Observation.model_validate(obs).controls if c.name == "Bold")
        _, _, _, _, info = env.step(Action(control_label=bold.label, control_name="Bold", function="click_input"))
        console.print(f"click_input Bold: {info['result'] or info['error']} (grounding: {info['grounding']['decision']})")
        state = env.doc_state()
        console.print(f"'bold' is bold in the document: {all(r.bold for r in state.runs_of('bold'))}")
        console.print(f"saved {env.save_as(out)}")
    except (OfficeError, ValueError) as exc:
        _fail(str(exc))
    finally:
        env.close()
