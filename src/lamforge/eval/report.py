"""`lamforge report`: one self-contained HTML page (plus Markdown) with the offline and online tables, the paper's
numbers alongside, matplotlib charts, and a trajectory viewer."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from lamforge.jsonl import read_jsonl

PAPER_OFFLINE = {  # Wang et al. 2024, Table: offline results on 435 Word test tasks
    "LAM1": (39.4, 59.9, 32.7, 33.0, 35.6), "LAM2": (85.6, 97.3, 97.8, 83.6, 76.8),
    "LAM3": (87.4, 97.7, 98.2, 85.9, 79.3), "LAM4": (87.8, 97.7, 99.0, 86.2, 81.2),
    "GPT-4o (text)": (73.2, 94.2, 52.1, 68.8, 67.2),
}
PAPER_ONLINE = {  # agent: (TSR %, s/task, steps, s/step)
    "LAM": (71.0, 30.42, 5.62, 5.41), "GPT-4o text": (63.0, 86.42, 6.73, 12.84),
    "GPT-4o mini text": (57.8, 35.24, 5.99, 5.88), "GPT-4o text+vision": (75.5, 96.48, 4.98, 19.36),
}
OFFLINE_KEYS = ("object_acc", "operation_acc", "args_acc", "status_acc", "ssr", "tsr", "ssr_exact", "tsr_exact")
SPLIT_TITLES = {"test": "test", "unseen_phrasing": "unseen phrasings", "unseen_family": "unseen families",
                "lo_templates": "LibreOffice's templates", "named_by_role": "paragraphs named by role"}


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _charts(offline: dict, online: dict) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = {}
    test = online.get("test", {})
    agents = [a for a, m in test.items() if m.get("tasks")]
    if agents:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(agents, [test[a]["tsr"] for a in agents], color="#4a7ab5")
        ax.axhline(71.0, color="#c44", ls="--", label="paper LAM 71.0%")
        ax.set_ylabel("online TSR %")
        ax.set_ylim(0, 100)
        ax.legend(loc="upper left", fontsize=8)
        charts["Online task success by agent"] = _png(fig)
        categories = sorted({c for a in agents for c in test[a]["by"]["category"]})
        if categories:
            fig, ax = plt.subplots(figsize=(7, 3))
            width = 0.8 / len(agents)
            for i, a in enumerate(agents):
                ax.bar([j + i * width for j in range(len(categories))],
                       [test[a]["by"]["category"].get(c, {}).get("tsr", 0) for c in categories], width, label=a)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(categories))], categories)
            ax.set_ylabel("TSR %")
            ax.legend(fontsize=7, ncol=3)
            charts["Online success by category"] = _png(fig)
    phases = [p for p in ("lam1", "lam2", "lam3", "lam4") if p in offline]
    if phases:
        fig, ax = plt.subplots(figsize=(6, 3))
        # The parts of a step beside SSR/TSR show what a phase learned before whole steps come right.
        for key, label in (("parsed", "parsed"), ("operation_acc", "Operation"), ("object_acc", "Object"),
                           ("ssr", "SSR"), ("tsr", "TSR")):
            ax.plot(phases, [offline[p]["steps"].get(key, 0) for p in phases], marker="o", label=f"offline {label}")
        if agents:
            ax.plot([p for p in phases if p in test], [test[p]["tsr"] for p in phases if p in test], marker="s", label="online TSR")
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.legend(fontsize=8)
        charts["Success per training phase"] = _png(fig)
    return charts


def _table(headers: list[str], rows: list[list]) -> tuple[str, str]:
    h = "<table><tr>" + "".join(f"<th>{html.escape(str(x))}</th>" for x in headers) + "</tr>"
    h += "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in row) + "</tr>" for row in rows) + "</table>"
    md = "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    md += "".join("| " + " | ".join(str(x) for x in row) + " |\n" for row in rows)
    return h, md


def _trajectories(online_dir: Path, limit: int = 30) -> str:
    parts = []
    for traj_file in sorted(online_dir.glob("test/*/trajectories.jsonl")):
        agent = traj_file.parent.name
        for r in read_jsonl(traj_file)[:limit]:
            badge = "ok" if r["success"] else "fail"
            rows = "".join(
                f"<tr><td>{s['step']}</td><td><code>{html.escape(s.get('action') or s.get('raw_output', '')[:200])}</code></td>"
                f"<td>{html.escape((s.get('grounding') or {}).get('decision', ''))}</td>"
                f"<td>{html.escape(s.get('error') or s.get('result') or '')}</td></tr>" for s in r["steps"])
            parts.append(f"<details><summary><b>{agent}</b> [{badge}] {html.escape(r['instruction'])} "
                         f"<small>({r['family']}, {len(r['steps'])} steps)</small></summary>"
                         f"<p>{html.escape(r['reason'])}</p><table><tr><th>#</th><th>action</th><th>grounding</th>"
                         f"<th>result</th></tr>{rows}</table></details>")
    return "\n".join(parts) or "<p>No online trajectories yet.</p>"


def _tsr_cell(metrics: dict) -> str:
    if not metrics.get("tasks"):
        return metrics.get("missing", "-") if metrics else "-"
    return f"{metrics['tsr']} ({metrics['tasks']})"


def _fmt(value, digits: int = 3):
    return round(value, digits) if isinstance(value, float) else ("" if value is None else value)


def _cards(models_dir: Path) -> dict[str, dict]:
    """{model: its metrics.json} of the trained models, in training order."""
    paths = {name: models_dir / name / "metrics.json" for name in ("lam1", "lam2", "lam3", "rm", "lam4")}
    return {name: json.loads(path.read_text()) for name, path in paths.items() if path.exists()}


def _training_rows(cards: dict[str, dict]) -> list[list]:
    """One row per trained model from its card: steps, time, speed, losses and its own held-out metric."""
    rows = []
    for name, card in cards.items():
        t, m = card.get("training", {}), card.get("metrics", {})
        if name == "rm":
            held_out = (f"accuracy {_fmt(m.get('held_out_accuracy'))}, AUC {_fmt(m.get('held_out_auc'))} on "
                        f"{m.get('held_out_scored', 0)} ({m.get('held_out_negatives', 0)} failed)")
        elif name == "lam1":
            # Model cards written before the metrics module named these plan_step_exact_* and *_exact_match.
            held_out = (f"plan step P/R {_fmt(m.get('plan_step_exact_precision', m.get('step_precision')))}/"
                        f"{_fmt(m.get('plan_step_exact_recall', m.get('step_recall')))}")
        else:
            held_out = (f"exact-match {_fmt(m.get('action_exact_match', m.get('exact_acc')))}, control "
                        f"{_fmt(m.get('control_name_exact_match', m.get('control_acc')))} of {m.get('generated', 0)}")
        encoded = card.get("data", {}).get("encoded", {})
        examples = t.get("examples") or encoded.get("train_steps") or encoded.get("failed_steps", "")
        seen = t.get("steps", 0) * card.get("config", {}).get("batch_size", 0)
        rows.append([name.upper(), t.get("steps", ""), f"{min(seen, examples) if examples else seen} of {examples}",
                     t.get("seconds_this_run", ""), t.get("tokens_per_second", ""),
                     _fmt(t.get("first_loss", t.get("first_ppo_loss"))), _fmt(t.get("final_loss", t.get("final_ppo_loss"))),
                     _fmt(m.get("val_loss")), held_out, " ".join(card.get("notes", []))])
    return rows


def _training_machine(cards: dict[str, dict]) -> str:
    """Where the models trained, from LAM2's card or else the first that says: times and tok/s mean little without
    the CPU."""
    for name in sorted(cards, key=lambda n: n != "lam2"):
        t = cards[name].get("training", {})
        if t.get("device"):
            where = t["cpu"] if t["device"] == "cpu" and t.get("cpu") else t["device"]  # older cards: no cpu
            threads = f", {t['torch_threads']} torch threads" if t.get("torch_threads") else ""
            bf16 = "on" if t.get("bf16") else "off"
            return f"Trained on {where}{threads}, bf16 autocast {bf16} ({name.upper()}'s card)."
    return "Where the models trained is not recorded in their cards."


def write_report(run_dir: Path, out: Path | None = None) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    out = Path(out or run_dir / "report")
    out.mkdir(parents=True, exist_ok=True)
    offline = {}
    for f in sorted((run_dir / "eval" / "offline").glob("*.json")):
        offline[f.stem] = json.loads(f.read_text())
    online_file = run_dir / "eval" / "online" / "online.json"
    online = json.loads(online_file.read_text()) if online_file.exists() else {}
    sections_html, sections_md = [], []

    rows = [[name.upper(), *[r["steps"].get(k, "") for k in OFFLINE_KEYS], r["steps"].get("steps", "")]
            for name, r in offline.items()]
    rows += [[f"paper {k}", o, op, "", st, ssr, tsr, "", "", 435] for k, (o, op, st, ssr, tsr) in PAPER_OFFLINE.items()]
    h, md = _table(["model", "Object", "Operation", "Args", "Status", "SSR", "TSR", "SSR with args", "TSR with args",
                    "steps"], rows)
    sections_html.append(f"<h2>Offline (held-out steps)</h2>{h}")
    sections_md.append(f"## Offline (held-out steps)\n\n{md}")
    categories = sorted({c for r in offline.values() for c in r["steps"].get("per_category", {})})
    if categories:
        rows = [[name.upper(), *[r["steps"].get("per_category", {}).get(c, {}).get("ssr", "-") for c in categories]]
                for name, r in offline.items()]
        h, md = _table(["model", *[f"{c} SSR" for c in categories]], rows)
        sections_html.append(f"<h3>Offline SSR by category</h3>{h}")
        sections_md.append(f"### Offline SSR by category\n\n{md}")
    plan_rows = [[name.upper(), r["plans"]["tsr"], r["plans"]["step_precision"], r["plans"]["step_recall"], r["plans"]["pairs"]]
                 for name, r in offline.items() if r.get("plans", {}).get("pairs")]
    if plan_rows:
        plan_rows.append(["paper LAM1", 82.2, 54.7, 55.7, 15334])
        h, md = _table(["model", "plan TSR", "step precision", "step recall", "pairs"], plan_rows)
        sections_html.append(f"<h3>Phase-1 plans</h3>{h}")
        sections_md.append(f"### Phase-1 plans\n\n{md}")

    cards = _cards(run_dir / "models")
    training = _training_rows(cards)
    if training:
        h, md = _table(["model", "steps", "examples seen", "seconds", "tok/s", "first loss", "final loss", "val loss",
                        "held-out", "notes"], training)
        machine = _training_machine(cards)
        sections_html.append(f"<h2>Training</h2><p>{html.escape(machine)}</p>{h}")
        sections_md.append(f"## Training\n\n{machine}\n\n{md}")
    timings_file = run_dir / "timings.json"
    if timings_file.exists():
        timings = json.loads(timings_file.read_text())
        stages = {k: v for k, v in timings.items() if k != "pipeline_wall_this_run"}
        rows = [[k, v, round(v / 60, 1)] for k, v in stages.items()] + [["all stages", round(sum(stages.values()), 1),
                                                                        round(sum(stages.values()) / 60, 1)]]
        h, md = _table(["stage", "seconds", "minutes"], rows)
        sections_html.append(f"<h2>Pipeline time per stage</h2>{h}")
        sections_md.append(f"## Pipeline time per stage\n\n{md}")

    if online:
        # One column per split: documents lamforge did not generate (lo_templates) beside its own test documents.
        agents = list(dict.fromkeys(a for per_agent in online.values() for a in per_agent))
        rows = [[a, *[_tsr_cell(online[split].get(a, {})) for split in online]] for a in agents]
        h, md = _table(["agent", *[f"TSR % {SPLIT_TITLES.get(split, split)} (tasks)" for split in online]], rows)
        sections_html.append(f"<h2>Online task success by split</h2>{h}")
        sections_md.append(f"## Online task success by split\n\n{md}")
    for split, per_agent in online.items():
        # Per category: where a model that covers all of Writer still fails.
        categories = sorted({c for m in per_agent.values() for c in m.get("by", {}).get("category", {})})
        if categories:
            rows = [[a, *[_tsr_cell(m.get("by", {}).get("category", {}).get(c, {})) for c in categories]]
                    for a, m in per_agent.items()]
            h, md = _table(["agent", *[f"{c} TSR % (tasks)" for c in categories]], rows)
            sections_html.append(f"<h3>Online by category, {html.escape(split)}</h3>{h}")
            sections_md.append(f"### Online by category, {split}\n\n{md}")
    for split, per_agent in online.items():
        rows = [[a, m.get("tsr", "-"), m.get("tasks", 0), m.get("median_time_s", "-"), m.get("mean_steps", "-"),
                 m.get("median_step_latency_s", "-"), m.get("env_errors", 0), ", ".join(m.get("backends", [])) or "-"]
                for a, m in per_agent.items()]
        if split == "test":
            rows += [[f"paper {k}", t, 435, s, st, sp, "", ""] for k, (t, s, st, sp) in PAPER_ONLINE.items()]
        h, md = _table(["agent", "TSR %", "tasks", "median s/task", "mean steps", "median s/step", "env errors",
                        "backend"], rows)
        title = f"{split} ({SPLIT_TITLES[split]})" if split == "lo_templates" else split
        sections_html.append(f"<h2>Online, {html.escape(title)}</h2>{h}")
        sections_md.append(f"## Online, {title}\n\n{md}")

    charts = _charts(offline, online)
    for title, data in charts.items():
        sections_html.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
        png = out / (title.lower().replace(" ", "_") + ".png")
        png.write_bytes(base64.b64decode(data))
        sections_md.append(f"### {title}\n\n![{title}]({png.name})\n")
    sections_html.append(f"<h2>Trajectories</h2>{_trajectories(run_dir / 'eval' / 'online')}")

    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#eef}"
             "details{margin:.3em 0}code{font-size:12px}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>lamforge report</title><style>{style}</style>"
            f"</head><body><h1>lamforge report</h1><p>Run folder: {html.escape(str(run_dir))}</p>"
            + "\n".join(sections_html) + "</body></html>")
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(page)
    md_path.write_text("# lamforge report\n\n" + "\n".join(sections_md))
    return html_path, md_path
