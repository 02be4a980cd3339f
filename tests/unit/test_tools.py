"""The tool contract at execution: refused before acting (unknown tool, bad arguments, no
permission, precondition), and after acting the target's own record must agree."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tether import errors
from tether.activities.tools import ToolActivities
from tether.contracts import ToolInvocation, ToolResult
from tether.domains.support import PACK
from tether.domains.support.business import BusinessServer
from tether.domains.support.tools import REGISTRY
from tether.ledger import Ledger

ORDER = "ORD-1003"  # delivered, $159.00


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BusinessServer]:
    srv = BusinessServer(tmp_path / "biz.db").start()
    yield srv
    srv.stop()


@pytest.fixture
async def tools(server: BusinessServer, tmp_path: Path) -> AsyncIterator[ToolActivities]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield ToolActivities([PACK], {("support", "shop"): http}, ledger)
    ledger.close()


def refund(cents: int, *, key: str = "wf/1/issue_refund", **extra: Any) -> ToolInvocation:
    return ToolInvocation(
        domain="support",
        tool="issue_refund",
        arguments={"order_id": ORDER, "amount_cents": cents, "reason": "damaged", **extra},
        idempotency_key=key,
        request_id="r-1",
        granted=["refunds:issue"],
    )


LEASE = timedelta(seconds=30)


async def run(tools: ToolActivities, call: ToolInvocation) -> ToolResult:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, start_to_close_timeout=LEASE)
    return await env.run(tools.execute, call)


async def refused(tools: ToolActivities, call: ToolInvocation) -> ApplicationError:
    with pytest.raises(ApplicationError) as err:
        await run(tools, call)
    assert err.value.non_retryable
    return err.value


async def test_a_write_records_before_after_and_both_conditions(
    tools: ToolActivities, server: BusinessServer
) -> None:
    result = await run(tools, refund(1_500))
    assert result.ok and not result.replayed
    assert result.before == {"refunded_cents": 0} and result.after == {"refunded_cents": 1_500}
    assert result.precondition == f"{ORDER} had $159.00 refundable >= $15.00"
    assert result.postcondition and result.output["refund_id"] in result.postcondition
    assert server.db.order(ORDER)["refunded_cents"] == 1_500  # type: ignore[index]


@pytest.mark.parametrize(
    ("call", "kind", "says"),
    [
        (
            refund(1_500).model_copy(update={"tool": "wire_money"}),
            errors.INVALID_TOOL_CALL,
            "unknown tool",
        ),
        (refund(1_500, note="x"), errors.INVALID_TOOL_CALL, "note"),
        (refund(0), errors.INVALID_TOOL_CALL, "amount_cents"),
        (
            refund(1_500).model_copy(update={"granted": ["messages:send"]}),
            errors.PERMISSION_DENIED,
            "refunds:issue",
        ),
        (refund(16_000), errors.PRECONDITION_FAILED, "$159.00 left to refund"),
    ],
    ids=["unknown tool", "extra argument", "bad amount", "not granted", "over balance"],
)
async def test_refused_before_any_effect(
    tools: ToolActivities, server: BusinessServer, call: ToolInvocation, kind: str, says: str
) -> None:
    err = await refused(tools, call)
    assert err.type == kind and says in err.message
    assert server.db.rows("refunds") == []


async def test_a_reply_to_someone_elses_order_is_refused(
    tools: ToolActivities, server: BusinessServer
) -> None:
    call = ToolInvocation(
        domain="support",
        tool="send_reply",
        arguments={"customer_id": "C-999", "body": "Your refund is on its way.", "order_id": ORDER},
        idempotency_key="wf/2/send_reply",
        request_id="r-1",
        granted=["messages:send"],
    )
    err = await refused(tools, call)
    assert err.type == errors.PRECONDITION_FAILED and "another customer" in err.message
    assert server.db.rows("messages") == []


async def test_a_retry_after_the_effect_replays_even_though_the_precondition_now_fails(
    tools: ToolActivities, server: BusinessServer, tmp_path: Path
) -> None:
    """A delivery refunded the whole balance and died before settling its ledger claim. The
    precondition now reads a zero balance; the retry must still return the effect made."""
    call = refund(15_900)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.claim(call.idempotency_key, call.tool, "r-1", call.arguments, lease=timedelta(0))
    ledger.close()
    with httpx.Client(base_url=server.url) as http:  # the dead delivery's effect
        first = http.post(
            "/refunds", json=call.arguments, headers={"Idempotency-Key": call.idempotency_key}
        ).json()
    result = await run(tools, call)
    assert result.ok and result.replayed and result.output["refund_id"] == first["refund_id"]
    assert result.precondition and "the target already holds this key" in result.precondition
    assert len(server.db.rows("refunds")) == 1


async def test_a_retry_without_an_earlier_effect_still_enforces_the_precondition(
    tools: ToolActivities, server: BusinessServer, tmp_path: Path
) -> None:
    """A delivery claimed the key and died before sending anything; meanwhile the balance
    went elsewhere. The takeover must refuse, not act on the strength of being a retry."""
    call = refund(15_900)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    claim = ledger.claim(call.idempotency_key, call.tool, "r-1", call.arguments, lease=LEASE)
    ledger.release(call.idempotency_key, claim.claims)
    ledger.close()
    with httpx.Client(base_url=server.url) as http:  # another request takes the balance
        http.post(
            "/refunds",
            json={**call.arguments, "amount_cents": 100},
            headers={"Idempotency-Key": "other"},
        )
    err = await refused(tools, call)
    assert err.type == errors.PRECONDITION_FAILED
    assert len(server.db.rows("refunds")) == 1  # only the other request's


async def test_reconciliation_finds_an_effect_whose_answer_was_lost(
    tools: ToolActivities, server: BusinessServer
) -> None:
    call = refund(2_000, key="wf/9/issue_refund")
    env = ActivityEnvironment()
    nothing = await env.run(tools.reconcile_tool, call)
    assert not nothing.unconfirmed_effect and nothing.output == {}
    with httpx.Client(base_url=server.url) as http:  # acted; the caller never heard back
        made = http.post(
            "/refunds", json=call.arguments, headers={"Idempotency-Key": call.idempotency_key}
        ).json()
    found = await env.run(tools.reconcile_tool, call)
    assert found.unconfirmed_effect and not found.ok
    assert found.output["refund_id"] == made["refund_id"]


class _Lying(BaseModel):
    """A target whose answer and whose own record disagree."""

    receipt: dict[str, Any]
    record: dict[str, Any]
    record_status: int = 200  # how the target answers the read of its own record


def lying_target(lie: _Lying) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            return httpx.Response(201, json=lie.receipt)
        if path.startswith("/refunds/"):
            return httpx.Response(lie.record_status, json=lie.record)
        return httpx.Response(
            200,
            json={
                "order_id": ORDER,
                "customer_id": "C-102",
                "total_cents": 15_900,
                "refunded_cents": 0,
                "status": "delivered",
            },
        )

    return httpx.AsyncClient(base_url="http://target", transport=httpx.MockTransport(answer))


RECEIPT = {
    "refund_id": "RF-abc123",
    "order_id": ORDER,
    "amount_cents": 1_500,
    "refunded_total_cents": 1_500,
}


@pytest.mark.parametrize(
    ("lie", "kind"),
    [
        (
            _Lying(
                receipt=RECEIPT,
                record={**RECEIPT, "amount_cents": 150_000, "idempotency_key": "wf/1/issue_refund"},
            ),
            errors.POSTCONDITION_FAILED,
        ),
        (
            _Lying(receipt=RECEIPT, record={**RECEIPT, "idempotency_key": "someone-else"}),
            errors.POSTCONDITION_FAILED,
        ),
        (_Lying(receipt={"ok": True}, record={}), errors.UPSTREAM_MALFORMED),
        # Acted, then its record reads as missing or refused (a lagging replica, a gateway):
        # the effect may stand, so it is no "no effect" the saga would leave in place.
        (
            _Lying(receipt=RECEIPT, record={"error": "refund_id_not_found"}, record_status=404),
            errors.POSTCONDITION_FAILED,
        ),
        (
            _Lying(receipt=RECEIPT, record={"error": "forbidden"}, record_status=403),
            errors.POSTCONDITION_FAILED,
        ),
    ],
    ids=["other amount", "other key", "receipt breaks its model", "record not found", "refused"],
)
async def test_the_tools_answer_is_not_taken_for_the_effect(lie: _Lying, kind: str) -> None:
    async with lying_target(lie) as http:
        err = await refused(ToolActivities([PACK], {("support", "shop"): http}), refund(1_500))
    assert err.type == kind


def test_every_write_declares_its_conditions_and_permission() -> None:
    for spec in REGISTRY:
        assert spec.permission
        if spec.writes:
            assert spec.precondition and spec.postcondition, spec.name
    with pytest.raises(ValueError, match="postcondition"):
        dataclasses.replace(REGISTRY.get("send_reply"), postcondition=None)
    assert {t["name"]: t["permission"] for t in REGISTRY.catalogue()} == {
        "lookup_order": "orders:read",
        "issue_refund": "refunds:issue",
        "send_reply": "messages:send",
    }  # reverse_refund is the runtime's, never offered to the model
