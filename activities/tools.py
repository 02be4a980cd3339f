"""Support tools over HTTP. Errors are classified here, at the activity boundary.

2xx with a JSON object -> result, else UpstreamMalformed; 404 order_not_found -> OrderNotFound;
409 idempotency_conflict -> IdempotencyConflict; other 4xx -> UpstreamRejected (all
non-retryable); 408, 429, 5xx and transport errors -> retried by the retry policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domains.support.tools import (
    REGISTRY,
    IssueRefundArgs,
    LookupOrderArgs,
    ReverseRefundArgs,
    SendReplyArgs,
)
from tether import errors
from tether.contracts import OrderSnapshot, ToolCall, ToolInvocation, ToolResult
from tether.ledger import Ledger


def classify(response: httpx.Response) -> dict[str, Any]:
    """Translate an upstream answer into a result or a named Temporal error."""
    try:
        body = response.json()
    except ValueError:
        body = None
    shown = body if body is not None else response.text[:200]
    detail = f"{response.request.method} {response.request.url.path} -> {response.status_code}: {shown!r}"
    code = response.status_code
    if response.is_success:
        if not isinstance(body, dict):
            raise ApplicationError(detail, type=errors.UPSTREAM_MALFORMED, non_retryable=True)
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if code in (408, 429) or code >= 500:
        raise ApplicationError(detail, type=errors.UPSTREAM_UNAVAILABLE)  # retryable
    if code == 404 and error == "order_not_found":
        raise ApplicationError(detail, type=errors.ORDER_NOT_FOUND, non_retryable=True)
    if code == 409 and error == "idempotency_conflict":
        raise ApplicationError(detail, type=errors.IDEMPOTENCY_CONFLICT, non_retryable=True)
    raise ApplicationError(detail, type=errors.UPSTREAM_REJECTED, non_retryable=True)


class SupportToolActivities:
    """One activity per tool, named after it; the workflow dispatches by tool name."""

    def __init__(self, http: httpx.AsyncClient, ledger: Ledger | None = None) -> None:
        self._http = http
        self._ledger = ledger

    async def _once(
        self, call: ToolInvocation, act: Callable[[], Awaitable[ToolResult]]
    ) -> ToolResult:
        """Act at most once per idempotency key, as recorded in the ledger (see tether.ledger)."""
        if self._ledger is None:
            return await act()
        lease = activity.info().start_to_close_timeout or timedelta(seconds=30)
        key = call.idempotency_key
        claim = await asyncio.to_thread(
            self._ledger.claim, key, call.tool, call.request_id, call.arguments, lease=lease
        )
        if claim.outcome == "settled" and claim.result is not None:
            return ToolResult.model_validate_json(claim.result).model_copy(
                update={"replayed": True}
            )
        if claim.outcome == "conflict":
            raise ApplicationError(
                f"{key} was used with other arguments",
                type=errors.IDEMPOTENCY_CONFLICT,
                non_retryable=True,
            )
        if claim.outcome == "in_progress":
            raise ApplicationError(
                f"{key} is being acted on by another delivery", type=errors.IN_PROGRESS
            )
        try:
            result = await act()
        except Exception:
            await asyncio.to_thread(self._ledger.release, key)
            raise
        await asyncio.to_thread(self._ledger.settle, key, result.model_dump_json())
        return result

    def _checked(self, call: ToolInvocation) -> None:
        problems = REGISTRY.check_call(ToolCall(tool=call.tool, arguments=call.arguments))
        if problems:
            raise ApplicationError(
                "; ".join(problems), type=errors.UPSTREAM_REJECTED, non_retryable=True
            )

    @activity.defn(name="lookup_order")
    async def lookup_order(self, call: ToolInvocation) -> ToolResult:
        self._checked(call)
        args = LookupOrderArgs.model_validate(call.arguments)
        data = classify(await self._http.get(f"/orders/{args.order_id}"))
        try:
            snapshot = OrderSnapshot.model_validate(data)
        except ValidationError as err:
            raise ApplicationError(
                f"order record failed its contract: {err}",
                type=errors.UPSTREAM_MALFORMED,
                non_retryable=True,
            ) from None
        return ToolResult(
            tool=call.tool,
            idempotency_key=call.idempotency_key,
            arguments=call.arguments,
            ok=True,
            output=snapshot.model_dump(mode="json"),
        )

    async def _read(self, path: str) -> dict[str, Any]:
        return classify(await self._http.get(path))

    async def _act(
        self, path: str, call: ToolInvocation, args: BaseModel
    ) -> tuple[dict[str, Any], bool]:
        """POST with the idempotency key; (response, whether the target replayed it)."""
        response = await self._http.post(
            path,
            json=args.model_dump(exclude_none=True),
            headers={"Idempotency-Key": call.idempotency_key},
        )
        return classify(response), response.headers.get("Idempotent-Replayed") == "true"

    @staticmethod
    def _postcondition(
        call: ToolInvocation, record: dict[str, Any], expected: dict[str, Any]
    ) -> None:
        """The target's own record must show exactly the effect we asked for, under our key."""
        wrong = {
            k: (record.get(k), v)
            for k, v in {**expected, "idempotency_key": call.idempotency_key}.items()
            if record.get(k) != v
        }
        if wrong:
            raise ApplicationError(
                f"{call.tool}: the target's record differs from the request: {wrong}",
                type=errors.POSTCONDITION_FAILED,
                non_retryable=True,
            )

    @activity.defn(name="issue_refund")
    async def issue_refund(self, call: ToolInvocation) -> ToolResult:
        self._checked(call)
        return await self._once(call, lambda: self._issue_refund(call))

    async def _issue_refund(self, call: ToolInvocation) -> ToolResult:
        args = IssueRefundArgs.model_validate(call.arguments)
        expected = {"order_id": args.order_id, "amount_cents": args.amount_cents}
        return await self._move_money(call, args, "/refunds", "refund_id", args.order_id, expected)

    async def _move_money(
        self,
        call: ToolInvocation,
        args: BaseModel,
        path: str,
        record_key: str,
        order_id: str,
        expected: dict[str, Any],
    ) -> ToolResult:
        """Read the order, act, check the target's own new record, read the order again."""
        before = await self._read(f"/orders/{order_id}")
        output, replayed = await self._act(path, call, args)
        record = await self._read(f"{path}/{output[record_key]}")
        self._postcondition(call, record, expected)
        after = await self._read(f"/orders/{order_id}")
        return ToolResult(
            tool=call.tool,
            idempotency_key=call.idempotency_key,
            arguments=call.arguments,
            ok=True,
            output=output,
            before={"refunded_cents": before["refunded_cents"]},
            after={"refunded_cents": after["refunded_cents"]},
            postcondition=f"{output[record_key]} matching {expected} is in the business system under this key",
            replayed=replayed,
        )

    @activity.defn(name="send_reply")
    async def send_reply(self, call: ToolInvocation) -> ToolResult:
        self._checked(call)
        return await self._once(call, lambda: self._send_reply(call))

    async def _send_reply(self, call: ToolInvocation) -> ToolResult:
        args = SendReplyArgs.model_validate(call.arguments)
        output, replayed = await self._act("/messages", call, args)
        message = await self._read(f"/messages/{output['message_id']}")
        self._postcondition(call, message, {"customer_id": args.customer_id, "body": args.body})
        return ToolResult(
            tool=call.tool,
            idempotency_key=call.idempotency_key,
            arguments=call.arguments,
            ok=True,
            output=output,
            after={"message_id": message["message_id"], "customer_id": message["customer_id"]},
            postcondition=f"message {message['message_id']} to {args.customer_id} is stored under this key",
            replayed=replayed,
        )

    @activity.defn(name="reverse_refund")
    async def reverse_refund(self, call: ToolInvocation) -> ToolResult:
        """Compensation for issue_refund: the order's refunded total goes back down."""
        self._checked(call)
        return await self._once(call, lambda: self._reverse_refund(call))

    async def _reverse_refund(self, call: ToolInvocation) -> ToolResult:
        args = ReverseRefundArgs.model_validate(call.arguments)
        refund = await self._read(f"/refunds/{args.refund_id}")
        expected = {"refund_id": args.refund_id, "amount_cents": refund["amount_cents"]}
        return await self._move_money(
            call, args, "/reversals", "reversal_id", refund["order_id"], expected
        )
