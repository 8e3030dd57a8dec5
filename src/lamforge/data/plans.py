"""Phase-1 task-plan pairs mined from LibreOffice's installed help.

The paper builds its task-plan data from application documentation; our analog is the HTML help that Debian's
`libreoffice-help-en-us` installs. Three layouts in that help carry a task and its plan:

- `howto_list`: an ordered list (`<ol>`) of steps under a cue, the cue being the nearest "To ..." intro paragraph
  or, failing that, the heading above the list ("To Insert a Manual Page Break", "Defining Borders for Characters").
- `heading_paragraphs`: a "To ..." heading followed by plain step paragraphs instead of a list.
- `inline_sentence`: a sentence "To <task>, <steps>." anywhere in the text ("To open the Navigator, press F5.").

Raw pairs then go through named cleaning rules, each counted (CleaningReport), in this order:

1. pages of other applications (Calc, Impress, Draw, Base, Math, Basic, Chart) are dropped; the help is still read
   whole so that this count is known;
2. text is normalised: platform and application switches resolved for Linux and Writer, icons and notes left out,
   menu paths made canonical, "you can"/"then" fillers stripped;
3. step rules: descriptive sentences are trimmed out of a step; a step that is not actionable, ends in a colon (its
   example block is lost), points at "this dialog"/"here", is too short or too long is dropped;
4. pair rules, first match counts: no steps left, non-English, another application mentioned, something outside
   the application needed (browser, terminal, installer), task too short or too long, task not actionable (it does
   not start with a verb), task vague ("Do so", "Use this option"), too many steps;
5. exact duplicates of the normalised task, then near duplicates (word-by-word rapidfuzz, see PlansConfig).

Canonical menu path: "Choose A > B > C". "Choose A - B", "Go to A - B", "Menu A - B", "A ▸ B", "A → B" and "A > B"
all become that form; a trailing "..." on an item is dropped because the live menu is matched fuzzily anyway.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from lamforge.jsonl import write_jsonl
from lamforge.records import PlanPair

DEFAULT_HELP_DIR = Path("/usr/share/libreoffice/help/en-US")
WRITER_MODULES = ("swriter", "shared")


@dataclass
class PlansConfig:
    """How task-plan pairs are mined from the help and cleaned."""

    help_dir: Path = DEFAULT_HELP_DIR
    """The language folder of the installed help (the one holding `text/`)."""
    modules: tuple[str, ...] | None = None
    """Help modules (folders under `text/`) to read; None reads all so that other-app drops are counted."""
    keep_modules: tuple[str, ...] = WRITER_MODULES
    """Modules whose pages can yield Writer tasks; pairs from other modules are dropped as `other_app_page`."""
    min_step_words: int = 2
    """A step with fewer words is dropped ("OK." alone is not a step; "Click OK." is)."""
    max_step_words: int = 50
    """A step with more words is dropped: it is an explanation, not one action."""
    min_task_words: int = 2
    max_task_words: int = 25
    max_plan_steps: int = 15
    """Plans with more steps are long walkthroughs of several tasks; the paper drops over-long samples."""
    near_duplicate_candidate: float = 80.0
    """rapidfuzz token_sort_ratio (0-100) of two normalised tasks above which they are checked word by word."""
    near_duplicate_word_threshold: float = 85.0
    """Two tasks are near duplicates when every word of each matches a word of the other with rapidfuzz ratio >= this.
    85 pairs inflections ("page"/"pages" 89, "manual"/"manually" 86, "section"/"sections" 93) and word order
    ("Enter a manual line break" / "Manually enter a line break"), but keeps mirrored tasks apart ("on"/"off",
    "header"/"footer", "start"/"stop", "overlining"/"underlining" all score below 80). A whole-string ratio cannot
    do this: "Add or remove headers ..." and "Add or remove footers ..." score 94."""
    min_english_ratio: float = 0.95
    """Share of ASCII among the letters of task and plan below which a pair counts as non-English."""
    test_fraction: float = 0.1
    """Share of help pairs held out (by task_id hash) for the phase-1 plan metrics."""


# ---------------------------------------------------------------------------------------------------------------
# Records of the mining.


@dataclass
class RawPair:
    task: str
    steps: list[str]
    source_page: str  # relative to the help dir, e.g. text/swriter/guide/page_break.html
    pattern: str  # howto_list | heading_paragraphs | inline_sentence
    module: str
    title_case: bool = False  # the task came from a Title Case heading
    to_cue: bool = False  # the task came from a "To ..." purpose clause, so it starts with a verb


@dataclass
class CleaningReport:
    """Counts at each cleaning step; `stages` is ordered, each entry (stage, pairs left, what it dropped)."""

    pages_read: int = 0
    raw_by_pattern: Counter = field(default_factory=Counter)
    raw_by_module: Counter = field(default_factory=Counter)
    stages: list[tuple[str, int, int]] = field(default_factory=list)
    step_counts: Counter = field(default_factory=Counter)
    drops: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # one dropped task per reason, to judge each rule

    def drop(self, reason: str, example: str) -> None:
        self.drops[reason] += 1
        self.examples.setdefault(reason, example)

    def stage(self, name: str, left: int, dropped: int = 0) -> None:
        self.stages.append((name, left, dropped))

    @property
    def final(self) -> int:
        return self.stages[-1][1] if self.stages else 0

    def to_dict(self) -> dict:
        return {
            "pages_read": self.pages_read,
            "raw_by_pattern": dict(sorted(self.raw_by_pattern.items())),
            "raw_by_module": dict(sorted(self.raw_by_module.items())),
            "stages": [{"stage": s, "pairs": n, "dropped": d} for s, n, d in self.stages],
            "steps": dict(self.step_counts),
            "drops": dict(self.drops),
            "examples": dict(self.examples),
            "final": self.final,
        }


class HelpNotFoundError(FileNotFoundError):
    """The help directory is missing or holds no HTML pages."""


# ---------------------------------------------------------------------------------------------------------------
# Reading a page: the help's HTML is regular enough that lxml's HTML parser plus a few class names suffice.

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Switch cases the help shows on Linux in Writer; the help's own JavaScript picks them the same way.
PREFERRED_CASES = {"UNIX", "WRITER"}
NOTE_CLASSES = {"note", "tip", "warning"}
DROP_CLASSES = {"noteicon", "relatedtopics", "related", "relatedbody", "debug", "iconcell", "iconimage"}


@dataclass
class Block:
    kind: str  # heading | para | list | bullets | note | howtoget
    text: str = ""
    items: list[str] = field(default_factory=list)


def _classes(el) -> set[str]:
    return set((el.get("class") or "").split())


def _resolve_switches(root) -> None:
    """Keep one case of each platform/application switch: Linux, Writer, else the default case."""
    for switch in root.xpath(".//*[contains(@class, 'switch')]"):
        if not _classes(switch) & {"switch", "switchinline"}:
            continue
        cases = [c for c in switch if isinstance(c.tag, str)]
        keep = next((c for c in cases if _classes(c) & PREFERRED_CASES), None)
        if keep is None:
            keep = next((c for c in cases if (c.get("id") or "").startswith("default")), None)
        for case in cases:
            if case is not keep:
                case.drop_tree()


def _prune(root) -> None:
    for el in root.xpath(".//img | .//script | .//style | .//meta"):
        el.drop_tree()
    for el in root.xpath(".//*[@class]"):
        if _classes(el) & DROP_CLASSES and el.getparent() is not None:
            el.drop_tree()


def _text(el, skip=lambda e: False) -> str:
    """Visible text of an element, skipping subtrees for which `skip` is true; whitespace collapsed."""
    parts: list[str] = []

    def visit(node) -> None:
        if node.text:
            parts.append(node.text)
        for child in node:
            if isinstance(child.tag, str) and not skip(child):
                if child.tag == "br":
                    parts.append(" ")
                visit(child)
            if child.tail:
                parts.append(child.tail)

    visit(el)
    return " ".join("".join(parts).split())


def _is_note(el) -> bool:
    return isinstance(el.tag, str) and bool(_classes(el) & NOTE_CLASSES)


def _blocks(el) -> Iterator[Block]:
    """The page as a flat sequence of headings, paragraphs, lists and notes, in reading order."""
    for child in el:
        if not isinstance(child.tag, str):
            continue
        classes = _classes(child)
        if child.tag in HEADINGS:
            yield Block("heading", _text(child))
        elif child.tag in ("ol", "ul"):
            items, notes = [], []
            for li in child:
                if not isinstance(li.tag, str) or li.tag != "li":
                    continue
                items.append(_text(li, skip=_is_note))
                notes += [_text(n) for n in li.iter() if n is not li and _is_note(n)]
            yield Block("list" if child.tag == "ol" else "bullets", items=items)
            for note in notes:
                yield Block("note", note)
        elif "howtoget" in classes:
            # "To access this command..." lists alternative ways in, not the steps of the heading's task.
            yield Block("howtoget", _text(child))
        elif classes & NOTE_CLASSES:
            yield Block("note", _text(child))
        elif child.tag == "p":
            yield Block("para", _text(child))
        else:
            yield from _blocks(child)


def read_page(path: Path) -> list[Block]:
    """The blocks of one help page's content area."""
    import lxml.html  # python-docx already depends on lxml; it parses a page in well under a millisecond

    root = lxml.html.parse(str(path)).getroot()
    area = root.get_element_by_id("DisplayArea", None)
    if area is None:
        return []
    _resolve_switches(area)
    _prune(area)
    return list(_blocks(area))


