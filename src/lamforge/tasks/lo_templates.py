"""The `lo_templates` split: task families instantiated on LibreOffice's own templates, which lamforge did not write.

How a template is read: its spec is what LibreOffice itself reports for the opened copy (the copy's DocState), not
a parse of the ODF XML. Why: checkers compare the edited document's DocState with the spec, so the two must agree
exactly: which paragraphs Writer counts (frames, sections and line breaks change that), the text it reports for
fields and placeholders, style names as it reports them, tables as it reads them. The samplers also need the
formatting that styles and their inheritance give each paragraph (alignment, fonts, spacing, page margins,
headers), which only the office resolves, so that a target is not already in the state a task asks for. The XML
is read only for what DocState leaves out: text in frames, headers and footers, which Writer's find still searches
(lo_files.outside_texts), and the metadata title.

Reading needs the office, so specs are cached next to the generated templates, keyed by the template file's hash
and READER_VERSION: each file is read once per machine (about half a second each).
"""

from __future__ import annotations

import json
import sys
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lamforge.cache import cache_dir
from lamforge.env.docstate import DocState
from lamforge.env.office import OfficeError, OfficeNotInstalled, OfficeScriptError
from lamforge.env.writer_env import WriterEnv
from lamforge.tasks import lo_files
from lamforge.tasks.lo_fit import why_unfit
from lamforge.tasks.template_files import read_manifest, write_manifest
from lamforge.tasks.templates import (LO_PREFIX, LO_SPLIT, ParagraphBlock, TableBlock, TemplateDoc, TemplateSource,
                                      _count_overlapping, _WORD, register_source)

# Bump when the reader or the document copy changes, so that cached specs are read again.
READER_VERSION = "3"

# Paragraph styles that hold running text in LibreOffice documents (UNO names, as DocState reports them).
BODY_STYLES = frozenset({"Standard", "Text body", "Body Text", "First line indent", "Hanging indent",
                         "Text body indent", "Default Paragraph Style"})

# What each template folder holds: (kind, how a description says it).
KINDS = {
    "officorr": ("business_letter", "a business letter with a sender block, an address and body text"),
    "offimisc": ("business_card", "a sheet of business cards"),
    "personal": ("cv", "a curriculum vitae or resume with headings and sections"),
    "letter": ("letter", "a letter layout from the letter wizard, with sender fields and a placeholder body"),
    "fax": ("fax", "a fax cover page from the fax wizard"),
    "agenda": ("agenda", "a meeting agenda with topic tables"),
    "report": ("report", "a database report layout with field tables"),
    "styles": ("styles", "a set of paragraph styles"),
}


