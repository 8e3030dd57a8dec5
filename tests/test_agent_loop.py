"""The agent loop, with a fake env that keeps WriterEnv's contract (the real app is covered by the env tests) and
scripted backends; plus the HTTP, reference and retrieval backends driving the loop.

The fakes let the loop's logic be tested in milliseconds, including cases that are hard to provoke in a real
office (a crash at step 2).
"""

from __future__ import annotations

import json

from llm_server import llm_server  # noqa: F401  (fixture)

from lamforge.agent.backends import BackendReply, OpenAIBackend, ReferenceBackend, RetrievalBackend
from lamforge.agent.guard import GuardPolicy
from lamforge.agent.loop import Agent, AgentConfig, AgentResult
from lamforge.env.grounding import ground
from lamforge.llm import LLMError
from lamforge.prompt import parse_controls, render_prompt
from lamforge.schema import Action, ActionParseError, Control, Observation, Paragraph, Status, parse_action

MAIN_CONTROLS = [
    ("Bold", "push button"), ("Italic", "push button"), ("Align Center", "push button"),
    ("Close Document", "push button"), ("Font Size", "combo box"), ("Format", "menu"),
]


def main_obs() -> Observation:
    return Observation(
        title="report.docx - LibreOffice Writer", window="main", window_name="report.docx - LibreOffice Writer",
        controls=[Control(label=str(i + 1), name=n, type=t, states=["enabled"]) for i, (n, t) in enumerate(MAIN_CONTROLS)],
        canvas=[Paragraph(index=0, text="Quarterly report"), Paragraph(index=1, text="Sales grew.")],
    )


class FakeEnv:
    """WriterEnv's reset/step contract over a fixed observation; clicks are recorded, not performed."""

    def __init__(self, max_steps: int = 30, crash_at_step: int | None = None, fail_reset: bool = False):
        self.max_steps = max_steps
        self.crash_at_step = crash_at_step
        self.fail_reset = fail_reset
        self.executed: list[str] = []
        self.reset_options = None
        self.last_observe_ms = 5.0
        self._obs = main_obs()
        self._steps = 0

    def reset(self, *, seed=None, options=None):
        if self.fail_reset:
            raise RuntimeError("office did not start")
        self.reset_options = options
        self._steps = 0
        return self._obs.model_dump(), {}

    def step(self, action):
        self._steps += 1
        info = {"result": "", "error": None, "grounding": None, "env_error": False}
        if self.crash_at_step == self._steps:
            info.update(env_error=True, error="environment error: the office is not running (it crashed)")
            return Observation().model_dump(), 0.0, True, False, info
        try:
            action = parse_action(action)
        except ActionParseError as exc:
            info["error"] = f"invalid action: {exc}"
            return self._obs.model_dump(), 0.0, False, self._steps >= self.max_steps, info
        grounding = ground(action, self._obs)
        info["grounding"] = grounding.model_dump()
        if not grounding.ok:
            info["error"] = f"grounding rejected: {grounding.reason}"
        else:
            self.executed.append(action.to_json())
            info["result"] = f"clicked {grounding.name!r}" if grounding.name else f"did {action.function}"
        terminated = action.status in (Status.FINISH, Status.FAIL)
        truncated = not terminated and self._steps >= self.max_steps
        return self._obs.model_dump(), 0.0, terminated, truncated, info

    def close(self):
        pass