# ---------------------------------------------------------------------------------------------------------------
# Extracting raw pairs from blocks.

# Verbs of acting on a UI. STRONG ones are imperative wherever they stand in a step; WEAK ones only at the start of
# a clause ("The dialog will open." is not an action; "Open the Navigator." is).
STRONG_VERBS = {
    "choose", "click", "double-click", "right-click", "ctrl-click", "shift-click", "press", "type", "drag",
    "select", "enter", "tick", "uncheck", "deselect", "clear", "mark", "unmark",
}
WEAK_VERBS = {
    "accept", "activate", "add", "adjust", "align", "anchor", "apply", "arrange", "assign", "attach", "browse",
    "change", "check", "close", "collapse", "confirm", "connect", "convert", "copy", "create", "crop", "cut",
    "deactivate", "decrease", "define", "delete", "disable", "display", "drop", "edit", "enable", "exclude", "exit",
    "expand", "export", "extend", "fill", "find", "flip", "follow", "format", "give", "go", "group", "hide",
    "highlight", "hold", "hover", "import", "include", "increase", "indent", "insert", "keep", "leave", "link",
    "load", "locate", "lock", "make", "merge", "modify", "move", "name", "navigate", "open", "paste", "place",
    "point", "position", "print", "protect", "put", "quit", "record", "reduce", "release", "remove", "rename",
    "repeat", "replace", "reset", "resize", "restart", "return", "rotate", "run", "save", "scroll", "search", "send",
    "set", "shift", "show", "sign", "sort", "specify", "split", "start", "switch", "toggle", "turn", "underline",
    "ungroup", "unlink", "unlock", "unprotect", "update", "use", "wrap", "write", "zoom",
}
UI_VERBS = STRONG_VERBS | WEAK_VERBS
UI_ELEMENTS = {"menu", "list", "toolbar", "bar", "dialog", "window", "box", "tab", "button", "icon", "field"}
# Words that start "To ..." phrases without being an action: "To the left", "To be able to", "To do so".
NOT_VERBS = {"be", "the", "a", "an", "this", "that", "these", "those", "which", "what", "do", "get", "all", "my",
             "your", "its", "their", "top", "bottom", "left", "right", "page", "paragraph", "character", "frame"}
