"""Character formatting families: a phrase gets a format through the Formatting toolbar, Format menu or dialog.

Every family picks a target phrase and a decoy phrase in another body paragraph. Checkers demand the format on the
phrase, not on the rest of its paragraph and not on the decoy, so the wrong edit (the same format on the decoy) and
"format everything" both fail.
"""

from __future__ import annotations

import random
from typing import Callable

from lamforge.env.docstate import DocState, Run
from lamforge.schema import Action
from lamforge.tasks.base import (
    TaskFamily, Verdict, click, failed, finish, menu_path, open_tab, passed, register, select_paragraphs, select_text,
)
from lamforge.tasks.templates import TemplateDoc

# RGB values LibreOffice 7.4 applies from the toolbar's colour buttons on a fresh profile.
DARK_RED_2 = 0xC9211E  # "Font Color" button's default
YELLOW = 0xFFFF00  # "Character Highlighting Color" button's default

# Fonts every lamforge machine has (fonts-dejavu-core, fonts-dejavu-extra, fonts-liberation2 in the Makefile's
# APT_PACKAGES), as the Character dialog's font list names them. Liberation Serif is left out because the .odt
# templates' body text already uses it, so the untouched document would pass; DejaVu Math TeX Gyre and OpenSymbol
# are symbol fonts nobody sets text in.
FONTS = ["DejaVu Sans", "DejaVu Sans Condensed", "DejaVu Sans Light", "DejaVu Sans Mono", "DejaVu Serif",
         "DejaVu Serif Condensed", "Liberation Mono", "Liberation Sans"]
# Every size the Character dialog's size list offers (LibreOffice 7.4), except 11 pt, the body text of every template.
FONT_SIZES = [6, 7, 8, 9, 10, 10.5, 12, 13, 14, 15, 16, 18, 20, 21, 22, 24, 26, 28, 32, 36, 40, 42, 44, 48, 54, 60, 66,
              72, 80, 88, 96]


def phrase_pair(template: TemplateDoc, rng: random.Random, keep: Callable[[str], bool] = lambda phrase: True) -> dict | None:
    """A unique phrase in a body paragraph, and a unique decoy in a different body paragraph.

    Why not common.body_phrase: it may draw the decoy from the phrase's own paragraph, even overlapping it, and then
    "the decoy did not get the format" cannot be told apart from "the phrase got it".
    """
    body = set(template.body_paragraph_indices(min_words=6))
    candidates = []
    for phrase in template.phrases(min_words=1, max_words=3):
        locations = template.find(phrase)
        if len(locations) == 1 and locations[0].paragraph in body and len(phrase) >= 4 and keep(phrase):
            candidates.append((phrase, locations[0].paragraph))
    if len({paragraph for _, paragraph in candidates}) < 2:
        return None
    phrase, paragraph = rng.choice(candidates)
    decoy = rng.choice([c for c in candidates if c[1] != paragraph])[0]
    return {"phrase": phrase, "paragraph": paragraph, "decoy": decoy}


def only_phrase_has(state: DocState, params: dict, what: str, test: Callable[[Run], bool]) -> Verdict:
    """The phrase has the format; no other character of its paragraph has it, nor does the decoy.

    Why not common.phrase_has alone: it skips runs that straddle the phrase's edges, so formatting "the phrase and
    the next word" (one run) passes there.
    """
    phrase, decoy = params["phrase"], params["decoy"]
    runs = state.runs_of(phrase)
    if not runs:
        return failed(f"{phrase!r} is no longer in the document")
    if not all(test(r) for r in runs):
        return failed(f"{phrase!r} is not {what}")
    paragraph, start = state.find(phrase)
    end = start + len(phrase)
    for r in paragraph.runs:
        if r.kind != "Text" or not test(r):
            continue
        outside = r.text[: max(0, start - r.start)] + r.text[max(0, end - r.start):]
        if outside.strip():
            return failed(f"not only {phrase!r} is {what}: so is {outside.strip()[:40]!r}")
    decoy_runs = state.runs_of(decoy)
    if not decoy_runs:
        return failed(f"the decoy {decoy!r} is no longer in the document")
    if any(test(r) for r in decoy_runs):
        return failed(f"{decoy!r} was made {what} too")
    return passed(f"{phrase!r} is {what}, and nothing else around it is")


