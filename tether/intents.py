"""Reading a request's intent from the pack's labelled examples (its intents file).

The local model proposes the intent it reads this way; the verifier reads it again from the
request alone, whoever proposed, so that an intent's own thresholds are not the model's word
only (tether.policy.decide). The examples are embedded once per pack: on its first reading,
or when ``warm`` asks (the local model at its start, a worker while it polls).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from tether import errors
from tether.domain import DomainPack
from tether.embeddings import Embedder


class Intent(BaseModel):
    name: str
    description: str
    plan: list[str]
    examples: list[str]
    # Answers for this intent open with what the first context record says (its status).
    context: bool = False


def load_intents(path: Path) -> list[Intent]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Intent(name=name, **body) for name, body in raw["intents"].items()]


@dataclass(frozen=True)
class Reading:
    """The intent read in a text, its score and the runner-up's (mean similarity of each
    intent's ``k`` nearest examples)."""

    intent: str
    best: float
    second: float
    runner_up: str | None = None  # the intent scored ``second``


@dataclass(frozen=True)
class _Examples:
    intents: dict[str, Intent]
    rows: dict[str, list[int]]  # intent -> its examples' rows in the vectors
    texts: list[str]


class IntentReader:
    """Nearest labelled examples, for every pack it is given. The examples are embedded on
    the first reading, not when the reader is made: a worker starting up polls before the
    embedding model has loaded (issue 15, recovery)."""

    def __init__(
        self, embedder: Embedder, packs: Sequence[DomainPack], *, neighbours: int = 3
    ) -> None:
        self._embedder = embedder
        self._k = neighbours
        self._packs = {pack.name: self._learn(pack) for pack in packs}
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _learn(pack: DomainPack) -> _Examples:
        intents = load_intents(pack.intents_file)
        texts: list[str] = []
        rows: dict[str, list[int]] = {}
        for intent in intents:
            if intent.examples:  # an intent without examples is never read
                rows[intent.name] = list(range(len(texts), len(texts) + len(intent.examples)))
                texts += intent.examples
        return _Examples(intents={i.name: i for i in intents}, rows=rows, texts=texts)

    def intents(self, domain: str) -> dict[str, Intent]:
        return self._domain(domain).intents

    def _domain(self, name: str) -> _Examples:
        try:
            return self._packs[name]
        except KeyError:
            raise ApplicationError(
                f"no intents are known for domain {name!r}",
                type=errors.UNKNOWN_DOMAIN,
                non_retryable=True,
            ) from None

    def _examples(self, domain: str, known: _Examples) -> npt.NDArray[np.float32]:
        with self._lock:  # activities read from threads: the examples are embedded once
            if domain not in self._vectors:
                self._vectors[domain] = self._embedder.encode(known.texts)
            return self._vectors[domain]

    def warm(self) -> None:
        """Every pack's examples embedded now, before the first request waits for them."""
        for domain, known in self._packs.items():
            self._examples(domain, known)

    def read(self, text: str, domain: str) -> Reading | None:
        """The intent ``text`` reads as; None when the pack labels no examples."""
        known = self._domain(domain)
        if not known.rows:
            return None
        similarity = self._examples(domain, known) @ self._embedder.encode([text])[0]
        scores = {
            name: float(np.sort(similarity[rows])[-self._k :].mean())
            for name, rows in known.rows.items()
        }
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        return Reading(
            intent=ranked[0][0],
            best=ranked[0][1],
            second=ranked[1][1] if len(ranked) > 1 else 0.0,
            runner_up=ranked[1][0] if len(ranked) > 1 else None,
        )
