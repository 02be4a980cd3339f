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
from typing import Any

import numpy as np
from temporalio.exceptions import ApplicationError

from tether import errors
from tether.contracts import ContextRecord, ModelIdentity, ProposeInput, RawProposal, Request
from tether.domain import DomainPack
from tether.embeddings import Embedder
from tether.intents import Intent, IntentReader
from tether.intents import load_intents as load_intents  # where packs made before import it
from tether.sentencevectors import SentenceVectors
from tether.text import first_sentence, split_sentences


@dataclass(frozen=True)
class _Domain:
    pack: DomainPack
    intents: dict[str, Intent]
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
        intents: IntentReader | None = None,
    ) -> None:
        self._embedder = embedder
        # The evidence's sentences were embedded at ingest: read, not embedded per request.
        self._known = sentence_vectors or SentenceVectors(embedder)
        # The verifier's too, where they share a process (``neighbours``: for one of its own).
        self._reader = intents or IntentReader(embedder, packs, neighbours=neighbours)
        self._reader.warm()  # its labelled examples embedded once, at start
        self._margin_scale = margin_scale
        self._sentences = sentences
        self._domains = {pack.name: self._learn(pack) for pack in packs}

    def _learn(self, pack: DomainPack) -> _Domain:
        intents = self._reader.intents(pack.name)
        digest = hashlib.sha256(self._embedder.name.encode())
        for intent in intents.values():
            digest.update(intent.model_dump_json().encode())
        return _Domain(
            pack=pack,
            intents=intents,
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

    def propose_sync(self, inp: ProposeInput) -> str:
        known = self._domain(inp.domain)
        read = self._reader.read(inp.request.text, inp.domain)
        if read is None:
            raise ApplicationError(
                f"the local model has no labelled examples for domain {inp.domain!r}",
                type=errors.UNKNOWN_DOMAIN,
                non_retryable=True,
            )
        name = read.intent
        intent = known.intents[name]
        best, second = read.best, read.second
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
