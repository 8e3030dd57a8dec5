"""`lamforge agent bench --teacher-forced`: the model is timed at every step of a real multi-step route."""

import pytest

from lamforge.agent.bench import TeacherForced, run_agent_bench
from lamforge.agent.backends import BackendReply, ReferenceBackend
from lamforge.schema import Control, Observation

pytestmark = pytest.mark.office


class _Fixed:
    """A stand-in policy that always proposes the same action."""

    def __init__(self, text):
        self.text = text

    def reset(self):
        pass

    def decide(self, messages, obs, task, history):
        return BackendReply(text=self.text, tokens_generated=3, prompt_tokens=10, latency_s=0.25)


def test_teacher_forcing_executes_the_reference_and_scores_agreement():
    click_bold = '{"control_label": "1", "control_name": "Bold", "function": "click_input", "args": {}}'
    reference = ReferenceBackend([click_bold, '{"function": "summary", "args": {}, "status": "FINISH"}'])
    forced = TeacherForced(_Fixed(click_bold), reference)
    with_bold = Observation(controls=[Control(label="1", name="Bold", type="push button", states=["enabled"])])
    assert "Bold" in forced.decide([], with_bold, "t", []).text  # the reference's action is what runs
    assert forced.decide([], None, "t", []).text.count("FINISH") == 1
    assert forced.agreed == [True, False] and forced.model_s == [0.25, 0.25]
    assert forced.valid == [True, False]  # the second window has no Bold to click


@pytest.mark.long
def test_teacher_forced_bench_walks_multi_step_routes_in_live_writer():
    result = run_agent_bench("tiny", tasks=2, max_steps=10, teacher_forced=True)
    assert result["mode"] == "teacher-forced" and result["steps"] > 2  # reference routes, not one FINISH
    assert result["observe_s"]["median"] > 0 and result["act_s"]["median"] > 0
    assert result["model_s"]["median"] > 0
    # Agreement is a share of the measured steps (the warm-up episode is not counted): k of `steps` for a whole k.
    agreed = result["agreement_with_reference"] * result["steps"]
    assert abs(agreed - round(agreed)) <= 0.0005 * result["steps"] + 1e-9, result  # agreement has 3 decimals
