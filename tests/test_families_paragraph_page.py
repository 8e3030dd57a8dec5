"""Checkers and samplers of the paragraph and page task families.

Each checker must accept the document the reference produces and reject the untouched document and the family's
wrong edit. The documents are the templates' real files, opened and edited in LibreOffice with the commands the
toolbar and menus send, and the states are what it reports for them (office_documents.py): an empty list label for
a default bullet list, no column layout at all (0 columns) on an untouched page, the empty paragraph that
Insert > Page Break splits off. The live runs of reference and wrong edit through the GUI are
`lamforge tasks verify`. Samplers and phrasings need no office.
"""

from __future__ import annotations

import random

import pytest
from office_documents import Documents

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.env.docstate import DocState
from lamforge.tasks.base import REGISTRY
from helpers import assert_fits_templates_and_formats_every_phrasing
from lamforge.tasks.families.page import MAX_COLUMNS
from lamforge.tasks.families.paragraph import SPACINGS
from lamforge.tasks.templates import list_templates

PARAGRAPH = ["align", "line_spacing", "indent", "spacing_above", "spacing_below", "paragraph_style", "bullets",
             "numbering"]
PAGE = ["page_orientation", "page_margins", "page_columns", "page_break", "header_text", "footer_text",
        "page_numbers"]

office = pytest.mark.office


@pytest.fixture(scope="module")
def docs(writer_env, tmp_path_factory):
    return Documents(writer_env, tmp_path_factory.mktemp("documents"))


def params_for(family_id: str, split: str = "train") -> tuple[dict, str]:
    family = REGISTRY[family_id]
    for template in list_templates(split):
        params = family.sample(template, random.Random(f"test|{family_id}|{template.id}"))
        if params is not None:
            return params, template.id
    raise AssertionError(f"{family_id} fits no {split} template")


def check(family_id: str, params: dict, state: DocState) -> bool:
    return REGISTRY[family_id].check(params, state).success


# ---------------------------------------------------------------------------------------------------------------
# Samplers and phrasings


@pytest.mark.parametrize("family_id", PARAGRAPH + PAGE)
def test_family_fits_train_and_test_templates_and_formats_every_phrasing(family_id):
    assert_fits_templates_and_formats_every_phrasing(family_id, seed=3)


def test_line_spacing_never_asks_docx_for_the_spacing_it_already_has():
    # Word's Normal style is 1.15 lines, so "1.15 Lines" on a .docx would be no change at all.
    for template in list_templates():
        for seed in range(20):
            params = REGISTRY["line_spacing"].sample(template, random.Random(seed))
            if params and template.format == "docx":
                assert params["spacing"] != "1.15 Lines"


def test_list_run_is_consecutive_plain_paragraphs_with_a_decoy_outside():
    for template in list_templates():
        params = REGISTRY["bullets"].sample(template, random.Random(5))
        if params is None:
            continue
        run = range(params["first"], params["last"] + 1)
        assert len(run) >= 2 and params["decoy"] not in run
        assert all(template.paragraph(i).style == "Normal" for i in run)
        assert template.paragraph(params["decoy"]).style == "Normal"


def test_list_runs_never_span_a_table():
    # Seen live: "number paragraphs 12-13" across a 24-cell table numbered them 1. and 26.
    spanning = 0
    for template in list_templates():
        before_table = template.paragraphs_before_tables()
        spanning += bool(before_table)
        for family in ("bullets", "numbering"):
            for seed in range(30):
                params = REGISTRY[family].sample(template, random.Random(seed))
                if params:
                    assert not before_table & set(range(params["first"], params["last"])), (template.id, params)
    assert spanning >= 3  # the rule is exercised: several templates have a table between two paragraphs


# ---------------------------------------------------------------------------------------------------------------
# Paragraph checkers


def set_paragraph(index, **props):
    """Paragraph properties set as the Paragraph dialog sets them."""
    def edit(d):
        for name, value in props.items():
            d.paragraph(index).setPropertyValue(name, value)
    return edit


def command_on(first, last, command, **args):
    """Select paragraphs first..last and send a toolbar or menu command."""
    def edit(d):
        d.select(d.span(first, last))
        d.command(command, **args)
    return edit


ALIGN_COMMANDS = {"center": ".uno:CenterPara", "right": ".uno:RightPara", "justify": ".uno:JustifyPara"}


@office
def test_align_checker(docs):
    params, tid = params_for("align")
    command = ALIGN_COMMANDS[params["align"]]
    assert check("align", params, docs.state(tid, command_on(params["index"], params["index"], command)))
    assert not check("align", params, docs.untouched(tid))
    assert not check("align", params, docs.state(tid, command_on(params["decoy"], params["decoy"], command)))


