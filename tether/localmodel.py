"""The local model: small, deterministic, offline, built on the bundled MiniLM embeddings.

It is not a language model. For the request's domain pack, it classifies the ticket by its
nearest labelled examples, extracts the answer from the best evidence sentences (with their
citations), fills the intent's tool plan with the pack's fillers, and reports a confidence
from the similarity margin between the best and second-best intent. It never invents text,
which makes it a fair baseline for the machinery around it, and a poor writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from tether import errors
from tether.contracts import ContextRecord, ModelIdentity, ProposeInput, RawProposal, Request
from tether.domain import DomainPack
from tether.embeddings import Embedder
from tether.sentencevectors import SentenceVectors
from tether.text import first_sentence, split_sentences


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
class _Domain:
    pack: DomainPack
    intents: dict[str, Intent]
    labels: list[str]
    examples: npt.NDArray[np.float32]
    identity: ModelIdentity


class LocalModel:
    """Deterministic nearest-example model behind the ModelProvider interface, for every
    pack it is given."""

    def __init__(
        self,
        embedder: Embedder,
        packs: Sequence[DomainPack],
        *,
        neighbours: int = 3,
        margin_scale: float = 0.08,
        sentences: int = 2,
        sentence_vectors: SentenceVectors | None = None,
    ) -> None:
        self._embedder = embedder
        # The evidence's sentences were embedded at ingest: read, not embedded per request.
        self._known = sentence_vectors or SentenceVectors(embedder)
        self._k = neighbours
        self._margin_scale = margin_scale
        self._sentences = sentences
        self._domains = {pack.name: self._learn(pack) for pack in packs}

    def _learn(self, pack: DomainPack) -> _Domain:
        intents = load_intents(pack.intents_file)
        digest = hashlib.sha256(self._embedder.name.encode())
        for intent in intents:
            digest.update(intent.model_dump_json().encode())
        return _Domain(
            pack=pack,
            intents={i.name: i for i in intents},
            labels=[i.name for i in intents for _ in i.examples],
            examples=self._embedder.encode([e for i in intents for e in i.examples]),
            identity=ModelIdentity(
                provider="local",
                model=f"nearest-examples/{self._embedder.name}",
                fingerprint=digest.hexdigest()[:16],
            ),
        )

    def identity(self, domain: str | None = None) -> ModelIdentity:
        name = domain or next(iter(self._domains))
        return self._domains[name].identity

    def _domain(self, name: str) -> _Domain:
        try:
            return self._domains[name]
        except KeyError:
            raise ApplicationError(
                f"the local model knows no domain {name!r}",
                type=errors.UNKNOWN_DOMAIN,
                non_retryable=True,
            ) from None

    async def propose(self, inp: ProposeInput) -> RawProposal:
        content = await asyncio.to_thread(self.propose_sync, inp)
        return RawProposal(content=content, model=self._domain(inp.domain).identity)

    def classify(self, text: str, domain: str) -> tuple[str, float, float]:
        """(intent, best score, second-best score) by mean similarity of the k nearest examples."""
        known = self._domain(domain)
        similarity = known.examples @ self._embedder.encode([text])[0]
        scores: dict[str, float] = {}
        for name in known.intents:
            mine = np.sort(similarity[[i for i, label in enumerate(known.labels) if label == name]])
            scores[name] = float(mine[-self._k :].mean())
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        return ranked[0][0], ranked[0][1], runner_up

    def propose_sync(self, inp: ProposeInput) -> str:
        known = self._domain(inp.domain)
        name, best, second = self.classify(inp.request.text, inp.domain)
        intent = known.intents[name]
        confidence = max(0.0, min(1.0, best)) * min(1.0, (best - second) / self._margin_scale)
        answer, citations = self._answer(inp, inp.context if intent.context else [])
        calls = self._plan(known.pack, intent, inp.request, inp.context, answer)
        return json.dumps(
            {
                "intent": name,
                "answer": answer,
                "citations": citations,
                "tool_calls": calls,
                "confidence": round(confidence, 4),
            }
        )

    def _answer(self, inp: ProposeInput, context: list[ContextRecord]) -> tuple[str, list[str]]:
        candidates = [
            (sentence, passage.passage_id)
            for passage in inp.evidence.passages
            for sentence in split_sentences(passage.text, min_length=20)
        ]
        chosen: list[tuple[int, str, str]] = []
        if candidates:
            self._known.ensure(inp.domain, inp.evidence.passages)
            vectors = self._embedder.encode([inp.request.text] + [s for s, _ in candidates])
            ranked = np.argsort(-(vectors[1:] @ vectors[0]))[: self._sentences]
            chosen = sorted((int(i), *candidates[int(i)]) for i in ranked)
        sentences = [s for _, s, _ in chosen]
        citations = list(dict.fromkeys(pid for _, _, pid in chosen))
        if context:
            sentences.insert(0, first_sentence(context[0].text))
            citations.insert(0, context[0].citation_id)
        if not sentences:
            return "We could not find an answer in our help articles.", []
        return " ".join(sentences), citations

    @staticmethod
    def _plan(
        pack: DomainPack,
        intent: Intent,
        request: Request,
        context: list[ContextRecord],
        answer: str,
    ) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        for tool in intent.plan:
            fill = pack.fillers.get(tool)
            arguments = fill(request, context, answer, intent.name) if fill else {}
            if arguments is not None:  # a filler leaves out what it has nothing to act on
                calls.append({"tool": tool, "arguments": arguments})
        return calls
