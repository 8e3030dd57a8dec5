"""Editing families: changing, moving and restructuring the document's text (find and replace, sort, tables)."""

from __future__ import annotations

import random
import re

from lamforge.env.docstate import DocState
from lamforge.tasks import arguments
from lamforge.tasks.base import (
    TaskFamily,
    click,
    control,
    failed,
    finish,
    keys,
    passed,
    register,
    select_paragraphs,
    select_text,
    set_text,
)
from lamforge.tasks.families.common import body_paragraph
from lamforge.tasks.families.insert import (menu_item, open_menus, paragraph_ends, press, template_texts, text_mismatches,
                                            to_paragraph_end)
from lamforge.tasks.templates import TemplateDoc, get_template


def _ensure_checked(obs, name: str, want: bool = True):
    """Click a check box only when its state differs: dialogs keep their options between uses in one session."""
    box = control(obs, name, "check box")
    if ("checked" in box.states) != want:
        obs = yield click(obs, name, "check box")
    return obs


def _tables_match(state: DocState, expected: list[list[list[str]]]) -> str | None:
    got = [t.rows for t in state.tables]
    if got != expected:
        shapes = [(len(t), len(t[0]) if t else 0) for t in got]
        return f"the tables changed (shapes now {shapes}, expected {[(len(t), len(t[0])) for t in expected]})"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Text


@register
class FindReplace(TaskFamily):
    id = "find_replace"
    category = "editing"
    phrasings = [
        "Replace all '{word}' with '{replacement}'",
        "Use Find & Replace to change every '{word}' into '{replacement}'.",
        "Please replace each occurrence of '{word}' in the document with '{replacement}' (match case).",
        "Could you swap out all {count} instances of '{word}' for '{replacement}'?",
        "Change every '{word}' to '{replacement}'.",
        "Find '{word}' and replace it with '{replacement}' everywhere.",
        "Swap all '{word}' for '{replacement}'.",
        "Replace '{word}' with '{replacement}' throughout the document.",
        "Everywhere the document says '{word}', it should say '{replacement}' instead.",
    ]

    def sample(self, template, rng):
        words = sorted(template.repeated_words(min_count=2))
        if not words:
            return None
        word = rng.choice(words)

        def fits(new: str) -> bool:
            # New to the document in any case, and neither containing the word nor inside it, so that after the
            # replacement no occurrence is left and none was made.
            return (re.fullmatch(r"[A-Za-z][A-Za-z -]*", new) is not None and template.count(new) == 0
                    and template.count(new.lower()) == 0 and word.lower() not in new.lower() and new not in word)

        replacement = arguments.replacement_word(rng, fits)
        if replacement is None:
            return None
        return {"template": template.id, "word": word, "replacement": replacement, "count": template.count(word)}

    def check(self, params, state, out_dir=None):
        template = get_template(params["template"])
        word, new = params["word"], params["replacement"]
        left = sum(p.text.count(word) for p in state.paragraphs) + sum(
            cell.count(word) for t in state.tables for row in t.rows for cell in row)
        if left:
            return failed(f"{left} occurrence(s) of {word!r} remain")
        problem = text_mismatches(state, [t.replace(word, new) for t in template.paragraph_texts()])
        problem = problem or _tables_match(state, [[[c.replace(word, new) for c in row] for row in t.rows] for t in template.tables()])
        if problem:
            return failed(f"the text is not the original with {word!r} replaced: {problem}")
        return passed(f"all {params['count']} occurrences of {word!r} now read {new!r}, and nothing else changed")

    def solve(self, params, obs):
        obs = yield from menu_item(obs, "Edit", "Find and Replace...")
        obs = yield set_text(obs, "Find:", params["word"], "combo box")
        obs = yield set_text(obs, "Replace:", params["replacement"], "combo box")
        # The template words are case-sensitive targets ("public" but not "Public").
        obs = yield from _ensure_checked(obs, "Match case", True)
        obs = yield click(obs, "Replace All", "push button")
        yield finish(click(obs, "Close", "push button"))

    def wrong(self, params, obs):
        # Replace only the first occurrence, by overtyping it.
        obs = yield select_text(params["word"])
        yield finish(keys(params["replacement"]))


