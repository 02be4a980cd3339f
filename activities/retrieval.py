"""Retrieval activities: Qdrant + embeddings. Evidence knows its age, duplicates and budget."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tether.config import RetrievalConfig
from tether.contracts import (
    DroppedPassage,
    DropReason,
    Evidence,
    FreshnessReport,
    IngestInput,
    IngestReport,
    Passage,
    RetrievalQuery,
)
from tether.embeddings import Embedder
from tether.knowledge import DocumentError, load_directory
from tether.store import Store

if TYPE_CHECKING:
    # Types only: the client imports this module (through the workflow) and needs no Qdrant.
    from tether.vectorstore import Hit, VectorStore


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class RetrievalActivities:
    """Sync activities: embedding is CPU-bound and runs in the worker's thread pool."""

    def __init__(
        self,
        embedder: Embedder,
        vectors: VectorStore,
        store: Store,
        config: RetrievalConfig,
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._store = store
        self._config = config

    def _now(self) -> datetime:
        return self._config.freshness_as_of or datetime.now(UTC)

    @activity.defn
    def retrieve_evidence(self, query: RetrievalQuery) -> Evidence:
        cfg, now = self._config, self._now()
        vector = self._embedder.encode([query.text])[0]
        kept: list[Passage] = []
        kept_vectors: list[np.ndarray] = []
        dropped: list[DroppedPassage] = []
        chars = 0
        for hit in self._vectors.search(vector, cfg.top_k):
            reason = self._drop_reason(hit, now, kept, kept_vectors, chars)
            if reason is not None:
                dropped.append(
                    DroppedPassage(passage_id=hit.passage_id, reason=reason, score=hit.score)
                )
                continue
            passage = self._passage(hit)
            kept.append(passage)
            kept_vectors.append(hit.vector)
            chars += len(passage.text)
        refreshed = self._store.last_refresh()
        age = (now - refreshed).total_seconds() if refreshed else None
        return Evidence(
            query=query.text,
            passages=kept,
            freshness=FreshnessReport(
                index_refreshed_at=refreshed,
                index_age_seconds=age,
                stale_index=age is None or age > cfg.max_index_age.total_seconds(),
                dropped=dropped,
            ),
        )

    def _drop_reason(
        self,
        hit: Hit,
        now: datetime,
        kept: list[Passage],
        kept_vectors: list[np.ndarray],
        chars: int,
    ) -> DropReason | None:
        cfg, payload = self._config, hit.payload
        if payload.get("status") == "superseded":
            return "superseded"
        if _utc(str(payload["stale_at"])) < now:
            return "stale"
        if hit.score < cfg.min_score:
            return "low_score"
        if any(p.content_hash == payload["content_hash"] for p in kept) or any(
            float(hit.vector @ v) >= cfg.duplicate_similarity for v in kept_vectors
        ):
            return "duplicate"
        if len(kept) >= cfg.max_passages or chars + len(str(payload["text"])) > cfg.max_chars:
            return "budget"
        return None

    @staticmethod
    def _passage(hit: Hit) -> Passage:
        p = hit.payload
        return Passage(
            passage_id=hit.passage_id,
            doc_id=str(p["doc_id"]),
            title=str(p["title"]),
            source=str(p["source"]),
            version=int(p["version"]),
            effective_date=p["effective_date"],
            updated_at=_utc(str(p["updated_at"])),
            fetched_at=_utc(str(p["fetched_at"])),
            content_hash=str(p["content_hash"]),
            text=str(p["text"]),
            score=hit.score,
        )

    @activity.defn
    def ingest_documents(self, inp: IngestInput) -> IngestReport:
        """Embed only new or changed chunks; delete chunks whose documents disappeared."""
        now = self._now()
        try:
            documents = load_directory(Path(inp.path), fetched_at=now)
        except DocumentError as err:
            raise ApplicationError(str(err), type="InvalidDocument", non_retryable=True) from err
        chunks = [c for _, doc_chunks in documents for c in doc_chunks]
        stored = self._vectors.hashes()
        changed = [c for c in chunks if stored.get(c.passage_id) != c.content_hash]
        batch = 64
        for start in range(0, len(changed), batch):
            part = changed[start : start + batch]
            vectors = self._embedder.encode([c.embed_text for c in part])
            self._vectors.upsert([c.passage_id for c in part], vectors, [c.payload for c in part])
            activity.heartbeat(start + len(part))
        current = {c.passage_id for c in chunks}
        removed = [pid for pid in stored if pid not in current]
        self._vectors.delete(removed)
        self._store.record_refresh(inp.source, now, len(documents), len(chunks))
        return IngestReport(
            documents=len(documents),
            chunks=len(chunks),
            embedded=len(changed),
            removed=len(removed),
            refreshed_at=now,
        )
