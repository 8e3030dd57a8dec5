"""Checkers and samplers of the insert, editing and file task families, on synthetic DocStates (no office needed).

Each checker must accept the edited document the reference produces and reject the untouched document and the
family's wrong edit; the live runs of reference and wrong edit are `lamforge tasks verify`.
"""

from __future__ import annotations

import random

import pytest

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.env.docstate import Bookmark, Comment, DocState, Footnote, Hyperlink, PageState, ParagraphState, Run, TableState
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.families import files
from lamforge.tasks.template_files import write_template
from lamforge.tasks.templates import get_template, list_templates

MINE = ["insert_table", "comment", "footnote", "hyperlink", "bookmark", "special_character", "find_replace",
        "insert_text", "delete_text", "delete_paragraph", "sort_lines", "text_to_table", "table_add_row",
        "table_delete_column", "export_pdf", "save_docx"]


def state_of(template_id: str, texts: list[str] | None = None, tables: list[list[list[str]]] | None = None,
             styles: list[str] | None = None, runs: dict[int, list[Run]] | None = None, **extra) -> DocState:
    """A DocState as the office would report it for the template, with the given texts and tables swapped in."""
    template = get_template(template_id)
    texts = template.paragraph_texts() if texts is None else texts
    if styles is None:
        original = [template.lo_style(i) for i in range(len(template.paragraphs))]
        styles = original if len(texts) == len(original) else ["Standard"] * len(texts)
    runs = runs or {}
    paragraphs = [
        ParagraphState(index=i, text=t, style=s, align="left", line_spacing_mode=0, line_spacing=100, left_margin=0,
                       right_margin=0, first_line_indent=0, top_margin=0, bottom_margin=0,
                       runs=runs.get(i, [Run(text=t, start=0)]))
        for i, (t, s) in enumerate(zip(texts, styles))
    ]
    if tables is None:
        tables = [t.rows for t in template.tables()]
        afters = [template.table_after_paragraph(k) for k in range(len(tables))]
    else:
        afters = extra.pop("afters") if "afters" in extra else [template.table_after_paragraph(k) for k in range(len(tables))]
    page = PageState(style="Standard", landscape=False, width=21000, height=29700, left_margin=2500,
                     right_margin=2500, top_margin=2500, bottom_margin=2500, header_on=False, header_text="",
                     footer_on=False, footer_text="")
    table_states = [TableState(name=f"Table{k + 1}", rows=rows, after_paragraph=a) for k, (rows, a) in enumerate(zip(tables, afters))]
    return DocState(paragraphs=paragraphs, tables=table_states, page=page, **extra)


def first_params(family_id: str, split: str | None = None) -> tuple[dict, str]:
    family = REGISTRY[family_id]
    for template in list_templates(split):
        for seed in range(5):
            params = family.sample(template, random.Random(f"test|{family_id}|{template.id}|{seed}"))
            if params is not None:
                return params, template.id
    raise AssertionError(f"{family_id} fits no template")


# ---------------------------------------------------------------------------------------------------------------
# Samplers and phrasings


@pytest.mark.parametrize("family_id", MINE)
def test_family_fits_train_and_test_templates_and_formats_every_phrasing(family_id):
    family = REGISTRY[family_id]
    assert len(family.phrasings) >= 5
    fits = {"train": 0, "test": 0}
    for template in list_templates():
        params = family.sample(template, random.Random(7))
        if params is None:
            continue
        fits[template.split] += 1
        for i in range(len(family.phrasings)):
            text = family.instruction(params, i)
            assert "{" not in text and "\t" not in text, text
    assert fits["train"] >= 1 and fits["test"] >= 1, fits


def test_paragraph_ends_picks_a_unique_last_word_of_the_paragraph():
    from lamforge.tasks.families.insert import paragraph_ends

    for template in list_templates():
        params = paragraph_ends(template, random.Random(3))
        if params is None:
            continue
        text = template.paragraph(params["index"]).text
        assert text.endswith(params["end"]) and template.count(params["end"]) == 1
        assert template.paragraph(params["decoy"]).text.endswith(params["decoy_end"])
        assert params["decoy"] != params["index"]


