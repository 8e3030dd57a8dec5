"""How every lamforge command reports an error: `error: <message>` in red on stderr, on one line.

rich hard-wraps whatever it prints at the console's width, and off a terminal (a CI log, `make demo > log`, a
notebook's captured output) that width is 80 columns: a path or a command in an error message was cut in two,
where a user cannot copy it and a log search cannot find it. Errors are printed with soft wrapping (the terminal
wraps a long line, nothing inserts newlines), and the message is escaped, so a `[...]` in it (a list, a path) prints
as itself rather than as rich markup.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

# Created once; it writes to whatever sys.stderr is at print time (a test's captured stream too).
_stderr = Console(stderr=True)


def print_error(message: str, console: Console | None = None) -> None:
    """Print `error: message` unwrapped, on stderr unless a command passes its own console (one that writes JSON to
    stdout keeps errors off it by passing a stderr console, as this default is)."""
    (console or _stderr).print(f"[red]error:[/red] {escape(str(message))}", soft_wrap=True)


def print_warning(message: str, console: Console | None = None) -> None:
    """Print `warning: message` the same way, for what a command goes on despite."""
    (console or _stderr).print(f"[yellow]warning:[/yellow] {escape(str(message))}", soft_wrap=True)