class LoTemplateDoc(TemplateDoc):
    """A LibreOffice template as LibreOffice reports it: the TemplateDoc view samplers use, plus the facts behind it.

    Unlike a generated template, paragraphs may be empty, hold fields, placeholders, line breaks and non-ASCII
    text, use any style, and tables may follow each other: TemplateDoc's rules for generated files do not apply,
    and this validator checks instead that the blocks are exactly what `state` reports.
    """

    split: Literal["lo_templates"] = LO_SPLIT  # type: ignore[assignment]
    source: str  # the .ott's path under LibreOffice's template folder
    source_sha256: str
    metadata_title: str = ""
    state: DocState  # what LibreOffice reported for the untouched copy
    outside_texts: list[str] = Field(default_factory=list)  # frames, headers, footers (lo_files.outside_texts)
    sections: int = 0  # text sections in the body (from the XML: DocState does not report them)

    @model_validator(mode="after")
    def _check_structure(self) -> "LoTemplateDoc":  # replaces TemplateDoc's rules for generated files
        problems = []
        if not self.description.strip() or "\n" in self.description:
            problems.append("the description must be one non-empty line")
        if not self.blocks or self.blocks[-1].kind != "paragraph":
            problems.append("the last block must be a paragraph")
        expected = blocks_of(self.state)
        if [b.model_dump() for b in self.blocks] != [b.model_dump() for b in expected]:
            problems.append("the blocks differ from the paragraphs and tables LibreOffice reported")
        for i, block in enumerate(self.blocks):
            if block.kind == "table" and (block.n_cols == 0 or any(len(r) != block.n_cols for r in block.rows)):
                problems.append(f"block {i}: the table must be a non-empty rectangle")
        if self.regions:
            problems.append("regions are a property of generated templates")
        if problems:
            raise ValueError(f"template {self.id}: " + "; ".join(problems))
        return self

    # -- what LibreOffice reports -------------------------------------------------------------------------------

    def is_plain(self, index: int) -> bool:
        """Paragraph `index` is typed text only: no field, placeholder, frame or note in it, and not empty."""
        paragraph = self.state.paragraphs[index]
        return bool(paragraph.text.strip()) and all(r.kind == "Text" for r in paragraph.runs)

    def lo_style(self, index: int) -> str:
        return self.paragraphs[index].style  # already LibreOffice's name

    @property
    def title(self) -> str:
        """The first heading (or Title) that is typed text, else the metadata title.

        Why a heading first: a PDF export shows it in the page text and in the outline, which are what the PDF
        checker reads (the metadata title is only in the PDF's Info dictionary).
        """
        for i, p in enumerate(self.state.paragraphs):
            if (p.outline_level or p.style == "Title") and self.is_plain(i):
                return " ".join(p.text.split())
        return self.metadata_title

    # -- the sampler's view, restricted to what can honestly be a target ----------------------------------------

    def body_paragraph_indices(self, min_words: int = 8) -> list[int]:
        """Running-text paragraphs: a body style, typed text only, not in a list, with at least `min_words` words."""
        return [
            i for i, p in enumerate(self.paragraphs)
            if p.style in BODY_STYLES and self.is_plain(i) and not self.state.paragraphs[i].is_list
            and len(_WORD.findall(p.text)) >= min_words
        ]

    def searchable_texts(self) -> list[str]:
        return self.all_texts() + self.outside_texts

    def phrases(self, min_words: int = 1, max_words: int = 4, in_tables: bool = False) -> list[str]:
        """As TemplateDoc.phrases, taken from typed text only: a field's text cannot be found and selected."""
        sources = [segment for i in range(len(self.paragraphs)) for segment in self.typed_segments(i)]
        if in_tables:
            sources += self.typed_cells()
        return self._unique_phrases(sources, min_words, max_words)

    def typed_segments(self, index: int) -> list[str]:
        """The paragraph's typed text, split wherever a field, placeholder, frame or note sits."""
        segments, current = [], ""
        for run in self.state.paragraphs[index].runs:
            if run.kind == "Text":
                current += run.text
            else:
                segments.append(current)
                current = ""
        return [s for s in segments + [current] if s]

    def typed_cells(self) -> list[str]:
        """Table cells with no field's text in them (DocState reports a cell as one string, fields included)."""
        fields = [f.text for f in self.state.fields if f.text.strip()]
        return [cell for table in self.tables() for row in table.rows for cell in row
                if cell and not any(f in cell for f in fields)]

    def typed_texts(self) -> list[str]:
        return [s for i in range(len(self.paragraphs)) for s in self.typed_segments(i)] + self.typed_cells()

    def findable(self, text: str) -> bool:
        """Writer's find can select `text`: it lies within typed text, not (partly) in a field."""
        return any(text in t for t in self.typed_texts())

    def typed_count(self, text: str) -> int:
        return sum(_count_overlapping(t, text) for t in self.typed_texts())

    def why_unfit(self, family_id: str, params: dict) -> str | None:
        return why_unfit(self, family_id, params)


def blocks_of(state: DocState) -> list[ParagraphBlock | TableBlock]:
    """DocState's paragraphs and tables in document order (a table sits after its `after_paragraph`)."""
    after: dict[int, list[TableBlock]] = {}
    for table in state.tables:
        after.setdefault(table.after_paragraph, []).append(TableBlock(rows=table.rows))
    blocks: list[ParagraphBlock | TableBlock] = list(after.get(-1, []))
    for p in state.paragraphs:
        blocks.append(ParagraphBlock(text=p.text, style=p.style))
        blocks += after.get(p.index, [])
    return blocks


# ---------------------------------------------------------------------------------------------------------------
# Reading one template through the office.


def read_template(env, source: Path, root: Path, copy: Path) -> LoTemplateDoc:
    """Write the editable copy of `source` to `copy`, open it in `env` (a WriterEnv) and build its spec."""
    lo_files.write_document_copy(source, copy)
    obs, _ = env.reset(options={"doc": str(copy)})
    title = obs.get("title") or ""
    if not title.startswith(copy.name):
        # An .ott opened as such comes up as "Untitled 1"; the copy must open as the document itself.
        raise ValueError(f"LibreOffice opened {copy.name} as {title!r}, not as the document")
    state = env.doc_state()
    tid = lo_files.template_id(root, source)
    folder = source.relative_to(root).parent.name
    kind, what = KINDS.get(folder, (folder or "document", "a document"))
    meta_title = lo_files.metadata_title(source)
    name = meta_title or source.stem.replace("_", " ")
    return LoTemplateDoc(
        id=tid, kind=kind, description=f"LibreOffice template '{name}': {what}", format="odt", seed=0,
        blocks=blocks_of(state), source=str(source.relative_to(root)), source_sha256=lo_files.sha256(source),
        metadata_title=meta_title, state=state, outside_texts=lo_files.outside_texts(copy),
        sections=lo_files.section_count(copy),
    )


# ---------------------------------------------------------------------------------------------------------------
# The catalogue: every template, read once and cached, or the reason it is left out.


@dataclass
class Catalogue:
    specs: list[LoTemplateDoc] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # template id -> why it is not a task document
    root: Path | None = None
    out_dir: Path | None = None  # where the copies and specs are


def lo_dir() -> Path:
    """The cache of copies and specs: next to the generated templates ($LAMFORGE_CACHE/lo_templates)."""
    return cache_dir() / "lo_templates"


