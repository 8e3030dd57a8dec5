"""Paragraph families: alignment and lists from the toolbar, styles from the Styles menu, spacing and indents
through the Paragraph dialog."""

from __future__ import annotations

import re
from typing import ClassVar

from lamforge.tasks.arguments import length_cm
from lamforge.tasks.base import (TaskFamily, click, failed, finish, menu_path, open_tab, passed, register,
                                 select_paragraphs, set_text)
from lamforge.tasks.families.common import body_paragraph, paragraph_has

ALIGN_BUTTONS = {"center": "Center", "right": "Right", "justify": "Justified", "left": "Left"}


@register
class Align(TaskFamily):
    id = "align"
    category = "paragraph"
    phrasings = [
        "Align paragraph {index} {align}",
        "Set the alignment of the paragraph starting '{start}' to {align}.",
        "Please make the paragraph that begins with '{start}' {align}-aligned.",
        "Could you change how the paragraph '{start}…' is aligned? I want it {align}.",
        "Make paragraph {index} {align}-aligned.",
        "Change the alignment of paragraph {index} to {align}.",
        "Set paragraph {index} to {align} alignment.",
        "Give the paragraph starting '{start}' {align} alignment.",
        "The paragraph beginning '{start}' should be aligned {align}.",
    ]

    def sample(self, template, rng):
        params = body_paragraph(template, rng)
        if params:
            params["align"] = rng.choice(["center", "right", "justify"])
        return params

    def check(self, params, state, out_dir=None):
        return paragraph_has(state, params, f"aligned {params['align']}", lambda p: p.align == params["align"])

    def solve(self, params, obs):
        obs = yield select_paragraphs(params["index"])
        yield finish(click(obs, ALIGN_BUTTONS[params["align"]], "toggle button"))

    def wrong(self, params, obs):
        obs = yield select_paragraphs(params["decoy"])
        yield finish(click(obs, ALIGN_BUTTONS[params["align"]], "toggle button"))


SPACINGS = {"1.5 Lines": 150, "Double": 200, "1.15 Lines": 115}


@register
class LineSpacing(TaskFamily):
    id = "line_spacing"
    category = "paragraph"
    phrasings = [
        "Set line spacing of paragraph {index} to {spacing}",
        "Give the paragraph starting '{start}' {spacing} line spacing.",
        "Please change the line spacing of the paragraph that begins '{start}' to {spacing}.",
        "Could you space out the lines of the paragraph '{start}…'? Use {spacing}.",
        "Make the line spacing of paragraph {index} {spacing}.",
        "Use {spacing} line spacing for the paragraph starting '{start}'.",
        "Change paragraph {index} to {spacing} spacing.",
        "The paragraph beginning '{start}' needs {spacing} between its lines.",
    ]

    def sample(self, template, rng):
        params = body_paragraph(template, rng)
        if params:
            # Word's Normal style (python-docx's default template) is already 1.15 lines, so it is no change there.
            choices = [s for s in sorted(SPACINGS) if not (template.format == "docx" and s == "1.15 Lines")]
            params["spacing"] = rng.choice(choices)
        return params

    def _is_spaced(self, params):
        percent = SPACINGS[params["spacing"]]
        return lambda p: p.line_spacing_mode == 0 and p.line_spacing == percent

    def check(self, params, state, out_dir=None):
        return paragraph_has(state, params, f"{params['spacing']} spaced", self._is_spaced(params))

    def _route(self, index, spacing, obs):
        obs = yield select_paragraphs(index)
        obs = yield from menu_path(obs, "Format", "Paragraph...")
        obs = yield from open_tab(obs, "Indents & Spacing")
        obs = yield click(obs, spacing, "list item")
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["index"], params["spacing"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["spacing"], obs)


# ---------------------------------------------------------------------------------------------------------------
# Indents and spacing: the spin fields of Format > Paragraph > Indents & Spacing.

