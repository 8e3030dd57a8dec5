"""Checkers and samplers of the insert, editing and file task families.

Each checker must accept the document the reference produces and reject the untouched document and the family's
wrong edit. The documents are the templates' real files, opened and edited in LibreOffice, and the states are
what it reports for them (office_documents.py); the live runs of reference and wrong edit through the GUI are
`lamforge tasks verify`. Samplers and phrasings need no office.
"""

from __future__ import annotations

import random

import pytest
from office_documents import Documents

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.tasks.base import REGISTRY
from helpers import assert_fits_templates_and_formats_every_phrasing
from lamforge.tasks.families import files
from lamforge.tasks.templates import get_template, list_templates

MINE = ["insert_table", "comment", "footnote", "hyperlink", "bookmark", "special_character", "find_replace",
        "insert_text", "delete_text", "delete_paragraph", "sort_lines", "text_to_table", "table_add_row",
        "table_delete_column", "export_pdf", "save_docx"]

office = pytest.mark.office


@pytest.fixture(scope="module")
def docs(writer_env, tmp_path_factory):
    return Documents(writer_env, tmp_path_factory.mktemp("documents"))


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
    assert_fits_templates_and_formats_every_phrasing(family_id, seed=7)


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


def _insert_table_fields(params: dict, request: str) -> list[tuple[str, str]]:
    """The spin boxes the insert_table reference fills, in order, run as collection runs it (reference_callable,
    which hands it the request) on an observation that has every control it needs."""
    from lamforge.agent.backends import reference_callable
    from lamforge.schema import Control, Observation
    from lamforge.tasks.base import TaskInstance

    names = [("Table", "menu"), ("Insert Table...", "menu item"), ("Columns:", "spin box"), ("Rows:", "spin box"),
             ("Insert", "push button")]
    obs = Observation(window="menu", window_name="Table",
                      controls=[Control(label=f"c{i}", name=n, type=t) for i, (n, t) in enumerate(names)])
    instance = TaskInstance(task_id="t", family="insert_table", category="insert", instruction=request,
                            template_id="t", params=params, phrasing=0, split="train")
    step, filled = reference_callable(instance), []
    while (action := step(obs)) is not None:
        if action.function == "set_edit_text":
            filled.append((action.control_name, action.args["text"]))
    return filled


def test_insert_table_reference_fills_the_dialog_in_the_order_the_request_names_rows_and_columns():
    family = REGISTRY["insert_table"]
    params, _ = first_params("insert_table")
    params = {**params, "rows": 6, "columns": 8, "start": "Columns and rows"}  # the quoted start is not wording
    rows, columns = ("Rows:", "6"), ("Columns:", "8")
    for i, phrasing in enumerate(family.phrasings):
        request = family.instruction(params, i)
        expected = [columns, rows] if phrasing.index("{columns}") < phrasing.index("{rows}") else [rows, columns]
        assert _insert_table_fields(params, request) == expected, request
    assert _insert_table_fields(params, "a 6x8 table") == [rows, columns]
    assert _insert_table_fields(params, "8 columns by 6 rows please") == [columns, rows]
    assert family.follows(params) == (True,)  # no request: rows first


@pytest.mark.parametrize("family_id", ["insert_table", "footnote", "special_character", "insert_text"])
def test_end_of_paragraph_references_select_the_paragraph_by_its_number_then_press_end(family_id):
    """A request names the paragraph by number or first words, hardly ever by its last words, so the route selects it
    by number; the wrong edit (but insert_table's, a table one row too big) goes to the decoy paragraph the same way."""
    from lamforge.agent.backends import reference_callable
    from lamforge.schema import Observation
    from lamforge.tasks.base import TaskInstance

    family = REGISTRY[family_id]
    params, _ = first_params(family_id)
    instance = TaskInstance(task_id="t", family=family_id, category=family.category, instruction=family.instruction(params, 0),
                            template_id="t", params=params, phrasing=0, split="train")
    step = reference_callable(instance)
    first, second = step(Observation()), step(Observation())
    assert (first.function, first.args) == ("select_paragraph", {"start_index": params["index"], "end_index": params["index"]})
    assert (second.function, second.args.get("keys")) == ("keyboard_input", "{End}")
    decoy = params["index"] if family_id == "insert_table" else params["decoy"]
    assert next(family.wrong(params, Observation())).args == {"start_index": decoy, "end_index": decoy}