@office
def test_line_spacing_checker(docs):
    params, tid = params_for("line_spacing")

    def spaced(index, percent):
        return lambda d: d.paragraph(index).setPropertyValue(
            "ParaLineSpacing", d.struct("com.sun.star.style.LineSpacing", Mode=0, Height=percent))

    percent = SPACINGS[params["spacing"]]
    other = next(p for p in SPACINGS.values() if p != percent)
    assert check("line_spacing", params, docs.state(tid, spaced(params["index"], percent)))
    assert not check("line_spacing", params, docs.untouched(tid))
    assert not check("line_spacing", params, docs.state(tid, spaced(params["decoy"], percent)))
    assert not check("line_spacing", params, docs.state(tid, spaced(params["index"], other)))


@office
@pytest.mark.parametrize("family_id, uno_name", [("indent", "ParaLeftMargin"), ("spacing_above", "ParaTopMargin"),
                                                 ("spacing_below", "ParaBottomMargin")])
def test_paragraph_length_checkers(docs, family_id, uno_name):
    params, tid = params_for(family_id)
    value = round(float(params["value"].split()[0]) * 1000)
    assert check(family_id, params, docs.state(tid, set_paragraph(params["index"], **{uno_name: value})))
    assert not check(family_id, params, docs.untouched(tid))
    assert not check(family_id, params, docs.state(tid, set_paragraph(params["decoy"], **{uno_name: value})))
    assert not check(family_id, params, docs.state(tid, set_paragraph(params["index"], **{uno_name: value + 200})))


def styled(index, style):
    # The Styles menu's items send this command.
    return command_on(index, index, ".uno:StyleApply", Style=style, FamilyName="ParagraphStyles")


@office
def test_paragraph_style_checker(docs):
    params, tid = params_for("paragraph_style")
    style, index, decoy = params["style"], params["index"], params["decoy"]
    assert check("paragraph_style", params, docs.state(tid, styled(index, style)))
    assert not check("paragraph_style", params, docs.untouched(tid))
    assert not check("paragraph_style", params, docs.state(tid, styled(decoy, style)))
    assert not check("paragraph_style", params, docs.state(tid, styled(index, style), styled(decoy, style)))


@office
def test_paragraph_style_quotations_is_libreoffices_name(docs):
    params, tid = params_for("paragraph_style")
    params = dict(params, style="Quotations")
    # The templates' own "Quote" style (from Word) is another style; the task names LibreOffice's "Quotations".
    quote = docs.state(tid, styled(params["index"], "Quote"))
    assert quote.paragraphs[params["index"]].style == "Quote"
    assert not check("paragraph_style", params, quote)
    assert check("paragraph_style", params, docs.state(tid, styled(params["index"], "Quotations")))


def bulleted(first, last):
    return command_on(first, last, ".uno:DefaultBullet")  # the toolbar's Unordered List


def numbered(first, last):
    return command_on(first, last, ".uno:DefaultNumbering")  # the toolbar's Ordered List


@office
def test_bullets_checker(docs):
    params, tid = params_for("bullets")
    first, last, decoy = params["first"], params["last"], params["decoy"]
    good = docs.state(tid, bulleted(first, last))
    assert check("bullets", params, good)
    assert not check("bullets", params, docs.untouched(tid))
    assert not check("bullets", params, docs.state(tid, numbered(first, last)))
    assert not check("bullets", params, docs.state(tid, bulleted(first, last - 1)))
    assert not check("bullets", params, docs.state(tid, bulleted(first, last), bulleted(decoy, decoy)))


@office
def test_numbering_checker(docs):
    params, tid = params_for("numbering")
    first, last, decoy = params["first"], params["last"], params["decoy"]
    assert check("numbering", params, docs.state(tid, numbered(first, last)))
    assert not check("numbering", params, docs.untouched(tid))
    assert not check("numbering", params, docs.state(tid, bulleted(first, last)))

    def each_restarts(d):
        for i in range(first, last + 1):
            d.paragraph(i).ParaIsNumberingRestart = True

    restarted = docs.state(tid, numbered(first, last), each_restarts)
    assert [p.list_label for p in restarted.paragraphs[first : last + 1]] == ["1."] * (last - first + 1)
    assert not check("numbering", params, restarted)
    assert not check("numbering", params, docs.state(tid, numbered(first, last), numbered(decoy, decoy)))


# ---------------------------------------------------------------------------------------------------------------
# Page checkers


def page(**settings):
    """Page style settings, as Format > Page Style sets them."""
    def edit(d):
        style = d.page_style()
        for name, value in settings.items():
            style.setPropertyValue(name, value)
    return edit


def landscape(d):
    style = d.page_style()
    width, height = style.Width, style.Height
    style.IsLandscape, style.Width, style.Height = True, height, width


def columns(count):
    def edit(d):
        layout = d.doc.createInstance("com.sun.star.text.TextColumns")
        layout.setColumnCount(count)
        d.page_style().TextColumns = layout
    return edit


def area_text(area, text):
    """Turn the header or footer on and type `text` into it."""
    def edit(d):
        style = d.page_style()
        style.setPropertyValue(f"{area}IsOn", True)
        if text:
            style.getPropertyValue(f"{area}Text").setString(text)
    return edit


