"""Bytes of a document in, its text and its map of pages or sections out (the process function).

- PDF: pypdfium2 (Apache-2.0/BSD; PyMuPDF's AGPL does not fit an MIT project). Text per page, an
  anchor at each page, and where the PDF has an outline (bookmarks), an anchor where each section
  starts, naming its path ("2 Overview > 2.4 Testing Viewpoints").
- DOCX: the standard library's zipfile and expat, streamed, with zip-bomb guards. Paragraphs styled
  "Heading 1..9" (or given an outline level) are the section path; paragraphs and table cells are text.
- HTML: the standard library's parser; h1..h6 are sections; scripts and styles are dropped.
- Markdown: markdown-it-py (CommonMark); ATX and Setext headings are sections.
- Plain text: the text itself, no map.

Every refusal is a DocumentRejected whose kind is the job's stable error.type.
"""

from __future__ import annotations

import html.parser
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from xml.parsers import expat

from guideline_ingest.documents.formats import resolve
from guideline_ingest.documents.model import (
    SECTION_SEPARATOR,
    Anchor,
    DocumentFormat,
    DocumentRejected,
    ExtractedDocument,
    Location,
)
from guideline_ingest.documents.quotes import SearchableText


@dataclass(frozen=True)
class DocumentLimits:
    """What one document may hold; each is a parameter of the stack (infra/template.yaml)."""

    max_pages: int
    max_chars: int
    max_decompressed_bytes: int


def extract(data: bytes, declared: DocumentFormat | None, limits: DocumentLimits) -> ExtractedDocument:
    """The document's text and map; DocumentRejected (with its kind) when it cannot be read."""
    document_format = resolve(data, declared)
    document = _READERS[document_format](data, limits)
    if not document.text.strip():
        raise DocumentRejected("empty_document", "The document holds no text.")
    return document


def _too_large(what: str) -> DocumentRejected:
    return DocumentRejected("document_too_large", what)


class _Builder:
    """The text built block by block, with an anchor wherever the location changes."""

    def __init__(self, document_format: DocumentFormat, limits: DocumentLimits):
        self.format = document_format
        self.limits = limits
        self.parts: list[str] = []
        self.length = 0
        self.anchors: list[Anchor] = []
        self.headings: list[tuple[int, str]] = []  # the open headings: (level, title)

    def block(self, text: str) -> None:
        text = _clean(text).strip("\n")
        if not text.strip():
            return
        if self.parts:
            self._append("\n\n")
        self._append(text)

    def heading(self, level: int, title: str) -> None:
        title = " ".join(_clean(title).split())
        if not title:
            return
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, title))
        if self.parts:
            self._append("\n\n")
        self.anchor(self.length, Location(section=self.section))
        self._append(title)

    @property
    def section(self) -> str | None:
        return SECTION_SEPARATOR.join(title for _, title in self.headings) or None

    def anchor(self, start: int, location: Location) -> None:
        if self.anchors and self.anchors[-1].start == start:
            self.anchors.pop()
        if not self.anchors or self.anchors[-1].location != location:
            self.anchors.append(Anchor(start, location))

    def _append(self, text: str) -> None:
        self.length += len(text)
        if self.length > self.limits.max_chars:
            raise _too_large(f"The document holds more than {self.limits.max_chars:,} characters of text.")
        self.parts.append(text)

    def build(self, page_count: int | None = None) -> ExtractedDocument:
        return ExtractedDocument(
            text="".join(self.parts),
            format=self.format,
            anchors=tuple(self.anchors),
            page_count=page_count,
        )


