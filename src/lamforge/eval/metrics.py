"""The paper's offline metrics (plus Args Acc) and the phase-1 plan metrics, as pure functions.

Step metrics, per held-out step with the reference action as ground truth:
- Object Acc:    the predicted control is acceptable: its name is in the step's acceptable set (controls equivalent
                 by name; by default the reference control's name), or both actions use no control.
- Operation Acc: the function is the reference's.
- Args Acc:      the arguments equal the reference's after validation (defaults filled, strings stripped).
- Status Acc:    CONTINUE / FINISH / FAIL is the reference's.
- SSR:           object, operation and status all right (the paper's definition; args are reported separately).
- TSR:           every step of the trajectory is an SSR success.
Plan metrics: a predicted step matches a reference step when rapidfuzz's token_set_ratio of their normalised texts
is >= 70, each step used at most once (greedy, best first). Precision = matched / predicted, recall = matched /
reference, plan success = every reference step matched.
"""

from __future__ import annotations

from collections import defaultdict

from rapidfuzz import fuzz

from lamforge.env.grounding import name_score
from lamforge.schema import Action, ActionParseError, parse_action

PLAN_MATCH = 70.0


def _norm_args(action: Action) -> dict:
    return {k: (v.strip().lower() if isinstance(v, str) else v) for k, v in action.args.items()}


def score_step(predicted: str | Action | None, target: str | Action, acceptable: list[str] | None = None) -> dict:
    ref = parse_action(target)
    try:
        pred = parse_action(predicted) if predicted is not None else None
    except ActionParseError:
        pred = None
    if pred is None:
        return {"object": False, "operation": False, "args": False, "status": False, "step": False, "parsed": False}
    names = acceptable or ([ref.control_name] if ref.control_name else [])
    if names:
        obj = bool(pred.control_name) and any(name_score(pred.control_name, n) == 100 for n in names)
    else:
        obj = not pred.control_name and not pred.control_label
    operation = pred.function == ref.function
    args = operation and _norm_args(pred) == _norm_args(ref)
    status = pred.status == ref.status
    return {"object": obj, "operation": operation, "args": args, "status": status,
            "step": obj and operation and status, "parsed": True}


def aggregate(rows: list[dict]) -> dict:
    """rows: {'trajectory_id', 'family', ...score_step fields}. Percentages like the paper's tables."""
    if not rows:
        return {"steps": 0, "tasks": 0}
    n = len(rows)
    out = {k: round(100 * sum(r[k] for r in rows) / n, 1) for k in ("object", "operation", "args", "status", "step", "parsed")}
    by_traj: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_traj[r["trajectory_id"]].append(r["step"])
    out = {"object_acc": out["object"], "operation_acc": out["operation"], "args_acc": out["args"],
           "status_acc": out["status"], "ssr": out["step"], "parsed": out["parsed"],
           "tsr": round(100 * sum(all(v) for v in by_traj.values()) / len(by_traj), 1),
           "steps": n, "tasks": len(by_traj)}
    return out


def plan_match(predicted: list[str], reference: list[str], threshold: float = PLAN_MATCH) -> dict:
    pairs = sorted(((fuzz.token_set_ratio(p.lower(), r.lower()), i, j) for i, p in enumerate(predicted)
                    for j, r in enumerate(reference)), reverse=True)
    used_p, used_r = set(), set()
    for score, i, j in pairs:
        if score < threshold:
            break
        if i not in used_p and j not in used_r:
            used_p.add(i)
            used_r.add(j)
    matched = len(used_r)
    return {"precision": matched / len(predicted) if predicted else 0.0,
            "recall": matched / len(reference) if reference else 0.0,
            "success": matched == len(reference) and bool(reference)}


def aggregate_plans(rows: list[dict]) -> dict:
    if not rows:
        return {"pairs": 0}
    n = len(rows)
    return {"tsr": round(100 * sum(r["success"] for r in rows) / n, 1),
            "step_precision": round(100 * sum(r["precision"] for r in rows) / n, 1),
            "step_recall": round(100 * sum(r["recall"] for r in rows) / n, 1), "pairs": n}
