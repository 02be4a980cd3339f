"""The stores' schema migrations (tether/migrations) on SQLite and PostgreSQL: from nothing, from
a database the stores' create_all made before migrations (its rows kept), refused when older,
many processes at once, `tether db`, and the models agreeing with the revisions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from tests.unit.test_store import outcome
from tether import ledger as ledger_tables
from tether import migrations
from tether import policystore as policy_tables
from tether import store as store_tables
from tether.cli.apps import app
from tether.db import make_engine
from tether.domains.support import PACK
from tether.ledger import Ledger
from tether.migrations.baseline import schema
from tether.policystore import PolicyStore, canonical, content_hash
from tether.store import Store

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    made = make_engine(database_url)
    yield made
    made.dispose()


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def differences(engine: sa.Engine) -> list[object]:
    """What Alembic's autogenerate would write to bring the database to the stores' models."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, migrations.target_metadata()))


def made_by_create_all(engine: sa.Engine) -> None:
    """A database as the stores left it before migrations: their create_all, rows in it."""
    schema().create_all(engine)
    record = outcome("r-1", followup=True)
    with engine.begin() as conn:
        conn.execute(
            store_tables.outcomes.insert().values(
                request_id="r-1",
                domain="support",
                workflow_id=record.workflow_id,
                action=record.decision.action.value,
                mode=record.mode.value,
                intent=record.intent,
                policy_version="p/1",
                finished_at=record.finished_at,
                body=record.model_dump_json(),
            )
        )
        conn.execute(
            store_tables.followups.insert().values(
                request_id="r-1", reason="amount_exceeds_balance", created_at=NOW, status="open"
            )
        )
        conn.execute(
            store_tables.index_refreshes.insert().values(
                domain="support", source="kb", refreshed_at=NOW, documents=3, chunks=9
            )
        )
        conn.execute(
            ledger_tables.ledger.insert().values(
                key="k1",
                tool="send_reply",
                request_id="r-1",
                args_hash="0" * 64,
                status="settled",
                lease_until=NOW,
                claims=1,
                result='{"done": true}',
                claimed_at=NOW,
                settled_at=NOW,
            )
        )
        conn.execute(
            policy_tables.versions.insert().values(
                domain="support",
                version=PACK.policy.version,
                sha256=content_hash(PACK.policy),
                body=canonical(PACK.policy),
                created_at=NOW,
                created_by="ops",
                note="",
            )
        )
        conn.execute(
            policy_tables.activations.insert().values(
                domain="support",
                version=PACK.policy.version,
                sha256=content_hash(PACK.policy),
                previous=None,
                at=NOW,
                by="ops",
                reason="launch",
            )
        )


def test_upgrade_from_nothing_to_head(database_url: str, engine: sa.Engine) -> None:
    before = migrations.status(database_url)
    assert (before.revision, before.at_head, before.unversioned) == (None, False, False)
    migrations.upgrade(database_url)
    after = migrations.status(database_url)
    assert after.revision == migrations.head() and after.at_head
    assert tables(engine) == set(migrations.target_metadata().tables) | {"alembic_version"}
    migrations.upgrade(database_url)  # at head: nothing to do
    store = Store(database_url)  # so is every store's start
    store.record_outcome(outcome("r-2", followup=False))
    assert store.outcome("r-2") is not None
    store.close()


def test_a_create_all_database_is_stamped_and_upgraded_with_its_rows(
    database_url: str, engine: sa.Engine
) -> None:
    made_by_create_all(engine)
    found = migrations.status(database_url)
    assert (found.revision, found.unversioned) == (None, True)
    store = Store(database_url)  # what a worker's start does
    assert migrations.status(database_url).at_head
    assert "ix_tether_outcomes_finished_at" in {
        i["name"] for i in sa.inspect(engine).get_indexes("tether_outcomes")
    }
    assert store.outcome("r-1") == outcome("r-1", followup=True)
    assert store.open_followups() == [("r-1", "amount_exceeds_balance")]
    assert store.refreshes("support") == {"kb": NOW}
    window = store.outcomes_between(NOW, NOW + timedelta(hours=1), domain="support")
    assert [o.request_id for o in window] == ["r-1"]
    entries = Ledger(database_url).entries("r-1")
    assert [(e["key"], e["status"], e["result"]) for e in entries] == [
        ("k1", "settled", '{"done": true}')
    ]
    active = PolicyStore(database_url).active("support")
    assert active is not None and active.policy == PACK.policy
    store.close()