# What PDF text holds that a reader (and a model) should not see: pdfium marks a hyphen it joined
# at a line end with U+FFFE (or U+0002), Symbol-font bullets come as U+F0B7 or U+001F, and
# PostgreSQL text cannot hold NUL.
_CLEAN = str.maketrans(
    {code: " " for code in (*range(0x01, 0x09), *range(0x0E, 0x1F))}
    | {
        0x00: None,
        0x0D: "\n",  # a lone carriage return ends a line; "\r\n" is replaced before
        0x0B: "\n",
        0x0C: "\n",
        0x02: "-",
        0xFFFE: "-",
        0x1F: "\u2022",
        0xF0B7: "\u2022",
    }
)
_TRAILING_SPACE = re.compile(r"[ \t]+(?=\n|\Z)")


def _clean(text: str) -> str:
    return _TRAILING_SPACE.sub("", text.replace("\r\n", "\n").translate(_CLEAN))


# PDF


def _read_pdf(data: bytes, limits: DocumentLimits) -> ExtractedDocument:
    import pypdfium2  # the process function alone carries it
    import pypdfium2.raw as pdfium_c

    if b"%%EOF" not in data[-1024:]:
        # pdfium reads what it can of a cut file; pages or text may be missing without a word.
        raise DocumentRejected("corrupt_document", "The PDF is truncated (it does not end with %%EOF).")
    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        if error.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise DocumentRejected(
                "encrypted_document",
                "The PDF is protected with a password; remove the protection and send it again.",
            ) from None
        raise DocumentRejected("corrupt_document", f"The PDF cannot be read: {error}") from None
    try:
        page_count = len(pdf)
        if page_count > limits.max_pages:
            raise _too_large(f"The PDF has {page_count:,} pages; at most {limits.max_pages:,} are read.")
        if page_count == 0:
            raise DocumentRejected("empty_document", "The PDF has no pages.")
        outline = _outline_by_page(pdf, page_count)
        texts: list[str] = []
        characters = pages_with_images = 0
        for index in range(page_count):
            page = pdf[index]
            try:
                textpage = page.get_textpage()
                text = _clean(textpage.get_text_range()).strip("\n")
                textpage.close()
                if not text.strip() and any(
                    True for _ in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2)
                ):
                    pages_with_images += 1
            except pypdfium2.PdfiumError as error:
                raise DocumentRejected(
                    "corrupt_document", f"Page {index + 1} of the PDF cannot be read: {error}"
                ) from None
            finally:
                page.close()
            characters += len(text)
            if characters > limits.max_chars:
                raise _too_large(f"The document holds more than {limits.max_chars:,} characters of text.")
            texts.append(text)
    finally:
        pdf.close()
    builder = _Builder(DocumentFormat.PDF, limits)
    for index, text in enumerate(_without_furniture(texts)):
        _add_pdf_page(builder, index + 1, text, outline.get(index, ()))
    document = builder.build(page_count)
    if pages_with_images and len(document.text.strip()) < 16 * page_count:
        raise DocumentRejected(
            "no_text_layer",
            "The PDF holds images of pages but no text layer (a scan); OCR is not offered: "
            "send a PDF with text, or run OCR on it first.",
        )
    return document


# Running heads and page numbers: lines at a page's top or bottom that recur (digits aside) on many
# pages. They are dropped, so that a sentence running on to the next page reads on as it does on
# paper (and a model's quote of it is found), and no chunk repeats them. A line that recurs less
# often goes too when it stands next to such a line (a running head wrapped onto a second line, a
# table's repeated header under it).
_FURNITURE_LINES = 3
_FURNITURE_SHARE = 0.3
_BESIDE_FURNITURE_SHARE = 0.1
# Page labels: "27", "iv", "7-1", "ES-2", "D-12", "Page 3 of 9" are one kind of line.
_PAGE_LABEL = re.compile(r"(?:[a-z]{1,3}-?)?\d+(?:-\d+)?|[ivxlcdm]+|page \d+(?: of \d+)?")


def _furniture_key(line: str) -> str:
    words = " ".join(line.split()).lower()
    # A running head holding the section's title varies at its end.
    return "#" if _PAGE_LABEL.fullmatch(words) else re.sub(r"\d+", "#", words)[:32]


