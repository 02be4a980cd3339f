"""Knowledge-base documents: front matter with provenance, split into citable chunks."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

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

    def stale_at(self) -> datetime:
        return self.updated_at + timedelta(days=self.max_age_days)


@dataclass(frozen=True)
class Chunk:
    passage_id: str
    text: str
    embed_text: str
    content_hash: str
    payload: dict[str, Any]


class DocumentError(ValueError):
    """A document that cannot be ingested, with the file it came from."""


def parse_document(path: Path) -> tuple[DocumentMeta, str]:
    raw = path.read_text(encoding="utf-8")
    parts = raw.split("---", 2)
    if not raw.startswith("---") or len(parts) < 3:
        raise DocumentError(f"{path}: missing YAML front matter between '---' lines")
    try:
        meta = DocumentMeta.model_validate(yaml.safe_load(parts[1]))
    except Exception as err:
        raise DocumentError(f"{path}: bad front matter: {err}") from err
    return meta, parts[2].strip()


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
                    "fetched_at": fetched_at.isoformat(),
                    "content_hash": digest,
                    "text": text,
                },
            )
        )
    return chunks


def load_directory(path: Path, *, fetched_at: datetime) -> list[tuple[DocumentMeta, list[Chunk]]]:
    if not path.is_dir():
        raise DocumentError(f"{path}: not a directory")
    documents = []
    for file in sorted(path.glob("*.md")):
        meta, body = parse_document(file)
        documents.append((meta, chunk_document(meta, body, fetched_at=fetched_at)))
    return documents
