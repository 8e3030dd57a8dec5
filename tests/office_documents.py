"""Template documents opened in the real office, edited there, and read back as the DocState a checker gets.

Why: a checker test is only as good as the states it is given. A DocState written by hand says what someone
believed LibreOffice reports; these are what it reports: the label of a default bullet list, a margin the office
rounds from 1.5 cm to 1499, the empty paragraph that Insert > Page Break splits off, the text of a footnote mark.

Each template is written to a .docx/.odt file with the project's writer and opened once; an edit runs on that
document through the office's document model and its own commands (the toolbar's bullets, the Styles menu's style),
the state is read, and the document is put back: undo for the text, the saved page style for page settings (Writer
keeps page style changes out of undo). A document that does not come back to its first state is opened again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lamforge.env.docstate import DocState
from lamforge.env.office import import_uno, property_values
from lamforge.tasks.template_files import write_template
from lamforge.tasks.templates import TemplateDoc, get_template

# The page style settings the edits change, in the order they are put back (the size before the orientation flag).
PAGE_SETTINGS = ("Width", "Height", "IsLandscape", "LeftMargin", "RightMargin", "TopMargin", "BottomMargin",
                 "HeaderIsOn", "FooterIsOn", "TextColumns")


class Editor:
    """One open document, with the few operations the checker tests need, each as the office performs it."""

    def __init__(self, env):
        self.env = env
        self.doc = env.doc
        self.uno = import_uno()

    # -- where ---------------------------------------------------------------------------------------------

    def paragraphs(self) -> list:
        """Body paragraphs in DocState's order (tables skipped)."""
        found, items = [], self.doc.Text.createEnumeration()
        while items.hasMoreElements():
            item = items.nextElement()
            if item.supportsService("com.sun.star.text.Paragraph"):
                found.append(item)
        return found

    def paragraph(self, index: int):
        return self.paragraphs()[index]

    def find(self, text: str, occurrence: int = 1):
        """A cursor over the n-th occurrence of `text` (case-sensitive), as Writer's find selects it."""
        search = self.doc.createSearchDescriptor()
        search.SearchString = text
        search.SearchCaseSensitive = True
        hits = self.doc.findAll(search)
        assert hits.getCount() >= occurrence, f"{text!r} occurs {hits.getCount()} time(s)"
        hit = hits.getByIndex(occurrence - 1)
        # Rebuilt from its start to its end: a comment inserted on the found range itself (or on a cursor copied
        # from it) is refused with "no SwTextAttr inserted?" and lands with no anchor.
        cursor = hit.getText().createTextCursorByRange(hit.getStart())
        cursor.gotoRange(hit.getEnd(), True)
        return cursor

    def span(self, first: int, last: int | None = None):
        """A cursor over paragraphs first..last."""
        paragraphs = self.paragraphs()
        cursor = self.doc.Text.createTextCursorByRange(paragraphs[first].getStart())
        cursor.gotoRange(paragraphs[first if last is None else last].getEnd(), True)
        return cursor

    def table(self, index: int):
        return self.doc.getTextTables().getByName(TemplateDoc.table_name(index))

    def page_style(self):
        return self.doc.StyleFamilies.getByName("PageStyles").getByName("Standard")

    # -- what ----------------------------------------------------------------------------------------------

    def select(self, text_range) -> None:
        self.doc.getCurrentController().select(text_range)

    def caret_at(self, text_range) -> None:
        self.doc.getCurrentController().getViewCursor().gotoRange(text_range, False)

    def command(self, name: str, **args) -> None:
        """A .uno: command on the current selection, as the menu or toolbar item that sends it."""
        ctx = self.env.office.ctx
        helper = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.DispatchHelper", ctx)
        helper.executeDispatch(self.doc.getCurrentController().getFrame(), name, "", 0, property_values(**args))

    def append(self, index: int, text: str) -> None:
        """Type `text` at the end of paragraph `index`."""
        self.doc.Text.insertString(self.paragraph(index).getEnd(), text, False)

    def delete(self, text_range) -> None:
        text_range.setString("")

    def add_paragraph(self, text: str) -> None:
        """A new last paragraph holding `text`."""
        end = self.doc.Text.getEnd()
        self.doc.Text.insertControlCharacter(end, 0, False)  # ControlCharacter.PARAGRAPH_BREAK
        self.doc.Text.insertString(self.doc.Text.getEnd(), text, False)

    def insert_content(self, service: str, text_range, absorb: bool = True, **props):
        """A text content (comment, bookmark, footnote, field) created with `props` and placed on `text_range`."""
        content = self.doc.createInstance(service)
        for name, value in props.items():
            setattr(content, name, value)
        text_range.getText().insertTextContent(text_range, content, absorb)
        return content

    def enum(self, type_name: str, value: str):
        return self.uno.Enum(type_name, value)

    def struct(self, type_name: str, **fields):
        value = self.uno.createUnoStruct(type_name)
        for name, field in fields.items():
            setattr(value, name, field)
        return value


