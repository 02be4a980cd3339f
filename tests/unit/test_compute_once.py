"""Per-request CPU work that does not repeat itself: knowledge sentences are embedded once, at
ingest, and stored with their chunks; a request embeds its ticket once, and the local model
and the verifier read everything else. And an embedded shard has exactly one owner."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FRESHNESS_AS_OF, SUPPORT_KB
from tests.unit.test_retrieval import activities, ingest
from tether.activities.retrieval import RetrievalActivities
from tether.activities.verification import VerificationActivities
from tether.config import RetrievalConfig
from tether.contracts import Proposal, ProposeInput, Request, RetrievalQuery, VerifyInput
from tether.domains.support import PACK as SUPPORT
from tether.embeddings import DIMENSIONS, Embedder
from tether.localmodel import LocalModel
from tether.sentencevectors import SENTENCE_VECTORS, SentenceVectors, pack, sentences_of, unpack
from tether.store import Store
from tether.vectorstore import EdgeStore, QdrantStore, ShardInUse, VectorStore

TICKET = "How long does a refund take to reach my card? Order ORD-1005."


def fresh(embedder: Embedder) -> Embedder:
    """Another process's embedder: the same model files, nothing in its cache."""
    return Embedder(onnx_cache=embedder._onnx_cache)


def test_a_request_embeds_only_its_ticket_and_only_once(
    parts: tuple[VectorStore, Store], embedder: Embedder
) -> None:
    """Ingest in one process; retrieve, propose and verify in another (a restarted worker,
    its cache empty): the ticket is the only text embedded, once, for all three."""
    ingest(activities(parts, embedder), SUPPORT_KB)
    worker = fresh(embedder)
    model = LocalModel(worker, [SUPPORT])  # embeds its labelled examples once, at start
    before = worker.misses
    cfg = RetrievalConfig(freshness_as_of=FRESHNESS_AS_OF)
    retrieval = RetrievalActivities(worker, lambda _: parts[0], parts[1], cfg)
    request = Request(request_id="r-1", subject="C-100", requester="C-100", text=TICKET)
    evidence = retrieval.retrieve_evidence(
        RetrievalQuery(domain="support", text=TICKET, request_id="r-1")
    )
    assert evidence.passages
    raw = model.propose_sync(
        ProposeInput(domain="support", request=request, evidence=evidence, tool_catalogue=[])
    )
    proposal = Proposal.model_validate_json(raw)
    verified = VerificationActivities(worker, [SUPPORT]).verify_proposal(
        VerifyInput(domain="support", request=request, evidence=evidence, proposal=proposal)
    )
    assert verified.grounding == 1.0, verified
    assert worker.misses - before == 1, "only the ticket is embedded"
    assert worker.hits > 0


def test_sentences_not_retrieved_here_are_read_from_the_store(
    parts: tuple[VectorStore, Store], embedder: Embedder
) -> None:
    """A compute worker that did not run this request's retrieval (a shared Qdrant server)
    reads the cited passages' sentence vectors by passage id instead of embedding them."""
    acts = activities(parts, embedder)
    ingest(acts, SUPPORT_KB)
    evidence = acts.retrieve_evidence(
        RetrievalQuery(domain="support", text=TICKET, request_id="r-2")
    )
    other = fresh(embedder)
    SentenceVectors(other, lambda _: parts[0]).ensure("support", evidence.passages)
    sentences = [s for p in evidence.passages for s in sentences_of(p.text)]
    assert sentences and all(other.knows(s) for s in sentences)
    assert other.misses == 0
    # And they are the vectors the model would have computed.
    again = other.encode_uncached(sentences[:3])
    assert np.allclose(other.encode(sentences[:3]), again, atol=1e-5)


def test_a_chunk_stored_without_sentence_vectors_is_written_again(
    tmp_path: Path, embedder: Embedder
) -> None:
    """An index from before sentence vectors were stored heals on its next refresh."""
    vectors = QdrantStore("kb", DIMENSIONS, path=tmp_path / "qdrant")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        acts = activities((vectors, store), embedder)
        first = ingest(acts, SUPPORT_KB)
        pid = next(iter(vectors.hashes()))
        payload = vectors.payloads([pid])[pid]
        old = {k: v for k, v in payload.items() if k not in (SENTENCE_VECTORS, "sentences")}
        vectors.replace([pid], embedder.encode([payload["text"]]), [old], [])
        assert vectors.hashes()[pid] == ""
        again = ingest(acts, SUPPORT_KB)
        assert (first.embedded, again.embedded) == (first.chunks, 1)
        assert SENTENCE_VECTORS in vectors.payloads([pid])[pid]
    finally:
        vectors.close()
        store.close()


def test_packed_vectors_round_trip_and_a_mismatch_is_not_remembered() -> None:
    vectors = np.random.default_rng(7).random((3, DIMENSIONS), dtype=np.float32)
    assert np.array_equal(unpack(pack(vectors)), vectors)
    from tether.sentencevectors import remember

    cache = Embedder(cache_size=10)
    text = "One sentence here. And a second one."
    assert not remember(cache, {"text": text, SENTENCE_VECTORS: pack(vectors)})  # 2 != 3
    assert remember(cache, {"text": text, SENTENCE_VECTORS: pack(vectors[:2])})
    assert cache.knows("One sentence here.") and cache.knows("And a second one.")


def test_the_embedding_cache_is_bounded() -> None:
    cache = Embedder(cache_size=2)
    rows = np.eye(3, DIMENSIONS, dtype=np.float32)
    cache.remember(["a", "b", "c"], rows)
    assert [cache.knows(t) for t in "abc"] == [False, True, True]


@pytest.fixture
def shard(tmp_path: Path) -> Path:
    return tmp_path / "edge" / "support"


def test_a_second_owner_of_an_embedded_shard_is_refused(shard: Path) -> None:
    first = EdgeStore(DIMENSIONS, shard)
    try:
        with pytest.raises(ShardInUse, match="owned by process"):
            EdgeStore(DIMENSIONS, shard)
    finally:
        first.close()
    EdgeStore(DIMENSIONS, shard).close()  # released with its owner


def test_another_process_cannot_open_an_owned_shard(shard: Path) -> None:
    """What a second `tether worker` on the same data directory meets: a clear error naming
    the owner, not a silent copy that never sees what the owner ingests."""
    owner = EdgeStore(DIMENSIONS, shard)
    try:
        script = textwrap.dedent(
            f"""
            from pathlib import Path
            from tether.vectorstore import EdgeStore, ShardInUse
            try:
                EdgeStore({DIMENSIONS}, Path({str(shard)!r}))
            except ShardInUse as err:
                print(err)
                raise SystemExit(3)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 3, done.stderr
        import os

        assert f"owned by process {os.getpid()}" in done.stdout
        assert "--role workflow" in done.stdout and "TETHER_QDRANT_URL" in done.stdout
    finally:
        owner.close()


def test_unreadable_stored_vectors_are_embedded_instead() -> None:
    """A payload that is not what ingest wrote fails nothing: the sentences are embedded."""
    from tether.sentencevectors import remember

    cache = Embedder(cache_size=10)
    text = "One sentence here. And a second one."
    for broken in ("not base64!", pack(np.zeros((1, 7), dtype=np.float32)), 42):
        assert not remember(cache, {"text": text, SENTENCE_VECTORS: broken})
    assert not cache.knows("One sentence here.")
