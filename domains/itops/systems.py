"""The itops pack's business systems over HTTP, on one SQLite database:

- the **CMDB** (``role="cmdb"``): hosts with their environment and services, groups with a
  sensitivity and members, people with their team and manager; read-only for Tether;
- the **change executor** (``role="changes"``): the automation tier that restarts services,
  changes group membership, rotates credentials, keeps change records and notifies people.
  Its changes are the CMDB's records (a restart count, a membership), so both serve the same
  database, and both answer reads of an asset.

Writes happen once per ``Idempotency-Key`` (tether.keyed: the same key and body replay the
first answer, another body is a 409 ``idempotency_conflict``, ``GET /idempotency?key=`` says what
a key holds, and a refusal changes nothing and keeps no key). The data is seeded once, when the
database is new: a restart never hands back access revoked since.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tether.keyed import Answer, KeyedStore, keyed_routes, reader
from tether.stack import AppServer

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (employee_id TEXT PRIMARY KEY, name TEXT NOT NULL,
    team TEXT NOT NULL, manager TEXT);
CREATE TABLE IF NOT EXISTS hosts (host TEXT PRIMARY KEY, environment TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (host TEXT NOT NULL, service TEXT NOT NULL,
    owner_team TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'running',
    restarts INTEGER NOT NULL DEFAULT 0, credential_version INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (host, service));
CREATE TABLE IF NOT EXISTS groups_ (group_id TEXT PRIMARY KEY, sensitivity TEXT NOT NULL,
    owner_team TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (group_id TEXT NOT NULL, employee_id TEXT NOT NULL,
    PRIMARY KEY (group_id, employee_id));
CREATE TABLE IF NOT EXISTS restarts (restart_id TEXT PRIMARY KEY, host TEXT NOT NULL,
    service TEXT NOT NULL, requested_by TEXT NOT NULL, restarts_after INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS membership_changes (change_id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL, employee_id TEXT NOT NULL, action TEXT NOT NULL,
    requested_by TEXT NOT NULL, changed INTEGER NOT NULL, idempotency_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rotations (rotation_id TEXT PRIMARY KEY, host TEXT NOT NULL,
    service TEXT NOT NULL, requested_by TEXT NOT NULL, credential_version INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS change_records (change_id TEXT PRIMARY KEY, summary TEXT NOT NULL,
    requested_by TEXT NOT NULL, status TEXT NOT NULL, idempotency_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (notification_id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL, body TEXT NOT NULL, idempotency_key TEXT NOT NULL);
"""

PEOPLE = [
    ("E-201", "Ana Ortiz", "payments", "E-210"),
    ("E-202", "Ben Cole", "payments", "E-210"),
    ("E-203", "Chen Wu", "search", "E-220"),
    ("E-204", "Dana Kim", "search", "E-220"),
    ("E-205", "Eli Park", "data", "E-230"),
    ("E-206", "Farah Ali", "data", "E-230"),
    ("E-210", "Grace Moss", "payments", "E-299"),
    ("E-220", "Hugo Lind", "search", "E-299"),
    ("E-230", "Iris Novak", "data", "E-299"),
    ("E-240", "Jon Reyes", "sre", "E-299"),
    ("E-250", "Kai Berg", "security", "E-299"),
    ("E-299", "Lena Hart", "leadership", None),
]
HOSTS = {
    "stg-web-01": ("staging", [("svc-checkout", "payments"), ("svc-cart", "payments")]),
    "prod-web-01": ("production", [("svc-checkout", "payments"), ("svc-cart", "payments")]),
    "prod-web-02": ("production", [("svc-checkout", "payments")]),
    "stg-search-01": ("staging", [("svc-search", "search")]),
    "prod-search-01": ("production", [("svc-search", "search")]),
    "dev-batch-01": ("development", [("svc-etl", "data")]),
    "stg-batch-01": ("staging", [("svc-etl", "data")]),
    "prod-db-01": ("production", [("svc-ledger", "payments")]),
}
STUCK = ("stg-batch-01", "svc-etl")  # a restart that never finished
GROUPS = [
    ("grp-payments-read", "low", "payments"),
    ("grp-search-admin", "low", "search"),
    ("grp-data-read", "low", "data"),
    ("grp-prod-admin", "high", "sre"),
    ("grp-payments-pii", "high", "payments"),
]
MEMBERS = [("grp-payments-read", "E-201"), ("grp-prod-admin", "E-240")]

Role = Literal["cmdb", "changes"]


