"""Knowledge under a hostile review: another source claiming a pack's documents, names that
collide, bodies that never end, sections too long to return, versions announced ahead or
left behind, files that cannot be read, dates that lie, and schedules that replace each
other. Real Qdrant Edge, real embeddings, real HTTP."""

from __future__ import annotations

import gzip
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from temporalio.client import ScheduleAlreadyRunningError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.conftest import FRESHNESS_AS_OF, SUPPORT_KB
from tether import packs
from tether.activities import retrieval
from tether.activities.retrieval import RetrievalActivities, last_modified
from tether.client import Tether
from tether.config import RetrievalConfig, Settings
from tether.contracts import Evidence, IngestInput, IngestReport, RetrievalQuery
from tether.domains.support import PACK
from tether.embeddings import DIMENSIONS, Embedder
from tether.knowledge import (
    CHUNK_CHARS,
    DocumentError,
    DocumentMeta,
    chunk_document,
    load_directory,
    parse_front_matter,
    read_document,
    source_name,
)
from tether.store import Store
from tether.vectorstore import EdgeStore

REFUND_QUESTION = "How many days do I have to ask for a refund?"

CLAIM = """---
doc_id: refund-policy
title: Refund policy
version: {version}
effective_date: {effective}
updated_at: 2026-10-03T09:00:00Z
source: support-handbook
max_age_days: 730
---
## Refund window

{text}
"""


@pytest.fixture
def acts(tmp_path: Path, embedder: Embedder) -> Iterator[RetrievalActivities]:
    vectors = EdgeStore(DIMENSIONS, tmp_path / "edge")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield RetrievalActivities(
        embedder,
        lambda _: vectors,
        store,
        RetrievalConfig(freshness_as_of=FRESHNESS_AS_OF, source_hosts=["127.0.0.1"]),
    )
    vectors.close()
    store.close()


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    target = tmp_path / "kb"
    shutil.copytree(SUPPORT_KB, target)
    return target


def ingest(acts: RetrievalActivities, **source: Any) -> IngestReport:
    return ActivityEnvironment().run(acts.ingest_documents, IngestInput(domain="support", **source))


def ask(acts: RetrievalActivities, text: str) -> Evidence:
    return acts.retrieve_evidence(RetrievalQuery(domain="support", text=text, request_id="r"))


def as_of(acts: RetrievalActivities, when: datetime) -> RetrievalActivities:
    config = acts._config.model_copy(update={"freshness_as_of": when})
    return RetrievalActivities(acts._embedder, acts._vectors, acts._store, config)


def dropped(evidence: Evidence) -> dict[str, str]:
    return {d.passage_id: d.reason for d in evidence.freshness.dropped}


# 1. A source's documents are its own.


def test_another_source_cannot_replace_outrank_or_delete_a_sources_documents(
    acts: RetrievalActivities, tmp_path: Path
) -> None:
    ingest(acts, path=str(SUPPORT_KB), source="kb")
    community = tmp_path / "community"
    community.mkdir()
    (community / "tips.md").write_text(  # the pack's own passage id, other words
        CLAIM.format(version=3, effective="2026-03-01", text="Refunds within 365 days.")
    )
    (community / "later.md").write_text(  # a higher version, to outrank it
        CLAIM.format(version=9, effective="2026-03-01", text="Refunds within 365 days, always.")
    )
    claimed = ingest(acts, path=str(community), source="community")
    assert claimed.documents == 0 and claimed.embedded == 0
    assert len(claimed.skipped) == 2
    assert all("held by source kb" in s and "--source kb)" in s for s in claimed.skipped)

    vectors = acts._vectors("support")
    [own] = vectors.payloads(["refund-policy@v3#0"]).values()
    assert own["origin"] == "kb" and "30 days" in own["text"]
    kept = {p.passage_id for p in ask(acts, REFUND_QUESTION).passages}
    assert "refund-policy@v3#0" in kept

    for file in community.iterdir():
        file.unlink()
    assert ingest(acts, path=str(community), source="community").removed == 0
    assert "refund-policy@v3#0" in vectors.payloads(["refund-policy@v3#0"])


