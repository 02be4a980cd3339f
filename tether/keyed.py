"""Writes done once per ``Idempotency-Key``, on SQLite: the part every small business system a
pack runs on one machine shares (the itops CMDB and change executor, the rooms test pack, what
`tether new-domain` writes). Tether's tools send a key with every write; these semantics are
what they expect of any system, as payment APIs offer them:

- the same key and body replay the first answer (header ``Idempotent-Replayed: true``);
- the same key with another body is a 409 ``idempotency_conflict``;
- the effect and its key commit in one transaction, so a retry after a crash finds both or
  neither; a refusal (4xx) changes nothing and keeps no key, so a key's record never claims
  an effect;
- ``GET /idempotency?key=`` says what a key holds, for a caller that lost an answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

KEYS = """CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, response TEXT NOT NULL)"""

Answer = tuple[int, dict[str, Any]]
# What a write does inside the key's transaction: (status, answer); a 4xx is rolled back.
Effect = Callable[[sqlite3.Connection], Answer]
# (request body, idempotency key) -> the effect
Write = Callable[[dict[str, Any], str], Effect]
Handler = Callable[[Request], Awaitable[JSONResponse]]


class KeyedStore:
    """One SQLite database; ``seed`` runs once, when the database is new, so a restart never
    puts back what the system's own writes changed since."""

    def __init__(
        self, path: Path, schema: str, seed: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)  # `tether up` starts it before anything
        self._conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")  # two servers may share one file
        self._lock = threading.Lock()
        # In-process test hooks, not reachable over HTTP: path -> statuses to answer instead.
        self.faults: dict[str, list[int]] = {}
        with self.transaction() as conn:
            for statement in [*schema.split(";"), KEYS]:
                if statement.strip():
                    conn.execute(statement)
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                if seed is not None:
                    seed(conn)
                conn.execute("PRAGMA user_version = 1")
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            self._columns = {
                t: {c[1] for c in conn.execute("SELECT * FROM pragma_table_info(?)", (t,))}
                for t in tables
            }

    def transaction(self) -> _Transaction:
        return _Transaction(self._conn, self._lock)

    def _known(self, table: str, column: str | None = None) -> None:
        """Names formatted into SQL must be the schema's own (never a caller's words); checked
        as code, not by assert, which -O strips."""
        columns = self._columns.get(table)
        if columns is None or (column is not None and column not in columns):
            raise ValueError(f"no {table}{'.' + column if column else ''} in this database")

    def one(self, table: str, column: str, value: str) -> dict[str, Any] | None:
        self._known(table, column)
        with self._lock:
            row = self._conn.execute(
                f"SELECT * FROM {table} WHERE {column} = ?", (value,)
            ).fetchone()
        return dict(row) if row else None

    def rows(self, table: str) -> list[dict[str, Any]]:
        self._known(table)
        with self._lock:
            return [dict(r) for r in self._conn.execute(f"SELECT * FROM {table}")]

    def once(self, key: str, body: dict[str, Any], act: Effect) -> tuple[int, dict[str, Any], bool]:
        """(status, answer, replayed)."""
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        try:
            with self.transaction() as conn:
                seen = conn.execute("SELECT * FROM keys WHERE key = ?", (key,)).fetchone()
                if seen is not None:
                    if seen["fingerprint"] != fingerprint:
                        return 409, {"error": "idempotency_conflict"}, False
                    return seen["status"], json.loads(seen["response"]), True
                status, answer = act(conn)
                if status >= 400:
                    raise _Refused(status, answer)  # rolled back: nothing changed, no key
                conn.execute(
                    "INSERT INTO keys VALUES (?, ?, ?, ?)",
                    (key, fingerprint, status, json.dumps(answer)),
                )
                return status, answer, False
        except _Refused as refused:
            return refused.status, refused.answer, False

    def key_record(self, key: str) -> dict[str, Any] | None:
        row = self.one("keys", "key", key)
        if row is None:
            return None
        return {
            "state": "completed",
            "status": row["status"],
            "response": json.loads(row["response"]),
        }


class _Refused(Exception):
    def __init__(self, status: int, answer: dict[str, Any]) -> None:
        self.status, self.answer = status, answer


class _Transaction:
    """BEGIN IMMEDIATE under the store's lock; COMMIT, or ROLLBACK on any exception."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self._conn, self._lock = conn, lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            self._conn.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self._lock.release()


def writer(store: KeyedStore, path: str, write: Write) -> Handler:
    """The POST handler of one write: key required, the effect once per key."""

    async def handle(request: Request) -> JSONResponse:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return JSONResponse({"error": "idempotency_key_required"}, status_code=400)
        queued = store.faults.get(path)
        fault = queued.pop(0) if queued else 0
        if fault:
            return JSONResponse({"error": "injected_fault"}, status_code=fault)
        try:
            body = await request.json()
            status, answer, replayed = store.once(key, body, write(body, key))
        except (ValueError, KeyError, TypeError) as err:  # a body that is not what it should be
            return JSONResponse({"error": "bad_request", "detail": str(err)}, status_code=400)
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return JSONResponse(answer, status_code=status, headers=headers)

    return handle


def reader(store: KeyedStore, table: str, column: str) -> Handler:
    """GET one row by its id (``{ident}`` in the route); 404 with an ``error`` if none."""

    async def handle(request: Request) -> JSONResponse:
        row = store.one(table, column, request.path_params["ident"])
        return JSONResponse(row or {"error": "not_found"}, status_code=200 if row else 404)

    return handle


def keyed_routes(store: KeyedStore, writes: dict[str, Write]) -> list[Route]:
    """``POST`` for each write, and ``GET /idempotency?key=``."""

    async def key_record(request: Request) -> JSONResponse:
        found = store.key_record(request.query_params.get("key", ""))
        if found is None:
            return JSONResponse({"error": "key_not_found"}, status_code=404)
        return JSONResponse(found)

    return [
        *(
            Route(path, writer(store, path, write), methods=["POST"])
            for path, write in writes.items()
        ),
        Route("/idempotency", key_record),
    ]