def _without_furniture(texts: list[str]) -> list[str]:
    pages = [text.split("\n") for text in texts]
    counts: dict[str, int] = {}
    for lines in pages:
        edges = {_furniture_key(line) for line in (*lines[:_FURNITURE_LINES], *lines[-_FURNITURE_LINES:])}
        for key in edges - {""}:
            counts[key] = counts.get(key, 0) + 1
    furniture = {key for key, count in counts.items() if count >= max(3, _FURNITURE_SHARE * len(pages))}
    if not furniture:
        return texts
    beside = {key for key, count in counts.items() if count >= max(3, _BESIDE_FURNITURE_SHARE * len(pages))}

    def edge_lines(keys: list[str]) -> int:
        dropped, seen_furniture = 0, False
        for key in keys[:_FURNITURE_LINES]:
            if key in furniture or key == "":
                seen_furniture = seen_furniture or key in furniture
            elif not (seen_furniture and key in beside):
                break
            dropped += 1
        return dropped if seen_furniture else 0

    kept = []
    for lines in pages:
        keys = [_furniture_key(line) for line in lines]
        top = edge_lines(keys)
        bottom = len(lines) - edge_lines(keys[top:][::-1])
        kept.append("\n".join(lines[top:bottom]))
    return kept


def _add_pdf_page(builder: _Builder, page: int, text: str, sections: tuple[tuple[str, list], ...]) -> None:
    text = text.strip("\n")  # as block() appends it, so offsets into it hold
    start = builder.length + (2 if builder.parts else 0)
    builder.anchor(start, Location(page=page, section=builder.section))
    found_from = offset = 0
    searchable = SearchableText(text.lower()) if sections and len(text.lower()) == len(text) else None
    for title, headings in sections:
        builder.headings = headings
        span = searchable.find(title.lower(), found_from) if searchable else None
        # A title not found on its page (drawn as an image, or worded otherwise) starts the page.
        offset = span.start if span else offset
        found_from = span.end if span else found_from
        builder.anchor(start + offset, Location(page=page, section=builder.section))
    builder.block(text)


def _outline_by_page(pdf, page_count: int) -> dict[int, tuple[tuple[str, list], ...]]:
    """Each page's bookmarks in order: (title, the open headings after it)."""
    by_page: dict[int, list[tuple[str, list]]] = {}
    open_headings: list[tuple[int, str]] = []
    for bookmark in pdf.get_toc(max_depth=8):
        title = " ".join(bookmark.get_title().split())
        destination = bookmark.get_dest()
        index = destination.get_index() if destination is not None else None
        # Outlines hold stray entries such as "1." with no words, or pointing nowhere.
        if not re.search(r"[^\W\d_]", title) or index is None or not 0 <= index < page_count:
            continue
        level = bookmark.level
        while open_headings and open_headings[-1][0] >= level:
            open_headings.pop()
        open_headings.append((level, title))
        by_page.setdefault(index, []).append((title, list(open_headings)))
    return {index: tuple(entries) for index, entries in by_page.items()}


# DOCX

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
# Content read past: mc:Fallback repeats mc:Choice for old readers; a tracked move's source repeats
# its destination; a tracked formatting change holds the paragraph's former style.
_DOCX_SKIPPED = frozenset(
    {
        "http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback",
        _W + "moveFrom",
        _W + "pPrChange",
        _W + "rPrChange",
    }
)
# A Word file's XML compresses about 10:1; a ratio far past that is built to explode.
_MAX_RATIO = 200
_READ_SIZE = 64 * 1024
_HEADING_NAME = re.compile(r"heading\s*([1-9])", re.IGNORECASE)


def _read_docx(data: bytes, limits: DocumentLimits) -> ExtractedDocument:
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            _check_archive(archive, limits)
            budget = [limits.max_decompressed_bytes]
            heading_levels = _style_levels(archive, budget) if "word/styles.xml" in archive.namelist() else {}
            builder = _Builder(DocumentFormat.DOCX, limits)
            _DocxBody(builder, heading_levels).parse(archive, "word/document.xml", budget)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        OSError,
        NotImplementedError,
    ) as error:
        raise DocumentRejected("corrupt_document", f"The Word document cannot be read: {error}") from None
    return builder.build()


