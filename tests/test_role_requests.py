"""The named_by_role split (tasks/role_requests.py): test-split tasks whose request names its paragraph by role or
place, aimed at the paragraph the prompt resolves that role to, on the template and in live Writer."""

from __future__ import annotations

import re

import pytest

from lamforge.prompt import mentioned_paragraphs, quoted_spans, role_named_paragraphs
from lamforge.schema import Observation
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.role_requests import ROLE_FAMILIES, ROLE_SPLIT, ROLES, role_targets, template_canvas
from lamforge.tasks.splits import SPLITS, families_for, sample_instances
from lamforge.tasks.templates import get_template, list_templates


@pytest.fixture(scope="module")
def by_role():
    return sample_instances(ROLE_SPLIT, 48)


def target_index(instance) -> int:
    return instance.params["paragraph"] if "phrase" in instance.params else instance.params["index"]


def test_the_split_asks_every_role_family_on_test_documents_only(by_role):
    assert ROLE_SPLIT in SPLITS and families_for(ROLE_SPLIT) == list(ROLE_FAMILIES)
    assert len(by_role) == 48 and {i.family for i in by_role} == set(ROLE_FAMILIES)
    test_documents = {t.id for t in list_templates("test")}
    assert {i.template_id for i in by_role} <= test_documents
    assert len({i.task_id for i in by_role}) == 48  # one request on one document is one task
    assert [i.task_id for i in sample_instances(ROLE_SPLIT, 48)] == [i.task_id for i in by_role]
    assert not {i.task_id for i in by_role} & {i.task_id for i in sample_instances("test", 96)}
    assert all(i.phrasing < len(REGISTRY[i.family].phrasings) - 1 for i in by_role)  # the held-out one stays out


def test_each_request_names_its_target_by_role_alone(by_role):
    for instance in by_role:
        canvas = template_canvas(get_template(instance.template_id))
        assert not quoted_spans(instance.instruction), instance.instruction
        assert not re.search(r"\bparagraph \d+(?!\.?\d)", instance.instruction), instance.instruction
        named = [p.index for p in mentioned_paragraphs(instance.instruction, canvas)]
        assert named == [target_index(instance)], (instance.instruction, named)
        assert [p.index for p in role_named_paragraphs(instance.instruction, canvas)] == named
    roles = {role for i in by_role for role in ROLES if role in i.instruction.lower()}
    assert {"the title", "the first heading", "the last paragraph"} <= roles, roles


def test_targets_keep_the_checks_honest(by_role):
    for instance in by_role:
        template = get_template(instance.template_id)
        target = template.paragraph(target_index(instance))
        assert target.style in ("Title", "Heading 1", "Heading 2", "Heading 3", "Normal")
        params = instance.params
        if "phrase" in params:  # the whole paragraph, and nowhere else in the document
            assert params["phrase"] == target.text and len(template.find(target.text)) == 1
            assert params["decoy"] not in target.text
        else:
            assert params["decoy"] != params["index"] and target.text.startswith(params["start"])
        if instance.family == "align" and target.style == "Title":
            assert params["align"] != "center"  # LibreOffice's Title style is centred already
        if instance.family == "spacing_above" and target.style != "Normal":
            assert params["value"] != "0.85 cm"  # Word's Heading 1 has 24 pt above


def test_a_role_that_names_no_paragraph_gives_no_target():
    essay = get_template("essay_rivers")
    roles = dict(role_targets(essay))
    assert roles["the title"] == essay.title_index()
    headings = [i for i, p in enumerate(essay.paragraphs) if p.style.startswith("Heading")]
    assert roles["the first heading"] == headings[0] and roles["the last heading"] == headings[-1]
    assert "the third paragraph" not in roles  # not a role the split asks


@pytest.mark.office
def test_roles_resolve_to_the_same_paragraphs_in_live_writer(writer_env, tmp_path):
    from office_documents import Documents

    documents = Documents(writer_env, tmp_path)
    checked = 0
    for template in list_templates("test"):
        targets = role_targets(template)
        if not targets:
            continue
        obs, _ = writer_env.reset(options={"doc": str(documents.file(template.id))})
        canvas = Observation.model_validate(obs).canvas
        for role, index in targets:
            assert [p.index for p in role_named_paragraphs(role, canvas)] == [index], (template.id, role)
            checked += 1
    assert checked >= 20


@pytest.mark.office
def test_the_split_is_checkable_like_every_other(writer_env):
    from lamforge.agent.verify import verify

    for report in verify(["align", "italic"], n=1, env=writer_env, progress=False, split=ROLE_SPLIT):
        assert report.instances == 1 and report.reference_passed == 1, report.failures
        assert report.untouched_rejected == 1 and report.wrong_rejected == 1, report.failures