def test_versions_outrank_only_versions_of_the_same_source(acts: RetrievalActivities) -> None:
    """Two sources holding one doc id (written at once, before either saw the other): a
    higher version of the other source's does not supersede this source's."""
    ingest(acts, path=str(SUPPORT_KB), source="kb")
    vectors = acts._vectors("support")
    [own] = vectors.payloads(["refund-policy@v3#0"]).values()
    text = "Refund requests are accepted within 365 days of delivery, no questions asked."
    claim = {"passage_id": "refund-policy@v9#0", "version": 9, "origin": "community"}
    vectors.replace(
        ["refund-policy@v9#0"],
        np.asarray(acts._embedder.encode_uncached([text]), dtype=np.float32),
        [{**own, **claim, "text": text, "content_hash": "other"}],
        [],
    )
    evidence = ask(acts, REFUND_QUESTION)
    seen = {p.passage_id for p in evidence.passages} | set(dropped(evidence))
    assert {"refund-policy@v3#0", "refund-policy@v9#0"} <= seen  # both among the hits
    assert dropped(evidence).get("refund-policy@v3#0") != "superseded"


# 2. Default source names.


def test_a_source_named_by_default_is_named_for_its_own_location(tmp_path: Path) -> None:
    drafts = tmp_path / "drafts" / "kb"
    drafts.mkdir(parents=True)
    own = [(SUPPORT_KB, "kb")]
    assert source_name(str(SUPPORT_KB), own) == "kb"  # the pack's own keeps its name
    assert source_name(str(SUPPORT_KB / ".." / "kb"), own) == "kb"
    name = source_name(str(drafts), own)
    assert name.startswith("kb-") and name != source_name(str(tmp_path / "other" / "kb"), own)
    long = "https://help.example.com/" + "a" * 60
    urls = {source_name(f"{long}/returns"), source_name(f"{long}/shipping")}
    assert len(urls) == 2
    for named in [name, *urls]:
        IngestInput(domain="support", source=named, path="x")  # a valid source name

    packs.register(PACK)
    assert Tether.source(str(SUPPORT_KB), domain="support").source == "kb"
    assert Tether.source(str(drafts), domain="support").source == name


def test_a_folder_called_kb_elsewhere_leaves_the_packs_chunks_alone(
    acts: RetrievalActivities, tmp_path: Path
) -> None:
    packs.register(PACK)
    first = ingest(acts, path=str(SUPPORT_KB), source="kb")
    drafts = tmp_path / "drafts" / "kb"
    drafts.mkdir(parents=True)
    (drafts / "gift-cards.md").write_text("# Gift cards\n\n## Balance\n\nBalances never expire.\n")
    inp = Tether.source(str(drafts), domain="support")
    report = ActivityEnvironment().run(acts.ingest_documents, inp)
    assert report.removed == 0 and report.documents == 1
    assert len(acts._vectors("support").hashes("kb")) == first.chunks


# 3 and 8. What a URL answers.