def _seed(c: sqlite3.Connection) -> None:
    c.executemany("INSERT INTO people VALUES (?, ?, ?, ?)", PEOPLE)
    for host, (environment, services) in HOSTS.items():
        c.execute("INSERT INTO hosts VALUES (?, ?)", (host, environment))
        c.executemany(
            "INSERT INTO services (host, service, owner_team) VALUES (?, ?, ?)",
            [(host, service, team) for service, team in services],
        )
    c.execute("UPDATE services SET state = 'restarting' WHERE host = ? AND service = ?", STUCK)
    c.executemany("INSERT INTO groups_ VALUES (?, ?, ?)", GROUPS)
    c.executemany("INSERT INTO members VALUES (?, ?)", MEMBERS)


class ItopsDB(KeyedStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA, seed=_seed)

    # --- reads -----------------------------------------------------------------------

    def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute(sql, args)]

    def _team(self, team: str) -> list[str]:
        return [r["employee_id"] for r in self._all("SELECT * FROM people WHERE team = ?", team)]

    def asset(self, asset_id: str) -> dict[str, Any] | None:
        """A host, group or person as one record, with the owners of what it holds: read in
        one transaction, so never half before and half after a change."""
        with self.transaction():
            host = self._all("SELECT * FROM hosts WHERE host = ?", asset_id)
            if host:
                services = self._all(
                    "SELECT * FROM services WHERE host = ? ORDER BY service", asset_id
                )
                return {
                    "asset_id": asset_id,
                    "kind": "host",
                    "environment": host[0]["environment"],
                    "services": [
                        {
                            "name": s["service"],
                            "owner_team": s["owner_team"],
                            "owners": self._team(s["owner_team"]),
                            "state": s["state"],
                            "restarts": s["restarts"],
                            "credential_version": s["credential_version"],
                        }
                        for s in services
                    ],
                }
            group = self._all("SELECT * FROM groups_ WHERE group_id = ?", asset_id)
            if group:
                members = self._all(
                    "SELECT employee_id FROM members WHERE group_id = ? ORDER BY employee_id",
                    asset_id,
                )
                return {
                    "asset_id": asset_id,
                    "kind": "group",
                    "sensitivity": group[0]["sensitivity"],
                    "owner_team": group[0]["owner_team"],
                    "owners": self._team(group[0]["owner_team"]),
                    "members": [m["employee_id"] for m in members],
                }
            person = self._all("SELECT * FROM people WHERE employee_id = ?", asset_id)
            if person:
                p = person[0]
                return {
                    "asset_id": asset_id,
                    "kind": "person",
                    "name": p["name"],
                    "team": p["team"],
                    "manager": p["manager"],
                }
        return None

    def service(self, host: str, service: str) -> dict[str, Any] | None:
        return next(
            (
                dict(s)
                for s in self.rows("services")
                if (s["host"], s["service"]) == (host, service)
            ),
            None,
        )


def _new(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _service_row(conn: sqlite3.Connection, body: dict[str, Any]) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM services WHERE host = ? AND service = ?", (body["host"], body["service"])
    ).fetchone()
    return row


def _restart(body: dict[str, Any], key: str) -> Callable[[sqlite3.Connection], Answer]:
    def act(conn: sqlite3.Connection) -> Answer:
        row = _service_row(conn, body)
        if row is None:
            return 404, {"error": "service_not_on_host"}
        if row["state"] != "running":
            return 422, {"error": "service_busy", "state": row["state"]}
        after = row["restarts"] + 1
        conn.execute(
            "UPDATE services SET restarts = ? WHERE host = ? AND service = ?",
            (after, body["host"], body["service"]),
        )
        restart = _new("RS")
        conn.execute(
            "INSERT INTO restarts VALUES (?, ?, ?, ?, ?, ?)",
            (restart, body["host"], body["service"], body["requested_by"], after, key),
        )
        return 201, {
            "restart_id": restart,
            "host": body["host"],
            "service": body["service"],
            "restarts": after,
        }

    return act


def _membership(
    action: str,
) -> Callable[[dict[str, Any], str], Callable[[sqlite3.Connection], Answer]]:
    def effect(body: dict[str, Any], key: str) -> Callable[[sqlite3.Connection], Answer]:
        def act(conn: sqlite3.Connection) -> Answer:
            group, member = body["group"], body["member"]
            if (
                conn.execute("SELECT 1 FROM groups_ WHERE group_id = ?", (group,)).fetchone()
                is None
            ):
                return 404, {"error": "group_not_found"}
            if (
                conn.execute("SELECT 1 FROM people WHERE employee_id = ?", (member,)).fetchone()
                is None
            ):
                return 404, {"error": "person_not_found"}
            if action == "add":
                changed = conn.execute(
                    "INSERT OR IGNORE INTO members VALUES (?, ?)", (group, member)
                ).rowcount
            else:
                changed = conn.execute(
                    "DELETE FROM members WHERE group_id = ? AND employee_id = ?", (group, member)
                ).rowcount
            change = _new("MC")
            conn.execute(
                "INSERT INTO membership_changes VALUES (?, ?, ?, ?, ?, ?, ?)",
                (change, group, member, action, body["requested_by"], changed, key),
            )
            return 201, {
                "change_id": change,
                "group": group,
                "member": member,
                "member_now": action == "add",
                "changed": bool(changed),
            }

        return act

    return effect


