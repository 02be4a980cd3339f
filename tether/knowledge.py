"""Knowledge documents: provenance (front matter, or the source's rule and HTTP headers), read
from markdown, text or HTML, and split into citable chunks."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tether.handed import Unreadable, load_yaml, read_small

_SECTION = re.compile(r"^##\s+(.+)$", re.MULTILINE)


class DocumentMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc_id: str
    title: str
    version: int
    effective_date: date
    updated_at: datetime
    status: str = "current"
    superseded_by: str | None = None
    source: str
    max_age_days: int
    # A hard end of validity (a promotion, a temporary policy), besides the maximum age.
    valid_until: datetime | None = None

    @field_validator("updated_at", "valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """A time written without a zone is UTC: naive and aware times do not compare."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def stale_at(self) -> datetime:
        aged = self.updated_at + timedelta(days=self.max_age_days)
        return min(aged, self.valid_until) if self.valid_until else aged


@dataclass(frozen=True)
class Chunk:
    passage_id: str
    text: str
    embed_text: str
    content_hash: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Document:
    name: str  # the file (or URL) it was read from, as its source names it
    meta: DocumentMeta
    chunks: list[Chunk]


@dataclass(frozen=True)
class Folder:
    """A directory as read: its documents, and the files skipped (name -> why), whose chunks
    from an earlier refresh stay as they were."""

    documents: list[Document]
    skipped: dict[str, str] = field(default_factory=dict)


DOCUMENT_LIMIT = 20_000_000  # bytes of one file: a manual, not a disk image
# A chunk's longest text. Retrieval returns at most max_chars (3,000 by default) of passages,
# so a longer section could never be returned whole; it is split, each piece under its
# heading. The shipped handbooks' sections are all shorter (their passage ids stay).
CHUNK_CHARS = 1_200


class DocumentError(ValueError):
    """A document that cannot be ingested, with the file it came from."""


def parse_front_matter(name: str, raw: str) -> tuple[DocumentMeta, str]:
    parts = raw.split("---", 2)
    if not raw.startswith("---") or len(parts) < 3:
        raise DocumentError(f"{name}: missing YAML front matter between '---' lines")
    try:
        meta = DocumentMeta.model_validate(load_yaml(parts[1]))  # fetched from anywhere
    except ValidationError as err:  # one line: each field and what is wrong with it
        said = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'front matter'}: {e['msg']}" for e in err.errors()
        )
        raise DocumentError(f"{name}: bad front matter: {said}") from None
    except Exception as err:
        raise DocumentError(f"{name}: bad front matter: {err}") from err
    return meta, parts[2].strip()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "document"


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def source_name(location: str, own: Iterable[tuple[str | Path, str]] = ()) -> str:
    """The name of a source given none: the pack's own name for one of its own locations
    (``own``: location, name); else readable and unique to where it reads. A folder's own
    name is not unique (every pack's folder is "kb", and a second folder called kb would
    take over the pack's chunks), nor is a URL cut to fit; so the name carries a hash of
    the resolved path or the URL."""
    remote = "://" in location
    key = location if remote else str(Path(location).expanduser().resolve())
    for where, name in own:
        if (str(where) if remote else str(Path(where).expanduser().resolve())) == key:
            return name
    if remote:
        url = urlsplit(location)
        readable = slug(f"{url.hostname or ''}{url.path}")
    else:
        readable = slug(Path(key).name)
    return f"{readable[:55]}-{short_hash(key)}"


def document_id(source: str, name: str) -> str:
    """The id of a document without front matter. A slug loses case, punctuation and length
    ("Returns FAQ.txt" and "returns_faq.txt" are one slug), so a lossy one carries a hash of
    what it was made from: two names are never one document."""
    raw = f"{source}-{name}"
    readable = slug(raw)
    return readable if readable == raw else f"{readable[:71]}-{short_hash(raw)}"