LEAD_FILLERS = re.compile(
    r"^(?:(?:and\s+)?then|first|next|finally|simply|just|now|also|optionally|please|"
    r"you\s+(?:can|must|should|need\s+to|have\s+to)(?:\s+also)?)\s*,?\s+",
    re.IGNORECASE,
)


def strip_fillers(text: str) -> str:
    """"you must first assign ..." -> "assign ..."."""
    while (stripped := LEAD_FILLERS.sub("", text)) != text:
        text = stripped
    return text


CLAUSE_START = re.compile(r"(?:^|[,;:]\s*|\bthen\s+|\band\s+|\bor\s+)([A-Za-z][A-Za-z-]*)")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def _words(text: str) -> list[str]:
    return WORD.findall(text)


def is_actionable(step: str) -> bool:
    """True if the step asks the user to do something in the UI."""
    if any(w.lower() in STRONG_VERBS for w in _words(step)):
        return True
    return any(m.group(1).lower() in UI_VERBS for m in CLAUSE_START.finditer(step))


_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|etc|approx|vs|No)\.", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")


def split_sentences(text: str) -> list[str]:
    protected = _ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "\0"), text)
    return [s.replace("\0", ".").strip() for s in _SENTENCE_END.split(protected) if s.strip()]


_TO_CUE = re.compile(r"^To\s+(?P<task>[a-z].*)$", re.DOTALL)
# ", do the following:" / ", proceed as follows:" / ", follow these steps:" at the end of an intro paragraph
_INTRO_TAIL = re.compile(
    r"[,:]?\s*(?:(?:please\s+)?(?:do|proceed\s+as)\s+(?:the\s+)?follow(?:s|ing)?|follow\s+these\s+steps|as\s+follows)?"
    r"\s*[.:]*$",
    re.IGNORECASE,
)
_INLINE_SPLIT = re.compile(
    r"(?:,\s*|\s+)(?:and\s+)?then\s+|;\s*|,?\s+and\s+(?=(?:click|choose|press|select|enter|type|drag|open)\b)"
)