Edit = Callable[[Editor], object]


class Documents:
    """The templates' files, opened in the session's office (WriterEnv), edited, read back and put back."""

    def __init__(self, env, folder: Path):
        self.env = env
        self.folder = folder
        self._doc = None  # the UNO document this object opened, while it is still the env's
        self._open_id: str | None = None
        self._untouched: dict[str, DocState] = {}

    def file(self, template_id: str) -> Path:
        spec = get_template(template_id)
        path = self.folder / spec.filename
        if not path.is_file():
            write_template(spec, path)
        return path

    def _open(self, template_id: str) -> Editor:
        if self._open_id != template_id or self._doc is None or self.env.doc is not self._doc:
            self.env.reset(options={"doc": str(self.file(template_id))})
            self._doc, self._open_id = self.env.doc, template_id
            self._untouched.setdefault(template_id, self.env.doc_state())
        return Editor(self.env)

    def untouched(self, template_id: str) -> DocState:
        """The state LibreOffice reports for the template's file as it opens."""
        self._open(template_id)
        return self._untouched[template_id]

    def state(self, template_id: str, *edits: Edit) -> DocState:
        """The state after `edits` ran, in order, on the opened template; the document is put back afterwards."""
        editor = self._open(template_id)
        page = editor.page_style()
        saved = {name: page.getPropertyValue(name) for name in PAGE_SETTINGS}
        office = self.env.office
        try:
            for edit in edits:
                office.guarded(edit, editor, timeout=60)  # a hang kills the office rather than the test run
            state = self.env.doc_state()
        finally:
            self._put_back(editor, saved)
        assert _comparable(state) != _comparable(self._untouched[template_id]), "the edit changed nothing"
        return state

    def save(self, template_id: str, path: Path) -> DocState:
        """Save the opened template through the office to `path` (the format by its suffix); its state then."""
        editor = self._open(template_id)
        try:
            self.env.save_as(path)
            return self.env.doc_state()
        finally:
            self._put_back(editor, None)

    def _put_back(self, editor: Editor, page_settings: dict | None) -> None:
        def undo():
            undo_manager = editor.doc.getUndoManager()
            while undo_manager.isUndoPossible():
                undo_manager.undo()
            if page_settings:
                page = editor.page_style()
                for name in PAGE_SETTINGS:
                    if page.getPropertyValue(name) != page_settings[name]:
                        page.setPropertyValue(name, page_settings[name])

        try:
            self.env.office.guarded(undo, timeout=60)
            back = _comparable(self.env.doc_state()) == _comparable(self._untouched[self._open_id])
        except Exception:  # noqa: BLE001  whatever went wrong, the next state starts from a fresh copy
            back = False
        if not back:
            self._doc = None


def _comparable(state: DocState) -> dict:
    return state.model_dump(exclude={"modified"})
