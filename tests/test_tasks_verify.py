"""`lamforge tasks verify` against the real app: every family's reference solution passes and its negative controls
(the untouched document, the family's wrong edit) are rejected, one instance each."""

import json
from dataclasses import replace

import pytest

import lamforge.tasks.families  # noqa: F401  (registers every family, so the live test can be parametrised over them)
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.splits import UNSEEN_FAMILIES, families_for, sample_instances
from lamforge.agent.verify import summarize, verify

pytestmark = pytest.mark.office


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
    validation = sample_instances("validation", 40)
    documents = {i.template_id for i in validation}
    assert len(documents) >= 5 and not documents & {i.template_id for i in train + test}
    assert {i.family for i in validation} == {i.family for i in train}  # the trained families, 40 tasks: each once
    assert all(i.phrasing < len(REGISTRY[i.family].phrasings) - 1 for i in validation)
    assert not {i.task_id for i in validation} & {i.task_id for i in train + test}


def test_train_tasks_can_start_from_drawn_documents():
    fixed = sample_instances("train", 40)
    assert sample_instances("train", 40, document_draws=1) == fixed
    drawn = sample_instances("train", 40, document_draws=8)
    assert drawn == sample_instances("train", 40, document_draws=8)
    documents = {i.template_id for i in drawn}
    assert sum("~" in d for d in documents) >= 20 and len(documents) > len({i.template_id for i in fixed})
    assert {i.family for i in drawn} == {i.family for i in fixed}
    test = sample_instances("test", 40)
    assert not {i.task_id for i in drawn} & {i.task_id for i in test}
    for split in ("test", "validation", "lo_templates"):
        with pytest.raises(ValueError, match="train split only"):
            sample_instances(split, 4, document_draws=2)
    with pytest.raises(ValueError, match="at least 1"):
        sample_instances("train", 4, document_draws=0)


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
    from lamforge.pipeline import PRESETS, family_weights

    for preset in PRESETS.values():
        for categories in (preset.categories, preset.extra_demo_categories):
            if categories:
                assert families_for("train", categories)
        family_weights(preset)  # raises on a category the preset does not train


def test_category_weights_must_name_trained_categories():
    from lamforge.pipeline import PRESETS, family_weights

    only_file = replace(PRESETS["tiny"], categories=["file"], category_weights={"editing": 2.0})
    with pytest.raises(ValueError, match="'editing'"):
        family_weights(only_file)
    weights = family_weights(replace(only_file, category_weights={"file": 3.0}))
    assert weights == {"export_pdf": 3.0, "save_docx": 3.0}


def test_a_run_folder_refuses_a_rerun_with_other_settings(tmp_path):
    from lamforge.pipeline import PRESETS, check_same_settings

    quick = PRESETS["quick"]
    check_same_settings(tmp_path, quick)  # the first run records its settings
    check_same_settings(tmp_path, quick)
    check_same_settings(tmp_path, replace(quick, workers=1, online_workers=2))  # speed only
    for changed, name in ((replace(quick, oracle_tasks=300), "oracle_tasks"),
                          (replace(quick, category_weights={"character": 1.0}), "category_weights"),
                          (replace(quick, document_draws=16), "document_draws")):
        with pytest.raises(ValueError, match=f"other settings \\({name};.*another --out, or delete"):
            check_same_settings(tmp_path, changed)
    # The agents' dtype is a setting too; a record from before it counts as 'auto'.
    check_same_settings(tmp_path, quick, "auto")
    with pytest.raises(ValueError, match="other settings \\(dtype;"):
        check_same_settings(tmp_path, quick, "float32")
    record = tmp_path / "pipeline.json"
    old = json.loads(record.read_text())
    del old["preset"]["dtype"], old["preset"]["document_draws"]  # a record from before both: 'auto', one draw
    record.write_text(json.dumps(old))
    check_same_settings(tmp_path, quick)
    with pytest.raises(ValueError, match="document_draws"):
        check_same_settings(tmp_path, replace(quick, document_draws=2))