def _intro_task(text: str) -> str | None:
    """"To insert a table, do the following:" -> "insert a table"; None if the text is not such an intro."""
    match = _TO_CUE.match(text)
    if not match or not text.rstrip().endswith(":") and not re.search(r"follow", text):
        return None
    task = _INTRO_TAIL.sub("", match.group("task")).strip()
    return task if "," not in task else None


_TO_HEADING = re.compile(r"^(?:How\s+)?To\s+", re.IGNORECASE)


def _inline_pair(sentence: str) -> tuple[str, list[str]] | None:
    """"To X, choose A, and then click B." -> ("X", ["choose A", "click B"])."""
    match = _TO_CUE.match(sentence)
    if not match:
        return None
    body = match.group("task")
    # The task ends at the first comma or colon after which an instruction begins.
    for sep in re.finditer(r"[,:]\s*", body):
        task = body[: sep.start()].strip()
        rest = strip_fillers(body[sep.end():])
        rest = re.split(r";\s*(?:to|if|or|otherwise)\b", rest)[0]
        first = _words(rest[:30])
        if len(_words(task)) >= 2 and first and first[0].lower() in UI_VERBS:
            steps = [s.strip(" ,.;") for s in _INLINE_SPLIT.split(rest) if s and s.strip(" ,.;")]
            return task, steps
    return None


@dataclass
class _Cue:
    """What the next ordered list is the plan of."""

    task: str
    title_case: bool  # a heading, so probably Title Case
    to_cue: bool  # "To ..." heading or intro paragraph
    pair: RawPair | None = None  # the pair already made from it, which a list continued after a note extends


def extract_pairs(blocks: list[Block], source_page: str, module: str) -> list[RawPair]:
    """Raw task-plan pairs of one page, in reading order."""
    pairs: list[RawPair] = []

    def add(task: str, steps: list[str], pattern: str, title_case: bool, to_cue: bool) -> RawPair | None:
        if not task or not steps:
            return None
        pairs.append(RawPair(task, steps, source_page, pattern, module, title_case, to_cue))
        return pairs[-1]

    def add_inline(text: str) -> bool:
        found = False
        for sentence in split_sentences(text):
            if (inline := _inline_pair(sentence)) is not None:
                add(inline[0], inline[1], "inline_sentence", title_case=False, to_cue=True)
                found = True
        return found

    cue: _Cue | None = None
    to_heading: str | None = None  # a "To ..." heading whose steps are plain paragraphs
    heading_steps: list[str] = []

    def flush_heading() -> None:
        nonlocal to_heading, heading_steps
        if to_heading and heading_steps:
            add(to_heading, heading_steps, "heading_paragraphs", title_case=True, to_cue=True)
        to_heading, heading_steps = None, []

    for block in blocks:
        if block.kind == "heading":
            flush_heading()
            is_to = bool(_TO_HEADING.match(block.text))
            task = _TO_HEADING.sub("", block.text.strip().rstrip(":."))
            cue = _Cue(task, title_case=True, to_cue=is_to)
            to_heading = task if is_to else None
        elif block.kind == "list":
            if cue is not None:
                if cue.pair is not None:
                    cue.pair.steps += block.items
                else:
                    cue.pair = add(cue.task, list(block.items), "howto_list", cue.title_case, cue.to_cue)
            for item in block.items:  # list items often carry inline pairs of their own
                add_inline(item)
            to_heading, heading_steps = None, []
        elif block.kind in ("para", "note", "bullets"):
            for text in block.items if block.kind == "bullets" else [block.text]:
                intro = _intro_task(text) if block.kind == "para" else None
                if intro:
                    flush_heading()
                    cue = _Cue(intro, title_case=False, to_cue=True)
                elif not add_inline(text) and to_heading and block.kind == "para":
                    heading_steps += split_sentences(text)
    flush_heading()
    return pairs


# ---------------------------------------------------------------------------------------------------------------
# Normalising text.

