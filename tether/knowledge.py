"""Knowledge documents: provenance (front matter, or the source's rule and HTTP headers), read
from markdown, text or HTML, and split into citable chunks."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

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


DOCUMENT_LIMIT = 20_000_000  # bytes of one file: a manual, not a disk image


class DocumentError(ValueError):
    """A document that cannot be ingested, with the file it came from."""


def parse_front_matter(name: str, raw: str) -> tuple[DocumentMeta, str]:
    parts = raw.split("---", 2)
    if not raw.startswith("---") or len(parts) < 3:
        raise DocumentError(f"{name}: missing YAML front matter between '---' lines")
    try:
        meta = DocumentMeta.model_validate(load_yaml(parts[1]))  # fetched from anywhere
    except Exception as err:
        raise DocumentError(f"{name}: bad front matter: {err}") from err
    return meta, parts[2].strip()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "document"


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
    else:  # the first line is the title
        first, _, body = raw.strip().partition("\n")
        title = first.lstrip("# ").strip()
    title = title or name
    meta = DocumentMeta(
        doc_id=slug(f"{source}-{name}"),  # unique across sources, as ids must be
        title=title[:200],
        version=version,
        effective_date=updated_at.date(),
        updated_at=updated_at,
        source=source,
        max_age_days=max_age_days,
        valid_until=valid_until,
    )
    return meta, body.strip()


def chunk_document(meta: DocumentMeta, body: str, *, fetched_at: datetime) -> list[Chunk]:
    """One chunk per '##' section (the whole body if there are none)."""
    headings = list(_SECTION.finditer(body))
    sections: list[tuple[str, str]] = []
    if not headings:
        sections.append((meta.title, body))
    for i, match in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(body)
        sections.append((match.group(1).strip(), body[match.end() : end]))
    chunks = []
    for index, (heading, text) in enumerate(sections):
        text = " ".join(text.split())
        if not text:
            continue
        digest = hashlib.sha256(text.encode()).hexdigest()
        passage_id = f"{meta.doc_id}@v{meta.version}#{index}"
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
    """Every markdown, text and HTML file; files without front matter get the source's rule.
    With ``within``, the folder must be under one of those, and so must each file once its
    links are followed (a link to a file elsewhere is not read)."""
    if within is not None and not _inside(path, within):  # first: say nothing of what is not
        raise DocumentError(
            f"{path}: not a folder this worker reads from "
            "(TETHER_RETRIEVAL__SOURCE_FOLDERS names the folders it may)"
        )
    if not path.is_dir():
        raise DocumentError(f"{path}: not a directory")
    documents = []
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in KINDS)
    for file in files if within is None else [f for f in files if _inside(f, within)]:
        try:
            modified = datetime.fromtimestamp(file.stat().st_mtime, tz=fetched_at.tzinfo)
            text = read_small(file, DOCUMENT_LIMIT)  # a FIFO named x.md does not hang it
        except (OSError, Unreadable) as err:
            raise DocumentError(f"{file.name}: {getattr(err, 'strerror', None) or err}") from None
        meta, body = read_document(
            file.name,  # with its extension: x.md and x.html are two documents
            text,
            kind=KINDS[file.suffix.lower()],
            source=source,
            updated_at=modified,
            max_age_days=max_age_days,
            valid_until=valid_until,
        )
        documents.append((meta, chunk_document(meta, body, fetched_at=fetched_at)))
    return documents


def _inside(path: Path, folders: list[Path]) -> bool:
    real = path.resolve()
    return any(real.is_relative_to(folder.resolve()) for folder in folders)
