"""The support domain's business system over real HTTP: Idempotency-Key semantics."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from tether import errors
from tether.activities.tools import classify
from tether.domains.support.business import (
    Answer,
    BusinessDB,
    BusinessServer,
    Reservation,
    fingerprint,
)


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


def _note(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
    """A stand-in effect that leaves a trace: one message row per call."""
    message_id = f"MSG-{uuid.uuid4().hex[:12]}"
    conn.execute(
        "INSERT INTO messages VALUES (?, 'C-100', NULL, 'hi', 'k', '2026-01-01T00:00:00+00:00')",
        (message_id,),
    )
    return 201, {"message_id": message_id}


def _never(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
    raise AssertionError("acted twice")


async def _post_timed(
    http: httpx.AsyncClient, body: dict[str, Any], key: str
) -> tuple[httpx.Response, float]:
    response = await http.post("/refunds", json=body, headers={"Idempotency-Key": key})
    return response, time.monotonic()


async def test_a_concurrent_duplicate_is_told_to_retry_then_replays(
    server: BusinessServer,
) -> None:
    body = {"order_id": "ORD-1009", "amount_cents": 700, "reason": "r"}
    server.db.delays["/refunds"] = [0.5]  # a slow processor, so the duplicate overlaps
    async with httpx.AsyncClient(base_url=server.url) as http:
        answers = await asyncio.gather(*(_post_timed(http, body, "k-slow") for _ in range(2)))
        (done, _), (busy, _) = sorted(answers, key=lambda a: a[0].status_code)
        assert done.status_code == 201 and "Idempotent-Replayed" not in done.headers
        assert busy.status_code == 409 and busy.json()["error"] == "idempotency_in_progress"
        assert busy.headers["Retry-After"] == "1"
        retry = await http.post("/refunds", json=body, headers={"Idempotency-Key": "k-slow"})
        assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json()["refund_id"] == done.json()["refund_id"]
        assert (await http.get("/orders/ORD-1009")).json()["refunded_cents"] == 700
    assert [r["refund_id"] for r in server.db.rows("refunds")] == [done.json()["refund_id"]]
    with pytest.raises(ApplicationError) as err:
        classify(busy)
    assert err.value.type == errors.IN_PROGRESS and not err.value.non_retryable


async def test_other_body_while_processing_is_a_conflict(server: BusinessServer) -> None:
    bodies = [{"order_id": "ORD-1009", "amount_cents": n, "reason": "r"} for n in (100, 200)]
    server.db.delays["/refunds"] = [0.5]
    async with httpx.AsyncClient(base_url=server.url) as http:
        answers = await asyncio.gather(*(_post_timed(http, b, "k-clash") for b in bodies))
    (done, done_at), (clash, clash_at) = sorted(answers, key=lambda a: a[0].status_code)
    assert done.status_code == 201
    assert clash.status_code == 409 and clash.json()["error"] == "idempotency_conflict"
    assert clash_at < done_at and "Retry-After" not in clash.headers  # final, not retryable
    assert len(server.db.rows("refunds")) == 1


def test_a_refusal_by_the_effect_is_stored_and_replayed(server: BusinessServer) -> None:
    body = {"order_id": "ORD-1008", "amount_cents": 999_999, "reason": "r"}
    with httpx.Client(base_url=server.url) as http:
        first = http.post("/refunds", json=body, headers={"Idempotency-Key": "k-422"})
        again = http.post("/refunds", json=body, headers={"Idempotency-Key": "k-422"})
    assert first.status_code == again.status_code == 422
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"


async def test_an_exception_in_the_effect_frees_the_key(tmp_path: Path) -> None:
    db = BusinessDB(tmp_path / "biz.db")

    def crash(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        _note(conn)
        raise RuntimeError("processor crashed")

    with pytest.raises(RuntimeError):
        await db.idempotent("k-boom", {"n": 1}, crash)
    assert db.rows("messages") == []  # the half-done effect rolled back with the key
    retry = await db.idempotent("k-boom", {"n": 2}, _note)  # other parameters: no conflict
    assert retry.status == 201 and retry.headers == {}
    db.close()


async def test_an_expired_reservation_is_taken_over(tmp_path: Path) -> None:
    body = {"customer_id": "C-100", "body": "hi"}
    crashed = BusinessDB(tmp_path / "biz.db", lease=timedelta(0))
    late = crashed.reserve("k-crash", body)  # its process dies here, before completing
    assert isinstance(late, Reservation)
    db = BusinessDB(tmp_path / "biz.db")
    assert isinstance(db.reserve("k-live", body), Reservation)  # a live lease is respected
    busy = await db.idempotent("k-live", body, _never)
    assert busy.status == 409 and busy.body["error"] == "idempotency_in_progress"

    taken = await db.idempotent("k-crash", body, _note)
    assert taken.status == 201 and taken.headers == {}
    # Should the crashed holder come back, its token is stale: it gets the replay, never acts.
    assert crashed.complete(late, _never) == Answer(
        201, taken.body, {"Idempotent-Replayed": "true"}
    )
    assert len(db.rows("messages")) == 1
    crashed.close()
    db.close()


async def test_a_key_whose_holder_died_reads_as_no_effect(tmp_path: Path) -> None:
    """Asked by key (reconciliation) after the holder's lease ran out: nothing stands behind
    it, and the answer stays true: the holder, should it wake, applies nothing."""
    body = {"customer_id": "C-100", "body": "hi"}
    crashed = BusinessDB(tmp_path / "biz.db", lease=timedelta(0))
    late = crashed.reserve("k-dead", body)
    assert isinstance(late, Reservation)
    db = BusinessDB(tmp_path / "biz.db")
    live = db.reserve("k-live", body)
    assert isinstance(live, Reservation)
    assert db.key_record("k-live") == {
        "key": "k-live",
        "state": "processing",
        "status": None,
        "response": None,
    }  # a live lease is still in progress
    assert db.key_record("k-dead") is None
    woke = crashed.complete(late, _note)
    assert woke.status == 409 and db.rows("messages") == []
    crashed.close()
    db.close()


def test_a_fault_of_zero_lets_the_request_through(server: BusinessServer) -> None:
    server.db.faults["/messages"] = [0, 0, 422]
    with httpx.Client(base_url=server.url) as http:
        unkeyed = http.post("/messages", json={"customer_id": "C-100", "body": "hi"})
        codes = [
            http.post(
                "/messages",
                json={"customer_id": "C-100", "body": f"m{i}"},
                headers={"Idempotency-Key": f"k-f{i}"},
            ).status_code
            for i in range(4)
        ]
    assert unkeyed.status_code == 400  # refused before the writer: consumes no fault
    assert codes == [201, 201, 422, 201]
    assert len(server.db.rows("messages")) == 3


async def test_a_database_from_the_old_schema_opens(tmp_path: Path) -> None:
    path, body = tmp_path / "old.db", {"customer_id": "C-100", "body": "hi"}
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE idempotency (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
            " status INTEGER NOT NULL, response TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        old.execute(
            "INSERT INTO idempotency VALUES ('k-old', ?, 201, ?, '2026-01-01T00:00:00+00:00')",
            (fingerprint(body), json.dumps({"message_id": "MSG-old"})),
        )
    old.close()
    db = BusinessDB(path)
    replay = await db.idempotent("k-old", body, _never)  # keys from before still replay
    assert replay == Answer(201, {"message_id": "MSG-old"}, {"Idempotent-Replayed": "true"})
    assert (await db.idempotent("k-new", body, _note)).status == 201
    db.close()
    BusinessDB(path).close()  # the migration ran once; reopening is a no-op


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
        (404, {"error": "order_not_found"}, errors.NOT_FOUND, False),
        (
            404,
            {"detail": "Not Found"},
            errors.UPSTREAM_REJECTED,
            False,
        ),  # a wrong URL says nothing of the record
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


@pytest.mark.parametrize(
    "body",
    [
        {"order_id": "ORD-1003", "amount_cents": "40"},
        {"order_id": "ORD-1003", "amount_cents": 40.99},
        {"order_id": "ORD-1003", "amount_cents": True},
        {"order_id": "ORD-1003", "amount_cents": "\u0664\u0660\u0660"},
        {"order_id": ["ORD-1003"], "amount_cents": 40},
        {"order_id": "ORD-1003", "amount_cents": 40, "reason": {"x": 1}},
        None,
        [1, 2],
    ],
)
def test_a_field_of_the_wrong_type_is_refused_never_coerced(
    server: BusinessServer, body: Any
) -> None:
    """The system's own API, for callers other than the tools (whose contracts are strict):
    what is not an amount in cents or an id is a 4xx, and nothing moves."""
    with httpx.Client(base_url=server.url) as http:
        answer = http.post("/refunds", json=body, headers={"Idempotency-Key": "k-odd"})
        assert 400 <= answer.status_code < 500, answer.text
        assert http.get("/audit/refunds").json() == []


def test_a_key_cannot_replay_one_route_as_another(server: BusinessServer) -> None:
    body = {"order_id": "ORD-1003", "amount_cents": 500, "reason": "x"}
    with httpx.Client(base_url=server.url) as http:
        done = http.post("/refunds", json=body, headers={"Idempotency-Key": "k-both"})
        other = http.post("/messages", json=body, headers={"Idempotency-Key": "k-both"})
    assert done.status_code == 201
    assert other.status_code in (409, 422) and "refund_id" not in other.text
