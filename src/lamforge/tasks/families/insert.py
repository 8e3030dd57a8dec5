"""Insert families: objects placed at a position in the document (tables, comments, notes, links, marks, symbols)."""

from __future__ import annotations

import random
import re

from lamforge.env.docstate import DocState
from lamforge.schema import Observation
from lamforge.tasks import arguments
from lamforge.tasks.base import (
    Solution,
    TaskFamily,
    Verdict,
    click,
    failed,
    finish,
    keys,
    passed,
    register,
    select_paragraphs,
    select_text,
    set_text,
)
from lamforge.tasks.families.common import body_paragraph, body_phrase
from lamforge.tasks.templates import TemplateDoc, get_template

# ---------------------------------------------------------------------------------------------------------------
# Shared by the insert and editing families (both modules are one owner's; candidates for common.py).


def paragraph_ends(template: TemplateDoc, rng: random.Random, min_words: int = 8) -> dict | None:
    """A body paragraph whose last word is unique in the document, and a decoy paragraph with the same property.

    The routes reach the paragraph's end by its number (to_paragraph_end); the unique last word is for the
    phrasings that quote it ("after '{end}', the last word of ..."), which must name one place in the document.
    """

    def end_word(index: int) -> str | None:
        words = template.paragraph(index).text.split()
        if not words:
            return None  # an empty paragraph (LibreOffice's templates have them; generated ones do not)
        word = words[-1]
        # Autocorrect turns an address into a link when a space follows it; keep typed text away from those.
        if template.count(word) != 1 or "@" in word or "://" in word:
            return None
        return word

    targets = [i for i in template.body_paragraph_indices(min_words=min_words) if end_word(i)]
    if not targets:
        return None
    index = rng.choice(targets)
    in_regions = {i for r in template.regions for i in r.indices}
    decoys = [i for i in range(len(template.paragraphs)) if i != index and i not in in_regions and end_word(i)]
    if not decoys:
        return None
    decoy = rng.choice(decoys)
    text = template.paragraph(index).text
    return {
        "template": template.id,
        "index": index,
        "start": " ".join(text.split()[:4]),
        "end": end_word(index),
        "decoy": decoy,
        "decoy_end": end_word(decoy),
    }


def open_menus(obs: Observation, *menus: str) -> Solution:
    """Open a menu and its submenus ("Table", "Insert"), clicking one again when it did not open.

    Why the second click: after a dialog closes there is no window manager to hand the X focus back, and the first
    click on a menu then only activates the main window (measured: the Edit menu after the Special Characters
    dialog, every time). A person clicks again; this does the same, grounded on the observation.
    """
    for i, name in enumerate(menus):
        obs = yield click(obs, name, "menu" if i == 0 else None)
        if obs.window != "menu" or obs.window_name != name:
            obs = yield click(obs, name, "menu" if i == 0 else None)
    return obs


def menu_item(obs: Observation, *path: str) -> Solution:
    """Open the menus of path[:-1] and click the item path[-1] (which opens a dialog)."""
    obs = yield from open_menus(obs, *path[:-1])
    return (yield click(obs, path[-1]))


def press(obs: Observation, key: str) -> Solution:
    """A key that must end the current selection ({End}, {Delete}); pressed again when the selection survived.

    Why: the first key after a dialog closed can be lost for the same focus reason as in open_menus.
    """
    obs = yield keys(key)
    if obs.selection:
        obs = yield keys(key)
    return obs


def to_paragraph_end(obs: Observation, index: int) -> Solution:
    """Put the cursor at the end of paragraph `index`: select the paragraph by its number, then {End}.

    Why by number and not by the paragraph's last words: a request names the paragraph by its number or its first
    words, hardly ever by its end (3 of these families' 35 phrasings quote the last word), so a route that selected
    the last words taught the LAM to find them in the canvas, and it often selected a request word or a
    mid-paragraph phrase instead ("40", "7", "A": 6 of the 14 test and lo_templates failures of the 2026-12-03 02:34
    make demo). The paragraph families, which select by number, failed none of their 12 tasks there.
    select_paragraph leaves the cursor at the paragraph's end, so {End} stays on its last line (`lamforge tasks
    verify` passes these families' references; most of their paragraphs are over 100 characters, so wrap).
    """
    obs = yield select_paragraphs(index)
    return (yield from press(obs, "{End}"))


