"""The side-effect ledger: every write's idempotency key, arguments and result (SQLAlchemy).

Before a write tool acts it *claims* its key; after, it *settles* it with the result.
- settled already        -> the recorded result is returned; the target is not called again
- claimed, lease running -> another delivery is acting now: InProgress (retryable)
- claimed, lease expired -> that delivery died; this one takes over (the target's own
                            Idempotency-Key handling covers an effect it may have made)
- same key, other args   -> IdempotencyConflict (non-retryable)
SQLite by default; PostgreSQL by URL. Claims are compare-and-swap updates, so two workers
on two machines agree on who acts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from tether.db import make_engine, utc
from tether.migrations import upgrade

metadata = MetaData()

ledger = Table(
    "tether_ledger",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("tool", String(64), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("args_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # claimed | settled
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("claims", Integer, nullable=False),
    Column("result", Text),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
)


def args_hash(arguments: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    outcome: Literal["act", "settled", "in_progress", "conflict"]
    result: str | None = None
    claims: int = 0


class Ledger:
    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        upgrade(self.engine)  # the schema is migrated (tether.migrations)

    def claim(
        self, key: str, tool: str, request_id: str, arguments: dict[str, Any], *, lease: timedelta
    ) -> Claim:
        """``lease``: how long this delivery may act before another may take over."""
        digest, now = args_hash(arguments), datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(ledger).values(
                        key=key,
                        tool=tool,
                        request_id=request_id,
                        args_hash=digest,
                        status="claimed",
                        lease_until=now + lease,
                        claims=1,
                        claimed_at=now,
                    )
                )
            return Claim("act", claims=1)
        except IntegrityError:
            pass  # the key exists: decide from its row
        with self.engine.begin() as conn:
            row = conn.execute(select(ledger).where(ledger.c.key == key)).one()
            # Another request's (or tool's) key is no replay of ours: a run started under a
            # finished request's workflow id must not take that request's effects as its own.
            if (row.args_hash, row.tool, row.request_id) != (digest, tool, request_id):
                return Claim("conflict")
            if row.status == "settled":
                return Claim("settled", result=row.result, claims=row.claims)
            if utc(row.lease_until) > now:
                return Claim("in_progress", claims=row.claims)
            taken = conn.execute(
                update(ledger)
                .where(
                    ledger.c.key == key, ledger.c.status == "claimed", ledger.c.claims == row.claims
                )
                .values(lease_until=now + lease, claims=row.claims + 1, claimed_at=now)
            ).rowcount
        return (
            Claim("act", claims=row.claims + 1)
            if taken == 1
            else Claim("in_progress", claims=row.claims)
        )

    def settle(self, key: str, result: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(ledger)
                .where(ledger.c.key == key)
                .values(status="settled", result=result, settled_at=datetime.now(UTC))
            )

    def release(self, key: str, claims: int) -> None:
        """The act failed before any effect was confirmed: let the next delivery act at once.
        Fenced by ``claims``: a delivery whose claim was taken over cannot free the new one."""
        with self.engine.begin() as conn:
            conn.execute(
                update(ledger)
                .where(ledger.c.key == key, ledger.c.status == "claimed", ledger.c.claims == claims)
                .values(lease_until=datetime(1970, 1, 1, tzinfo=UTC))
            )

    def entries(self, request_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ledger)
                .where(ledger.c.request_id == request_id)
                .order_by(ledger.c.claimed_at)
            )
            return [dict(r._mapping) for r in rows]

    def close(self) -> None:
        self.engine.dispose()