def test_delete_text_phrases_end_at_a_word_boundary():
    family = REGISTRY["delete_text"]
    for template in list_templates():
        for seed in range(5):
            params = family.sample(template, random.Random(seed))
            if params is None:
                continue
            text = template.paragraph(params["index"]).text
            at = text.index(params["phrase"])
            after = text[at + len(params["phrase"]) : at + len(params["phrase"]) + 2]
            assert not after[:1].isalnum() and not (after[:1] == "." and after[1:2].isdigit()), (params, after)


# ---------------------------------------------------------------------------------------------------------------
# Insert checkers


def test_comment_checker():
    family = REGISTRY["comment"]
    params, tid = first_params("comment")
    good = state_of(tid, comments=[Comment(author="A", content=params["comment"], anchor=params["phrase"])])
    assert family.check(params, good)
    assert not family.check(params, state_of(tid))
    assert not family.check(params, state_of(tid, comments=[Comment(content=params["comment"], anchor=params["decoy"])]))
    assert not family.check(params, state_of(tid, comments=[Comment(content="", anchor=params["phrase"])]))


def test_footnote_checker():
    family = REGISTRY["footnote"]
    params, tid = first_params("footnote")
    texts = get_template(tid).paragraph_texts()

    def with_note(index):
        edited = list(texts)
        edited[index] += "1"
        runs = {index: [Run(text=texts[index], start=0), Run(text="1", start=len(texts[index]), kind="Footnote")]}
        return state_of(tid, edited, runs=runs, footnotes=[Footnote(text=params["note"], label="1")])

    assert family.check(params, with_note(params["index"]))
    assert not family.check(params, with_note(params["decoy"]))
    assert not family.check(params, state_of(tid))


def test_hyperlink_and_bookmark_checkers():
    link = REGISTRY["hyperlink"]
    params, tid = first_params("hyperlink")
    assert link.check(params, state_of(tid, hyperlinks=[Hyperlink(text=params["phrase"], url=params["url"])]))
    assert not link.check(params, state_of(tid, hyperlinks=[Hyperlink(text=params["decoy"], url=params["url"])]))
    assert not link.check(params, state_of(tid, hyperlinks=[Hyperlink(text=params["phrase"], url="https://x.example")]))
    assert not link.check(params, state_of(tid))

    mark = REGISTRY["bookmark"]
    params, tid = first_params("bookmark")
    assert mark.check(params, state_of(tid, bookmarks=[Bookmark(name=params["name"], text=params["phrase"])]))
    assert not mark.check(params, state_of(tid, bookmarks=[Bookmark(name=params["name"], text=params["decoy"])]))
    assert not mark.check(params, state_of(tid, bookmarks=[Bookmark(name="Bookmark 1", text=params["phrase"])]))
    assert not mark.check(params, state_of(tid))


def test_special_character_checker():
    family = REGISTRY["special_character"]
    params, tid = first_params("special_character")
    texts = get_template(tid).paragraph_texts()

    def appended(index, symbol):
        edited = list(texts)
        edited[index] += symbol
        return state_of(tid, edited)

    assert family.check(params, appended(params["index"], params["symbol"]))
    assert not family.check(params, appended(params["decoy"], params["symbol"]))
    assert not family.check(params, appended(params["index"], params["symbol"] * 2))
    assert not family.check(params, state_of(tid))


# ---------------------------------------------------------------------------------------------------------------
# Editing checkers


def test_find_replace_checker_needs_every_occurrence_and_nothing_else():
    family = REGISTRY["find_replace"]
    params, tid = first_params("find_replace")
    template = get_template(tid)
    word, new = params["word"], params["replacement"]
    replaced = [t.replace(word, new) for t in template.paragraph_texts()]
    tables = [[[c.replace(word, new) for c in row] for row in t.rows] for t in template.tables()]
    assert family.check(params, state_of(tid, replaced, tables))
    assert not family.check(params, state_of(tid))
    first_only = [t.replace(word, new, 1) for t in template.paragraph_texts()]
    hit = next(i for i, t in enumerate(template.paragraph_texts()) if word in t)
    first_only = [t if i == hit else orig for i, (t, orig) in enumerate(zip(first_only, template.paragraph_texts()))]
    assert not family.check(params, state_of(tid, first_only, tables))
    too_much = [t.replace(word.lower(), new).replace(word.capitalize(), new) for t in replaced]
    if too_much != replaced:
        assert not family.check(params, state_of(tid, too_much, tables))


