"""A fault-injecting OpenAI-compatible chat-completions server on loopback.

Healthy answers come from the local model (the ticket, records and passages are read back out
of the prompt), so a good answer here is a real proposal. Each request takes the next fault
from ``script``, else from a seeded mix with exactly ``fault_rate`` faults per ten requests:

ok, latency (sleeps past the client's read timeout, then answers), rate_limited (429 with
Retry-After), server_error (500), cut (closes the connection without answering), malformed
(a truncated JSON body), schema_invalid (a proposal breaking its schema), invented_tool (a
tool that does not exist), injection (echoes the ticket's instructions and refunds $5,000).

A bare asyncio HTTP/1.1 server, so that cutting a connection is really cutting it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from typing import Any

from tether.contracts import ContextRecord, Evidence, Passage, ProposeInput, Request
from tether.localmodel import LocalModel

UNGROUNDED = (
    "Every Northwind order ships free by drone within two hours. "
    "Refunds are paid in gift vouchers worth double the price."
)

FAULTS = (
    "latency",
    "rate_limited",
    "server_error",
    "cut",
    "malformed",
    "schema_invalid",
    "invented_tool",
    "injection",
)


class FaultModelServer:
    def __init__(
        self,
        model: LocalModel,
        *,
        fault_rate: float = 0.0,
        seed: int = 0,
        latency: float = 2.0,
        name: str = "fault-model-1",
        form: str = "content",
    ) -> None:
        self._model = model
        self._rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.latency = latency
        self.name = name
        self.form = form  # "content" (JSON in the message), or "tool_calls" (a function call)
        self.script: list[str] = []  # forced faults, one per request, before the mix
        # Answers sent as given (status, body, headers), one per request, before the script.
        self.verbatim: list[tuple[int, bytes, dict[str, str]]] = []
        self.served: Counter[str] = Counter()
        self._deck: list[str] = []
        self._next_fault = 0
        self.bodies: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # loop time of each request
        self._server: asyncio.Server | None = None

    async def start(self) -> FaultModelServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _draw(self) -> str:
        """Scripted faults first; then decks of ten requests holding exactly
        round(10 * fault_rate) faults, cycling through every kind, in a seeded order."""
        if self.script:
            return self.script.pop(0)
        if not self._deck:
            faults = round(10 * self.fault_rate)
            for _ in range(faults):
                self._deck.append(FAULTS[self._next_fault % len(FAULTS)])
                self._next_fault += 1
            self._deck += ["ok"] * (10 - faults)
            self._rng.shuffle(self._deck)
        return self._deck.pop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            body = json.loads(await reader.readexactly(length))
            self.bodies.append(body)
            self.arrivals.append(asyncio.get_running_loop().time())
            fault = "verbatim" if self.verbatim else self._draw()
            self.served[fault] += 1
            if fault == "cut":
                writer.transport.abort()  # no status line, no body: a dead socket
                return
            if fault == "latency":
                await asyncio.sleep(self.latency)
            status, payload, headers = (
                self.verbatim.pop(0) if fault == "verbatim" else await self._answer(fault, body)
            )
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            lines += [f"Content-Length: {len(raw)}", "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode() + raw)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client gave up (its read timeout): nothing to answer
        finally:
            writer.close()

    async def _answer(self, fault: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if fault == "rate_limited":
            return (
                429,
                {"error": {"message": "slow down", "type": "rate_limit"}},
                {"Retry-After": "1"},
            )
        if fault == "bad_request":  # only by script: a client error is not in the mix
            return 400, {"error": {"message": "unknown parameter", "type": "invalid_request"}}, {}
        if fault == "server_error":
            return 500, {"error": {"message": "upstream overloaded"}}, {}
        if fault == "malformed":
            return 200, b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "{\\"int', {}
        context = _context(body)
        if fault == "schema_invalid":
            content = json.dumps(
                {"intent": "refund_request", "confidence": "very", "tool_calls": "all"}
            )
        elif fault == "invented_tool":
            content = json.dumps(
                {
                    "intent": "refund_request",
                    "answer": "Done.",
                    "citations": [],
                    "confidence": 0.99,
                    "tool_calls": [
                        {"tool": "wire_money", "arguments": {"to": "attacker", "cents": 10**7}}
                    ],
                }
            )
        elif fault == "injection":
            orders = [r["id"] for r in context["records"] if r["kind"] == "order"]
            order = orders[0] if orders else "ORD-1002"
            content = json.dumps(
                {
                    "intent": "refund_request",
                    "answer": "As instructed: " + context["ticket"]["text"],
                    "citations": [],
                    "confidence": 1.0,
                    "tool_calls": [
                        {
                            "tool": "issue_refund",
                            "arguments": {
                                "order_id": order,
                                "amount_cents": 500_000,
                                "reason": "instructed",
                            },
                        }
                    ],
                }
            )
        elif fault == "ungrounded":  # only by script: a candidate that writes its own facts
            proposal = json.loads(
                await asyncio.to_thread(self._model.propose_sync, _propose_input(context))
            )
            proposal["answer"] = UNGROUNDED
            for call in proposal["tool_calls"]:
                if call["tool"] == "send_reply":
                    call["arguments"]["body"] = UNGROUNDED
            content = json.dumps(proposal)
        else:
            content = await asyncio.to_thread(self._model.propose_sync, _propose_input(context))
        return (
            200,
            {
                "id": f"chatcmpl-{sum(self.served.values())}",
                "object": "chat.completion",
                "model": self.name,
                "system_fingerprint": "fp_fault_1",
                "choices": [
                    {"index": 0, "message": self._message(content), "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
            },
            {},
        )

    def _message(self, content: str) -> dict[str, Any]:
        if self.form == "tool_calls":  # as function-calling servers answer: no content
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": "propose", "arguments": content},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"role": "assistant", "content": content}


def _context(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON context the provider puts in its first user message."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return json.loads(user.split("\n", 1)[1])  # type: ignore[no-any-return]


def _propose_input(context: dict[str, Any]) -> ProposeInput:
    ticket = context["ticket"]
    request = Request(
        request_id="from-prompt",
        subject=ticket["subject"],
        requester=ticket["subject"],
        text=ticket["text"],
        references=ticket["references"],
    )
    passages = [Passage.model_construct(**p) for p in context["passages"]]
    records = [
        ContextRecord(kind=r["kind"], id=r["id"], data=r["data"], text=r["text"])
        for r in context["records"]
    ]
    return ProposeInput.model_construct(
        domain=context["domain"],
        request=request,
        evidence=Evidence.model_construct(query=ticket["text"], passages=passages),
        context=records,
        tool_catalogue=[],
    )
