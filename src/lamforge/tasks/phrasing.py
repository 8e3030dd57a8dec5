"""Rule-based variation of a request's wording, so that training asks for each task in many ways.

A family's phrasing is a template with {placeholders}. `vary` rewrites the template's own words and never the
argument values: it names the target another way where the parameters allow it ("paragraph 7" or "the paragraph
starting 'X'"), swaps the leading verb for a synonym, frames the request ("Please ...", "Can you ...?", "...,
thanks"), changes the quoting style ('x', "x", “x”, or no quotes around a one-word value) and the casing and
closing punctuation. It is deterministic for a given random stream (families seed it per instance).

Honesty of the unseen-phrasing split: a family's last phrasing is held out. `vary` never returns a text that equals
the held-out phrasing after `phrasing_key` (case, quotes, punctuation and politeness words removed), and it never
introduces a wording that the held-out phrasing contains (a frame, a synonym or a target reference that occurs in
it). Frames never open the way any family's held-out phrasing opens (tests/test_phrasing.py checks both).

Why by hand: paraphrase libraries rewrite free text and would change argument values; these rules only touch the
template's own words, so every value reaches the instruction verbatim by construction.
"""

from __future__ import annotations

import random
import re
import string

# -- normalising ------------------------------------------------------------------------------------------------

QUOTES = "'\"“”‘’«»`"
POLITENESS = re.compile(r"\b(please|kindly|thanks|thank you|thx|cheers)\b")


def phrasing_key(text: str) -> str:
    """A text with case, quotes, punctuation and politeness words removed: two requests that differ only in those
    are the same phrasing."""
    text = text.lower()
    text = "".join(" " if ch in QUOTES else ch for ch in text)
    text = POLITENESS.sub(" ", text)
    text = "".join(" " if ch in string.punctuation or ch in "…–—" else ch for ch in text)
    return " ".join(text.split())


def _contains(held_out_key: str, fragment: str) -> bool:
    """Whether the held-out phrasing contains the fragment's words (as whole words, placeholders kept)."""
    key = phrasing_key(fragment)
    return bool(key) and f" {key} " in f" {held_out_key} "


# -- target references -----------------------------------------------------------------------------------------
# Groups of equivalent ways to name one target. A group applies to a family whose parameters fill every
# placeholder of the group; an occurrence of one alternative in the template may become any other.

TARGET_REFERENCES: list[list[str]] = [
    [
        "paragraph {index}",
        "the paragraph starting '{start}'",
        "the paragraph that begins '{start}'",
        "the paragraph that starts with '{start}'",
        "the paragraph '{start}…'",
        "paragraph {index} ('{start}…')",
        "the '{start}…' paragraph",
    ],
    [
        "paragraphs {first}-{last}",
        "paragraphs {first} to {last}",
        "paragraphs {first} through {last}",
        "the paragraphs from '{start}' to '{end_start}'",
        "the lines from '{start}' through '{end_start}'",
        "paragraphs {first}-{last} (from '{start}' to '{end_start}')",
    ],
    [
        "paragraphs {start}-{end}",
        "paragraphs {start} to {end}",
        "the {count} lines from '{first}' to '{last}'",
        "the lines from '{first}' down to '{last}'",
        "lines {start}-{end} ('{first}' to '{last}')",
    ],
]
# A phrase named by its text can also carry its position (both identify it).
PHRASE_WITH_POSITION = "'{phrase}' in paragraph {paragraph}"

# -- verbs ------------------------------------------------------------------------------------------------------
# Synonyms of a request's leading verb, each with the pattern the rest of the request must match for the swap to
# stay grammatical ("set the font of 'x' to ..." may become "change the font ...", but "set 'x' in Arial" may not).
VERB_SYNONYMS: dict[str, tuple[list[str], str]] = {
    "add": (["insert"], r"^(?!.* to )"),
    "insert": (["add"], r""),
    "delete": (["remove"], r""),
    "remove": (["delete"], r""),
    "put": (["place"], r""),
    "place": (["put"], r""),
    "change": (["set"], r"^the "),
    "set": (["change"], r"^(the |line |spacing )"),
    "italicize": (["italicise"], r""),
    "underline": (["underscore"], r""),
}

