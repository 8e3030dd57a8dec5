"""Checkers and samplers of the paragraph and page task families, on synthetic DocStates (no office needed).

Each checker must accept the document the reference produces and reject the untouched document and the family's
wrong edit. The states below mirror what LibreOffice reported in live runs (e.g. an empty list label for bullets,
0 columns for a page without a column layout, an empty paragraph split off before a page break); the live runs
themselves are `lamforge tasks verify`.
"""

from __future__ import annotations

import random

import pytest

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.env.docstate import DocState, PageState, ParagraphState, Run
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.templates import get_template, list_templates

PARAGRAPH = ["align", "line_spacing", "indent", "spacing_above", "spacing_below", "paragraph_style", "bullets",
             "numbering"]
PAGE = ["page_orientation", "page_margins", "page_columns", "page_break", "header_text", "footer_text",
        "page_numbers"]


def paragraph(i: int, text: str, **kw) -> ParagraphState:
    fields = dict(index=i, text=text, style="Standard", align="left", line_spacing_mode=0, line_spacing=100,
                  left_margin=0, right_margin=0, first_line_indent=0, top_margin=0, bottom_margin=0,
                  runs=[Run(text=text, start=0)])
    fields.update(kw)
    return ParagraphState(**fields)


def state_of(template_id: str, changes: dict[int, dict] | None = None, page: dict | None = None,
             texts: list[str] | None = None) -> DocState:
    """The DocState LibreOffice reports for the untouched template, with paragraph and page fields changed."""
    template = get_template(template_id)
    texts = template.paragraph_texts() if texts is None else texts
    styles = [template.lo_style(i) for i in range(len(template.paragraphs))]
    styles += ["Standard"] * (len(texts) - len(styles))
    changes = changes or {}
    paragraphs = [paragraph(i, t, **({"style": s} | changes.get(i, {}))) for i, (t, s) in enumerate(zip(texts, styles))]
    page_fields = dict(style="Standard", landscape=False, width=21001, height=29700, left_margin=2499,
                       right_margin=2499, top_margin=2499, bottom_margin=2499, header_on=False, header_text="",
                       footer_on=False, footer_text="", columns=0)
    page_fields.update(page or {})
    return DocState(paragraphs=paragraphs, page=PageState(**page_fields))


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
    family = REGISTRY[family_id]
    assert len(family.phrasings) >= 5
    fits = {"train": 0, "test": 0}
    for template in list_templates():
        params = family.sample(template, random.Random(3))
        if params is None:
            continue
        fits[template.split] += 1
        for i in range(len(family.phrasings)):
            text = family.instruction(params, i)
            assert "{" not in text and "\t" not in text, text
    assert fits["train"] >= 1 and fits["test"] >= 1, fits


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


@pytest.mark.parametrize("family_id, attribute", [("indent", "left_margin"), ("spacing_above", "top_margin"),
                                                  ("spacing_below", "bottom_margin")])
def test_paragraph_length_checkers(family_id, attribute):
    params, template_id = params_for(family_id)
    value = round(float(params["value"].split()[0]) * 1000) - 1  # the dialog rounds 0.5 cm to 499
    assert check(family_id, params, state_of(template_id, {params["index"]: {attribute: value}}))
    assert not check(family_id, params, state_of(template_id))
    assert not check(family_id, params, state_of(template_id, {params["decoy"]: {attribute: value}}))
    assert not check(family_id, params, state_of(template_id, {params["index"]: {attribute: value + 200}}))


def test_paragraph_style_checker():
    params, template_id = params_for("paragraph_style")
    style = params["style"]
    assert check("paragraph_style", params, state_of(template_id, {params["index"]: {"style": style}}))
    assert not check("paragraph_style", params, state_of(template_id))
    assert not check("paragraph_style", params, state_of(template_id, {params["decoy"]: {"style": style}}))
    both = {params["index"]: {"style": style}, params["decoy"]: {"style": style}}
    assert not check("paragraph_style", params, state_of(template_id, both))


def test_paragraph_style_quotations_is_libreoffices_name():
    params, template_id = params_for("paragraph_style")
    params = dict(params, style="Quotations")
    # The templates' own "Quote" style (from Word) is another style; the task names LibreOffice's "Quotations".
    assert not check("paragraph_style", params, state_of(template_id, {params["index"]: {"style": "Quote"}}))
    assert check("paragraph_style", params, state_of(template_id, {params["index"]: {"style": "Quotations"}}))


def listed(first: int, last: int, labels: list[str]) -> dict[int, dict]:
    return {i: {"is_list": True, "list_label": label, "numbering_style": "L1"}
            for i, label in zip(range(first, last + 1), labels)}


def test_bullets_checker():
    params, template_id = params_for("bullets")
    first, last, n = params["first"], params["last"], params["last"] - params["first"] + 1
    assert check("bullets", params, state_of(template_id, listed(first, last, [""] * n)))
    assert check("bullets", params, state_of(template_id, listed(first, last, ["•"] * n)))
    assert not check("bullets", params, state_of(template_id))
    assert not check("bullets", params, state_of(template_id, listed(first, last, [f"{k}." for k in range(1, n + 1)])))
    assert not check("bullets", params, state_of(template_id, listed(first, last - 1, [""] * (n - 1))))
    with_decoy = listed(first, last, [""] * n) | listed(params["decoy"], params["decoy"], [""])
    assert not check("bullets", params, state_of(template_id, with_decoy))