def _check_archive(archive: zipfile.ZipFile, limits: DocumentLimits) -> None:
    """Refuse a zip bomb from the sizes its directory declares, before decompressing anything."""
    members = archive.infolist()
    if any(member.flag_bits & 0x1 for member in members):
        raise DocumentRejected("encrypted_document", "The Word document's archive is encrypted.")
    declared = sum(member.file_size for member in members)
    if declared > limits.max_decompressed_bytes:
        raise _too_large(
            f"The Word document decompresses to {declared:,} bytes; at most "
            f"{limits.max_decompressed_bytes:,} are read."
        )
    for member in members:
        ratio = member.file_size // max(member.compress_size, 1)
        if member.file_size > 1_000_000 and ratio > _MAX_RATIO:
            raise _too_large(f"The Word document's {member.filename} expands {ratio:,} times (a zip bomb).")


def _stream_xml(archive: zipfile.ZipFile, name: str, parser, budget: list[int]) -> None:
    """Feed a member to expat in pieces, counting what is decompressed against the budget."""
    try:
        with archive.open(name) as member:
            while piece := member.read(_READ_SIZE):
                budget[0] -= len(piece)
                if budget[0] < 0:
                    raise _too_large("The Word document decompresses to more than the limit allows.")
                parser.Parse(piece, False)
            parser.Parse(b"", True)
    except expat.ExpatError as error:
        raise DocumentRejected(
            "corrupt_document", f"The Word document's {name} is not valid XML: {error}"
        ) from None
    except KeyError:
        raise DocumentRejected("corrupt_document", f"The Word document has no {name}.") from None


def _safe_parser():
    """expat with no document type declarations: no entity expansion, so no billion laughs."""
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse(*_args) -> None:
        raise DocumentRejected(
            "corrupt_document", "The Word document's XML declares a DTD, which Word never writes."
        )

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    return parser


def _style_levels(archive: zipfile.ZipFile, budget: list[int]) -> dict[str, int]:
    """Paragraph style id -> heading level (1-based), following "based on" to the style it inherits."""
    names: dict[str, str] = {}
    outline_levels: dict[str, int] = {}
    based_on: dict[str, str] = {}
    current: list[str] = []

    def start(tag: str, attributes: dict[str, str]) -> None:
        if tag == _W + "style":
            current[:] = (
                [attributes.get(_W + "styleId", "")] if attributes.get(_W + "type") == "paragraph" else []
            )
        elif current and tag == _W + "name":
            names[current[0]] = attributes.get(_W + "val", "")
        elif current and tag == _W + "basedOn":
            based_on[current[0]] = attributes.get(_W + "val", "")
        elif current and tag == _W + "outlineLvl" and attributes.get(_W + "val", "").isdigit():
            outline_levels[current[0]] = int(attributes[_W + "val"]) + 1

    parser = _safe_parser()
    parser.StartElementHandler = start
    _stream_xml(archive, "word/styles.xml", parser, budget)

    def level_of(style: str, depth: int = 0) -> int | None:
        if match := _HEADING_NAME.fullmatch(names.get(style, "").strip()):
            return int(match.group(1))
        if style in outline_levels:
            return outline_levels[style] if outline_levels[style] <= 9 else None
        parent = based_on.get(style)
        return level_of(parent, depth + 1) if parent and depth < 10 else None

    return {style: level for style in names if (level := level_of(style)) is not None}


