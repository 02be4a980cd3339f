"""Knowledge sentences' vectors: computed once at ingest, stored with their chunks, read by the
local model and the verifier instead of embedded again on every request.

A chunk's payload carries the vectors of ``split_sentences(text)`` (float32, base64) under
``SENTENCE_VECTORS``. Whoever retrieves the chunk hands them to the process's Embedder
(``Embedder.remember``); a process that did not retrieve it (another compute worker on a shared
Qdrant server) reads them from the store by passage id.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tether.contracts import Passage
from tether.embeddings import DIMENSIONS, Embedder
from tether.text import split_sentences

if TYPE_CHECKING:
    from tether.vectorstore import VectorStore

log = logging.getLogger(__name__)

SENTENCE_VECTORS = "sentence_vectors"
STORED_SENTENCES = "sentences"  # also the store's mark of a chunk that has them


def pack(vectors: npt.NDArray[np.float32]) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).decode()


def unpack(text: str) -> npt.NDArray[np.float32]:
    raw = np.frombuffer(base64.b64decode(text), dtype=np.float32)
    return raw.reshape(-1, DIMENSIONS)


def sentences_of(text: str) -> list[str]:
    """The sentences whose vectors a chunk stores: every one the verifier or the model splits."""
    return split_sentences(text)


def for_chunks(embedder: Embedder, texts: Sequence[str]) -> list[dict[str, Any]]:
    """At ingest: each chunk's sentence vectors, as payload fields (a sentence several chunks
    share is embedded once)."""
    split = [sentences_of(t) for t in texts]
    vectors = embedder.encode([s for ss in split for s in ss])
    fields, start = [], 0
    for ss in split:
        fields.append(
            {
                SENTENCE_VECTORS: pack(vectors[start : start + len(ss)]),
                STORED_SENTENCES: len(ss),
            }
        )
        start += len(ss)
    return fields


def remember(embedder: Embedder, payload: Mapping[str, Any]) -> bool:
    """Hand a stored chunk's sentence vectors to the embedder; False when it has none (an
    index written before they were stored), they are unreadable, or they no longer match its
    sentences (the request then embeds them, as before they were stored)."""
    packed = payload.get(SENTENCE_VECTORS)
    if not isinstance(packed, str):
        return False
    sentences = sentences_of(str(payload.get("text", "")))
    try:
        vectors = unpack(packed)
    except (ValueError, binascii.Error):  # not what ingest wrote: embed instead
        return False
    if len(vectors) != len(sentences):
        return False
    embedder.remember(sentences, vectors)
    return True


class SentenceVectors:
    """Makes sure the sentences of the passages a request cites are known to the embedder
    before the model or the verifier compares them: from the process's cache, else from the
    store, else (an index from before sentence vectors were stored) embedded here."""

    def __init__(
        self, embedder: Embedder, vectors: Callable[[str], VectorStore] | None = None
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors

    def ensure(self, domain: str, passages: Sequence[Passage]) -> None:
        missing = [
            p for p in passages if not all(self._embedder.knows(s) for s in sentences_of(p.text))
        ]
        if not missing or self._vectors is None:
            return
        try:
            stored = self._vectors(domain).payloads([p.passage_id for p in missing])
        except Exception as err:  # the store is an optimisation here: embed instead
            log.warning("sentence vectors unreadable from the store: %r", err)
            return
        for payload in stored.values():
            remember(self._embedder, payload)
