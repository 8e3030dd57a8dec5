"""Argument values for requests: lengths, names, addresses and short texts drawn from generators.

A model trained on a handful of fixed values learns to replay them; drawn from wide ranges, the value in a request
is new to it often enough that it has to copy it from the request. Names, places, companies and domains come from
Faker's English providers (pinned in pyproject.toml, so a seed gives the same values on every machine), seeded
from the instance's own random stream, so parameters stay a function of (family, template, seed).

Text the reference types with the keyboard (comments, footnotes, sentences, header lines) must survive xdotool:
no doubled letters (one of a pair is dropped now and then under load), printable ASCII only, no braces (the keys
syntax) and no quotes.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Callable

from faker import Faker

# Nouns of office documents, for texts that read like a reviewer's or an author's (Faker has no such provider).
NOUNS = [
    "agenda", "budget", "chart", "date", "deadline", "estimate", "figure", "forecast", "heading", "invoice", "list",
    "minute", "number", "order", "outline", "plan", "price", "quote", "ratio", "record", "result", "sample", "section",
    "source", "summary", "survey", "table", "target", "title", "total", "trend", "venue", "wording", "draft", "claim",
    "timeline", "headcount", "margin", "forecast", "contract", "policy", "notice", "schedule", "report", "memo",
]
DEPARTMENTS = ["Finance", "Legal", "Marketing", "Sales", "Research", "Operations", "Design", "Procurement", "Payroll",
               "Logistics", "Training", "Outreach", "Product", "Editorial", "Facilities"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


@lru_cache(maxsize=1)
def _faker() -> Faker:
    return Faker("en_US")


def faker(rng: random.Random) -> Faker:
    """The shared English Faker, reseeded from `rng` (so its draws follow the instance's stream)."""
    fake = _faker()
    fake.seed_instance(rng.getrandbits(32))
    return fake


def typeable(text: str) -> bool:
    """Text the env can type exactly: printable ASCII without doubled letters, braces, quotes or backslashes."""
    return (bool(text) and text.isascii() and text.isprintable() and not re.search(r"(?i)([a-z0-9 ])\1", text)
            and not re.search(r"[{}\"'`\\]", text))


def draw(rng: random.Random, make: Callable[[random.Random], str], ok: Callable[[str], bool],
         tries: int = 60) -> str | None:
    """The first value `make` draws that `ok` accepts, or None after `tries` draws."""
    for _ in range(tries):
        value = make(rng)
        if ok(value):
            return value
    return None


def fill(rng: random.Random, pattern: str) -> str:
    """A pattern with its slots filled: {first} {last} {person} {city} {company} {month} {day} {year} {noun}
    {dept} {n}."""
    fake = faker(rng)
    slots = {
        "first": fake.first_name, "last": fake.last_name, "person": lambda: f"{fake.first_name()} {fake.last_name()}",
        "city": fake.city, "company": lambda: fake.company().replace(",", ""), "month": fake.month_name,
        "day": lambda: rng.choice(DAYS), "year": lambda: str(rng.randint(2019, 2031)),
        "noun": lambda: rng.choice(NOUNS), "dept": lambda: rng.choice(DEPARTMENTS),
        "n": lambda: str(rng.choice([rng.randint(2, 99), rng.randint(100, 9999)])),
    }
    return re.sub(r"\{(\w+)\}", lambda m: slots[m.group(1)](), pattern)


def from_patterns(rng: random.Random, patterns: list[str], ok: Callable[[str], bool] = typeable) -> str:
    """A filled pattern that `ok` accepts. Every pattern list holds a pattern without slots that passes, the last
    resort after many rejected draws."""
    value = draw(rng, lambda r: fill(r, r.choice(patterns)), ok)
    if value is None:
        value = next(p for p in patterns if "{" not in p and ok(p))
    return value


# -- lengths ------------------------------------------------------------------------------------------------------


def length_cm(rng: random.Random, low: float, high: float, exclude: tuple[float, ...] = ()) -> str:
    """'1.35 cm': a length in [low, high] in steps of 0.05 cm (mostly whole tenths, as people write them)."""
    step = rng.choice([0.1, 0.1, 0.1, 0.5, 0.05])
    while True:
        value = round(round(rng.uniform(low, high) / step) * step, 2)
        if low <= value <= high and all(abs(value - x) > 1e-9 for x in exclude):
            return f"{value:g} cm"


# -- short texts ----------------------------------------------------------------------------------------------------

COMMENT_PATTERNS = [
    "Please check this with {first}.", "Can {first} confirm the {noun}?", "Is this {noun} right for {city}?",
    "Source for this {noun}?", "Update this before {day}.", "Ask {person} about this.",
    "This {noun} is wrong, I think.",
    "Move this to the {noun} section?", "Confirm with {company} before sending.", "Numbers from {month} {year}?",
    "Reword this, please.", "{first}: can you verify this?", "Not sure about this {noun}.", "Cite the {noun} here.",
    "Check against the {month} {noun}.", "Does {dept} agree with this?", "Spell out the {noun} in full.",
    "Is this the final {noun}?", "Add the {year} figures here.", "{first} wants a shorter version.",
    "Please verify this claim.", "Consider rewording this.",
]
NOTE_PATTERNS = [
    "Source: {company}, {year}.", "Figures as of {month} {year}.", "Based on data from {city}.",
    "See the {noun} for details.", "Provided by {person}.", "Estimate; the final {noun} is due in {month}.",
    "Subject to approval by {dept}.", "Survey of {n} people in {year}.", "Revised on {day} by {first}.",
    "Compare the {month} {year} edition.", "Excludes the {city} branch.", "Data: {dept} department, {year}.",
    "Figures are provisional.", "Source: internal records.",
]
SENTENCE_PATTERNS = [
    "{person} leads this work from {month}.", "The {noun} is reviewed again in {month}.",
    "More details are due by {day}.", "The figures were checked by {first}.", "Questions go to {person}.",
    "This also applies to the {city} site.", "A final {noun} is due in {month} {year}.",
    "{company} has endorsed this plan.", "The next update comes out on {day}.", "The {noun} is on track.",
    "We expect the {noun} by the end of {month}.", "{first} from {dept} is the contact for this.",
    "Everyone is invited to reply.", "No changes are expected for now.",
]
HEADER_PATTERNS = [
    "{company}", "Draft {n}", "Prepared for {company}", "{dept} {noun} {year}", "Internal: {dept}", "{city} office",
    "{month} {year}", "Working copy for {first}", "{dept} department", "Confidential: {dept} only",
    "Version {n}", "{company} | {year}", "Owner: {person}", "Review by {day}", "Issued {month} {year}",
    "Confidential", "Working copy",
]


def comment_text(rng: random.Random) -> str:
    return from_patterns(rng, COMMENT_PATTERNS)


def note_text(rng: random.Random) -> str:
    return from_patterns(rng, NOTE_PATTERNS)


def sentence_text(rng: random.Random) -> str:
    return from_patterns(rng, [p for p in SENTENCE_PATTERNS if p.endswith(".")])


def header_text(rng: random.Random, ok: Callable[[str], bool]) -> str:
    """A header or footer line; `ok` adds the document's own conditions (e.g. not already in the body)."""
    value = draw(rng, lambda r: fill(r, r.choice(HEADER_PATTERNS)), lambda t: typeable(t) and ok(t))
    if value is None:
        value = next(p for p in HEADER_PATTERNS if "{" not in p and typeable(p) and ok(p))
    return value


# -- names and addresses ----------------------------------------------------------------------------------------


def slug(text: str, sep: str = "-") -> str:
    return re.sub(r"[^a-z0-9]+", sep, text.lower()).strip(sep)


def replacement_word(rng: random.Random, ok: Callable[[str], bool]) -> str | None:
    """A word or two to write instead of another (find and replace): names, places, nouns, departments."""
    def make(r: random.Random) -> str:
        fake = faker(r)
        kind = r.randrange(6)
        if kind == 0:
            return fake.last_name()
        if kind == 1:
            return fake.city()
        if kind == 2:
            return r.choice(NOUNS)
        if kind == 3:
            return r.choice(DEPARTMENTS)
        if kind == 4:
            return f"{fake.first_name()} {fake.last_name()}"
        return fake.word()
    return draw(rng, make, ok)


def url_for(rng: random.Random, phrase: str) -> str:
    """A web address: a generated domain and a path that is the phrase's slug or unrelated to it."""
    fake = faker(rng)
    host = rng.choice([fake.domain_name(), f"www.{fake.domain_name()}", f"{fake.domain_word()}.example.org",
                       f"intranet.{fake.domain_name()}", "example.org", "example.com"])
    words = slug(phrase) or "page"
    path = rng.choice([words, f"{rng.choice(NOUNS)}/{words}", fake.uri_path(deep=rng.randint(1, 2)),
                       f"docs/{words}.html", f"{rng.randint(2019, 2031)}/{words}", f"{fake.slug()}"])
    return f"{rng.choice(['https', 'https', 'http'])}://{host}/{path}"


def bookmark_name(rng: random.Random, phrase: str) -> str:
    """A bookmark name as people choose them: from the phrase or not, snake_case or CamelCase, with or without a
    number. Only letters, digits and underscores (Writer refuses some punctuation in bookmark names)."""
    fake = faker(rng)
    words = slug(phrase, "_").split("_")
    style = rng.randrange(6)
    if style == 0:
        name = "_".join(words)
    elif style == 1:
        name = "".join(w.capitalize() for w in words)
    elif style == 2:
        name = f"{rng.choice(['ref', 'sec', 'bm', 'mark', 'see'])}_{words[0]}"
    elif style == 3:
        name = f"{rng.choice(NOUNS)}{rng.randint(1, 99)}"
    elif style == 4:
        name = f"{fake.last_name().lower()}_{rng.choice(NOUNS)}"
    else:
        name = f"{words[0].capitalize()}{rng.randint(1, 9)}"
    return re.sub(r"\W", "", name)[:30] or "mark"


def file_stem(rng: random.Random, kind: str) -> str:
    """A file name without extension: letters, digits, '_' and '-' only."""
    fake = faker(rng)
    parts = [kind, rng.choice([fake.word(), fake.last_name().lower(), f"v{rng.randint(2, 9)}",
                               str(rng.randint(2019, 2031)), fake.month_name().lower(), rng.choice(NOUNS),
                               rng.choice(["final", "copy", "shared", "review"])])]
    if rng.random() < 0.3:
        parts.append(rng.choice([str(rng.randint(1, 30)), f"v{rng.randint(1, 5)}", fake.first_name().lower()]))
    if rng.random() < 0.2:
        parts = parts[1:] + [kind]
    return rng.choice(["_", "-"]).join(slug(p, "") for p in parts if slug(p, ""))
