"""`tether new-domain`, as a newcomer uses it: the command refuses a name or a place it cannot
use (writing nothing), writes a pack whose own generated tests pass against the real worker
wherever the pack lives, and that pack, served by `tether up`, answers `tether ask`. Every
step runs the real command in a process of its own, outside this project's pytest config."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleDescription
from temporalio.contrib.pydantic import pydantic_data_converter

from tether import names
from tether.capacity import Unreadable, scrape
from tether.client import EVALUATION_SCHEDULE, Tether
from tether.config import Settings
from tether.evaluation import EvaluationInput
from tether.stack import free_port, port_free

pytestmark = pytest.mark.integration

NAME = "acme"
READY = "Ctrl-C stops everything."  # what `tether up` prints once its workers run


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without its TETHER_* settings: each command gets its own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    return {**clean, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tether(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`tether ARGS...` in a process of its own, as an operator runs it."""
    return run("-m", "tether.cli", *args, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the newcomer's, far from this project, with the pack scaffolded in it."""
    home = tmp_path_factory.mktemp("newcomer")
    done = tether("new-domain", NAME, "--into", "domains", cwd=home)
    assert done.returncode == 0, done.stderr
    assert f"created domains/{NAME}/" in done.stdout
    assert f"TETHER_DOMAINS='[\"{NAME}:PACK\"]'" in done.stdout  # what to run next
    assert f"approvals list --domain {NAME}" in done.stdout
    # The lead's key and directory come before `tether up`: no approver is built in.
    steps = [line.strip() for line in done.stdout.splitlines()]
    made_key = next(i for i, line in enumerate(steps) if f"keys new lead@{NAME}.example" in line)
    export = next(i for i, line in enumerate(steps) if line.startswith("export TETHER_POLICIES="))
    up = next(i for i, line in enumerate(steps) if line.split("#")[0].strip().endswith(" up"))
    assert made_key < export < up
    [assignment] = shlex.split(steps[export].removeprefix("export "))
    directory = json.loads(assignment.split("=", 1)[1])
    assert directory[NAME]["approvers"][f"lead@{NAME}.example"]["roles"] == [f"{NAME}_lead"]
    # Each part listed with its own count: together, the files the header counts.
    header, *listed = done.stdout.split("\n\n")[0].splitlines()
    counted = re.search(r"\((\d+) files\):$", header)
    each = [re.match(r"\s+\S+/ \((\d+)\)", line) for line in listed]
    assert counted and sum(int(m.group(1)) if m else 1 for m in each) == int(counted.group(1))
    return home / "domains"


def test_names_and_places_it_cannot_use_are_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    taken = tmp_path / "taken"
    (taken / "mine").mkdir(parents=True)
    (taken / "mine" / "notes.txt").write_text("keep me")
    cases = [
        ("Acme", tmp_path / "fresh", "not a pack name"),
        ("9lives", tmp_path / "fresh", "not a pack name"),
        ("class", tmp_path / "fresh", "Python keyword"),
        ("support", tmp_path / "fresh", "existing pack"),
        ("rooms", tmp_path / "fresh", "existing pack"),
        ("itops", tmp_path / "fresh", "existing pack"),
        ("mine", taken, "already exists"),
    ]
    for name, into, says in cases:
        done = tether("new-domain", name, "--into", str(into), cwd=tmp_path)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert says in " ".join(done.stderr.split()), (name, done.stderr)  # as wrapped
        assert done.stdout == ""
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in taken.rglob("*")) == ["mine", "notes.txt"]
    assert (taken / "mine" / "notes.txt").read_text() == "keep me"


def test_the_generated_pack_passes_its_own_tests(domains: Path) -> None:
    """Its own pytest.ini, its own conftest: rootdir is the pack, not this project."""
    tests = domains / NAME / "tests"
    done = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tests), cwd=domains)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary


def free_run(count: int) -> int:
    """A free port whose ``count - 1`` successors are free too."""
    while True:
        port = free_port()
        if all(port_free(port + i) for i in range(1, count)):
            return port