def text_mismatches(state: DocState, expected: list[str]) -> str | None:
    """Why the document's paragraph texts differ from `expected`, or None when they are equal."""
    actual = [p.text for p in state.paragraphs]
    if len(actual) != len(expected):
        return f"the document has {len(actual)} paragraphs, expected {len(expected)}"
    for i, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            # Show where they part, not the paragraph's opening words, which are usually equal.
            at = next((k for k, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
            left = max(0, at - 20)
            return f"paragraph {i} reads …{got[left:at + 30]!r}, expected …{want[left:at + 30]!r}"
    return None


def template_texts(params: dict) -> list[str]:
    return get_template(params["template"]).paragraph_texts()


def _phrase_params(template: TemplateDoc, rng: random.Random) -> dict | None:
    params = body_phrase(template, rng, min_words=1, max_words=3)
    if params:
        params["template"] = template.id
    return params


def _unchanged(params: dict, state: DocState) -> Verdict | None:
    problem = text_mismatches(state, template_texts(params))
    return failed(f"the text changed: {problem}") if problem else None


# ---------------------------------------------------------------------------------------------------------------


@register
class InsertTable(TaskFamily):
    id = "insert_table"
    category = "insert"
    phrasings = [
        "Insert a {rows}x{columns} table after paragraph {index}",
        "Add a table with {rows} rows and {columns} columns after the paragraph starting '{start}'.",
        "Please put a {rows}-row, {columns}-column table right after the paragraph that begins '{start}'.",
        "Could you insert a table ({columns} columns, {rows} rows) following the paragraph '{start}…'?",
        "Add a {rows} by {columns} table after paragraph {index}.",
        "Create a table of {rows} rows and {columns} columns below the paragraph starting '{start}'.",
        "Insert a table with {columns} columns and {rows} rows after paragraph {index}.",
        "Put an empty {rows}x{columns} table after the paragraph starting '{start}'.",
        "After the paragraph beginning '{start}', I need an empty table of {rows} by {columns}.",
    ]

    def sample(self, template, rng):
        params = body_paragraph(template, rng)
        if params:
            params.update(rows=rng.randint(2, 12), columns=rng.randint(2, 8))
            words = template.paragraph(params["index"]).text.split()
            # The shortest unique tail: a longer one may wrap, and {End} from its start ends the wrong line.
            tails = [" ".join(words[-n:]) for n in (1, 2, 3)]
            params["end"] = next((t for t in tails if template.count(t) == 1), tails[-1])
        return params

    def check(self, params, state, out_dir=None):
        new = [t for t in state.tables if t.shape == (params["rows"], params["columns"]) and not any(any(r) for r in t.rows)]
        if not new:
            shapes = [t.shape for t in state.tables]
            return failed(f"no empty {params['rows']}x{params['columns']} table (tables: {shapes})")
        where = new[-1].after_paragraph
        target = state.paragraph_with(params["start"])
        if target is None or where != target.index:
            return failed(f"the table follows paragraph {where}, not the one starting {params['start']!r}")
        return passed(f"an empty {params['rows']}x{params['columns']} table follows paragraph {target.index}")

    def _route(self, index, rows, columns, obs, rows_first=True):
        obs = yield from to_paragraph_end(obs, index)
        obs = yield keys("{Enter}")
        obs = yield from menu_item(obs, "Table", "Insert Table...")
        fields = [("Rows:", rows), ("Columns:", columns)]
        for name, value in fields if rows_first else fields[::-1]:
            obs = yield set_text(obs, name, str(value), "spin box")
        yield finish(click(obs, "Insert", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["index"], params["rows"], params["columns"], obs, rows_first(params))

    def wrong(self, params, obs):
        yield from self._route(params["index"], params["rows"] + 1, params["columns"], obs, rows_first(params))

    def follows(self, params):
        return (rows_first(params),)


_ROW_WORD, _COLUMN_WORD = re.compile(r"\brows?\b", re.I), re.compile(r"\bcolumns?\b", re.I)


def rows_first(params: dict) -> bool:
    """Whether the request names the table's rows before its columns, so the dialog is filled in that order.

    Why: with a fixed order (Columns, then Rows) the LAM learnt to type the request's first number into the first
    field, and "6 rows and 8 columns" became Columns 6, Rows 8 (3 of 21 failures of the 2026-12-02 fresh run).
    Filled in the request's order, each field's value is the number beside its name. "6x8" and "6 by 8" name the
    rows first; the quoted paragraph start is not part of the wording.
    """
    request, start = params.get("request", ""), params.get("start")
    request = request.replace(start, " ") if start else request
    row, column = _ROW_WORD.search(request), _COLUMN_WORD.search(request)
    return not (column and (row is None or column.start() < row.start()))


@register
class InsertComment(TaskFamily):
    id = "comment"
    category = "insert"
    phrasings = [
        "Comment '{comment}' on '{phrase}'",
        "Add a comment saying '{comment}' to the text '{phrase}'.",
        "Please attach the comment '{comment}' to the words '{phrase}'.",
        "Could you leave a note on '{phrase}' as a comment? It should read: {comment}",
        "Add the comment '{comment}' to '{phrase}'.",
        "Attach a comment to '{phrase}': {comment}",
        "Insert a comment on '{phrase}' that says '{comment}'.",
        "Comment on '{phrase}' with '{comment}'.",
        "I'd like reviewers to see '{comment}' as a comment next to '{phrase}'.",
    ]

    def sample(self, template, rng):
        params = _phrase_params(template, rng)
        if params:
            params["comment"] = arguments.comment_text(rng)
        return params

    def check(self, params, state, out_dir=None):
        if len(state.comments) != 1:
            return failed(f"expected one comment, found {len(state.comments)}")
        comment = state.comments[0]
        if comment.content.strip() != params["comment"]:
            return failed(f"the comment reads {comment.content!r}, not {params['comment']!r}")
        if comment.anchor != params["phrase"]:
            return failed(f"the comment is attached to {comment.anchor[:60]!r}, not {params['phrase']!r}")
        return _unchanged(params, state) or passed(f"{params['phrase']!r} carries the comment {params['comment']!r}")

    def _route(self, phrase, text, obs):
        obs = yield select_text(phrase)
        obs = yield from menu_item(obs, "Insert", "Comment")
        obs = yield keys(text)
        # Escape leaves the comment box; the comment's text is committed to the document only then.
        yield finish(keys("{Esc}"))

    def solve(self, params, obs):
        yield from self._route(params["phrase"], params["comment"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["comment"], obs)


@register
class InsertFootnote(TaskFamily):
    id = "footnote"
    category = "insert"
    phrasings = [
        "Footnote '{note}' at the end of paragraph {index}",
        "Add the footnote '{note}' at the end of the paragraph starting '{start}'.",
        "Please insert a footnote reading '{note}' after '{end}', the last word of the paragraph beginning '{start}'.",
        "Could you put a footnote at the end of the paragraph '{start}…' that says '{note}'?",
        "Add a footnote to the end of paragraph {index}: {note}",
        "Insert the footnote '{note}' after the last word of paragraph {index}.",
        "Put a footnote saying '{note}' at the end of the paragraph starting '{start}'.",
        "The paragraph that begins '{start}' needs a footnote at its end: {note}",
    ]

    def sample(self, template, rng):
        params = paragraph_ends(template, rng)
        if params:
            params["note"] = arguments.note_text(rng)
        return params

    def check(self, params, state, out_dir=None):
        if len(state.footnotes) != 1:
            return failed(f"expected one footnote, found {len(state.footnotes)}")
        note = state.footnotes[0]
        if note.text.strip() != params["note"]:
            return failed(f"the footnote reads {note.text!r}, not {params['note']!r}")
        expected = template_texts(params)
        expected[params["index"]] += note.label
        problem = text_mismatches(state, expected)
        if problem:
            return failed(f"the footnote is not (only) at the end of paragraph {params['index']}: {problem}")
        last = [r for r in state.paragraphs[params["index"]].runs if r.text][-1]
        if last.kind != "Footnote":
            return failed(f"paragraph {params['index']} does not end with the footnote mark")
        return passed(f"paragraph {params['index']} ends with footnote {note.label} reading {params['note']!r}")

    def _route(self, index, note, obs):
        obs = yield from to_paragraph_end(obs, index)
        obs = yield from menu_item(obs, "Insert", "Footnote and Endnote", "Footnote")
        yield finish(keys(note))

    def solve(self, params, obs):
        yield from self._route(params["index"], params["note"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["note"], obs)


@register
class InsertHyperlink(TaskFamily):
    id = "hyperlink"
    category = "insert"
    phrasings = [
        "Link '{phrase}' to {url}",
        "Turn '{phrase}' into a hyperlink to {url}.",
        "Please make the text '{phrase}' a link pointing at {url}.",
        "Could you add a hyperlink on '{phrase}'? The address is {url}",
        "Add a link to {url} on '{phrase}'.",
        "Hyperlink '{phrase}' to {url}",
        "Make '{phrase}' link to {url}",
        "Insert a hyperlink to {url} on the text '{phrase}'.",
        "Readers should be able to click '{phrase}' to open {url}.",
    ]

    def sample(self, template, rng):
        params = _phrase_params(template, rng)
        if params:
            params["url"] = arguments.url_for(rng, params["phrase"])
        return params

    def check(self, params, state, out_dir=None):
        links = [h for h in state.hyperlinks if h.text.strip()]
        if not links:
            return failed("the document has no hyperlink")
        linked = "".join(h.text for h in links)
        if linked != params["phrase"]:
            return failed(f"the linked text is {linked[:60]!r}, not {params['phrase']!r}")
        wrong_urls = {h.url for h in links} - {params["url"]}
        if wrong_urls:
            return failed(f"{params['phrase']!r} links to {sorted(wrong_urls)[0]!r}, not {params['url']!r}")
        return _unchanged(params, state) or passed(f"{params['phrase']!r} links to {params['url']}")

    def _route(self, phrase, url, obs):
        obs = yield select_text(phrase)
        obs = yield from menu_item(obs, "Insert", "Hyperlink...")
        obs = yield set_text(obs, "URL:", url, "combo box")
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["phrase"], params["url"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["url"], obs)


@register
class InsertBookmark(TaskFamily):
    id = "bookmark"
    category = "insert"
    phrasings = [
        "Bookmark '{phrase}' as {name}",
        "Insert a bookmark named {name} on the text '{phrase}'.",
        "Please mark '{phrase}' with a bookmark called {name}.",
        "Could you add a bookmark '{name}' covering the words '{phrase}'?",
        "Add a bookmark called {name} on '{phrase}'.",
        "Set a bookmark named {name} at '{phrase}'.",
        "Create the bookmark {name} for the text '{phrase}'.",
        "I want to jump back to '{phrase}' later, so set a bookmark there named {name}.",
    ]

    def sample(self, template, rng):
        params = _phrase_params(template, rng)
        if params:
            params["name"] = arguments.bookmark_name(rng, params["phrase"])
        return params

    def check(self, params, state, out_dir=None):
        named = [b for b in state.bookmarks if b.name == params["name"]]
        if not named:
            return failed(f"no bookmark named {params['name']!r} (bookmarks: {[b.name for b in state.bookmarks]})")
        if named[0].text != params["phrase"]:
            return failed(f"bookmark {params['name']!r} covers {named[0].text[:60]!r}, not {params['phrase']!r}")
        return _unchanged(params, state) or passed(f"bookmark {params['name']!r} covers {params['phrase']!r}")

    def _route(self, phrase, name, obs):
        obs = yield select_text(phrase)
        obs = yield from menu_item(obs, "Insert", "Bookmark...")
        obs = yield set_text(obs, "Name:", name, "text")
        yield finish(click(obs, "Insert", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["phrase"], params["name"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["name"], obs)


# Symbol -> (its name in instructions, a search term of the Special Characters dialog that lists it among the first
# cells, checked in the live dialog).
SYMBOLS = {
    "©": ("copyright sign", "copyright"),
    "®": ("registered sign", "registered"),
    "™": ("trade mark sign", "trade mark"),
    "€": ("euro sign", "euro sign"),
    "£": ("pound sign", "pound sign"),
    "°": ("degree sign", "degree"),
    "±": ("plus-minus sign", "plus-minus"),
    "§": ("section sign", "section sign"),
    "†": ("dagger", "dagger"),
    "‡": ("double dagger", "double dagger"),
    "•": ("bullet", "bullet"),
    "…": ("ellipsis", "horizontal ellipsis"),
    "×": ("multiplication sign", "multiplication sign"),
    "÷": ("division sign", "division sign"),
    "µ": ("micro sign", "micro sign"),
    "¥": ("yen sign", "yen sign"),
    "¢": ("cent sign", "cent sign"),
    "‰": ("per mille sign", "per mille"),
    "→": ("right arrow", "rightwards arrow"),
    "∞": ("infinity sign", "infinity"),
    "½": ("one-half fraction", "vulgar fraction one half"),
    "√": ("square root sign", "square root"),
    "≠": ("not-equal sign", "not equal to"),
    "≤": ("less-than-or-equal sign", "less-than or equal to"),
    "≥": ("greater-than-or-equal sign", "greater-than or equal to"),
    "π": ("Greek letter pi", "small letter pi"),
    "✓": ("check mark", "check mark"),
    "№": ("numero sign", "numero sign"),
    "¶": ("pilcrow", "pilcrow sign"),
    "¿": ("inverted question mark", "inverted question mark"),
}


@register
class InsertSpecialCharacter(TaskFamily):
    id = "special_character"
    category = "insert"
    phrasings = [
        "Insert {symbol} at the end of paragraph {index}",
        "Add the {symbol_name} ({symbol}) at the end of the paragraph starting '{start}'.",
        "Please put a {symbol_name} right after '{end}' at the end of the paragraph that begins '{start}'.",
        "Could you insert the special character {symbol} after the last word of the paragraph '{start}…'?",
        "Type a {symbol_name} at the end of paragraph {index}.",
        "Append the {symbol_name} to paragraph {index}.",
        "Put {symbol} after the last word of the paragraph starting '{start}'.",
        "End paragraph {index} with the {symbol_name}.",
        "The paragraph beginning '{start}' should end with a {symbol_name}, {symbol}.",
    ]

    def sample(self, template, rng):
        params = paragraph_ends(template, rng)
        if params:
            params["symbol"] = rng.choice(sorted(SYMBOLS))
            params["symbol_name"], params["search"] = SYMBOLS[params["symbol"]]
        return params

    def check(self, params, state, out_dir=None):
        expected = template_texts(params)
        expected[params["index"]] += params["symbol"]
        problem = text_mismatches(state, expected)
        if problem:
            return failed(f"{params['symbol']} is not (only) at the end of paragraph {params['index']}: {problem}")
        return passed(f"paragraph {params['index']} ends with {params['symbol']}")

    def _route(self, index, params, obs):
        obs = yield from to_paragraph_end(obs, index)
        obs = yield from menu_item(obs, "Insert", "Special Character...")
        # The search narrows the grid to a few cells that have real screen positions (the full grid's cells
        # report none), and a double click on a cell inserts that character; a single accessible selection
        # does not enable the Insert button.
        obs = yield click(obs, "Search:", "text")
        obs = yield keys(params["search"])
        obs = yield click(obs, params["symbol"], "table cell", args={"double": True})
        paragraph = next((p for p in obs.canvas if p.index == index), None)
        inserted = paragraph is not None and paragraph.text.endswith(params["symbol"])
        insert = next((c for c in obs.controls if c.name == "Insert" and c.type == "push button"), None)
        if not inserted and insert is not None and insert.enabled:
            # A slow office can take the double click as one click, which only selects the cell.
            yield finish(click(obs, "Insert", "push button"))
        else:
            yield finish(click(obs, "Cancel", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["index"], params, obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params, obs)
