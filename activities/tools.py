"""Support tools over HTTP. Errors are classified here, at the activity boundary.

2xx with a JSON object -> result, else UpstreamMalformed; 404 order_not_found -> OrderNotFound;
409 idempotency_conflict -> IdempotencyConflict; other 4xx -> UpstreamRejected (all
non-retryable); 408, 429, 5xx and transport errors -> retried by the retry policy.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domains.support.tools import REGISTRY, IssueRefundArgs, LookupOrderArgs, SendReplyArgs
from tether import errors
from tether.contracts import OrderSnapshot, ToolCall, ToolInvocation, ToolResult


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

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    def _checked(self, call: ToolInvocation) -> None:
        problems = REGISTRY.check_call(ToolCall(tool=call.tool, arguments=call.arguments))
        if problems:
            raise ApplicationError(
                "; ".join(problems), type=errors.UPSTREAM_REJECTED, non_retryable=True
            )

    async def _post(self, path: str, call: ToolInvocation, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.post(
            path, json=body, headers={"Idempotency-Key": call.idempotency_key}
        )
        return classify(response)

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

    async def _write(self, call: ToolInvocation, path: str, args: BaseModel) -> ToolResult:
        output = await self._post(path, call, args.model_dump(exclude_none=True))
        return ToolResult(
            tool=call.tool,
            idempotency_key=call.idempotency_key,
            arguments=call.arguments,
            ok=True,
            output=output,
        )

    @activity.defn(name="issue_refund")
    async def issue_refund(self, call: ToolInvocation) -> ToolResult:
        self._checked(call)
        return await self._write(call, "/refunds", IssueRefundArgs.model_validate(call.arguments))

    @activity.defn(name="send_reply")
    async def send_reply(self, call: ToolInvocation) -> ToolResult:
        self._checked(call)
        return await self._write(call, "/messages", SendReplyArgs.model_validate(call.arguments))