class _HtmlText(HTMLParser):
    """An HTML page as markdown-ish text: its title, '## ' for headings, paragraphs kept."""

    SKIP = frozenset({"script", "style", "nav", "header", "footer", "noscript"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.lines: list[str] = []
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag == "title":
            self._in_title = True
        elif tag in ("h1", "h2", "h3"):
            self.lines.append("\n## ")
        elif tag in ("p", "li", "br", "div", "tr"):
            self.lines.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in ("h1", "h2", "h3"):
            self.lines.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.lines.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, body with '## ' section headings) of an HTML page."""
    parser = _HtmlText()
    parser.feed(html)
    body = "".join(parser.lines)
    lines = [" ".join(line.split()) for line in body.splitlines()]
    text = "\n".join(line for line in lines if line and line != "##")
    return " ".join(parser.title.split()), text


def read_document(
    name: str,
    raw: str,
    *,
    kind: str,
    source: str,
    updated_at: datetime,
    max_age_days: int,
    valid_until: datetime | None = None,
    version: int = 1,
) -> tuple[DocumentMeta, str]:
    """A document's provenance and body. Markdown with front matter speaks for itself; other
    documents get the source's freshness rule, and ``updated_at`` (Last-Modified, mtime)."""
    if kind == "markdown" and raw.startswith("---"):
        return parse_front_matter(name, raw)
    if kind == "html":
        title, body = html_to_text(raw)
    else:  # the first line is the title; a document of one line is its own body too
        first, _, body = raw.strip().partition("\n")
        title = first.lstrip("# ").strip()
        body = body if body.strip() else first
    title = title or name
    meta = DocumentMeta(
        doc_id=document_id(source, name),  # unique across sources, as ids must be
        title=title[:200],
        version=version,
        effective_date=updated_at.date(),
        updated_at=updated_at,
        source=source,
        max_age_days=max_age_days,
        valid_until=valid_until,
    )
    return meta, body.strip()


def chunk_document(
    meta: DocumentMeta,
    body: str,
    *,
    fetched_at: datetime,
    name: str | None = None,
    limit: int = CHUNK_CHARS,
) -> list[Chunk]:
    """One chunk per '##' section (the whole body if there are none); a section longer than
    ``limit`` is split on paragraphs, then sentences, into pieces ``#i``, ``#i.1``, ..."""
    headings = list(_SECTION.finditer(body))
    sections: list[tuple[str, str]] = []
    if not headings:
        sections.append((meta.title, body))
    for i, match in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(body)
        sections.append((match.group(1).strip(), body[match.end() : end]))
    chunks = []
    for index, (heading, section) in enumerate(sections):
        for part, text in enumerate(_pieces(section, limit)):
            digest = hashlib.sha256(text.encode()).hexdigest()
            passage_id = f"{meta.doc_id}@v{meta.version}#{index}" + (f".{part}" if part else "")
            chunks.append(
                Chunk(
                    passage_id=passage_id,
                    text=text,
                    embed_text=f"{meta.title} - {heading}: {text}",
                    content_hash=digest,
                    payload={
                        "passage_id": passage_id,
                        "doc_id": meta.doc_id,
                        "title": f"{meta.title} - {heading}",
                        "source": meta.source,
                        "file": name,
                        "version": meta.version,
                        "status": meta.status,
                        "superseded_by": meta.superseded_by,
                        "effective_date": meta.effective_date.isoformat(),
                        "updated_at": meta.updated_at.isoformat(),
                        "stale_at": meta.stale_at().isoformat(),
                        "valid_until": meta.valid_until.isoformat() if meta.valid_until else None,
                        "max_age_days": meta.max_age_days,
                        "fetched_at": fetched_at.isoformat(),
                        "content_hash": digest,
                        "text": text,
                    },
                )
            )
    return chunks


_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _pieces(section: str, limit: int) -> list[str]:
    """A section's text, whitespace collapsed, in pieces of at most ``limit`` characters:
    whole paragraphs where they fit, else whole sentences, else words."""
    text = " ".join(section.split())
    if len(text) <= limit:
        return [text] if text else []
    units: list[str] = []
    for paragraph in _PARAGRAPH.split(section):
        paragraph = " ".join(paragraph.split())
        if len(paragraph) <= limit:
            units.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > limit:  # a sentence longer than a chunk: cut between words
                cut = sentence.rfind(" ", 0, limit + 1)
                cut = cut if cut > 0 else limit
                units.append(sentence[:cut])
                sentence = sentence[cut:].lstrip()
            units.append(sentence)
    pieces: list[str] = []
    for unit in filter(None, units):
        if pieces and len(pieces[-1]) + 1 + len(unit) <= limit:
            pieces[-1] = f"{pieces[-1]} {unit}"
        else:
            pieces.append(unit)
    return pieces


KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
}


