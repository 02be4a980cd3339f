"""The rooms pack's business system: rooms, bookings and notes over HTTP, with SQLite.

Small on purpose, but real: every POST carries an ``Idempotency-Key`` (tether.keyed: the same
key with the same body replays the first answer, with another body it is a 409
``idempotency_conflict``).
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from tether.keyed import KeyedStore, keyed_routes, reader
from tether.stack import AppServer

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (room_id TEXT PRIMARY KEY, name TEXT NOT NULL,
    capacity INTEGER NOT NULL, status TEXT NOT NULL, restricted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS bookings (booking_id TEXT PRIMARY KEY, room_id TEXT NOT NULL,
    employee_id TEXT NOT NULL, people INTEGER NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (note_id TEXT PRIMARY KEY, employee_id TEXT NOT NULL,
    body TEXT NOT NULL, idempotency_key TEXT NOT NULL);
"""
ROOMS = [
    ("RM-101", "Fjord", 8, "open"),
    ("RM-102", "Glacier", 6, "open"),
    ("RM-201", "Summit", 30, "open"),
    ("RM-202", "Ridge", 20, "open"),
    ("RM-301", "Basecamp", 12, "maintenance"),
]


def _seed(conn: sqlite3.Connection) -> None:
    conn.executemany(
        "INSERT INTO rooms (room_id, name, capacity, status) VALUES (?, ?, ?, ?)", ROOMS
    )


class RoomsDB(KeyedStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA, seed=_seed)

    def restrict(self, room_id: str) -> None:
        """The board takes a room: from now on bookings of it are the director's to approve."""
        with self.transaction() as conn:
            conn.execute("UPDATE rooms SET restricted = 1 WHERE room_id = ?", (room_id,))


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
    return Starlette(
        routes=[
            Route("/rooms/{ident}", reader(db, "rooms", "room_id")),
            Route("/bookings/{ident}", reader(db, "bookings", "booking_id")),
            Route("/notes/{ident}", reader(db, "notes", "note_id")),
            *keyed_routes(db, {"/bookings": _book, "/cancellations": _cancel, "/notes": _note}),
        ]
    )


class RoomsServer(AppServer):
    def __init__(self, db_path: Path, *, port: int = 0) -> None:
        self.db = RoomsDB(db_path)
        super().__init__(create_app(self.db), port=port, name="rooms")