_MENU_SEP = re.compile(r"(?<=\S)\s+(?:-|–|—|▸|►|→|»|>)\s+(?=[A-Z0-9])")
_ELLIPSIS_IN_PATH = re.compile(r"(?:\.\.\.|…)(?= > )|(?<=> )([A-Z0-9][^>.,;:]{0,40}?)(?:\.\.\.|…)(?=\s|$|[.,;:)])")
_MENU_LEAD = re.compile(
    r"\b(?:([Gg])o\s+to|([Ss])elect|([Oo])pen|([Cc])lick|([Cc])hoose|([Uu])se)\s+(?:the\s+)?(?:menu\s+(?:command\s+)?)?"
    r"(?=[A-Z][\w&'/ ]*? > )"
)
# A step that starts with a path has no verb: "Format > Paragraph", "Menu Format > Paragraph", "Insert > Table".
_BARE_PATH = re.compile(r"^(?:[Mm]enu\s+)?(?=(?P<first>[A-Z][\w&']*)(?P<more>(?: [A-Z][\w&']*)*) > )")


def _menu_separator(match: re.Match) -> str:
    # Only a dash between two capitalised words is a menu separator; "text - for example" is prose.
    before = match.string[: match.start()].rsplit(" ", 1)[-1].lstrip("\"'(“‘")
    return " > " if before[:1].isupper() or before[:1].isdigit() else match.group(0)


def normalise_menu_paths(text: str) -> str:
    """"Go to Format - Paragraph - Indents & Spacing tab" -> "Choose Format > Paragraph > Indents & Spacing tab"."""
    text = _MENU_SEP.sub(_menu_separator, text)
    text = _ELLIPSIS_IN_PATH.sub(lambda m: m.group(1) or "", text)
    text = _MENU_LEAD.sub(lambda m: ("Choose " if next(g for g in m.groups() if g).isupper() else "choose "), text)
    bare = _BARE_PATH.match(text)
    if bare and (not bare.group("more") or bare.group("first").lower() not in UI_VERBS):
        text = "Choose " + text[bare.end():]
    return text


def normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u00a0", " ").replace("“", '"').replace("”", '"').replace("’", "'")
    text = " ".join(text.split())
    text = re.sub(r"\s+([.,;:!?)])", r"\1", text)
    text = re.sub(r"\(\s+", "(", text)
    return text


def normalise_step(step: str) -> str:
    step = normalise_menu_paths(normalise_text(step))
    step = strip_fillers(step).strip(" ,;")
    if step and step[0].islower():
        step = step[0].upper() + step[1:]
    if step and step[-1] not in ".!?:)\"'":
        step += "."
    return step


# ---------------------------------------------------------------------------------------------------------------
# Tasks: gerund headings to imperatives, Title Case to sentence case, using statistics of the help's own text.


@dataclass
class Vocabulary:
    verbs: set[str]  # words seen after "To " in purpose clauses
    lower: Counter  # mid-sentence lowercase occurrences by word
    upper: Counter  # mid-sentence capitalised occurrences by word

    @classmethod
    def from_pairs_and_text(cls, raw: list[RawPair], texts: Iterable[str]) -> "Vocabulary":
        verbs = set(UI_VERBS)
        for pair in raw:
            # A purpose clause "To promote a heading" starts with a verb; one-word ones are option names
            # ("Anchor: To Page"), so they teach nothing.
            if pair.to_cue and len(words := _words(pair.task)) >= 2:
                verbs.add(words[0].lower())
        verbs -= NOT_VERBS
        lower, upper = Counter(), Counter()
        for text in texts:
            for sentence in split_sentences(text):
                for word in _words(sentence)[1:]:
                    (upper if word[0].isupper() else lower)[word.lower()] += 1
        return cls(verbs, lower, upper)

    def imperative(self, word: str) -> str | None:
        """"Creating" -> "create", "Setting" -> "set", "Adding" -> "add"; None if no known verb matches."""
        w = word.lower()
        if not w.endswith("ing") or len(w) < 5:
            return None
        stem = w[:-3]
        for candidate in (stem, stem + "e", stem[:-1]):
            if candidate in self.verbs:
                return candidate
        return None

    def sentence_case(self, text: str) -> str:
        words = text.split(" ")
        out = []
        for i, word in enumerate(words):
            bare = re.sub(r"\W", "", word)
            if i == 0 or not bare or not bare[0].isupper() or (len(bare) > 1 and not bare[1:].islower()):
                out.append(word)  # acronyms and CamelCase UI names (AutoText, PDF) keep their case
            elif self.upper[bare.lower()] > self.lower[bare.lower()]:
                out.append(word)
            else:
                out.append(word[0].lower() + word[1:])
        return " ".join(out)

    def task_text(self, pair: RawPair) -> str:
        task = normalise_text(pair.task).rstrip(" .:,;")
        task = _INTRO_TAIL.sub("", task).strip()
        words = task.split(" ")
        # "Inserting and Deleting Page Breaks" -> "Insert and delete page breaks"
        for i, word in enumerate(words):
            if i == 0 or words[i - 1].lower() in ("and", "or", "&") or words[i - 1].endswith(","):
                if (verb := self.imperative(re.sub(r"\W", "", word))) is not None:
                    words[i] = verb
        task = " ".join(words)
        capitalised = [w for w in task.split() if len(w) > 3 and w[0].isalpha()]
        if pair.title_case and capitalised and sum(w[0].isupper() for w in capitalised) / len(capitalised) >= 0.5:
            task = self.sentence_case(task)
        task = normalise_menu_paths(task)
        return task[:1].upper() + task[1:]

    def is_actionable_task(self, task: str) -> bool:
        words = _words(task)
        # "Format Menu" or "Filter List" is the heading of a UI element's page: the verb is really a noun.
        if len(words) == 2 and words[1].lower() in UI_ELEMENTS:
            return False
        return bool(words) and words[0].lower() in self.verbs


