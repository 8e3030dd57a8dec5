"""Broken documents are refused fast and clearly: by check_document before the office sees them (a bad zip, a
missing part, XML that does not parse, a password), and, for packages that pass it but the office rejects, by
ending the office's error dialog during the load instead of waiting for the watchdog (62 s and a misleading "hung"
at 2e45b07)."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from lamforge.env.writer_env import check_document


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_paragraph("Hello")
    d.save(path)
    return path


def make_odt(path: Path) -> Path:
    from odf.opendocument import OpenDocumentText
    from odf.text import P

    d = OpenDocumentText()
    d.text.addElement(P(text="Hello"))
    d.save(str(path))
    return path


def rewrite(src: Path, dst: Path, replace: dict[str, bytes] | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A copy of a package with some parts replaced or left out."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename not in drop:
                zout.writestr(item, (replace or {}).get(item.filename, zin.read(item.filename)))
    return dst


@pytest.fixture
def good(tmp_path):
    return {".docx": make_docx(tmp_path / "good.docx"), ".odt": make_odt(tmp_path / "good.odt")}


def test_check_document_refuses_broken_packages_with_the_reason(good, tmp_path):
    check_document(good[".docx"])
    check_document(good[".odt"])
    cases = {
        rewrite(good[".docx"], tmp_path / "xml.docx", {"word/document.xml": b"<w:document><w:body><w:p>"}):
            "word/document.xml is not well-formed XML",
        rewrite(good[".odt"], tmp_path / "xml.odt", {"content.xml": b"<office:document-content>"}):
            "content.xml is not well-formed XML",
        rewrite(good[".docx"], tmp_path / "styles.docx", {"word/styles.xml": b""}): "word/styles.xml",
        rewrite(good[".docx"], tmp_path / "part.docx", drop=("word/document.xml",)): "it has no word/document.xml",
        rewrite(good[".odt"], tmp_path / "locked.odt", {"META-INF/manifest.xml": (
            b'<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
            b'<manifest:file-entry manifest:full-path="content.xml"><manifest:encryption-data/></manifest:file-entry>'
            b'</manifest:manifest>')}): "password-protected",
    }
    text = tmp_path / "text.docx"
    text.write_text("not a zip at all")
    cases[text] = "not a .docx file"
    for path, reason in cases.items():
        start = time.perf_counter()
        with pytest.raises(ValueError, match=reason.replace(".", r"\.")) as exc:
            check_document(path)
        assert path.name in str(exc.value) and time.perf_counter() - start < 2


@pytest.mark.office
def test_documents_the_office_rejects_fail_at_once_with_its_message(writer_env, good, tmp_path):
    """Well-formed packages LibreOffice still refuses: it opens an error or repair dialog inside the load, which the
    environment ends, so the load fails at once with the dialog's words (and the office is not restarted)."""
    writer_env.reset(options={"doc": str(good[".docx"])})
    pid = writer_env.office.proc.pid
    refused = [
        rewrite(good[".odt"], tmp_path / "root.odt", {"content.xml": b'<?xml version="1.0"?><x:y xmlns:x="urn:x"/>'}),
        rewrite(good[".docx"], tmp_path / "rels.docx", drop=("_rels/.rels",)),
    ]
    for path in refused:
        check_document(path)  # passes the package check
        start = time.perf_counter()
        with pytest.raises(ValueError, match="it said") as exc:
            writer_env.reset(options={"doc": str(path)})
        assert time.perf_counter() - start < 2 and path.name in str(exc.value), exc.value
    obs, info = writer_env.reset(options={"doc": str(good[".odt"])})  # still usable, same office
    assert obs["canvas"][0]["text"] == "Hello" and writer_env.office.proc.pid == pid and not info["office_restarted"]
