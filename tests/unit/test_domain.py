"""The support domain pack is consistent with itself and with the workflow's constants."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tether.domains.support import INTENTS, PACK
from tether.domains.support.tools import REGISTRY
from tether.knowledge import load_directory
from tether.localmodel import load_intents


def test_intent_names_match_the_examples_file() -> None:
    intents = load_intents(PACK.intents_file)
    assert tuple(i.name for i in intents) == INTENTS
    for intent in intents:
        assert len(intent.examples) >= 10, intent.name
        assert all(tool in REGISTRY for tool in intent.plan), intent.name


def test_knowledge_base_has_provenance_and_one_superseded_policy() -> None:
    documents = load_directory(Path(str(PACK.knowledge[0].location)), fetched_at=datetime.now(UTC))
    assert len(documents) >= 15
    superseded = [meta for meta, _ in documents if meta.status == "superseded"]
    assert [m.doc_id for m in superseded] == ["refund-policy-v2"]
    assert superseded[0].superseded_by == "refund-policy"
    for meta, chunks in documents:
        assert chunks, meta.doc_id
        assert all(c.payload["doc_id"] == meta.doc_id and c.payload["content_hash"] for c in chunks)
