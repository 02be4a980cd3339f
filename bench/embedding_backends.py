"""Which embedding backend is fastest on this machine, and at what cost to the vectors.

Every candidate embeds the same texts in the same process, in interleaved rounds (so a noisy
neighbour slows all of them alike), two ways Tether uses the model:
- ingest: the chunks of a generated corpus in batches of 32 (chunks/s);
- a request: one ticket at a time (p50 ms), the per-request embedding on the runtime path.

Candidates: torch, and ONNX Runtime with the plain export (Tether's default), Optimum's O2
graph optimisation (transformer fusions), and int8 dynamic quantisation for the instruction
set this CPU has; each at 1 thread and at every core. Each is compared with torch's vectors:
the lowest cosine over the chunks, and how often the top 5 chunks for a ticket are the same
set (retrieval agreement). A backend that changes which passages are found is not a free win.

Run: .venv/bin/python -m bench.embedding_backends [--docs 120] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.ingest_throughput import corpus_texts

RESULTS = Path(__file__).parent / "results" / "embedding_backends.json"
# What a backend must keep to be a default: the stored vectors (ingested by another backend,
# another day) must keep meaning what they meant, and retrieval must find the same passages.
TOLERANCE = {"min_cosine_vs_torch": 0.999, "top5_agreement": 0.99}
TICKETS = [
    "Hi, order A-1001 arrived damaged. Can I get a refund?",
    "Where is my parcel? I ordered last week and nothing came.",
    "I was charged twice for order A-1002, please fix it.",
    "How long do refunds take to reach my card?",
    "The blender I bought stopped working after two days, what are my options?",
    "Can I change the delivery address for my order?",
    "Please cancel my subscription and refund the last month.",
    "Is there a warranty on refurbished items?",
]


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def quantisation_target(flags: set[str]) -> str | None:
    """The int8 kernel set ONNX Runtime can use here (sentence-transformers' names)."""
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return None


def load_candidates(workdir: Path, threads: list[int]) -> dict[str, Callable[[list[str]], Any]]:
    """name -> encode(texts) for every backend that loads here."""
    import onnxruntime as ort
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        export_dynamic_quantized_onnx_model,
        export_optimized_onnx_model,
    )

    from tether.embeddings import bundled_model_path

    source = str(bundled_model_path())
    export = workdir / "onnx-export"
    plain = SentenceTransformer(source, device="cpu", backend="onnx")
    plain.save_pretrained(str(export))
    variants = {"plain": "onnx/model.onnx"}
    try:
        export_optimized_onnx_model(plain, "O2", str(export))
        variants["O2"] = "onnx/model_O2.onnx"
    except Exception as err:  # an optimum without the optimiser: say so, measure the rest
        print(f"O2 export failed: {type(err).__name__}: {err}")
    target = quantisation_target(cpu_flags())
    if target is not None:
        try:
            export_dynamic_quantized_onnx_model(plain, target, str(export))
            variants[f"int8-{target}"] = f"onnx/model_qint8_{target}.onnx"
        except Exception as err:
            print(f"int8 export failed: {type(err).__name__}: {err}")

    torch_model = SentenceTransformer(source, device="cpu")

    def on_torch(n: int) -> Callable[[list[str]], Any]:
        def encode(texts: list[str]) -> Any:
            torch.set_num_threads(n)
            return torch_model.encode(texts, batch_size=32, normalize_embeddings=True)

        return encode

    candidates: dict[str, Callable[[list[str]], Any]] = {}
    for n in threads:
        candidates[f"torch/{n}t"] = on_torch(n)
    for label, file_name in variants.items():
        for n in threads:
            options = ort.SessionOptions()
            options.intra_op_num_threads = n
            model = SentenceTransformer(
                str(export),
                device="cpu",
                backend="onnx",
                model_kwargs={"file_name": file_name, "session_options": options},
            )
            candidates[f"onnx-{label}/{n}t"] = lambda texts, m=model: m.encode(
                texts, batch_size=32, normalize_embeddings=True
            )
    return candidates