# The dialog's spin fields show centimetres, and the env types only the number into them, so values are in cm.
LENGTH_TOLERANCE = 10  # 1/100 mm: the dialog rounds 0.5 cm to 499


def _cm(value: str) -> int:
    """'1.5 cm' -> 1500 (1/100 mm, DocState's unit)."""
    return round(float(value.split()[0]) * 1000)


class _ParagraphLength(TaskFamily):
    """Set one length of a paragraph through a spin field of the Paragraph dialog."""

    category = "paragraph"
    spin: ClassVar[str]  # the spin field's name in the dialog
    attribute: ClassVar[str]  # the ParagraphState field it sets
    what: ClassVar[str]
    # The range lengths are drawn from, in cm. Every lower bound is above what a template paragraph already has
    # (no indent, at most a few millimetres of spacing), so the untouched document never passes.
    low: ClassVar[float] = 0.5
    high: ClassVar[float]

    def sample(self, template, rng):
        params = body_paragraph(template, rng)
        if params:
            params["value"] = length_cm(rng, self.low, self.high)
        return params

    def check(self, params, state, out_dir=None):
        wanted = _cm(params["value"])
        return paragraph_has(state, params, f"{self.what} {params['value']}",
                             lambda p: abs(getattr(p, self.attribute) - wanted) <= LENGTH_TOLERANCE)

    def _route(self, index, value, obs):
        obs = yield select_paragraphs(index)
        obs = yield from menu_path(obs, "Format", "Paragraph...")
        obs = yield from open_tab(obs, "Indents & Spacing")
        obs = yield set_text(obs, self.spin, value, "spin box")
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["index"], params["value"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["value"], obs)


@register
class Indent(_ParagraphLength):
    id = "indent"
    spin, attribute, what = "Before text:", "left_margin", "indented by"
    high = 6.0
    phrasings = [
        "Indent paragraph {index} by {value}",
        "Give the paragraph starting '{start}' a left indent of {value}.",
        "Please indent the paragraph that begins '{start}' {value} from the left margin.",
        "Could you push the paragraph '{start}…' in from the left by {value}?",
        "Indent the paragraph starting '{start}' by {value}.",
        "Set a {value} left indent on paragraph {index}.",
        "Move paragraph {index} {value} in from the left margin.",
        "Change the left indent of paragraph {index} to {value}.",
        "The paragraph beginning '{start}' should sit {value} in from the left.",
    ]


@register
class SpacingAbove(_ParagraphLength):
    id = "spacing_above"
    spin, attribute, what = "Above paragraph:", "top_margin", "spaced above by"
    high = 3.0
    phrasings = [
        "Set spacing above paragraph {index} to {value}",
        "Put {value} of space above the paragraph starting '{start}'.",
        "Please add {value} spacing before the paragraph that begins '{start}'.",
        "Could you leave a {value} gap above the paragraph '{start}…'?",
        "Add {value} of space before paragraph {index}.",
        "Set the space above the paragraph starting '{start}' to {value}.",
        "Increase the spacing above paragraph {index} to {value}.",
        "The paragraph beginning '{start}' needs {value} of room above it.",
    ]


@register
class SpacingBelow(_ParagraphLength):
    id = "spacing_below"
    spin, attribute, what = "Below paragraph:", "bottom_margin", "spaced below by"
    high = 3.0
    phrasings = [
        "Set spacing below paragraph {index} to {value}",
        "Put {value} of space below the paragraph starting '{start}'.",
        "Please add {value} spacing after the paragraph that begins '{start}'.",
        "Could you leave a {value} gap under the paragraph '{start}…'?",
        "Add {value} of space after paragraph {index}.",
        "Set the space below the paragraph starting '{start}' to {value}.",
        "Increase the spacing below paragraph {index} to {value}.",
        "The paragraph beginning '{start}' needs {value} of room below it.",
    ]


# ---------------------------------------------------------------------------------------------------------------
# Paragraph styles from the Styles menu.

