"""CLI errors: one printer, on stderr, never wrapped, markup in the message printed as itself."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from lamforge.console import print_error

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lamforge"


def test_an_error_prints_on_one_line_whatever_the_width_and_brackets_print_as_themselves(capsys):
    path = "/tmp/" + "a-very-long-folder-name/" * 8 + "run"
    print_error(f"{path} holds another run: tables [(4, 5)] vs [bold]")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {path} holds another run: tables [(4, 5)] vs [bold]\n"

    # A command's own console (an 80-column one, as off a terminal) is used as given, and still not wrapped.
    out = io.StringIO()
    print_error("x " * 100, console=Console(file=out, width=80))
    assert out.getvalue().count("\n") == 1


def test_every_command_reports_errors_through_the_one_printer():
    by_hand = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py") if path.name != "console.py"
               for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\[red\]error:", line)]
    assert not by_hand, f"print_error (lamforge.console) prints CLI errors; printed by hand at {by_hand}"