def test_a_partial_create_all_database_gets_its_missing_tables(
    database_url: str, engine: sa.Engine
) -> None:
    """A ledger alone (a store opened before the others ever were): stamped all the same."""
    schema().tables["tether_ledger"].create(engine)
    migrations.upgrade(database_url)
    assert migrations.status(database_url).at_head
    assert differences(engine) == []


# What each revision after 0001 adds, as Alembic's comparison names it.
LATER = [
    ("add_index", "ix_tether_outcomes_finished_at"),  # 0002
    ("add_table", "tether_proposal_reuse"),  # 0003, and its index:
    ("add_index", "ix_tether_proposal_reuse_request_id"),
    ("add_table", "tether_candidates"),  # 0004, with their indexes
    ("add_index", "ix_tether_candidates_domain"),
    ("add_table", "tether_shadow_decisions"),
    ("add_index", "ix_tether_shadow_decisions_domain"),
    ("add_table", "tether_events"),  # 0005, with its indexes
    ("add_index", "ix_tether_events_at"),
    ("add_index", "ix_tether_events_source"),
    ("add_table", "tether_overlays"),  # 0006, with its indexes
    ("add_index", "ix_tether_overlays_domain"),
    ("add_index", "ix_tether_overlays_active_scope"),
    ("add_index", "uq_tether_candidates_running"),  # 0007
    ("add_table", "tether_shadow_starts"),  # 0008
    ("add_column", "tether_later_feedback.vouched_by"),  # 0009
    ("add_column", "tether_later_feedback.vouched_key"),
]


def named(found: list[object]) -> list[tuple[str, str]]:
    """Each difference as (what, the name it adds): a column's is table.column."""
    out = []
    for d in found:
        kind = d[0]  # type: ignore[index]
        if kind == "add_column":
            out.append((kind, f"{d[2]}.{d[3].name}"))  # type: ignore[index]
        else:
            out.append((kind, d[1].name))  # type: ignore[index]
    return sorted(out)


def test_revision_0001_is_the_schema_create_all_made(database_url: str, engine: sa.Engine) -> None:
    """At 0001, the models differ by what later revisions add, and by nothing else."""
    config = migrations.config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    at_0001 = differences(engine)
    assert named(at_0001) == sorted(LATER)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert tables(engine) == {"alembic_version"}
    schema().create_all(engine)
    made = differences(engine)
    assert named(made) == sorted(LATER)


def test_a_database_older_than_domain_packs_is_refused(
    database_url: str, engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE tether_outcomes (request_id VARCHAR(128) PRIMARY KEY, body TEXT)")
        )
    with pytest.raises(migrations.SchemaRefused, match="predates domain packs"):
        migrations.upgrade(database_url)
    with pytest.raises(migrations.SchemaRefused, match="predates domain packs"):
        Store(database_url)
    assert tables(engine) == {"tether_outcomes"}  # left as it was


def test_a_column_missing_from_0001_is_refused(database_url: str, engine: sa.Engine) -> None:
    old = schema()
    old.remove(old.tables["tether_tallies"])
    sa.Table(
        "tether_tallies", old, sa.Column("domain", sa.String(32)), sa.Column("name", sa.String(64))
    )
    old.create_all(engine)
    with pytest.raises(migrations.SchemaRefused, match="tether_tallies lacks amount, at"):
        migrations.upgrade(database_url)
    assert migrations.status(database_url).revision is None


def test_a_revision_from_a_newer_release_is_refused(database_url: str) -> None:
    migrations.upgrade(database_url)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(migrations.SchemaRefused, match=r"9999.*newer Tether release"):
        migrations.upgrade(database_url)


# Each process imports, says it is ready, and upgrades when told to: all at once.
RACER = """
import sys, time
from pathlib import Path
from tether import migrations
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.002)
migrations.upgrade(url)
"""