# ---------------------------------------------------------------------------------------------------------------
# Cleaning rules. Each returns the reason a pair is dropped, or None.

OTHER_APP = re.compile(
    r"\b(?:Calc|Impress|LibreOffice\s+(?:Draw|Base|Math|Chart)|Base|spreadsheets?|slides?|slide\s+show|"
    r"presentations?|worksheets?|sheet\s+(?:names?|tabs?)|cells?\s+[A-Z]{1,2}\d+|"  # "cell A5" is a Calc cell
    r"Basic\s+IDE|dialog\s+editor|Report\s+Builder|database\s+(?:file|window))\b"
)
# A task whose object is only a pronoun ("Do so", "Change it") needs the sentence before it to make sense.
VAGUE_WORDS = {"it", "so", "this", "that", "them", "these", "those", "one", "here", "there", "the", "a", "an", "same",
               "feature", "function", "option", "command", "icon", "dialog", "button", "setting", "settings"}
OUTSIDE_APP = re.compile(
    r"\b(?:command[ -]line|terminal|shell|Windows\s+(?:Start|Explorer|registry|Control\s+Panel)|registry|"
    r"web\s+browser|Thunderbird|Firefox|e-?mail\s+(?:client|program)|system\s+settings|installer|unopkg|"
    r"file\s+manager|desktop\s+environment|soffice)\b",
    re.IGNORECASE,
)


def normalise_key(task: str) -> str:
    """The task as compared for duplicates: lowercase, no punctuation, no articles."""
    words = re.findall(r"[a-z0-9]+", task.lower())
    return " ".join(w for w in words if w not in ("a", "an", "the"))


def make_task_id(task: str, source_page: str, prefix: str = "help") -> str:
    digest = hashlib.sha1(f"{normalise_key(task)}|{source_page}".encode()).hexdigest()[:12]
    return f"{prefix}-{digest}"


def english_ratio(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isascii() for c in letters) / len(letters) if letters else 1.0


# A step or task that points at "this dialog", "here" or "the following" (a table or code block the text lost) only
# makes sense on the page it came from.
CONTEXT_DEPENDENT = re.compile(
    r"\b(?:here|the\s+following|this\s+(?:dialog|page|tab|box|icon|area|field|window|list|option))\b", re.IGNORECASE
)


def clean_steps(steps: list[str], config: PlansConfig, counts: Counter) -> list[str]:
    """Normalise each step, trim descriptive sentences out of it, and drop steps that are not single actions."""
    kept = []
    for raw in steps:
        counts["steps_raw"] += 1
        text = normalise_text(raw)
        if normalise_menu_paths(text) != text:
            counts["menu_paths_normalised"] += 1
        sentences = split_sentences(text)
        actionable = [s for s in sentences if is_actionable(s)]
        if actionable and len(actionable) < len(sentences):
            counts["sentences_trimmed"] += len(sentences) - len(actionable)
        step = normalise_step(" ".join(actionable)) if actionable else ""
        n_words = len(step.split())
        if not actionable:
            counts["step_dropped:not_actionable"] += 1
        elif step.endswith(":"):
            counts["step_dropped:incomplete"] += 1  # "Enter the following line:" lost its example block
        elif CONTEXT_DEPENDENT.search(step):
            counts["step_dropped:context_dependent"] += 1
        elif n_words < config.min_step_words:
            counts["step_dropped:too_short"] += 1
        elif n_words > config.max_step_words:
            counts["step_dropped:too_long"] += 1
        else:
            kept.append(step)
            counts["steps_kept"] += 1
    return kept


