"""The control filter a model may be trained and run with (models/relevance.py), and StepState.shown."""

from lamforge.models.relevance import filter_controls
from lamforge.prompt import parse_controls
from lamforge.records import StepState
from lamforge.schema import Control, Observation

NAMES = [("File", "menu"), ("Edit", "menu"), ("Format", "menu"), ("Bold", "toggle button"),
         ("Italic", "toggle button"), ("Underline", "toggle button"), ("Align Left", "toggle button"),
         ("Align Center", "toggle button"), ("Align Right", "toggle button"), ("Font Color", "button dropdown"),
         ("Character Highlighting Color", "button dropdown"), ("Ordered List", "button dropdown"),
         ("Font Name", "combo box"), ("Font Size", "combo box"), ("Save", "push button"), ("Undo", "push button")]


def main_window(window: str = "main") -> Observation:
    return Observation(title="letter.odt - LibreOffice Writer", window=window,
                       controls=[Control(label=str(i + 1), name=n, type=t, states=["enabled"])
                                 for i, (n, t) in enumerate(NAMES)])


def shown_names(obs: Observation) -> list[str]:
    return [c.name for c in obs.controls]


def test_menus_always_stay_since_requests_never_name_them():
    shown = filter_controls(main_window(), "Set the page in two columns", keep=4)
    assert shown_names(shown)[:3] == ["File", "Edit", "Format"] and len(shown.controls) == 4


def test_the_control_a_request_asks_for_is_kept():
    shown = filter_controls(main_window(), 'Color the word "profit" red', keep=4)
    assert shown_names(shown) == ["File", "Edit", "Format", "Font Color"]


def test_order_labels_and_stateful_controls_are_kept():
    obs = main_window()
    obs.controls[14].states.append("focused")  # Save
    shown = filter_controls(obs, "make the title bold", keep=5)
    assert shown_names(shown) == ["File", "Edit", "Format", "Bold", "Save"]
    assert [c.label for c in shown.controls] == ["1", "2", "3", "4", "15"]  # grounding still finds them


def test_dialogs_small_windows_and_no_limit_are_shown_whole():
    dialog = main_window("dialog")
    assert filter_controls(dialog, "x", keep=2) is dialog
    obs = main_window()
    assert filter_controls(obs, "x", keep=None) is obs and filter_controls(obs, "x", keep=0) is obs
    assert filter_controls(obs, "x", keep=len(NAMES)) is obs


def test_step_state_shown_filters_the_observation_and_renders_it():
    state = StepState(task='Color the word "profit" red', step=1, observation=main_window())
    assert state.shown(None) is state and state.shown(0) is state
    small = state.shown(4)
    assert shown_names(small.observation) == ["File", "Edit", "Format", "Font Color"]
    assert "Italic" in state.messages()[1]["content"] and "Italic" not in small.messages()[1]["content"]
    assert small.task == state.task and state.observation.controls[4].name == "Italic"  # the original is untouched


class RecordingBackend:
    """Replies with the target's control and records what it was shown, as a trained LAM's backend would be."""

    max_controls = 4

    def __init__(self):
        self.shown: list[list[str]] = []
        self.prompts: list[str] = []

    def decide(self, messages, obs, task, history):
        from lamforge.agent.backends import BackendReply

        self.shown.append(shown_names(obs))
        self.prompts.append(messages[1]["content"])
        return BackendReply(text='{"function": "summary", "args": {"text": "done"}, "status": "FINISH"}')


def test_offline_evaluation_shows_a_model_the_controls_it_was_trained_with():
    from lamforge.eval.offline import evaluate_steps
    from lamforge.train.synthetic import synthetic_step_samples

    samples = synthetic_step_samples(4, seed=3)
    backend = RecordingBackend()
    evaluate_steps(backend, samples, progress=False)
    assert [len(names) for names in backend.shown] == [4] * 4
    # The prompt lists the same controls the backend decodes against (evaluate_steps catches a backend's errors,
    # so this is checked here, not in decide).
    assert [[c.name for c in parse_controls(p)] for p in backend.prompts] == backend.shown
    assert all(len(s.state.observation.controls) > 4 for s in samples)  # the samples themselves keep every control
