"""Page families: the page style (orientation, margins, columns, header, footer, page numbers) and page breaks.

Every template has one page style, which LibreOffice reports as "Standard" through UNO and shows as "Default Page
Style" in the UI (in the Page Style dialog's title and the Insert > Header and Footer submenus), for .docx and
.odt alike.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from lamforge.env.docstate import DocState
from lamforge.schema import Observation
from lamforge.tasks import arguments
from lamforge.tasks.base import (ControlNotFound, TaskFamily, Verdict, click, failed, finish, keys, menu_path, open_tab,
                                 passed, register, select_paragraphs, set_text)
from lamforge.tasks.families.common import body_paragraph
from lamforge.tasks.templates import DRAW_MARK, list_templates

LENGTH_TOLERANCE = 10  # 1/100 mm: the dialog rounds 2.5 cm to 2499
DEFAULT_PAGE_STYLE = "Default Page Style"


def _cm(value: str) -> int:
    """'1.5 cm' -> 1500 (1/100 mm, DocState's unit)."""
    return round(float(value.split()[0]) * 1000)


def _text_intact(state: DocState, params: dict) -> Verdict | None:
    """A page edit must leave the body alone: the paragraph the sampler noted still starts the same way."""
    index = params["index"]
    if index >= len(state.paragraphs) or not state.paragraphs[index].text.startswith(params["start"]):
        return failed(f"the body text changed (paragraph {index} no longer starts {params['start']!r})")
    return None


def _body_marker(template) -> dict | None:
    """A paragraph the checker uses to see that page edits left the text alone (its exact opening characters)."""
    texts = template.paragraph_texts()
    if not texts:
        return None
    index = len(texts) // 2
    return {"index": index, "start": texts[index][:30]}


def _page_style_dialog(obs: Observation, tab: str):
    obs = yield from menu_path(obs, "Format", "Page Style...")
    obs = yield from open_tab(obs, tab)
    return obs


# ---------------------------------------------------------------------------------------------------------------
# The Page tab of Format > Page Style.


@register
class PageOrientation(TaskFamily):
    id = "page_orientation"
    category = "page"
    phrasings = [
        "Make the page {orientation}",
        "Switch the page orientation to {orientation}.",
        "Please change the document's pages to {orientation} orientation.",
        "Could you turn the pages sideways, so they are {orientation}?",
        "Change the page orientation to {orientation}.",
        "Set the page to {orientation}.",
        "Rotate the page to {orientation}.",
        "Use {orientation} pages.",
        "I'd like this document laid out on {orientation} pages.",
    ]

    def sample(self, template, rng):
        params = _body_marker(template)
        if params:
            params["orientation"] = "landscape"  # every template starts in portrait
        return params

    def check(self, params, state, out_dir=None):
        if (problem := _text_intact(state, params)) is not None:
            return problem
        page = state.page
        if not page.landscape or page.width <= page.height:
            return failed(f"the page is portrait ({page.width}x{page.height})")
        return passed(f"the page is landscape ({page.width}x{page.height})")

    def solve(self, params, obs):
        obs = yield from _page_style_dialog(obs, "Page")
        obs = yield click(obs, "Landscape", "radio button")
        yield finish(click(obs, "OK", "push button"))

    def wrong(self, params, obs):
        # The right choice, then the dialog is left with Cancel, so nothing changes.
        obs = yield from _page_style_dialog(obs, "Page")
        obs = yield click(obs, "Landscape", "radio button")
        yield finish(click(obs, "Cancel", "push button"))


MARGIN_SPINS = {"left": "Left:", "right": "Right:", "top": "Top:", "bottom": "Bottom:"}
OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


@register
class PageMargins(TaskFamily):
    id = "page_margins"
    category = "page"
    phrasings = [
        "Set the {side} page margin to {value}",
        "Change the {side} margin of the page to {value}.",
        "Please make the page's {side} margin {value} wide.",
        "Could you adjust the page so its {side} margin is {value}?",
        "Make the {side} margin {value}.",
        "Change the {side} margin to {value}.",
        "Set a {value} {side} margin.",
        "Adjust the {side} page margin to {value}.",
        "I need a {value} margin on the {side} side of every page.",
    ]

    def sample(self, template, rng):
        params = _body_marker(template)
        if params:
            # Every template has 2.5 cm margins, so any other value is a change. From 1 cm up: a narrower margin
            # may fall outside a printer's printable area, and Writer then asks before applying it.
            value = arguments.length_cm(rng, 1.0, 5.0, exclude=(2.5,))
            params.update(side=rng.choice(sorted(MARGIN_SPINS)), value=value)
        return params

    def check(self, params, state, out_dir=None):
        if (problem := _text_intact(state, params)) is not None:
            return problem
        wanted = _cm(params["value"])
        margins = {side: getattr(state.page, f"{side}_margin") for side in MARGIN_SPINS}
        if abs(margins[params["side"]] - wanted) > LENGTH_TOLERANCE:
            return failed(f"the {params['side']} margin is {margins[params['side']] / 1000:.2f} cm, not {params['value']}")
        also = [side for side, value in margins.items() if side != params["side"] and abs(value - wanted) <= LENGTH_TOLERANCE]
        if also:
            return failed(f"the {', '.join(also)} margin was also set to {params['value']}")
        return passed(f"the {params['side']} margin is {params['value']}")

    def _route(self, side, value, obs):
        obs = yield from _page_style_dialog(obs, "Page")
        obs = yield set_text(obs, MARGIN_SPINS[side], value, "spin box")
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["side"], params["value"], obs)

    def wrong(self, params, obs):
        yield from self._route(OPPOSITE[params["side"]], params["value"], obs)