@pytest.mark.parametrize("start", ["empty", "create_all"])
def test_concurrent_upgrades_migrate_once(
    database_url: str, engine: sa.Engine, tmp_path: Path, start: str
) -> None:
    if start == "create_all":
        made_by_create_all(engine)
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, database_url, str(tmp_path / f"ready-{n}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(racers) and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()
    results = [r.communicate(timeout=120) for r in racers]
    assert [r.returncode for r in racers] == [0] * len(racers), results
    assert all(err == "" for _, err in results), results
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        assert list(versions) == [migrations.head()]
    assert differences(engine) == []
    if start == "create_all":
        store = Store(database_url)
        assert store.outcome("r-1") == outcome("r-1", followup=True)
        store.close()


def test_the_models_and_the_revisions_agree(database_url: str, engine: sa.Engine) -> None:
    """A column or index added to a store without a revision fails here."""
    migrations.upgrade(database_url)
    assert differences(engine) == []
    # And the comparison would see one: a column the revisions never added.
    ahead = migrations.target_metadata()
    ahead.tables["tether_outcomes"].append_column(sa.Column("extra", sa.Integer))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        found = compare_metadata(context, ahead)
    assert [(d[0], d[3].name) for d in found] == [("add_column", "extra")]


def db_command(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"TETHER_STORE_URL": database_url, "TETHER_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(app, ["db", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_db_current_and_upgrade(database_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    shown = migrations.hidden(database_url)
    head = migrations.head()
    assert db_command(database_url, tmp_path, "current") == (
        1,
        f"{shown}\tnone\tbehind head {head}\n",
        "behind: `tether db upgrade` migrates (workers do at start)\n",
    )
    assert tables(engine) == set()  # current changes nothing
    assert db_command(database_url, tmp_path, "upgrade") == (
        0,
        f"{shown}\t{head}\tupgraded from none\n",
        "",
    )
    assert db_command(database_url, tmp_path, "upgrade") == (
        0,
        f"{shown}\t{head}\tat head already\n",
        "",
    )
    assert db_command(database_url, tmp_path, "current") == (0, f"{shown}\t{head}\tat head\n", "")
    code, out, _ = db_command(database_url, tmp_path, "current", "--json")
    assert (code, json.loads(out)) == (
        0,
        [
            {
                "database": shown,
                "revision": head,
                "head": head,
                "at_head": True,
                "ahead": False,
                "unversioned": False,
            }
        ],
    )


def test_db_commands_on_a_create_all_database(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    made_by_create_all(engine)
    code, out, _ = db_command(database_url, tmp_path, "current")
    assert (code, out.split("\t")[1]) == (1, "unversioned")
    code, out, _ = db_command(database_url, tmp_path, "upgrade")
    assert (code, out.split("\t")[2]) == (0, "upgraded from unversioned\n")
    assert db_command(database_url, tmp_path, "current")[0] == 0


def test_db_upgrade_refuses_a_database_older_than_domain_packs(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE tether_fetched (url VARCHAR(2000) PRIMARY KEY)"))
    code, out, err = db_command(database_url, tmp_path, "upgrade")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "tether_fetched predates domain packs" in err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nosuchdb://somewhere/x", "not a database URL Tether can open"),
        ("not a url", "not a database URL Tether can open"),
        ("postgresql+psycopg://postgres:secret@127.0.0.1:1/test", "cannot use the database"),
    ],
)
def test_bad_database_urls_are_one_line(url: str, says: str, tmp_path: Path) -> None:
    """Through the real entry point, as a script sees it: one line on stderr, exit 2."""
    env = {**os.environ, "TETHER_STORE_URL": url, "TETHER_DATA_DIR": str(tmp_path)}
    for args in (["current"], ["upgrade"]):
        done = subprocess.run(
            [sys.executable, "-m", "tether.cli", "db", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
        assert "secret" not in done.stderr


def test_a_file_locked_past_busy_timeout_waits_for_the_migration_lock(tmp_path: Path) -> None:
    """A process that finds the SQLite file locked longer than busy_timeout (another one
    migrating it on a busy machine) waits for the migration lock rather than failing."""
    import sqlite3
    import threading

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # as a migration's write transaction holds it
    released = threading.Timer(6.0, holder.execute, args=("COMMIT",))  # past busy_timeout (5 s)
    released.start()
    try:
        migrations.upgrade(f"sqlite:///{path}")
    finally:
        released.join()
        holder.close()
    assert migrations.status(f"sqlite:///{path}").at_head
