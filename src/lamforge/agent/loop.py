"""The agent loop: observe, prompt, decide, parse, ground, guard, execute, remember; until FINISH, FAIL or the limit.

The loop never raises for something the model or the backend did wrong: malformed output gets a bounded repair
request and then a clean FAIL with the reason; a backend that errors ends the episode as FAIL with the error; an
office crash (info["env_error"]) ends it as "env_error", which evaluation must not count against the model.
Every step is recorded with its action, grounding, guard verdict, result and per-phase timings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from lamforge.agent.backends import Backend, BackendReply
from lamforge.agent.guard import GuardPolicy, GuardVerdict, check
from lamforge.env.grounding import ground
from lamforge.records import StepState
from lamforge.schema import Action, ActionParseError, HistoryItem, Observation, Status, parse_action

Outcome = Literal["finish", "fail", "max_steps", "env_error"]

REPAIR_PROMPT = (
    "Your reply was not a valid action: {error}\n"
    "Reply again with exactly one JSON action object and nothing else."
)


@dataclass
class AgentConfig:
    max_steps: int = 30
    """Decisions per episode, blocked and failed ones included."""
    max_repairs: int = 1
    """Repair requests per step after malformed output (each one shows the model its error); then FAIL."""
    max_blocked: int = 3
    """Consecutive actions the guard may block before the episode ends as FAIL (a model stuck on a forbidden
    action would otherwise burn every remaining step)."""
    max_repeated_errors: int = 3
    """The same action failing this many times in a row ends the episode as FAIL. A failed action leaves the app as
    it was, so a greedy model sees nearly the same prompt and repeats it: quick-run LAMs clicked a disabled control
    up to 9 times, to the step cap. 0 turns this off."""
    max_controls: int | None = None
    """Show the model at most this many controls, the ones most related to the task (models/relevance.py). None
    takes the backend's (a trained LAM's card says how many it was trained with, `max_controls`); 0 shows all. A
    model should run with the filtering it was trained on."""
    record_prompts: bool = False
    """Keep each step's decision state (task, observation shown, history, plan) in the result (large; for turning
    runs into training data)."""


class StepTimings(BaseModel):
    observe_s: float = 0.0  # reading the app (as the env reports it) and rendering the prompt
    model_s: float = 0.0  # the backend, repairs included
    act_s: float = 0.0  # guard and execution


class StepRecord(BaseModel):
    step: int
    raw_output: str = ""
    action: str | None = None  # Action.to_json() of the parsed action, None when the output never parsed
    repairs: int = 0
    error: str | None = None  # parse error, execution error, guard block or environment error
    grounding: dict | None = None
    guard: GuardVerdict | None = None
    result: str = ""
    executed: bool = False
    tokens_generated: int = 0
    prompt_tokens: int = 0
    timings: StepTimings = Field(default_factory=StepTimings)
    state: StepState | None = None  # what the model decided from (record_prompts only)


class AgentResult(BaseModel):
    task: str
    backend: str
    outcome: Outcome
    reason: str = ""
    steps: list[StepRecord] = Field(default_factory=list)
    history: list[HistoryItem] = Field(default_factory=list)  # the memory the model saw, in order
    total_s: float = 0.0

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def step_latencies(self) -> list[float]:
        return [s.timings.observe_s + s.timings.model_s + s.timings.act_s for s in self.steps]


def _repair_messages(messages: list[dict[str, str]], raw: str, error: str) -> list[dict[str, str]]:
    return [*messages, {"role": "assistant", "content": raw}, {"role": "user", "content": REPAIR_PROMPT.format(error=error)}]


@dataclass
class Agent:
    backend: Backend
    env: Any
    """A WriterEnv, or anything with its reset/step contract."""
    config: AgentConfig = field(default_factory=AgentConfig)
    policy: GuardPolicy = field(default_factory=GuardPolicy)
    on_step: Callable[[StepRecord], None] | None = None
    """Called after every step (progress bars, logs)."""

    def _decide(self, messages, obs: Observation, task: str, history: list[HistoryItem],
                record: StepRecord) -> Action | None:
        """Ask the backend, with bounded repairs. Fills the record; returns None (with record.error) on failure."""
        last_error = ""
        for attempt in range(self.config.max_repairs + 1):
            try:
                reply: BackendReply = self.backend.decide(messages, obs, task, history)
            except Exception as exc:  # any backend failure ends the episode cleanly, never the process
                record.error = f"backend error: {type(exc).__name__}: {exc}"
                return None
            record.raw_output = reply.text
            record.tokens_generated += reply.tokens_generated
            record.prompt_tokens += reply.prompt_tokens
            try:
                return parse_action(reply.text)
            except ActionParseError as exc:
                last_error = str(exc)
                if attempt < self.config.max_repairs:
                    record.repairs += 1
                    messages = _repair_messages(messages, reply.text, last_error)
        record.error = f"invalid model output after {record.repairs} repair(s): {last_error}"
        return None

    def run(self, task: str, doc: str | None = None, options: dict | None = None,
            obs: dict | Observation | None = None) -> AgentResult:
        """One episode. Resets the env (on `doc`, or blank) unless a current `obs` is passed in."""
        start = time.perf_counter()
        result = AgentResult(task=task, backend=getattr(self.backend, "name", type(self.backend).__name__),
                             outcome="max_steps", reason=f"no FINISH within {self.config.max_steps} steps")
        history: list[HistoryItem] = result.history
        plan: list[str] | None = None
        blocked_in_a_row = 0
        failed_in_a_row, last_failed = 0, None
        self.backend.reset()
        env_observe_s = 0.0
        if obs is None:
            try:
                reset_options = dict(options or {})
                if doc is not None:
                    reset_options["doc"] = str(doc)
                obs, _ = self.env.reset(options=reset_options)
                env_observe_s = self._env_observe_s()
            except (FileNotFoundError, ValueError):
                raise  # a missing or unreadable document is the caller's mistake, not the environment's
            except Exception as exc:
                result.outcome, result.reason = "env_error", f"environment error on reset: {type(exc).__name__}: {exc}"
                result.total_s = time.perf_counter() - start
                return result
        current = Observation.model_validate(obs) if isinstance(obs, dict) else obs
        keep = self.config.max_controls
        if keep is None:
            keep = getattr(self.backend, "max_controls", None)

        for step in range(1, self.config.max_steps + 1):
            record = StepRecord(step=step)
            t0 = time.perf_counter()
            state = StepState(task=task, step=step, observation=current, history=list(history), plan=plan).shown(keep)
            shown = state.observation
            messages = state.messages()
            if self.config.record_prompts:
                record.state = state
            t1 = time.perf_counter()
            record.timings.observe_s = env_observe_s + (t1 - t0)
            env_observe_s = 0.0

            action = self._decide(messages, shown, task, history, record)
            t2 = time.perf_counter()
            record.timings.model_s = t2 - t1
            if action is None:
                result.outcome, result.reason = "fail", record.error or "no action"
                self._emit(result, record)
                break
            record.action = action.to_json()

            verdict = check(action, current, self.policy)
            record.guard = verdict
            ran_keys = ""
            if verdict.allowed:
                step_result, verdict, ran_keys = self._run_guarded(action, current, verdict)
                obs, _reward, terminated, truncated, info = step_result
                record.guard = verdict
            if not verdict.allowed:
                if ran_keys:  # the judged part of the keys ran; the rest was blocked where they had moved the focus
                    record.executed = True
                    current = Observation.model_validate(obs) if isinstance(obs, dict) else obs
                    env_observe_s = self._env_observe_s()
                record.grounding = ground(action, current).model_dump()
                record.error = (f"blocked by the safety guard{f' after {ran_keys!r} ran' if ran_keys else ''}: "
                                f"{verdict.reason}")
                record.result = record.error
                record.timings.act_s = time.perf_counter() - t2
                history.append(HistoryItem(action=action, result=record.error))
                plan = action.plan
                self._emit(result, record)
                blocked_in_a_row += 1
                if blocked_in_a_row >= self.config.max_blocked:
                    result.outcome = "fail"
                    result.reason = f"the guard blocked {blocked_in_a_row} actions in a row; last: {verdict.reason}"
                    break
                continue
            blocked_in_a_row = 0

            env_observe_s = self._env_observe_s()
            record.timings.act_s = max(0.0, time.perf_counter() - t2 - env_observe_s)
            record.executed = True
            record.grounding = info.get("grounding")
            record.result = info.get("result") or ""
            record.error = info.get("error")
            if info.get("env_error"):
                result.outcome, result.reason = "env_error", info.get("error") or "the office crashed"
                self._emit(result, record)
                break
            current = Observation.model_validate(obs) if isinstance(obs, dict) else obs
            failed_in_a_row = failed_in_a_row + 1 if record.error and record.action == last_failed else int(bool(record.error))
            last_failed = record.action if record.error else None
            history.append(HistoryItem(action=action, result=record.result if not record.error else f"error: {record.error}"))
            plan = action.plan
            self._emit(result, record)
            if action.status == Status.FINISH:
                result.outcome, result.reason = "finish", action.args.get("text") or "the model said FINISH"
                break
            if action.status == Status.FAIL:
                result.outcome = "fail"
                result.reason = "the model gave up: " + (action.args.get("text") or action.thought or "no reason given")
                break
            if self.config.max_repeated_errors and failed_in_a_row >= self.config.max_repeated_errors:
                result.outcome = "fail"
                result.reason = f"the same action failed {failed_in_a_row} times in a row; last error: {record.error}"
                break
            if terminated or truncated:
                result.outcome = "max_steps"
                result.reason = "the environment's step limit was reached" if truncated else "the environment ended the episode"
                break
        result.total_s = time.perf_counter() - start
        return result

    def _env_step(self, action: Action) -> tuple:
        try:
            return self.env.step(action)
        except Exception as exc:  # the env contract reports crashes in info; anything else is still the env's
            info = {"env_error": True, "error": f"{type(exc).__name__}: {exc}", "result": "", "grounding": None}
            return Observation().model_dump(), 0.0, True, False, info

    def _run_guarded(self, action: Action, obs: Observation, verdict: GuardVerdict) -> tuple[tuple, GuardVerdict, str]:
        """Run an allowed action. Keys the guard could judge only in part (GuardVerdict.keys_now: a key moves the
        focus where this observation cannot show) run part by part, each rest judged in the observation after the
        part before. Returns the last env step, the last verdict (blocked when a rest was) and the keys run in parts."""
        keys, ran = action.args.get("keys", ""), ""
        while verdict.keys_now:
            part = action.model_copy(update={"args": {"keys": verdict.keys_now}, "status": Status.CONTINUE})
            step = self._env_step(part)
            ran += verdict.keys_now
            info = step[4]
            if info.get("env_error") or info.get("error") or step[2] or step[3]:
                return step, GuardVerdict(allowed=True), ran
            obs = Observation.model_validate(step[0]) if isinstance(step[0], dict) else step[0]
            rest = action.model_copy(update={"args": {"keys": keys[len(ran):]}})
            verdict = check(rest, obs, self.policy)
            if not verdict.allowed:
                return step, verdict, ran
            action = rest
        obs, reward, terminated, truncated, info = self._env_step(action)
        if ran:
            info = dict(info, result=f"{info.get('result') or ''} (after {ran!r}, re-checked where it left the focus)")
        return (obs, reward, terminated, truncated, info), verdict, ran

    def _env_observe_s(self) -> float:
        """The env's own time for its last observation, when it reports one (WriterEnv does, in ms)."""
        ms = getattr(self.env, "last_observe_ms", None)
        return float(ms) / 1000 if isinstance(ms, (int, float)) else 0.0

    def _emit(self, result: AgentResult, record: StepRecord) -> None:
        result.steps.append(record)
        if self.on_step is not None:
            self.on_step(record)


def run_agent(backend: Backend, env: Any, task: str, doc: str | None = None, config: AgentConfig | None = None,
              policy: GuardPolicy | None = None, **run_kwargs) -> AgentResult:
    """One episode with a fresh Agent: the short form for scripts."""
    agent = Agent(backend=backend, env=env, config=config or AgentConfig(), policy=policy or GuardPolicy())
    return agent.run(task, doc=doc, **run_kwargs)