class ScriptedBackend:
    """Replays texts (or raises exceptions) in order; records every call's messages."""

    name = "scripted"

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls: list[list[dict]] = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def decide(self, messages, obs, task, history):
        self.calls.append(messages)
        reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        if isinstance(reply, Exception):
            raise reply
        return BackendReply(text=reply, tokens_generated=len(reply) // 4, prompt_tokens=100, latency_s=0.001)


def action_json(**fields) -> str:
    return json.dumps(fields)


# ---------------------------------------------------------------------------------------------------------------
# Tests

CLICK_BOLD = action_json(control_label="1", control_name="Bold", function="click_input", args={}, status="CONTINUE")
FINISH = action_json(function="summary", args={"text": "made it bold"}, status="FINISH")


def run(replies, env=None, config=None, policy=None, **kwargs):
    env = env or FakeEnv()
    backend = ScriptedBackend(replies)
    result = Agent(backend=backend, env=env, config=config or AgentConfig(), policy=policy or GuardPolicy()).run(
        "Make the title bold", **kwargs)
    return result, backend, env


def test_runs_until_finish_and_records_every_step():
    result, backend, env = run([CLICK_BOLD, FINISH], doc="/docs/report.docx")
    assert result.outcome == "finish" and result.reason == "made it bold"
    assert env.reset_options == {"doc": "/docs/report.docx"}
    assert backend.resets == 1
    assert [s.step for s in result.steps] == [1, 2]
    first = result.steps[0]
    assert first.executed and first.error is None and first.result == "clicked 'Bold'"
    assert first.grounding["decision"] == "exact" and first.guard.allowed
    assert first.timings.model_s > 0 and first.timings.observe_s >= 0.005  # the env's own observe time counts
    assert first.tokens_generated > 0 and first.prompt_tokens == 100
    assert json.loads(first.action)["control_name"] == "Bold"
    assert len(env.executed) == 2
    assert [h.result for h in result.history] == ["clicked 'Bold'", "did summary"]


def test_prompt_is_the_shared_renderer_with_memory_of_previous_steps():
    result, backend, _ = run([CLICK_BOLD, FINISH])
    expected = render_prompt("Make the title bold", 2, main_obs(), result.history[:1], None)
    assert backend.calls[1] == expected
    assert "on \"Bold\" -> clicked 'Bold'" in backend.calls[1][1]["content"]
    assert "Step: 2" in backend.calls[1][1]["content"]


def test_previous_plan_is_shown_on_the_next_step():
    with_plan = action_json(control_label="1", control_name="Bold", function="click_input", status="CONTINUE",
                            plan=["center the title", "finish"])
    _, backend, _ = run([with_plan, FINISH])
    assert "Previous plan:\n- center the title\n- finish" in backend.calls[1][1]["content"]


def test_malformed_output_gets_one_repair_with_the_error():
    result, backend, _ = run(["I think I should click Bold", CLICK_BOLD, FINISH])
    assert result.outcome == "finish"
    assert result.steps[0].repairs == 1 and result.steps[0].executed
    repair = backend.calls[1]
    assert repair[:2] == backend.calls[0]
    assert repair[2] == {"role": "assistant", "content": "I think I should click Bold"}
    assert repair[3]["role"] == "user" and "no JSON object found" in repair[3]["content"]


def test_output_still_malformed_after_repairs_is_a_clean_fail():
    bad = action_json(control_label="1", function="click_mouse", args={})
    result, backend, env = run([bad], config=AgentConfig(max_repairs=2))
    assert result.outcome == "fail"
    assert "after 2 repair(s)" in result.reason and "unknown function 'click_mouse'" in result.reason
    assert len(backend.calls) == 3 and env.executed == []
    assert result.steps[-1].action is None and result.steps[-1].raw_output == bad


def test_no_repairs_when_configured_off():
    result, backend, _ = run(["{not json"], config=AgentConfig(max_repairs=0))
    assert result.outcome == "fail" and len(backend.calls) == 1 and "not closed" in result.reason


def test_backend_exception_ends_the_episode_cleanly():
    result, _, env = run([CLICK_BOLD, LLMError("cannot reach the LLM endpoint")])
    assert result.outcome == "fail"
    assert result.reason == "backend error: LLMError: cannot reach the LLM endpoint"
    assert len(env.executed) == 1


def test_guard_block_is_recorded_not_executed_and_shown_to_the_model():
    close = action_json(control_label="4", control_name="Close Document", function="click_input")
    result, backend, env = run([close, FINISH])
    blocked = result.steps[0]
    assert not blocked.executed and not blocked.guard.allowed and blocked.guard.rule == "close_app"
    assert blocked.error.startswith("blocked by the safety guard")
    assert blocked.grounding["decision"] == "exact"
    assert env.executed == [parse_action(FINISH).to_json()]
    assert "blocked by the safety guard" in backend.calls[1][1]["content"]
    assert result.outcome == "finish"


def test_repeated_guard_blocks_end_in_fail():
    close = action_json(control_label="4", control_name="Close Document", function="click_input")
    result, _, env = run([close], config=AgentConfig(max_blocked=3))
    assert result.outcome == "fail" and "blocked 3 actions in a row" in result.reason
    assert len(result.steps) == 3 and env.executed == []


def test_save_as_allowed_only_into_the_output_folder(tmp_path):
    inside = action_json(function="save_as", args={"path": str(tmp_path / "a.docx")}, status="FINISH")
    result, _, env = run([inside], policy=GuardPolicy(output_dir=tmp_path))
    assert result.outcome == "finish" and len(env.executed) == 1
    result, _, env = run([inside], policy=GuardPolicy(output_dir=tmp_path / "other"),
                         config=AgentConfig(max_blocked=1))
    assert result.outcome == "fail" and env.executed == []


def test_grounding_rejection_is_recorded_and_the_episode_goes_on():
    ghost = action_json(control_label="99", control_name="Insert Hyperlink", function="click_input")
    result, backend, _ = run([ghost, FINISH])
    first = result.steps[0]
    assert first.grounding["decision"] == "rejected" and first.error.startswith("grounding rejected")
    assert "error: grounding rejected" in backend.calls[1][1]["content"]
    assert result.outcome == "finish"


def test_model_fail_status_ends_with_its_reason():
    give_up = action_json(function="summary", args={"text": "no such feature"}, status="FAIL")
    result, _, _ = run([give_up])
    assert result.outcome == "fail" and result.reason == "the model gave up: no such feature"


def test_step_limit():
    result, backend, _ = run([CLICK_BOLD], config=AgentConfig(max_steps=4))
    assert result.outcome == "max_steps" and len(result.steps) == 4 and len(backend.calls) == 4


def test_env_step_limit_truncates():
    result, _, _ = run([CLICK_BOLD], env=FakeEnv(max_steps=2))
    assert result.outcome == "max_steps" and len(result.steps) == 2


def test_office_crash_is_an_environment_error():
    result, _, _ = run([CLICK_BOLD], env=FakeEnv(crash_at_step=2))
    assert result.outcome == "env_error" and "crashed" in result.reason
    assert len(result.steps) == 2 and result.steps[-1].executed


def test_exception_from_env_step_is_an_environment_error():
    env = FakeEnv()
    env.step = lambda action: (_ for _ in ()).throw(ConnectionResetError("pipe closed"))
    result, _, _ = run([CLICK_BOLD], env=env)
    assert result.outcome == "env_error" and "pipe closed" in result.reason


def test_reset_failure_is_an_environment_error():
    result, _, _ = run([CLICK_BOLD], env=FakeEnv(fail_reset=True))
    assert result.outcome == "env_error" and result.steps == [] and "office did not start" in result.reason


def test_given_observation_skips_reset():
    env = FakeEnv()
    result, _, _ = run([FINISH], env=env, obs=main_obs().model_dump())
    assert env.reset_options is None and result.outcome == "finish"


def test_result_round_trips_through_json():
    result, _, _ = run(["oops", CLICK_BOLD, FINISH], config=AgentConfig(record_prompts=True))
    again = AgentResult.model_validate_json(result.model_dump_json())
    assert again == result
    assert again.steps[0].state.messages()[0]["role"] == "system" and again.steps[0].state.task == "Make the title bold"
    assert len(again.step_latencies()) == 2


def test_on_step_callback_sees_every_step():
    seen = []
    agent = Agent(backend=ScriptedBackend([CLICK_BOLD, FINISH]), env=FakeEnv(), on_step=seen.append)
    result = agent.run("Make the title bold")
    assert seen == result.steps


def test_control_filter_is_applied_to_the_prompt():
    _, backend, _ = run([FINISH], config=AgentConfig(max_controls=2))
    prompt = backend.calls[0][1]["content"]
    names = [c.name for c in parse_controls(prompt)]
    assert "Bold" in names and "Font Size" not in names and len(names) == 2


def test_control_filter_defaults_to_the_backends_and_zero_shows_all():
    """A trained LAM's backend says how many controls it was trained on; the loop shows that many unless told."""
    backend = ScriptedBackend([FINISH])
    backend.max_controls = 2
    Agent(backend=backend, env=FakeEnv()).run("Make the title bold")
    assert len(parse_controls(backend.calls[0][1]["content"])) == 2
    everything = ScriptedBackend([FINISH])
    everything.max_controls = 2
    Agent(backend=everything, env=FakeEnv(), config=AgentConfig(max_controls=0)).run("Make the title bold")
    assert len(parse_controls(everything.calls[0][1]["content"])) == len(main_obs().controls)


def test_http_backend_drives_the_loop(llm_server):
    server = llm_server(["```json\n" + CLICK_BOLD + "\n```", FINISH], model="lam")
    backend = OpenAIBackend(url=server.url, model="lam", max_tokens=64)
    result = Agent(backend=backend, env=FakeEnv()).run("Make the title bold")
    assert result.outcome == "finish" and len(result.steps) == 2
    first = server.chat_requests[0].body
    assert first["messages"] == render_prompt("Make the title bold", 1, main_obs(), [], None)
    assert first["max_tokens"] == 64 and first["temperature"] == 0.0
    assert result.steps[0].tokens_generated == len(CLICK_BOLD.split()) + 2  # the server's usage count


def test_reference_backend_follows_a_solution_program():
    def solution(obs):
        bold = next(c for c in obs.controls if c.name == "Bold")
        if "pressed" in bold.states:
            return None
        return Action(control_label=bold.label, control_name=bold.name, function="click_input")

    class PressingEnv(FakeEnv):
        def step(self, action):
            out = super().step(action)
            self._obs.controls[0].states = ["enabled", "pressed"]
            return (self._obs.model_dump(), *out[1:])

    env = PressingEnv()
    result = Agent(backend=ReferenceBackend(solution), env=env).run("Make the title bold")
    assert result.outcome == "finish" and len(result.steps) == 2
    assert json.loads(result.steps[0].action)["control_name"] == "Bold"


def test_reference_backend_replays_a_fixed_sequence_each_episode():
    backend = ReferenceBackend([CLICK_BOLD, {"function": "summary", "args": {"text": "x"}, "status": "FINISH"}])
    for _ in range(2):
        result = Agent(backend=backend, env=FakeEnv()).run("Make the title bold")
        assert result.outcome == "finish" and len(result.steps) == 2


def test_reference_backend_without_a_solution_fails_cleanly():
    result = Agent(backend=ReferenceBackend(), env=FakeEnv()).run("x")
    assert result.outcome == "fail" and "no solution" in result.reason


def test_retrieval_baseline_clicks_the_closest_control_then_finishes():
    backend = RetrievalBackend()
    result = Agent(backend=backend, env=FakeEnv()).run("Center the title")
    assert result.outcome == "finish" and len(result.steps) == 2
    assert json.loads(result.steps[0].action)["control_name"] == "Align Center"
    ranked = backend.rank("make the text bold", main_obs())
    assert main_obs().control(ranked[0][1]).name == "Bold"
    assert ranked[0][0] > ranked[-1][0]


def test_the_same_failing_action_three_times_ends_the_episode():
    missing = action_json(control_label="99", control_name="Nonexistent", function="click_input", args={}, status="CONTINUE")
    result, _, _ = run([missing])
    assert result.outcome == "fail" and len(result.steps) == 3
    assert "failed 3 times in a row" in result.reason and "grounding rejected" in result.reason
    # A success in between starts the count again; with the rule off the model runs to the step cap.
    result, _, _ = run([missing, missing, CLICK_BOLD, missing, missing, FINISH])
    assert result.outcome == "finish" and len(result.steps) == 6
    result, _, _ = run([missing], config=AgentConfig(max_steps=5, max_repeated_errors=0))
    assert result.outcome == "max_steps" and len(result.steps) == 5


class MenuEnv(FakeEnv):
    """Opens a File menu on {Alt+F}, so keys after it land in a window the first observation did not show."""

    FILE_MENU = Observation(window="menu", window_name="File", controls=[
        Control(label="1", name="New", type="menu", states=["enabled", "focused"], mnemonic="n"),
        Control(label="2", name="Exit LibreOffice", type="menu item", states=["enabled"], mnemonic="x")])

    def step(self, action):
        action = parse_action(action)
        keys = action.args.get("keys", "") if action.function == "keyboard_input" else ""
        result = super().step(action)
        if keys.startswith("{Alt+F}"):
            self._obs = self.FILE_MENU
        return (self._obs.model_dump(), *result[1:])


def test_keys_that_open_a_menu_run_in_parts_and_the_rest_is_checked_in_the_menu():
    exit_keys = action_json(function="keyboard_input", args={"keys": "{Alt+F}x"})
    result, backend, env = run([exit_keys, FINISH], env=MenuEnv())
    first = result.steps[0]
    assert [json.loads(a)["args"].get("keys") for a in env.executed] == ["{Alt+F}", None]  # x never ran
    assert first.executed and not first.guard.allowed and first.guard.rule == "close_app"
    assert first.error.startswith("blocked by the safety guard after '{Alt+F}' ran")
    assert "Exit LibreOffice" in first.error
    assert 'Window: menu "File"' in backend.calls[1][1]["content"]  # the model sees where its keys went

    new_keys = action_json(function="keyboard_input", args={"keys": "{Alt+F}n"}, status="FINISH")
    result, _, env = run([new_keys], env=MenuEnv())
    assert [json.loads(a)["args"]["keys"] for a in env.executed] == ["{Alt+F}", "n"]
    assert json.loads(env.executed[0])["status"] == "CONTINUE" and json.loads(env.executed[1])["status"] == "FINISH"
    assert result.outcome == "finish" and result.steps[0].guard.allowed
