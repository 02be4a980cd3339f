"""The support domain's business system over real HTTP: Idempotency-Key semantics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.tools import SupportToolActivities, classify
from domains.support.business import BusinessServer
from tether import errors
from tether.contracts import ToolInvocation


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BusinessServer]:
    srv = BusinessServer(tmp_path / "biz.db").start()
    yield srv
    srv.stop()


def test_same_key_same_body_returns_the_original(server: BusinessServer) -> None:
    body = {"order_id": "ORD-1003", "amount_cents": 1_000, "reason": "r"}
    with httpx.Client(base_url=server.url) as http:
        first = http.post("/refunds", json=body, headers={"Idempotency-Key": "k-1"})
        again = http.post("/refunds", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        assert http.get("/orders/ORD-1003").json()["refunded_cents"] == 1_000
    assert len(server.db.rows("refunds")) == 1


def test_same_key_other_body_is_a_conflict(server: BusinessServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        http.post(
            "/refunds",
            json={"order_id": "ORD-1003", "amount_cents": 1_000, "reason": "r"},
            headers={"Idempotency-Key": "k-2"},
        )
        clash = http.post(
            "/refunds",
            json={"order_id": "ORD-1003", "amount_cents": 9_000, "reason": "r"},
            headers={"Idempotency-Key": "k-2"},
        )
    assert clash.status_code == 409 and clash.json()["error"] == "idempotency_conflict"
    with pytest.raises(ApplicationError) as err:
        classify(clash)
    assert err.value.type == errors.IDEMPOTENCY_CONFLICT and err.value.non_retryable


def test_writes_without_a_key_are_refused(server: BusinessServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        response = http.post("/messages", json={"customer_id": "C-1", "body": "hi"})
    assert response.status_code == 400 and server.db.rows("messages") == []


def test_refund_beyond_balance_is_refused_by_the_system_itself(server: BusinessServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        response = http.post(
            "/refunds",
            json={"order_id": "ORD-1008", "amount_cents": 999_999, "reason": "r"},
            headers={"Idempotency-Key": "k-3"},
        )
    assert response.status_code == 422
    with pytest.raises(ApplicationError) as err:
        classify(response)
    assert err.value.type == errors.UPSTREAM_REJECTED and err.value.non_retryable


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable"),
    [
        (404, {"error": "order_not_found"}, errors.ORDER_NOT_FOUND, False),
        (
            404,
            {"detail": "Not Found"},
            errors.UPSTREAM_REJECTED,
            False,
        ),  # a wrong URL says nothing of the order
        (400, {"error": "x"}, errors.UPSTREAM_REJECTED, False),
        (409, ["not", "a", "dict"], errors.UPSTREAM_REJECTED, False),
        (408, {"error": "x"}, errors.UPSTREAM_UNAVAILABLE, True),
        (429, {"error": "x"}, errors.UPSTREAM_UNAVAILABLE, True),
        (500, {"error": "x"}, errors.UPSTREAM_UNAVAILABLE, True),
        (503, None, errors.UPSTREAM_UNAVAILABLE, True),
        (200, ["a list"], errors.UPSTREAM_MALFORMED, False),
        (200, None, errors.UPSTREAM_MALFORMED, False),
    ],
)
def test_upstream_errors_are_classified(
    status: int, body: object, kind: str, retryable: bool
) -> None:
    request = httpx.Request("GET", "http://biz/orders/ORD-1")
    if body is None:
        response = httpx.Response(status, text="<html>oops</html>", request=request)
    else:
        response = httpx.Response(status, json=body, request=request)
    with pytest.raises(ApplicationError) as err:
        classify(response)
    assert err.value.type == kind
    assert err.value.non_retryable is not retryable


def test_created_records_can_be_read_back(server: BusinessServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        made = http.post(
            "/refunds",
            json={"order_id": "ORD-1003", "amount_cents": 500, "reason": "r"},
            headers={"Idempotency-Key": "k-9"},
        )
        record = http.get(f"/refunds/{made.json()['refund_id']}").json()
        missing = http.get("/refunds/RF-nope")
    assert record["idempotency_key"] == "k-9" and record["amount_cents"] == 500
    assert missing.status_code == 404 and missing.json()["error"] == "refund_id_not_found"


def test_postcondition_compares_the_targets_own_record() -> None:
    call = ToolInvocation(
        tool="issue_refund", arguments={}, idempotency_key="wf/1/issue_refund", request_id="r"
    )
    good = {"order_id": "ORD-1", "amount_cents": 500, "idempotency_key": "wf/1/issue_refund"}
    SupportToolActivities._postcondition(call, good, {"order_id": "ORD-1", "amount_cents": 500})
    with pytest.raises(ApplicationError) as err:
        SupportToolActivities._postcondition(
            call, {**good, "amount_cents": 5_000}, {"order_id": "ORD-1", "amount_cents": 500}
        )
    assert err.value.type == errors.POSTCONDITION_FAILED and err.value.non_retryable
    assert "amount_cents" in err.value.message
