"""What reading the stored versions of the documents a retrieval hit costs, per retrieval.

Retrieval drops a chunk whose document has a newer version in effect, from every version the
store holds (not only those among the hits). That takes a read of the store beside the
search. Measured here on synthetic chunks (random unit vectors; ten chunks per document, a
tenth of the documents in two versions) in the embedded default (Qdrant Edge) and in
qdrant-client's local mode: the search alone, the search and the versions read every time
(before 2026-12-07), and the search with the versions kept per document (now: read once per
``VERSIONS_KNOWN_FOR`` seconds), on its first pass over the traffic and on a second. The
queries return to 30 topics, as tickets do. Ratios are against the search alone, same run.

    python -m bench.version_reads                 # or: --chunks 20000 --queries 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from tether.activities.retrieval import RetrievalActivities
from tether.config import RetrievalConfig
from tether.vectorstore import EdgeStore, QdrantStore, VectorStore

DIMENSIONS = 384
TOP_K = 8
RESULTS = Path(__file__).resolve().parent / "results" / "version_reads.json"


def corpus(chunks: int, rng: np.random.Generator) -> tuple[list[str], Any, list[dict[str, Any]]]:
    vectors = rng.standard_normal((chunks, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids, payloads = [], []
    for n in range(chunks):
        doc = n // 10
        version = 2 if doc % 10 == 0 and n % 10 >= 5 else 1
        pid = f"doc-{doc}@v{version}#{n % 10}"
        ids.append(pid)
        payloads.append(
            {
                "passage_id": pid,
                "doc_id": f"doc-{doc}",
                "origin": "bench",
                "version": version,
                "effective_date": "2026-01-01",
                "status": "current",
            }
        )
    return ids, vectors, payloads


def p50_ms(run: Callable[[Any], object], queries: Any) -> float:
    times = []
    for q in queries:
        started = time.perf_counter()
        run(q)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def measure(name: str, store: VectorStore, queries: Any) -> dict[str, Any]:
    today = date(2026, 12, 7)
    cached = RetrievalActivities(None, lambda _: store, None, RetrievalConfig())  # type: ignore[arg-type]

    def search(q: Any) -> object:
        return store.search(q, TOP_K)

    def read_every_time(q: Any) -> object:
        hits = store.search(q, TOP_K)
        doc_ids = sorted({str(h.payload["doc_id"]) for h in hits})
        return store.fields(["doc_id", "origin", "version", "effective_date"], doc_ids=doc_ids)

    def kept(q: Any) -> object:
        return cached._in_force("bench", store, store.search(q, TOP_K), today)

    for q in queries[:20]:  # warm the engine's caches (its versions kept: the first pass)
        search(q)
    alone = p50_ms(search, queries)
    every = p50_ms(read_every_time, queries)
    first = p50_ms(kept, queries)  # each document's versions read the first time it is hit
    again = p50_ms(kept, queries)  # the same traffic within VERSIONS_KNOWN_FOR: kept
    return {
        "backend": name,
        "search_p50_ms": alone,
        "read_every_time_p50_ms": every,
        "kept_first_pass_p50_ms": first,
        "kept_p50_ms": again,
        "read_every_time_ratio": round(every / alone, 2),
        "kept_first_pass_ratio": round(first / alone, 2),
        "kept_ratio": round(again / alone, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    # A pass over the traffic must end within VERSIONS_KNOWN_FOR in local mode (~0.2 s each).
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    ids, vectors, payloads = corpus(args.chunks, rng)
    # Tickets come back to the same few topics: each query is near one of 30 chunks.
    topics = vectors[rng.choice(len(vectors), 30, replace=False)]
    noise = rng.standard_normal((args.queries, DIMENSIONS)).astype(np.float32) * 0.03
    queries = topics[rng.integers(0, len(topics), args.queries)] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        stores: list[tuple[str, VectorStore]] = [
            ("qdrant edge", EdgeStore(DIMENSIONS, Path(tmp) / "edge")),
            ("qdrant-client local", QdrantStore("bench", DIMENSIONS, path=Path(tmp) / "local")),
        ]
        for name, store in stores:
            for start in range(0, len(ids), 1024):
                end = start + 1024
                store.replace(ids[start:end], vectors[start:end], payloads[start:end], [])
            store.optimize()
            results.append(measure(name, store, queries))
            store.close()
            print(json.dumps(results[-1]))
    RESULTS.write_text(
        json.dumps(
            {"settings": {"chunks": args.chunks, "queries": args.queries}, "results": results},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
