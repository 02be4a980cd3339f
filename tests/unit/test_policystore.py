"""Worker-owned policy: immutable versions, an audited activation log, registration at a
worker's start, and diffs (on SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy

from tests.unit.builders import staffed
from tether.config import Settings
from tether.domains.itops import PACK as ITOPS
from tether.domains.support import PACK
from tether.policystore import (
    ADDED_LATER,
    APPROVER_ADDED_LATER,
    NoSuchVersion,
    PolicyConflict,
    PolicyStore,
    content_hash,
    diff,
    versions,
)


@pytest.fixture
def store(database_url: str) -> PolicyStore:
    return PolicyStore(database_url)


def test_a_version_is_stored_once_and_never_changes(store: PolicyStore) -> None:
    first = store.add("support", PACK.policy, by="ops")
    assert first.sha256 == content_hash(PACK.policy)
    assert store.add("support", PACK.policy, by="someone else").created_by == "ops"  # no-op
    looser = PACK.policy.model_copy(update={"min_auto_confidence": 0.1})
    with pytest.raises(PolicyConflict, match="new version"):
        store.add("support", looser, by="ops")
    assert store.get("support", PACK.policy.version).policy == PACK.policy
    with pytest.raises(NoSuchVersion):
        store.get("support", "nope")


def test_activation_is_on_the_record(store: PolicyStore) -> None:
    assert store.active("support") is None
    store.add("support", PACK.policy, by="ops")
    strict = PACK.policy.model_copy(update={"version": "strict/1", "min_auto_confidence": 0.9})
    store.add("support", strict, by="ops")
    store.activate("support", PACK.policy.version, by="alice", reason="launch")
    store.activate("support", "strict/1", by="bob", reason="incident 42")
    active = store.active("support")
    assert active is not None and active.version == "strict/1"
    assert active.policy.min_auto_confidence == 0.9 and active.sha256 == content_hash(strict)
    log = store.activations("support")
    assert [(a.version, a.by, a.reason, a.previous) for a in log] == [
        (PACK.policy.version, "alice", "launch", None),
        ("strict/1", "bob", "incident 42", PACK.policy.version),
    ]
    assert store.active("itops") is None  # per domain
    with pytest.raises(NoSuchVersion):
        store.activate("support", "never-added", by="eve", reason="")


def test_content_changed_behind_the_stores_back_governs_nothing(store: PolicyStore) -> None:
    store.add("support", PACK.policy, by="ops")
    store.activate("support", PACK.policy.version, by="ops", reason="")
    with store.engine.begin() as conn:
        conn.execute(
            sqlalchemy.text(
                "UPDATE tether_policy_versions SET body = replace(body, '0.55', '0.01')"
            )
        )
    with pytest.raises(PolicyConflict, match="does not match its hash"):
        store.active("support")


def test_a_worker_registers_its_configuration_and_activates_only_the_first(
    store: PolicyStore,
) -> None:
    first = store.register(PACK, Settings(), by="worker")
    assert store.active("support").version == first.version  # type: ignore[union-attr]
    # Another configuration under the same version name: stored beside it, not activated.
    lenient = Settings(policies={"support": {"min_auto_confidence": 0.2}})
    second = store.register(PACK, lenient, by="worker")
    assert second.version.startswith(f"{PACK.policy.version}+") and second.sha256 != first.sha256
    assert store.active("support").version == first.version  # type: ignore[union-attr]
    assert store.register(PACK, lenient, by="worker").version == second.version  # idempotent
    store.register(ITOPS, Settings(), by="worker")
    assert len(store.activations("support")) == 1 and len(store.activations("itops")) == 1


def test_a_diff_names_every_changed_setting() -> None:
    changed = PACK.policy.merged(
        {
            "min_grounding": 0.5,
            "rules": {"auto_limit_cents": 9_000},
            "approvers": {"a@x": ["support_lead"]},
        }
    )
    lines = diff(PACK.policy, changed)
    assert "min_grounding: 0.75 -> 0.5" in lines
    assert any(line.startswith("rules.auto_limit_cents: ") for line in lines)
    assert 'approvers.a@x.roles: (none) -> ["support_lead"]' in lines
    assert not any(line.startswith(("approvers: ", "approvers.a@x: ")) for line in lines), lines
    assert diff(PACK.policy, PACK.policy) == []


def test_a_version_stored_before_a_field_existed_keeps_its_hash(store: PolicyStore) -> None:
    """A field PolicyConfig (or a directory's entry) gained later (ADDED_LATER) is left out
    of the hash at its default: the version reads back, and registering it again adds
    nothing."""
    policy = staffed(PACK.policy, PACK.demo_approvers)
    old = policy.model_dump(mode="json")
    for name in ADDED_LATER:
        old.pop(name, None)
    for entry in old["approvers"].values():
        for name in APPROVER_ADDED_LATER:
            entry.pop(name)
    body = json.dumps(old, sort_keys=True, separators=(",", ":"))
    with store.engine.begin() as conn:
        conn.execute(
            versions.insert().values(
                domain="support",
                version=policy.version,
                sha256=hashlib.sha256(body.encode()).hexdigest(),
                body=body,
                created_at=datetime.now(UTC),
                created_by="an older release",
                note="",
            )
        )
    assert store.get("support", policy.version).policy == policy
    assert store.add("support", policy, by="ops").created_by == "an older release"
    hour = timedelta(hours=1)
    reusing = PACK.policy.model_copy(update={"version": "reuse/1", "proposal_reuse": hour})
    assert store.add("support", reusing, by="ops").sha256 != content_hash(PACK.policy)