class _DocxBody:
    """word/document.xml as a stream of paragraphs; table rows become "cell | cell" lines."""

    def __init__(self, builder: _Builder, heading_levels: dict[str, int]):
        self.builder = builder
        self.heading_levels = heading_levels
        self.paragraph: list[str] | None = None
        self.level: int | None = None
        self.listed = False
        self.in_text = False
        self.skipping = 0  # depth inside an element of _DOCX_SKIPPED
        self.rows: list[list[str]] = []
        self.cells: list[list[str]] = []

    def parse(self, archive: zipfile.ZipFile, name: str, budget: list[int]) -> None:
        parser = _safe_parser()
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.characters
        parser.buffer_text = True
        _stream_xml(archive, name, parser, budget)

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        if self.skipping or tag in _DOCX_SKIPPED:
            self.skipping += 1
            return
        if not tag.startswith(_W):
            return
        local = tag[len(_W) :]
        if local == "p":
            self.paragraph, self.level, self.listed = [], None, False
        elif local == "numPr":
            self.listed = True
        elif local == "pStyle" and self.paragraph is not None:
            self.level = self.heading_levels.get(attributes.get(_W + "val", ""), self.level)
        elif (
            local == "outlineLvl" and self.paragraph is not None and attributes.get(_W + "val", "").isdigit()
        ):
            level = int(attributes[_W + "val"]) + 1
            self.level = level if level <= 9 else None
        elif local == "t":
            self.in_text = True
        elif self.paragraph is not None and local in ("tab", "br", "cr", "noBreakHyphen"):
            self.paragraph.append({"tab": "\t", "noBreakHyphen": "-"}.get(local, "\n"))
        elif local == "tr":
            self.rows.append([])
        elif local == "tc":
            self.cells.append([])

    def end(self, tag: str) -> None:
        if self.skipping:
            self.skipping -= 1
            return
        if not tag.startswith(_W):
            return
        local = tag[len(_W) :]
        if local == "t":
            self.in_text = False
        elif local == "p" and self.paragraph is not None:
            text = "".join(self.paragraph)
            if self.cells:
                self.cells[-1].append(text)
            elif self.level is not None:
                self.builder.heading(self.level, text)
            else:
                self.builder.block(f"- {text}" if self.listed and text.strip() else text)
            self.paragraph = None
        elif local == "tc" and self.cells:
            cell = " ".join(" ".join(self.cells.pop()).split())
            if self.rows:
                self.rows[-1].append(cell)
        elif local == "tr" and self.rows:
            line = " | ".join(cell for cell in self.rows.pop() if cell)
            if self.cells:
                self.cells[-1].append(line)
            else:
                self.builder.block(line)

    def characters(self, data: str) -> None:
        if self.in_text and self.paragraph is not None and not self.skipping:
            self.paragraph.append(data)


# HTML

