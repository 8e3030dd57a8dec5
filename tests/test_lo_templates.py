"""The lo_templates split: LibreOffice's own templates read into specs, the split drawn on them, one task run live."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from lamforge.tasks import lo_files
from lamforge.tasks.lo_templates import LoTemplateDoc, blocks_of, build_catalogue, catalogue, get_lo_template
from lamforge.tasks.template_files import template_path
from lamforge.tasks.templates import LO_SPLIT, ParagraphBlock, TemplateDoc, list_templates

# Three documents of different shapes: a business letter (fields, placeholders, a date, justified text), a resume
# (line breaks, bold first lines, two page columns) and a CV (one large table).
SUBSET = ["officorr/Modern_business_letter_sans_serif.ott", "personal/Resume1page.ott", "personal/CV.ott"]
LETTER = "lo_officorr_modern_business_letter_sans_serif"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lo_root():
    root = lo_files.template_root()
    if root is None or not all((root / rel).is_file() for rel in SUBSET):
        pytest.fail(f"LibreOffice's templates {SUBSET} are not installed; run `make setup`")
    return root


@pytest.fixture(scope="module")
def subset(lo_root, tmp_path_factory, writer_env):
    """The split over SUBSET only, read through the session's office into a fresh cache."""
    root = tmp_path_factory.mktemp("lo_root")
    for rel in SUBSET:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lo_root / rel, root / rel)
    sources = {rel: _sha(lo_root / rel) for rel in SUBSET}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAMFORGE_LO_TEMPLATES", str(root))
        patch.setenv("LAMFORGE_CACHE", str(tmp_path_factory.mktemp("cache")))
        _clear_caches()
        read = build_catalogue(env=writer_env)
        assert not read.excluded, read.excluded
        yield read
        _clear_caches()
    assert {rel: _sha(lo_root / rel) for rel in SUBSET} == sources  # LibreOffice's files are never written


def _clear_caches():
    from lamforge.tasks.splits import lo_families

    catalogue.cache_clear()
    lo_families.cache_clear()


pytestmark = pytest.mark.office


def test_the_copy_is_an_editable_document_with_the_template_content(lo_root, tmp_path):
    source = lo_root / SUBSET[0]
    copy = tmp_path / "letter.odt"
    lo_files.write_document_copy(source, copy)
    with zipfile.ZipFile(copy) as package, zipfile.ZipFile(source) as original:
        assert package.infolist()[0].filename == "mimetype"
        assert package.read("mimetype").decode() == lo_files.TEXT_MIMETYPE
        assert lo_files.TEMPLATE_MIMETYPE.encode() not in package.read("META-INF/manifest.xml")
        assert set(package.namelist()) == set(original.namelist())
        dates = etree.fromstring(package.read("content.xml")).findall(".//text:date", lo_files.NS)
    # The letter's date field had no stored value (it showed the day it was opened); the copy fixes it.
    assert dates and all(d.get("{%s}date-value" % lo_files.NS["text"]) == lo_files.FIXED_DATE for d in dates)


def test_static_problems_name_the_templates_that_cannot_be_documents(lo_root):
    assert lo_files.static_problem(lo_root / SUBSET[0]) is None
    styles_only = lo_root / "styles" / "Default.ott"
    if styles_only.is_file():
        assert "no document body" in lo_files.static_problem(styles_only)
    assert "not a readable ODF package" in lo_files.static_problem(Path(__file__))


def test_the_spec_is_what_libreoffice_reports_for_the_copy(subset, writer_env, lo_root):
    assert [s.id for s in subset.specs] == sorted(lo_files.template_id(lo_root, lo_root / rel) for rel in SUBSET)
    for spec in subset.specs:
        obs, _ = writer_env.reset(options={"doc": str(template_path(spec.id))})
        assert not obs["title"].startswith("Untitled")  # opened as the document, not as a new one from a template
        state = writer_env.doc_state()
        assert [(p.text, p.style) for p in spec.paragraphs] == [(p.text, p.style) for p in state.paragraphs]
        assert [t.rows for t in spec.tables()] == [t.rows for t in state.tables]
        assert [spec.table_after_paragraph(i) for i in range(len(spec.tables()))] == [
            t.after_paragraph for t in state.tables]
        # Typed body text is in the file's XML as written: the reader did not invent or reorder it.
        with zipfile.ZipFile(lo_root / spec.source) as package:
            xml_text = "\n".join(lo_files._plain_text(p) for p in etree.fromstring(package.read("content.xml"))
                                 .iter("{%s}p" % lo_files.NS["text"], "{%s}h" % lo_files.NS["text"]))
        for i in spec.body_paragraph_indices(min_words=4):
            assert spec.paragraphs[i].text in xml_text
    letter = get_lo_template(LETTER)
    assert any("2024" in p.text for p in letter.paragraphs)  # the fixed date, the same on every day
    assert letter.state.page.style == "First Page" and letter.title == "Modern business letter sans-serif"