# ---------------------------------------------------------------------------------------------------------------
# One toolbar button on the selected phrase.


class _ToolbarToggle(TaskFamily):
    """Select the phrase, press one toolbar button: the single-click difficulty level."""

    category = "character"
    button: str
    what: str

    def sample(self, template, rng):
        return phrase_pair(template, rng)

    def test(self, run: Run) -> bool:
        raise NotImplementedError

    def check(self, params, state, out_dir=None):
        return only_phrase_has(state, params, self.what, self.test)

    def _route(self, phrase, obs):
        obs = yield select_text(phrase)
        yield finish(click(obs, self.button))

    def solve(self, params, obs):
        yield from self._route(params["phrase"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], obs)


@register
class Bold(_ToolbarToggle):
    id = "bold"
    button, what = "Bold", "bold"
    phrasings = [
        "Bold '{phrase}'",
        "Make '{phrase}' bold.",
        "Please put the words '{phrase}' in bold type.",
        "Could you make '{phrase}' stand out by making it bold?",
        "Embolden '{phrase}'",
        "Put '{phrase}' in bold.",
        "Make the words '{phrase}' bold.",
        "Apply bold formatting to '{phrase}'.",
        "I'd like the text '{phrase}' to appear in bold, thanks.",
    ]

    def test(self, run):
        return run.bold


@register
class Italic(_ToolbarToggle):
    id = "italic"
    button, what = "Italic", "italic"
    phrasings = [
        "Italicize '{phrase}'",
        "Make '{phrase}' italic.",
        "Please set '{phrase}' in italics.",
        "Could you emphasise '{phrase}' with italic type?",
        "Put '{phrase}' in italics.",
        "Make the words '{phrase}' italic.",
        "Apply italic to '{phrase}'.",
        "Italicise the text '{phrase}'.",
        "The phrase '{phrase}' should be slanted, in italics.",
    ]

    def test(self, run):
        return run.italic


@register
class Underline(_ToolbarToggle):
    id = "underline"
    button, what = "Underline", "underlined"
    phrasings = [
        "Underline '{phrase}'",
        "Put a line under '{phrase}'.",
        "Please underline the text '{phrase}'.",
        "Could you add an underline to '{phrase}' in this document?",
        "Give '{phrase}' an underline.",
        "Make '{phrase}' underlined.",
        "Underline the words '{phrase}'.",
        "Add underlining to '{phrase}'.",
        "I want '{phrase}' underlined.",
    ]

    def test(self, run):
        return run.underline != 0


@register
class Strikethrough(_ToolbarToggle):
    id = "strikethrough"
    button, what = "Strikethrough", "struck through"
    phrasings = [
        "Strike through '{phrase}'",
        "Apply strikethrough to '{phrase}'.",
        "Please cross out the words '{phrase}' with a strikethrough line.",
        "Could you draw a line through '{phrase}' so it reads as struck out?",
        "Cross out '{phrase}'.",
        "Put a strikethrough on '{phrase}'.",
        "Strike out the words '{phrase}'.",
        "I'd like '{phrase}' shown with strikethrough, please.",
    ]

    def test(self, run):
        return run.strikeout != 0


@register
class Superscript(_ToolbarToggle):
    id = "superscript"
    button, what = "Superscript", "superscript"
    phrasings = [
        "Superscript '{phrase}'",
        "Make '{phrase}' superscript.",
        "Please raise the words '{phrase}' into superscript.",
        "Could you format the text '{phrase}' as superscript?",
        "Raise '{phrase}' to superscript.",
        "Set '{phrase}' as superscript.",
        "Turn '{phrase}' into superscript.",
        "Apply superscript to '{phrase}'.",
        "'{phrase}' should sit above the baseline, as superscript.",
    ]

    def test(self, run):
        return run.escapement > 0


