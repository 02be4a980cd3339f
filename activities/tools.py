"""Tool execution: every call goes through its ToolSpec contract, over HTTP, to the business
system the tool names. One activity per tool of every pack served, named ``<domain>.<tool>``.

For a write: permission granted? -> ledger claim -> precondition (on the target) -> state
before -> POST with the Idempotency-Key -> output contract -> postcondition (the target's
own record, read back) -> state after -> ledger settle. Errors are classified here, at the
activity boundary: 2xx with a JSON object -> result, else UpstreamMalformed; 404 on a read,
with an ``error`` in its body -> NotFound; 409 idempotency_conflict -> IdempotencyConflict;
409 idempotency_in_progress -> InProgress (retryable); other 4xx -> UpstreamRejected
(non-retryable); 408, 429, 5xx and transport errors -> retried by the retry policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tether import errors, names
from tether.contracts import ToolCall, ToolInvocation, ToolResult
from tether.domain import DomainPack
from tether.ledger import Ledger
from tether.tools import ConditionFailed, ToolSpec


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
    if code == 404 and response.request.method == "GET" and error:
        # The system says which record is missing; a bare 404 (no such route) says nothing
        # of the record and is a rejected call, like any other 4xx.
        raise ApplicationError(detail, type=errors.NOT_FOUND, non_retryable=True)
    if code == 409 and error == "idempotency_conflict":
        raise ApplicationError(detail, type=errors.IDEMPOTENCY_CONFLICT, non_retryable=True)
    if code == 409 and error == "idempotency_in_progress":
        raise ApplicationError(detail, type=errors.IN_PROGRESS)  # retryable: the first finishes
    raise ApplicationError(detail, type=errors.UPSTREAM_REJECTED, non_retryable=True)


def _refuse(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


class HttpTarget:
    """The business system as tools and their conditions see it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def read(self, path: str) -> dict[str, Any]:
        return classify(await self._http.get(path))

    async def recorded(self, key: str) -> dict[str, Any] | None:
        """What the target holds under ``key`` (state, status, response), or None."""
        response = await self._http.get("/idempotency", params={"key": key})
        if response.status_code == 404:
            return None
        return classify(response)

    async def write(self, path: str, body: dict[str, Any], key: str) -> tuple[dict[str, Any], bool]:
        """POST with the idempotency key; (response, whether the target replayed it)."""
        response = await self._http.post(path, json=body, headers={"Idempotency-Key": key})
        return classify(response), response.headers.get("Idempotent-Replayed") == "true"


