"""What this CPU offers a model: bf16 kernels, AMX tiles, and its name for model cards. Training chooses autocast
by it, inference its weights' dtype, and the pipeline its warning about how long `make demo` takes here.

torch is imported inside the functions: start-up time (see loading.py)."""

from __future__ import annotations

from pathlib import Path


def cpu_has_bf16() -> bool:
    """Whether torch runs bf16 matrix products natively here (AVX-512 bf16 or AMX). Elsewhere it emulates them,
    ~100x slower than fp32 (1.3 against 142 GFLOPS on an AVX2 EPYC, docs/results.md, "Hardware")."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX tiles (Intel since Sapphire Rapids), where the quick preset's 2-hour budget was
    measured; on an AVX-512 bf16 CPU without them (AMD Zen 4) phase 2 took ~1.5x as long (docs/results.md). Linux's flag
    list: torch exposes no query for it."""
    try:
        return any(line.startswith("flags") and "amx_bf16" in line.split()
                   for line in Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return False


def cpu_name() -> str:
    """The CPU's model name, for model cards: phase times differ ~3x between CPUs with bf16 matrix units and
    AVX2-only ones (docs/results.md). Read from /proc/cpuinfo: platform.processor() says only "x86_64" on Linux."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
