"""What the endpoint backend sends: the guided-decoding constraint in each server's form, and 'auto' settling on the
form the server accepts. The constraint's effect on a real server is tested in test_llamacpp_server.py; these
tests need the scripted server, which records each request and can refuse a form the way a server that does not
take it does (vLLM's forms cannot be tried on a CPU-only machine)."""

from __future__ import annotations

import pytest
from llm_server import Fail, llm_server  # noqa: F401  (fixture)

from lamforge.agent.action_schema import action_json_schema
from lamforge.agent.backends import BackendError, OpenAIBackend
from lamforge.agent.factory import make_backend
from lamforge.llm import LLMError
from lamforge.prompt import render_prompt
from lamforge.schema import Action, Control, Observation

OBS = Observation(controls=[Control(label="1", name="Bold", type="push button", states=["enabled"]),
                            Control(label="2", name="Italic", type="push button", states=["enabled"])])
MESSAGES = render_prompt("Make it italic", 1, OBS, [])
REPLY = '{"function": "click_input", "control_name": "Italic", "control_label": "1", "args": {}, "status": "CONTINUE"}'
SCHEMA = action_json_schema(OBS)


def constraint(body: dict) -> dict:
    return {k: body[k] for k in ("response_format", "structured_outputs") if k in body}


@pytest.mark.parametrize("form, sent", [
    ("json_schema", {"response_format": {"type": "json_schema",
                                         "json_schema": {"name": "lamforge_action", "schema": SCHEMA}}}),
    ("json_object", {"response_format": {"type": "json_object", "schema": SCHEMA}}),
    ("structured_outputs", {"structured_outputs": {"json": SCHEMA}}),
    ("none", {}),
])
def test_each_form_sends_the_schema_of_the_live_observation(llm_server, form, sent):
    server = llm_server([REPLY])
    backend = OpenAIBackend(url=server.url, model="lam", guided=form)
    reply = backend.decide(MESSAGES, OBS, "Make it italic", [])
    assert constraint(server.chat_requests[0].body) == sent
    # A guided reply gets the label of the chosen name (Italic is 2); an unguided reply is the model's own text.
    guided = Action(control_label="2", control_name="Italic", function="click_input").to_json()
    assert reply.text == (REPLY if form == "none" else guided)


def refuse(form_type: str, status: int = 422):
    """A server that refuses one response_format type, as llama-cpp-python's refuses 'json_schema' (422)."""
    def answer(body: dict):
        if body.get("response_format", {}).get("type") == form_type:
            return Fail(status, "response_format.type: input should be 'text' or 'json_object'")
        return REPLY
    return answer


def test_auto_settles_on_the_form_the_server_accepts(llm_server):
    server = llm_server([refuse("json_schema")])
    backend = OpenAIBackend(url=server.url, model="lam", guided="auto")
    for _ in range(2):
        backend.decide(MESSAGES, OBS, "t", [])
    sent = [r.body.get("response_format", {}).get("type") for r in server.chat_requests]
    assert sent == ["json_schema", "json_object", "json_object"]  # the refused form is not tried again
    assert backend.guided == "json_object"


def test_auto_decodes_unguided_where_no_form_is_taken(llm_server, caplog):
    server = llm_server([lambda body: Fail(400, "unknown field") if "response_format" in body else REPLY])
    backend = OpenAIBackend(url=server.url, model="lam")
    assert backend.decide(MESSAGES, OBS, "t", []).text == REPLY
    assert backend.guided == "none" and "unguided" in caplog.text
    assert len(server.chat_requests) == 3


def test_a_chosen_form_that_is_refused_is_an_error_not_a_silent_fallback(llm_server):
    server = llm_server([refuse("json_schema")])
    backend = OpenAIBackend(url=server.url, model="lam", guided="json_schema")
    with pytest.raises(LLMError, match="422"):
        backend.decide(MESSAGES, OBS, "t", [])
    assert len(server.chat_requests) == 1


def test_errors_that_are_not_about_the_form_are_not_retried_as_another_form(llm_server):
    server = llm_server([Fail(401, "bad key")])
    backend = OpenAIBackend(url=server.url, model="lam")
    with pytest.raises(LLMError, match="LAMFORGE_LLM_KEY"):
        backend.decide(MESSAGES, OBS, "t", [])
    assert len(server.chat_requests) == 1 and backend.guided == "auto"


def test_form_from_environment_and_unknown_form(llm_server, monkeypatch):
    server = llm_server([REPLY])
    monkeypatch.setenv("LAMFORGE_LLM_GUIDED", "structured_outputs")
    make_backend("llm", url=server.url, model="lam").decide(MESSAGES, OBS, "t", [])
    assert "structured_outputs" in server.chat_requests[0].body
    with pytest.raises(BackendError, match="json_schema, json_object"):
        OpenAIBackend(url=server.url, model="lam", guided="grammar")


# -- the decoding rules on a served model (agent/decoding_rules.py) ------------------------------------------------

def functions_offered(body: dict) -> set[str]:
    schema = body["response_format"]["json_schema"]["schema"]
    return {branch["properties"]["function"]["const"] for branch in schema["anyOf"]}


def main_window(*controls: tuple[str, str]) -> Observation:
    from lamforge.schema import Paragraph

    return Observation(controls=[Control(label=str(i), name=n, type=t, states=["enabled"])
                                 for i, (n, t) in enumerate(controls, start=1)],
                       canvas=[Paragraph(index=i, text=t) for i, t in enumerate(["Title", "A body paragraph."])])


def test_opening_format_before_selecting_is_asked_again_among_the_selections(llm_server):
    obs = main_window(("Format", "menu item"), ("Bold", "toggle button"))
    task = "Make paragraph 1 bold"
    fmt = Action(function="click_input", control_name="Format", control_label="1").to_json()
    select = Action(function="select_paragraph", args={"start_index": 1, "end_index": 1}).to_json()
    server = llm_server([fmt, select])
    reply = OpenAIBackend(url=server.url, model="lam", guided="json_schema").decide(
        render_prompt(task, 1, obs, []), obs, task, [])
    assert reply.text == select
    assert [functions_offered(r.body) for r in server.chat_requests][1] == {"select_text", "select_paragraph"}
    # Rules off: the reply stands, one request.
    from lamforge.agent.decoding_rules import DecodingRules

    server = llm_server([fmt, select])
    reply = OpenAIBackend(url=server.url, model="lam", guided="json_schema", rules=DecodingRules.none()).decide(
        render_prompt(task, 1, obs, []), obs, task, [])
    assert reply.text == fmt and len(server.chat_requests) == 1


def test_a_second_click_on_the_main_windows_toggle_ends_the_episode(llm_server):
    from lamforge.schema import HistoryItem, Status, parse_action

    obs = main_window(("Bold", "toggle button"), ("Italic", "toggle button"))
    bold = Action(function="click_input", control_name="Bold", control_label="1")
    history = [HistoryItem(action=bold, result="clicked")]
    server = llm_server([bold.to_json()])
    reply = OpenAIBackend(url=server.url, model="lam", guided="json_schema").decide(
        render_prompt("Make it bold", 2, obs, history), obs, "Make it bold", history)
    action = parse_action(reply.text)
    assert (action.function, action.status) == ("summary", Status.FINISH) and "undo" in action.args["text"]