def test_lo_specs_keep_libreoffice_facts_and_generated_specs_keep_their_rules(subset):
    letter = get_lo_template(LETTER)
    # Fields and placeholders are reported as LibreOffice shows them, but are never offered as targets.
    assert any("<Title>" in p.text for p in letter.paragraphs)
    assert not any("Title" in phrase for phrase in letter.phrases(max_words=2))
    assert all(letter.is_plain(i) for i in letter.body_paragraph_indices(min_words=1))
    with pytest.raises(ValueError, match="differ from the paragraphs"):
        LoTemplateDoc.model_validate(dict(letter.model_dump(), blocks=blocks_of(letter.state)[1:]))
    generated = list_templates("test")[0]
    with pytest.raises(ValueError, match="empty text"):  # TemplateDoc's own rules are as strict as before
        TemplateDoc.model_validate(dict(generated.model_dump(), blocks=[ParagraphBlock(text="")]))
    # The letter's body is justified, so "justify" is no task there; "center" is.
    params = {"index": 6, "decoy": 4, "start": "We are looking forward", "align": "justify"}
    assert "already has that alignment" in letter.why_unfit("align", params)
    assert letter.why_unfit("align", dict(params, align="center")) is None
    # Paragraphs 4 and 5 both open "Lorem ipsum dolor sit": an instruction cannot name a run of lines by it.
    run = {"first": 5, "last": 6, "decoy": 4, "start": "Lorem ipsum dolor sit", "end_start": "We are looking forward",
           "starts": ["Lorem ipsum dolor sit", "We are looking forward"]}
    assert "more than one paragraph opens with 'Lorem ipsum dolor sit'" in letter.why_unfit("bullets", run)


def test_the_split_is_deterministic_test_only_and_covers_what_fits(subset):
    from lamforge.tasks.base import REGISTRY
    from lamforge.tasks.splits import UNSEEN_FAMILIES, families_for, sample_instances

    lo_ids = {s.id for s in subset.specs}
    first = sample_instances(LO_SPLIT, 30)
    assert [i.task_id for i in first] == [i.task_id for i in sample_instances(LO_SPLIT, 30)]
    assert len(first) == 30 and {i.template_id for i in first} <= lo_ids and {i.split for i in first} == {LO_SPLIT}
    covered = families_for(LO_SPLIT)
    assert {i.family for i in first} <= set(covered) and not set(covered) & set(UNSEEN_FAMILIES)
    assert "sort_lines" not in covered  # no LibreOffice template has the line regions it needs
    assert all(i.phrasing < len(REGISTRY[i.family].phrasings) - 1 for i in first)
    # Training never sees these documents: not among the train (or test) templates, nor in train instances.
    assert not lo_ids & {t.id for t in list_templates()}
    assert not lo_ids & {i.template_id for i in sample_instances("train", 60)}
    drawn = sample_instances(LO_SPLIT, 8, families=covered[:8])
    assert [i.task_id for i in drawn] == [i.task_id for i in sample_instances(LO_SPLIT, 8, families=covered[:8])]
    assert {i.template_id for i in drawn} <= lo_ids


def test_a_reference_passes_and_its_negative_controls_fail_live(subset, writer_env):
    from lamforge.agent.verify import summarize, verify

    summary = summarize(verify(["bold"], n=1, env=writer_env, progress=False, split=LO_SPLIT))
    failures = [f for r in summary["per_family"] for f in r["failures"]]
    assert summary["instances"] == 1 and summary["reference_passed"] == 1, failures
    assert summary["negatives_rejected"] == summary["negatives"] == 2, failures