def pair_drop_reason(pair: RawPair, task: str, steps: list[str], vocab: Vocabulary, config: PlansConfig) -> str | None:
    everything = " ".join([task, *steps])
    task_words = len(task.split())
    if pair.module not in config.keep_modules:
        return "other_app_page"
    if not steps:
        return "no_actionable_steps"
    if english_ratio(everything) < config.min_english_ratio:
        return "non_english"
    if OTHER_APP.search(everything):
        return "other_app_mentioned"
    if OUTSIDE_APP.search(everything):
        return "outside_application"
    if task_words < config.min_task_words:
        return "task_too_short"
    if task_words > config.max_task_words:
        return "task_too_long"
    if not vocab.is_actionable_task(task):
        return "task_not_actionable"
    if all(w.lower() in VAGUE_WORDS for w in _words(task)[1:]) or CONTEXT_DEPENDENT.search(task):
        return "task_vague"
    if len(steps) > config.max_plan_steps:
        return "too_many_steps"
    return None


def _same_words(a: list[str], b: list[str], word_threshold: float) -> bool:
    """Each word of one task pairs off with its own close match in the other: "Insert page numbers" ~ "Insert a page
    number" and "Manually enter a line break" ~ "Enter a manual line break", but not "Turn on" ~ "Turn off"."""
    from rapidfuzz import fuzz, process

    if not a or len(a) != len(b):
        return False
    left = list(b)
    for word in a:
        match = process.extractOne(word, left, scorer=fuzz.ratio, score_cutoff=word_threshold)
        if match is None:
            return False
        left.pop(match[2])
    return True


def deduplicate(pairs: list[PlanPair], config: PlansConfig) -> tuple[list[PlanPair], list[PlanPair], list[PlanPair]]:
    """Keep the first of each exact and near duplicate task; return (kept, exact duplicates, near duplicates)."""
    from rapidfuzz import fuzz, process

    seen: set[str] = set()
    unique: list[PlanPair] = []
    exact: list[PlanPair] = []
    for pair in pairs:
        key = normalise_key(pair.task)
        (exact if key in seen else unique).append(pair)
        seen.add(key)
    keys = [normalise_key(p.task) for p in unique]
    # The whole-task score only finds candidates cheaply; the word-by-word test decides.
    candidates = process.cdist(keys, keys, scorer=fuzz.token_sort_ratio, score_cutoff=config.near_duplicate_candidate,
                               workers=1)
    kept: list[PlanPair] = []
    near: dict[int, PlanPair] = {}
    for i, pair in enumerate(unique):
        if i in near:
            continue
        kept.append(pair)
        for j in candidates[i].nonzero()[0].tolist():
            if j > i and j not in near and _same_words(keys[i].split(), keys[j].split(),
                                                       config.near_duplicate_word_threshold):
                near[j] = unique[j]
    return kept, exact, [near[j] for j in sorted(near)]


# ---------------------------------------------------------------------------------------------------------------
# The whole pipeline.


def help_pages(config: PlansConfig) -> list[Path]:
    text_dir = Path(config.help_dir) / "text"
    if not text_dir.is_dir():
        raise HelpNotFoundError(
            f"no LibreOffice help at {config.help_dir} (expected a text/ folder); install libreoffice-help-en-us "
            "or pass --help-dir"
        )
    modules = config.modules or sorted(p.name for p in text_dir.iterdir() if p.is_dir())
    pages = sorted(p for m in modules for p in (text_dir / m).rglob("*.html"))
    if not pages:
        raise HelpNotFoundError(f"no HTML pages under {text_dir} for modules {', '.join(modules)}")
    return pages


