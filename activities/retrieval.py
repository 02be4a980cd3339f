"""Retrieval activities: Qdrant + embeddings. Evidence knows its age, duplicates and budget."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import numpy.typing as npt
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tether import errors, packs, sentencevectors
from tether.bodies import ACCEPT_ENCODING, BodyTooLarge, BodyUnreadable, BoundedBody
from tether.config import RetrievalConfig, host_and_port
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
from tether.knowledge import (
    DOCUMENT_LIMIT,
    Chunk,
    Document,
    DocumentError,
    DocumentMeta,
    Folder,
    chunk_document,
    read_directory,
    read_document,
)
from tether.store import Store

if TYPE_CHECKING:
    # Types only: the client imports this module (through the workflow) and needs no Qdrant.
    from tether.vectorstore import Hit, VectorStore


# Seconds the stored versions of a document are taken as known (see _stored_versions).
VERSIONS_KNOWN_FOR = 30.0
EMBED_BATCH = 256  # chunks per commit: encode sorts by length within a call, so bigger pads less
# What a URL may answer with: text a person wrote (no content type: taken as text).
TEXT_TYPES = ("text/", "application/xhtml+xml", "application/markdown", "application/x-markdown")


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def last_modified(header: str | None, now: datetime) -> datetime | None:
    """A ``Last-Modified`` header as an aware time no later than ``now``; None when it is no
    date. A server's clock or a typo must neither fail the source nor make a page fresh for
    decades: an HTTP date is GMT when it names no zone, and none is in the future."""
    if not header:
        return None
    try:
        value = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(value if value.tzinfo else value.replace(tzinfo=UTC), now)


def _read_body(response: httpx.Response, limit: int, url: str) -> bytes:
    """The body, decompressed, refused once it passes ``limit`` bytes (tether.bodies)."""
    try:
        reader = BoundedBody(response.headers.get("Content-Encoding"), limit)
        for raw in response.iter_raw():
            reader.feed(raw)
        return reader.body()
    except (BodyTooLarge, BodyUnreadable) as err:
        raise DocumentError(f"{url}: {err}") from None


def allowed_source(url: httpx.URL, hosts: list[str]) -> bool:
    """Whether ``url`` is on one of ``hosts`` ("name", any port; "name:port", that one).
    The host is the one the URL parser connects to: a user part (``allowed@elsewhere``) or
    a case change does not make another host an allowed one."""
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    for entry in hosts:
        host, allowed_port = host_and_port(entry)
        if host == url.host and allowed_port in (None, port):
            return True
    return False


def _host_with_port(location: str) -> str:
    """A URL's host and the port it is fetched on, as a ``source_hosts`` entry."""
    url = httpx.URL(location)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port or (443 if url.scheme == 'https' else 80)}"