def agreement(
    vectors: np.ndarray, reference: np.ndarray, tickets: np.ndarray, ref_tickets: np.ndarray
) -> dict[str, float]:
    cosine = np.sum(vectors * reference, axis=1)
    same = []
    for q, rq in zip(tickets, ref_tickets, strict=True):
        top = set(np.argsort(-(vectors @ q))[:5])
        ref_top = set(np.argsort(-(reference @ rq))[:5])
        same.append(len(top & ref_top) / 5)
    return {
        "min_cosine_vs_torch": round(float(cosine.min()), 5),
        "mean_cosine_vs_torch": round(float(cosine.mean()), 5),
        "top5_agreement": round(float(np.mean(same)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    threads = sorted({1, cores})
    with tempfile.TemporaryDirectory() as tmp:
        chunks = corpus_texts(Path(tmp) / "corpus", args.docs)
        candidates = load_candidates(Path(tmp), threads)
        for encode in candidates.values():
            encode(chunks[:32])  # warm up outside the timings
        batch: dict[str, list[float]] = {name: [] for name in candidates}
        single: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(args.rounds):
            for name, encode in candidates.items():
                started = time.perf_counter()
                encode(chunks)
                batch[name].append(len(chunks) / (time.perf_counter() - started))
                for ticket in TICKETS:
                    started = time.perf_counter()
                    encode([ticket])
                    single[name].append((time.perf_counter() - started) * 1000)
        reference_name = f"torch/{cores}t"
        reference = candidates[reference_name](chunks)
        ref_tickets = candidates[reference_name](TICKETS)
        rows = []
        for name, encode in candidates.items():
            rows.append(
                {
                    "backend": name,
                    "ingest_chunks_per_s": round(statistics.median(batch[name]), 1),
                    "ticket_p50_ms": round(statistics.median(single[name]), 2),
                    **agreement(encode(chunks), reference, encode(TICKETS), ref_tickets),
                }
            )
    base = next(r for r in rows if r["backend"] == reference_name)
    for row in rows:
        row["ingest_vs_torch"] = round(row["ingest_chunks_per_s"] / base["ingest_chunks_per_s"], 2)
        row["ticket_vs_torch"] = round(base["ticket_p50_ms"] / row["ticket_p50_ms"], 2)
    within = [r for r in rows if all(r[k] >= v for k, v in TOLERANCE.items())]

    def speed(row: dict[str, Any]) -> tuple[float, float]:
        """The request path first (a ticket is embedded on every request), then ingest."""
        return row["ticket_p50_ms"], -row["ingest_chunks_per_s"]

    fastest = min(within, key=speed)
    # What Tether can run (TETHER_EMBEDDING_BACKEND): torch, or the plain ONNX export, on
    # every core.
    selectable = {f"torch/{cores}t": "torch", f"onnx-plain/{cores}t": "onnx"}
    choice = min((r for r in within if r["backend"] in selectable), key=speed)
    result = {
        "cpu": cpu_name(),
        "cores": cores,
        "chunks": len(chunks),
        "rounds": args.rounds,
        "reference": reference_name,
        "backends": rows,
        "tolerance": TOLERANCE,
        "outside_tolerance": [r["backend"] for r in rows if r not in within],
        "fastest_within_tolerance": fastest["backend"],
        "choice": selectable[choice["backend"]],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(r["backend"]) for r in rows)
    print(f"{result['cpu']}, {cores} cores, {len(chunks)} chunks, {args.rounds} rounds")
    print(f"{'backend':{width}}  chunks/s  x torch  ticket ms  x torch  min cos  top5")
    for r in rows:
        print(
            f"{r['backend']:{width}}  {r['ingest_chunks_per_s']:8.1f}  {r['ingest_vs_torch']:7.2f}"
            f"  {r['ticket_p50_ms']:9.2f}  {r['ticket_vs_torch']:7.2f}"
            f"  {r['min_cosine_vs_torch']:7.4f}  {r['top5_agreement']:4.2f}"
        )
    print(
        f"outside tolerance ({TOLERANCE}): {', '.join(result['outside_tolerance']) or 'none'}\n"
        f"fastest within it, per request then ingest: {fastest['backend']}; of what Tether "
        f"runs: {choice['backend']} (TETHER_EMBEDDING_BACKEND={result['choice']})"
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
