"""File families: the document saved or exported under a given name.

The reference uses the schema's save_as(path) with a relative path, which WriterEnv writes into the episode's
out_dir. Why not File > Save As... or File > Export As > Export as PDF...: the file dialog those routes open breaks
the office-side observation (an accessible child without getAccessibleContext), so no control in it can be seen or
grounded; the PDF Options dialog before it is observable, the file dialog is not.
"""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

from lamforge.env.docstate import DocState
from lamforge.env.office import find_binary
from lamforge.schema import Action
from lamforge.tasks import arguments
from lamforge.tasks.base import TaskFamily, Verdict, failed, finish, passed, register
from lamforge.tasks.template_files import read_document

def save_as(path: str) -> Action:
    return Action(function="save_as", args={"path": path})


def _file_params(template, rng, suffix: str) -> dict:
    name = arguments.file_stem(rng, template.id.split("_")[0])
    return {"template": template.id, "title": template.title, "stem": name, "file": f"{name}{suffix}"}


def _output(params: dict, out_dir: Path | None) -> Path | Verdict:
    if out_dir is None:
        return failed("no output folder was given to the checker")
    path = Path(out_dir) / params["file"]
    if not path.is_file():
        present = sorted(p.name for p in Path(out_dir).iterdir()) if Path(out_dir).is_dir() else []
        return failed(f"{params['file']} was not saved (the output folder holds {present})")
    return path


# ---------------------------------------------------------------------------------------------------------------
# PDF


def pdf_strings(data: bytes, key: bytes = b"Title") -> list[str]:
    """The values of /Title entries: the document title in the Info dictionary and the headings in the outline.

    Why by hand: these entries are uncompressed text strings (UTF-16BE hex or literal) in every PDF LibreOffice
    writes, and reading them needs no PDF library; the page text itself sits in compressed, font-encoded streams.
    """
    out = []
    for match in re.finditer(rb"/" + key + rb"\s*(?:<([0-9A-Fa-f\s]*)>|\(((?:\\.|[^\\)])*)\))", data):
        if match.group(1) is not None:
            raw = bytes.fromhex(re.sub(rb"\s", b"", match.group(1)).decode())
            out.append(raw[2:].decode("utf-16-be", "replace") if raw[:2] == b"\xfe\xff" else raw.decode("latin-1"))
        else:
            out.append(re.sub(rb"\\(.)", rb"\1", match.group(2)).decode("latin-1"))
    return out


def pdf_text(path: Path) -> str | None:
    """The PDF's page text from poppler's pdftotext when it is installed, else None."""
    tool = find_binary("pdftotext")
    if tool is None:
        return None
    try:
        return subprocess.run([tool, "-q", str(path), "-"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None


@register
class ExportPdf(TaskFamily):
    id = "export_pdf"
    category = "file"
    phrasings = [
        "Export as {file}",
        "Export the document as a PDF named {file}.",
        "Please save a PDF version of this document called {file}.",
        "Could you turn this document into a PDF? Name the file {file}.",
        "Save the document as a PDF called {file}.",
        "Export to PDF as {file}",
        "Make a PDF named {file}",
        "Create {file} from this document.",
        "I need a PDF of this to send around, saved as {file}.",
    ]

    def sample(self, template, rng):
        return _file_params(template, rng, ".pdf")

    def check(self, params, state, out_dir=None):
        path = _output(params, out_dir)
        if isinstance(path, Verdict):
            return path
        data = path.read_bytes()
        if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
            return failed(f"{params['file']} is not a complete PDF file")
        if not re.search(rb"/Type\s*/Page[^s]", data):
            return failed(f"{params['file']} has no pages")
        text = pdf_text(path)
        if text is not None:
            if params["title"] not in " ".join(text.split()):
                return failed(f"the text of {params['file']} does not contain the title {params['title']!r}")
            return passed(f"{params['file']} is a PDF whose text contains {params['title']!r}")
        if params["title"] not in pdf_strings(data):
            return failed(f"{params['file']} is not titled {params['title']!r} (titles: {pdf_strings(data)[:5]})")
        return passed(f"{params['file']} is a PDF titled {params['title']!r}")

    def solve(self, params, obs):
        yield finish(save_as(params["file"]))

    def wrong(self, params, obs):
        # The right name in the wrong format: an OpenDocument file, not a PDF.
        yield finish(save_as(params["stem"] + ".odt"))


# ---------------------------------------------------------------------------------------------------------------
# Word


@register
class SaveDocx(TaskFamily):
    id = "save_docx"
    category = "file"
    phrasings = [
        "Save as {file}",
        "Save a copy of the document in Word format as {file}.",
        "Please save this document as a .docx file named {file}.",
        "Could you store the document as a Word file called {file}?",
        "Save the document as {file}",
        "Save a Word copy as {file}",
        "Export the document to Word as {file}",
        "Write the document to {file} in Word format.",
        "Someone needs this in Microsoft Word format; save it as {file}.",
    ]

    def sample(self, template, rng):
        return _file_params(template, rng, ".docx")

    def check(self, params, state: DocState, out_dir=None):
        path = _output(params, out_dir)
        if isinstance(path, Verdict):
            return path
        try:
            with zipfile.ZipFile(path) as package:
                if "word/document.xml" not in package.namelist():
                    return failed(f"{params['file']} is not a Word document (no word/document.xml)")
            blocks = read_document(path)
        except (zipfile.BadZipFile, ValueError, KeyError) as exc:
            return failed(f"{params['file']} cannot be read as a .docx: {exc}")
        saved = [b.text for b in blocks if b.kind == "paragraph"]
        live = [p.text for p in state.paragraphs]
        if saved != live:
            differ = next((i for i, (a, b) in enumerate(zip(saved, live)) if a != b), min(len(saved), len(live)))
            return failed(f"{params['file']} differs from the document at paragraph {differ} "
                          f"({len(saved)} paragraphs saved, {len(live)} in the document)")
        tables = [b.rows for b in blocks if b.kind == "table"]
        if tables != [t.rows for t in state.tables]:
            return failed(f"the tables in {params['file']} differ from the document's")
        return passed(f"{params['file']} holds the document's {len(live)} paragraphs and {len(tables)} table(s)")

    def solve(self, params, obs):
        yield finish(save_as(params["file"]))

    def wrong(self, params, obs):
        yield finish(save_as(params["stem"] + ".odt"))