# Not <head>: its end tag may be left out, and then the body would be lost; only its <title> holds text.
_HTML_SKIPPED = frozenset({"script", "style", "noscript", "template", "title", "svg", "math", "object"})
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "nav", "ol",
        "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul",
    }
)  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9_-]+)""", re.IGNORECASE)


class _HtmlText(html.parser.HTMLParser):
    def __init__(self, builder: _Builder):
        super().__init__(convert_charrefs=True)
        self.builder = builder
        self.buffer: list[str] = []
        self.skipping: list[str] = []
        self.heading: int | None = None
        self.preformatted = 0
        self.cells: list[str] | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _HTML_SKIPPED:
            self.skipping.append(tag)
        elif self.skipping:
            return
        elif tag == "br":
            self.buffer.append("\n")
        elif tag in _HEADINGS:
            self.flush()
            self.heading = _HEADINGS[tag]
        elif tag in ("td", "th"):
            self.cell()
        elif tag in _HTML_BLOCKS:
            self.flush()
            if tag == "tr":
                self.cells = []
            elif tag == "li":
                self.buffer.append("- ")
            elif tag == "pre":
                self.preformatted += 1

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag not in _HTML_SKIPPED:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping[-1]:
                self.skipping.pop()
            return
        if tag in _HEADINGS:
            self.flush()
        elif tag in ("td", "th"):
            self.cell()
        elif tag == "tr":
            self.flush()
        elif tag in _HTML_BLOCKS:
            self.flush()
            if tag == "pre" and self.preformatted:
                self.preformatted -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.buffer.append(data if self.preformatted else re.sub(r"\s+", " ", data))

    def cell(self) -> None:
        text = " ".join("".join(self.buffer).split())
        self.buffer = []
        if self.cells is None:
            self.cells = []
        if text:
            self.cells.append(text)

    def flush(self) -> None:
        if self.cells is not None:
            self.cell()
            cells, self.cells = self.cells, None
            self.builder.block(" | ".join(cells))
        text = "".join(self.buffer)
        self.buffer = []
        if self.heading is not None:
            self.builder.heading(self.heading, text)
            self.heading = None
        elif self.preformatted:
            self.builder.block(text)
        else:
            self.builder.block("\n".join(" ".join(line.split()) for line in text.split("\n")))


def _decode_html(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    match = _META_CHARSET.search(data[:4096])
    try:
        return data.decode(match.group(1).decode("ascii") if match else "windows-1252", errors="replace")
    except LookupError:
        return data.decode("windows-1252", errors="replace")


def _read_html(data: bytes, limits: DocumentLimits) -> ExtractedDocument:
    text = _decode_html(data)
    _check_chars(text, limits)
    builder = _Builder(DocumentFormat.HTML, limits)
    parser = _HtmlText(builder)
    parser.feed(text)
    parser.close()
    parser.flush()
    return builder.build()


# Markdown and plain text


def _decode_text(data: bytes, limits: DocumentLimits) -> str:
    text = data.decode("utf-8-sig", errors="replace")
    _check_chars(text, limits)
    return text


def _check_chars(text: str, limits: DocumentLimits) -> None:
    if len(text) > limits.max_chars:
        raise _too_large(
            f"The document holds {len(text):,} characters; at most {limits.max_chars:,} are read."
        )


# YAML front matter (Jekyll, Hugo, pandoc) is metadata, not text; CommonMark would read a heading in it.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n.*?\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def _read_markdown(data: bytes, limits: DocumentLimits) -> ExtractedDocument:
    from markdown_it import MarkdownIt  # the process function alone carries it

    source = _FRONT_MATTER.sub("", _decode_text(data, limits), count=1)
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    builder = _Builder(DocumentFormat.MARKDOWN, limits)
    heading: int | None = None
    row: list[str] | None = None
    bullet = ""
    for token in tokens:
        if token.type == "heading_open":
            heading = int(token.tag[1])
        elif token.type == "heading_close":
            heading = None
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            builder.block(" | ".join(cell for cell in row if cell))
            row = None
        elif token.type == "list_item_open":
            bullet = "- "
        elif token.type == "inline":
            text = _markdown_inline(token.children or [])
            if heading is not None:
                builder.heading(heading, text)
            elif row is not None:
                row.append(" ".join(text.split()))
            else:
                builder.block(bullet + text)
                bullet = ""
        elif token.type in ("fence", "code_block"):
            builder.block(token.content)
        elif token.type == "html_block":
            builder.block(re.sub(r"<[^>]*>", "", token.content))
    return builder.build()


def _markdown_inline(children) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(_markdown_inline(child.children or []))
    return "".join(parts)


def _read_text(data: bytes, limits: DocumentLimits) -> ExtractedDocument:
    return ExtractedDocument(text=_clean(_decode_text(data, limits)).strip("\n"), format=DocumentFormat.TEXT)


_READERS: dict[DocumentFormat, Callable[[bytes, DocumentLimits], ExtractedDocument]] = {
    DocumentFormat.PDF: _read_pdf,
    DocumentFormat.DOCX: _read_docx,
    DocumentFormat.HTML: _read_html,
    DocumentFormat.MARKDOWN: _read_markdown,
    DocumentFormat.TEXT: _read_text,
}