def test_reworded_insert_table_requests_keep_the_order_the_recorded_steps_follow():
    from lamforge.data.reworded import rewordings

    family = REGISTRY["insert_table"]
    params, _ = first_params("insert_table")
    for i in range(len(family.phrasings) - 1):
        request = family.instruction(params, i)
        order = family.follows({**params, "request": request})
        others = rewordings("insert_table", params, request, copies=4, seed=str(i))
        assert others, request
        assert all(family.follows({**params, "request": t}) == order for t in others), (request, others)


# ---------------------------------------------------------------------------------------------------------------
# Insert checkers


@office
def test_insert_table_checker(docs):
    family = REGISTRY["insert_table"]
    params, tid = first_params("insert_table")
    rows, columns = params["rows"], params["columns"]

    def table_after(index, rows, columns):
        def edit(d):
            # As the reference: {End} of the paragraph, {Enter}, Table > Insert Table.
            d.caret_at(d.paragraph(index).getEnd())
            d.command(".uno:InsertPara")
            table = d.doc.createInstance("com.sun.star.text.TextTable")
            table.initialize(rows, columns)
            d.doc.Text.insertTextContent(d.doc.getCurrentController().getViewCursor(), table, False)
        return edit

    good = docs.state(tid, table_after(params["index"], rows, columns))
    assert family.check(params, good), family.check(params, good).reason
    assert not family.check(params, docs.state(tid, table_after(params["index"], rows + 1, columns)))
    assert not family.check(params, docs.state(tid, table_after(params["decoy"], rows, columns)))
    assert not family.check(params, docs.untouched(tid))


def comment_on(text, content):
    return lambda d: d.insert_content("com.sun.star.text.TextField.Annotation", d.find(text), Author="A",
                                      Content=content)


@office
def test_comment_checker(docs):
    family = REGISTRY["comment"]
    params, tid = first_params("comment")
    assert family.check(params, docs.state(tid, comment_on(params["phrase"], params["comment"])))
    assert not family.check(params, docs.untouched(tid))
    assert not family.check(params, docs.state(tid, comment_on(params["decoy"], params["comment"])))
    assert not family.check(params, docs.state(tid, comment_on(params["phrase"], "")))


def footnote_at_end(index, note):
    def edit(d):
        footnote = d.insert_content("com.sun.star.text.Footnote", d.paragraph(index).getEnd(), absorb=False)
        footnote.setString(note)
    return edit


@office
def test_footnote_checker(docs):
    family = REGISTRY["footnote"]
    params, tid = first_params("footnote")
    good = docs.state(tid, footnote_at_end(params["index"], params["note"]))
    assert good.footnotes[0].label and good.paragraphs[params["index"]].text.endswith(good.footnotes[0].label)
    assert family.check(params, good), family.check(params, good).reason
    assert not family.check(params, docs.state(tid, footnote_at_end(params["decoy"], params["note"])))
    assert not family.check(params, docs.untouched(tid))


def link(text, url):
    def edit(d):
        d.find(text).HyperLinkURL = url
    return edit


def bookmark(text, name):
    return lambda d: d.insert_content("com.sun.star.text.Bookmark", d.find(text), Name=name)


@office
def test_hyperlink_and_bookmark_checkers(docs):
    family = REGISTRY["hyperlink"]
    params, tid = first_params("hyperlink")
    assert family.check(params, docs.state(tid, link(params["phrase"], params["url"])))
    assert not family.check(params, docs.state(tid, link(params["decoy"], params["url"])))
    assert not family.check(params, docs.state(tid, link(params["phrase"], "https://x.example")))
    assert not family.check(params, docs.untouched(tid))

    family = REGISTRY["bookmark"]
    params, tid = first_params("bookmark")
    assert family.check(params, docs.state(tid, bookmark(params["phrase"], params["name"])))
    assert not family.check(params, docs.state(tid, bookmark(params["decoy"], params["name"])))
    assert not family.check(params, docs.state(tid, bookmark(params["phrase"], "Bookmark 1")))
    assert not family.check(params, docs.untouched(tid))