def test_a_model_older_than_the_one_it_was_trained_from_is_refused(tmp_path):
    import os

    from lamforge.models.checkpoints import METRICS_FILE
    from lamforge.pipeline import check_made_after

    lam2, lam3 = tmp_path / "lam2", tmp_path / "lam3"
    for folder, when in ((lam2, 1_000), (lam3, 2_000)):
        folder.mkdir()
        (folder / METRICS_FILE).write_text(json.dumps({"finished": True}))
        os.utime(folder / METRICS_FILE, (when, when))
    check_made_after(lam3, str(lam2), None)  # trained in order
    os.utime(lam2 / METRICS_FILE, (3_000, 3_000))  # LAM2 trained again
    with pytest.raises(ValueError, match="lam3 was made from an earlier .*lam2, which was trained again since; delete .*lam3"):
        check_made_after(lam3, str(lam2), None)
    check_made_after(tmp_path / "not_trained", str(lam2))  # nothing to check yet
    result = tmp_path / "lam3.json"  # an evaluation of LAM3, made before LAM3 was trained again
    result.write_text("{}")
    os.utime(result, (2_500, 2_500))
    os.utime(lam3 / METRICS_FILE, (4_000, 4_000))
    with pytest.raises(ValueError, match="lam3.json was made from an earlier"):
        check_made_after(result, lam3)


def test_quick_preset_warns_a_cpu_without_amx_that_it_takes_hours(tmp_path):
    from lamforge.models.checkpoints import METRICS_FILE
    from lamforge.pipeline import PRESETS, slow_cpu_warning

    quick, models = PRESETS["quick"], tmp_path / "models"
    warning = slow_cpu_warning(quick, models, has_gpu=False, has_bf16=False, has_amx=False)
    assert "no bf16 matrix units" in warning and "about 4 hours" in warning and "the same command resumes" in warning
    warning = slow_cpu_warning(quick, models, has_gpu=False, has_bf16=True, has_amx=False)
    assert "without AMX" in warning and "Zen 4" in warning and "the same command resumes" in warning
    assert slow_cpu_warning(quick, models, has_gpu=False, has_bf16=True, has_amx=True) is None
    assert slow_cpu_warning(quick, models, has_gpu=True, has_bf16=False, has_amx=False) is None
    assert slow_cpu_warning(PRESETS["tiny"], models, has_gpu=False, has_bf16=False, has_amx=False) is None
    (models / "lam4").mkdir(parents=True)  # a finished pipeline: only evaluation is left, no training
    (models / "lam4" / METRICS_FILE).write_text(json.dumps({"finished": True}))
    assert slow_cpu_warning(quick, models, has_gpu=False, has_bf16=False, has_amx=False) is None


@pytest.mark.parametrize("family", sorted(REGISTRY))
def test_reference_passes_and_negative_controls_fail(family, writer_env):
    (report,) = verify([family], n=1, env=writer_env, progress=False)
    assert report.instances == 1, f"{family}: no instance could be sampled"
    assert report.reference_passed == 1, report.failures
    assert report.untouched_rejected == 1 and report.wrong_rejected == 1, report.failures


def test_summary_adds_the_family_reports_up():
    # The --json summary is what the README quotes: a family with a failed reference or an accepted wrong edit shows.
    from lamforge.agent.verify import FamilyReport

    good = FamilyReport(family="bold", category="character", instances=2, reference_passed=2, untouched_rejected=2,
                        wrong_rejected=2)
    bad = FamilyReport(family="save_docx", category="file", instances=2, reference_passed=1, untouched_rejected=2,
                       wrong_rejected=1)
    summary = summarize([good, bad])
    assert (summary["instances"], summary["reference_passed"], summary["reference_pass_rate"]) == (4, 3, 0.75)
    assert (summary["negatives_rejected"], summary["negatives"]) == (7, 8) and not summary["negatives_all_rejected"]
    assert summary["by_category"]["file"]["pass_rate"] == 0.5
    assert summarize([good])["negatives_all_rejected"]


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
