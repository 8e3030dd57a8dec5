"""`lamforge env bench`: observation, action and reset latency of WriterEnv, beside a naive per-node UNO walk."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from lamforge.env.writer_env import WriterEnv
from lamforge.schema import Action, Observation


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(values), 2), "p95_ms": round(percentile(values, 0.95), 2), "n": len(values)}


def naive_walk(env: WriterEnv) -> tuple[float, int]:
    """What an outside-the-office client pays: one UNO round trip per node property."""
    ctx = env.office.ctx
    toolkit = ctx.ServiceManager.createInstanceWithContext("com.sun.star.awt.Toolkit", ctx)
    count = 0

    def visit(acc):
        nonlocal count
        c = acc.getAccessibleContext()
        if c is None:
            return
        count += 1
        c.getAccessibleRole(), c.getAccessibleName(), c.getAccessibleStateSet()
        if c.getAccessibleRole() == 85:  # the document text is the canvas, not controls
            return
        n = c.getAccessibleChildCount()
        for i in range(min(n, 500)):
            child = c.getAccessibleChild(i)
            if child is not None:
                visit(child)

    t0 = time.perf_counter()
    for i in range(toolkit.getTopWindowCount()):
        window = toolkit.getTopWindow(i)
        if window.getAccessibleContext() is not None and window.isVisible() if hasattr(window, "isVisible") else True:
            visit(window)
    return (time.perf_counter() - t0) * 1000, count


def sample_document(folder: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Quarterly Report", level=1)
    for i in range(12):
        d.add_paragraph(f"Paragraph {i}: revenue, costs and outlook for the region were reviewed in detail.")
    table = d.add_table(rows=3, cols=3)
    for r in range(3):
        for c in range(3):
            table.cell(r, c).text = f"r{r}c{c}"
    path = folder / "bench.docx"
    d.save(path)
    return path


def run_bench(n_observe: int = 40, n_action: int = 20, n_reset: int = 10, n_naive: int = 3,
              sandbox: bool = False) -> dict:
    """sandbox: the office as `lamforge run` starts it (env/sandbox.py), writing only into a folder of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        doc = sample_document(Path(tmp))
        out = Path(tmp) / "out"  # in a 0700 folder, as a sandboxed office's folders must be
        out.mkdir()
        env = WriterEnv(writable=[out] if sandbox else None)
        try:
            t0 = time.perf_counter()
            env.reset(options={"doc": str(doc)})
            first_start_ms = (time.perf_counter() - t0) * 1000
            resets = []
            for _ in range(n_reset):
                t0 = time.perf_counter()
                env.reset(options={"doc": str(doc)})
                resets.append((time.perf_counter() - t0) * 1000)
            observes, inside = [], []
            for _ in range(n_observe):
                t0 = time.perf_counter()
                obs = env.observe()
                observes.append((time.perf_counter() - t0) * 1000)
                inside.append(env.last_observe_ms)
            o = Observation.model_validate(obs)
            bold = next(c for c in o.controls if c.name == "Bold")
            env.step({"function": "select_text", "args": {"text": "revenue"}})
            clicks, selects = [], []
            for i in range(n_action):
                t0 = time.perf_counter()
                env.step(Action(control_label=bold.label, control_name="Bold", function="click_input"))
                clicks.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                env.step({"function": "select_paragraph", "args": {"start_index": i % 5, "end_index": i % 5}})
                selects.append((time.perf_counter() - t0) * 1000)
            naive = [naive_walk(env) for _ in range(n_naive)]
        finally:
            env.close()
    naive_ms = statistics.median(t for t, _ in naive)
    observe = summary(observes)
    return {
        "controls": len(o.controls),
        "canvas_paragraphs": len(o.canvas),
        "observe": observe,
        "observe_in_office": summary(inside),
        "action_click": summary(clicks),
        "action_select_paragraph": summary(selects),
        "reset": summary(resets),
        "first_start_ms": round(first_start_ms, 1),
        "sandboxed": sandbox,
        "naive_uno_walk": {"median_ms": round(naive_ms, 1), "nodes": naive[0][1], "n": n_naive},
        "speedup_vs_naive": round(naive_ms / observe["p50_ms"], 1),
        "targets": {"observe_p50_ms": 50, "reset_ms": 1000},
        "note": "action latency includes the observation returned after the action",
    }
