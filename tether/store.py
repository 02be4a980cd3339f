"""Tether's own records: outcomes, human follow-ups, index refreshes, the events the incident
timeline reads beside outcomes (SQLAlchemy).

SQLite by default; any SQLAlchemy URL (PostgreSQL included) by configuration. The tables
are migrated (tether/migrations): a change to one here needs a revision there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from tether import reuse
from tether.contracts import (
    VOICE_FEEDBACK,
    WRONG_FEEDBACK,
    LaterFeedback,
    Outcome,
    Reused,
    ReuseQuery,
    ShadowDecision,
    TallyHold,
)
from tether.datasets import Case, digest
from tether.db import make_engine, utc
from tether.incident import Event
from tether.migrations import upgrade
from tether.overlay import BurnEvidence, Overlay, governing, scope

metadata = MetaData()


outcomes = Table(
    "tether_outcomes",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("domain", String(32), nullable=False, index=True),
    Column("workflow_id", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("mode", String(32), nullable=False),
    Column("intent", String(64)),
    Column("policy_version", String(64), nullable=False),
    # Indexed (revision 0002): drift and evaluation read outcomes by a window of these.
    Column("finished_at", DateTime(timezone=True), nullable=False, index=True),
    Column("body", Text, nullable=False),
)

followups = Table(
    "tether_followups",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, default="open"),
)

# An approver's edit next to the model's original: labelled data for evaluation.
feedback = Table(
    "tether_feedback",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("approver", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("original", Text, nullable=False),
    Column("edited", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# What an HTTP source last answered, for conditional requests, and its document's version.
fetched = Table(
    "tether_fetched",
    metadata,
    Column("domain", String(32), primary_key=True),
    Column("url", String(2000), primary_key=True),
    Column("etag", String(500)),
    Column("last_modified", String(100)),
    Column("content_hash", String(64), nullable=False),
    Column("version", Integer, nullable=False),
)

# Feedback that arrives after the outcome, attached to it by request id.
later_feedback = Table(
    "tether_later_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("at", DateTime(timezone=True), nullable=False),
    # The reporter whose signature the worker verified (revision 0009); NULL: unverified,
    # kept on the record and counted by nothing that learns.
    Column("vouched_by", String(200)),
    # The key its signature was made with: after a key is compromised, what it vouched for.
    Column("vouched_key", String(16)),
)

# Live evaluation: the scores of each sampled outcome.
evaluations = Table(
    "tether_evaluations",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("scores", Text, nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
)

# Evaluation datasets carved from failure history: named, versioned, each case one row.
datasets = Table(
    "tether_datasets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("cases", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
dataset_cases = Table(
    "tether_dataset_cases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("request_id", String(128), nullable=False),
    Column("body", Text, nullable=False),
)

index_refreshes = Table(
    "tether_index_refreshes",
    metadata,
    Column("domain", String(32), primary_key=True),
    Column("source", String(200), primary_key=True),
    Column("refreshed_at", DateTime(timezone=True), nullable=False),
    Column("documents", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
)


# Per-subject totals over a window (DomainPack.tallies): each request's share, held while it
# is open, then kept with what it acted on (or voided).
tallies = Table(
    "tether_tallies",
    metadata,
    Column("domain", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("subject", String(128), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("state", String(8), nullable=False),  # held, acted, void
    Column("at", DateTime(timezone=True), nullable=False),
    # The subject's hold count when first held: the sequence holds really happened in.
    Column("seq", BigInteger, nullable=False),
)
# One row per subject, updated by every hold: concurrent holds for one subject wait for each
# other (a row lock on PostgreSQL, the writer lock on SQLite), so each sees the others.
tally_locks = Table(
    "tether_tally_locks",
    metadata,
    Column("domain", String(32), primary_key=True),
    Column("subject", String(128), primary_key=True),
    Column("holds", BigInteger, nullable=False),
)
# Proposals kept for reuse (tether/reuse.py): the newest per key and scope (revision 0003).
proposals = Table(
    "tether_proposal_reuse",
    metadata,
    Column("domain", String(32), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("scope", String(128), primary_key=True),  # reuse.ANY_SUBJECT or a subject
    Column("request_id", String(128), nullable=False, index=True),
    Column("body", Text, nullable=False),  # the ReuseEntry
    Column("at", DateTime(timezone=True), nullable=False),
)
# What a live candidate decided on a live request's facts (tether candidate status).
shadow_decisions = Table(
    "tether_shadow_decisions",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("candidate", String(64), primary_key=True),
    Column("domain", String(32), nullable=False, index=True),
    Column("body", Text, nullable=False),  # the ShadowDecision
    Column("at", DateTime(timezone=True), nullable=False),
)
# What a live run gave a candidate's own run when it started it (activities/shadowstart.py):
# that run's decision is kept only on this input. Revision 0008.
shadow_starts = Table(
    "tether_shadow_starts",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("candidate", String(64), primary_key=True),
    Column("input_sha256", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
# What the incident timeline needs and nothing else keeps (tether/incident.py RECORDED): a
# worker's circuit moves, an evaluation run's alarms. Revision 0005.
events = Table(
    "tether_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("domain", String(32)),  # null: every domain's (a worker's model circuit)
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("summary", Text, nullable=False),
    Column("detail", Text, nullable=False),  # JSON
    # Who recorded it: a worker (host:pid), an evaluation run (workflow and run id).
    Column("source", String(200), nullable=False, index=True),
)


# The conservative overlay (tether/overlay.py) of a domain, or of one intent of it: switched on
# by an evaluation run whose budget burns fast (or by a person), off by a run after the
# recovery window (or by a person). Rows stay when cleared: who, when, why and on what
# evidence. Revision 0006.
overlays = Table(
    "tether_overlays",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(32), nullable=False, index=True),
    Column("intent", String(64)),  # null: the whole domain
    # The scope (overlay.scope) while on, null once cleared: at most one on per scope.
    Column("active_scope", String(100), unique=True, index=True),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("set_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text),  # BurnEvidence as JSON; null for a person's
    Column("last_burning_at", DateTime(timezone=True)),
    Column("cleared_at", DateTime(timezone=True)),
    Column("cleared_by", String(200)),
    Column("clear_reason", Text),
)


class Store:
    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        upgrade(self.engine)  # a version read when at head already

    def record_outcome(self, outcome: Outcome) -> None:
        """Idempotent by request id: a retried activity rewrites the same row."""
        row = {
            "request_id": outcome.request_id,
            "domain": outcome.domain,
            "workflow_id": outcome.workflow_id,
            "action": outcome.decision.action.value,
            "mode": outcome.mode.value,
            "intent": outcome.intent,
            "policy_version": outcome.decision.policy_version,
            "finished_at": outcome.finished_at,
            "body": outcome.model_dump_json(),
        }
        with self.engine.begin() as conn:
            conn.execute(outcomes.delete().where(outcomes.c.request_id == outcome.request_id))
            conn.execute(outcomes.insert().values(**row))
            conn.execute(feedback.delete().where(feedback.c.request_id == outcome.request_id))
            for seq, edit in enumerate(outcome.edits):
                conn.execute(
                    feedback.insert().values(
                        request_id=outcome.request_id,
                        seq=seq,
                        approver=edit.approver,
                        reason=edit.reason,
                        original=edit.original.model_dump_json(),
                        edited=edit.edited.model_dump_json(),
                        at=edit.at,
                    )
                )
            self._settle(conn, outcome)
            self._keep_proposal(conn, outcome)
            if outcome.followup_required:
                conn.execute(followups.delete().where(followups.c.request_id == outcome.request_id))
                conn.execute(
                    followups.insert().values(
                        request_id=outcome.request_id,
                        reason="; ".join(outcome.decision.codes()) or outcome.mode.value,
                        created_at=datetime.now(UTC),
                        status="open",
                    )
                )

    @staticmethod
    def _keep_proposal(conn: Connection, outcome: Outcome) -> None:
        """Keep a proposal that stood for the next matching request; forget a reused one a
        person turned down (it stood once, on evidence a person now reads otherwise)."""
        if outcome.reused_from is not None and any(r.verdict != "approve" for r in outcome.reviews):
            conn.execute(proposals.delete().where(proposals.c.request_id == outcome.reused_from))
        entry = reuse.keepable(outcome, outcome.reuse_key) if outcome.reuse_key else None
        if entry is None:
            return
        mine = (
            (proposals.c.domain == entry.domain)
            & (proposals.c.key == entry.key)
            & (proposals.c.scope == entry.scope)
        )
        conn.execute(proposals.delete().where(mine))
        conn.execute(
            proposals.insert().values(
                domain=entry.domain,
                key=entry.key,
                scope=entry.scope,
                request_id=entry.request_id,
                body=entry.model_dump_json(),
                at=outcome.finished_at,
            )
        )

    def reusable(self, query: ReuseQuery, now: datetime) -> tuple[Reused | None, str]:
        """The proposal ``query`` may reuse, and why (hit, miss, expired, or what changed):
        the subject's own entry first, then one any subject may take; newer than
        ``query.max_age`` and standing on the evidence as it is now."""
        scopes = [query.subject, reuse.ANY_SUBJECT]
        found = select(proposals.c.scope, proposals.c.body, proposals.c.at).where(
            (proposals.c.domain == query.domain)
            & (proposals.c.key == query.key)
            & proposals.c.scope.in_(scopes)
        )
        with self.engine.connect() as conn:
            rows = sorted(conn.execute(found), key=lambda r: scopes.index(r.scope))
        why = "miss"
        for row in rows:
            if now - utc(row.at) > query.max_age:
                why = "expired"
                continue
            entry = reuse.ReuseEntry.model_validate_json(row.body)
            changed = reuse.stale(entry, query.evidence)
            if changed is None:
                return entry.reused(), "hit"
            why = changed
        return None, why

    def record_shadow(self, decision: ShadowDecision) -> bool:
        """Idempotent by (request, candidate): a retried activity rewrites the same row. False
        (and nothing written) when another run recorded that row (``recorded_by``)."""
        mine = (shadow_decisions.c.request_id == decision.request_id) & (
            shadow_decisions.c.candidate == decision.candidate
        )
        with self.engine.begin() as conn:
            found = conn.execute(select(shadow_decisions.c.body).where(mine)).scalar_one_or_none()
            if found is not None:
                before = ShadowDecision.model_validate_json(found).recorded_by
                if before is not None and before != decision.recorded_by:
                    return False
            conn.execute(shadow_decisions.delete().where(mine))
            conn.execute(
                shadow_decisions.insert().values(
                    request_id=decision.request_id,
                    candidate=decision.candidate,
                    domain=decision.domain,
                    body=decision.model_dump_json(),
                    at=decision.at,
                )
            )
        return True

    def expect_shadow(self, request_id: str, candidate: str, digest: str, at: datetime) -> None:
        """Write down the input a live run gives the candidate's own run; the first one
        written stands (a retried start writes the same; the live run gives one input)."""
        row = {"request_id": request_id, "candidate": candidate, "input_sha256": digest, "at": at}
        try:
            with self.engine.begin() as conn:
                conn.execute(shadow_starts.insert().values(**row))
        except IntegrityError:
            pass  # written by an earlier attempt: that one stands

    def expected_shadow(self, request_id: str, candidate: str) -> str | None:
        """The digest of the input the live run gave the candidate's own run, if it started it."""
        query = select(shadow_starts.c.input_sha256).where(
            (shadow_starts.c.request_id == request_id) & (shadow_starts.c.candidate == candidate)
        )
        with self.engine.connect() as conn:
            found: str | None = conn.execute(query).scalar_one_or_none()
            return found

    def shadow_decisions(self, domain: str, candidate: str) -> list[ShadowDecision]:
        query = (
            select(shadow_decisions.c.body)
            .where(
                (shadow_decisions.c.domain == domain) & (shadow_decisions.c.candidate == candidate)
            )
            .order_by(shadow_decisions.c.at)
        )
        with self.engine.connect() as conn:
            return [ShadowDecision.model_validate_json(r.body) for r in conn.execute(query)]

    def forget_proposals(self, request_id: str) -> int:
        with self.engine.begin() as conn:
            gone = conn.execute(proposals.delete().where(proposals.c.request_id == request_id))
        return gone.rowcount or 0

    @staticmethod
    def _settle(conn: Connection, outcome: Outcome) -> None:
        """The request's holds become what it acted on, or nothing."""
        mine = (tallies.c.domain == outcome.domain) & (tallies.c.request_id == outcome.request_id)
        for name, amount in outcome.tallied.items():
            conn.execute(
                update(tallies)
                .where(mine & (tallies.c.name == name))
                .values(amount=amount, state="acted" if amount else "void")
            )
        left = tallies.c.name.not_in(list(outcome.tallied)) if outcome.tallied else True
        conn.execute(update(tallies).where(mine & left).values(state="void"))

    def hold_tally(self, hold: TallyHold, now: datetime) -> int:
        """Hold ``hold.amount`` for this request; what the subject's other requests add up to
        over the window: those that acted, and those held before this one (a request is
        judged against what came before it, never against one that came after)."""
        subject = (tally_locks.c.domain == hold.domain) & (tally_locks.c.subject == hold.subject)
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(
                        tally_locks.insert().values(
                            domain=hold.domain, subject=hold.subject, holds=0
                        )
                    )
            except IntegrityError:
                pass  # the subject's row exists
            conn.execute(update(tally_locks).where(subject).values(holds=tally_locks.c.holds + 1))
            turn = conn.execute(select(tally_locks.c.holds).where(subject)).scalar_one()
            mine = (
                (tallies.c.domain == hold.domain)
                & (tallies.c.name == hold.name)
                & (tallies.c.request_id == hold.request_id)
            )
            seq = conn.execute(select(tallies.c.seq).where(mine)).scalar_one_or_none()
            if seq is None:  # first held now; held again (after an approval) in its place
                seq = turn
                conn.execute(
                    tallies.insert().values(
                        domain=hold.domain,
                        name=hold.name,
                        request_id=hold.request_id,
                        subject=hold.subject,
                        amount=hold.amount,
                        state="held",
                        at=now,
                        seq=seq,
                    )
                )
            else:
                conn.execute(update(tallies).where(mine).values(amount=hold.amount, state="held"))
            earlier = tallies.c.seq < seq  # the lock's sequence, not the clocks'
            others = conn.execute(
                select(func.coalesce(func.sum(tallies.c.amount), 0)).where(
                    tallies.c.domain == hold.domain,
                    tallies.c.name == hold.name,
                    tallies.c.subject == hold.subject,
                    tallies.c.request_id != hold.request_id,
                    tallies.c.at >= now - hold.window,
                    (tallies.c.state == "acted") | ((tallies.c.state == "held") & earlier),
                )
            ).scalar_one()
        return int(others)

    def resolved_at(self, request_id: str) -> datetime | None:
        """When the request's outcome was recorded (its finish), or None: none is."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(outcomes.c.finished_at).where(outcomes.c.request_id == request_id)
            ).scalar_one_or_none()
        return utc(found) if found is not None else None

    def outcome(self, request_id: str) -> Outcome | None:
        with self.engine.connect() as conn:
            body = conn.execute(
                select(outcomes.c.body).where(outcomes.c.request_id == request_id)
            ).scalar_one_or_none()
        return Outcome.model_validate_json(body) if body else None

    def outcomes_between(
        self, start: datetime, end: datetime, *, domain: str | None = None
    ) -> list[Outcome]:
        """Outcomes that finished in [start, end), oldest first: a window for drift. All
        domains', or one's."""
        query = (
            select(outcomes.c.body)
            .where(outcomes.c.finished_at >= start, outcomes.c.finished_at < end)
            .order_by(outcomes.c.finished_at, outcomes.c.request_id)
        )
        if domain is not None:
            query = query.where(outcomes.c.domain == domain)
        with self.engine.connect() as conn:
            return [Outcome.model_validate_json(b) for b in conn.execute(query).scalars()]

    def latest_before(self, at: datetime, *, domain: str | None = None) -> list[Outcome]:
        """Each domain's last outcome finished before ``at`` (or one domain's): what a
        window's first outcome is compared with."""
        last = select(outcomes.c.domain, func.max(outcomes.c.finished_at).label("at")).where(
            outcomes.c.finished_at < at
        )
        if domain is not None:
            last = last.where(outcomes.c.domain == domain)
        newest = last.group_by(outcomes.c.domain).subquery()
        query = (
            select(outcomes.c.body)
            .join(
                newest,
                (outcomes.c.domain == newest.c.domain) & (outcomes.c.finished_at == newest.c.at),
            )
            .order_by(outcomes.c.domain, outcomes.c.request_id)
        )
        with self.engine.connect() as conn:
            return [Outcome.model_validate_json(b) for b in conn.execute(query).scalars()]

    def record_event(self, event: Event) -> None:
        with self.engine.begin() as conn:
            conn.execute(events.insert().values(**_event_row(event, event.source)))

    def replace_events(self, source: str, recorded: Sequence[Event]) -> None:
        """``source``'s events are ``recorded`` from now on: a retried evaluation activity
        writes its alarms again, not twice."""
        with self.engine.begin() as conn:
            conn.execute(events.delete().where(events.c.source == source))
            for event in recorded:
                conn.execute(events.insert().values(**_event_row(event, source)))

    def events_between(
        self, start: datetime, end: datetime, *, domain: str | None = None
    ) -> list[Event]:
        """Recorded events in [start, end), oldest first: all domains', or one domain's and
        those of every domain."""
        query = (
            select(events)
            .where(events.c.at >= start, events.c.at < end)
            .order_by(events.c.at, events.c.id)
        )
        if domain is not None:
            query = query.where((events.c.domain == domain) | events.c.domain.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Event(
                at=utc(r.at),
                kind=r.kind,
                domain=r.domain,
                summary=r.summary,
                detail=json.loads(r.detail),
                source=r.source,
            )
            for r in rows
        ]

    def feedback(self, request_id: str | None = None) -> list[dict[str, Any]]:
        """Edits as (original, edited) pairs, newest last."""
        query = select(feedback).order_by(feedback.c.at, feedback.c.seq)
        if request_id is not None:
            query = query.where(feedback.c.request_id == request_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def attach_feedback(
        self, item: LaterFeedback, at: datetime, *, vouched_by: str | None = None
    ) -> bool:
        """Attach to its outcome; False when no outcome has that request id. Idempotent: the
        same feedback sent twice is kept once, and a requester's voice (a complaint, a
        confirmation) once per request, source and reporter whatever its words, so that
        saying it fifty times counts once. When it happened is the caller's, within reason:
        not before the outcome, not after ``at`` (now). ``vouched_by``: the reporter whose
        signature was verified (the caller's to check); None, it is kept unverified."""
        said = {"detail"} if item.kind in VOICE_FEEDBACK else set()
        kept = item.model_copy(update={"reporter": vouched_by})  # signed again, the same
        digest = hashlib.sha256(
            kept.model_dump_json(exclude={"at", "signature", *said}).encode()
        ).hexdigest()
        with self.engine.begin() as conn:
            known = conn.execute(
                select(outcomes.c.finished_at).where(outcomes.c.request_id == item.request_id)
            ).first()
            if known is None:
                return False
            happened = min(max(utc(item.at or at), utc(known.finished_at)), at)
            seen = conn.execute(
                select(later_feedback.c.id).where(later_feedback.c.digest == digest)
            ).first()
            if item.kind in WRONG_FEEDBACK:  # its proposal is never reused again
                conn.execute(proposals.delete().where(proposals.c.request_id == item.request_id))
            if seen is None:
                conn.execute(
                    later_feedback.insert().values(
                        request_id=item.request_id,
                        kind=item.kind,
                        detail=item.detail,
                        source=item.source,
                        digest=digest,
                        at=happened,
                        vouched_by=vouched_by,
                        vouched_key=item.signature.key_id
                        if vouched_by and item.signature
                        else None,
                    )
                )
        return True

    def later(self, request_id: str, *, vouched: bool = False) -> list[dict[str, Any]]:
        """The feedback attached to a request's outcome, oldest first; ``vouched``: only
        what a reporter vouched for (what evaluation, datasets, calibration and candidates
        count: ``heard``)."""
        query = (
            select(later_feedback)
            .where(later_feedback.c.request_id == request_id)
            .order_by(later_feedback.c.at, later_feedback.c.id)
        )
        if vouched:
            query = query.where(later_feedback.c.vouched_by.is_not(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def heard(self, request_id: str) -> list[dict[str, Any]]:
        """What the learning loop counts of a request's later feedback: what a reporter in
        its domain's directory vouched for. Unverified feedback is anyone's word."""
        return self.later(request_id, vouched=True)

    def record_scores(self, scores: dict[str, dict[str, float]], at: datetime) -> None:
        """Idempotent by request id: a re-evaluation replaces the earlier scores."""
        with self.engine.begin() as conn:
            for request_id, values in scores.items():
                conn.execute(evaluations.delete().where(evaluations.c.request_id == request_id))
                conn.execute(
                    evaluations.insert().values(
                        request_id=request_id, scores=json.dumps(values), evaluated_at=at
                    )
                )

    def scores(self, request_id: str) -> dict[str, float] | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(evaluations.c.scores).where(evaluations.c.request_id == request_id)
            ).scalar_one_or_none()
        return dict(json.loads(found)) if found else None

    def save_dataset(self, name: str, cases: Sequence[Case], at: datetime) -> int:
        """Store ``cases`` as the next version of ``name``, unless they are the latest already;
        returns the version that holds them."""
        content = digest(cases)
        with self.engine.begin() as conn:
            latest = conn.execute(
                select(datasets.c.version, datasets.c.digest)
                .where(datasets.c.name == name)
                .order_by(datasets.c.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.digest == content:
                return int(latest.version)
            version = (latest.version if latest else 0) + 1
            conn.execute(
                datasets.insert().values(
                    name=name, version=version, digest=content, cases=len(cases), created_at=at
                )
            )
            for seq, case in enumerate(cases):
                conn.execute(
                    dataset_cases.insert().values(
                        name=name,
                        version=version,
                        seq=seq,
                        request_id=case.request_id,
                        body=case.model_dump_json(),
                    )
                )
        return version

    def datasets(self) -> list[dict[str, Any]]:
        query = select(datasets).order_by(datasets.c.name, datasets.c.version)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def dataset(self, name: str, version: int | None = None) -> tuple[int, list[Case]]:
        """(version, cases) of ``name``: the latest version unless one is given."""
        with self.engine.connect() as conn:
            if version is None:
                version = conn.execute(
                    select(datasets.c.version)
                    .where(datasets.c.name == name)
                    .order_by(datasets.c.version.desc())
                    .limit(1)
                ).scalar_one_or_none()
            if version is None:
                raise KeyError(f"no dataset {name!r}")
            bodies = conn.execute(
                select(dataset_cases.c.body)
                .where(dataset_cases.c.name == name, dataset_cases.c.version == version)
                .order_by(dataset_cases.c.seq)
            ).scalars()
            return version, [Case.model_validate_json(b) for b in bodies]

    def open_followups(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(followups.c.request_id, followups.c.reason).where(
                    followups.c.status == "open"
                )
            ).all()
        return [(r[0], r[1]) for r in rows]

    def record_refresh(
        self, domain: str, source: str, refreshed_at: datetime, documents: int, chunks: int
    ) -> None:
        row = (index_refreshes.c.domain == domain) & (index_refreshes.c.source == source)
        with self.engine.begin() as conn:
            conn.execute(index_refreshes.delete().where(row))
            conn.execute(
                index_refreshes.insert().values(
                    domain=domain,
                    source=source,
                    refreshed_at=refreshed_at,
                    documents=documents,
                    chunks=chunks,
                )
            )

    def fetched(self, domain: str, url: str) -> dict[str, Any] | None:
        row = (fetched.c.domain == domain) & (fetched.c.url == url)
        with self.engine.connect() as conn:
            found = conn.execute(select(fetched).where(row)).one_or_none()
        return dict(found._mapping) if found else None

    def record_fetch(
        self,
        domain: str,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        content_hash: str,
        version: int,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                fetched.delete().where((fetched.c.domain == domain) & (fetched.c.url == url))
            )
            conn.execute(
                fetched.insert().values(
                    domain=domain,
                    url=url,
                    etag=etag,
                    last_modified=last_modified,
                    content_hash=content_hash,
                    version=version,
                )
            )

    def forget_fetch(self, domain: str, url: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                fetched.delete().where((fetched.c.domain == domain) & (fetched.c.url == url))
            )

    def refreshes(self, domain: str) -> dict[str, datetime]:
        """Each of the domain's sources' last successful refresh."""
        query = select(index_refreshes.c.source, index_refreshes.c.refreshed_at).where(
            index_refreshes.c.domain == domain
        )
        with self.engine.connect() as conn:
            return {source: utc(at) for source, at in conn.execute(query).all()}

    # --- the conservative overlay ------------------------------------------------------

    def overlays(
        self,
        domain: str | None = None,
        *,
        active: bool = True,
        cleared_since: datetime | None = None,
    ) -> list[Overlay]:
        """The overlays on now (``active``), or also those cleared (since ``cleared_since``,
        if given); oldest first."""
        query = select(overlays).order_by(overlays.c.set_at, overlays.c.id)
        if domain is not None:
            query = query.where(overlays.c.domain == domain)
        on = overlays.c.active_scope.is_not(None)
        if active:
            query = query.where(on)
        elif cleared_since is not None:
            query = query.where(on | (overlays.c.cleared_at >= cleared_since.astimezone(UTC)))
        with self.engine.connect() as conn:
            return [_overlay(r._mapping) for r in conn.execute(query)]

    def overlay_for(self, domain: str, intent: str | None) -> Overlay | None:
        """The overlay on now that governs ``intent`` in ``domain``: the whole domain's, else
        the intent's own."""
        scopes = [scope(domain, None)] + ([scope(domain, intent)] if intent else [])
        query = select(overlays).where(overlays.c.active_scope.in_(scopes))
        with self.engine.connect() as conn:
            found = [_overlay(r._mapping) for r in conn.execute(query)]
        return governing(found, domain, intent)

    def set_overlay(
        self,
        domain: str,
        intent: str | None,
        *,
        by: str,
        reason: str,
        at: datetime,
        evidence: BurnEvidence | None = None,
    ) -> Overlay | None:
        """Switch the scope's overlay on; None when it is on already (never set twice)."""
        at = at.astimezone(UTC)  # SQLite keeps the digits, not the zone
        row = {
            "domain": domain,
            "intent": intent,
            "active_scope": scope(domain, intent),
            "set_at": at,
            "set_by": by,
            "reason": reason,
            "evidence": evidence.model_dump_json() if evidence else None,
            "last_burning_at": at if evidence else None,
        }
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    made = conn.execute(overlays.insert().values(**row))
            except IntegrityError:
                return None
            key = made.inserted_primary_key
            assert key is not None
            found = conn.execute(select(overlays).where(overlays.c.id == key[0])).one()
        return _overlay(found._mapping)

    def overlays_burning(self, ids: Sequence[int], at: datetime) -> None:
        """The overlays' scopes still burn at ``at``: their recovery starts again."""
        if not ids:
            return
        at = at.astimezone(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                update(overlays)
                .where(overlays.c.id.in_(list(ids)), overlays.c.active_scope.is_not(None))
                .values(last_burning_at=at)
            )

    def clear_overlay(
        self, overlay_id: int, *, by: str, reason: str, at: datetime
    ) -> Overlay | None:
        """Switch overlay ``overlay_id`` off; None when it is off already."""
        mine = (overlays.c.id == overlay_id) & overlays.c.active_scope.is_not(None)
        at = at.astimezone(UTC)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(overlays)
                .where(mine)
                .values(active_scope=None, cleared_at=at, cleared_by=by, clear_reason=reason)
            )
            if not done.rowcount:
                return None
            found = conn.execute(select(overlays).where(overlays.c.id == overlay_id)).one()
        return _overlay(found._mapping)

    def close(self) -> None:
        self.engine.dispose()


def _event_row(event: Event, source: str) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "domain": event.domain,
        "at": event.at.astimezone(UTC),  # SQLite keeps the digits, not the zone
        "summary": event.summary,
        "detail": json.dumps(event.detail, ensure_ascii=False),
        "source": source[:200],
    }


def _overlay(row: Any) -> Overlay:
    def at(value: datetime | None) -> datetime | None:
        return utc(value) if value is not None else None

    return Overlay(
        id=row["id"],
        domain=row["domain"],
        intent=row["intent"],
        set_at=utc(row["set_at"]),
        set_by=row["set_by"],
        reason=row["reason"],
        evidence=BurnEvidence.model_validate_json(row["evidence"]) if row["evidence"] else None,
        last_burning_at=at(row["last_burning_at"]),
        cleared_at=at(row["cleared_at"]),
        cleared_by=row["cleared_by"],
        clear_reason=row["clear_reason"],
    )