@pytest.fixture
def served(domains: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """`tether up` serving the generated pack (and only it), as the tutorial runs it; the
    environment that points other `tether` commands at it."""
    env = environment(
        PYTHONPATH=str(domains),
        TETHER_DOMAINS=json.dumps([f"{NAME}:PACK"]),
        TETHER_DATA_DIR=str(tmp_path / "data"),
        TETHER_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        TETHER_TEMPORAL_UI_PORT=str(free_port()),
        TETHER_SYSTEMS=json.dumps({NAME: f"http://127.0.0.1:{free_port()}"}),
        # `tether up` gives its worker processes (compute, workflow, shadow) this port and
        # the next two.
        TETHER_METRICS_ADDRESS=f"127.0.0.1:{free_run(3)}",
    )
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "tether.cli", "up"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        # A dev server, three worker processes and the embedding model: slow beside busy loops.
        deadline = time.monotonic() + 300
        while READY not in log.read_text(errors="replace"):
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield env
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
            code = None
    # Ctrl-C stops everything it started, the dev server too, and says so.
    stopped = log.read_text(errors="replace")
    assert code == 0 and "\nstopped" in stopped, stopped[-3000:]
    port = int(env["TETHER_TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
    deadline = time.monotonic() + 15
    while not port_free(port):
        assert time.monotonic() < deadline, f"the dev server on :{port} outlived `tether up`"
        time.sleep(0.2)


def test_tether_ask_is_answered_by_the_generated_pack(
    domains: Path, served: dict[str, str], tmp_path: Path
) -> None:
    ingested = tether("ingest", "--domain", NAME, "--json", cwd=tmp_path, env=served)
    assert ingested.returncode == 0, ingested.stderr
    [report] = json.loads(ingested.stdout)["reports"]
    assert report["domain"] == NAME and report["documents"] >= 2
    # A folder the worker cannot read: its own words, as bad input (not "Activity task failed").
    missing = tether("ingest", "nowhere", "--domain", NAME, cwd=tmp_path, env=served)
    assert missing.returncode == 2, missing.stderr
    assert "nowhere: not a" in missing.stderr and "task failed" not in missing.stderr

    text = "Please reserve 2 units of REC-103 for the support team."
    asked = tether(
        "ask", text, "--subject", "U-100", "--domain", NAME, "--json", cwd=tmp_path, env=served
    )
    assert asked.returncode == 0, asked.stderr
    outcome = json.loads(asked.stdout)
    assert (outcome["domain"], outcome["intent"]) == (NAME, "reserve_units")
    assert outcome["decision"]["action"] == "auto", outcome["decision"]
    assert "small_reservation" in [r["code"] for r in outcome["decision"]["reasons"]]
    assert [(a["tool"], a["ok"]) for a in outcome["actions"]] == [
        ("reserve_units", True),
        ("notify_user", True),
    ]
    # The write landed in the pack's own system, under the request's idempotency key.
    key = outcome["actions"][0]["idempotency_key"]
    with closing(sqlite3.connect(tmp_path / "data" / f"{NAME}.{NAME}.db")) as db:
        rows = db.execute(
            "SELECT record_id, user_id, units FROM reservations WHERE idempotency_key = ?", (key,)
        ).fetchall()
    assert rows == [("REC-103", "U-100", 2)]

    # `tether up` scheduled the live evaluation (what switches self-protection by itself).
    assert "Evaluating every 0:05:00 (Temporal Schedule)" in (tmp_path / "up.log").read_text()

    async def evaluation_schedule(every: timedelta | None = None) -> ScheduleDescription:
        """The schedule, after asking for one ``every`` as `tether up` does at a start."""
        client = await Client.connect(
            served["TETHER_TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter
        )
        if every is not None:
            tether = Tether(client, Settings(task_queue="unused"))
            await tether.schedule_evaluation(EvaluationInput(), every, replace=False)
        return await client.get_schedule_handle(EVALUATION_SCHEDULE).describe()

    described = asyncio.run(evaluation_schedule())
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(minutes=5)]
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == names.LIVE_EVALUATION
    # A start finds it there (or an operator's own) and leaves it as it is.
    kept = asyncio.run(evaluation_schedule(timedelta(hours=1)))
    assert [i.every for i in kept.schedule.spec.intervals] == [timedelta(minutes=5)]
    # As the compose bundle makes it (--keep: the one there stays), then as an operator
    # changes it.
    elsewhere = {**served, "TETHER_ALERT_WEBHOOK": "https://alerts.invalid/other"}
    for args, seconds in ((["--keep", "--every", "1h"], 300.0), (["--every", "1h"], 3600.0)):
        scheduled = tether("eval", "schedule", *args, "--json", cwd=tmp_path, env=elsewhere)
        assert scheduled.returncode == 0, scheduled.stderr
        assert json.loads(scheduled.stdout) == {
            "schedule": EVALUATION_SCHEDULE,
            "every_seconds": [seconds],
        }
    changed = asyncio.run(evaluation_schedule())
    assert [i.every for i in changed.schedule.spec.intervals] == [timedelta(hours=1)]
    # What it runs (its input, the webhook in it) is the one `tether up` made, not this
    # shell's (which names another webhook).
    assert isinstance(changed.schedule.action, ScheduleActionStartWorkflow)
    assert changed.schedule.action.args == action.args
    off = {**served, "TETHER_EVALUATION_EVERY": "0"}
    refused = tether("eval", "schedule", cwd=tmp_path, env=off)
    assert refused.returncode == 2 and "pass --every" in refused.stderr, refused.stderr
    kept_off = tether("eval", "schedule", "--keep", cwd=tmp_path, env=off)  # the bundle's
    assert kept_off.returncode == 0 and "no schedule made" in kept_off.stdout, kept_off.stderr


def test_capacity_is_read_from_the_workers_own_metrics(
    domains: Path, served: dict[str, str], tmp_path: Path
) -> None:
    """`tether up` runs a compute and a workflow process, each exporting its CPU by role;
    `tether capacity`, measuring while requests complete, names both and a bottleneck."""
    host, port = served["TETHER_METRICS_ADDRESS"].rsplit(":", 1)
    endpoints = [f"{host}:{port}", f"{host}:{int(port) + 1}"]
    ingested = tether("ingest", "--domain", NAME, cwd=tmp_path, env=served)
    assert ingested.returncode == 0, ingested.stderr
    measuring = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "capacity", "--seconds", "20", "--target", "50"]
        + [arg for e in endpoints for arg in ("--metrics", e)]
        + ["--json"],
        cwd=tmp_path,
        env=served,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for i in range(4):
        asked = tether(
            "ask", f"Please reserve {i + 1} units of REC-103 for the support team.",
            "--subject", "U-100", "--domain", NAME, cwd=tmp_path, env=served,
        )  # fmt: skip
        assert asked.returncode == 0, asked.stderr
    out, err = measuring.communicate(timeout=120)
    assert measuring.returncode == 0, err
    found = json.loads(out)
    roles = {r["role"]: r for r in found["roles"]}
    assert set(roles) == {"compute", "workflow"}, found
    assert found["requests_per_s"] > 0 and found["bottleneck"] in roles
    assert all(r["cpu_ms_per_request"] > 0 and r["needed"] >= 1 for r in roles.values())


def test_a_worker_process_that_dies_is_started_again(
    domains: Path, served: dict[str, str], tmp_path: Path
) -> None:
    """`tether up` supervises its worker processes: one killed as the OOM killer would is
    started again, and the stack answers as before."""
    host, port = served["TETHER_METRICS_ADDRESS"].rsplit(":", 1)
    workflow_endpoint = f"{host}:{int(port) + 1}"  # workflow-1: the next port

    def workflow_pid() -> str | None:
        try:
            cpu = scrape([workflow_endpoint]).cpu
        except Unreadable:  # down, or not yet up again
            return None
        return next((pid for role, pid in cpu if role == "workflow"), None)

    killed = workflow_pid()
    assert killed is not None
    os.kill(int(killed), signal.SIGKILL)
    deadline = time.monotonic() + 120
    while workflow_pid() in (None, killed):
        assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
        time.sleep(0.5)
    log = (tmp_path / "up.log").read_text(errors="replace")
    assert "worker workflow-1 exited with -9" in log and "worker workflow-1 serves again" in log
    asked = tether(
        "ask", "Please reserve 1 unit of REC-103 for the support team.",
        "--subject", "U-100", "--domain", NAME, "--json", cwd=tmp_path, env=served,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["domain"] == NAME
