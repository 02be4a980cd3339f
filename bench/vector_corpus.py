"""A large corpus of real embedded text for the vector-backend benchmark, cached on disk.

The support knowledge base has about 190 sentences; chunks are built from them as sentence
windows, pairs and triples in varied order, with order ids and numbers varied, so that every
chunk text is distinct. Queries are ticket-like questions over the same vocabulary that never
appear in the corpus. Everything is seeded, and the embeddings (the project's `Embedder`) are
cached in `bench/.cache/` with a digest of the texts they came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tether.knowledge import load_directory

KB = Path(__file__).resolve().parent.parent / "domains" / "support" / "kb"
CACHE = Path(__file__).resolve().parent / ".cache"
EMBED_BATCH = 128
EMBED_PROGRESS_EVERY = 8192
STATUSES = ("current",) * 8 + ("superseded",) * 2  # about one chunk in five is filtered out

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_NUMBER = re.compile(r"(?<![$\d.,])\d+(?![.,]?\d)")  # whole numbers, not amounts


@dataclass(frozen=True)
class Sentence:
    doc_id: str
    title: str
    section: int
    text: str


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    payloads: list[dict[str, Any]]
    vectors: npt.NDArray[np.float32]


def kb_sentences(kb: Path = KB) -> list[Sentence]:
    documents = load_directory(kb, fetched_at=datetime.now(UTC))
    return [
        Sentence(meta.doc_id, chunk.payload["title"], index, sentence)
        for meta, chunks in documents
        for index, chunk in enumerate(chunks)
        for sentence in _SENTENCE_END.split(chunk.text)
    ]


def _vary_numbers(text: str, rng: random.Random) -> str:
    def vary(match: re.Match[str]) -> str:
        n = int(match.group())
        return str(rng.randint(max(1, n // 2), 2 * n + 1))

    return _NUMBER.sub(vary, text)


def _order_id(rng: random.Random) -> str:
    return f"ORD-{rng.randint(1000, 999_999)}"


def _pick(sentences: list[Sentence], rng: random.Random) -> list[Sentence]:
    """A window of consecutive sentences from one section, or a mix from anywhere."""
    if rng.random() < 0.4:
        start = rng.randrange(len(sentences))
        same = [s for s in sentences[start : start + 3] if s.section == sentences[start].section]
        return same[: rng.randint(1, len(same))] if len(same) > 1 else same
    return rng.sample(sentences, rng.randint(2, 3))


def _chunk_text(picked: list[Sentence], rng: random.Random) -> str:
    body = " ".join(_vary_numbers(s.text, rng) for s in picked)
    frame = rng.choice(
        (
            "{title}: {body}",
            "Note on {order}. {body}",
            "{body} (ref {order})",
            "Agent summary for {order} - {title}. {body}",
        )
    )
    return frame.format(title=picked[0].title, body=body, order=_order_id(rng))


def _payload(index: int, picked: list[Sentence], rng: random.Random) -> dict[str, Any]:
    stale_at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 1460))
    return {
        "passage_id": f"bench#{index}",
        "doc_id": picked[0].doc_id,
        "status": rng.choice(STATUSES),
        "stale_at": stale_at.isoformat(),
    }


def chunk_texts(count: int, *, seed: int = 7) -> tuple[list[str], list[dict[str, Any]]]:
    """`count` distinct chunk texts with payloads; a prefix of a larger corpus is the smaller."""
    sentences, rng = kb_sentences(), random.Random(seed)
    seen: set[str] = set()
    texts: list[str] = []
    payloads: list[dict[str, Any]] = []
    while len(texts) < count:
        picked = _pick(sentences, rng)
        text = _chunk_text(picked, rng)
        if text not in seen:
            seen.add(text)
            payloads.append(_payload(len(texts), picked, rng))
            texts.append(text)
    return texts, payloads


def query_texts(count: int, *, seed: int = 11) -> list[str]:
    """Ticket-like questions over the knowledge base's vocabulary, none of them a chunk."""
    sentences, rng = kb_sentences(), random.Random(seed)
    frames = (
        "Where is my order {order}? {clause}",
        "Hi, a question about {topic}: {clause}?",
        "Can you help me, {clause}. My order number is {order}.",
        "{clause}? This is about {order}, {topic}.",
    )
    queries: list[str] = []
    while len(queries) < count:
        sentence = rng.choice(sentences)
        words = _vary_numbers(sentence.text, rng).rstrip(".").split()
        start = rng.randrange(max(1, len(words) - 6))
        clause = " ".join(words[start : start + rng.randint(5, 9)]).lower()
        topic = sentence.title.split(" - ")[-1].lower()
        query = rng.choice(frames).format(order=_order_id(rng), topic=topic, clause=clause)
        if query not in queries:
            queries.append(query)
    return queries


def embed_cached(name: str, texts: list[str]) -> npt.NDArray[np.float32]:
    """Embed with the project's Embedder once; later runs load `bench/.cache/<name>.npy`."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    matrix_path, meta_path = CACHE / f"{name}.npy", CACHE / f"{name}.json"
    cached = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if cached.get("sha256") == digest and matrix_path.exists():
        return np.asarray(np.load(matrix_path), dtype=np.float32)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tether.embeddings import Embedder

    embedder, started = Embedder(batch_size=EMBED_BATCH), time.perf_counter()
    parts = []
    for start in range(0, len(texts), EMBED_PROGRESS_EVERY):
        parts.append(embedder.encode(texts[start : start + EMBED_PROGRESS_EVERY]))
        done = start + len(parts[-1])
        print(f"  embedded {done}/{len(texts)} ({time.perf_counter() - started:.0f}s)", flush=True)
    matrix = np.concatenate(parts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(matrix_path, matrix)
    meta_path.write_text(
        json.dumps({"sha256": digest, "model": embedder.name, "count": len(texts)})
    )
    return matrix


def _corpus_name(size: int) -> str:
    return f"corpus-{size // 1000}k" if size % 1000 == 0 else f"corpus-{size}"


def _cached_corpus_sizes() -> list[int]:
    return [int(json.loads(meta.read_text())["count"]) for meta in CACHE.glob("corpus-*.json")]


def load_corpus(size: int) -> Corpus:
    """The first `size` chunks, sliced from a larger cached corpus when there is one."""
    built = min((n for n in _cached_corpus_sizes() if n >= size), default=size)
    texts, payloads = chunk_texts(built)
    vectors = embed_cached(_corpus_name(built), texts)
    return Corpus(texts[:size], payloads[:size], vectors[:size])


def load_queries(count: int) -> npt.NDArray[np.float32]:
    return embed_cached(f"queries-{count}", query_texts(count))