@register
class Subscript(_ToolbarToggle):
    id = "subscript"
    button, what = "Subscript", "subscript"
    phrasings = [
        "Subscript '{phrase}'",
        "Make '{phrase}' subscript.",
        "Please lower the words '{phrase}' into subscript.",
        "Could you format the text '{phrase}' as subscript?",
        "Lower '{phrase}' to subscript.",
        "Set '{phrase}' as subscript.",
        "Turn '{phrase}' into subscript.",
        "Apply subscript to '{phrase}'.",
        "'{phrase}' should sit below the baseline, as subscript.",
    ]

    def test(self, run):
        return run.escapement < 0


@register
class FontColor(_ToolbarToggle):
    """The toolbar's Font Color button applies its current colour, Dark Red 2 on a fresh profile.

    Why only that colour: the button's palette and the Character dialog's colour picker open as popups that the
    accessibility walk does not show (LibreOffice 7.4, gen VCL plugin), so no other colour is reachable by name.
    """

    id = "font_color"
    button, what = "Font Color", "Dark Red 2"
    phrasings = [
        "Color '{phrase}' {color}",
        "Make the text '{phrase}' {color}.",
        "Please change the font color of '{phrase}' to {color}.",
        "Could you set '{phrase}' in the font colour {color}?",
        "Change the colour of '{phrase}' to {color}.",
        "Turn '{phrase}' {color}.",
        "Apply the font color {color} to '{phrase}'.",
        "Give '{phrase}' the text colour {color}.",
        "I'd like the words '{phrase}' written in {color}, thanks.",
    ]

    def sample(self, template, rng):
        params = phrase_pair(template, rng)
        if params:
            params["color"] = "Dark Red 2"
        return params

    def test(self, run):
        return run.color == DARK_RED_2


@register
class Highlight(_ToolbarToggle):
    id = "highlight"
    button, what = "Character Highlighting Color", "highlighted yellow"
    phrasings = [
        "Highlight '{phrase}' in yellow",
        "Give '{phrase}' a yellow highlight.",
        "Please mark the words '{phrase}' with the yellow highlighter.",
        "Could you highlight '{phrase}' in yellow so it stands out?",
        "Highlight the words '{phrase}' yellow.",
        "Apply a yellow highlight to '{phrase}'.",
        "Mark '{phrase}' in yellow.",
        "Put yellow highlighting on '{phrase}'.",
        "I want a yellow highlight behind the text '{phrase}'.",
    ]

    def test(self, run):
        # LibreOffice keeps a highlight in CharBackColor, a .docx import may keep it in CharHighlight.
        return YELLOW in (run.back_color, run.highlight)


# ---------------------------------------------------------------------------------------------------------------
# Font and size: picked from the lists on the Character dialog's Font tab.
#
# Why not the toolbar's Font Name / Font Size boxes: the toolbar refreshes them from the new selection a moment
# after select_text, and under load that refresh lands after the typed value and puts the old font back (measured:
# 3-4 of 8-12 font_name references failed with two busy CPU hogs running; 0 of 30 failed without). The dialog reads
# the selection when it opens and applies on OK, both finished when the step returns.


class _FontTab(TaskFamily):
    category = "character"

    def item(self, params) -> str:
        """The Font tab list item to pick."""
        raise NotImplementedError

    def _route(self, phrase, params, obs):
        obs = yield select_text(phrase)
        obs = yield from menu_path(obs, "Format", "Character...")
        obs = yield from open_tab(obs, "Font")
        obs = yield click(obs, self.item(params), "list item")
        yield finish(click(obs, "OK", "push button"))

    def solve(self, params, obs):
        yield from self._route(params["phrase"], params, obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params, obs)


