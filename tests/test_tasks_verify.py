"""A fast subset of `lamforge tasks verify` against the real app: one family per category and route style."""

import pytest

from lamforge.tasks.base import REGISTRY
from lamforge.tasks.splits import UNSEEN_FAMILIES, families_for, sample_instances
from lamforge.tasks.verify import summarize, verify

pytestmark = pytest.mark.office
SUBSET = ["bold", "line_spacing", "page_orientation", "hyperlink", "sort_lines", "save_docx"]


def test_registry_is_complete():
    families_for("train")  # registers everything
    assert len(REGISTRY) >= 40
    categories = {f.category for f in REGISTRY.values()}
    assert categories == {"character", "paragraph", "page", "insert", "editing", "file"}
    assert all(len(f.phrasings) >= 5 for f in REGISTRY.values())
    assert set(UNSEEN_FAMILIES) <= set(REGISTRY)


def test_splits_are_disjoint_and_deterministic():
    train = sample_instances("train", 40)
    test = sample_instances("test", 40)
    assert {i.template_id for i in train}.isdisjoint({i.template_id for i in test})
    assert not {i.family for i in train + test} & set(UNSEEN_FAMILIES)
    unseen = sample_instances("unseen_phrasing", 10)
    assert all(i.phrasing == len(REGISTRY[i.family].phrasings) - 1 for i in unseen)
    assert all(i.phrasing < len(REGISTRY[i.family].phrasings) - 1 for i in train + test)
    assert [i.task_id for i in sample_instances("train", 40)] == [i.task_id for i in train]
    assert {i.family for i in sample_instances("unseen_family", 10)} <= set(UNSEEN_FAMILIES)


def test_families_can_be_limited_to_categories():
    character = families_for("train", ["character"])
    assert character and {REGISTRY[f].category for f in character} == {"character"}
    assert set(character) < set(families_for("train"))
    assert not set(character) & set(UNSEEN_FAMILIES)  # strikethrough is a character family, held out
    assert families_for("unseen_family", ["character"]) == ["strikethrough"]
    assert {i.family for i in sample_instances("test", 20, families=character)} <= set(character)
    with pytest.raises(ValueError, match="unknown task categories"):
        families_for("train", ["charcter"])


def test_pipeline_presets_name_real_categories():
    from lamforge.pipeline import PRESETS

    for preset in PRESETS.values():
        if preset.categories:
            assert families_for("train", preset.categories)


def test_reference_passes_and_negative_controls_fail(writer_env):
    summary = summarize(verify(SUBSET, n=1, env=writer_env, progress=False))
    failures = [f for r in summary["per_family"] for f in r["failures"]]
    assert summary["reference_pass_rate"] == 1.0, failures
    assert summary["negatives_all_rejected"], failures


def test_open_tab_clicks_only_a_tab_that_is_not_in_front():
    from lamforge.schema import Control, Observation
    from lamforge.tasks.base import open_tab

    def route(states):
        obs = Observation(window="dialog", controls=[Control(label="1", name="Font", type="page tab", states=states)])
        steps = open_tab(obs, "Font")
        try:
            return [next(steps)]
        except StopIteration:
            return []

    assert route(["enabled", "selected"]) == []
    (action,) = route(["enabled"])
    assert (action.function, action.control_name, action.control_label) == ("click_input", "Font", "1")
