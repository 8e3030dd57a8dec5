"""The optional LLM judge (the paper's evaluation step), run beside the task checker when an endpoint is set.

It sees the request, the actions taken, and the document before and after, and answers complete yes/no/unsure.
The checker stays the ground truth; the judge's agreement with it is reported.
"""

from __future__ import annotations

import difflib
import json

from lamforge.llm import LLMClient, LLMError
from lamforge.schema import extract_json_object

PROMPT = (
    "You judge whether an agent completed a task in LibreOffice Writer.\n"
    "Request: {request}\nActions taken:\n{actions}\nDocument diff (before -> after, text and formatting):\n{diff}\n"
    'Answer with JSON: {{"complete": "yes" | "no" | "unsure", "thought": "..."}}'
)


def _lines(state) -> list[str]:
    out = []
    for p in state.paragraphs:
        fmt = ",".join(sorted({f"{k}" for r in p.runs for k, v in (("bold", r.bold), ("italic", r.italic), ("underline", bool(r.underline))) if v}))
        out.append(f"[{p.style}|{p.align}|{fmt}] {p.text}")
    out += [f"[table {t.name}] {t.rows}" for t in state.tables]
    return out


def judge(request: str, result, before, after, client: LLMClient | None = None) -> dict:
    client = client or LLMClient.from_env()
    actions = "\n".join(f"{s.step}. {s.action} -> {s.result or s.error}" for s in result.steps) or "(none)"
    diff = "\n".join(list(difflib.unified_diff(_lines(before), _lines(after), lineterm="", n=0))[:80]) or "(no change)"
    try:
        reply = client.chat([{"role": "user", "content": PROMPT.format(request=request, actions=actions, diff=diff)}],
                            max_tokens=200)
        text = reply.text
        data = json.loads(extract_json_object(text))
        verdict = str(data.get("complete", "unsure")).lower()
        return {"verdict": verdict if verdict in ("yes", "no", "unsure") else "unsure", "thought": data.get("thought", "")}
    except (LLMError, ValueError) as exc:
        return {"verdict": "unsure", "thought": f"judge unavailable: {exc}"}