def load_directory(
    path: Path,
    *,
    fetched_at: datetime,
    source: str = "kb",
    max_age_days: int = 30,
    valid_until: datetime | None = None,
    within: list[Path] | None = None,
) -> list[tuple[DocumentMeta, list[Chunk]]]:
    """The documents ``read_directory`` reads, as (provenance, chunks)."""
    folder = read_directory(
        path,
        fetched_at=fetched_at,
        source=source,
        max_age_days=max_age_days,
        valid_until=valid_until,
        within=within,
    )
    return [(d.meta, d.chunks) for d in folder.documents]


def read_directory(
    path: Path,
    *,
    fetched_at: datetime,
    source: str = "kb",
    max_age_days: int = 30,
    valid_until: datetime | None = None,
    within: list[Path] | None = None,
) -> Folder:
    """Every markdown, text and HTML file; files without front matter get the source's rule.
    With ``within``, the folder must be under one of those, and so must each file once its
    links are followed (a link to a file elsewhere is not read). A file that cannot be read
    (not a regular file, not UTF-8, bad front matter, a passage id another file has) is
    skipped and said why; the folder itself not being readable fails the whole source."""
    if within is not None and not _inside(path, within):  # first: say nothing of what is not
        raise DocumentError(
            f"{path}: not a folder this worker reads from "
            "(TETHER_RETRIEVAL__SOURCE_FOLDERS names the folders it may)"
        )
    if not path.is_dir():
        raise DocumentError(f"{path}: not a directory")
    folder = Folder(documents=[])
    seen: dict[str, str] = {}  # doc_id@version -> the file that has it
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in KINDS)
    for file in files if within is None else [f for f in files if _inside(f, within)]:
        try:
            mtime = datetime.fromtimestamp(file.stat().st_mtime, tz=fetched_at.tzinfo)
            modified = min(mtime, fetched_at)  # a clock ahead makes no file fresh for longer
            text = read_small(file, DOCUMENT_LIMIT)  # a FIFO named x.md does not hang it
            meta, body = read_document(
                file.name,  # with its extension: x.md and x.html are two documents
                text,
                kind=KINDS[file.suffix.lower()],
                source=source,
                updated_at=modified,
                max_age_days=max_age_days,
                valid_until=valid_until,
            )
        except DocumentError as err:
            folder.skipped[file.name] = str(err).removeprefix(f"{file.name}: ")
            continue
        except (OSError, Unreadable) as err:
            folder.skipped[file.name] = getattr(err, "strerror", None) or str(err)
            continue
        key = f"{meta.doc_id}@v{meta.version}"
        if key in seen:  # its passage ids would replace the other file's
            folder.skipped[file.name] = f"{key} is also {seen[key]}'s doc_id and version"
            continue
        seen[key] = file.name
        chunks = chunk_document(meta, body, fetched_at=fetched_at, name=file.name)
        folder.documents.append(Document(name=file.name, meta=meta, chunks=chunks))
    return folder


def _inside(path: Path, folders: list[Path]) -> bool:
    real = path.resolve()
    return any(real.is_relative_to(folder.resolve()) for folder in folders)
