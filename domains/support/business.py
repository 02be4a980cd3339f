"""Northwind's business system: orders, refunds and customer messages over HTTP.

A small real service with its own SQLite database. Every POST must carry an
``Idempotency-Key`` and is answered as payment APIs do (Stripe; IETF draft "The
Idempotency-Key HTTP Header Field"):

- same key + same body, completed -> the original response (``Idempotent-Replayed: true``);
- same key + different body -> 409 ``idempotency_conflict``, final;
- same key + same body while the first is still processing -> 409
  ``idempotency_in_progress`` with ``Retry-After: 1``; a retry after it completes replays.

A request first reserves its key (a ``processing`` row with a lease), does its slow part
outside the lock, then applies the effect and completes the key in one transaction. So a
``processing`` row never has an effect behind it: when its lease has expired (the process
died) the next request with the same key and body takes it over.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tether.stack import AppServer

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL,
    total_cents INTEGER NOT NULL, refunded_cents INTEGER NOT NULL DEFAULT 0,
    placed_at TEXT NOT NULL, delivered_at TEXT);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(order_id),
    amount_cents INTEGER NOT NULL, reason TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, order_id TEXT, body TEXT NOT NULL,
    idempotency_key TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reversals (
    reversal_id TEXT PRIMARY KEY, refund_id TEXT NOT NULL UNIQUE REFERENCES refunds(refund_id),
    amount_cents INTEGER NOT NULL, reason TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('processing', 'completed')),
    status INTEGER, response TEXT,  -- the HTTP answer, set on completion
    owner TEXT, locked_until TEXT,  -- the reservation's fencing token and lease
    created_at TEXT NOT NULL);
"""

# A new table rather than ALTER TABLE on the old ``idempotency``: SQLite cannot drop its NOT
# NULL on status and response, which a processing row must leave empty. Old keys move over as
# completed, so a retry after the upgrade still replays instead of acting a second time.
MIGRATE_OLD_KEYS = """
INSERT OR IGNORE INTO idempotency_keys (key, fingerprint, state, status, response, created_at)
SELECT key, fingerprint, 'completed', status, response, created_at FROM idempotency
"""

RESERVATION_LEASE = timedelta(seconds=30)
RETRY_AFTER_SECONDS = 1

# (order, customer, status, total, days since placed, days since delivered)
SEED: list[tuple[str, str, str, int, int, int | None]] = [
    ("ORD-1001", "C-100", "shipped", 8_999, 3, None),
    ("ORD-1002", "C-101", "delivered", 8_000, 9, 5),
    ("ORD-1003", "C-102", "delivered", 15_900, 14, 10),
    ("ORD-1004", "C-103", "placed", 4_500, 1, None),
    ("ORD-1005", "C-100", "delivered", 6_500, 11, 7),
    ("ORD-1006", "C-104", "delivered", 12_000, 66, 60),
    ("ORD-1007", "C-105", "delivered", 45_000, 6, 3),
    ("ORD-1008", "C-101", "delivered", 2_500, 5, 2),
    ("ORD-1009", "C-106", "delivered", 19_900, 20, 15),
    ("ORD-1010", "C-107", "shipped", 3_400, 2, None),
    ("ORD-1011", "C-108", "shipped", 29_900, 2, None),
    ("ORD-1012", "C-109", "shipped", 24_900, 1, None),
    # Orders of their own for tests that move money concurrently in one session.
    ("ORD-1013", "C-110", "delivered", 30_000, 6, 3),
    ("ORD-1014", "C-111", "delivered", 45_000, 6, 3),
    ("ORD-1015", "C-112", "delivered", 50_000, 6, 3),
    ("ORD-1016", "C-113", "delivered", 30_000, 6, 3),
    ("ORD-1017", "C-114", "delivered", 30_000, 6, 3),
    ("ORD-1018", "C-115", "delivered", 30_000, 6, 3),
    ("ORD-1019", "C-116", "delivered", 30_000, 6, 3),
    ("ORD-1020", "C-117", "delivered", 30_000, 6, 3),
    ("ORD-1021", "C-118", "delivered", 30_000, 6, 3),
    ("ORD-1022", "C-119", "delivered", 30_000, 6, 3),
    ("ORD-1023", "C-120", "delivered", 30_000, 6, 3),
    ("ORD-1024", "C-121", "delivered", 30_000, 6, 3),
    ("ORD-1025", "C-122", "delivered", 30_000, 6, 3),
]


Effect = Callable[[sqlite3.Connection], tuple[int, dict[str, Any]]]


