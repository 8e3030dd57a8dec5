"""Which sampled tasks are honest on a LibreOffice template: the samplers' assumptions, checked on the document.

The samplers were written for generated templates, which are built so that their assumptions hold: body text is
plain (no direct formatting, no fields), paragraph starts are distinct, pages are portrait with 2.5 cm margins and
no header or footer, there are no comments, notes, links or breaks. LibreOffice's templates break each of these
somewhere (justified letters, 10 pt text, headers on, two paragraphs that start "Lorem ipsum dolor sit"). A task
whose target already has the asked-for property, or whose instruction names something twice, would be passed by
the untouched document or failed by the reference, so such a draw is rejected here, with the reason, and the
split draws again. Each rule reads what LibreOffice reported for the untouched document (LoTemplateDoc.state).
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Callable

import lamforge.tasks.families  # noqa: F401  (registers the families)
from lamforge.env.docstate import DocState, ParagraphState, Run
from lamforge.env.office import find_binary
from lamforge.tasks.base import REGISTRY
from lamforge.tasks.families.paragraph import SPACINGS

LENGTH_TOLERANCE = 10  # 1/100 mm, as the paragraph and page checkers use
Rule = Callable[..., "str | None"]  # (template, params, family) -> why not, or None
SELECTED_BY_TEXT = ("phrase", "decoy", "cell", "end", "decoy_end")  # params the routes find with select_text


def why_unfit(template, family_id: str, params: dict) -> str | None:
    """The first reason this (document, family, parameters) would not be an honest task, or None."""
    family = REGISTRY[family_id]
    for rule in (_named_paragraphs_unique, _selectable, *RULES.get(family_id, ()), _untouched_rejected):
        reason = rule(template, params, family)
        if reason:
            return reason
    return None


# ---------------------------------------------------------------------------------------------------------------
# Rules for every family.


def _named_paragraphs_unique(template, params: dict, family) -> str | None:
    """A paragraph an instruction names by its opening words must be the only one that opens with them."""
    texts = template.paragraph_texts()
    # "start" names params["index"] (or the first paragraph of a run, in the list families), "end_start" the last.
    for key, index_key in (("start", "index" if "index" in params else "first"), ("end_start", "last")):
        start = params.get(key)
        if not isinstance(start, str) or index_key not in params:
            continue
        if not texts[params[index_key]].startswith(start):
            return f"paragraph {params[index_key]} does not open with {start!r} (a line break splits its words)"
        # The phrasing rules (tasks/phrasing.py) may name a paragraph given by position by its opening words too.
        named = any(f"{{{k}}}" in phrasing for phrasing in family.phrasings for k in (key, "index", "first"))
        if named and sum(t.startswith(start) for t in texts) != 1:
            return f"more than one paragraph opens with {start!r}"
    for index, start in zip(range(params.get("first", 0), params.get("last", -1) + 1), params.get("starts", [])):
        if not texts[index].startswith(start):
            return f"paragraph {index} does not open with {start!r}"
    return None


def _selectable(template, params: dict, family) -> str | None:
    """Text a route selects, or replaces, must be typed text: Writer's find does not look inside a field."""
    for key in SELECTED_BY_TEXT:
        if isinstance(params.get(key), str) and not template.findable(params[key]):
            return f"{params[key]!r} is (partly) the text of a field or placeholder, which find cannot select"
    word = params.get("word")
    if isinstance(word, str) and template.typed_count(word) != template.count(word):
        return f"some occurrences of {word!r} are inside fields, which Replace All does not change"
    return None


def _untouched_rejected(template, params: dict, family) -> str | None:
    """The checker must reject the document as it is (families with a setup change it first: not checked here)."""
    if family.setup(params):
        return None
    try:
        verdict = family.check(params, template.state, Path("/nonexistent/lamforge-untouched"))
    except Exception as exc:  # a checker written for generated templates may not expect this document at all
        return f"the checker cannot judge this document ({type(exc).__name__}: {exc})"
    return f"the untouched document already passes: {verdict.reason}" if verdict.success else None


# ---------------------------------------------------------------------------------------------------------------
# Character formatting: neither the phrase's paragraph nor the decoy's may already carry the format.


def _run_test(family_id: str, params: dict) -> Callable[[Run], bool]:
    special = {
        "font_name": lambda r: r.font_name == params["font"],
        "font_size": lambda r: abs(r.font_size - params["size"]) < 0.05,
        "change_case": lambda r: r.case_map != 0,
        "clear_formatting": lambda r: r.bold or r.italic,  # setup adds both, and only direct formatting clears
    }
    return special.get(family_id) or REGISTRY[family_id].test


