"""The local model: small, deterministic, offline, built on the bundled MiniLM embeddings.

It is not a language model. It classifies the ticket by its nearest labelled examples,
extracts the answer from the best evidence sentences (with their citations), fills the
intent's tool plan from the request and the order, and reports a confidence from the
similarity margin between the best and second-best intent. It never invents text, which
makes it a fair baseline for the machinery around it, and a poor writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel

from tether.contracts import ModelIdentity, OrderSnapshot, ProposeInput, RawProposal, Request
from tether.embeddings import Embedder
from tether.text import amounts_in, split_sentences

ORDER_INTENTS = {"order_status", "refund_request", "damaged_item", "cancel_order"}


class Intent(BaseModel):
    name: str
    description: str
    plan: list[str]
    examples: list[str]


def load_intents(path: Path) -> list[Intent]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Intent(name=name, **body) for name, body in raw["intents"].items()]


def requested_amount_cents(text: str) -> int | None:
    amounts = amounts_in(text)
    return amounts[0] if amounts else None


class LocalModel:
    """Deterministic nearest-example model behind the ModelProvider interface."""

    def __init__(
        self,
        embedder: Embedder,
        intents: list[Intent],
        *,
        neighbours: int = 3,
        margin_scale: float = 0.08,
        sentences: int = 2,
    ) -> None:
        self._embedder = embedder
        self._intents = {i.name: i for i in intents}
        self._labels = [i.name for i in intents for _ in i.examples]
        self._examples = embedder.encode([e for i in intents for e in i.examples])
        self._k = neighbours
        self._margin_scale = margin_scale
        self._sentences = sentences
        digest = hashlib.sha256(embedder.name.encode())
        for intent in intents:
            digest.update(intent.model_dump_json().encode())
        self._identity = ModelIdentity(
            provider="local",
            model=f"nearest-examples/{embedder.name}",
            fingerprint=digest.hexdigest()[:16],
        )

    def identity(self) -> ModelIdentity:
        return self._identity

    async def propose(self, inp: ProposeInput) -> RawProposal:
        content = await asyncio.to_thread(self.propose_sync, inp)
        return RawProposal(content=content, model=self._identity)

    def classify(self, text: str) -> tuple[str, float, float]:
        """(intent, best score, second-best score) by mean similarity of the k nearest examples."""
        similarity = self._examples @ self._embedder.encode([text])[0]
        scores: dict[str, float] = {}
        for name in self._intents:
            mine = np.sort(similarity[[i for i, label in enumerate(self._labels) if label == name]])
            scores[name] = float(mine[-self._k :].mean())
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        return ranked[0][0], ranked[0][1], ranked[1][1]

    def propose_sync(self, inp: ProposeInput) -> str:
        request, order = inp.request, inp.order
        intent, best, second = self.classify(request.text)
        confidence = max(0.0, min(1.0, best)) * min(1.0, (best - second) / self._margin_scale)
        answer, citations = self._answer(request, order if intent in ORDER_INTENTS else None, inp)
        calls = self._plan(intent, request, order, answer)
        return json.dumps(
            {
                "intent": intent,
                "answer": answer,
                "citations": citations,
                "tool_calls": calls,
                "confidence": round(confidence, 4),
            }
        )

    def _answer(
        self, request: Request, order: OrderSnapshot | None, inp: ProposeInput
    ) -> tuple[str, list[str]]:
        candidates = [
            (sentence, passage.passage_id)
            for passage in inp.evidence.passages
            for sentence in split_sentences(passage.text, min_length=20)
        ]
        chosen: list[tuple[int, str, str]] = []
        if candidates:
            vectors = self._embedder.encode([request.text] + [s for s, _ in candidates])
            ranked = np.argsort(-(vectors[1:] @ vectors[0]))[: self._sentences]
            chosen = sorted((int(i), *candidates[int(i)]) for i in ranked)
        sentences = [s for _, s, _ in chosen]
        citations = list(dict.fromkeys(pid for _, _, pid in chosen))
        if order is not None:
            sentences.insert(0, order.as_text().split(". ")[0] + ".")
            citations.insert(0, order.citation_id)
        if not sentences:
            return "We could not find an answer in our help articles.", []
        return " ".join(sentences), citations

    def _plan(
        self, intent: str, request: Request, order: OrderSnapshot | None, answer: str
    ) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        for tool in self._intents[intent].plan:
            if tool == "issue_refund":
                if order is None:
                    continue  # nothing to refund against; the reply still goes out
                amount = requested_amount_cents(request.text) or order.refundable_cents
                calls.append(
                    {
                        "tool": "issue_refund",
                        "arguments": {
                            "order_id": order.order_id,
                            "amount_cents": amount,
                            "reason": intent,
                        },
                    }
                )
            elif tool == "send_reply":
                args: dict[str, Any] = {"customer_id": request.customer_id, "body": answer}
                if order is not None:
                    args["order_id"] = order.order_id
                calls.append({"tool": "send_reply", "arguments": args})
        return calls