def _rotate(body: dict[str, Any], key: str) -> Callable[[sqlite3.Connection], Answer]:
    def act(conn: sqlite3.Connection) -> Answer:
        row = _service_row(conn, body)
        if row is None:
            return 404, {"error": "service_not_on_host"}
        version = row["credential_version"] + 1
        conn.execute(
            "UPDATE services SET credential_version = ? WHERE host = ? AND service = ?",
            (version, body["host"], body["service"]),
        )
        rotation = _new("CR")
        conn.execute(
            "INSERT INTO rotations VALUES (?, ?, ?, ?, ?, ?)",
            (rotation, body["host"], body["service"], body["requested_by"], version, key),
        )
        return 201, {
            "rotation_id": rotation,
            "host": body["host"],
            "service": body["service"],
            "credential_version": version,
        }

    return act


def _open_change(body: dict[str, Any], key: str) -> Callable[[sqlite3.Connection], Answer]:
    def act(conn: sqlite3.Connection) -> Answer:
        change = _new("CHG")
        conn.execute(
            "INSERT INTO change_records VALUES (?, ?, ?, 'open', ?)",
            (change, body["summary"], body["requested_by"], key),
        )
        return 201, {"change_id": change, "status": "open"}

    return act


def _close_change(body: dict[str, Any], key: str) -> Callable[[sqlite3.Connection], Answer]:
    def act(conn: sqlite3.Connection) -> Answer:
        found = conn.execute(
            "UPDATE change_records SET status = 'withdrawn' WHERE change_id = ?",
            (body["change_id"],),
        )
        if found.rowcount == 0:
            return 404, {"error": "change_not_found"}
        return 200, {"change_id": body["change_id"], "status": "withdrawn"}

    return act


def _notify(body: dict[str, Any], key: str) -> Callable[[sqlite3.Connection], Answer]:
    def act(conn: sqlite3.Connection) -> Answer:
        note = _new("NT")
        conn.execute(
            "INSERT INTO notifications VALUES (?, ?, ?, ?)",
            (note, body["employee_id"], body["body"], key),
        )
        return 201, {"notification_id": note, "employee_id": body["employee_id"]}

    return act


WRITES = {
    "/restarts": _restart,
    "/memberships": _membership("add"),
    "/memberships/remove": _membership("remove"),
    "/rotations": _rotate,
    "/changes": _open_change,
    "/changes/withdraw": _close_change,
    "/notifications": _notify,
}
READS = {  # path prefix -> (table, key column)
    "restarts": ("restarts", "restart_id"),
    "membership-changes": ("membership_changes", "change_id"),
    "rotations": ("rotations", "rotation_id"),
    "changes": ("change_records", "change_id"),
    "notifications": ("notifications", "notification_id"),
}


def create_app(db: ItopsDB, role: Role) -> Starlette:
    async def asset(request: Request) -> JSONResponse:
        found = db.asset(request.path_params["ident"])
        if found is None:
            return JSONResponse({"error": "asset_not_found"}, status_code=404)
        return JSONResponse(found)

    # Both answer reads of an asset; only the executor writes (and says what a key holds).
    routes = [Route("/assets/{ident}", asset)]
    if role == "changes":
        routes += keyed_routes(db, WRITES)
        routes += [
            Route(f"/{prefix}/{{ident}}", reader(db, table, column))
            for prefix, (table, column) in READS.items()
        ]
    return Starlette(routes=routes)


class ItopsServer(AppServer):
    """One of the two systems; ``db`` is shared when both run in one process."""

    def __init__(
        self, db_path: Path, *, role: Role, port: int = 0, db: ItopsDB | None = None
    ) -> None:
        self.db = db or ItopsDB(db_path)
        super().__init__(create_app(self.db, role), port=port, name=f"itops-{role}")


class ItopsSystems:
    """The CMDB and the change executor on one database, in this process (tests, scripts)."""

    def __init__(self, cmdb: ItopsServer, changes: ItopsServer) -> None:
        self.cmdb, self.changes, self.db = cmdb, changes, cmdb.db

    @classmethod
    def start(cls, db_path: Path) -> ItopsSystems:
        db = ItopsDB(db_path)
        cmdb = ItopsServer(db_path, role="cmdb", db=db).start()
        return cls(cmdb, ItopsServer(db_path, role="changes", db=db).start())

    def stop(self) -> None:
        self.cmdb.stop()
        self.changes.stop()