# ---------------------------------------------------------------------------------------------------------------
# The Columns tab of Format > Page Style.

# Six columns of a 16 cm text width are still 2.5 cm wide; more is no layout anyone asks for.
MAX_COLUMNS = 6


@register
class PageColumns(TaskFamily):
    id = "page_columns"
    category = "page"
    phrasings = [
        "Lay out the page in {columns} columns",
        "Set the page to {columns} text columns.",
        "Please split the page layout into {columns} columns.",
        "Could you make the text flow in {columns} columns on each page?",
        "Split the page into {columns} columns.",
        "Use {columns} columns for the page.",
        "Format the page with {columns} columns.",
        "Set {columns} columns on the page.",
        "I want this document set in {columns} columns, like a newsletter.",
    ]

    def sample(self, template, rng):
        params = _body_marker(template)
        if params:
            params["columns"] = rng.randint(2, MAX_COLUMNS)
        return params

    def check(self, params, state, out_dir=None):
        if (problem := _text_intact(state, params)) is not None:
            return problem
        # UNO reports 0 columns for a page without a column layout, which shows as 1 column.
        columns = max(state.page.columns, 1)
        if columns != params["columns"]:
            return failed(f"the page has {columns} column(s), not {params['columns']}")
        return passed(f"the page has {columns} columns")

    def _route(self, columns, obs):
        obs = yield from _page_style_dialog(obs, "Columns")
        obs = yield set_text(obs, "Columns:", str(columns), "spin box")
        # The column preview only takes the count when the field is left; Tab does it as a person would.
        obs = yield keys("{Tab}")
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["columns"], obs)

    def wrong(self, params, obs):
        # One column too many (or too few at the top of the range).
        columns = params["columns"]
        yield from self._route(columns + 1 if columns < MAX_COLUMNS else columns - 1, obs)


# ---------------------------------------------------------------------------------------------------------------
# Page breaks.