BOMB = gzip.compress(b"Title\n" + b"Refunds take ten days. " * 50_000, compresslevel=9)
ROUTES: dict[str, tuple[dict[str, str], bytes]] = {
    "/bomb.txt": ({"Content-Encoding": "gzip", "Content-Type": "text/plain"}, BOMB),
    "/image.png": ({"Content-Type": "image/png"}, bytes(range(256)) * 8),
    "/zipped.txt": (
        {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
        gzip.compress(b"Gift cards\nGift cards never expire."),
    ),
    "/dated.txt": (
        {"Content-Type": "text/plain", "Last-Modified": "Fri, 01 Jan 2100 00:00:00 GMT"},
        b"Gift cards\nGift cards never expire.",
    ),
}


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers, body = ROUTES[self.path]
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_url_answers_text_of_at_most_the_document_limit(
    acts: RetrievalActivities, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrieval, "DOCUMENT_LIMIT", 100_000)  # the bomb inflates to 1.15 MB
    for path, said in (("/bomb.txt", "larger than 100,000 bytes"), ("/image.png", "image/png")):
        with pytest.raises(ApplicationError, match=re.escape(said)) as err:
            ingest(acts, source="web", url=server + path)
        assert err.value.type == "InvalidDocument" and err.value.non_retryable
    assert acts._vectors("support").hashes("web") == {}
    zipped = ingest(acts, source="zipped", url=server + "/zipped.txt")  # inflated, and read
    assert zipped.chunks == 1
    assert "Gift cards never expire." in [
        p.text for p in ask(acts, "Do gift cards expire?").passages
    ]


def test_last_modified_is_a_date_no_later_than_now(acts: RetrievalActivities, server: str) -> None:
    now = FRESHNESS_AS_OF
    assert last_modified("last tuesday", now) is None
    assert last_modified("", now) is None
    assert last_modified("Fri, 01 Jan 2100 00:00:00 GMT", now) == now
    naive = last_modified("Wed, 21 Oct 2026 07:28:00", now)
    assert naive == datetime(2026, 10, 21, 7, 28, tzinfo=UTC)
    ingest(acts, source="dated", url=server + "/dated.txt", max_age_days=7)
    [stored] = (
        acts._vectors("support").payloads(list(acts._vectors("support").hashes("dated"))).values()
    )
    assert datetime.fromisoformat(stored["stale_at"]) == now + timedelta(days=7)  # not 2100


# 4. Chunk size.


def meta(**changes: Any) -> DocumentMeta:
    fields: dict[str, Any] = {
        "doc_id": "terms",
        "title": "Warranty terms",
        "version": 1,
        "effective_date": "2026-01-01",
        "updated_at": "2026-01-01T00:00:00Z",
        "source": "legal",
        "max_age_days": 365,
    }
    return DocumentMeta.model_validate({**fields, **changes})


def test_a_long_section_is_split_under_its_heading() -> None:
    paragraphs = [
        " ".join(f"Clause {p}.{i}: item class {i} is covered for defects." for i in range(12))
        for p in range(6)
    ]
    body = "## Coverage\n\n" + "\n\n".join(paragraphs) + "\n\n## Claims\n\nWrite to us."
    chunks = chunk_document(meta(), body, fetched_at=FRESHNESS_AS_OF)
    coverage = [c for c in chunks if c.payload["title"] == "Warranty terms - Coverage"]
    assert len(coverage) > 1 and all(len(c.text) <= CHUNK_CHARS for c in chunks)
    assert [c.passage_id for c in coverage] == [
        "terms@v1#0" if i == 0 else f"terms@v1#0.{i}" for i in range(len(coverage))
    ]
    assert " ".join(c.text for c in coverage) == " ".join(" ".join(paragraphs).split())
    assert all(c.embed_text.startswith("Warranty terms - Coverage: ") for c in coverage)
    assert chunks[-1].passage_id == "terms@v1#1" and chunks[-1].text == "Write to us."

    one_sentence = "A" * 3000  # no paragraph, no sentence end: cut at the limit
    assert [
        len(c.text) for c in chunk_document(meta(), one_sentence, fetched_at=FRESHNESS_AS_OF)
    ] == [
        CHUNK_CHARS,
        CHUNK_CHARS,
        600,
    ]


def test_the_shipped_handbooks_are_chunked_as_before() -> None:
    """Their sections are shorter than a chunk: no passage id of theirs changed."""
    for folder in (SUPPORT_KB, SUPPORT_KB.parent.parent / "itops" / "kb"):
        for _, chunks in load_directory(folder, fetched_at=FRESHNESS_AS_OF):
            assert chunks
            for chunk in chunks:
                assert len(chunk.text) <= CHUNK_CHARS
                assert re.fullmatch(r"[a-z0-9-]+@v\d+#\d+", chunk.passage_id), chunk.passage_id


def test_a_document_of_one_line_is_its_own_body(acts: RetrievalActivities, tmp_path: Path) -> None:
    line = "Store credit is issued within 2 business days of an approved return."
    _, body = read_document(
        "credit.txt", line, kind="text", source="notes", updated_at=FRESHNESS_AS_OF, max_age_days=9
    )
    assert body == line
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "credit.txt").write_text(line)
    long = "Warranty terms\n" + " ".join(
        f"Clause {i}: the warranty covers defects of class {i}." for i in range(80)
    )
    (notes / "terms.txt").write_text("The warranty lasts 24 months from delivery. " + long)
    report = ingest(acts, source="notes", path=str(notes), max_age_days=3650)
    assert report.documents == 2 and report.chunks > 2
    assert line in [p.text for p in ask(acts, "When is store credit issued?").passages]


# 5 and 6. Which version is in force.

RESTOCKING = """---
doc_id: restocking
title: Returns and restocking
version: {version}
effective_date: {effective}
updated_at: 2026-10-01T09:00:00Z
source: support-handbook
max_age_days: 730
---
{body}
"""


