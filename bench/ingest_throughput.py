"""Ingest throughput and re-ingest cost, each against its baseline in the same run.

1. A fresh ingest of N chunks through Tether's ingest activity (read, chunk, hash, embed in
   batches, write to the embedded store and build its index, record the refresh) against raw
   ``SentenceTransformer.encode`` over exactly the same chunk texts, same batch size.
   Target: at least 0.9 of raw.
2. Re-ingest of the unchanged corpus against that first ingest. Target: at least 20x faster.
3. Tether's ingest on sentence-transformers' ONNX backend (Tether's default), against raw
   torch encode, and whether its vectors agree with torch's (cosine): a faster backend that
   changed the vectors would not be a free win. Target: above 1.5x raw.

Run: .venv/bin/python -m bench.ingest_throughput [--docs 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "ingest_throughput.json"
KB = Path(__file__).resolve().parent.parent / "domains" / "support" / "kb"


def write_corpus(target: Path, documents: int) -> None:
    """Documents of three sections each, built from the handbook's sentences: real text,
    every chunk distinct."""
    from tether.knowledge import load_directory
    from tether.text import split_sentences

    now = datetime.now(UTC)
    sentences = [
        s
        for _, chunks in load_directory(KB, fetched_at=now)
        for c in chunks
        for s in split_sentences(c.text, min_length=30)
    ]
    for d in range(documents):
        parts = []
        for j in range(3):
            picked = [sentences[(d * 7 + j * 13 + k * 31) % len(sentences)] for k in range(3)]
            parts.append(f"## Part {j} of item {d}\n\n" + " ".join(picked) + f" Reference {d}-{j}.")
        (target / f"doc-{d:04d}.md").write_text(f"# Item {d}\n\n" + "\n\n".join(parts) + "\n")


def corpus_texts(target: Path, documents: int) -> list[str]:
    """Write the corpus into ``target`` (made here) and return its chunks' embedded texts."""
    from tether.knowledge import load_directory

    target.mkdir()
    write_corpus(target, documents)
    return [
        c.embed_text
        for _, chunks in load_directory(target, fetched_at=datetime.now(UTC))
        for c in chunks
    ]


def tether_ingest(corpus: Path, workdir: Path, embedder: Any = None) -> tuple[float, Any, Any]:
    """(seconds, report, activities) for one ingest into a fresh index."""
    from temporalio.testing import ActivityEnvironment

    from activities.retrieval import RetrievalActivities
    from tether.config import RetrievalConfig
    from tether.contracts import IngestInput
    from tether.embeddings import DIMENSIONS
    from tether.store import Store
    from tether.vectorstore import EdgeStore

    vectors = EdgeStore(DIMENSIONS, workdir / "edge")  # the default embedded store
    acts = RetrievalActivities(
        embedder or EMBEDDER,
        lambda _: vectors,
        Store(f"sqlite:///{workdir / 'store.db'}"),
        RetrievalConfig(),
    )
    started = time.perf_counter()
    report = ActivityEnvironment().run(
        acts.ingest_documents, IngestInput(domain="support", source="bench", path=str(corpus))
    )
    return time.perf_counter() - started, report, acts


def raw_encode(texts: list[str]) -> float:
    model = EMBEDDER._load()
    started = time.perf_counter()
    model.encode(texts, batch_size=EMBEDDER._batch_size, normalize_embeddings=True)
    return time.perf_counter() - started


def onnx_check(corpus: Path, texts: list[str], workdir: Path) -> dict[str, Any]:
    """Tether's ingest on the ONNX backend, against raw torch encode of the same texts."""
    from tether.embeddings import Embedder

    onnx = Embedder(backend="onnx", onnx_cache=workdir / "onnx-model")
    try:
        onnx.encode(texts[:64])  # export (the first time) and warm up
    except Exception as err:  # the `onnx` extra is not installed
        return {"available": False, "why": f"{type(err).__name__}: {err}"[:300]}
    sample = texts[:512]
    agreement = np.sum(onnx.encode(sample) * EMBEDDER.encode(sample), axis=1)
    torch_seconds = raw_encode(texts)
    seconds, report, acts = tether_ingest(corpus, workdir / "onnx-index", onnx)
    assert report.embedded == len(texts), report
    acts._vectors("support").close()
    acts._store.close()
    return {
        "available": True,
        "min_cosine_vs_torch": round(float(agreement.min()), 5),
        "tether_onnx_chunks_per_s": round(len(texts) / seconds, 1),
        "tether_onnx_vs_raw_torch": round(torch_seconds / seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from temporalio.testing import ActivityEnvironment

    from tether.contracts import IngestInput

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        texts = corpus_texts(corpus, args.docs)
        EMBEDDER.encode(texts[:64])  # load the model and warm up outside the timings
        raw, fresh, again = [], [], []
        for r in range(args.rounds):  # interleaved, so both sides see the same machine
            raw.append(raw_encode(texts))
            seconds, report, acts = tether_ingest(corpus, Path(tmp) / f"index-{r}")
            assert report.embedded == len(texts), report
            fresh.append(seconds)
            started = time.perf_counter()
            repeat = ActivityEnvironment().run(
                acts.ingest_documents,
                IngestInput(domain="support", source="bench", path=str(corpus)),
            )
            again.append(time.perf_counter() - started)
            assert repeat.embedded == 0, repeat
            acts._vectors("support").close()
            acts._store.close()
        onnx = onnx_check(corpus, texts, Path(tmp))

    chunks = len(texts)
    result = {
        "chunks": chunks,
        "raw_chunks_per_s": round(chunks / statistics.median(raw), 1),
        "tether_chunks_per_s": round(chunks / statistics.median(fresh), 1),
        "throughput_vs_raw": round(statistics.median(raw) / statistics.median(fresh), 3),
        "first_ingest_s": round(statistics.median(fresh), 2),
        "reingest_s": round(statistics.median(again), 3),
        "reingest_speedup": round(statistics.median(fresh) / statistics.median(again), 1),
        "onnx": onnx,
        "cpus": os.cpu_count(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tether.embeddings import Embedder

    EMBEDDER = Embedder(backend="torch")  # the raw baseline, and Tether's ingest on torch
    main()
