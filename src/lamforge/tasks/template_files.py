"""Template documents as files: writing a spec to .docx (python-docx) or .odt (odfpy), the cache of built files with
its manifest, and reading a .docx or .odt back into blocks (tests, and checkers that inspect a saved file).

The content of each document is templates.py's spec; this module only turns specs into files and files into blocks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from lamforge.cache import cache_dir
from lamforge.jsonl import write_json
from lamforge.tasks.templates import (HEADING_LEVELS, ParagraphBlock, TableBlock, TemplateDoc, get_template,
                                      list_templates, template_source)

# ODF style names for the same styles: the internal name LibreOffice uses for its built-in styles where one exists,
# so the .odt shows the same style names as the .docx.
ODF_STYLE_NAME = {
    "Normal": "Standard",
    "Title": "Title",
    "Heading 1": "Heading_20_1",
    "Heading 2": "Heading_20_2",
    "Heading 3": "Heading_20_3",
    "List Bullet": "List_20_Bullet",
    "List Number": "List_20_Number",
    "Quote": "Quote",
}

class TemplateInfo(BaseModel):
    """One built template file."""

    id: str
    path: Path
    format: Literal["docx", "odt"]
    split: Literal["train", "validation", "test"]
    description: str
    spec_hash: str
    written: bool  # False when an up-to-date file was already there


def templates_dir() -> Path:
    """Where built templates are cached: $LAMFORGE_CACHE/templates, default ~/.cache/lamforge/templates."""
    return cache_dir() / "templates"


MANIFEST = "manifest.json"
# Fixed document dates so that nothing in a template depends on when it was built.
_DOC_DATE = dt.datetime(2024, 1, 1, 9, 0, 0)


def build_templates(out_dir: Path | None = None, ids: list[str] | None = None) -> list[TemplateInfo]:
    """Write every template (or those in `ids`) into out_dir, skipping files already built from the same spec.

    Zip timestamps make the bytes of a .docx/.odt differ between builds, so freshness is decided by the spec hash
    recorded in out_dir/manifest.json. Each file is written to a temporary name and renamed, and the manifest is
    updated after every file, so an interrupted build never leaves a half-written template marked as done.
    """
    out_dir = Path(out_dir) if out_dir is not None else templates_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = list_templates() if ids is None else [get_template(i) for i in ids]
    manifest = read_manifest(out_dir)
    infos = []
    for spec in specs:
        path = out_dir / spec.filename
        digest = spec.spec_hash()
        fresh = path.exists() and manifest.get(spec.id, {}).get("spec_hash") == digest
        if not fresh:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.part")  # two builders never share a half-written file
            write_template(spec, tmp)
            os.replace(tmp, path)
            manifest[spec.id] = {"file": spec.filename, "spec_hash": digest, "split": spec.split}
            write_manifest(out_dir, manifest)
        infos.append(
            TemplateInfo(
                id=spec.id, path=path, format=spec.format, split=spec.split, description=spec.description,
                spec_hash=digest, written=not fresh,
            )
        )
    return infos


def template_path(template_id: str, out_dir: Path | None = None) -> Path:
    """The path of a built template, building it first if it is missing or stale.

    For a template from a source (LibreOffice's), the file that source gives (out_dir does not apply).
    """
    source = template_source(template_id)
    if source is not None:
        return source.path(template_id)
    return build_templates(out_dir, ids=[template_id])[0].path


def read_manifest(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # a missing or damaged manifest only means every file is rebuilt


def write_manifest(out_dir: Path, manifest: dict) -> None:
    """Replace out_dir's manifest atomically (builders in parallel processes never see half of one)."""
    write_json(out_dir / MANIFEST, manifest, sort_keys=True)


def write_template(spec: TemplateDoc, path: Path) -> None:
    """Write spec to path in spec.format, whatever the path's suffix."""
    (_write_docx if spec.format == "docx" else _write_odt)(spec, Path(path))


def _write_docx(spec: TemplateDoc, path: Path) -> None:
    import docx
    from docx.shared import Cm

    document = docx.Document()
    section = document.sections[0]
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.left_margin = section.right_margin = Cm(2.5)
    section.top_margin = section.bottom_margin = Cm(2.5)
    props = document.core_properties
    props.title = spec.title
    props.subject = spec.description
    props.author = props.last_modified_by = "lamforge"
    props.created = props.modified = _DOC_DATE
    props.revision = 1
    for block in spec.blocks:
        if block.kind == "paragraph":
            # python-docx turns "\t" into a real <w:tab/>, which Writer reads back as a tab character.
            document.add_paragraph(block.text, style=block.style)
        else:
            table = document.add_table(rows=block.n_rows, cols=block.n_cols)
            table.style = "Table Grid"
            for r, row in enumerate(block.rows):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
    document.save(str(path))


def _write_odt(spec: TemplateDoc, path: Path) -> None:
    from odf import dc, teletype
    from odf.opendocument import OpenDocumentText
    from odf.style import (
        ListLevelProperties,
        MasterPage,
        PageLayout,
        PageLayoutProperties,
        ParagraphProperties,
        Style,
        TableCellProperties,
        TableProperties,
        TextProperties,
    )
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, List, ListItem, ListLevelStyleBullet, ListLevelStyleNumber, ListStyle, P

    document = OpenDocumentText()
    document.meta.addElement(dc.Title(text=spec.title))
    document.meta.addElement(dc.Description(text=spec.description))

    layout = PageLayout(name="A4")
    layout.addElement(PageLayoutProperties(pagewidth="21cm", pageheight="29.7cm", printorientation="portrait",
                                           margintop="2.5cm", marginbottom="2.5cm", marginleft="2.5cm",
                                           marginright="2.5cm"))
    document.automaticstyles.addElement(layout)
    document.masterstyles.addElement(MasterPage(name="Standard", pagelayoutname=layout))

    # Lists: real text:list elements, and the list style is also attached to the paragraph style so that applying
    # "List Bullet" to a paragraph in Writer bullets it, as it does in the .docx.
    bullet_list = ListStyle(name="List_20_Bullet_20_Style", displayname="List Bullet Style")
    level = ListLevelStyleBullet(level=1, bulletchar="\u2022")
    level.addElement(ListLevelProperties(spacebefore="0.6cm", minlabelwidth="0.6cm"))
    bullet_list.addElement(level)
    number_list = ListStyle(name="List_20_Number_20_Style", displayname="List Number Style")
    level = ListLevelStyleNumber(level=1, numformat="1", numsuffix=".")
    level.addElement(ListLevelProperties(spacebefore="0.6cm", minlabelwidth="0.6cm"))
    number_list.addElement(level)
    document.styles.addElement(bullet_list)
    document.styles.addElement(number_list)

    def paragraph_style(style: str, parent: str | None = None, **attrs) -> Style:
        name = ODF_STYLE_NAME.get(style, style)
        if name != style and style != "Normal":  # Writer would make "Normal" a new style beside its Standard
            attrs["displayname"] = style
        if parent:
            attrs["parentstylename"] = parent
        element = Style(name=name, family="paragraph", **attrs)
        document.styles.addElement(element)
        return element

    styles = {}
    styles["Normal"] = paragraph_style("Normal", attributes={"class": "text"})
    styles["Normal"].addElement(ParagraphProperties(marginbottom="0.2cm"))
    styles["Normal"].addElement(TextProperties(fontsize="11pt"))
    heading = paragraph_style("Heading", parent="Standard", nextstylename="Standard")
    heading.addElement(ParagraphProperties(margintop="0.4cm", marginbottom="0.2cm", keepwithnext="always"))
    heading.addElement(TextProperties(fontweight="bold"))
    styles["Title"] = paragraph_style("Title", parent="Heading")
    styles["Title"].addElement(ParagraphProperties(textalign="center"))
    styles["Title"].addElement(TextProperties(fontsize="24pt", fontweight="normal"))  # as Word's Title: not bold
    for style, size in (("Heading 1", "18pt"), ("Heading 2", "15pt"), ("Heading 3", "13pt")):
        styles[style] = paragraph_style(style, parent="Heading", defaultoutlinelevel=str(HEADING_LEVELS[style]))
        styles[style].addElement(TextProperties(fontsize=size))
    styles["List Bullet"] = paragraph_style("List Bullet", parent="Standard", liststylename=bullet_list)
    styles["List Number"] = paragraph_style("List Number", parent="Standard", liststylename=number_list)
    styles["Quote"] = paragraph_style("Quote", parent="Standard")
    styles["Quote"].addElement(ParagraphProperties(marginleft="1cm", marginright="1cm"))
    styles["Quote"].addElement(TextProperties(fontstyle="italic"))

    table_style = Style(name="TemplateTable", family="table")
    table_style.addElement(TableProperties(width="16cm", align="margins"))
    cell_style = Style(name="TemplateCell", family="table-cell")
    cell_style.addElement(TableCellProperties(border="0.5pt solid #000000", padding="0.1cm"))
    document.automaticstyles.addElement(table_style)
    document.automaticstyles.addElement(cell_style)

    def paragraph(block: ParagraphBlock):
        level = HEADING_LEVELS.get(block.style)
        element = (H(outlinelevel=level, islistheader="true", stylename=styles[block.style]) if level
                   else P(stylename=styles[block.style]))
        teletype.addTextToElement(element, block.text)  # writes tabs as text:tab, which plain text would lose
        return element

    body = document.text
    open_list = None
    table_number = 0
    for block in spec.blocks:
        if block.kind == "paragraph" and block.is_list_item:
            list_style = bullet_list if block.style == "List Bullet" else number_list
            if open_list is None or open_list[0] != block.style:
                open_list = (block.style, List(stylename=list_style))
                body.addElement(open_list[1])
            item = ListItem()
            item.addElement(paragraph(block))
            open_list[1].addElement(item)
            continue
        open_list = None
        if block.kind == "paragraph":
            body.addElement(paragraph(block))
        else:
            table_number += 1
            table = Table(name=TemplateDoc.table_name(table_number - 1), stylename=table_style)
            table.addElement(TableColumn(numbercolumnsrepeated=block.n_cols))
            for row in block.rows:
                row_element = TableRow()
                for value in row:
                    cell = TableCell(valuetype="string", stylename=cell_style)
                    cell_paragraph = P(stylename=styles["Normal"])
                    if value:
                        teletype.addTextToElement(cell_paragraph, value)
                    cell.addElement(cell_paragraph)
                    row_element.addElement(cell)
                table.addElement(row_element)
            body.addElement(table)
    document.save(str(path))


# ---------------------------------------------------------------------------------------------------------------
# Reading a document back (tests, and checkers that inspect a saved file without the office).


def read_document(path: Path) -> list[ParagraphBlock | TableBlock]:
    """The paragraphs and tables of a .docx or .odt file in document order, with template style names.

    Styles are reported by their Word/template name where one matches ("Standard" reads as "Normal"), otherwise
    by the file's own display name.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no document at {path}")
    suffix = path.suffix.lower()
    if suffix == ".docx":
        return _read_docx(path)
    if suffix == ".odt":
        return _read_odt(path)
    raise ValueError(f"cannot read {path.name}: only .docx and .odt are supported")


def _read_docx(path: Path) -> list[ParagraphBlock | TableBlock]:
    import docx
    from docx.table import Table

    blocks: list[ParagraphBlock | TableBlock] = []
    for item in docx.Document(str(path)).iter_inner_content():
        if isinstance(item, Table):
            blocks.append(TableBlock(rows=[[cell.text for cell in row.cells] for row in item.rows]))
        else:
            blocks.append(ParagraphBlock(text=item.text, style=item.style.name if item.style is not None else "Normal"))
    return blocks


def _read_odt(path: Path) -> list[ParagraphBlock | TableBlock]:
    from odf import teletype
    from odf.namespaces import STYLENS, TABLENS, TEXTNS
    from odf.opendocument import load
    from odf.table import TableRow

    document = load(str(path))
    parents: dict[str, str] = {}  # automatic style -> the named style it derives from
    for style in document.automaticstyles.childNodes:
        if style.qname == (STYLENS, "style"):
            parent = style.getAttrNS(STYLENS, "parent-style-name")
            if parent:
                parents[style.getAttrNS(STYLENS, "name")] = parent
    display: dict[str, str] = {}
    for style in document.styles.childNodes:
        if style.qname == (STYLENS, "style"):
            name = style.getAttrNS(STYLENS, "name")
            display[name] = style.getAttrNS(STYLENS, "display-name") or name
    from_odf = {odf: style for style, odf in ODF_STYLE_NAME.items()}

    def style_of(element) -> str:
        name = element.getAttrNS(TEXTNS, "style-name") or "Standard"
        name = parents.get(name, name)
        return from_odf.get(name, display.get(name, name).replace("_20_", " "))

    blocks: list[ParagraphBlock | TableBlock] = []

    def walk(element) -> None:
        for child in element.childNodes:
            if child.qname in ((TEXTNS, "p"), (TEXTNS, "h")):
                blocks.append(ParagraphBlock(text=teletype.extractText(child), style=style_of(child)))
            elif child.qname in ((TEXTNS, "list"), (TEXTNS, "list-item"), (TEXTNS, "list-header"), (TEXTNS, "section")):
                walk(child)
            elif child.qname == (TABLENS, "table"):
                blocks.append(TableBlock(rows=_odt_rows(child)))

    def _odt_rows(table) -> list[list[str]]:
        rows = []
        for row in table.getElementsByType(TableRow):
            cells = [c for c in row.childNodes if c.qname == (TABLENS, "table-cell")]
            rows.append(
                ["\n".join(teletype.extractText(p) for p in c.childNodes if p.qname in ((TEXTNS, "p"), (TEXTNS, "h")))
                 for c in cells]
            )
        return rows

    walk(document.text)
    return blocks
