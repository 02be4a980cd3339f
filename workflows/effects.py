"""The effects runner of one workflow: tool calls as activities (local ones since
``steps.LOCAL_TOOLS``), each with a deterministic idempotency key, bounded in time, reconciled
by key when their fate is unknown, and undone newest first (saga) when a later step fails for
good.

Keys: ``<workflow id>/<step>/<tool>`` for the plan, ``<workflow id>/read/<what>`` for the
runtime's reads, ``<workflow id>/compensate/<step>/<tool>`` for the undo of step ``step``.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from tether import errors, names
    from tether.config import Timeouts
    from tether.contracts import Decision, Request, ToolCall, ToolInvocation, ToolResult
    from tether.tools import ToolRegistry

from tether.workflows import steps

# Failures that mean the target made no change: refused before acting, or refused by it.
NO_EFFECT = frozenset(
    {
        errors.INVALID_TOOL_CALL,
        errors.PERMISSION_DENIED,
        errors.PRECONDITION_FAILED,
        errors.UPSTREAM_REJECTED,
        errors.NOT_FOUND,
        errors.IDEMPOTENCY_CONFLICT,
        errors.UNKNOWN_DOMAIN,
        errors.NOT_SUBJECTS_RECORD,
    }
)


# Failures no retry changes: no effect, or an answer that broke its contract.
FINAL = NO_EFFECT | {errors.UPSTREAM_MALFORMED, errors.POSTCONDITION_FAILED}


def unwrapped(err: FailureError) -> BaseException | None:
    """An activity's failure comes wrapped; a local activity's comes as itself."""
    return err.cause if isinstance(err, ActivityError) else err


def failure(cause: BaseException | None) -> tuple[str, str]:
    """(kind, detail) of an activity failure: the outer error's type, and the chain down to
    the last attempt's own error (a timeout says little without it)."""
    kinds: list[str] = []
    parts: list[str] = []
    while cause is not None:
        if isinstance(cause, ApplicationError):
            kinds.append(cause.type or "ApplicationError")
            parts.append(f"{kinds[-1]}: {cause.message}")
        else:
            kinds.append(type(cause).__name__)
            parts.append(f"{kinds[-1]}: {cause}")
        cause = cause.__cause__
    return (kinds[0] if kinds else "unknown"), " <- ".join(parts)