def mine_help(config: PlansConfig, pages: Iterable[Path] | None = None) -> tuple[list[RawPair], list[str], int]:
    """Raw pairs of all pages, plus every paragraph text (for the vocabulary) and the page count."""
    root = Path(config.help_dir)
    raw: list[RawPair] = []
    texts: list[str] = []
    n_pages = 0
    for path in pages if pages is not None else help_pages(config):
        relative = path.relative_to(root).as_posix()
        module = relative.split("/")[1] if relative.startswith("text/") else ""
        blocks = read_page(path)
        n_pages += 1
        raw += extract_pairs(blocks, relative, module)
        texts += [b.text for b in blocks if b.kind == "para"] + [i for b in blocks for i in b.items]
    return raw, texts, n_pages


def _module_rank(pair: RawPair, config: PlansConfig) -> int:
    # Writer's own pages win duplicates over shared ones: their wording is the Writer-specific one.
    return config.keep_modules.index(pair.module) if pair.module in config.keep_modules else len(config.keep_modules)


def clean_pairs(raw: list[RawPair], texts: list[str], config: PlansConfig, report: CleaningReport) -> list[PlanPair]:
    vocab = Vocabulary.from_pairs_and_text(raw, texts)
    report.stage("raw pairs", len(raw))
    ordered = sorted(enumerate(raw), key=lambda ip: (_module_rank(ip[1], config), ip[1].source_page, ip[0]))
    kept: list[PlanPair] = []
    for _, pair in ordered:
        if pair.module not in config.keep_modules:
            report.drop("other_app_page", f"{pair.task} ({pair.source_page})")
            continue
        task = vocab.task_text(pair)
        steps = clean_steps(pair.steps, config, report.step_counts)
        reason = pair_drop_reason(pair, task, steps, vocab, config)
        if reason:
            report.drop(reason, f"{task} ({pair.source_page})")
            continue
        kept.append(PlanPair(task_id=make_task_id(task, pair.source_page), task=task, plan=steps,
                             source_page=pair.source_page, origin="help"))
    left = len(raw)
    for reason in ("other_app_page", "no_actionable_steps", "non_english", "other_app_mentioned",
                   "outside_application", "task_too_short", "task_too_long", "task_not_actionable",
                   "task_vague", "too_many_steps"):
        left -= report.drops[reason]
        report.stage(f"drop {reason}", left, report.drops[reason])
    unique, exact, near = deduplicate(kept, config)
    for reason, dropped in (("exact_duplicate", exact), ("near_duplicate", near)):
        report.drops[reason] = 0  # present in the report even when nothing is dropped
        for pair in dropped:
            report.drop(reason, f"{pair.task} ({pair.source_page})")
    report.stage("drop exact_duplicate", len(kept) - len(exact), len(exact))
    report.stage("drop near_duplicate", len(unique), len(near))
    return unique


def build_plans(
    config: PlansConfig | None = None, show_progress: bool = False, console=None
) -> tuple[list[PlanPair], CleaningReport]:
    """Mine, clean and deduplicate; the pairs come back in a stable order (Writer pages first, then shared)."""
    config = config or PlansConfig()
    pages = help_pages(config)
    if show_progress:
        from rich.progress import track

        pages = track(pages, description="Reading help pages", console=console, transient=True)
    raw, texts, n_pages = mine_help(config, pages)
    report = CleaningReport(pages_read=n_pages)
    report.raw_by_pattern.update(p.pattern for p in raw)
    report.raw_by_module.update(p.module for p in raw)
    return clean_pairs(raw, texts, config, report), report


# ---------------------------------------------------------------------------------------------------------------
# Splits and files.


def split_of(pair: PlanPair, test_fraction: float = 0.1) -> str:
    """'test' for a fixed share of help pairs, chosen by a hash of task_id; evolved pairs are always 'train'.

    Evolution only starts from train pairs, so nothing derived from a test task leaks into training.
    """
    if pair.origin != "help":
        return "train"
    bucket = int(hashlib.sha256(pair.task_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def split_paths(out: Path) -> dict[str, Path]:
    """plans.jsonl -> {'train': plans.train.jsonl, 'test': plans.test.jsonl}."""
    out = Path(out)
    return {s: out.with_name(f"{out.stem}.{s}{out.suffix or '.jsonl'}") for s in ("train", "test")}


def write_splits(pairs: list[PlanPair], out: Path, test_fraction: float) -> dict[str, int]:
    """The test split first: the pipeline takes the train file as the stage done, and a kill between the two used
    to leave the test file missing (LAM1's plan scores were then skipped without a word)."""
    paths = split_paths(out)
    return {
        split: write_jsonl(paths[split], (p for p in pairs if split_of(p, test_fraction) == split))
        for split in ("test", "train")
    }