@office
def test_special_character_checker(docs):
    family = REGISTRY["special_character"]
    params, tid = first_params("special_character")
    symbol = params["symbol"]
    assert family.check(params, docs.state(tid, lambda d: d.append(params["index"], symbol)))
    assert not family.check(params, docs.state(tid, lambda d: d.append(params["decoy"], symbol)))
    assert not family.check(params, docs.state(tid, lambda d: d.append(params["index"], symbol * 2)))
    assert not family.check(params, docs.untouched(tid))


# ---------------------------------------------------------------------------------------------------------------
# Editing checkers


@office
def test_find_replace_checker_needs_every_occurrence_and_nothing_else(docs):
    family = REGISTRY["find_replace"]
    params, tid = first_params("find_replace")
    word, new = params["word"], params["replacement"]

    def replace_all(*words):
        def edit(d):
            for old in words:
                replace = d.doc.createReplaceDescriptor()
                replace.SearchString, replace.ReplaceString, replace.SearchCaseSensitive = old, new, True
                d.doc.replaceAll(replace)
        return edit

    good = docs.state(tid, replace_all(word))
    assert family.check(params, good), family.check(params, good).reason
    assert not family.check(params, docs.untouched(tid))
    assert not family.check(params, docs.state(tid, lambda d: d.find(word).setString(new)))  # the first one only
    others = [w for w in (word.lower(), word.capitalize()) if w != word and get_template(tid).count(w)]
    if others:  # a replacement that ignores case replaces too much
        assert not family.check(params, docs.state(tid, replace_all(word, *others)))


@office
def test_insert_and_delete_text_checkers(docs):
    family = REGISTRY["insert_text"]
    params, tid = first_params("insert_text")
    sentence = " " + params["sentence"]
    assert family.check(params, docs.state(tid, lambda d: d.append(params["index"], sentence)))
    assert not family.check(params, docs.state(tid, lambda d: d.append(params["decoy"], sentence)))
    assert not family.check(params, docs.untouched(tid))

    family = REGISTRY["delete_text"]
    params, tid = first_params("delete_text")
    phrase = params["phrase"]
    for removed in (" " + phrase, phrase):  # with or without the space before it
        state = docs.state(tid, lambda d: d.delete(d.find(removed)))
        assert family.check(params, state), (removed, family.check(params, state).reason)
    assert not family.check(params, docs.state(tid, lambda d: d.delete(d.find(params["decoy"]))))

    def and_more(d):  # the paragraph lost more than the phrase
        d.delete(d.find(phrase))
        end = d.doc.Text.createTextCursorByRange(d.paragraph(params["index"]).getEnd())
        end.goLeft(5, True)
        d.delete(end)

    assert not family.check(params, docs.state(tid, and_more))
    assert not family.check(params, docs.untouched(tid))


def delete_paragraph(index):
    def edit(d):
        # As the reference: select the paragraph, Delete empties it, Delete again removes it.
        d.select(d.span(index))
        d.command(".uno:Delete")
        d.command(".uno:Delete")
    return edit


@office
def test_delete_paragraph_checker_keeps_neighbours_styles(docs):
    family = REGISTRY["delete_paragraph"]
    params, tid = first_params("delete_paragraph")
    index = params["index"]
    good = docs.state(tid, delete_paragraph(index))
    assert family.check(params, good), family.check(params, good).reason
    assert not family.check(params, docs.state(tid, delete_paragraph(params["decoy"])))
    following = get_template(tid).lo_style(index + 1)
    other = "Heading 1" if following == "Standard" else "Standard"

    def restyle_next(d):
        d.paragraph(index + 1).ParaStyleName = other

    assert not family.check(params, docs.state(tid, restyle_next, delete_paragraph(index)))
    assert not family.check(params, docs.untouched(tid))


def sort(start, end, ascending):
    def edit(d):
        # Tools > Sort on the selected lines, with the dialog's defaults (one key: the whole line, alphanumeric, not
        # case-sensitive) but for the order.
        cursor = d.span(start, end)
        descriptor = cursor.createSortDescriptor()
        for prop in descriptor:
            if prop.Name == "SortFields":
                keys = prop.Value
                for key in keys:
                    key.IsAscending = ascending
                # Typed: an untyped tuple reaches the office as a sequence of any, which it refuses.
                prop.Value = d.uno.Any("[]com.sun.star.table.TableSortField", keys)
        cursor.sort(descriptor)
    return edit