@register
class PageBreak(TaskFamily):
    id = "page_break"
    category = "page"
    phrasings = [
        "Insert a page break before paragraph {index}",
        "Start a new page at the paragraph beginning '{start}'.",
        "Please put a page break right before the paragraph that starts '{start}'.",
        "Could you make the paragraph '{start}…' begin on a fresh page?",
        "Put paragraph {index} on a new page.",
        "Break the page before the paragraph starting '{start}'.",
        "Move the paragraph starting '{start}' to the next page.",
        "Add a page break before paragraph {index}.",
        "The paragraph beginning '{start}' should start at the top of a new page.",
    ]

    def sample(self, template, rng):
        return body_paragraph(template, rng)

    def check(self, params, state, out_dir=None):
        # Insert > Page Break (or Ctrl+Enter) splits off an empty paragraph before the target, and templates have no
        # empty paragraphs, so the target is found among the non-empty ones.
        filled = [p for p in state.paragraphs if p.text]
        target = filled[params["index"]] if params["index"] < len(filled) else None
        if target is None or not target.text.startswith(params["start"]):
            return failed(f"paragraph {params['index']} no longer starts with {params['start']!r}")
        if "PAGE_BEFORE" not in target.break_type:
            return failed(f"the paragraph starting {params['start']!r} has no page break before it ({target.break_type})")
        others = [p.index for p in filled if p is not target and p.break_type != "NONE"]
        if others:
            return failed(f"paragraph {others[0]} also got a break")
        return passed(f"a page break precedes the paragraph starting {params['start']!r}")

    def _break_before(self, index, obs):
        # Format > Paragraph > Text Flow > Breaks, not Insert > Page Break: that one needs the caret placed with a
        # key press first ({Home} after selecting), and a page break replaces selected text, so a lost key press
        # deletes the paragraph's first words. The dialog acts on the selected paragraph with clicks only.
        obs = yield select_paragraphs(index)
        obs = yield from menu_path(obs, "Format", "Paragraph...")
        obs = yield from open_tab(obs, "Text Flow")
        obs = yield click(obs, "Insert", "check box")  # its defaults are Type "Page", Position "Before"
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._break_before(params["index"], obs)

    def wrong(self, params, obs):
        yield from self._break_before(params["decoy"], obs)


# ---------------------------------------------------------------------------------------------------------------
# Header, footer and page numbers: Insert > Header and Footer turns them on and puts the cursor inside.


def _area_line(template, rng) -> str:
    """A header or footer line that the body does not contain (the checker tells the two apart by that), and whose
    last word is no prefix of a longer word in any template: Writer's word completion would offer the rest, and the
    text typed last stays with the offer appended."""
    vocabulary = _template_words(template.split)
    if DRAW_MARK in template.id:  # a drawn train document's own words (a registry document's are in the set already)
        vocabulary = vocabulary | _words(template.all_texts())

    def ok(text: str) -> bool:
        last = text.split()[-1].lower()
        return template.count(text) == 0 and not any(w != last and w.startswith(last) for w in vocabulary)

    return arguments.header_text(rng, ok)


@lru_cache(maxsize=4)
def _template_words(split: str) -> frozenset[str]:
    # Train and test documents always count (the words offered were chosen by them before validation documents
    # existed: adding those must not change a train or test task), and a validation document's own split's too.
    return _words(text for t in list_templates() if t.split in ("train", "test", split) for text in t.all_texts())


def _words(texts) -> frozenset[str]:
    return frozenset(w.lower().strip(".,;:!?()") for text in texts for w in text.split())


def _switch_on(obs: Observation, area: str):
    """Insert > Header and Footer > Header|Footer > the page style's item; the cursor then sits in that area."""
    obs = yield from menu_path(obs, "Insert", "Header and Footer", area)
    items = [c for c in obs.controls if c.type == "check menu item"]
    # The submenu lists page styles in use; the templates use only the default one.
    named = [c for c in items if c.name == DEFAULT_PAGE_STYLE]
    if not named and len(items) != 1:
        raise ControlNotFound(f"no {DEFAULT_PAGE_STYLE!r} item in the {area} submenu")
    obs = yield click(obs, (named or items)[0].name, "check menu item")
    return obs


