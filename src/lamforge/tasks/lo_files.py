"""LibreOffice's own template files (.ott) as task documents: where they are, the editable copy, and XML facts.

The copy is what a task opens. Opening an .ott makes an "Untitled" document from it, so the copy is an ordinary
ODF text document with the template's content: the package's mimetype and manifest say "text", not
"text-template". Two more changes keep it a document a task can start from, every day the same:

- The wizard templates bind a StarBasic wizard to the "new document" event. A document made from the template
  never runs it, but Writer stops the load of a file that carries the binding at a modal macro-security warning,
  so the copy leaves the binding out.
- A date or time field that is not fixed to a stored value shows the day the file is opened; the copy fixes it to
  the same date the generated templates use, so the document (and its spec) reads the same on any day.

LibreOffice's files are only read; the copy is written elsewhere.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path

from lxml import etree

from lamforge.env.office import find_binary

TEXT_MIMETYPE = "application/vnd.oasis.opendocument.text"
TEMPLATE_MIMETYPE = "application/vnd.oasis.opendocument.text-template"
FIXED_DATE = "2024-01-01T09:00:00"  # template_files._DOC_DATE, as ODF writes it

NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
}
_TEXT = "{%s}" % NS["text"]
_PARAGRAPHS = (_TEXT + "p", _TEXT + "h")


def template_root() -> Path | None:
    """LibreOffice's shared template folder (share/template/common), or None when LibreOffice is not installed.

    $LAMFORGE_LO_TEMPLATES overrides it (another installation, or a folder of .ott files).
    """
    override = os.environ.get("LAMFORGE_LO_TEMPLATES")
    if override:
        return Path(override).expanduser()
    soffice = find_binary("soffice", "libreoffice")
    candidates = [Path("/usr/lib/libreoffice/share/template/common")]
    if soffice:
        # /usr/bin/soffice -> /usr/lib/libreoffice/program/soffice -> ../share/template/common
        candidates.insert(0, Path(soffice).resolve().parent.parent / "share" / "template" / "common")
    return next((c for c in candidates if c.is_dir()), None)


def find_templates(root: Path) -> list[Path]:
    """Every Writer template (.ott) under root, in path order."""
    return sorted(p for p in root.rglob("*.ott") if p.is_file())


def template_id(root: Path, path: Path) -> str:
    """"lo_" + folder + file stem, lower case: officorr/Modern_business_letter_serif.ott -> lo_officorr_modern_..."""
    rel = path.relative_to(root)
    folder = rel.parent.name or "common"
    return "lo_" + re.sub(r"[^a-z0-9]+", "_", f"{folder}_{path.stem}".lower()).strip("_")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def static_problem(path: Path) -> str | None:
    """Why the file cannot be a task document, judged from the package alone (no office needed), or None."""
    try:
        with zipfile.ZipFile(path) as package:
            names = package.namelist()
            mimetype = package.read("mimetype").decode().strip() if "mimetype" in names else ""
            content = package.read("content.xml") if "content.xml" in names else None
    except (zipfile.BadZipFile, OSError) as exc:
        return f"not a readable ODF package ({exc})"
    if mimetype != TEMPLATE_MIMETYPE:
        return f"not a Writer template (mimetype {mimetype or 'missing'})"
    if content is None:
        return "a styles-only template: it has no document body (no content.xml)"
    root = etree.fromstring(content)
    if root.find(".//office:body/office:text", NS) is None:
        return "it has no text body"
    if root.find(".//text:section-source", NS) is not None:
        # Measured: the load stops at "contains links to external data ... update all links?", a modal question
        # inside the load call (the Businesscard template's sections link to other files).
        return "its sections link to external files, and Writer stops the load at a modal 'update links?' question"
    return None


def write_document_copy(source: Path, dest: Path) -> None:
    """An editable .odt with the template's content (see the module docstring for what differs, and why).

    Raises ValueError when the package or its XML cannot be read.
    """
    try:
        _write_copy(source, dest)
    except (zipfile.BadZipFile, KeyError, etree.LxmlError) as exc:
        raise ValueError(f"{Path(source).name} cannot be copied: {exc}") from exc


def _write_copy(source: Path, dest: Path) -> None:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    with zipfile.ZipFile(source) as package, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        # ODF requires the mimetype first and stored uncompressed.
        out.writestr(zipfile.ZipInfo("mimetype"), TEXT_MIMETYPE, compress_type=zipfile.ZIP_STORED)
        for info in package.infolist():
            if info.filename == "mimetype":
                continue
            data = package.read(info.filename)
            if info.filename == "META-INF/manifest.xml":
                data = _manifest_as_document(data)
            elif info.filename in ("content.xml", "styles.xml"):
                data = _normalised_xml(data)
            out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    os.replace(tmp, dest)


def _manifest_as_document(data: bytes) -> bytes:
    # Only the package root's entry carries the template media type. Bytes, not XML: some of the older wizard
    # templates' manifests use the manifest: prefix without declaring it, which lxml rejects.
    return data.replace(TEMPLATE_MIMETYPE.encode(), TEXT_MIMETYPE.encode())


def _normalised_xml(data: bytes) -> bytes:
    root = etree.fromstring(data)
    for listeners in root.findall(".//office:event-listeners", NS):
        listeners.getparent().remove(listeners)
    for kind, attribute in (("date", "date-value"), ("time", "time-value")):
        for field in root.iter(_TEXT + kind):
            if field.get(_TEXT + "fixed") != "true" or not field.get(_TEXT + attribute):
                field.set(_TEXT + "fixed", "true")
                field.set(_TEXT + attribute, FIXED_DATE)
    return _serialise(root)


def _serialise(root) -> bytes:
    buffer = io.BytesIO()
    etree.ElementTree(root).write(buffer, xml_declaration=True, encoding="UTF-8")
    return buffer.getvalue()


def metadata_title(path: Path) -> str:
    """The document title in meta.xml (dc:title), or ""."""
    with zipfile.ZipFile(path) as package:
        if "meta.xml" not in package.namelist():
            return ""
        title = etree.fromstring(package.read("meta.xml")).find(".//dc:title", NS)
    return " ".join((title.text or "").split()) if title is not None else ""


def section_count(path: Path) -> int:
    """How many text sections the body has (DocState does not report sections)."""
    with zipfile.ZipFile(path) as package:
        if "content.xml" not in package.namelist():
            return 0
        body = etree.fromstring(package.read("content.xml")).find(".//office:body/office:text", NS)
    return 0 if body is None else sum(1 for _ in body.iter(_TEXT + "section"))


def outside_texts(path: Path) -> list[str]:
    """Text that is not in the body's paragraphs and tables but that Writer's find still searches.

    Frames, text boxes and shapes in content.xml, and headers and footers in styles.xml. DocState does not report
    them, and a phrase that also occurs there is not unique for select_text, so the spec counts them. Reading
    more than is needed (every paragraph inside a drawing object, every paragraph of styles.xml) errs on the side
    of calling a phrase not unique.
    """
    out: list[str] = []
    with zipfile.ZipFile(path) as package:
        names = package.namelist()
        if "content.xml" in names:
            body = etree.fromstring(package.read("content.xml")).find(".//office:body/office:text", NS)
            if body is not None:
                draw = "{%s}" % NS["draw"]
                for element in body.iter(*_PARAGRAPHS):
                    if any(isinstance(a.tag, str) and a.tag.startswith(draw) for a in element.iterancestors()):
                        out.append(_plain_text(element))
        if "styles.xml" in names:
            for element in etree.fromstring(package.read("styles.xml")).iter(*_PARAGRAPHS):
                out.append(_plain_text(element))
    return [t for t in out if t.strip()]


def _plain_text(element) -> str:
    """The element's characters in order, with ODF's space, tab and line-break elements expanded."""
    parts: list[str] = []

    def walk(node) -> None:
        if not isinstance(node.tag, str):  # an XML comment or processing instruction
            return
        if node.tag == _TEXT + "s":
            parts.append(" " * int(node.get(_TEXT + "c", "1")))
        elif node.tag == _TEXT + "tab":
            parts.append("\t")
        elif node.tag == _TEXT + "line-break":
            parts.append("\n")
        else:
            parts.append(node.text or "")
            for child in node:
                walk(child)
                parts.append(child.tail or "")

    walk(element)
    return "".join(parts)