class RetrievalActivities:
    """Sync activities: embedding is CPU-bound and runs in the worker's thread pool. Each
    domain's knowledge is a vector store of its own (``vectors(domain)``): one business never
    retrieves another's documents."""

    def __init__(
        self,
        embedder: Embedder,
        vectors: Callable[[str], VectorStore],
        store: Store,
        config: RetrievalConfig,
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._store = store
        self._config = config
        # domain -> doc id -> (when read, its stored versions' fields); and per domain a
        # generation, moved on by each ingest here, so a read from before one is not kept.
        self._known: dict[str, dict[str, tuple[float, list[dict[str, Any]]]]] = {}
        self._generation: dict[str, int] = {}
        self._known_lock = threading.Lock()

    def _now(self) -> datetime:
        return self._config.freshness_as_of or datetime.now(UTC)

    # The sources an ingest may read: the operator's lists, and the domain's pack's own
    # knowledge (installed by that same operator).

    def _own(self, domain: str) -> list[str]:
        try:
            return [str(k.location) for k in packs.get(domain).knowledge]
        except packs.UnknownDomain:
            return []

    def _hosts(self, domain: str) -> list[str]:
        own = [loc for loc in self._own(domain) if loc.startswith(("http://", "https://"))]
        return [*self._config.source_hosts, *map(_host_with_port, own)]

    def _folders(self, domain: str) -> list[Path] | None:
        if self._config.source_folders is None:
            return None
        own = [Path(loc) for loc in self._own(domain) if "://" not in loc]
        return [*self._config.source_folders, *own]

    @activity.defn
    def retrieve_evidence(self, query: RetrievalQuery) -> Evidence:
        cfg, now = self._config, self._now()
        vector = self._embedder.encode([query.text])[0]
        kept: list[Passage] = []
        kept_vectors: list[np.ndarray] = []
        dropped: list[DroppedPassage] = []
        chars = 0
        stale_kept: list[str] = []
        vectors = self._vectors(query.domain)
        hits = vectors.search(vector, cfg.top_k)
        in_force = self._in_force(query.domain, vectors, hits, now.date())
        for hit in hits:
            reason = self._drop_reason(hit, now, now.date(), kept, kept_vectors, chars, in_force)
            if reason == "stale" and cfg.keep_stale:
                stale_kept.append(hit.passage_id)
                reason = self._drop_reason(
                    hit, None, now.date(), kept, kept_vectors, chars, in_force
                )
            if reason is not None:
                dropped.append(
                    DroppedPassage(passage_id=hit.passage_id, reason=reason, score=hit.score)
                )
                continue
            passage = self._passage(hit)
            # Its sentences' vectors, for the model and the verifier in this process.
            sentencevectors.remember(self._embedder, hit.payload)
            kept.append(passage)
            kept_vectors.append(hit.vector)
            chars += len(passage.text)
        ages = {
            source: (now - at).total_seconds()
            for source, at in self._store.refreshes(query.domain).items()
        }
        oldest = max(ages.values()) if ages else None
        return Evidence(
            query=query.text,
            passages=kept,
            freshness=FreshnessReport(
                index_refreshed_at=now - timedelta(seconds=oldest) if oldest is not None else None,
                index_age_seconds=oldest,
                stale_index=oldest is None or oldest > cfg.max_index_age.total_seconds(),
                dropped=dropped,
                sources=ages,
                stale_kept=stale_kept,
            ),
        )

    def _in_force(
        self, domain: str, vectors: VectorStore, hits: list[Hit], today: date
    ) -> dict[tuple[str | None, str], int]:
        """(source, doc id) -> the newest version in effect today, of each document a hit
        belongs to, from every version stored (not only those among the hits: an old
        version's section the new one dropped must not pass for current). Keyed by source
        too: no source's document outranks another's."""
        doc_ids = sorted({str(hit.payload["doc_id"]) for hit in hits})
        in_force: dict[tuple[str | None, str], int] = {}
        for fields in [hit.payload for hit in hits] + self._stored_versions(
            domain, vectors, doc_ids
        ):
            if date.fromisoformat(str(fields["effective_date"])) > today:
                continue
            key = (fields.get("origin"), str(fields["doc_id"]))
            in_force[key] = max(in_force.get(key, 0), int(fields["version"]))
        return in_force

    def _stored_versions(
        self, domain: str, vectors: VectorStore, doc_ids: list[str]
    ) -> list[dict[str, Any]]:
        """The version fields of every chunk stored of these documents, read from the store
        at most once per VERSIONS_KNOWN_FOR per document (a scan per retrieval costs more
        than the search). An ingest in this process is seen at once; one in another
        process within that time, and its new version's own hits count at once anyway."""
        started = time.monotonic()
        with self._known_lock:
            known = self._known.setdefault(domain, {})
            generation = self._generation.get(domain, 0)
            missing = [
                d for d in doc_ids if d not in known or started - known[d][0] > VERSIONS_KNOWN_FOR
            ]
        read: dict[str, list[dict[str, Any]]] = {d: [] for d in missing}
        if missing:
            keys = ["doc_id", "origin", "version", "effective_date"]
            for fields in vectors.fields(keys, doc_ids=missing).values():
                read[str(fields["doc_id"])].append(fields)
        with self._known_lock:
            if self._generation.get(domain, 0) == generation:
                known.update({d: (started, rows) for d, rows in read.items()})
            return [row for d in doc_ids for row in (read[d] if d in read else known[d][1])]

    def _forget_versions(self, domain: str) -> None:
        with self._known_lock:
            self._known.pop(domain, None)
            self._generation[domain] = self._generation.get(domain, 0) + 1

    def _drop_reason(
        self,
        hit: Hit,
        now: datetime | None,
        today: date,
        kept: list[Passage],
        kept_vectors: list[np.ndarray],
        chars: int,
        in_force: dict[tuple[str | None, str], int],
    ) -> DropReason | None:
        cfg, payload = self._config, hit.payload
        if payload.get("status") == "superseded":
            return "superseded"
        if date.fromisoformat(str(payload["effective_date"])) > today:
            return "not_yet_effective"
        if int(payload["version"]) < in_force.get(
            (payload.get("origin"), str(payload["doc_id"])), 0
        ):
            return "superseded"
        if now is not None and _utc(str(payload["stale_at"])) < now:
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
        """Refresh one source: embed only new or changed chunks, in batches; swap each
        document's new chunks in and its old ones out together; delete chunks of documents
        the source no longer has. An interrupted run resumes where it stopped: what was
        written is found by its hash and not embedded again."""
        now = self._now()
        try:
            folder, fetched = self._read_source(inp, now)
        except DocumentError as err:
            raise ApplicationError(
                str(err), type=errors.INVALID_DOCUMENT, non_retryable=True
            ) from err
        if folder is None:  # 304: the source is as it was
            self._store.record_refresh(inp.domain, inp.source, now, 0, 0)
            return IngestReport(
                domain=inp.domain,
                documents=0,
                chunks=0,
                embedded=0,
                removed=0,
                refreshed_at=now,
                source=inp.source,
                not_modified=True,
            )
        vectors = self._vectors(inp.domain)
        documents = self._unclaimed(vectors, inp.source, folder)
        stored = vectors.hashes(inp.source)
        chunks = [c for d in documents for c in d.chunks]
        current = {c.passage_id for c in chunks}
        kept = self._unread(vectors, inp.source, folder.skipped)
        work = [
            (d.meta, [c for c in d.chunks if stored.get(c.passage_id) != c.content_hash])
            for d in documents
        ]
        total = sum(len(changed) for _, changed in work)
        embedded = 0
        groups: list[list[tuple[DocumentMeta, list[Chunk]]]] = [[]]
        for meta, changed in work:
            if sum(len(c) for _, c in groups[-1]) >= EMBED_BATCH:
                groups.append([])
            groups[-1].append((meta, changed))
        removed = [pid for pid in stored if pid not in current and pid not in kept]
        try:
            # One writer thread: a group is written while the next one is embedded, in turn.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer") as writer:
                writing: Future[None] | None = None
                for group in groups:
                    batch = self._prepare(group, stored, current, inp.source)
                    if writing is not None:
                        writing.result()
                        activity.heartbeat(embedded, total)  # progress, shown by `tether ingest`
                    if batch is not None:
                        writing = writer.submit(vectors.replace, *batch)
                        embedded += len(batch[0])
                if writing is not None:
                    writing.result()
            vectors.delete(removed)
        finally:  # what was written counts at once, even if the rest failed
            if embedded or removed:
                self._forget_versions(inp.domain)
        if embedded or removed:
            vectors.optimize()
        if fetched is not None:  # only now: a crash before this re-fetches in full next time
            if fetched.pop("gone", False):
                self._store.forget_fetch(
                    fetched["domain"], fetched["url"]
                )  # if it returns: in full
            else:
                self._store.record_fetch(**fetched)
        self._store.record_refresh(inp.domain, inp.source, now, len(documents), len(chunks))
        return IngestReport(
            domain=inp.domain,
            documents=len(documents),
            chunks=len(chunks),
            embedded=embedded,
            removed=len(removed),
            refreshed_at=now,
            source=inp.source,
            skipped=[f"{name}: {why}" for name, why in folder.skipped.items()],
        )

    @staticmethod
    def _unclaimed(vectors: VectorStore, origin: str, folder: Folder) -> list[Document]:
        """The documents whose doc id no other source holds; the others are skipped.

        A doc id is named by whoever wrote the front matter, and a passage id (what answers
        cite) derives from it; so a doc id is held by the source that brought it first. A
        later source claiming it would otherwise replace that source's chunks, outrank them
        with a higher version, or delete them by removing its file. Refusing (rather than
        keeping both under one id) means a citation always names one passage, and the
        operator is told which source holds the id. Chunks from before sources were named
        (no origin) belong to whoever refreshes them next, as in ``hashes``."""
        doc_ids = sorted({d.meta.doc_id for d in folder.documents})
        held = vectors.fields(["doc_id", "origin"], doc_ids=doc_ids)
        owners = {
            str(f["doc_id"]): str(f["origin"])
            for f in held.values()
            if f["origin"] is not None and f["origin"] != origin
        }
        for d in folder.documents:
            if d.meta.doc_id in owners:
                holder = owners[d.meta.doc_id]
                folder.skipped[d.name] = (
                    f"doc_id {d.meta.doc_id} is held by source {holder}; a source never "
                    f"replaces another's documents (the same source under its old name? "
                    f"ingest it with --source {holder})"
                )
        return [d for d in folder.documents if d.meta.doc_id not in owners]

    @staticmethod
    def _unread(vectors: VectorStore, origin: str, skipped: dict[str, str]) -> set[str]:
        """The stored chunks of files skipped this time: they stay until their file reads
        again. With any file skipped, chunks that name no file (written before chunks did)
        stay too: which file they came from is not known."""
        if not skipped:
            return set()
        files = vectors.fields(["file"], origin=origin)
        return {pid for pid, f in files.items() if f["file"] is None or f["file"] in skipped}

    def _prepare(
        self,
        documents: list[tuple[DocumentMeta, list[Chunk]]],
        stored: dict[str, str],
        current: set[str],
        origin: str,
    ) -> tuple[list[str], npt.NDArray[np.float32], list[dict[str, Any]], list[str]] | None:
        """Embed these documents' changed chunks; with their documents' outdated chunks, the
        arguments of one store replace: each document is swapped whole."""
        changed = [c for _, doc_chunks in documents for c in doc_chunks]
        docs = {f"{meta.doc_id}@" for meta, _ in documents}
        old = [pid for pid in stored if pid not in current and pid.split("@", 1)[0] + "@" in docs]
        if not changed and not old:
            return None
        vectors = (
            self._encode_once([c.embed_text for c in changed])
            if changed
            else np.zeros((0, 0), dtype=np.float32)
        )
        sentences = sentencevectors.for_chunks(self._embedder, [c.text for c in changed])
        for pid in old:
            stored.pop(pid, None)  # gone with its document's new version
        return (
            [c.passage_id for c in changed],
            vectors,
            [
                {**c.payload, "origin": origin, **packed}
                for c, packed in zip(changed, sentences, strict=True)
            ],
            old,
        )

    def _encode_once(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Each distinct text is embedded once (the same paragraph in many documents)."""
        distinct = list(dict.fromkeys(texts))
        vectors = self._embedder.encode_uncached(distinct)  # new or changed: not seen before
        row = {text: i for i, text in enumerate(distinct)}
        return vectors[[row[t] for t in texts]]

    def _read_source(
        self, inp: IngestInput, now: datetime
    ) -> tuple[Folder | None, dict[str, Any] | None]:
        """(documents or None when not modified, the fetch to record once they are indexed)."""
        if inp.path is not None:
            folder = read_directory(
                Path(inp.path),
                fetched_at=now,
                source=inp.source,
                max_age_days=inp.max_age_days,
                valid_until=inp.valid_until,
                within=self._folders(inp.domain),
            )
            return folder, None
        assert inp.url is not None
        return self._fetch(inp, inp.url, now)

    def _fetch(
        self, inp: IngestInput, url: str, now: datetime
    ) -> tuple[Folder | None, dict[str, Any] | None]:
        """A conditional GET: 304 -> None (nothing to do); 404/410 -> no documents (its chunks
        are deleted); 2xx -> the document, a new version if its content changed. Only text,
        and at most DOCUMENT_LIMIT bytes of it once decompressed."""
        known = self._store.fetched(inp.domain, url)
        headers = {"Accept-Encoding": ACCEPT_ENCODING}  # what _read_body inflates
        if known and known["etag"]:
            headers["If-None-Match"] = known["etag"]
        if known and known["last_modified"]:
            headers["If-Modified-Since"] = known["last_modified"]

        def allowed(request: httpx.Request) -> None:  # each request, each redirect's too
            if not allowed_source(request.url, self._hosts(inp.domain)):
                raise DocumentError(
                    f"{request.url.host}: not a source this worker fetches from "
                    "(TETHER_RETRIEVAL__SOURCE_HOSTS names the hosts it may)"
                )

        try:
            with (
                httpx.Client(
                    timeout=30.0, follow_redirects=True, event_hooks={"request": [allowed]}
                ) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code == 304 and known:
                    return None, None
                if response.status_code in (404, 410):
                    return Folder(documents=[]), {"domain": inp.domain, "url": url, "gone": True}
                if response.status_code >= 500 or response.status_code in (408, 429):
                    raise ApplicationError(
                        f"{url} -> {response.status_code}", type="SourceUnavailable"
                    )
                if not response.is_success:
                    raise DocumentError(f"{url} -> {response.status_code}")
                content_type = response.headers.get("Content-Type", "")
                media = content_type.split(";", 1)[0].strip().lower()
                if media and not media.startswith(TEXT_TYPES):
                    raise DocumentError(f"{url}: {media} is not a text document")
                content = _read_body(response, DOCUMENT_LIMIT, url)
                charset = response.charset_encoding or "utf-8"
        except httpx.HTTPError as err:
            raise ApplicationError(f"{url}: {err!r}", type="SourceUnavailable") from err
        try:
            text = content.decode(charset, errors="replace")
        except LookupError:  # a charset nobody knows
            text = content.decode("utf-8", errors="replace")
        digest = hashlib.sha256(content).hexdigest()
        version = (known["version"] if known else 0) + (
            0 if known and known["content_hash"] == digest else 1
        )
        modified = response.headers.get("Last-Modified")
        updated = last_modified(modified, now)
        kind = (
            "html"
            if "html" in content_type
            else "markdown"
            if "markdown" in content_type or url.endswith(".md")
            else "text"
        )
        name = httpx.URL(url).path.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0] or inp.source
        meta, body = read_document(
            name,
            text,
            kind=kind,
            source=inp.source,
            updated_at=updated or now,
            max_age_days=inp.max_age_days,
            valid_until=inp.valid_until,
            version=version,
        )
        record = {
            "domain": inp.domain,
            "url": url,
            "etag": response.headers.get("ETag"),
            "last_modified": modified if updated is not None else None,  # only a date
            "content_hash": digest,
            "version": version,
        }
        chunks = chunk_document(meta, body, fetched_at=now, name=url)
        return Folder(documents=[Document(name=url, meta=meta, chunks=chunks)]), record