def build_catalogue(env=None, root: Path | None = None, out_dir: Path | None = None,
                    progress: bool = False) -> Catalogue:
    """Every template under root (LibreOffice's by default): cached specs, and any missing ones read through the
    office (`env`, or one started here for the purpose)."""
    root = root or lo_files.template_root()
    if root is None or not root.is_dir():
        return Catalogue(excluded={"*": "LibreOffice's template folder was not found (install libreoffice-writer, "
                                        "or point $LAMFORGE_LO_TEMPLATES at a folder of .ott files)"})
    out_dir = Path(out_dir or lo_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out_dir)
    before = json.dumps(manifest, sort_keys=True)
    catalogue = Catalogue(root=root, out_dir=out_dir)
    to_read: list[tuple[str, Path, str]] = []
    for source in lo_files.find_templates(root):
        tid, digest = lo_files.template_id(root, source), lo_files.sha256(source)
        record = manifest.get(tid, {})
        if record.get("sha256") == digest and record.get("reader") == READER_VERSION:
            if record.get("excluded"):
                catalogue.excluded[tid] = record["excluded"]
                continue
            spec = _load_spec(out_dir, tid)
            if spec is not None:
                catalogue.specs.append(spec)
                continue
        problem = lo_files.static_problem(source)
        if problem:
            catalogue.excluded[tid] = problem
            manifest[tid] = {"sha256": digest, "reader": READER_VERSION, "excluded": problem}
            continue
        to_read.append((tid, source, digest))
    if to_read:
        _read_all(to_read, root, out_dir, manifest, catalogue, env, progress)
    if json.dumps(manifest, sort_keys=True) != before:
        write_manifest(out_dir, manifest)
    catalogue.specs.sort(key=lambda s: s.source)
    catalogue.excluded = dict(sorted(catalogue.excluded.items()))
    return catalogue


def _read_all(to_read, root, out_dir, manifest, catalogue, env, progress) -> None:
    own = env is None
    env = env or WriterEnv()
    if progress:
        print(f"reading {len(to_read)} LibreOffice templates through the office (once; cached in {out_dir})",
              file=sys.stderr)
    try:
        for tid, source, digest in to_read:
            try:
                spec = read_template(env, source, root, out_dir / f"{tid}.odt")
            except (OfficeScriptError, ValueError) as exc:
                # Deterministic: the office opened the file but could not report it (DocState fails on some
                # tables), or opened it as something else. Cached, so it is not tried again.
                reason = f"LibreOffice could not report it: {_first_line(exc)}"
                if "getCellByPosition" in str(exc):
                    reason = ("DocState cannot read its tables (the office-side docstate reads cells by position, and "
                              "getCellByPosition raises IndexOutOfBoundsException on them)")
                catalogue.excluded[tid] = reason
                manifest[tid] = {"sha256": digest, "reader": READER_VERSION, "excluded": reason}
                continue
            except OfficeNotInstalled as exc:
                for left, _, _ in to_read:
                    catalogue.excluded.setdefault(left, f"the office is not available: {_first_line(exc)}")
                return
            except OfficeError as exc:
                # A crash or a hang may be the machine's, not the file's: left out now, tried again next time.
                catalogue.excluded[tid] = f"the office failed while reading it (will retry): {_first_line(exc)}"
                if own:
                    env.close()
                    env = WriterEnv()
                continue
            tmp = out_dir / f"{tid}.json.{os.getpid()}.part"
            tmp.write_text(spec.model_dump_json())
            os.replace(tmp, out_dir / f"{tid}.json")
            manifest[tid] = {"sha256": digest, "reader": READER_VERSION, "file": f"{tid}.odt"}
            catalogue.specs.append(spec)
    finally:
        if own:
            env.close()


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def _load_spec(out_dir: Path, tid: str) -> LoTemplateDoc | None:
    try:
        if not (out_dir / f"{tid}.odt").is_file():
            return None
        return LoTemplateDoc.model_validate_json((out_dir / f"{tid}.json").read_text())
    except (OSError, ValueError):
        return None  # missing or damaged: read again


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The catalogue of this process (read once; `catalogue.cache_clear()` after changing the folder or cache)."""
    return build_catalogue(progress=True)


def list_lo_templates() -> list[LoTemplateDoc]:
    return list(catalogue().specs)


def get_lo_template(template_id: str) -> LoTemplateDoc:
    found = catalogue()
    for spec in found.specs:
        if spec.id == template_id:
            return spec
    if template_id in found.excluded:
        raise KeyError(f"LibreOffice template {template_id!r} is not a task document: {found.excluded[template_id]}")
    raise KeyError(f"unknown LibreOffice template {template_id!r}; known: {', '.join(s.id for s in found.specs)}")


def lo_template_path(template_id: str) -> Path:
    """The editable copy a task opens (written when the catalogue was read)."""
    get_lo_template(template_id)
    path = Path(catalogue().out_dir) / f"{template_id}.odt"
    if not path.is_file():
        catalogue.cache_clear()  # removed since: read the catalogue again, which writes it again
        get_lo_template(template_id)
    return path


register_source(TemplateSource(LO_PREFIX, LO_SPLIT, list_lo_templates, get_lo_template, lo_template_path))