def _paragraph_of(state: DocState, phrase: str) -> ParagraphState | None:
    hit = state.find(phrase)
    return hit[0] if hit else None


def _character(family_id: str) -> Rule:
    def rule(template, params, family):
        test = _run_test(family_id, params)
        for phrase in (params["phrase"], params["decoy"]):
            paragraph = _paragraph_of(template.state, phrase)
            if paragraph is None:
                return f"{phrase!r} is not in a body paragraph"
            carrying = [r.text for r in paragraph.runs if r.kind == "Text" and test(r)]
            if carrying:
                return f"the paragraph of {phrase!r} already has that format ({carrying[0][:30]!r})"
        return None

    return rule


# ---------------------------------------------------------------------------------------------------------------
# Paragraph formatting: the target and the decoy must not already have the asked-for value.


def _paragraph_value(test: Callable[[ParagraphState, dict], bool], what: str) -> Rule:
    def rule(template, params, family):
        for key in ("index", "decoy"):
            paragraph = template.state.paragraphs[params[key]]
            if test(paragraph, params):
                return f"paragraph {params[key]} already has {what}"
        return None

    return rule


def _cm(value: str) -> int:
    return round(float(value.split()[0]) * 1000)


def _length(attribute: str) -> Rule:
    return _paragraph_value(lambda p, params: abs(getattr(p, attribute) - _cm(params["value"])) <= LENGTH_TOLERANCE,
                            f"that {attribute.replace('_', ' ')}")


def _spacing(p: ParagraphState, params: dict) -> bool:
    return p.line_spacing_mode == 0 and p.line_spacing == SPACINGS[params["spacing"]]


def _not_in_lists(template, params, family):
    indices = list(range(params["first"], params["last"] + 1)) + [params["decoy"]]
    listed = [i for i in indices if template.state.paragraphs[i].is_list]
    return f"paragraph {listed[0]} is already in a list" if listed else None


# ---------------------------------------------------------------------------------------------------------------
# The page: generated templates have one portrait page style, 2.5 cm margins, no header, footer or breaks.


def _portrait(template, params, family):
    return "the pages are already landscape" if template.state.page.landscape else None


def _margins_differ(template, params, family):
    page, wanted = template.state.page, _cm(params["value"])
    same = [side for side in ("left", "right", "top", "bottom")
            if abs(getattr(page, f"{side}_margin") - wanted) <= LENGTH_TOLERANCE]
    return f"the {same[0]} margin is already {params['value']}" if same else None


def _default_page_style(template, params, family):
    # The route switches a header or footer on from Insert > Header and Footer > the page style's item, and picks
    # "Default Page Style" where the submenu lists several; a document that starts on another page style (the
    # letters' "First Page") would get it on a page style the first page does not use.
    style = template.state.page.style
    return f"the document starts on the page style {style!r}, not the default one" if style != "Standard" else None


def _no_word_completion(template, params, family):
    # As the family's own sampler does for generated templates: Writer's word completion offers the rest of a
    # longer word of the document while the last word is typed, and the offer stays appended.
    last = params["text"].split()[-1].lower()
    words = {w.lower().strip(".,;:!?()") for text in template.searchable_texts() for w in text.split()}
    longer = sorted(w for w in words if w != last and w.startswith(last))
    return f"Writer's word completion would turn {last!r} into {longer[0]!r}" if longer else None


def _no_header_or_footer(template, params, family):
    page = template.state.page
    # The route switches the area on from a menu item that toggles it: on an area that is on, it asks to delete it.
    return "the page style already has a header or a footer" if page.header_on or page.footer_on else None


def _no_footer(template, params, family):
    return "the page style already has a footer" if template.state.page.footer_on else None


def _page_break_counts(template, params, family):
    # The checker finds the target among the non-empty paragraphs (a page break adds an empty one before it), so
    # no empty paragraph may come before it, and no paragraph may already have a break.
    paragraphs = template.state.paragraphs
    if any(not p.text for p in paragraphs[: params["index"]]):
        return "an empty paragraph comes before the target, so the checker's count of non-empty ones would be off"
    broken = [p.index for p in paragraphs if p.break_type != "NONE"]
    return f"paragraph {broken[0]} already has a break" if broken else None


# ---------------------------------------------------------------------------------------------------------------
# Objects the checkers count: the document must have none to begin with.


def _none_of(attribute: str, what: str) -> Rule:
    return lambda template, params, family: (f"the document already has {what}"
                                             if getattr(template.state, attribute) else None)