def test_insert_and_delete_text_checkers():
    insert = REGISTRY["insert_text"]
    params, tid = first_params("insert_text")
    texts = get_template(tid).paragraph_texts()
    for index, ok in ((params["index"], True), (params["decoy"], False)):
        edited = list(texts)
        edited[index] += " " + params["sentence"]
        assert bool(insert.check(params, state_of(tid, edited))) is ok
    assert not insert.check(params, state_of(tid))

    delete = REGISTRY["delete_text"]
    params, tid = first_params("delete_text")
    texts = get_template(tid).paragraph_texts()
    index, phrase = params["index"], params["phrase"]
    for removed in (" " + phrase, phrase):  # with or without the space before it
        edited = list(texts)
        edited[index] = edited[index].replace(removed, "", 1)
        assert delete.check(params, state_of(tid, edited)), removed
    edited = list(texts)
    decoy_at = next(i for i, t in enumerate(texts) if params["decoy"] in t)
    edited[decoy_at] = edited[decoy_at].replace(params["decoy"], "", 1)
    assert not delete.check(params, state_of(tid, edited))
    edited = list(texts)
    edited[index] = edited[index].replace(phrase, "", 1)[:-5]  # the paragraph lost more than the phrase
    assert not delete.check(params, state_of(tid, edited))
    assert not delete.check(params, state_of(tid))


def test_delete_paragraph_checker_keeps_neighbours_styles():
    family = REGISTRY["delete_paragraph"]
    params, tid = first_params("delete_paragraph")
    template = get_template(tid)
    index = params["index"]

    def without(i, restyle=None):
        texts = template.paragraph_texts()
        styles = [template.lo_style(k) for k in range(len(texts))]
        del texts[i], styles[i]
        if restyle is not None:
            styles[restyle] = "Standard" if styles[restyle] != "Standard" else "Heading 1"
        afters = [a - 1 if a >= i else a for a in (template.table_after_paragraph(k) for k in range(len(template.tables())))]
        return state_of(tid, texts, [t.rows for t in template.tables()], styles, afters=afters)

    assert family.check(params, without(index))
    assert not family.check(params, without(params["decoy"]))
    assert not family.check(params, without(index, restyle=index))
    assert not family.check(params, state_of(tid))


def test_sort_and_text_to_table_checkers():
    sort = REGISTRY["sort_lines"]
    params, tid = first_params("sort_lines")
    texts = get_template(tid).paragraph_texts()
    start, end = params["start"], params["end"]
    lines = texts[start : end + 1]
    for ordered, ok in ((sorted(lines, key=str.casefold), True), (sorted(lines, key=str.casefold, reverse=True), False)):
        assert bool(sort.check(params, state_of(tid, texts[:start] + ordered + texts[end + 1 :]))) is ok
    assert not sort.check(params, state_of(tid))

    convert = REGISTRY["text_to_table"]
    params, tid = first_params("text_to_table")
    template = get_template(tid)
    texts = template.paragraph_texts()
    start, end, delimiter = params["start"], params["end"], params["delimiter"]
    remaining = texts[:start] + texts[end + 1 :]
    old = [t.rows for t in template.tables()]
    old_afters = [template.table_after_paragraph(k) for k in range(len(old))]
    n = end - start + 1

    def converted(rows):
        afters = [a if a < start else a - n for a in old_afters] + [start - 1]
        return state_of(tid, remaining, old + [rows], afters=afters)

    assert convert.check(params, converted([line.split(delimiter) for line in texts[start : end + 1]]))
    assert not convert.check(params, converted([[line] for line in texts[start : end + 1]]))
    assert not convert.check(params, state_of(tid))


