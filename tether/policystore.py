"""Policy owned by the workers: versions in the store, one active per domain, every activation
on the record.

A version is immutable: its content (thresholds, tiers, the approver directory, the pack's rule
settings) is stored with its SHA-256; a name registered again must carry the same content.
Activation is an append-only log (who, when, why, what it replaced), so the active version at
any moment, and who made it so, can be read back. Workflows pin the active version through an
activity (PolicyActivities) and keep it to their end; shadow evaluation names any stored
version, which never governs a live request unless activated.

A worker registers the policy its configuration describes (the pack's, with
``Settings.policies`` over it) at start, and activates it only when the domain has no active
version yet: after that, a change is a ``tether policy add`` and an audited ``activate``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from tether.config import PolicyConfig, Settings
from tether.contracts import LiveCandidate, PinnedPolicy
from tether.db import make_engine, utc
from tether.domain import DomainPack
from tether.errors import ConfigurationError
from tether.migrations import upgrade

metadata = MetaData()

versions = Table(
    "tether_policy_versions",
    metadata,
    Column("domain", String(32), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("note", Text, nullable=False),
)

activations = Table(
    "tether_policy_activations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(32), nullable=False, index=True),
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("previous", String(64)),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
)


# Candidates beside live traffic (tether candidate start|stop|promote): at most one running
# per domain (stopped_at null); every start, stop and promotion stays on the record.
candidates = Table(
    "tether_candidates",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(32), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the LiveCandidate
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("started_by", String(200), nullable=False),
    Column("stopped_at", DateTime(timezone=True)),
    Column("stopped_by", String(200)),
    Column("outcome", String(16)),  # stopped or promoted
    # At most one running per domain, held by the database (revision 0007).
    Index(
        "uq_tether_candidates_running",
        "domain",
        unique=True,
        sqlite_where=text("stopped_at IS NULL"),
        postgresql_where=text("stopped_at IS NULL"),
    ),
)


class PolicyConflict(Exception):
    """A version name already stored with other content: versions never change."""


class NoSuchVersion(LookupError):
    pass


class CandidateRunning(Exception):
    """A domain runs one candidate at a time."""


class NoCandidate(LookupError):
    pass


class Activation(BaseModel):
    domain: str
    version: str
    sha256: str
    previous: str | None
    at: datetime
    by: str
    reason: str


class StoredVersion(BaseModel):
    domain: str
    version: str
    sha256: str
    created_at: datetime
    created_by: str
    note: str
    policy: PolicyConfig


def content_hash(policy: PolicyConfig) -> str:
    return hashlib.sha256(canonical(policy).encode()).hexdigest()


# Fields PolicyConfig gained after versions were first stored, with their defaults: left out of
# the canonical form while at the default, so a version stored before a field existed reads
# back with the hash it was stored under (and registering it again is no new version).
ADDED_LATER: dict[str, Any] = {
    "proposal_reuse": None,
    "intent_thresholds": {},
    "overlay_pinned_for": "PT30S",
}


# The same for fields an approver directory's entry gained later.
APPROVER_ADDED_LATER: dict[str, Any] = {"subjects": []}


def canonical(policy: PolicyConfig) -> str:
    body = policy.model_dump(mode="json")
    for name, default in ADDED_LATER.items():
        if name in body and body[name] == default:
            del body[name]
    for entry in body.get("approvers", {}).values():
        for name, default in APPROVER_ADDED_LATER.items():
            if entry.get(name) == default:
                del entry[name]
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def policy_for(
    pack: DomainPack, settings: Settings, changes: Mapping[str, Any] | None = None
) -> PolicyConfig:
    """The pack's policy with this deployment's overrides (and ``changes`` on top), checked
    against the pack: ConfigurationError if not."""
    policy = pack.policy
    for overrides in (settings.policies.get(pack.name), changes):
        if overrides:
            try:
                policy = policy.merged(dict(overrides))
            except ValidationError as err:
                raise ConfigurationError(
                    [
                        f"policy of {pack.name}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                        for e in err.errors()
                    ]
                ) from None
    return checked(pack, policy)


def checked(pack: DomainPack, policy: PolicyConfig) -> PolicyConfig:
    problems = pack.policy_problems(policy)
    if problems:
        raise ConfigurationError([f"policy of {pack.name}: {p}" for p in problems])
    return policy


def diff(old: PolicyConfig, new: PolicyConfig) -> list[str]:
    """Every setting that differs, as ``path: old -> new`` lines (an approver's keys too)."""

    def flat(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict) and value:
            for key in sorted(value):
                yield from flat(value[key], f"{path}.{key}" if path else str(key))
        else:
            yield path, value

    before = dict(flat(old.model_dump(mode="json", exclude={"version"})))
    after = dict(flat(new.model_dump(mode="json", exclude={"version"})))
    gone = object()  # a path on one side only (not a setting of null)
    lines = []
    for path in sorted(before.keys() | after.keys()):
        was, now = before.get(path, gone), after.get(path, gone)
        if was == now or ((was is gone or now is gone) and {} in (was, now)):
            continue  # an empty table filled (or emptied): its entries' lines say what changed
        shown = [json.dumps(v) if v is not gone else "(none)" for v in (was, now)]
        lines.append(f"{path}: {shown[0]} -> {shown[1]}")
    return lines


class PolicyStore:
    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        upgrade(self.engine)  # the schema is migrated (tether.migrations)

    def add(self, domain: str, policy: PolicyConfig, *, by: str, note: str = "") -> StoredVersion:
        """Store ``policy`` under its version name; the same content again is a no-op."""
        digest = content_hash(policy)
        row = {
            "domain": domain,
            "version": policy.version,
            "sha256": digest,
            "body": canonical(policy),
            "created_at": datetime.now(UTC),
            "created_by": by,
            "note": note,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(versions).values(**row))
        except IntegrityError:
            stored = self.get(domain, policy.version)
            if stored.sha256 != digest:
                raise PolicyConflict(
                    f"{domain} policy {policy.version} is stored with other content "
                    f"(sha256 {stored.sha256[:12]}); give the new content a new version"
                ) from None
            return stored
        return self.get(domain, policy.version)

    def get(self, domain: str, version: str) -> StoredVersion:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(versions).where(versions.c.domain == domain, versions.c.version == version)
            ).first()
        if row is None:
            raise NoSuchVersion(f"no {domain} policy version {version!r}")
        return _stored(row)

    def versions(self, domain: str) -> list[StoredVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(versions)
                .where(versions.c.domain == domain)
                .order_by(versions.c.created_at, versions.c.version)
            ).all()
        return [_stored(r) for r in rows]

    def activate(self, domain: str, version: str, *, by: str, reason: str) -> Activation:
        """Make ``version`` the one new workflows of ``domain`` pin; on the record."""
        stored = self.get(domain, version)
        current = self.active_activation(domain)
        row = {
            "domain": domain,
            "version": version,
            "sha256": stored.sha256,
            "previous": current.version if current else None,
            "at": datetime.now(UTC),
            "by": by,
            "reason": reason,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(activations).values(**row))
        return Activation(**row)

    def activations(self, domain: str) -> list[Activation]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(activations)
                .where(activations.c.domain == domain)
                .order_by(activations.c.seq)
            ).all()
        return [_activation(r) for r in rows]

    def active_activation(self, domain: str) -> Activation | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(activations)
                .where(activations.c.domain == domain)
                .order_by(activations.c.seq.desc())
                .limit(1)
            ).first()
        return _activation(row) if row else None

    def active(self, domain: str) -> PinnedPolicy | None:
        """The version new workflows of ``domain`` pin, or None when none was activated."""
        current = self.active_activation(domain)
        if current is None:
            return None
        return self.pinned(domain, current.version)

    def pinned(self, domain: str, version: str) -> PinnedPolicy:
        stored = self.get(domain, version)
        return PinnedPolicy(
            domain=domain, version=version, sha256=stored.sha256, policy=stored.policy
        )

    # --- candidates beside live traffic -------------------------------------------------

    def start_candidate(self, domain: str, candidate: LiveCandidate, *, by: str) -> None:
        """Run ``candidate`` beside ``domain``'s live traffic from the next pinned request. Its
        policy version must be stored; one already running must be stopped first."""
        if candidate.policy_version is not None:
            self.get(domain, candidate.policy_version)  # NoSuchVersion if not
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(candidates).values(
                        domain=domain,
                        name=candidate.name,
                        body=candidate.model_dump_json(),
                        started_at=datetime.now(UTC),
                        started_by=by,
                    )
                )
        except IntegrityError:  # one running already (the unique index): say which
            running = self.candidate(domain)
            name = running.name if running else "another"
            raise CandidateRunning(
                f"{domain} already runs candidate {name}: stop or promote it first"
            ) from None

    def candidate(self, domain: str) -> LiveCandidate | None:
        """The candidate running beside ``domain``'s live traffic, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(candidates.c.body).where(
                    (candidates.c.domain == domain) & candidates.c.stopped_at.is_(None)
                )
            ).first()
        return LiveCandidate.model_validate_json(row.body) if row else None

    def candidate_runs(self, domain: str) -> list[dict[str, Any]]:
        """Every candidate ``domain`` ran, oldest first, with who started and ended it."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(candidates).where(candidates.c.domain == domain).order_by(candidates.c.seq)
            ).all()
        return [
            {
                **{k: v for k, v in r._mapping.items() if k != "body"},
                "candidate": LiveCandidate.model_validate_json(r.body),
                "started_at": utc(r.started_at),
                "stopped_at": utc(r.stopped_at) if r.stopped_at else None,
            }
            for r in rows
        ]

    def stop_candidate(self, domain: str, *, by: str, outcome: str = "stopped") -> LiveCandidate:
        """End the running candidate (NoCandidate when none runs); new requests stop being
        shadowed at once, shadow runs already started finish."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(candidates.c.seq, candidates.c.body).where(
                    (candidates.c.domain == domain) & candidates.c.stopped_at.is_(None)
                )
            ).first()
            if row is None:
                raise NoCandidate(f"{domain} runs no candidate")
            conn.execute(
                candidates.update()
                .where(candidates.c.seq == row.seq)
                .values(stopped_at=datetime.now(UTC), stopped_by=by, outcome=outcome)
            )
        return LiveCandidate.model_validate_json(row.body)

    def register(self, pack: DomainPack, settings: Settings, *, by: str) -> StoredVersion:
        """The policy ``settings`` describe for ``pack``, stored (a version name taken by other
        content gets its hash appended), and activated if the domain has none active."""
        policy = policy_for(pack, settings)
        try:
            stored = self.add(pack.name, policy, by=by, note="registered by a worker at start")
        except PolicyConflict:
            named = f"{policy.version[:55]}+{content_hash(policy)[:8]}"
            policy = policy.model_copy(update={"version": named})
            stored = self.add(pack.name, policy, by=by, note="registered by a worker at start")
        if self.active_activation(pack.name) is None:
            self.activate(pack.name, stored.version, by=by, reason="first version: none was active")
        return stored

    def close(self) -> None:
        self.engine.dispose()


def _stored(row: Any) -> StoredVersion:
    policy = PolicyConfig.model_validate_json(row.body)
    if content_hash(policy) != row.sha256:  # changed behind the store's back: governs nothing
        raise PolicyConflict(f"{row.domain} policy {row.version}: content does not match its hash")
    return StoredVersion(
        domain=row.domain,
        version=row.version,
        sha256=row.sha256,
        created_at=utc(row.created_at),
        created_by=row.created_by,
        note=row.note,
        policy=policy,
    )


def _activation(row: Any) -> Activation:
    return Activation(
        domain=row.domain,
        version=row.version,
        sha256=row.sha256,
        previous=row.previous,
        at=utc(row.at),
        by=row.by,
        reason=row.reason,
    )