@register
class FontName(_FontTab):
    id = "font_name"
    phrasings = [
        "Set '{phrase}' in {font}",
        "Change the font of '{phrase}' to {font}.",
        "Please apply the {font} font to the words '{phrase}'.",
        "Could you switch '{phrase}' over to the {font} typeface?",
        "Use {font} for '{phrase}'.",
        "Change '{phrase}' to the {font} font.",
        "Format '{phrase}' in {font}.",
        "Switch the font of '{phrase}' to {font}.",
        "Apply {font} to '{phrase}'.",
        "I want the text '{phrase}' to use the font {font}.",
    ]

    def sample(self, template, rng):
        params = phrase_pair(template, rng)
        if params:
            params["font"] = rng.choice(FONTS)
        return params

    def item(self, params):
        return params["font"]

    def check(self, params, state, out_dir=None):
        font = params["font"]
        return only_phrase_has(state, params, f"in {font}", lambda r: r.font_name == font)


@register
class FontSize(_FontTab):
    id = "font_size"
    phrasings = [
        "Make '{phrase}' {size} pt",
        "Set the font size of '{phrase}' to {size} pt.",
        "Please change the text '{phrase}' to {size}-point type.",
        "Could you resize '{phrase}' so that it is {size} pt?",
        "Set '{phrase}' to {size} pt.",
        "Change the size of '{phrase}' to {size} points.",
        "Make the text '{phrase}' {size} point.",
        "Use a {size} pt font size for '{phrase}'.",
        "Font size {size} for '{phrase}'",
        "The words '{phrase}' should be {size} points in size.",
    ]

    def sample(self, template, rng):
        params = phrase_pair(template, rng)
        if params:
            params["size"] = rng.choice(FONT_SIZES)
        return params

    def item(self, params):
        return f"{params['size']} pt"

    def check(self, params, state, out_dir=None):
        size = params["size"]
        return only_phrase_has(state, params, f"{size} pt", lambda r: abs(r.font_size - size) < 0.05)


# ---------------------------------------------------------------------------------------------------------------
# Format menu commands.

# Format > Text item, how instructions say it, CharCaseMap value of the same look, and the text transform.
CASES = {
    "upper": ("UPPERCASE", "upper case", 1, str.upper),
    "lower": ("lowercase", "lower case", 2, str.lower),
}
# Other ways requests name each case.
CASE_WORDS = {
    "upper": ["upper case", "uppercase", "capital letters", "all caps", "capitals", "block capitals"],
    "lower": ["lower case", "lowercase", "small letters", "all lower case"],
}
CONTEXT_CHARS = 12


def case_context(text: str, start: int, end: int, transform: Callable[[str], str]) -> dict:
    """The characters around text[start:end] that a case change spilling past the phrase would alter.

    Each side grows from CONTEXT_CHARS until it holds a letter the transform changes (or reaches the paragraph's
    edge), so "lowercase the whole paragraph" cannot pass for "lowercase the phrase".
    """
    before_from, after_to = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
    while before_from > 0 and transform(text[before_from:start]) == text[before_from:start]:
        before_from = max(0, before_from - CONTEXT_CHARS)
    while after_to < len(text) and transform(text[end:after_to]) == text[end:after_to]:
        after_to = min(len(text), after_to + CONTEXT_CHARS)
    return {"before": text[before_from:start], "after": text[end:after_to]}