# Every query a caller can name, written out: the table and key are chosen from these, never
# formatted into SQL.
RECORD_QUERIES = {
    ("refunds", "refund_id"): "SELECT * FROM refunds WHERE refund_id = ?",
    ("messages", "message_id"): "SELECT * FROM messages WHERE message_id = ?",
    ("reversals", "reversal_id"): "SELECT * FROM reversals WHERE reversal_id = ?",
}
ROWS_QUERIES = {
    table: f"SELECT * FROM {table} ORDER BY rowid"  # the constant names below
    for table in ("refunds", "messages", "orders", "reversals")
}


class Answer(NamedTuple):
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Reservation:
    """A key held in ``processing``; ``owner`` fences off a holder whose lease was taken over."""

    key: str
    fingerprint: str
    owner: str


def _now() -> datetime:
    return datetime.now(UTC)


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _answer_for(row: sqlite3.Row | None, held: Reservation) -> Answer:
    """What a request gets when the key is not (or no longer) its own to act on."""
    if row is not None and row["fingerprint"] != held.fingerprint:
        detail = f"key {held.key} was used with other parameters"
        return Answer(409, {"error": "idempotency_conflict", "detail": detail}, {})
    if row is not None and row["state"] == "completed":
        return Answer(row["status"], json.loads(row["response"]), {"Idempotent-Replayed": "true"})
    detail = f"key {held.key} is still being processed; retry"
    return Answer(
        409,
        {"error": "idempotency_in_progress", "detail": detail},
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class BusinessDB:
    """Writes reserve their key, work outside the lock, then act and complete in one transaction."""

    def __init__(self, path: Path, *, lease: timedelta = RESERVATION_LEASE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()
        self._lease = lease
        # In-process test hooks, not reachable over HTTP. faults: path -> statuses to answer
        # instead of acting, one per POST that reaches the writer; 0 acts normally. delays:
        # path -> seconds a slow processor takes, one per request that wins the reservation
        # (so which of two overlapping requests arrives first does not matter).
        self.faults: dict[str, list[int]] = {}
        self.delays: dict[str, list[float]] = {}
        # How writes were answered: processed, replayed, idempotency_in_progress, ...
        self.answered: Counter[str] = Counter()
        # lost_answers: path -> flags, one per POST after it is processed; 1 answers 503 in
        # place of the real answer, as if the response was lost on the way back.
        self.lost_answers: dict[str, list[int]] = {}
        with self._lock:
            self._conn.executescript(SCHEMA)
            if self._conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0:
                self.seed()
        with self._write() as conn:
            old = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'idempotency'"
            if conn.execute(old).fetchone():
                conn.execute(MIGRATE_OLD_KEYS)
                conn.execute("DROP TABLE idempotency")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def seed(self) -> None:
        now = _now()
        for order_id, customer, status, total, placed, delivered in SEED:
            self._conn.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, 0, ?, ?)",
                (
                    order_id,
                    customer,
                    status,
                    total,
                    (now - timedelta(days=placed)).isoformat(),
                    (now - timedelta(days=delivered)).isoformat()
                    if delivered is not None
                    else None,
                ),
            )

    def order(self, order_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
        return dict(row) if row else None

    def record(self, table: str, key: str, value: str) -> dict[str, Any] | None:
        query = RECORD_QUERIES.get((table, key))
        if query is None:  # never SQL from a caller's words, even with asserts stripped (-O)
            raise ValueError(f"no record lookup {table}.{key}")
        row = self._conn.execute(query, (value,)).fetchone()
        return dict(row) if row else None

    def rows(self, table: str) -> list[dict[str, Any]]:
        query = ROWS_QUERIES.get(table)
        if query is None:
            raise ValueError(f"no table {table!r}")
        return [dict(r) for r in self._conn.execute(query)]

    async def idempotent(
        self, key: str, body: dict[str, Any], effect: Effect, *, path: str = ""
    ) -> Answer:
        """Run ``effect`` at most once per key; ``path`` selects the test delay."""
        held = self.reserve(key, body)
        if isinstance(held, Answer):
            self.answered[str(held.body.get("error") or "replayed")] += 1
            return held
        try:
            queued = self.delays.get(path)
            if queued:
                await asyncio.sleep(queued.pop(0))
            answer = self.complete(held, effect)
        except BaseException:
            self.release(held)  # nothing happened: the key is free again
            raise
        self.answered["processed"] += 1
        return answer

    def reserve(self, key: str, body: dict[str, Any]) -> Reservation | Answer:
        """Hold ``key`` as ``processing``, or answer with what it already holds."""
        held = Reservation(key, fingerprint(body), uuid.uuid4().hex)
        now = _now()
        with self._write() as conn:
            row = conn.execute("SELECT * FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
            stale = (
                row is not None
                and row["fingerprint"] == held.fingerprint
                and row["state"] == "processing"
                and datetime.fromisoformat(row["locked_until"]) <= now
            )
            if row is not None and not stale:
                return _answer_for(row, held)
            conn.execute(
                "INSERT OR REPLACE INTO idempotency_keys VALUES "
                "(?, ?, 'processing', NULL, NULL, ?, ?, ?)",
                (
                    key,
                    held.fingerprint,
                    held.owner,
                    (now + self._lease).isoformat(),
                    now.isoformat(),
                ),
            )
        return held

    def complete(self, held: Reservation, effect: Effect) -> Answer:
        """Apply ``effect`` and store its answer in one transaction, if the key is still ours."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM idempotency_keys WHERE key = ?", (held.key,)
            ).fetchone()
            if row is None or row["state"] != "processing" or row["owner"] != held.owner:
                return _answer_for(row, held)  # our lease ran out and another request took over
            status, response = effect(conn)
            conn.execute(
                "UPDATE idempotency_keys SET state = 'completed', status = ?, response = ? "
                "WHERE key = ?",
                (status, json.dumps(response), held.key),
            )
        return Answer(status, response, {})

    def release(self, held: Reservation) -> None:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE key = ? AND owner = ? AND state = 'processing'",
                (held.key, held.owner),
            )

    def key_record(self, key: str) -> dict[str, Any] | None:
        """What ``key`` holds, or None. A ``processing`` row whose lease ran out has no effect
        behind it (its holder died): it is removed, which also fences the holder off should it
        wake (its completion finds the key gone and applies nothing), so the answer "none"
        stays true and a caller reconciling the key is not told "in progress" for ever."""
        with self._write() as conn:
            row = conn.execute("SELECT * FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
            if (
                row is not None
                and row["state"] == "processing"
                and datetime.fromisoformat(row["locked_until"]) <= _now()
            ):
                conn.execute(
                    "DELETE FROM idempotency_keys WHERE key = ? AND owner = ?", (key, row["owner"])
                )
                row = None
        if row is None:
            return None
        response = json.loads(row["response"]) if row["response"] is not None else None
        return {"key": key, "state": row["state"], "status": row["status"], "response": response}

    def close(self) -> None:
        self._conn.close()


def _refund(body: dict[str, Any], key: str) -> Effect:
    def effect(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        order = conn.execute(
            "SELECT * FROM orders WHERE order_id = ?", (body["order_id"],)
        ).fetchone()
        if order is None:
            return 404, {"error": "order_not_found", "detail": body["order_id"]}
        amount = int(body["amount_cents"])
        balance = order["total_cents"] - order["refunded_cents"]
        if amount <= 0 or amount > balance:
            return 422, {"error": "exceeds_refundable", "detail": f"{amount} > balance {balance}"}
        refund_id = f"RF-{uuid.uuid4().hex[:12]}"
        conn.execute(
            "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?)",
            (
                refund_id,
                order["order_id"],
                amount,
                str(body.get("reason", "")),
                key,
                _now().isoformat(),
            ),
        )
        conn.execute(
            "UPDATE orders SET refunded_cents = refunded_cents + ? WHERE order_id = ?",
            (amount, order["order_id"]),
        )
        return 201, {
            "refund_id": refund_id,
            "order_id": order["order_id"],
            "amount_cents": amount,
            "refunded_total_cents": order["refunded_cents"] + amount,
        }

    return effect


def _message(body: dict[str, Any], key: str) -> Effect:
    def effect(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        message_id = f"MSG-{uuid.uuid4().hex[:12]}"
        conn.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
            (
                message_id,
                body["customer_id"],
                body.get("order_id"),
                body["body"],
                key,
                _now().isoformat(),
            ),
        )
        return 201, {"message_id": message_id, "customer_id": body["customer_id"]}

    return effect


def _reversal(body: dict[str, Any], key: str) -> Effect:
    def effect(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        refund = conn.execute(
            "SELECT * FROM refunds WHERE refund_id = ?", (body["refund_id"],)
        ).fetchone()
        if refund is None:
            return 404, {"error": "refund_not_found", "detail": body["refund_id"]}
        done = conn.execute(
            "SELECT * FROM reversals WHERE refund_id = ?", (refund["refund_id"],)
        ).fetchone()
        if done is not None:
            return 422, {"error": "already_reversed", "detail": done["reversal_id"]}
        reversal_id = f"RV-{uuid.uuid4().hex[:12]}"
        conn.execute(
            "INSERT INTO reversals VALUES (?, ?, ?, ?, ?, ?)",
            (
                reversal_id,
                refund["refund_id"],
                refund["amount_cents"],
                str(body.get("reason", "")),
                key,
                _now().isoformat(),
            ),
        )
        conn.execute(
            "UPDATE orders SET refunded_cents = refunded_cents - ? WHERE order_id = ?",
            (refund["amount_cents"], refund["order_id"]),
        )
        return 201, {
            "reversal_id": reversal_id,
            "refund_id": refund["refund_id"],
            "order_id": refund["order_id"],
        }

    return effect


def create_app(db: BusinessDB) -> Starlette:
    def injected(request: Request) -> JSONResponse | None:
        """The next fault queued for this path (``db.faults``), if any."""
        queued = db.faults.get(request.url.path)
        fault = queued.pop(0) if queued else 0
        return JSONResponse({"error": "injected_fault"}, status_code=fault) if fault else None

    async def get_order(request: Request) -> JSONResponse:
        if fault := injected(request):
            return fault
        order = db.order(request.path_params["order_id"])
        if order is None:
            return JSONResponse({"error": "order_not_found"}, status_code=404)
        return JSONResponse(order)

    def writer(
        make_effect: Callable[[dict[str, Any], str], Effect],
        required: dict[str, type],
        optional: dict[str, type] | None = None,
    ) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def handler(request: Request) -> JSONResponse:
            key = request.headers.get("Idempotency-Key")
            if not key:
                return JSONResponse({"error": "idempotency_key_required"}, status_code=400)
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"error": "invalid_json"}, status_code=400)
            if not isinstance(body, dict):
                return JSONResponse({"error": "invalid_json", "detail": "an object"}, 400)
            missing = [f for f in required if f not in body]
            if missing:
                return JSONResponse({"error": "missing_fields", "detail": missing}, status_code=422)
            # Each field as its type says, never coerced: "40", 40.99, true and "٤٠٠" are
            # no amount in cents, and a list is no order id.
            wrong = [
                f
                for f, kind in {**required, **(optional or {})}.items()
                if f in body and body[f] is not None and type(body[f]) is not kind
            ]
            if wrong:
                return JSONResponse({"error": "invalid_fields", "detail": wrong}, status_code=422)
            if fault := injected(request):
                return fault
            # The key's fingerprint covers the route: one key cannot replay a refund as a message.
            signed = {"route": request.url.path, "body": body}
            answer = await db.idempotent(key, signed, make_effect(body, key), path=request.url.path)
            lost = db.lost_answers.get(request.url.path)
            if lost and lost.pop(0):  # acted (or replayed), but the caller never hears so
                return JSONResponse({"error": "answer_lost"}, status_code=503)
            return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

        return handler

    def reader(table: str, key: str) -> Any:
        async def handler(request: Request) -> JSONResponse:
            if fault := injected(request):
                return fault
            found = db.record(table, key, request.path_params[key])
            if found is None:
                return JSONResponse({"error": f"{key}_not_found"}, status_code=404)
            return JSONResponse(found)

        return handler

    async def list_rows(request: Request) -> JSONResponse:
        return JSONResponse(db.rows(request.path_params["table"]))

    async def key_record(request: Request) -> JSONResponse:
        """What the system holds under an Idempotency-Key: how a caller that lost an answer
        learns whether its request took effect, without sending it again."""
        found = db.key_record(request.query_params.get("key", ""))
        if found is None:
            return JSONResponse({"error": "key_not_found"}, status_code=404)
        return JSONResponse(found)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/orders/{order_id}", get_order),
            Route(
                "/refunds",
                writer(_refund, {"order_id": str, "amount_cents": int}, {"reason": str}),
                methods=["POST"],
            ),
            Route(
                "/messages",
                writer(_message, {"customer_id": str, "body": str}, {"order_id": str}),
                methods=["POST"],
            ),
            Route("/refunds/{refund_id}", reader("refunds", "refund_id")),
            Route("/messages/{message_id}", reader("messages", "message_id")),
            Route(
                "/reversals",
                writer(_reversal, {"refund_id": str}, {"reason": str}),
                methods=["POST"],
            ),
            Route("/reversals/{reversal_id}", reader("reversals", "reversal_id")),
            Route("/idempotency", key_record),
            Route("/audit/{table:str}", list_rows),
        ]
    )


class BusinessServer(AppServer):
    """The business system on this machine, with its database."""

    def __init__(
        self,
        db_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lease: timedelta = RESERVATION_LEASE,
    ) -> None:
        self.db = BusinessDB(db_path, lease=lease)
        super().__init__(create_app(self.db), host=host, port=port, name="business-system")

    def stop(self) -> None:
        super().stop()
        self.db.close()
