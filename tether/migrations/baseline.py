"""Revision 0001's schema, frozen: the tables the stores' ``create_all`` made before Tether's
schema was migrated. Never edit it: a change to a table is a new revision. Also what a
database made by that ``create_all`` is checked against before it is stamped 0001."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)


def schema() -> MetaData:
    metadata = MetaData()
    Table(
        "tether_outcomes",
        metadata,
        Column("request_id", String(128), primary_key=True),
        Column("domain", String(32), nullable=False, index=True),
        Column("workflow_id", String(200), nullable=False),
        Column("action", String(32), nullable=False),
        Column("mode", String(32), nullable=False),
        Column("intent", String(64)),
        Column("policy_version", String(64), nullable=False),
        Column("finished_at", DateTime(timezone=True), nullable=False),
        Column("body", Text, nullable=False),
    )
    Table(
        "tether_followups",
        metadata,
        Column("request_id", String(128), primary_key=True),
        Column("reason", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("status", String(16), nullable=False),
    )
    Table(
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
    Table(
        "tether_fetched",
        metadata,
        Column("domain", String(32), primary_key=True),
        Column("url", String(2000), primary_key=True),
        Column("etag", String(500)),
        Column("last_modified", String(100)),
        Column("content_hash", String(64), nullable=False),
        Column("version", Integer, nullable=False),
    )
    Table(
        "tether_later_feedback",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("request_id", String(128), nullable=False, index=True),
        Column("kind", String(32), nullable=False),
        Column("detail", Text, nullable=False),
        Column("source", String(64), nullable=False),
        Column("digest", String(64), nullable=False, unique=True),
        Column("at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "tether_evaluations",
        metadata,
        Column("request_id", String(128), primary_key=True),
        Column("scores", Text, nullable=False),
        Column("evaluated_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "tether_datasets",
        metadata,
        Column("name", String(64), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("digest", String(64), nullable=False),
        Column("cases", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "tether_dataset_cases",
        metadata,
        Column("name", String(64), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("seq", Integer, primary_key=True),
        Column("request_id", String(128), nullable=False),
        Column("body", Text, nullable=False),
    )
    Table(
        "tether_index_refreshes",
        metadata,
        Column("domain", String(32), primary_key=True),
        Column("source", String(200), primary_key=True),
        Column("refreshed_at", DateTime(timezone=True), nullable=False),
        Column("documents", Integer, nullable=False),
        Column("chunks", Integer, nullable=False),
    )
    Table(
        "tether_tallies",
        metadata,
        Column("domain", String(32), primary_key=True),
        Column("name", String(64), primary_key=True),
        Column("request_id", String(128), primary_key=True),
        Column("subject", String(128), nullable=False, index=True),
        Column("amount", BigInteger, nullable=False),
        Column("state", String(8), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("seq", BigInteger, nullable=False),
    )
    Table(
        "tether_tally_locks",
        metadata,
        Column("domain", String(32), primary_key=True),
        Column("subject", String(128), primary_key=True),
        Column("holds", BigInteger, nullable=False),
    )
    Table(
        "tether_ledger",
        metadata,
        Column("key", String(300), primary_key=True),
        Column("tool", String(64), nullable=False),
        Column("request_id", String(128), nullable=False),
        Column("args_hash", String(64), nullable=False),
        Column("status", String(16), nullable=False),
        Column("lease_until", DateTime(timezone=True), nullable=False),
        Column("claims", Integer, nullable=False),
        Column("result", Text),
        Column("claimed_at", DateTime(timezone=True), nullable=False),
        Column("settled_at", DateTime(timezone=True)),
    )
    Table(
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
    Table(
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
    return metadata