def area_field(area, service, **props):
    def edit(d):
        style = d.page_style()
        style.setPropertyValue(f"{area}IsOn", True)
        body = style.getPropertyValue(f"{area}Text")
        d.insert_content(service, body.getEnd(), absorb=False, **props)
    return edit


def changed_start(index):
    return lambda d: d.doc.Text.insertString(d.paragraph(index).getStart(), "changed ", False)


@office
def test_orientation_checker(docs):
    params, tid = params_for("page_orientation")
    assert check("page_orientation", params, docs.state(tid, landscape))
    assert not check("page_orientation", params, docs.untouched(tid))


@office
def test_margins_checker(docs):
    params, tid = params_for("page_margins")
    side, value = params["side"], round(float(params["value"].split()[0]) * 1000)
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[side]
    name = {"left": "LeftMargin", "right": "RightMargin", "top": "TopMargin", "bottom": "BottomMargin"}
    assert check("page_margins", params, docs.state(tid, page(**{name[side]: value})))
    assert not check("page_margins", params, docs.untouched(tid))
    assert not check("page_margins", params, docs.state(tid, page(**{name[opposite]: value})))
    assert not check("page_margins", params, docs.state(tid, page(**{uno: value for uno in name.values()})))


@office
def test_columns_checker(docs):
    params, tid = params_for("page_columns")
    assert docs.untouched(tid).page.columns == 0  # no column layout, which shows as one column
    assert check("page_columns", params, docs.state(tid, columns(params["columns"])))
    assert not check("page_columns", params, docs.untouched(tid))
    wrong = params["columns"] + 1 if params["columns"] < MAX_COLUMNS else params["columns"] - 1
    assert not check("page_columns", params, docs.state(tid, columns(wrong)))


def break_before(index):
    # Format > Paragraph > Text Flow > Breaks, Insert: a page break before the paragraph.
    return lambda d: d.paragraph(index).setPropertyValue("BreakType", d.enum("com.sun.star.style.BreakType",
                                                                             "PAGE_BEFORE"))


@office
def test_page_break_checker_finds_the_paragraph_by_text(docs):
    params, tid = params_for("page_break")
    index = params["index"]

    def insert_page_break(d):  # Insert > Page Break with the caret at the paragraph's start
        d.caret_at(d.paragraph(index).getStart())
        d.command(".uno:InsertPagebreak")

    split = docs.state(tid, insert_page_break)
    assert split.paragraphs[index].text == "" and split.paragraphs[index + 1].text.startswith(params["start"])
    assert check("page_break", params, split)
    assert check("page_break", params, docs.state(tid, break_before(index)))
    assert not check("page_break", params, docs.untouched(tid))
    assert not check("page_break", params, docs.state(tid, break_before(params["decoy"])))
    assert not check("page_break", params, docs.state(tid, break_before(index), break_before(params["decoy"])))

    def over_selected_words(d):  # a page break typed over the selected first words replaces them
        d.select(d.find(params["start"]))
        d.command(".uno:InsertPagebreak")

    assert not check("page_break", params, docs.state(tid, over_selected_words))


@office
@pytest.mark.parametrize("family_id, area, other", [("header_text", "Header", "Footer"),
                                                    ("footer_text", "Footer", "Header")])
def test_header_and_footer_checkers(docs, family_id, area, other):
    params, tid = params_for(family_id)
    text = params["text"]
    assert check(family_id, params, docs.state(tid, area_text(area, text)))
    assert not check(family_id, params, docs.untouched(tid))
    assert not check(family_id, params, docs.state(tid, area_text(area, "")))
    assert not check(family_id, params, docs.state(tid, area_text(other, text)))
    typed_in_body = docs.state(tid, area_text(area, ""), lambda d: d.add_paragraph(text))
    assert not check(family_id, params, typed_in_body)


PAGE_NUMBER = "com.sun.star.text.TextField.PageNumber"
PAGE_COUNT = "com.sun.star.text.TextField.PageCount"


@office
def test_page_numbers_checker(docs):
    params, tid = params_for("page_numbers")

    def page_number(area):
        return lambda d: area_field(area, PAGE_NUMBER, NumberingType=4,  # arabic
                                    SubType=d.enum("com.sun.star.text.PageNumberType", "CURRENT"))(d)

    assert check("page_numbers", params, docs.state(tid, page_number("Footer")))
    assert not check("page_numbers", params, docs.untouched(tid))
    assert not check("page_numbers", params, docs.state(tid, area_field("Footer", PAGE_COUNT, NumberingType=4)))
    assert not check("page_numbers", params, docs.state(tid, page_number("Header")))


@office
def test_page_edits_must_leave_the_body_text_alone(docs):
    for family_id in ("page_orientation", "page_columns", "header_text"):
        params, tid = params_for(family_id)
        good = {"page_orientation": landscape, "page_columns": columns(params.get("columns", 2)),
                "header_text": area_text("Header", params.get("text", ""))}[family_id]
        assert check(family_id, params, docs.state(tid, good))
        assert not check(family_id, params, docs.state(tid, good, changed_start(params["index"])))
