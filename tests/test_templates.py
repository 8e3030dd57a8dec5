"""Template documents: the specs, the files written from them, and LibreOffice reading those files."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import docx
import pytest
from odf.namespaces import STYLENS, TEXTNS
from odf.opendocument import load as load_odt
from odf.text import List

from lamforge.tasks.template_files import MANIFEST, build_templates, read_document, templates_dir
from lamforge.tasks.templates import (
    REGISTRY,
    ParagraphBlock,
    Region,
    TableBlock,
    TemplateDoc,
    drawn_templates,
    get_template,
    list_templates,
    spec_from_draft,
)

SPECS = list_templates()
IDS = [s.id for s in SPECS]
# Two other draws of each train document (document_draws=3): they must hold what a registry document holds.
DRAWN = drawn_templates(3)[len(list_templates("train")):]
WITH_DRAWN = SPECS + DRAWN


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("templates")
    return {info.id: info.path for info in build_templates(out)}


def _doc(blocks, regions=(), **overrides) -> TemplateDoc:
    fields = dict(id="t", kind="test", description="A test document.", format="docx", split="train", seed=0)
    fields.update(overrides)
    return TemplateDoc(blocks=list(blocks), regions=list(regions), **fields)


def _p(text, style="Normal"):
    return ParagraphBlock(text=text, style=style)


# ---------------------------------------------------------------------------------------------------------------
# The set of templates.


def test_enough_varied_templates():
    assert len(SPECS) >= 12
    assert len(set(IDS)) == len(IDS)
    assert sum(s.format == "odt" for s in SPECS) >= 4
    assert len({s.kind for s in SPECS}) >= 12
    descriptions = [s.description for s in SPECS]
    assert all(d.strip() and "\n" not in d for d in descriptions)
    assert len(set(descriptions)) == len(descriptions)
    test_share = sum(s.split == "test" for s in SPECS) / sum(s.split in ("train", "test") for s in SPECS)
    assert 0.25 <= test_share <= 0.45


@pytest.mark.parametrize("spec", WITH_DRAWN, ids=[s.id for s in WITH_DRAWN])
def test_each_template_is_a_realistic_size(spec):
    assert 8 <= len(spec.paragraphs) <= 40
    text = spec.full_text()
    assert "lorem" not in text.lower() and "ipsum" not in text.lower()
    assert len(spec.phrases(min_words=2, max_words=3)) >= 20
    assert spec.title.strip()


def _features(spec: TemplateDoc) -> set[str]:
    found = set()
    if any(t.n_rows >= 3 and t.n_cols >= 3 for t in spec.tables()):
        found.add("table")
    found |= {"bullets" for _ in spec.list_item_indices("List Bullet")}
    found |= {"numbered" for _ in spec.list_item_indices("List Number")}
    found |= {f"heading{lvl}" for lvl in (1, 2, 3) if spec.heading_indices(lvl)}
    found |= {"quote" for _ in spec.indices_with_style("Quote")}
    found |= {"sortable" for _ in spec.regions_of("sortable_lines")}
    found |= {f"delimited{r.delimiter!r}" for r in spec.regions_of("delimited_lines")}
    if len(spec.full_text().split()) >= 1200:
        found.add("long")
    return found


def test_structures_needed_by_task_families_are_common():
    counts: dict[str, int] = {}
    for spec in SPECS:
        for feature in _features(spec):
            counts[feature] = counts.get(feature, 0) + 1
    assert counts["table"] >= 4
    assert counts["bullets"] >= 3 and counts["numbered"] >= 3
    assert counts["sortable"] >= 3
    assert counts["delimited'\\t'"] + counts["delimited','"] >= 3


def test_test_split_covers_what_train_covers():
    # Every structure a training task can use must also exist in unseen test documents. (Validation has fewer: that
    # every trained family draws validation tasks is checked in test_tasks_verify.py.)
    needed = {"table", "bullets", "numbered", "heading1", "heading2", "quote", "sortable", "delimited'\\t'",
              "delimited','", "long"}
    for split in ("train", "test"):
        assert needed <= set().union(*(_features(s) for s in SPECS if s.split == split)), split


@pytest.mark.parametrize("spec", WITH_DRAWN, ids=[s.id for s in WITH_DRAWN])
def test_regions_are_usable(spec):
    for region in spec.regions_of("sortable_lines"):
        lines = spec.region_lines(region)
        assert 4 <= len(lines) <= 8
        assert len(set(lines)) == len(lines)
        assert lines not in (sorted(lines), sorted(lines, reverse=True))
        assert all(len(line) <= 40 for line in lines)
    for region in spec.regions_of("delimited_lines"):
        lines = spec.region_lines(region)
        assert len(lines) >= 3 and region.delimiter in ("\t", ",")
        widths = {len(line.split(region.delimiter)) for line in lines}
        assert len(widths) == 1 and widths.pop() >= 2


def test_specs_are_deterministic_within_and_across_processes():
    again = [spec_from_draft(e, e.build(random.Random(e.seed))) for e in REGISTRY]
    assert again == SPECS
    script = "from lamforge.tasks.templates import list_templates; print([s.spec_hash() for s in list_templates()])"
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.add(run.stdout)
    assert outputs == {str([s.spec_hash() for s in SPECS]) + "\n"}


def test_get_template():
    assert get_template(IDS[3]) is SPECS[3]
    with pytest.raises(KeyError, match="unknown template"):
        get_template("no_such_template")
    assert {s.split for s in list_templates("test")} == {"test"}


def test_train_documents_drawn_anew():
    train = list_templates("train")
    assert drawn_templates(1) == train
    three = drawn_templates(3)
    assert three[: len(train)] == train and len(three) == 3 * len(train)
    assert {s.split for s in three} == {"train"} and len({s.id for s in three}) == len(three)
    for spec in DRAWN:
        base = get_template(spec.id.split("~")[0])
        assert spec.kind == base.kind and spec.format == base.format
        assert spec.paragraph_texts() != base.paragraph_texts()  # another document, not a copy
        assert get_template(spec.id) == spec  # any process resolves a drawn id (a worker that only read a task)
    again = drawn_templates(3)
    assert [s.spec_hash() for s in again] == [s.spec_hash() for s in three]
    # Many draws vary the documents widely, and none takes a held-out document's paragraph into training.
    sixteen = drawn_templates(16)
    train_texts = {t for s in sixteen for t in s.paragraph_texts()}
    assert len(train_texts) > 4 * len({t for s in train for t in s.paragraph_texts()})
    assert not train_texts & {t for s in list_templates("test") for t in s.paragraph_texts() if len(t) > 40}
    for bad in ("report_quarterly_sales~0", "report_quarterly_sales~x", "report_quarterly_sales~01",
                "minutes_committee~1", "no_such~1"):
        with pytest.raises(KeyError, match="unknown template"):
            get_template(bad)


def test_drawn_documents_are_written_as_their_specs(tmp_path):
    docs = [next(s for s in DRAWN if s.format == fmt) for fmt in ("docx", "odt")]
    for info in build_templates(tmp_path, ids=[s.id for s in docs]):
        assert read_document(info.path) == list(get_template(info.id).blocks)


def test_a_process_that_imported_only_the_registry_finds_libreoffices_source():
    # A worker that only read task instances has imported nothing that registers the source; asking for one of its
    # ids or its split must find it all the same. A fresh process, because this one may have imported it already.
    script = (
        "import sys\n"
        "from lamforge.tasks.templates import template_source\n"
        "assert 'lamforge.tasks.lo_templates' not in sys.modules\n"
        "assert template_source('report_quarterly_sales') is None and template_source(split='test') is None\n"
        "by_id, by_split = template_source('lo_officorr_x'), template_source(split='lo_templates')\n"
        "from lamforge.tasks import lo_templates\n"
        "assert by_id is by_split and by_id.get is lo_templates.get_lo_template\n"
        "assert by_id.templates is lo_templates.list_lo_templates and by_id.path is lo_templates.lo_template_path\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_templates_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LAMFORGE_CACHE", str(tmp_path))
    assert templates_dir() == tmp_path / "templates"
    monkeypatch.delenv("LAMFORGE_CACHE")
    assert templates_dir() == Path.home() / ".cache" / "lamforge" / "templates"


# ---------------------------------------------------------------------------------------------------------------
# The spec API that task samplers use.


def test_phrases_are_exactly_once_and_respect_substrings():
    spec = _doc([_p("The cat sat on the mat.", "Title"), _p("The cat ran to the start."), _p("art")])
    phrases = spec.phrases(1, 2)
    assert "sat" in phrases and "cat sat" in phrases and "start" in phrases
    assert "The" not in phrases and "cat" not in phrases and "The cat" not in phrases
    assert "art" not in phrases  # also inside "start"
    assert "mat." not in phrases and "mat" in phrases  # words only, punctuation excluded
    assert "sat on the" not in phrases  # more than max_words


@pytest.mark.parametrize("spec", WITH_DRAWN, ids=[s.id for s in WITH_DRAWN])
def test_phrases_occur_exactly_once_in_the_document(spec):
    text = spec.full_text()
    for in_tables in (False, True):
        for phrase in spec.phrases(1, 4, in_tables=in_tables):
            assert 1 <= len(phrase.split(" ")) <= 4
            first = text.find(phrase)
            assert first >= 0 and text.find(phrase, first + 1) == -1, phrase
    if spec.tables():
        cell_only = set(spec.phrases(in_tables=True)) - set(spec.phrases())
        assert cell_only and all(spec.find(p)[0].table is not None for p in cell_only)


def test_index_conventions():
    table = TableBlock(rows=[["a", "b"], ["c", "d"]])
    spec = _doc([_p("Head", "Heading 1"), _p("one"), table, _p("two"), _p("x", "List Bullet"), _p("y", "List Bullet")])
    assert spec.paragraph_texts() == ["Head", "one", "two", "x", "y"]
    assert spec.paragraph_index_of_block(2) is None
    assert spec.paragraph_index_of_block(3) == 2
    assert spec.block_index_of_paragraph(2) == 3
    assert spec.table_after_paragraph(0) == 1
    assert spec.table_name(0) == "Table1"
    assert spec.heading_indices() == [0] and spec.list_runs() == [[3, 4]]
    assert spec.find("two")[0].paragraph == 2 and spec.find("d")[-1].model_dump(exclude_none=True) == {
        "table": 0, "row": 1, "col": 1, "offset": 0}
    assert spec.lo_style(1) == "Standard" and spec.lo_style(0) == "Heading 1"
    assert TableBlock.cell_name(1, 2) == "C2"


def test_body_paragraphs_are_prose():
    spec = get_template("letter_delivery_delay")
    body = spec.body_paragraph_indices()
    assert body and all(spec.paragraph(i).style == "Normal" for i in body)
    assert all(len(spec.paragraph(i).text.split()) >= 8 for i in body)
    assert not set(body) & {i for r in spec.regions for i in r.indices}


def test_repeated_words_are_whole_words():
    spec = _doc([_p("Tea for two and tea for me."), _p("Steam rises from the tea and the Tea.")])
    words = spec.repeated_words(min_count=2, min_length=3)
    assert words["Tea"] == 2 and words["for"] == 2
    assert "tea" not in words  # also inside "Steam"


@pytest.mark.parametrize(
    "blocks, regions, message",
    [
        ([_p("a"), TableBlock(rows=[["x"]])], [], "last block"),
        ([_p("a"), TableBlock(rows=[["x"]]), TableBlock(rows=[["y"]]), _p("b")], [], "two tables"),
        ([_p("a", "List Number"), _p("b"), _p("c", "List Number")], [], "numbered list"),
        ([_p("caf\u00e9")], [], "non-ASCII"),
        ([_p("a", "Heading 1"), _p("b")], [Region(kind="sortable_lines", start=0, end=1)], "Normal paragraphs"),
        ([_p("a", "Heading 7")], [], "unknown style"),
        ([TableBlock(rows=[["x", "y"], ["z"]]), _p("a")], [], "rectangle"),
    ],
)
def test_invalid_specs_are_rejected(blocks, regions, message):
    with pytest.raises(ValueError, match=message):
        _doc(blocks, regions)


# ---------------------------------------------------------------------------------------------------------------
# The files.


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_file_holds_exactly_the_spec(built, spec):
    path = built[spec.id]
    assert path.suffix == f".{spec.format}"
    assert read_document(path) == list(spec.blocks)


def test_docx_paragraphs_match_with_plain_python_docx(built):
    for spec in SPECS:
        if spec.format == "docx":
            document = docx.Document(str(built[spec.id]))
            assert [p.text for p in document.paragraphs] == spec.paragraph_texts()
            assert [p.style.name for p in document.paragraphs] == [p.style for p in spec.paragraphs]
            assert [[[c.text for c in r.cells] for r in t.rows] for t in document.tables] == [
                t.rows for t in spec.tables()]


def test_odt_uses_named_styles_and_real_lists(built):
    for spec in SPECS:
        if spec.format != "odt":
            continue
        document = load_odt(str(built[spec.id]))
        named = {s.getAttrNS(STYLENS, "name"): s.getAttrNS(STYLENS, "display-name") for s in document.styles.childNodes
                 if s.qname == (STYLENS, "style")}
        assert named["Heading_20_1"] == "Heading 1" and named["List_20_Bullet"] == "List Bullet"
        # Writer's own names for its built-in styles; a display name "Normal" would make Writer add a new style.
        assert named["Title"] in (None, "Title") and named["Standard"] in (None, "Standard")
        lists = document.text.getElementsByType(List)
        assert len(lists) == len(spec.list_runs())
        assert all(item.getElementsByType(List) == [item] for item in lists)  # flat lists (the result includes itself)
        used = {p.getAttrNS(TEXTNS, "style-name") for p in document.text.childNodes
                if p.qname in ((TEXTNS, "p"), (TEXTNS, "h"))}
        assert used <= set(named)  # body paragraphs use named styles, never automatic ones
        # A raw tab in ODF text is plain whitespace that Writer collapses; tabs must be text:tab elements.
        content = zipfile.ZipFile(built[spec.id]).read("content.xml").decode()
        assert "\t" not in content
        assert content.count("<text:tab/>") == spec.full_text().count("\t")


def test_build_is_idempotent_and_repairs_stale_files(tmp_path):
    first = build_templates(tmp_path)
    assert all(info.written for info in first)
    second = build_templates(tmp_path)
    assert not any(info.written for info in second)
    assert [i.spec_hash for i in first] == [i.spec_hash for i in second]

    victim, stale = first[0], first[1]
    victim.path.unlink()
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest[stale.id]["spec_hash"] = "outdated"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    third = build_templates(tmp_path)
    assert {i.id for i in third if i.written} == {victim.id, stale.id}
    assert victim.path.exists()
    assert not list(tmp_path.glob("*.part"))


def test_read_document_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_document(tmp_path / "missing.docx")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="only .docx and .odt"):
        read_document(tmp_path / "notes.txt")


# ---------------------------------------------------------------------------------------------------------------
# LibreOffice reads them.

_LABEL = re.compile(r"^\s+(\u2022|\d+\.) ")


def _expected_text_lines(spec: TemplateDoc) -> list[tuple[bool, str]]:
    """(is_list_item, text) per line of Writer's plain-text export: one per paragraph, one per table cell."""
    lines = []
    for block in spec.blocks:
        if block.kind == "paragraph":
            lines.append((block.is_list_item, block.text))
        else:
            lines += [(False, cell) for row in block.rows for cell in row]
    return lines