def test_numbering_checker():
    params, template_id = params_for("numbering")
    first, last, n = params["first"], params["last"], params["last"] - params["first"] + 1
    numbers = [f"{k}." for k in range(1, n + 1)]
    assert check("numbering", params, state_of(template_id, listed(first, last, numbers)))
    assert not check("numbering", params, state_of(template_id))
    assert not check("numbering", params, state_of(template_id, listed(first, last, [""] * n)))  # bullets
    assert not check("numbering", params, state_of(template_id, listed(first, last, ["1."] * n)))
    with_decoy = listed(first, last, numbers) | listed(params["decoy"], params["decoy"], ["1."])
    assert not check("numbering", params, state_of(template_id, with_decoy))


# ---------------------------------------------------------------------------------------------------------------
# Page checkers


def test_orientation_checker():
    params, template_id = params_for("page_orientation")
    landscape = {"landscape": True, "width": 29700, "height": 21001}
    assert check("page_orientation", params, state_of(template_id, page=landscape))
    assert not check("page_orientation", params, state_of(template_id))


def test_margins_checker():
    params, template_id = params_for("page_margins")
    side, value = params["side"], round(float(params["value"].split()[0]) * 1000)
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[side]
    assert check("page_margins", params, state_of(template_id, page={f"{side}_margin": value - 1}))
    assert not check("page_margins", params, state_of(template_id))
    assert not check("page_margins", params, state_of(template_id, page={f"{opposite}_margin": value}))
    every = {f"{s}_margin": value for s in ("left", "right", "top", "bottom")}
    assert not check("page_margins", params, state_of(template_id, page=every))


def test_columns_checker():
    params, template_id = params_for("page_columns")
    assert check("page_columns", params, state_of(template_id, page={"columns": params["columns"]}))
    assert not check("page_columns", params, state_of(template_id))  # 0: no column layout
    assert not check("page_columns", params, state_of(template_id, page={"columns": 5 - params["columns"]}))


def test_page_break_checker_finds_the_paragraph_by_text():
    params, template_id = params_for("page_break")
    texts = get_template(template_id).paragraph_texts()
    index = params["index"]
    # Insert > Page Break splits off an empty paragraph before the target, which moves down by one.
    split = texts[:index] + [""] + texts[index:]
    assert check("page_break", params, state_of(template_id, {index + 1: {"break_type": "PAGE_BEFORE"}}, texts=split))
    assert check("page_break", params, state_of(template_id, {index: {"break_type": "PAGE_BEFORE"}}))
    assert not check("page_break", params, state_of(template_id))
    assert not check("page_break", params, state_of(template_id, {params["decoy"]: {"break_type": "PAGE_BEFORE"}}))
    both = {index: {"break_type": "PAGE_BEFORE"}, params["decoy"]: {"break_type": "PAGE_BEFORE"}}
    assert not check("page_break", params, state_of(template_id, both))
    # A break that replaced the selected first words.
    lost = list(texts)
    lost[index] = lost[index][len(params["start"]):]
    assert not check("page_break", params, state_of(template_id, {index: {"break_type": "PAGE_BEFORE"}}, texts=lost))


@pytest.mark.parametrize("family_id, area, other", [("header_text", "header", "footer"), ("footer_text", "footer", "header")])
def test_header_and_footer_checkers(family_id, area, other):
    params, template_id = params_for(family_id)
    text = params["text"]
    assert check(family_id, params, state_of(template_id, page={f"{area}_on": True, f"{area}_text": text}))
    assert not check(family_id, params, state_of(template_id))
    assert not check(family_id, params, state_of(template_id, page={f"{area}_on": True}))
    assert not check(family_id, params, state_of(template_id, page={f"{other}_on": True, f"{other}_text": text}))
    typed_in_body = get_template(template_id).paragraph_texts() + [text]
    assert not check(family_id, params, state_of(template_id, page={f"{area}_on": True}, texts=typed_in_body))


def test_page_numbers_checker():
    params, template_id = params_for("page_numbers")
    footer = {"footer_on": True, "footer_text": "3"}
    assert check("page_numbers", params, state_of(template_id, page=footer | {"footer_fields": ["Page number"]}))
    assert not check("page_numbers", params, state_of(template_id))
    assert not check("page_numbers", params, state_of(template_id, page=footer | {"footer_fields": ["Page count"]}))
    assert not check("page_numbers", params, state_of(template_id, page={"header_on": True, "header_fields": ["Page number"]}))


def test_page_edits_must_leave_the_body_text_alone():
    for family_id in ("page_orientation", "page_columns", "header_text"):
        params, template_id = params_for(family_id)
        texts = get_template(template_id).paragraph_texts()
        texts[params["index"]] = "changed " + texts[params["index"]]
        good_page = {"page_orientation": {"landscape": True, "width": 29700, "height": 21001},
                     "page_columns": {"columns": params.get("columns", 2)},
                     "header_text": {"header_on": True, "header_text": params.get("text", "")}}[family_id]
        assert check(family_id, params, state_of(template_id, page=good_page))
        assert not check(family_id, params, state_of(template_id, page=good_page, texts=texts))