# Styles menu items whose UI name is also the name LibreOffice reports (so not "Text Body", reported as "Text body");
# the templates' own "Quote" style (from Word) is a different style from "Quotations".
PARAGRAPH_STYLES = ["Title", "Subtitle", "Heading 1", "Heading 2", "Heading 3", "Quotations", "Preformatted Text"]


@register
class ParagraphStyle(TaskFamily):
    id = "paragraph_style"
    category = "paragraph"
    phrasings = [
        "Apply {style} style to paragraph {index}",
        "Set the paragraph starting '{start}' to the {style} paragraph style.",
        "Please give the paragraph that begins '{start}' the style {style}.",
        "Could you format the paragraph '{start}…' with the {style} style?",
        "Format paragraph {index} as {style}.",
        "Set paragraph {index} to the {style} style.",
        "Use the {style} style for the paragraph starting '{start}'.",
        "Change the style of paragraph {index} to {style}.",
        "The paragraph beginning '{start}' ought to use the {style} style.",
    ]

    def sample(self, template, rng):
        params = body_paragraph(template, rng)
        if params:
            params["style"] = rng.choice(PARAGRAPH_STYLES)
        return params

    def check(self, params, state, out_dir=None):
        return paragraph_has(state, params, f"in style {params['style']}", lambda p: p.style == params["style"])

    def _route(self, index, style, obs):
        # The Styles menu lists these five styles. The toolbar's Paragraph Style box needs an {Enter} after the
        # name, and that key press was lost in about 1 of 4 episodes that follow a closed dialog (X focus).
        obs = yield select_paragraphs(index)
        obs = yield click(obs, "Styles", "menu")
        yield finish(click(obs, style, "radio menu item"))

    def solve(self, params, obs):
        yield from self._route(params["index"], params["style"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["style"], obs)


# ---------------------------------------------------------------------------------------------------------------
# Bulleted and numbered lists from the Formatting toolbar.

_NUMBER_LABEL = re.compile(r"^(\d+)\.$")


def _list_run(template, rng) -> dict | None:
    """2-5 consecutive plain paragraphs (or a sortable_lines region) and a decoy that borders them.

    The decoy is the plain paragraph right after (or before) the run where there is one, so that selecting one
    paragraph too many or too few is caught.
    """
    plain = set(template.body_paragraph_indices(min_words=4))
    plain |= {i for r in template.regions_of("sortable_lines") for i in r.indices}
    runs = [list(r.indices) for r in template.regions_of("sortable_lines")]
    # A selection across a table puts the table's cells in the list too (Writer numbers them 2, 3, ...).
    before_table = template.paragraphs_before_tables()
    for size in (2, 3, 4, 5):
        for first in sorted(plain):
            window = list(range(first, first + size))
            if (all(i in plain for i in window) and not before_table & set(window[:-1])
                    and not any(set(window) <= set(r) for r in runs)):
                runs.append(window)
    if not runs:
        return None
    run = rng.choice(runs)
    texts = template.paragraph_texts()
    normal = [i for i, p in enumerate(template.paragraphs) if p.style == "Normal" and i not in run]
    neighbours = [i for i in (run[-1] + 1, run[0] - 1) if i in normal]
    if neighbours:
        decoy = neighbours[0]
    else:
        others = [i for i in plain if i not in run]
        if not others:
            return None
        decoy = rng.choice(sorted(others))
    return {
        "first": run[0], "last": run[-1], "decoy": decoy,
        "start": " ".join(texts[run[0]].split()[:4]), "end_start": " ".join(texts[run[-1]].split()[:4]),
        "starts": [" ".join(texts[i].split()[:4]) for i in run],
    }


class _ListFamily(TaskFamily):
    category = "paragraph"
    button: ClassVar[str]
    what: ClassVar[str]

    def sample(self, template, rng):
        return _list_run(template, rng)

    def labels_ok(self, labels: list[str]) -> bool:
        raise NotImplementedError

    def check(self, params, state, out_dir=None):
        indices = range(params["first"], params["last"] + 1)
        if params["last"] >= len(state.paragraphs) or params["decoy"] >= len(state.paragraphs):
            return failed("paragraphs were removed")
        paragraphs = [state.paragraphs[i] for i in indices]
        for p, start in zip(paragraphs, params["starts"]):
            if not p.text.startswith(start):
                return failed(f"paragraph {p.index} changed its text")
            if not p.is_list:
                return failed(f"paragraph {p.index} is not in a list")
        if not self.labels_ok([p.list_label for p in paragraphs]):
            return failed(f"paragraphs {params['first']}-{params['last']} are not {self.what} "
                          f"(labels {[p.list_label for p in paragraphs]})")
        decoy = state.paragraphs[params["decoy"]]
        if decoy.is_list:
            return failed(f"paragraph {decoy.index} was also put in a list")
        return passed(f"paragraphs {params['first']}-{params['last']} are {self.what}")

    def _route(self, first, last, button, obs):
        obs = yield select_paragraphs(first, last)
        yield finish(click(obs, button))

    def solve(self, params, obs):
        yield from self._route(params["first"], params["last"], self.button, obs)


@register
class Bullets(_ListFamily):
    id = "bullets"
    button, what = "Unordered List", "a bulleted list"
    phrasings = [
        "Bullet paragraphs {first}-{last}",
        "Turn the paragraphs from '{start}' to '{end_start}' into a bulleted list.",
        "Please put bullets in front of paragraphs {first} to {last}, starting with '{start}'.",
        "Could you make the lines from '{start}' through '{end_start}' a bullet list?",
        "Make paragraphs {first}-{last} a bulleted list.",
        "Add bullets to paragraphs {first} to {last}.",
        "Format the paragraphs from '{start}' to '{end_start}' as a bullet list.",
        "Turn paragraphs {first}-{last} into bullet points.",
        "I'd like paragraphs {first} through {last} ('{start}' … '{end_start}') shown as bullet points.",
    ]

    def labels_ok(self, labels):
        # LibreOffice reports an empty label (or the bullet character) for bullets, never a number.
        return not any(_NUMBER_LABEL.match(label) for label in labels)

    def wrong(self, params, obs):
        # Off by one: the selection slides onto the decoy that borders the run.
        shift = {params["last"] + 1: 1, params["first"] - 1: -1}.get(params["decoy"], 0)
        if shift:
            yield from self._route(params["first"] + shift, params["last"] + shift, self.button, obs)
        else:
            yield from self._route(params["decoy"], params["decoy"], self.button, obs)


@register
class Numbering(_ListFamily):
    id = "numbering"
    button, what = "Ordered List", "a numbered list"
    phrasings = [
        "Number paragraphs {first}-{last}",
        "Turn the paragraphs from '{start}' to '{end_start}' into a numbered list.",
        "Please number paragraphs {first} to {last}, starting with '{start}'.",
        "Could you make the lines from '{start}' through '{end_start}' an ordered list?",
        "Make paragraphs {first}-{last} a numbered list.",
        "Add numbering to paragraphs {first} to {last}.",
        "Format the paragraphs from '{start}' to '{end_start}' as a numbered list.",
        "Turn paragraphs {first}-{last} into a numbered list.",
        "I'd like paragraphs {first} through {last} ('{start}' … '{end_start}') numbered 1, 2, 3 and so on.",
    ]

    def labels_ok(self, labels):
        numbers = [_NUMBER_LABEL.match(label) for label in labels]
        if not all(numbers):
            return False
        values = [int(m.group(1)) for m in numbers]
        return values == list(range(values[0], values[0] + len(values)))

    def wrong(self, params, obs):
        # The wrong kind of list on the right paragraphs.
        yield from self._route(params["first"], params["last"], Bullets.button, obs)
