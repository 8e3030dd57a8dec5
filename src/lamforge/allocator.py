"""jemalloc for the commands that train: `lamforge pipeline` and `lamforge train` restart themselves once with it.

Why: with glibc's malloc, a CPU training process slows down as it runs. Measured on the 2-core machine
(2026-12-02, phase 2 with the quick preset's settings on arm IP's data): the same micro-batch's forward and backward
took 3.2 s after the first update and 4.1, 4.8 and 5.0 s after 25, 50 and 75 updates; in a fresh process, with the
adapter of update 110 loaded, it took 3.1 s again. No tensor leaked (the live tensors stayed at 0.53 GB), and
neither the weights nor denormal numbers made the difference (flushing them changed nothing): glibc's heap grew
from 1.2 to 2.9 GB, 2.0 GB of it free but fragmented. A fixed mmap threshold for large blocks did not help (the
small allocations fragment too). Under jemalloc the same batch took 2.4 s at every probe up to update 50, and
updates 2-50 took 169 s against 250 s (`lamforge train` before and after: docs/results.md, "The allocator").

A process cannot change its allocator once it runs, so the `lamforge` executable (`lamforge.cli.main`, never a
program that calls the commands itself) replaces itself (execve, same PID, same arguments and environment) with
LD_PRELOAD naming jemalloc, before it imports torch. That is what PyTorch's own CPU
launcher does (`python -m torch.backends.xeon.run_cpu --enable-jemalloc`), without its thread pinning, which
would fight the office for the two cores. Nothing is done where jemalloc is not installed (Debian: libjemalloc2;
`make demo` installs it), where it is loaded already, or with LAMFORGE_JEMALLOC=0. A Python session that calls
lamforge's functions keeps the allocator it started with; start it with LD_PRELOAD set to get the same speed. The
office never sees the variable: its environment is built, not inherited (env/office.py).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

ENV_SWITCH = "LAMFORGE_JEMALLOC"
"""0 keeps glibc's malloc (for A/B runs and for debugging); anything else, or unset, lets the command restart."""
_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
               "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")


def jemalloc_library() -> str | None:
    """The path of the jemalloc shared library, or None where it is not installed."""
    for candidate in _CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    name = ctypes.util.find_library("jemalloc")  # a name ("libjemalloc.so.2"), which the dynamic loader resolves
    return name or None


MISSING = ("jemalloc is not installed, so training runs on glibc's malloc, which slows a CPU training process "
           "down as it runs (1.5x over 50 updates measured; `apt install libjemalloc2`, or LAMFORGE_JEMALLOC=0 to "
           "silence this)")


def restart_with_jemalloc() -> str | None:
    """Replace this process with the same command under jemalloc, unless it runs under it already or
    LAMFORGE_JEMALLOC=0. Returns only when it does not restart: MISSING when jemalloc is not installed, else None.
    The new process's LD_PRELOAD names jemalloc, so it never restarts again (a loader that refuses the preload
    says so and goes on with glibc's malloc)."""
    if os.environ.get(ENV_SWITCH) == "0" or "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return None
    library = jemalloc_library()
    if library is None:
        return MISSING
    if not getattr(sys, "orig_argv", None):
        return None
    preload = " ".join(p for p in (library, os.environ.get("LD_PRELOAD", "")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "LD_PRELOAD": preload})


def running_under_jemalloc() -> bool:
    """Whether this process's allocator is jemalloc (its `mallctl` entry point is loaded)."""
    try:
        return hasattr(ctypes.CDLL(None), "mallctl")
    except OSError:
        return False
