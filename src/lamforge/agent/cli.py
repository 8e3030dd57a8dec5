"""Commands of the agent stage. `lamforge serve` and `lamforge run` are mounted at the top level, and `lamforge tasks
verify` under tasks (lamforge/cli.py)."""

from __future__ import annotations

import typer
from rich.console import Console

from lamforge.agent.run_command import run
from lamforge.console import print_error
from lamforge.models.loading import DTYPE_HELP
from lamforge.tasks.cli import known_split

# serve, bench and verify_tasks import the backends (the openai SDK, transformers), the server (FastAPI, uvicorn) and
# the task suite inside themselves: start-up time, since every `lamforge` invocation imports this module.

app = typer.Typer(help="Run the LAM as an agent in Writer, or serve it to other agent frameworks.", no_args_is_help=True)
console = Console(stderr=True)


def serve(
    model: str = typer.Option(..., "--model", help="A trained LAM folder, a Hugging Face id, 'default' or 'tiny'."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind. Anything but loopback exposes the model."),
    port: int = typer.Option(8000, help="TCP port (0 picks a free one)."),
    api_key: str = typer.Option(None, envvar="LAMFORGE_SERVE_KEY",
                                help="Require `Authorization: Bearer KEY` (or set LAMFORGE_SERVE_KEY)."),
    model_name: str = typer.Option("lamforge", help="The model id clients send and /v1/models lists."),
    dtype: str = typer.Option("auto", help=f"{DTYPE_HELP} (CPU)."),
    decoding: str = typer.Option("auto", help="auto: guided for lamforge prompts, free otherwise; or free."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    threads: int = typer.Option(None, help="CPU threads for torch."),
    max_tokens: int = typer.Option(512, help="Upper bound on a request's max_tokens."),
    max_body_kb: int = typer.Option(1024, help="Largest accepted request body, in KiB."),
):
    """Serve a LAM as an OpenAI-compatible /v1/chat/completions endpoint (for UFO or any other agent framework)."""
    from lamforge.agent.backends import BackendError
    from lamforge.agent.factory import make_backend
    from lamforge.agent.server import LAMServer, ServeConfig, is_loopback

    if decoding not in ("auto", "free"):
        print_error(f"--decoding must be auto or free, not {decoding!r}")
        raise typer.Exit(2)
    if not is_loopback(host) and not api_key:
        console.print(f"[yellow]warning:[/] serving on {host} without an API key: anyone who can reach this port can "
                      "use the model. Pass --api-key.")
    with console.status(f"loading {model} ..."):
        try:
            backend = make_backend("model", model=model, dtype=dtype, device=device, threads=threads,
                                   max_new_tokens=max_tokens)
        except BackendError as exc:
            print_error(str(exc))
            raise typer.Exit(1) from None
    config = ServeConfig(host=host, port=port, api_key=api_key, model_name=model_name, max_tokens_limit=max_tokens,
                         max_body_bytes=max_body_kb * 1024, decoding=decoding)
    try:
        server = LAMServer(backend, config)
    except OSError as exc:
        print_error(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(1) from None
    console.print(f"serving {model} ({backend.dtype}, {backend.model.device}) as [bold]{model_name}[/] at "
                  f"[bold]{server.url}/chat/completions[/]{' (API key required)' if api_key else ''}; Ctrl+C stops")
    try:
        server.serve_forever()  # uvicorn: Ctrl+C or SIGTERM shut it down cleanly
    finally:
        server.socket.close()



@app.command()
def bench(model: str = typer.Option(None, help="Model folder, or 'default' (SmolLM2-135M-Instruct); with "
                                     "--endpoint, the model name there (default: the first it lists)."),
          tasks: int = typer.Option(4, help="Test tasks to run after one warm-up task."),
          max_steps: int = typer.Option(4),
          dtype: str = typer.Option("auto", help="auto (bfloat16 where the CPU runs it natively, else float32), float32, bfloat16 or int8."),
          max_controls: int = typer.Option(None, help="Show the model at most this many controls."),
          teacher_forced: bool = typer.Option(False, "--teacher-forced", help="Time the model at every step but "
                                              "execute the reference action, so episodes walk real multi-step routes."),
          endpoint: str = typer.Option(None, "--endpoint", help="Time a model served at this OpenAI-compatible "
                                       "base URL (vLLM, llama.cpp) instead of a local one."),
          guided: str = typer.Option(None, help="With --endpoint: auto, json_schema, json_object, "
                                     "structured_outputs or none (default: $LAMFORGE_LLM_GUIDED, else auto)."),
          as_json: bool = typer.Option(False, "--json")):
    """Median and p95 step latency in live Writer, split into observe / model / act, and tokens per step."""
    import json

    from lamforge.agent.backends import BackendError
    from lamforge.agent.bench import run_agent_bench
    from lamforge.llm import LLMError

    try:
        result = run_agent_bench(model if model or endpoint else "default", tasks, max_steps, dtype, max_controls,
                                 teacher_forced, endpoint=endpoint, guided=guided)
    except (BackendError, LLMError) as exc:
        print_error(str(exc))
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        console.print(result)


def verify_tasks(family: list[str] = typer.Option(None, help="Families to verify (repeatable); all by default."),
                 n: int = typer.Option(5, help="Instances per family."), as_json: bool = typer.Option(False, "--json"),
                 split: str = typer.Option(None, callback=known_split, help="Draw every instance from this split (lo_templates, say); by "
                                                      "default half from train and half from test documents.")):
    """Run reference solutions and negative controls in the live app."""
    import json

    from rich.table import Table

    import lamforge.tasks.families  # noqa: F401  (registers the families)
    from lamforge.agent.verify import summarize, verify
    from lamforge.tasks.base import REGISTRY
    from lamforge.tasks.splits import families_for

    out = Console()  # the table is the command's output, as with the other tasks commands: stdout
    families = family or (families_for(split) if split else list(REGISTRY))
    unknown = [f for f in families if f not in REGISTRY]
    if unknown:
        out.print(f"[red]unknown families: {unknown}[/red]")
        raise typer.Exit(1)
    summary = summarize(verify(families, n, progress=not as_json, split=split))
    if as_json:
        print(json.dumps(summary, indent=1))
    else:
        table = Table(title=f"reference pass rate {summary['reference_pass_rate']:.1%} over {summary['instances']} "
                            f"instances; negative controls rejected {summary['negatives_rejected']}/"
                            f"{summary['negatives']}")
        for column in ("family", "category", "pass", "untouched rejected", "wrong rejected", "mean steps"):
            table.add_column(column)
        for r in summary["per_family"]:
            table.add_row(r["family"], r["category"], f"{r['reference_passed']}/{r['instances']}",
                          f"{r['untouched_rejected']}/{r['instances']}", f"{r['wrong_rejected']}/{r['instances']}",
                          str(r["mean_steps"]))
        out.print(table)
        for r in summary["per_family"]:
            for failure in r["failures"]:
                out.print(f"[yellow]{failure}[/yellow]")
    ok = summary["reference_pass_rate"] >= 0.98 and summary["negatives_all_rejected"]
    raise typer.Exit(0 if ok else 1)