# Verbs a request can open with: a template starting with one of them is an imperative that frames can wrap.
IMPERATIVE_VERBS = {
    "add", "align", "append", "apply", "bold", "bookmark", "bullet", "center", "centre", "change", "clear", "color",
    "colour", "comment", "convert", "create", "delete", "drop", "emphasise", "emphasize", "erase", "export", "footnote",
    "format", "get", "give", "highlight", "indent", "insert", "italicise", "italicize", "justify", "lay", "leave",
    "link", "make", "mark", "move", "number", "place", "push", "put", "raise", "lower", "remove", "replace", "reset",
    "resize", "right-align", "save", "set", "sort", "split", "start", "strike", "subscript", "superscript", "swap",
    "switch", "take", "turn", "type", "underline", "use", "write", "alphabetise", "alphabetize", "cross", "store",
    "enlarge", "shrink", "attach", "finish", "end", "increase", "widen", "narrow", "copy", "embolden", "draw",
    "rewrite", "strip", "hyperlink", "find", "cut", "rotate", "adjust", "break", "show", "space",
}

# -- frames -----------------------------------------------------------------------------------------------------
# (frame, weight). "{c}" is the imperative core with a lower-case first letter, "{C}" with a capital; "?" or "."
# marks the closing punctuation the frame wants. None of them opens the way a held-out phrasing opens.
FRAMES: list[tuple[str, float]] = [
    ("{C}.", 4), ("{C}", 2), ("{C}!", 0.5),
    ("Please {c}.", 3), ("Please, {c}.", 0.5), ("{C}, please.", 1.5), ("{C} please", 0.7),
    ("Can you {c}?", 2), ("Could you {c}?", 1.5), ("Could you please {c}?", 1), ("Can you please {c}?", 1),
    ("Would you {c}?", 0.7), ("Would you please {c}?", 0.5), ("Kindly {c}.", 0.4), ("Help me {c}.", 0.4),
    ("Go ahead and {c}.", 0.3), ("{C}, thanks.", 1), ("{C}. Thanks!", 0.7), ("{C}, thank you.", 0.5),
    ("{C} for me.", 0.5), ("Quick one: {c}.", 0.3), ("Hi, can you {c}?", 0.5), ("Hey, {c}.", 0.3),
    ("Next, {c}.", 0.3), ("Now {c}.", 0.4), ("In this document, {c}.", 0.4), ("Can we {c}?", 0.4),
]
_FRAME_OPENERS = re.compile(r"^(please,? |could you (please )?|can you (please )?|would you (please )?|kindly )", re.I)

QUOTE_STYLES = [("'", "'", 5), ('"', '"', 3), ("“", "”", 1.5), ("‘", "’", 0.3), ("", "", 1.5)]
_QUOTED = re.compile(r"'(\{\w+\}…?)'")


def _weighted(rng: random.Random, options: list[tuple]) -> tuple:
    return rng.choices(options, weights=[o[-1] for o in options])[0]


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:1].isupper() and not text[1:2].isupper() else text


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def split_request(template: str) -> tuple[str, str] | None:
    """(imperative core, tail) of a template that asks with an imperative, or None.

    "Could you add a link on '{phrase}'? The address is {url}" -> ("add a link on '{phrase}'", "The address is {url}").
    The core keeps no frame and no closing punctuation; the tail is a following sentence, kept as it is.
    """
    text = _FRAME_OPENERS.sub("", template.strip())
    tail = ""
    match = re.search(r"[?.!] (?=[A-Z{'])", text)
    if match:
        text, tail = text[: match.start()], text[match.end():]
    text = text.rstrip(" .?!")
    first = text.split(" ", 1)[0].lower()
    if first not in IMPERATIVE_VERBS:
        return None
    return _lower_first(text), tail


def _swap_reference(template: str, params: dict, rng: random.Random, held_key: str) -> str:
    for group in TARGET_REFERENCES:
        if not set().union(*map(_fields, group)) <= set(params):
            continue
        present = [alt for alt in group if alt in template]
        if not present:
            continue
        current = max(present, key=len)  # the most specific alternative found
        options = [alt for alt in group if not _contains(held_key, alt)]
        if options:
            return template.replace(current, rng.choice(options), 1)
    if "phrase" in params and "paragraph" in params and "'{phrase}'" in template and rng.random() < 0.15:
        if not _contains(held_key, "in paragraph {paragraph}"):
            return template.replace("'{phrase}'", PHRASE_WITH_POSITION, 1)
    return template


def _swap_verb(core: str, rng: random.Random, held_key: str) -> str:
    first, _, rest = core.partition(" ")
    synonyms, fits = VERB_SYNONYMS.get(first.lower(), ([], ""))
    options = [v for v in synonyms if not _contains(held_key, v)]
    if not options or not rest or not re.search(fits, rest):
        return core
    return f"{rng.choice(options)} {rest}"


