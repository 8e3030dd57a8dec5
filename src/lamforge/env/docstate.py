"""DocState: the document's ground truth, read from the UNO document model, for task checkers.

Lengths are in 1/100 mm (UNO's unit). The office-side script (office_side/lamforge_office.py, `docstate`) fills
these fields; this module gives them types and the queries checkers need.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Run(BaseModel):
    """A text portion with uniform character properties."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    text: str
    start: int
    kind: str = "Text"
    italic: bool = False
    weight: float = Field(100.0, alias="CharWeight")
    underline: int = Field(0, alias="CharUnderline")
    strikeout: int = Field(0, alias="CharStrikeout")
    escapement: int = Field(0, alias="CharEscapement")
    font_name: str = Field("", alias="CharFontName")
    font_size: float = Field(12.0, alias="CharHeight")
    color: int = Field(-1, alias="CharColor")
    back_color: int = Field(-1, alias="CharBackColor")
    highlight: int = Field(-1, alias="CharHighlight")
    case_map: int = Field(0, alias="CharCaseMap")
    hyperlink: str = Field("", alias="HyperLinkURL")

    @property
    def bold(self) -> bool:
        return self.weight >= 150

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def highlighted(self) -> bool:
        return self.highlight not in (-1, None) or self.back_color not in (-1, None)


class ParagraphState(BaseModel):
    index: int
    text: str
    style: str
    align: str
    line_spacing_mode: int  # 0 proportional, 1 minimum, 2 leading, 3 fixed
    line_spacing: int  # percent for mode 0, else 1/100 mm
    left_margin: int
    right_margin: int
    first_line_indent: int
    top_margin: int
    bottom_margin: int
    list_label: str = ""
    numbering_style: str = ""
    is_list: bool = False
    outline_level: int = 0
    break_type: str = "NONE"
    page_desc_name: str = ""
    runs: list[Run] = Field(default_factory=list)

    def runs_in(self, start: int, end: int) -> list[Run]:
        """Runs overlapping the character range [start, end)."""
        return [r for r in self.runs if r.kind == "Text" and r.start < end and r.end > start]


class TableState(BaseModel):
    name: str
    rows: list[list[str]]
    after_paragraph: int = -1

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), (len(self.rows[0]) if self.rows else 0)


class PageState(BaseModel):
    style: str
    landscape: bool
    width: int
    height: int
    left_margin: int
    right_margin: int
    top_margin: int
    bottom_margin: int
    header_on: bool
    header_text: str
    footer_on: bool
    footer_text: str
    header_fields: list[str] = Field(default_factory=list)
    footer_fields: list[str] = Field(default_factory=list)
    columns: int = 1


class Comment(BaseModel):
    author: str = ""
    content: str
    anchor: str = ""


class Footnote(BaseModel):
    text: str
    label: str = ""


class Bookmark(BaseModel):
    name: str
    text: str = ""


class Hyperlink(BaseModel):
    text: str
    url: str


class Field_(BaseModel):
    kind: str
    text: str = ""


class DocState(BaseModel):
    paragraphs: list[ParagraphState]
    tables: list[TableState] = Field(default_factory=list)
    page: PageState
    fields: list[Field_] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)
    footnotes: list[Footnote] = Field(default_factory=list)
    bookmarks: list[Bookmark] = Field(default_factory=list)
    hyperlinks: list[Hyperlink] = Field(default_factory=list)
    page_count: int = 0
    modified: bool = False

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.paragraphs)

    def find(self, phrase: str, occurrence: int = 1) -> tuple[ParagraphState, int] | None:
        """The paragraph and offset of the n-th occurrence of phrase in body paragraphs (phrases never span paragraphs)."""
        seen = 0
        for p in self.paragraphs:
            start = p.text.find(phrase)
            while start >= 0:
                seen += 1
                if seen == occurrence:
                    return p, start
                start = p.text.find(phrase, start + 1)
        return None

    def runs_of(self, phrase: str, occurrence: int = 1) -> list[Run]:
        """The runs that carry the phrase's characters; empty when the phrase is not in the document."""
        hit = self.find(phrase, occurrence)
        if hit is None:
            return []
        paragraph, start = hit
        return paragraph.runs_in(start, start + len(phrase))

    def paragraph_with(self, text: str) -> ParagraphState | None:
        return next((p for p in self.paragraphs if text in p.text), None)
