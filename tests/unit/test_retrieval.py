"""Retrieval knows its age: superseded, stale, duplicate and over-budget passages are dropped
and reported; re-ingesting embeds only what changed. Real Qdrant local mode, real embeddings."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from tests.conftest import FRESHNESS_AS_OF, SUPPORT_KB
from tether.activities.retrieval import RetrievalActivities
from tether.config import RetrievalConfig
from tether.contracts import IngestInput, RetrievalQuery
from tether.embeddings import Embedder
from tether.store import Store
from tether.vectorstore import VectorStore

DUPLICATE = """---
doc_id: {doc_id}
title: Refund timing copy
version: 1
effective_date: 2026-03-01
updated_at: 2026-10-01T00:00:00Z
status: current
source: copied-wiki
max_age_days: 730
---
## Timing

Refunds to the original payment method arrive within 5 to 10 business days after the refund is issued.
"""


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    target = tmp_path / "kb"
    shutil.copytree(SUPPORT_KB, target)
    return target


def activities(
    parts: tuple[VectorStore, Store], embedder: Embedder, **config: object
) -> RetrievalActivities:
    cfg = RetrievalConfig(freshness_as_of=FRESHNESS_AS_OF).model_copy(update=config)
    return RetrievalActivities(embedder, lambda _: parts[0], parts[1], cfg)


def ingest(acts: RetrievalActivities, path: Path):  # type: ignore[no-untyped-def]
    return ActivityEnvironment().run(
        acts.ingest_documents, IngestInput(domain="support", path=str(path))
    )


def test_superseded_and_stale_passages_are_dropped_and_reported(
    parts, embedder: Embedder, kb: Path
) -> None:  # type: ignore[no-untyped-def]
    acts = activities(parts, embedder, top_k=12)
    ingest(acts, kb)
    evidence = acts.retrieve_evidence(
        RetrievalQuery(
            domain="support", text="How many days do I have to ask for a refund?", request_id="r"
        )
    )
    assert all(p.doc_id != "refund-policy-v2" for p in evidence.passages)
    assert "refund-policy" in {p.doc_id for p in evidence.passages}
    dropped = {d.passage_id.split("@")[0]: d.reason for d in evidence.freshness.dropped}
    assert dropped.get("refund-policy-v2") == "superseded"

    shipping = acts.retrieve_evidence(
        RetrievalQuery(
            domain="support", text="Do you ship internationally to Canada?", request_id="r"
        )
    )
    assert all(p.doc_id != "international-shipping" for p in shipping.passages)  # past its max age
    assert "stale" in {
        d.reason
        for d in shipping.freshness.dropped
        if d.passage_id.startswith("international-shipping")
    }
    assert not shipping.freshness.stale_index


def test_duplicates_collapse_and_budget_is_enforced(parts, embedder: Embedder, kb: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("copy-a", "copy-b"):
        (kb / f"{name}.md").write_text(DUPLICATE.format(doc_id=name))
    acts = activities(parts, embedder, max_passages=2)
    ingest(acts, kb)
    evidence = acts.retrieve_evidence(
        RetrievalQuery(
            domain="support", text="When will my refund arrive on my card?", request_id="r"
        )
    )
    texts = [p.text for p in evidence.passages]
    assert len(texts) == len(set(texts)) and len(texts) <= 2
    reasons = {d.reason for d in evidence.freshness.dropped}
    assert {"duplicate", "budget"} <= reasons


def test_reingest_embeds_only_changes_and_deletes_removed_documents(
    parts, embedder: Embedder, kb: Path
) -> None:  # type: ignore[no-untyped-def]
    acts = activities(parts, embedder)
    first = ingest(acts, kb)
    assert first.embedded == first.chunks > 0
    again = ingest(acts, kb)
    assert again.embedded == 0 and again.removed == 0
    (kb / "warranty.md").unlink()
    third = ingest(acts, kb)
    assert third.removed > 0 and third.embedded == 0
    evidence = acts.retrieve_evidence(
        RetrievalQuery(domain="support", text="How long is the warranty on tents?", request_id="r")
    )
    assert all(p.doc_id != "warranty" for p in evidence.passages)


def test_index_not_refreshed_in_time_is_reported_stale(parts, embedder: Embedder, kb: Path) -> None:  # type: ignore[no-untyped-def]
    ingest(activities(parts, embedder), kb)
    later = activities(parts, embedder, freshness_as_of=FRESHNESS_AS_OF + timedelta(days=8))
    evidence = later.retrieve_evidence(
        RetrievalQuery(domain="support", text="refund", request_id="r")
    )
    assert evidence.freshness.stale_index
    assert evidence.freshness.index_age_seconds == pytest.approx(timedelta(days=8).total_seconds())


def test_stale_passages_can_be_kept_and_flagged(parts, embedder: Embedder, kb: Path) -> None:  # type: ignore[no-untyped-def]
    acts = activities(parts, embedder, keep_stale=True)
    ingest(acts, kb)
    shipping = acts.retrieve_evidence(
        RetrievalQuery(
            domain="support", text="Do you ship internationally to Canada?", request_id="r"
        )
    )
    flagged = [p for p in shipping.freshness.stale_kept if p.startswith("international-shipping")]
    assert flagged and flagged[0] in {p.passage_id for p in shipping.passages}
    assert "stale" not in {d.reason for d in shipping.freshness.dropped}