def _docx_reads_back(template, params, family):
    # The checker reads the saved .docx with python-docx and compares its paragraphs with the live document's. Its
    # text leaves out what fields show (placeholders, user fields), and Writer writes each change of text section
    # as a section break, which Word keeps in an extra empty paragraph (measured on the Resume: 31 for 25), so a
    # correct file would read differently from the live document.
    if template.sections:
        return f"its {template.sections} text section(s) become extra paragraphs in a .docx"
    state = template.state
    if any(r.kind == "TextField" for p in state.paragraphs for r in p.runs):
        return "a paragraph holds a field, whose text the .docx reader leaves out"
    cells = [cell for table in template.tables() for row in table.rows for cell in row if cell]
    if len(cells) != len(template.typed_cells()):
        return "a table cell holds a field, whose text the .docx reader leaves out"
    return None


def _title_in_text(template, params, family):
    # The PDF checker looks for the title in the page text (pdftotext) or in the PDF's titles; both hold only for a
    # heading of the document (LoTemplateDoc.title prefers one).
    if not params.get("title") or params["title"] not in [" ".join(t.split()) for t in template.paragraph_texts()]:
        return "the document has no heading to recognise its PDF by"
    return None


def _symbol_in_font(template, params, family):
    # The Special Characters dialog lists the glyphs of the font at the cursor: a symbol that font lacks has no
    # cell to click (measured: no ✓ in Liberation Serif, the serif letter's body font). Both routes type at a
    # paragraph's end, the reference at the target's and the wrong edit at the decoy's.
    for key in ("index", "decoy"):
        runs = [r for r in template.state.paragraphs[params[key]].runs if r.kind == "Text"]
        font = runs[-1].font_name if runs else ""
        if font not in fonts_with(params["symbol"]):
            return f"the font at the end of paragraph {params[key]} ({font or 'none'}) has no {params['symbol']}"
    return None


@lru_cache(maxsize=None)
def fonts_with(character: str) -> frozenset[str]:
    """The installed font families that have a glyph for `character`, as fontconfig reports them.

    Why fc-list: fontconfig is how LibreOffice finds fonts on Linux, and it answers this from its cache; a font
    that is not installed (and that Writer would replace) is reported as not having it.
    """
    tool = find_binary("fc-list")
    if tool is None:
        return frozenset()
    try:
        out = subprocess.run([tool, f":charset={ord(character):x}", "family"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return frozenset()
    return frozenset(name.strip() for line in out.splitlines() for name in line.split(",") if name.strip())


def _no_empty_table_of_that_shape(template, params, family):
    shape = (params["rows"], params["columns"])
    empty = [t for t in template.state.tables if t.shape == shape and not any(any(row) for row in t.rows)]
    return f"the document already has an empty {shape[0]}x{shape[1]} table" if empty else None


CHARACTER = ("bold", "italic", "underline", "strikethrough", "superscript", "subscript", "font_color", "highlight",
             "font_name", "font_size", "change_case", "clear_formatting")

RULES: dict[str, tuple[Rule, ...]] = {
    **{family: (_character(family),) for family in CHARACTER},
    "align": (_paragraph_value(lambda p, params: p.align == params["align"], "that alignment"),),
    "line_spacing": (_paragraph_value(_spacing, "that line spacing"),),
    "indent": (_length("left_margin"),),
    "spacing_above": (_length("top_margin"),),
    "spacing_below": (_length("bottom_margin"),),
    "paragraph_style": (_paragraph_value(lambda p, params: p.style == params["style"], "that style"),),
    "bullets": (_not_in_lists,),
    "numbering": (_not_in_lists,),
    "page_orientation": (_portrait,),
    "page_margins": (_margins_differ,),
    "page_break": (_page_break_counts,),
    "header_text": (_default_page_style, _no_header_or_footer, _no_word_completion),
    "footer_text": (_default_page_style, _no_header_or_footer, _no_word_completion),
    "page_numbers": (_default_page_style, _no_footer),
    "comment": (_none_of("comments", "comments"),),
    "footnote": (_none_of("footnotes", "footnotes"),),
    "hyperlink": (_none_of("hyperlinks", "hyperlinks"),),
    "bookmark": (_none_of("bookmarks", "bookmarks"),),
    "export_pdf": (_title_in_text,),
    "save_docx": (_docx_reads_back,),
    "insert_table": (_no_empty_table_of_that_shape,),
    "special_character": (_symbol_in_font,),
}