def test_table_row_and_column_checkers():
    add = REGISTRY["table_add_row"]
    params, tid = first_params("table_add_row")
    tables = [t.rows for t in get_template(tid).tables()]
    rows, r = tables[params["table"]], params["row"]
    blank = [""] * len(rows[0])
    below = [list(t) for t in tables]
    below[params["table"]] = rows[: r + 1] + [blank] + rows[r + 1 :]
    above = [list(t) for t in tables]
    above[params["table"]] = rows[:r] + [blank] + rows[r:]
    assert add.check(params, state_of(tid, tables=below))
    assert not add.check(params, state_of(tid, tables=above))
    assert not add.check(params, state_of(tid))

    delete = REGISTRY["table_delete_column"]
    params, tid = first_params("table_delete_column")
    tables = [t.rows for t in get_template(tid).tables()]
    c = params["col"]
    without = [list(t) for t in tables]
    without[params["table"]] = [row[:c] + row[c + 1 :] for row in tables[params["table"]]]
    other = (c + 1) % len(tables[params["table"]][0])
    wrong = [list(t) for t in tables]
    wrong[params["table"]] = [row[:other] + row[other + 1 :] for row in tables[params["table"]]]
    assert delete.check(params, state_of(tid, tables=without))
    assert not delete.check(params, state_of(tid, tables=wrong))
    assert not delete.check(params, state_of(tid))


# ---------------------------------------------------------------------------------------------------------------
# File checkers


def _utf16_hex(text: str) -> bytes:
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def test_pdf_strings_reads_hex_and_literal_titles():
    data = b"%PDF-1.6\n<</Title" + _utf16_hex("Caf\u00e9 Report") + b">> <</Title (Plain \\(one\\))>>"
    assert files.pdf_strings(data) == ["Caf\u00e9 Report", "Plain (one)"]


def test_export_pdf_checker(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "pdf_text", lambda path: None)  # the same verdict with or without poppler
    family = REGISTRY["export_pdf"]
    params, tid = first_params("export_pdf")
    state = state_of(tid)
    assert not family.check(params, state, tmp_path)  # nothing saved
    body = b"%PDF-1.6\n1 0 obj <</Type /Page /Parent 2 0 R>> endobj\n"
    (tmp_path / params["file"]).write_bytes(body + b"<</Title" + _utf16_hex(params["title"]) + b">>\n%%EOF\n")
    assert family.check(params, state, tmp_path)
    (tmp_path / params["file"]).write_bytes(body + b"<</Title" + _utf16_hex("Another document") + b">>\n%%EOF\n")
    assert not family.check(params, state, tmp_path)
    (tmp_path / params["file"]).write_bytes(b"PK\x03\x04 not a pdf")
    assert not family.check(params, state, tmp_path)


def test_save_docx_checker(tmp_path):
    family = REGISTRY["save_docx"]
    template = next(t for t in list_templates() if t.format == "docx" and t.tables())
    params = family.sample(template, random.Random(1))
    state = state_of(template.id)
    assert not family.check(params, state, tmp_path)
    write_template(template, tmp_path / (params["stem"] + ".odt"))  # the wrong name: a .docx written as .odt
    assert not family.check(params, state, tmp_path)
    write_template(template, tmp_path / params["file"])
    assert family.check(params, state, tmp_path)
    edited = template.paragraph_texts()
    edited[-1] += " (edited after saving)"
    assert not family.check(params, state_of(template.id, edited), tmp_path)


def test_typed_texts_have_no_doubled_letters():
    # The reference types these with xdotool, which drops one of a pair of equal keys now and then under load.
    import re

    typed = {"comment": "comment", "footnote": "note", "insert_text": "sentence", "header_text": "text",
             "footer_text": "text"}
    seen = {family: set() for family in typed}
    for template in list_templates():
        for seed in range(8):
            for family, key in typed.items():
                params = REGISTRY[family].sample(template, random.Random(f"typed|{template.id}|{seed}"))
                if params is None:
                    continue
                text = params[key]
                assert not re.search(r"(?i)([a-z0-9 ])\1", text) and text.isascii() and "{" not in text, text
                seen[family].add(text)
    # Drawn from generators, not a short list: most draws are new.
    assert all(len(texts) >= 40 for texts in seen.values()), {f: len(t) for f, t in seen.items()}