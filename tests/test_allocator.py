"""`lamforge pipeline` and `lamforge train` restart themselves under jemalloc (lamforge/allocator.py): the same
process (PID), command and environment, once; never with LAMFORGE_JEMALLOC=0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lamforge.allocator import MISSING, jemalloc_library, restart_with_jemalloc

SCRIPT = """
import os
from lamforge.allocator import restart_with_jemalloc, running_under_jemalloc
print("before", running_under_jemalloc(), os.getpid(), os.environ.get("KEEP"), flush=True)
restart_with_jemalloc()
print("after", running_under_jemalloc(), os.getpid(), os.environ.get("KEEP"), flush=True)
"""


def run(**env) -> list[list[str]]:
    environ = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LAMFORGE_JEMALLOC")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env={**environ, "KEEP": "kept", **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split() for line in done.stdout.splitlines()]


@pytest.mark.skipif(jemalloc_library() is None, reason="jemalloc is not installed (Debian: libjemalloc2)")
def test_the_command_restarts_once_under_jemalloc_in_the_same_process():
    lines = run()
    assert [line[:2] for line in lines] == [["before", "False"], ["before", "True"], ["after", "True"]]
    assert len({line[2] for line in lines}) == 1 and {line[3] for line in lines} == {"kept"}  # same PID, same env
    assert [line[:2] for line in run(LAMFORGE_JEMALLOC="0")] == [["before", "False"], ["after", "False"]]


def test_without_jemalloc_the_command_goes_on_and_says_why(monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv("LAMFORGE_JEMALLOC", raising=False)
    monkeypatch.setattr("lamforge.allocator.jemalloc_library", lambda: None)
    assert restart_with_jemalloc() == MISSING and "apt install libjemalloc2" in MISSING
    monkeypatch.setenv("LAMFORGE_JEMALLOC", "0")
    assert restart_with_jemalloc() is None  # asked not to: no restart, no warning


class Restarted(Exception):
    pass


@pytest.fixture
def execve(monkeypatch):
    """os.execve recorded instead of run; jemalloc 'installed' and not loaded."""
    calls = []

    def record(path, argv, env):
        calls.append((argv, env))
        raise Restarted

    monkeypatch.setattr("lamforge.allocator.os.execve", record)
    monkeypatch.setattr("lamforge.allocator.jemalloc_library", lambda: "/lib/libjemalloc.so.2")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv("LAMFORGE_JEMALLOC", raising=False)
    return calls


def test_the_lamforge_executable_restarts_for_training_commands_only(execve, monkeypatch, tmp_path):
    from lamforge.cli import main

    monkeypatch.setattr(sys, "argv", ["lamforge", "train", "--phase", "2", "--preset", "tiny"])
    with pytest.raises(Restarted):
        main()
    assert execve[0][1]["LD_PRELOAD"] == "/lib/libjemalloc.so.2"
    monkeypatch.setattr(sys, "argv", ["lamforge", "tasks", "list"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0 and len(execve) == 1  # other commands run as they are


def test_a_program_that_calls_the_commands_itself_is_never_replaced(execve, tmp_path):
    """A test's CliRunner, or a launcher's worker script, calls `app`: the restart would replace that program."""
    from typer.testing import CliRunner

    from lamforge.cli import app

    result = CliRunner().invoke(app, ["train", "--phase", "2", "--preset", "tiny", "--set",
                                      f"train_file={tmp_path / 'none.jsonl'}", "--set", f"runs_dir={tmp_path}"])
    assert result.exit_code == 1 and not execve
