"""The named_by_role split: requests that name their paragraph by role or place, the way people ask.

"Italicise the title.", "Justify the second heading.", "Give the last paragraph 1.5 Lines line spacing.": no
family's phrasing names a paragraph that way (they quote its start or give its number), and the prompt resolves
such names (prompt.paragraph_by_role) into the Named line a quote or a number gets. This split measures a LAM on
them with the families' own checkers, reference solutions and parameter draws, on the test split's documents:
a test-split instance of the family, re-aimed at a paragraph that a role names, and worded with that role in place
of the phrasing's quote or number. Evaluation only, like lo_templates.

The role is resolved by the prompt's own function on the template's paragraphs with the style names LibreOffice
reports, so the paragraph a request names here is the one the prompt's Named line shows in live Writer.
"""

from __future__ import annotations

import hashlib
import random
import re

from lamforge.prompt import role_named_paragraphs
from lamforge.schema import Paragraph
from lamforge.tasks.arguments import length_cm
from lamforge.tasks.base import TaskFamily, TaskInstance
from lamforge.tasks.templates import HEADING_LEVELS, TemplateDoc

ROLE_SPLIT = "named_by_role"
# Paragraph properties and whole-paragraph character formats whose checkers hold on a heading or the title too.
# Not bold (headings are bold already), not a paragraph style (the style names would read as roles).
ROLE_FAMILIES = ("align", "line_spacing", "indent", "spacing_above", "italic", "underline")
ROLES = ("the title", "the first heading", "the second heading", "the third heading", "the last heading",
         "the first paragraph", "the second paragraph", "the last paragraph")
# Styles a role may aim at: list items and quotations carry indents and spacing of their own, so an untouched one
# could already pass.
TARGET_STYLES = ("Title", *HEADING_LEVELS, "Normal")
# A heading's own spacing above: Word's Heading 1 (python-docx's template) has 24 pt = 0.847 cm, within the
# checker's tolerance of a drawn 0.85 cm.
HEADING_SPACINGS_CM = (0.85,)

# A phrasing's reference to its target, replaced by the role: "paragraph 7", "the paragraph starting 'X'", "the
# paragraph that begins with 'X'", "the paragraph 'X…'", "the paragraph beginning 'X'"; "'X'", "the words 'X'".
_PARAGRAPH_REFERENCE = re.compile(
    r"the paragraph (?:(?:that )?(?:starting|starts|begins|beginning)(?: with)? )?'\{start\}…?'|paragraph \{index\}")
_PHRASE_REFERENCE = re.compile(r"(?:the (?:words|text|phrase) )?'\{phrase\}'")
_TARGET_FIELDS = {"index", "start", "phrase"}


def template_canvas(template: TemplateDoc) -> list[Paragraph]:
    """The template's paragraphs as the live canvas shows them (index, text, LibreOffice's style name)."""
    return [Paragraph(index=i, text=p.text, style=template.lo_style(i)) for i, p in enumerate(template.paragraphs)]


def role_targets(template: TemplateDoc) -> list[tuple[str, int]]:
    """(role, paragraph index) for every role in ROLES that names one paragraph of TARGET_STYLES here."""
    canvas = template_canvas(template)
    found = []
    for role in ROLES:
        hits = role_named_paragraphs(role, canvas)
        if len(hits) == 1 and template.paragraph(hits[0].index).style in TARGET_STYLES:
            found.append((role, hits[0].index))
    return found


def _reference(family: TaskFamily) -> re.Pattern:
    return _PHRASE_REFERENCE if "{phrase}" in family.phrasings[0] else _PARAGRAPH_REFERENCE


def _with_role(family: TaskFamily, phrasing: int, role: str) -> str:
    return _reference(family).sub(role, family.phrasings[phrasing], count=1)


def role_phrasings(family: TaskFamily) -> list[int]:
    """The family's phrasings (not the held-out last one) whose one target reference a role can replace."""
    return [i for i in range(len(family.phrasings) - 1)
            if (worded := _with_role(family, i, "the title")) != family.phrasings[i]
            and not _TARGET_FIELDS & set(re.findall(r"\{(\w+)\}", worded))]


def _aim(family: TaskFamily, params: dict, template: TemplateDoc, index: int, rng: random.Random) -> dict | None:
    """The family's parameters re-aimed at paragraph `index`, or None where its checker could not tell."""
    target = template.paragraph(index)
    params = dict(params)
    if "{phrase}" in family.phrasings[0]:
        text = target.text
        if len(text) < 4 or len(template.find(text)) != 1 or params["decoy"] in text or text in params["decoy"]:
            return None
        params.update(phrase=text, paragraph=index)
        return params
    if params["decoy"] == index:
        others = [i for i in template.body_paragraph_indices(min_words=8) if i != index]
        if not others:
            return None
        params["decoy"] = rng.choice(others)
    params.update(index=index, start=" ".join(target.text.split()[:4]))
    if family.id == "align" and target.style == "Title":
        params["align"] = rng.choice(["right", "justify"])  # LibreOffice's Title style is centred already
    if family.id == "spacing_above" and target.style != "Normal":
        params["value"] = length_cm(rng, family.low, family.high, exclude=HEADING_SPACINGS_CM)
    return params


def instantiate_by_role(family: TaskFamily, template: TemplateDoc, seed: int) -> TaskInstance | None:
    """A task of the family on the template whose request names its paragraph by role, or None where none fits."""
    phrasings = role_phrasings(family)
    targets = role_targets(template)
    rng = random.Random(f"{family.id}|{template.id}|{seed}|{ROLE_SPLIT}")
    params = family.sample(template, rng)
    if params is None or not phrasings or not targets:
        return None
    role, index = rng.choice(targets)
    params = _aim(family, params, template, index, rng)
    if params is None or template.why_unfit(family.id, params) is not None:
        return None
    phrasing = rng.choice(phrasings)
    worded = _with_role(family, phrasing, role).format(**params)
    instruction = worded[0].upper() + worded[1:]
    # Keyed by what the task asks on which document, not by the seed: two draws of one request are one task.
    digest = hashlib.sha1(f"{family.id}|{template.id}|{ROLE_SPLIT}|{instruction}".encode()).hexdigest()[:10]
    return TaskInstance(task_id=f"{family.id}-{digest}", family=family.id, category=family.category,
                        instruction=instruction, template_id=template.id, params=params, phrasing=phrasing,
                        split=ROLE_SPLIT)