@register
class InsertText(TaskFamily):
    id = "insert_text"
    category = "editing"
    phrasings = [
        "Append '{sentence}' to paragraph {index}",
        "Add the sentence '{sentence}' at the end of the paragraph starting '{start}'.",
        "Please type '{sentence}' after '{end}', at the end of the paragraph that begins '{start}'.",
        "Could you finish the paragraph '{start}…' with one more sentence: {sentence}",
        "Add '{sentence}' at the end of paragraph {index}.",
        "Type '{sentence}' at the end of the paragraph starting '{start}'.",
        "Append the sentence '{sentence}' to the paragraph that begins '{start}'.",
        "Finish paragraph {index} with: {sentence}",
        "The paragraph beginning '{start}' should end with this extra sentence: {sentence}",
    ]

    def sample(self, template, rng):
        params = paragraph_ends(template, rng)
        if params:
            params["sentence"] = arguments.sentence_text(rng)
        return params

    def check(self, params, state, out_dir=None):
        expected = template_texts(params)
        expected[params["index"]] += " " + params["sentence"]
        problem = text_mismatches(state, expected)
        if problem:
            return failed(f"paragraph {params['index']} does not end with the sentence, or other text changed: {problem}")
        return passed(f"paragraph {params['index']} ends with {params['sentence']!r}")

    def _route(self, index, sentence, obs):
        obs = yield from to_paragraph_end(obs, index)
        yield finish(keys(" " + sentence))

    def solve(self, params, obs):
        yield from self._route(params["index"], params["sentence"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["sentence"], obs)


def _tidy(text: str) -> str:
    """Spacing a deletion may leave behind: double spaces, a space before punctuation."""
    return re.sub(r" +([.,;:!?])", r"\1", re.sub(r" {2,}", " ", text)).strip()


@register
class DeleteText(TaskFamily):
    id = "delete_text"
    category = "editing"
    phrasings = [
        "Delete '{phrase}'",
        "Remove the words '{phrase}' from the document.",
        "Please delete the text '{phrase}' in the paragraph starting '{start}'.",
        "Could you cut '{phrase}' out of the paragraph '{start}…'? It isn't needed.",
        "Remove '{phrase}'.",
        "Erase the words '{phrase}'.",
        "Cut '{phrase}' from the paragraph starting '{start}'.",
        "Take out '{phrase}'.",
        "The words '{phrase}' should not be in the document any more.",
    ]

    def sample(self, template, rng):
        body = set(template.body_paragraph_indices(min_words=8))
        candidates = []
        for phrase in template.phrases(min_words=2, max_words=4):
            hit = template.find(phrase)[0]
            if hit.paragraph not in body:
                continue
            text = template.paragraph(hit.paragraph).text
            after = text[hit.offset + len(phrase) : hit.offset + len(phrase) + 2]
            # Preceded by a space, which the reference removes with the phrase, so spacing stays clean; and ending
            # at a word's end ("rose by 0" of "0.5" is no phrase a person would name).
            if hit.offset > 0 and text[hit.offset - 1] == " " and re.fullmatch(r"|[ ,;:].?|\.\s?", after):
                candidates.append((phrase, hit.paragraph))
        if len(candidates) < 2:
            return None
        (phrase, index), (decoy, _) = rng.sample(candidates, 2)
        text = template.paragraph(index).text
        return {"template": template.id, "phrase": phrase, "index": index, "decoy": decoy,
                "start": " ".join(text.split()[:4])}

    def check(self, params, state, out_dir=None):
        phrase, index = params["phrase"], params["index"]
        if any(phrase in p.text for p in state.paragraphs):
            return failed(f"{phrase!r} is still in the document")
        expected = template_texts(params)
        original = expected[index]
        actual = [p.text for p in state.paragraphs]
        if len(actual) == len(expected) and _tidy(actual[index]) == _tidy(original.replace(phrase, "", 1)):
            expected[index] = actual[index]  # any spacing the deletion left is accepted
        problem = text_mismatches(state, expected)
        if problem:
            return failed(f"the rest of the text is not intact: {problem}")
        return passed(f"{phrase!r} was deleted and the rest of paragraph {index} is intact")

    def _route(self, phrase, obs):
        obs = yield select_text(phrase)
        obs = yield from press(obs, "{Delete}")
        # The space that stood before the phrase would be left doubled.
        yield finish(keys("{BackSpace}"))

    def solve(self, params, obs):
        yield from self._route(params["phrase"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], obs)


@register
class DeleteParagraph(TaskFamily):
    id = "delete_paragraph"
    category = "editing"
    phrasings = [
        "Delete paragraph {index}",
        "Remove the paragraph starting '{start}'.",
        "Please delete the whole paragraph that begins '{start}'.",
        "Could you get rid of the paragraph '{start}…' entirely?",
        "Remove paragraph {index}.",
        "Erase the paragraph starting '{start}'.",
        "Delete the whole of paragraph {index}.",
        "The paragraph beginning '{start}' is not needed; take it out of the document.",
    ]

    def sample(self, template, rng):
        params = body_paragraph(template, rng)
        if params:
            params["template"] = template.id
        return params

    def check(self, params, state, out_dir=None):
        template = get_template(params["template"])
        index = params["index"]
        expected = template.paragraph_texts()
        del expected[index]
        problem = text_mismatches(state, expected)
        if problem:
            return failed(f"the document is not the original without paragraph {index}: {problem}")
        styles = [template.lo_style(i) for i in range(len(template.paragraphs)) if i != index]
        changed = [p.index for p, style in zip(state.paragraphs, styles) if p.style != style]
        if changed:
            return failed(f"paragraph {changed[0]} changed its style to {state.paragraphs[changed[0]].style!r}")
        afters = [template.table_after_paragraph(k) for k in range(len(template.tables()))]
        expected_afters = [a - 1 if a >= index else a for a in afters]
        if [t.after_paragraph for t in state.tables] != expected_afters:
            return failed("a table moved")
        return passed(f"paragraph {index} was removed and its neighbours are intact")

    def _route(self, template_id, index, obs):
        obs = yield select_paragraphs(index)
        # The first Delete empties the paragraph, the second removes the empty paragraph (the next paragraph
        # keeps its own style, and a neighbouring table is left alone). The last paragraph has no next one for
        # Delete to pull up: Backspace removes it into the one before.
        obs = yield from press(obs, "{Delete}")
        last = index == len(get_template(template_id).paragraphs) - 1
        yield finish(keys("{BackSpace}" if last else "{Delete}"))

    def solve(self, params, obs):
        yield from self._route(params["template"], params["index"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["template"], params["decoy"], obs)


# ---------------------------------------------------------------------------------------------------------------
# Line regions


def _region(template: TemplateDoc, rng: random.Random, kind: str) -> dict | None:
    regions = template.regions_of(kind)
    if not regions:
        return None
    region = rng.choice(regions)
    lines = template.region_lines(region)
    if region.delimiter:
        # Lines are named by their first field: a tab inside a quoted instruction is unreadable.
        lines = [line.split(region.delimiter)[0] for line in lines]
    return {"template": template.id, "start": region.start, "end": region.end, "first": lines[0], "last": lines[-1],
            "count": len(lines), "delimiter": region.delimiter}


@register
class SortLines(TaskFamily):
    id = "sort_lines"
    category = "editing"
    phrasings = [
        "Sort paragraphs {start}-{end} ascending",
        "Sort the {count} lines from '{first}' to '{last}' alphabetically (A to Z).",
        "Please put the list of lines starting with '{first}' and ending with '{last}' in ascending order.",
        "Could you alphabetise the {count} short lines from '{first}' down to '{last}'?",
        "Sort the lines from '{first}' to '{last}' in ascending order.",
        "Alphabetize paragraphs {start}-{end}.",
        "Put lines {start}-{end} in alphabetical order.",
        "Sort paragraphs {start} to {end} from A to Z.",
        "The lines '{first}' … '{last}' should be sorted from A to Z.",
    ]

    def sample(self, template, rng):
        return _region(template, rng, "sortable_lines")

    def check(self, params, state, out_dir=None):
        template = get_template(params["template"])
        start, end = params["start"], params["end"]
        original = template.paragraph_texts()
        expected = original[:start] + sorted(original[start : end + 1], key=str.casefold) + original[end + 1 :]
        problem = text_mismatches(state, expected)
        if problem:
            return failed(f"lines {start}-{end} are not sorted ascending, or other text changed: {problem}")
        return passed(f"lines {start}-{end} are in ascending order and the rest is intact")

    def _route(self, params, order: str, obs):
        obs = yield select_paragraphs(params["start"], params["end"])
        obs = yield from menu_item(obs, "Tools", "Sort...")
        obs = yield click(obs, order, "radio button")
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._route(params, "Ascending", obs)

    def wrong(self, params, obs):
        yield from self._route(params, "Descending", obs)


SEPARATOR_NAMES = {"\t": "tabs", ",": "commas"}


@register
class TextToTable(TaskFamily):
    id = "text_to_table"
    category = "editing"
    phrasings = [
        "Convert paragraphs {start}-{end} to a table",
        "Turn the {count} {separator}-separated lines, from the one starting '{first}' to the one starting '{last}', into a table.",
        "Please convert the {count} lines beginning with the line '{first}…' (fields separated by {separator}) into a table.",
        "Could you make a table out of the {count} lines from '{first}…' to '{last}…'? The columns are separated by {separator}.",
        "Turn paragraphs {start}-{end} into a table.",
        "Convert the {count} lines from '{first}' to '{last}' into a table.",
        "Make a table from paragraphs {start} to {end}; the fields are separated by {separator}.",
        "The {count} {separator}-delimited lines starting at '{first}…' should become a proper table.",
    ]

    def sample(self, template, rng):
        params = _region(template, rng, "delimited_lines")
        if params:
            params["separator"] = SEPARATOR_NAMES[params["delimiter"]]
        return params

    def check(self, params, state, out_dir=None):
        template = get_template(params["template"])
        start, end = params["start"], params["end"]
        lines = template.paragraph_texts()[start : end + 1]
        rows = [line.split(params["delimiter"]) for line in lines]
        new = [t for t in state.tables if t.rows == rows]
        if not new:
            shapes = [t.shape for t in state.tables]
            return failed(f"no table holds the {len(rows)}x{len(rows[0])} cells of the lines (tables: {shapes})")
        if new[0].after_paragraph != start - 1:
            return failed(f"the table follows paragraph {new[0].after_paragraph}, not {start - 1}")
        original = template.paragraph_texts()
        problem = text_mismatches(state, original[:start] + original[end + 1 :])
        if problem:
            return failed(f"the lines were not replaced by the table, or other text changed: {problem}")
        return passed(f"lines {start}-{end} became a {len(rows)}x{len(rows[0])} table")

    def _route(self, params, delimiter, obs):
        obs = yield select_paragraphs(params["start"], params["end"])
        obs = yield from menu_item(obs, "Table", "Convert", "Text to Table...")
        if delimiter == "\t":
            obs = yield click(obs, "Tabs", "radio button")
        elif delimiter == ";":
            obs = yield click(obs, "Semicolons", "radio button")
        else:
            obs = yield click(obs, "Other:", "radio button")
            obs = yield set_text(obs, "Symbol", delimiter, "text")
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._route(params, params["delimiter"], obs)

    def wrong(self, params, obs):
        # The wrong separator gives a one-column table.
        yield from self._route(params, ";" if params["delimiter"] == "\t" else "\t", obs)


# ---------------------------------------------------------------------------------------------------------------
# Tables


def _unique_cells(template: TemplateDoc, table: int) -> list[tuple[int, int, str]]:
    """Cells whose text occurs once in the whole document, so select_text puts the cursor in that cell."""
    rows = template.table(table).rows
    return [(r, c, cell) for r, row in enumerate(rows) for c, cell in enumerate(row)
            if len(cell) >= 2 and template.count(cell) == 1]


@register
class TableAddRow(TaskFamily):
    id = "table_add_row"
    category = "editing"
    phrasings = [
        "Add a row below '{cell}' in table {table_no}",
        "Insert an empty row under the row containing '{cell}' in table {table_no}.",
        "Please add a new table row directly below the row with '{cell}'.",
        "Could you put a blank row after the row that has '{cell}' in table {table_no}?",
        "Insert a row below the row containing '{cell}'.",
        "Add an empty row under '{cell}' in table {table_no}.",
        "Add a new row after the row with '{cell}' in table {table_no}.",
        "Table {table_no} needs one more row, right beneath the one where '{cell}' appears.",
    ]

    def sample(self, template, rng):
        options = [(t, r, c, cell) for t in range(len(template.tables()))
                   for r, c, cell in _unique_cells(template, t) if r > 0]
        if not options:
            return None
        table, row, col, cell = rng.choice(options)
        return {"template": template.id, "table": table, "table_no": table + 1, "row": row, "col": col, "cell": cell}

    def check(self, params, state, out_dir=None):
        template = get_template(params["template"])
        original = template.table(params["table"]).rows
        blank = [""] * len(original[0])
        expected = [t.rows for t in template.tables()]
        expected[params["table"]] = original[: params["row"] + 1] + [blank] + original[params["row"] + 1 :]
        problem = _tables_match(state, expected)
        if problem:
            return failed(f"table {params['table_no']} did not gain an empty row right below {params['cell']!r}: {problem}")
        return passed(f"table {params['table_no']} has a new empty row below the row with {params['cell']!r}")

    def _route(self, cell, item, obs):
        obs = yield select_text(cell)
        obs = yield from open_menus(obs, "Table", "Insert")
        yield finish(click(obs, item, "menu item"))

    def solve(self, params, obs):
        yield from self._route(params["cell"], "Rows Below", obs)

    def wrong(self, params, obs):
        yield from self._route(params["cell"], "Rows Above", obs)


@register
class TableDeleteColumn(TaskFamily):
    id = "table_delete_column"
    category = "editing"
    phrasings = [
        "Delete the '{header}' column of table {table_no}",
        "Remove the column headed '{header}' from table {table_no}.",
        "Please delete the whole '{header}' column in table {table_no}.",
        "Could you take the '{header}' column out of table {table_no}? It holds '{cell}'.",
        "Remove the '{header}' column from table {table_no}.",
        "Delete column '{header}' in table {table_no}.",
        "Get rid of the '{header}' column in table {table_no}.",
        "Table {table_no} should no longer have its '{header}' column.",
    ]

    def sample(self, template, rng):
        options = []
        for t in range(len(template.tables())):
            if template.table(t).n_cols < 2:
                continue
            by_column: dict[int, list[str]] = {}
            for r, c, cell in _unique_cells(template, t):
                by_column.setdefault(c, []).append(cell)
            options += [(t, c, cells) for c, cells in by_column.items() if template.table(t).header[c]]
        if not options:
            return None
        table, col, cells = rng.choice(options)
        header = template.table(table).header[col]
        cell = header if header in cells else rng.choice(cells)
        return {"template": template.id, "table": table, "table_no": table + 1, "col": col, "header": header,
                "cell": cell}

    def check(self, params, state, out_dir=None):
        template = get_template(params["template"])
        col = params["col"]
        expected = [t.rows for t in template.tables()]
        expected[params["table"]] = [row[:col] + row[col + 1 :] for row in expected[params["table"]]]
        problem = _tables_match(state, expected)
        if problem:
            return failed(f"table {params['table_no']} is not the original without its {params['header']!r} column: {problem}")
        return passed(f"the {params['header']!r} column is gone from table {params['table_no']}")

    def _route(self, cell, item, obs):
        obs = yield select_text(cell)
        obs = yield from open_menus(obs, "Table", "Delete")
        yield finish(click(obs, item, "menu item"))

    def solve(self, params, obs):
        yield from self._route(params["cell"], "Delete Columns", obs)

    def wrong(self, params, obs):
        yield from self._route(params["cell"], "Delete Rows", obs)