class _AreaText(TaskFamily):
    category = "page"
    area: ClassVar[str]  # "Header" | "Footer"
    other: ClassVar[str]

    def sample(self, template, rng):
        params = _body_marker(template)
        if params:
            params["text"] = _area_line(template, rng)
        return params

    def _area(self, state: DocState, area: str) -> tuple[bool, str]:
        page = state.page
        return (page.header_on, page.header_text) if area == "Header" else (page.footer_on, page.footer_text)

    def check(self, params, state, out_dir=None):
        if (problem := _text_intact(state, params)) is not None:
            return problem
        on, text = self._area(state, self.area)
        where = self.area.lower()
        if not on:
            return failed(f"the page has no {where}")
        if text.strip() != params["text"]:
            return failed(f"the {where} reads {text!r}, not {params['text']!r}")
        if state.paragraph_with(params["text"]) is not None:
            return failed(f"{params['text']!r} was also typed into the body")
        return passed(f"the {where} reads {params['text']!r}")

    def _route(self, area, text, obs):
        obs = yield from _switch_on(obs, area)
        yield finish(keys(text))

    def solve(self, params, obs):
        yield from self._route(self.area, params["text"], obs)

    def wrong(self, params, obs):
        yield from self._route(self.other, params["text"], obs)


@register
class HeaderText(_AreaText):
    id = "header_text"
    area, other = "Header", "Footer"
    phrasings = [
        "Add the header '{text}'",
        "Put '{text}' in the page header.",
        "Please add a header to the pages that says '{text}'.",
        "Could you turn on the header and write '{text}' in it?",
        "Set the page header to '{text}'.",
        "Add a header reading '{text}'.",
        "Write '{text}' in the header.",
        "Insert a header with the text '{text}'.",
        "I'd like '{text}' to appear at the top of every page, in the header.",
    ]


@register
class FooterText(_AreaText):
    id = "footer_text"
    area, other = "Footer", "Header"
    phrasings = [
        "Add the footer '{text}'",
        "Put '{text}' in the page footer.",
        "Please add a footer to the pages that says '{text}'.",
        "Could you turn on the footer and write '{text}' in it?",
        "Set the page footer to '{text}'.",
        "Add a footer reading '{text}'.",
        "Write '{text}' in the footer.",
        "I'd like '{text}' to appear at the bottom of every page, in the footer.",
    ]


@register
class PageNumbers(TaskFamily):
    id = "page_numbers"
    category = "page"
    phrasings = [
        "Add page numbers in the footer",
        "Insert a page number field into the page footer.",
        "Please number the pages at the bottom, in the footer.",
        "Could you put the page number in the footer of every page?",
        "Number the pages in the footer.",
        "Add a page number to the footer.",
        "Show page numbers at the bottom of each page.",
        "Insert page numbers into the footer.",
        "I'd like each page to show its number down in the footer.",
    ]

    def sample(self, template, rng):
        return _body_marker(template)

    def check(self, params, state, out_dir=None):
        if (problem := _text_intact(state, params)) is not None:
            return problem
        page = state.page
        if not page.footer_on:
            return failed("the page has no footer")
        # DocState lists field kinds as LibreOffice presents them: "Page number", "Page count", "Date", ...
        if not any(kind.strip().lower() == "page number" for kind in page.footer_fields):
            return failed(f"the footer has no page number field (fields: {page.footer_fields})")
        return passed("the footer holds a page number field")

    def _route(self, field, obs):
        obs = yield from _switch_on(obs, "Footer")
        obs = yield from menu_path(obs, "Insert", "Field")
        yield finish(click(obs, field, "menu item"))

    def solve(self, params, obs):
        yield from self._route("Page Number", obs)

    def wrong(self, params, obs):
        # A near miss: the page count, not the page number.
        yield from self._route("Page Count", obs)