def restocking(kb: Path, version: int) -> None:
    """Version 1 says a restocking fee is deducted; version 2 (in force from February 2026)
    dropped that section and is about something else."""
    body = {
        1: "## Restocking fee\n\nA restocking fee of 20% is deducted from every refund "
        "of an opened item.",
        2: "## Store locations\n\nOur flagship store is in Utrecht and opens at nine.",
    }[version]
    effective = {1: "2025-01-01", 2: "2026-02-01"}[version]
    (kb / f"restocking-{effective[:4]}.md").write_text(
        RESTOCKING.format(version=version, effective=effective, body=body)
    )


def test_a_version_announced_ahead_neither_serves_nor_supersedes(
    acts: RetrievalActivities, kb: Path
) -> None:
    (kb / "refund-policy-2027.md").write_text(
        CLAIM.format(
            version=4,
            effective="2027-06-01",
            text="From 1 June 2027, refund requests are accepted within 14 days of delivery.",
        )
    )
    ingest(acts, path=str(kb), source="kb")
    today = ask(acts, REFUND_QUESTION)
    assert "refund-policy@v3#0" in {p.passage_id for p in today.passages}
    assert dropped(today).get("refund-policy@v4#0") == "not_yet_effective"

    then = ask(as_of(acts, datetime(2027, 7, 1, tzinfo=UTC)), REFUND_QUESTION)
    assert "refund-policy@v4#0" in {p.passage_id for p in then.passages}
    assert dropped(then).get("refund-policy@v3#0") == "superseded"


def test_an_old_version_is_superseded_when_the_new_one_is_not_among_the_hits(
    acts: RetrievalActivities, kb: Path
) -> None:
    restocking(kb, 1)
    restocking(kb, 2)
    ingest(acts, path=str(kb), source="kb")
    evidence = ask(acts, "Is a restocking fee deducted from my refund for an opened item?")
    seen = {p.passage_id for p in evidence.passages} | set(dropped(evidence))
    assert "restocking@v2#0" not in seen  # the new version is not among the hits
    assert not any(p.doc_id == "restocking" for p in evidence.passages)
    assert dropped(evidence).get("restocking@v1#0") == "superseded"


