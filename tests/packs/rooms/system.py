"""The rooms pack's business system: rooms, bookings and notes over HTTP, with SQLite.

Small on purpose, but real: every POST carries an ``Idempotency-Key``; the same key with the
same body replays the first answer, with another body it is a 409 ``idempotency_conflict``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tether.stack import AppServer

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (room_id TEXT PRIMARY KEY, name TEXT NOT NULL,
    capacity INTEGER NOT NULL, status TEXT NOT NULL, restricted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS bookings (booking_id TEXT PRIMARY KEY, room_id TEXT NOT NULL,
    employee_id TEXT NOT NULL, people INTEGER NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (note_id TEXT PRIMARY KEY, employee_id TEXT NOT NULL,
    body TEXT NOT NULL, idempotency_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, response TEXT NOT NULL);
"""
ROOMS = [
    ("RM-101", "Fjord", 8, "open"),
    ("RM-102", "Glacier", 6, "open"),
    ("RM-201", "Summit", 30, "open"),
    ("RM-202", "Ridge", 20, "open"),
    ("RM-301", "Basecamp", 12, "maintenance"),
]


class RoomsDB:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._conn.executescript(SCHEMA)
        self._conn.executemany(
            "INSERT OR IGNORE INTO rooms (room_id, name, capacity, status) VALUES (?, ?, ?, ?)",
            ROOMS,
        )

    def restrict(self, room_id: str) -> None:
        """The board takes a room: from now on bookings of it are the director's to approve."""
        with self._lock:
            self._conn.execute("UPDATE rooms SET restricted = 1 WHERE room_id = ?", (room_id,))

    def one(self, table: str, column: str, value: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT * FROM {table} WHERE {column} = ?", (value,)
            ).fetchone()
        return dict(row) if row else None

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(f"SELECT * FROM {table}")]

    def once(self, key: str, body: dict[str, Any], act: Any) -> tuple[int, dict[str, Any], bool]:
        """(status, answer, replayed): the effect and its key in one transaction."""
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                seen = self._conn.execute("SELECT * FROM keys WHERE key = ?", (key,)).fetchone()
                if seen is not None:
                    self._conn.execute("COMMIT")
                    if seen["fingerprint"] != fingerprint:
                        return 409, {"error": "idempotency_conflict"}, False
                    return seen["status"], json.loads(seen["response"]), True
                status, answer = act(self._conn)
                self._conn.execute(
                    "INSERT INTO keys VALUES (?, ?, ?, ?)",
                    (key, fingerprint, status, json.dumps(answer)),
                )
                self._conn.execute("COMMIT")
                return status, answer, False
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise


def _book(body: dict[str, Any], key: str) -> Any:
    def act(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        room = conn.execute("SELECT * FROM rooms WHERE room_id = ?", (body["room_id"],)).fetchone()
        if room is None:
            return 404, {"error": "room_not_found"}
        if room["status"] != "open" or body["people"] > room["capacity"]:
            return 422, {"error": "room_unavailable"}
        booking = f"BK-{uuid.uuid4().hex[:10]}"
        conn.execute(
            "INSERT INTO bookings VALUES (?, ?, ?, ?, 0, ?)",
            (booking, body["room_id"], body["employee_id"], body["people"], key),
        )
        return 201, {"booking_id": booking, "room_id": body["room_id"], "people": body["people"]}

    return act


def _cancel(body: dict[str, Any], key: str) -> Any:
    def act(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        found = conn.execute(
            "UPDATE bookings SET cancelled = 1 WHERE booking_id = ?", (body["booking_id"],)
        )
        if found.rowcount == 0:
            return 404, {"error": "booking_not_found"}
        return 200, {"booking_id": body["booking_id"], "cancelled": True}

    return act


def _note(body: dict[str, Any], key: str) -> Any:
    def act(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        note = f"NT-{uuid.uuid4().hex[:10]}"
        conn.execute(
            "INSERT INTO notes VALUES (?, ?, ?, ?)", (note, body["employee_id"], body["body"], key)
        )
        return 201, {"note_id": note, "employee_id": body["employee_id"]}

    return act


def create_app(db: RoomsDB) -> Starlette:
    def reader(table: str, column: str) -> Any:
        async def handler(request: Request) -> JSONResponse:
            row = db.one(table, column, request.path_params["ident"])
            return JSONResponse(row or {"error": "not_found"}, status_code=200 if row else 404)

        return handler

    def writer(effect: Any) -> Any:
        async def handler(request: Request) -> JSONResponse:
            key = request.headers.get("Idempotency-Key")
            if not key:
                return JSONResponse({"error": "idempotency_key_required"}, status_code=400)
            body = await request.json()
            status, answer, replayed = db.once(key, body, effect(body, key))
            headers = {"Idempotent-Replayed": "true"} if replayed else {}
            return JSONResponse(answer, status_code=status, headers=headers)

        return handler

    async def key_record(request: Request) -> JSONResponse:
        row = db.one("keys", "key", request.query_params.get("key", ""))
        if row is None:
            return JSONResponse({"error": "key_not_found"}, status_code=404)
        return JSONResponse(
            {"state": "completed", "status": row["status"], "response": json.loads(row["response"])}
        )

    return Starlette(
        routes=[
            Route("/rooms/{ident}", reader("rooms", "room_id")),
            Route("/bookings/{ident}", reader("bookings", "booking_id")),
            Route("/notes/{ident}", reader("notes", "note_id")),
            Route("/bookings", writer(_book), methods=["POST"]),
            Route("/cancellations", writer(_cancel), methods=["POST"]),
            Route("/notes", writer(_note), methods=["POST"]),
            Route("/idempotency", key_record),
        ]
    )


class RoomsServer(AppServer):
    def __init__(self, db_path: Path, *, port: int = 0) -> None:
        self.db = RoomsDB(db_path)
        super().__init__(create_app(self.db), port=port, name="rooms")