@pytest.mark.office
def test_libreoffice_reads_every_template(built, tmp_path):
    essays = [s for s in SPECS if s.kind == "essay"]
    files = [str(built[s.id]) for s in SPECS]
    profile = f"-env:UserInstallation=file://{tmp_path}/profile"
    base = ["soffice", "--headless", "--norestore", profile]
    office_env = {**os.environ, "TMPDIR": str(tmp_path)}  # its lu*.tmp folders go here, not into the shared /tmp
    subprocess.run(base + ["--convert-to", "txt:Text", "--outdir", str(tmp_path / "txt"), *files],
                   check=True, capture_output=True, timeout=300, env=office_env)
    for spec in SPECS:
        exported = (tmp_path / "txt" / f"{spec.id}.txt").read_text(encoding="utf-8-sig").removesuffix("\n").split("\n")
        expected = _expected_text_lines(spec)
        assert len(exported) == len(expected), spec.id
        for line, (is_item, text) in zip(exported, expected):
            match = _LABEL.match(line)
            assert bool(match) == is_item, (spec.id, line)
            assert (line[match.end():] if match else line) == text, spec.id

    # The essays span several pages once laid out.
    subprocess.run(base + ["--convert-to", "pdf", "--outdir", str(tmp_path / "pdf"), *[str(built[s.id]) for s in essays]],
                   check=True, capture_output=True, timeout=300, env=office_env)
    for spec in essays:
        pdf = (tmp_path / "pdf" / f"{spec.id}.pdf").read_bytes()
        assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) >= 3, spec.id


def test_validation_documents_change_no_train_or_test_task():
    """Header and footer texts avoid every word of the documents (Writer's word completion); the validation
    documents, added later, must not change which texts train and test tasks draw."""
    from lamforge.tasks.families.page import _template_words

    def words(split):
        return {w.lower().strip(".,;:!?()") for s in SPECS if s.split == split for t in s.all_texts() for w in t.split()}

    only_validation = words("validation") - words("train") - words("test")
    assert only_validation and not only_validation & _template_words("train")
    assert not only_validation & _template_words("test") and only_validation <= _template_words("validation")
