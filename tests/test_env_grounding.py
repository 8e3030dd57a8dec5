"""Grounding rules, without the office."""

from lamforge.env.grounding import ground, name_score
from lamforge.schema import Action, Control, Observation

OBS = Observation(controls=[
    Control(label="1", name="Bold", type="toggle button", states=["enabled"]),
    Control(label="2", name="Italic", type="toggle button", states=["enabled"]),
    Control(label="3", name="Paragraph...", type="menu item", states=["enabled"]),
])


def test_exact_label_with_matching_name():
    g = ground(Action(control_label="2", control_name="Italic", function="click_input"), OBS)
    assert (g.decision, g.label) == ("exact", "2")


def test_wrong_label_falls_back_to_name():
    g = ground(Action(control_label="1", control_name="Italic", function="click_input"), OBS)
    assert (g.decision, g.label) == ("by_name", "2")


def test_fuzzy_name_and_rejection():
    assert ground(Action(control_name="Paragraph", function="click_input"), OBS).label == "3"
    g = ground(Action(control_label="9", control_name="Insert Chart", function="click_input"), OBS)
    assert g.decision == "rejected" and "best score" in g.reason


def test_functions_without_controls_are_not_grounded():
    assert ground(Action(function="select_text", args={"text": "x"}), OBS).decision == "none"


def test_name_score_prefers_exact():
    assert name_score("Bold", "bold") == 100
    assert name_score("Bold", "Bold Italic") < 100