class Effects:
    def __init__(self, domain: str, registry: ToolRegistry, timeouts: Timeouts, request: Request):
        self._domain = domain
        self._registry = registry
        self._timeouts = timeouts
        self._request = request
        self.compensations: list[ToolResult] = []

    async def read(self, call: ToolCall, *, key: str, why: str) -> ToolResult:
        """The runtime's own read of ``key`` (a context lookup), granted its permission;
        raises the activity's failure."""
        grant = [self._registry.get(call.tool).permission]
        key = f"{workflow.info().workflow_id}/read/{key}"
        # A read changes nothing: it runs beside the workflow (a local activity, its result a
        # marker in history), not as a task the server schedules and dispatches. Since
        # LOCAL_TOOLS only its first attempt does, as a plan's call: a target that keeps
        # failing holds no workflow task past one attempt.
        if steps.local_tools():
            return await self._first_beside(call, key=key, granted=grant, why=why)
        local = steps.current()
        return await self._run(call, key=key, granted=grant, why=why, local=local)

    async def act(self, calls: list[ToolCall], decision: Decision) -> list[ToolResult]:
        """Run the plan in sequence. Steps that can be undone run first and irreversible ones
        (a message sent) last, so a failure never strands an effect nothing can take back. If
        a step fails for good, stop and undo the completed steps (``compensations``)."""
        calls = sorted(calls, key=lambda c: self._registry.get(c.tool).compensation is None)
        why = f"{decision.action.value}: {', '.join(decision.codes())}"
        results: list[ToolResult] = []
        for step, call in enumerate(calls, start=1):
            key = self._key(step, call.tool)
            result = await self._try(
                call, key=key, granted=decision.permissions, why=why, first=steps.local_tools()
            )
            results.append(result)
            if not result.ok:
                await self._compensate(results)
                break
        return results

    async def _compensate(self, done: list[ToolResult]) -> None:
        """Undo, newest first, every step that changed the target: completed ones, and a
        failed one whose effect reconciliation found."""
        for step in range(len(done), 0, -1):
            result = done[step - 1]
            undo = self._registry.get(result.tool).compensation
            if undo is None or not (result.ok or result.unconfirmed_effect):
                continue  # irreversible (a message sent) or nothing happened: nothing to undo
            key = f"{workflow.info().workflow_id}/compensate/{step}/{result.tool}"
            try:
                call = undo(result)
            except Exception as err:  # the pack cannot say how: a person must
                self.compensations.append(
                    ToolResult(
                        tool=result.tool,
                        idempotency_key=key,
                        arguments={},
                        ok=False,
                        error=f"no compensation could be built for step {step}: {err!r}"[:500],
                    )
                )
                continue
            if call is None:  # the pack says the step changed nothing that needs undoing
                continue
            key = f"{workflow.info().workflow_id}/compensate/{step}/{call.tool}"
            # The runtime grants a compensation the permission to undo what it was allowed to do.
            grant = [self._registry.get(call.tool).permission]
            self.compensations.append(
                await self._try(
                    call, key=key, granted=grant, why=f"saga: compensates step {step}", undo=True
                )
            )

    async def _try(
        self,
        call: ToolCall,
        *,
        key: str,
        granted: list[str],
        why: str,
        undo: bool = False,
        first: bool = False,
    ) -> ToolResult:
        """The tool's result, or a failed result that says why (after retries). When the
        failure leaves the effect unknown, the target is asked by key (reconciliation). With
        ``first``, the first attempt runs beside the workflow (``_first_beside``)."""
        try:
            if first:
                return await self._first_beside(call, key=key, granted=granted, why=why)
            return await self._run(call, key=key, granted=granted, why=why, undo=undo)
        except FailureError as err:
            kind, detail = failure(unwrapped(err))
            failed = ToolResult(
                tool=call.tool,
                idempotency_key=key,
                arguments=call.arguments,
                ok=False,
                error=detail,
            )
            if kind in NO_EFFECT:
                return failed
            try:
                found: ToolResult = await workflow.execute_activity(
                    names.RECONCILE,
                    self._invocation(call, key, granted),
                    result_type=ToolResult,
                    start_to_close_timeout=self._timeouts.tool,
                    # An effect may exist: keep asking until the target answers.
                    retry_policy=self._timeouts.compensation_retry.policy(
                        non_retryable=sorted(NO_EFFECT)
                    ),
                    summary=f"reconcile {key} after {kind}",
                )
            except ActivityError as lost:  # nobody can tell: the outcome says so, a person checks
                _, why = failure(lost.cause)
                return failed.model_copy(
                    update={"error": f"{detail}; the effect is unknown: reconciling failed: {why}"}
                )
            return found.model_copy(update={"error": detail})

    def _invocation(self, call: ToolCall, key: str, granted: list[str]) -> ToolInvocation:
        return ToolInvocation(
            domain=self._domain,
            tool=call.tool,
            arguments=call.arguments,
            idempotency_key=key,
            request_id=self._request.request_id,
            granted=granted,
            subject=self._request.subject,
        )

    async def _first_beside(
        self, call: ToolCall, *, key: str, granted: list[str], why: str
    ) -> ToolResult:
        """A call (steps.LOCAL_TOOLS): its first attempt a local activity, in the
        worker that runs the workflow, so a call that answers completes in the same workflow
        task as the decision and the outcome's record. A failure worth trying again gets the
        rest of the step's budget as a dispatched activity, with the same key: a slow or
        failing target holds this workflow's task (and its worker's slot) for one attempt at
        most, and the server keeps the budget (Temporal's core retried a local activity past
        its schedule-to-close)."""
        started = workflow.now()
        try:
            return await self._run(call, key=key, granted=granted, why=why, local=True, once=True)
        except FailureError as err:
            cause = unwrapped(err)
            budget = self._timeouts.tool_budget  # 0: no limit
            left = budget - (workflow.now() - started) if budget else None
            final = (
                isinstance(cause, CancelledError)  # the run is being cancelled: nothing more
                or (isinstance(cause, ApplicationError) and cause.non_retryable)
                or failure(cause)[0] in FINAL
            )
            if final or (left is not None and left <= timedelta(0)):
                raise
        return await self._run(call, key=key, granted=granted, why=why, budget=left)

    async def _run(
        self,
        call: ToolCall,
        *,
        key: str,
        granted: list[str],
        why: str,
        undo: bool = False,
        local: bool = False,
        once: bool = False,
        budget: timedelta | None = None,
    ) -> ToolResult:
        timeouts = self._timeouts
        retry = (timeouts.compensation_retry if undo else timeouts.tool_retry).policy(
            non_retryable=sorted(FINAL)
        )
        if once:
            retry = dataclasses.replace(retry, maximum_attempts=1)
        execute = workflow.execute_local_activity if local else workflow.execute_activity
        result: ToolResult = await execute(
            names.tool_activity(self._domain, call.tool),
            self._invocation(call, key, granted),
            result_type=ToolResult,
            start_to_close_timeout=timeouts.tool,
            # A compensation must not give up: the business system has to end as it began.
            schedule_to_close_timeout=None if undo else (budget or timeouts.tool_budget),
            retry_policy=retry,
            # The audit's story, readable in the Temporal UI's event list.
            summary=f"{call.tool} {call.arguments} · key {key} · {why}"[:400],
        )
        return result

    @staticmethod
    def _key(step: int, tool: str) -> str:
        """Idempotency key: the same workflow and step always send the same key."""
        return f"{workflow.info().workflow_id}/{step}/{tool}"