def test_stored_versions_are_read_once_and_again_after_an_ingest(
    acts: RetrievalActivities, kb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which versions are stored is read from the store once per document (not on every
    retrieval: a scan costs more than the search), and read again once an ingest wrote."""
    restocking(kb, 1)
    ingest(acts, path=str(kb), source="kb")
    vectors = acts._vectors("support")
    reads: list[list[str] | None] = []
    read = vectors.fields

    def counted(keys: list[str], **where: Any) -> dict[str, dict[str, Any]]:
        reads.append(where.get("doc_ids"))
        return read(keys, **where)

    monkeypatch.setattr(vectors, "fields", counted)
    question = "Is a restocking fee deducted from my refund for an opened item?"
    first = ask(acts, question)
    assert any(p.doc_id == "restocking" for p in first.passages) and len(reads) == 1
    assert ask(acts, question) == first and len(reads) == 1  # known: not read again
    restocking(kb, 2)
    ingest(acts, path=str(kb), source="kb")
    reads.clear()
    after = ask(acts, question)
    assert reads and "restocking" in (reads[0] or [])
    assert dropped(after).get("restocking@v1#0") == "superseded"
    assert not any(p.doc_id == "restocking" for p in after.passages)


# 7. A bad file.


MIXED_ZONES = b"""---
doc_id: promo
title: Promo
version: 1
effective_date: 2026-11-01
updated_at: 2026-11-01 09:00:00
valid_until: 2026-12-01T00:00:00Z
source: marketing
max_age_days: 30
---
## Promo

Free shipping until December.
"""


def test_a_file_that_cannot_be_read_is_skipped_and_keeps_its_chunks(
    acts: RetrievalActivities, kb: Path
) -> None:
    first = ingest(acts, path=str(kb), source="kb")
    warranty = [p for p in acts._vectors("support").hashes("kb") if p.startswith("warranty@")]
    assert warranty
    (kb / "warranty.md").write_text("---\nnot: [closed\n---\n## Broken\n\nBroken.\n")
    (kb / "latin1.txt").write_bytes("Caf\xe9 returns\nReturns are accepted.".encode("latin-1"))
    (kb / "note.md").write_bytes(b"---\n\nThis note starts with a horizontal rule.\n")
    (kb / "archive.md").mkdir()
    (kb / "mixed-zones.md").write_bytes(MIXED_ZONES)

    report = ingest(acts, path=str(kb), source="kb")
    assert sorted(s.split(":")[0] for s in report.skipped) == [
        "archive.md",
        "latin1.txt",
        "note.md",
        "warranty.md",
    ]
    assert "latin1.txt: not UTF-8 text" in report.skipped
    assert report.documents == first.documents  # the promo in, the warranty out (this time)
    stored = acts._vectors("support").hashes("kb")
    assert set(warranty) <= set(stored) and report.removed == 0  # kept until it reads again
    assert any(p.startswith("promo@v1#") for p in stored)
    assert acts._store.refreshes("support")["kb"] == FRESHNESS_AS_OF


def test_a_time_without_a_zone_is_utc() -> None:
    parsed = meta(updated_at="2026-11-01 09:00:00", valid_until="2026-12-01T00:00:00Z")
    assert parsed.updated_at == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert parsed.stale_at() == datetime(2026, 12, 1, tzinfo=UTC)  # compares: no TypeError


# 9. Names that slug alike.


def test_file_names_that_slug_alike_are_two_documents(
    acts: RetrievalActivities, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "Returns FAQ.txt").write_text("Returns FAQ\nReturns are accepted within 30 days.")
    (notes / "returns_faq.txt").write_text("Returns faq (EU)\nEU buyers may withdraw in 14 days.")
    long = "shipping-rates-and-delivery-times-for-parcels-sent-to-the-european-union-and-uk-"
    (notes / f"{long}standard.txt").write_text("Standard\nStandard delivery takes 5 days.")
    (notes / f"{long}express.txt").write_text("Express\nExpress delivery takes 1 day.")
    (notes / "copy.md").write_text(CLAIM.format(version=3, effective="2026-03-01", text="A."))
    (notes / "copy-again.md").write_text(CLAIM.format(version=3, effective="2026-03-01", text="B."))
    report = ingest(acts, path=str(notes), source="notes", max_age_days=3650)
    assert report.documents == 5 and len(acts._vectors("support").hashes("notes")) == 5
    assert report.skipped == [
        "copy.md: refund-policy@v3 is also copy-again.md's doc_id and version"
    ]


# 10. Schedules.


class Schedules:
    """A Temporal client's schedules, as far as schedule_refresh uses them."""

    def __init__(self) -> None:
        self.made: dict[str, Any] = {}

    async def create_schedule(self, schedule_id: str, schedule: Any) -> None:
        if schedule_id in self.made:
            raise ScheduleAlreadyRunningError()
        self.made[schedule_id] = schedule

    def get_schedule_handle(self, schedule_id: str) -> Any:
        made = self.made

        class Handle:
            async def update(self, updater: Any) -> None:
                made[schedule_id] = updater(None).schedule

        return Handle()


async def test_each_domain_and_set_of_sources_has_its_own_refresh_schedule() -> None:
    client = Schedules()
    tether = Tether(client, Settings(domains=["support", "itops"]))  # type: ignore[arg-type]
    ids = {}
    for domain in ("itops", "support"):
        pack = tether.pack(domain)
        sources = [tether.source(str(k.location), domain=domain) for k in pack.knowledge]
        ids[domain] = await tether.schedule_refresh(sources, timedelta(hours=6))
    again = tether.source(str(SUPPORT_KB), domain="support")
    assert await tether.schedule_refresh([again], timedelta(hours=1)) == ids["support"]
    assert len(client.made) == 2
    refreshed = {
        sid: [(s.domain, s.source) for s in schedule.action.args[0].sources]
        for sid, schedule in client.made.items()
    }
    assert refreshed[ids["itops"]] == [("itops", "itops-handbook")]
    assert refreshed[ids["support"]] == [("support", "kb")]
    assert client.made[ids["support"]].spec.intervals[0].every == timedelta(hours=1)


def test_front_matter_with_fields_missing_is_said_in_one_line() -> None:
    """Each field and what is wrong with it, not a validation error's report."""
    with pytest.raises(DocumentError) as err:
        parse_front_matter("faq.md", "---\ntitle: FAQ\nversion: two\n---\nBody.")
    said = str(err.value)
    assert "\n" not in said and said.startswith("faq.md: bad front matter: doc_id: Field required")
    assert "version: Input should be a valid integer" in said and "pydantic" not in said