@register
class ChangeCase(TaskFamily):
    """Format > Text > UPPERCASE / lowercase.

    Writer's menu commands rewrite the characters; the Character dialog's Case list sets CharCaseMap instead and
    leaves them. Both look the same on the page, so the checker accepts either, on the phrase alone.
    """

    id = "change_case"
    category = "character"
    phrasings = [
        "Change '{phrase}' to {case_name}",
        "Make '{phrase}' {case_name}.",
        "Please convert the words '{phrase}' to {case_name}.",
        "Could you rewrite '{phrase}' in {case_name} letters?",
        "Put '{phrase}' in {case_name}.",
        "Convert '{phrase}' to {case_name}.",
        "Switch '{phrase}' to {case_name}.",
        "Write '{phrase}' in {case_name}.",
        "The text '{phrase}' should be written in {case_name}.",
    ]

    def sample(self, template, rng):
        case = rng.choice(sorted(CASES))
        transform = CASES[case][3]
        # The phrase and the decoy must both change under the transform, or an edit of either is invisible.
        params = phrase_pair(template, rng, keep=lambda p: p.isascii() and transform(p) != p)
        if params is None:
            return None
        text = template.paragraph(params["paragraph"]).text
        start = text.index(params["phrase"])
        end = start + len(params["phrase"])
        params.update(case=case, case_name=rng.choice(CASE_WORDS[case]), **case_context(text, start, end, transform))
        return params

    def check(self, params, state, out_dir=None):
        _item, case_name, case_map, transform = CASES[params["case"]]
        phrase, decoy = params["phrase"], params["decoy"]
        decoy_runs = state.runs_of(decoy)
        if not decoy_runs:
            return failed(f"the decoy {decoy!r} is no longer in the document (its case changed?)")
        if any(r.case_map == case_map for r in decoy_runs):
            return failed(f"{decoy!r} was set to {case_name} too")
        rewritten = params["before"] + transform(phrase) + params["after"]
        if state.paragraph_with(rewritten) is not None:
            return passed(f"{phrase!r} now reads {transform(phrase)!r}, and the text around it is unchanged")
        if state.find(params["before"] + phrase + params["after"]) is not None:
            return only_phrase_has(state, params, f"shown in {case_name}", lambda r: r.case_map == case_map)
        return failed(f"{phrase!r} is neither rewritten in {case_name} with its surroundings intact, nor still there")

    def _route(self, phrase, case, obs):
        obs = yield select_text(phrase)
        obs = yield from menu_path(obs, "Format", "Text")
        yield finish(click(obs, CASES[case][0]))

    def solve(self, params, obs):
        yield from self._route(params["phrase"], params["case"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], params["case"], obs)


@register
class ClearFormatting(TaskFamily):
    """Format > Clear Direct Formatting, on a phrase that setup() made bold and italic.

    setup() formats the decoy the same way, so clearing the decoy (the wrong edit) or the whole document fails, and
    a setup that did not take shows up as a failed check instead of a free pass for the untouched document.
    """

    id = "clear_formatting"
    category = "character"
    phrasings = [
        "Clear the formatting of '{phrase}'",
        "Remove the direct formatting from '{phrase}'.",
        "Please take the bold and italic off '{phrase}' by clearing its direct formatting.",
        "Could you reset '{phrase}' to plain text, without its bold and italic?",
        "Clear direct formatting on '{phrase}'.",
        "Strip the formatting from '{phrase}'.",
        "Remove the bold and italic from '{phrase}'.",
        "Reset the formatting of '{phrase}'.",
        "'{phrase}' should not carry any direct formatting; clear it, please.",
    ]

    def sample(self, template, rng):
        return phrase_pair(template, rng)

    def setup(self, params):
        # Toolbar clicks, grounded by name on the live window when they run: unlike typed shortcuts they have
        # finished when the step returns, so the next select_text cannot overtake them.
        bold, italic = (Action(control_name=name, function="click_input") for name in ("Bold", "Italic"))
        actions = []
        for text in (params["phrase"], params["decoy"]):
            actions += [select_text(text), bold, italic]
        # Move the selection to the first paragraph, so the start state points at neither phrase.
        return actions + [select_paragraphs(0)]

    def check(self, params, state, out_dir=None):
        phrase, decoy = params["phrase"], params["decoy"]
        runs, decoy_runs = state.runs_of(phrase), state.runs_of(decoy)
        if not runs:
            return failed(f"{phrase!r} is no longer in the document")
        if not decoy_runs:
            return failed(f"the decoy {decoy!r} is no longer in the document")
        if not all(r.bold and r.italic for r in decoy_runs):
            return failed(f"{decoy!r} lost its bold italic too (or the task setup did not apply it)")
        if any(r.bold or r.italic for r in runs):
            return failed(f"{phrase!r} is still bold or italic")
        return passed(f"{phrase!r} is plain again, and {decoy!r} kept its bold italic")

    def _route(self, phrase, obs):
        obs = yield select_text(phrase)
        obs = yield from menu_path(obs, "Format")
        yield finish(click(obs, "Clear Direct Formatting"))

    def solve(self, params, obs):
        yield from self._route(params["phrase"], obs)

    def wrong(self, params, obs):
        yield from self._route(params["decoy"], obs)