def _frame(core: str, tail: str, params: dict, rng: random.Random, held_key: str) -> str:
    frames = [f for f in FRAMES if not _contains(held_key, f[0].replace("{c}", "").replace("{C}", ""))]
    if core.endswith("}") and not tail:
        # A value ends the request: nothing but punctuation may follow it ("...: Reply by May., thanks" misreads).
        frames = [f for f in frames if re.search(r"\{[cC]\}[.?!]?$", f[0])]
    frame = _weighted(rng, frames)[0]
    if core.endswith("}") and frame[-1] in ".?!":
        # "... at https://example.org/x." invites copying the full stop into the value; people often leave it off.
        value = str(params.get(re.findall(r"\{(\w+)\}", core)[-1], ""))
        if not re.fullmatch(r"[\w ]+", value):
            frame = frame[:-1]
    text = frame.replace("{C}", _upper_first(core)).replace("{c}", core)
    if tail:
        if text[-1:] not in ".?!":
            text += "."
        text = f"{text} {tail}"
    return text


def _quote(template: str, params: dict, rng: random.Random) -> str:
    quoted = _QUOTED.findall(template)
    if not quoted:
        return template
    values = [str(params.get(q.strip("{}…"), "")) for q in quoted]
    styles = list(QUOTE_STYLES)
    if any("'" in v or "’" in v for v in values):
        styles = [s for s in styles if s[0] not in ("'", "‘")]
    if any(not re.fullmatch(r"[\w.@:/-]+", v) or q.endswith("…") for q, v in zip(quoted, values)):
        styles = [s for s in styles if s[0]]  # unquoted only where every value is one word
    left, right, _ = _weighted(rng, styles)
    return _QUOTED.sub(lambda m: f"{left}{m.group(1)}{right}", template)


def _case_and_punctuation(template: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.08:
        # Lower-case every word of the template's own text; the values are filled in later and keep their case.
        parts = re.split(r"(\{\w+\})", template)
        template = "".join(p if p.startswith("{") else p.lower() for p in parts)
    elif roll < 0.25:
        template = _lower_first(template) if not template.startswith("{") else template
    roll = rng.random()
    if template.endswith(".") and roll < 0.25:
        template = template[:-1]
    elif template.endswith("?") and roll < 0.1:
        template = template[:-1]
    return template


def vary(template: str, params: dict, rng: random.Random, held_out: str) -> str:
    """A reworded instruction for `template` filled with `params` (values verbatim); see the module docstring."""
    held_key = phrasing_key(held_out)
    text = _swap_reference(template, params, rng, held_key)
    split = split_request(text)
    if split is not None:
        core, tail = split
        if rng.random() < 0.4:
            core = _swap_verb(core, rng, held_key)
        text = _frame(core, tail, params, rng, held_key)
    text = _quote(text, params, rng)
    text = _case_and_punctuation(text, rng)
    instruction = " ".join(text.format(**params).split())
    if phrasing_key(instruction) == phrasing_key(held_out.format(**params)):
        return template.format(**params)
    return instruction


# -- measuring ------------------------------------------------------------------------------------------------------


def wording(instruction: str, params: dict) -> str:
    """The instruction with its argument values masked ("Make <phrase> <size> pt"), so that two requests count as
    one wording when only their values differ. Quotes and case are normalised away too."""
    values = sorted(((str(v), k) for k, v in params.items() if isinstance(v, (str, int, float)) and str(v)),
                    key=lambda kv: -len(kv[0]))
    for value, key in values:
        pattern = rf"(?<![\w.]){re.escape(value)}(?![\w])" if re.fullmatch(r"[\d.]+", value) else re.escape(value)
        instruction = re.sub(pattern, f"<{key}>", instruction)
    parts = [part if part.startswith("<") else phrasing_key(part) for part in re.split(r"(<\w+>)", instruction)]
    return " ".join(part for part in parts if part)


def argument_keys(phrasings: list[str]) -> set[str]:
    """The parameters every phrasing of a family names: the request's arguments (not its target references)."""
    return set.intersection(*({name for _, name, _, _ in string.Formatter().parse(p) if name} for p in phrasings))


def variety(instances: list, phrasings_of) -> dict:
    """Per family: instances, distinct instructions, distinct wordings and distinct values of each argument.

    `phrasings_of(family_id)` gives the family's phrasings (tasks.base.REGISTRY[f].phrasings)."""
    by_family: dict[str, list] = {}
    for instance in instances:
        by_family.setdefault(instance.family, []).append(instance)
    out = {}
    for family, items in by_family.items():
        keys = sorted(argument_keys(phrasings_of(family)))
        out[family] = {
            "instances": len(items),
            "instructions": len({i.instruction for i in items}),
            "wordings": len({wording(i.instruction, i.params) for i in items}),
            "argument_values": {k: len({str(i.params[k]) for i in items}) for k in keys},
        }
    return out