def text_to_table(start, end, delimiter):
    def edit(d):
        d.select(d.span(start, end))
        d.command(".uno:ConvertTextToTable", Delimiter=delimiter)
    return edit


@office
def test_sort_and_text_to_table_checkers(docs):
    family = REGISTRY["sort_lines"]
    params, tid = first_params("sort_lines")
    start, end = params["start"], params["end"]
    good = docs.state(tid, sort(start, end, True))
    assert family.check(params, good), family.check(params, good).reason
    assert not family.check(params, docs.state(tid, sort(start, end, False)))
    assert not family.check(params, docs.untouched(tid))

    family = REGISTRY["text_to_table"]
    params, tid = first_params("text_to_table")
    start, end, delimiter = params["start"], params["end"], params["delimiter"]
    good = docs.state(tid, text_to_table(start, end, delimiter))
    assert family.check(params, good), family.check(params, good).reason
    assert not family.check(params, docs.state(tid, text_to_table(start, end, "|")))  # one cell per line
    assert not family.check(params, docs.untouched(tid))


@office
def test_table_row_and_column_checkers(docs):
    family = REGISTRY["table_add_row"]
    params, tid = first_params("table_add_row")

    def add_row(at):
        return lambda d: d.table(params["table"]).getRows().insertByIndex(at, 1)

    assert family.check(params, docs.state(tid, add_row(params["row"] + 1)))
    assert not family.check(params, docs.state(tid, add_row(params["row"])))
    assert not family.check(params, docs.untouched(tid))

    family = REGISTRY["table_delete_column"]
    params, tid = first_params("table_delete_column")
    other = (params["col"] + 1) % get_template(tid).table(params["table"]).n_cols

    def delete_column(col):
        return lambda d: d.table(params["table"]).getColumns().removeByIndex(col, 1)

    assert family.check(params, docs.state(tid, delete_column(params["col"])))
    assert not family.check(params, docs.state(tid, delete_column(other)))
    assert not family.check(params, docs.untouched(tid))


# ---------------------------------------------------------------------------------------------------------------
# File checkers


def _utf16_hex(text: str) -> bytes:
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def test_pdf_strings_reads_hex_and_literal_titles():
    data = b"%PDF-1.6\n<</Title" + _utf16_hex("Caf\u00e9 Report") + b">> <</Title (Plain \\(one\\))>>"
    assert files.pdf_strings(data) == ["Caf\u00e9 Report", "Plain (one)"]


@office
def test_export_pdf_checker(docs, tmp_path, monkeypatch):
    family = REGISTRY["export_pdf"]
    params, tid = first_params("export_pdf")
    other = next(t.id for t in list_templates() if t.title != params["title"])
    out = tmp_path / "out"
    out.mkdir()
    state = docs.untouched(tid)
    assert not family.check(params, state, out)  # nothing saved
    docs.save(tid, out / params["file"])
    # The same verdict from the PDF's page text (poppler) and from its titles alone.
    verdicts = [family.check(params, state, out)]
    monkeypatch.setattr(files, "pdf_text", lambda path: None)
    verdicts.append(family.check(params, state, out))
    assert all(verdicts), verdicts
    docs.save(other, out / params["file"])  # another document under the name
    assert not family.check(params, state, out)
    docs.save(tid, out / (params["stem"] + ".odt"))  # the wrong format under the name
    (out / (params["stem"] + ".odt")).replace(out / params["file"])
    assert not family.check(params, state, out)


@office
def test_save_docx_checker(docs, tmp_path):
    family = REGISTRY["save_docx"]
    template = next(t for t in list_templates() if t.format == "docx" and t.tables())
    params = family.sample(template, random.Random(1))
    state = docs.untouched(template.id)
    assert not family.check(params, state, tmp_path)
    docs.save(template.id, tmp_path / (params["stem"] + ".odt"))  # the wrong format
    (tmp_path / (params["stem"] + ".odt")).replace(tmp_path / params["file"])
    assert not family.check(params, state, tmp_path)
    saved = docs.save(template.id, tmp_path / params["file"])
    assert family.check(params, saved, tmp_path), family.check(params, saved, tmp_path).reason
    last = len(template.paragraphs) - 1
    edited = docs.state(template.id, lambda d: d.append(last, " (edited after saving)"))
    assert not family.check(params, edited, tmp_path)


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