class ToolActivities:
    """One activity per tool of every pack, named ``<domain>.<tool>``; the workflow calls by
    name. ``systems`` holds an HTTP client per (domain, system): two packs that both name a
    system ``crm`` reach their own."""

    def __init__(
        self,
        packs: Sequence[DomainPack],
        systems: Mapping[tuple[str, str], httpx.AsyncClient],
        ledger: Ledger | None = None,
    ) -> None:
        self._packs = {pack.name: pack for pack in packs}
        self._targets = {key: HttpTarget(http) for key, http in systems.items()}
        self._ledger = ledger

    def activities(self) -> list[Callable[[ToolInvocation], Awaitable[ToolResult]]]:
        def bind(domain: str, tool: str) -> Callable[[ToolInvocation], Awaitable[ToolResult]]:
            async def run(call: ToolInvocation) -> ToolResult:
                if (call.domain, call.tool) != (domain, tool):  # the call is what it is named
                    raise _refuse(
                        f"{names.tool_activity(domain, tool)} got a call of "
                        f"{names.tool_activity(call.domain, call.tool)}",
                        errors.INVALID_TOOL_CALL,
                    )
                return await self.execute(call)

            return activity.defn(name=names.tool_activity(domain, tool))(run)

        return [
            *(bind(pack.name, spec.name) for pack in self._packs.values() for spec in pack.tools),
            self.reconcile_tool,
        ]

    def _target(self, call: ToolInvocation, spec: ToolSpec) -> HttpTarget:
        target = self._targets.get((call.domain, spec.system))
        if target is None:  # a deployment error: retrying will not bring the system
            raise _refuse(
                f"no address for {call.domain}'s system {spec.system!r}", errors.UPSTREAM_REJECTED
            )
        return target

    @activity.defn(name=names.RECONCILE)
    async def reconcile_tool(self, call: ToolInvocation) -> ToolResult:
        """After a write failed without a clear answer: did the target act under its key?
        A completed 2xx comes back as ``unconfirmed_effect`` (the saga then undoes it);
        a request still processing is retried until it settles."""
        registry = self._pack(call).tools
        if call.tool not in registry:
            raise _refuse(f"unknown tool {call.tool!r}", errors.INVALID_TOOL_CALL)
        record = await self._target(call, registry.get(call.tool)).recorded(call.idempotency_key)
        if record is not None and record["state"] == "processing":
            raise ApplicationError(
                f"{call.idempotency_key} is still processing at the target", type=errors.IN_PROGRESS
            )
        made = record is not None and 200 <= int(record["status"]) < 300
        return ToolResult(
            tool=call.tool,
            idempotency_key=call.idempotency_key,
            arguments=call.arguments,
            ok=False,
            output=record["response"] if made and record else {},
            unconfirmed_effect=made,
            postcondition=(
                f"reconciled by key: the target completed it ({record['status']})"
                if made and record
                else "reconciled by key: the target holds no effect under it"
            ),
        )

    async def execute(self, call: ToolInvocation) -> ToolResult:
        spec = self._checked(call)
        args = spec.input_model.model_validate(call.arguments)
        target = self._target(call, spec)
        if not spec.writes:
            path = spec.path.format(**args.model_dump())
            output = self._output(spec, await target.read(path))
            self._owned(call, spec, output)
            return self._result(call, spec, output=output)
        return await self._once(call, lambda: self._write(spec, call, args, target))

    def _owned(self, call: ToolInvocation, spec: ToolSpec, output: BaseModel) -> None:
        """A record read for a subject must be theirs: another's never leaves this activity
        (not into the outcome, the prompt, or the history)."""
        if call.subject is None:
            return
        pack, record = self._pack(call), output.model_dump(mode="json")
        for argument, kind in spec.references.items():
            field = pack.owner_field(kind)
            if field is not None and str(record.get(field)) != call.subject:
                raise _refuse(
                    f"{kind} {call.arguments.get(argument)} belongs to another subject than "
                    f"{call.subject}",
                    errors.NOT_SUBJECTS_RECORD,
                )

    def _pack(self, call: ToolInvocation) -> DomainPack:
        pack = self._packs.get(call.domain)
        if pack is None:
            raise _refuse(f"this worker serves no domain {call.domain!r}", errors.UNKNOWN_DOMAIN)
        return pack

    def _checked(self, call: ToolInvocation) -> ToolSpec:
        """Refused before anything is read or written: unknown tool, bad arguments, no grant."""
        registry = self._pack(call).tools
        problems = registry.check_call(ToolCall(tool=call.tool, arguments=call.arguments))
        if problems:
            raise _refuse("; ".join(problems), errors.INVALID_TOOL_CALL)
        spec = registry.get(call.tool)
        if spec.permission not in call.granted:
            raise _refuse(
                f"{call.tool} needs permission {spec.permission!r}; granted: {call.granted}",
                errors.PERMISSION_DENIED,
            )
        return spec

    async def _write(
        self, spec: ToolSpec, call: ToolInvocation, args: BaseModel, target: HttpTarget
    ) -> ToolResult:
        key = call.idempotency_key
        precondition = None
        if spec.precondition is not None:
            try:
                precondition = await spec.precondition(target, args)
            except ConditionFailed as failed:
                # False now may be our own earlier delivery's doing (it acted, then died):
                # only if the target holds this key does its recorded answer stand.
                held = await target.recorded(key)
                if held is None:
                    raise _refuse(f"{call.tool}: {failed}", errors.PRECONDITION_FAILED) from None
                precondition = (
                    f"false now ({failed}), but the target already holds this key "
                    f"({held['state']}): its answer stands"
                )
        before = await spec.state(target, args) if spec.state else None
        body, replayed = await target.write(spec.path, args.model_dump(exclude_none=True), key)
        # From here on an effect exists: a failure carries the target's answer (details[0]),
        # so the saga can undo what was done.
        output = self._output(spec, body)
        assert spec.postcondition is not None  # ToolSpec guarantees it for writes
        try:
            evidence = await spec.postcondition(target, args, output, key)
            after = await spec.state(target, args) if spec.state else None
        except ConditionFailed as failed:
            raise ApplicationError(
                f"{call.tool}: {failed}", body, type=errors.POSTCONDITION_FAILED, non_retryable=True
            ) from None
        except ApplicationError as err:
            if not err.non_retryable:
                raise  # tried again: the POST replays under its key, the reads run again
            # A read that says "not found" or "refused" after the POST did not undo it: the
            # effect may stand, so the saga must reconcile and undo it, never take it as none.
            raise ApplicationError(
                f"{call.tool}: acted, then could not read it back ({err.type}: {err.message})",
                body,
                type=errors.POSTCONDITION_FAILED,
                non_retryable=True,
            ) from None
        return self._result(
            call,
            spec,
            output=output,
            before=before,
            after=after,
            precondition=precondition,
            postcondition=evidence,
            replayed=replayed,
        )

    @staticmethod
    def _output(spec: ToolSpec, body: dict[str, Any]) -> BaseModel:
        try:
            return spec.output_model.model_validate(body)
        except ValidationError as err:
            raise ApplicationError(
                f"{spec.name}: the answer failed its contract: {err}",
                body,
                type=errors.UPSTREAM_MALFORMED,
                non_retryable=True,
            ) from None

    @staticmethod
    def _result(
        call: ToolInvocation, spec: ToolSpec, *, output: BaseModel, **evidence: Any
    ) -> ToolResult:
        return ToolResult(
            tool=call.tool,
            idempotency_key=call.idempotency_key,
            arguments=call.arguments,
            ok=True,
            output=output.model_dump(mode="json"),
            permission=spec.permission,
            **evidence,
        )

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
        # Which delivery did what, per process: the trail for a duplicate-delivery incident.
        activity.logger.info("ledger %s: %s (claim %d)", key, claim.outcome, claim.claims)
        if claim.outcome == "settled" and claim.result is not None:
            return ToolResult.model_validate_json(claim.result).model_copy(
                update={"replayed": True}
            )
        if claim.outcome == "conflict":
            raise _refuse(f"{key} was used with other arguments", errors.IDEMPOTENCY_CONFLICT)
        if claim.outcome == "in_progress":
            raise ApplicationError(
                f"{key} is being acted on by another delivery", type=errors.IN_PROGRESS
            )
        try:
            result = await act()
        except Exception:
            await asyncio.to_thread(self._ledger.release, key, claim.claims)
            raise
        await asyncio.to_thread(self._ledger.settle, key, result.model_dump_json())
        return result
