"""Settings from the environment: durations in plain seconds or ISO 8601, and a bad value is one
line naming its variable, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import temporalio.api.common.v1
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tether.client import connect_failure
from tether.config import Retry, Settings, Timeouts, settings_problems


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("90", timedelta(seconds=90)),
        ("2.5", timedelta(seconds=2.5)),
        ("PT1M30S", timedelta(seconds=90)),
        ("00:01:30", timedelta(seconds=90)),
    ],
)
def test_durations_are_seconds_or_iso_8601(
    monkeypatch: pytest.MonkeyPatch, given: str, meant: timedelta
) -> None:
    monkeypatch.setenv("TETHER_TIMEOUTS__MODEL_SCHEDULE_TO_START", given)
    monkeypatch.setenv("TETHER_RETRIEVAL__MAX_INDEX_AGE", given)
    monkeypatch.setenv("TETHER_STICKY_QUEUE_TIMEOUT", given)
    settings = Settings()
    assert settings.timeouts.model_schedule_to_start == meant
    assert settings.retrieval.max_index_age == meant
    assert settings.sticky_queue_timeout == meant


def test_a_bad_setting_is_one_line_per_variable_and_no_traceback() -> None:
    env = {
        "TETHER_TIMEOUTS__MODEL_BUDGET": "soon",
        "TETHER_ACTIVITY_THREADS": "many",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 2, lines
    assert any(
        line.startswith("TETHER_TIMEOUTS__MODEL_BUDGET: ") and "'soon'" in line for line in lines
    )
    assert any(line.startswith("TETHER_ACTIVITY_THREADS: ") and "'many'" in line for line in lines)


@pytest.mark.parametrize(
    ("variable", "given", "said"),
    [
        # Each of these reached a workflow before, and Temporal refused it in the workflow's
        # task: the run was stuck retrying that task.
        ("TETHER_TIMEOUTS__MODEL_SCHEDULE_TO_START", "-5", "not negative"),
        ("TETHER_TIMEOUTS__RECORD", "0", "more than 0"),
        ("TETHER_TIMEOUTS__TOOL", "PT0S", "more than 0"),
        ("TETHER_TIMEOUTS__MODEL_RETRY__BACKOFF", "0.5", "greater than or equal to 1"),
        ("TETHER_TIMEOUTS__MODEL_RETRY__BACKOFF", "nan", "finite"),
        ("TETHER_TIMEOUTS__RECORD_RETRY__MAXIMUM_ATTEMPTS", "-1", "greater than or equal to 0"),
        # Two fields at odds: the line names the group, and says which two.
        ("TETHER_TIMEOUTS__TOOL_RETRY__INITIAL", "PT2M", "maximum_interval (0:00:10) is less"),
        ("TETHER_RETRIEVAL__MAX_INDEX_AGE", "-1", "not negative"),
        ("TETHER_STICKY_QUEUE_TIMEOUT", "-PT1S", "not negative"),
        # The metrics server binds an IP and a port: before, a worker said the Temporal
        # address was wrong, and a command that serves no metrics took it.
        ("TETHER_METRICS_ADDRESS", "abc", "an IP address and a port"),
        ("TETHER_METRICS_ADDRESS", "localhost:9464", "an IP address and a port"),
        ("TETHER_METRICS_ADDRESS", "127.0.0.1", "an IP address and a port"),
        ("TETHER_METRICS_ADDRESS", "::1:9464", "an IP address and a port"),
        ("TETHER_METRICS_ADDRESS", "127.0.0.1:99999", "past 65535"),
        ("TETHER_METRICS_ADDRESS", "127.0.0.1:\u0669\u0664\u0666\u0664", "an IP address"),
        ("TETHER_METRICS_ADDRESS", "127.0.0.1:9464\u00b2", "an IP address"),
    ],
)
def test_a_setting_temporal_would_refuse_is_refused_when_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, given: str, said: str
) -> None:
    monkeypatch.setenv(variable, given)
    with pytest.raises(ValidationError) as caught:
        Settings()
    lines = settings_problems(caught.value)
    assert len(lines) == 1, lines
    named = variable if "maximum_interval" not in said else variable.rsplit("__", 1)[0]
    assert lines[0].startswith(f"{named}: ") and said in lines[0], lines


@pytest.mark.parametrize(
    ("variable", "given"),
    [
        ("TETHER_ACTIVITY_THREADS", "0"),  # a pool of no thread: the worker did not start
        ("TETHER_EMBEDDING_BATCH_SIZE", "0"),
        ("TETHER_GROUNDING_SIMILARITY", "nan"),
        ("TETHER_GROUNDING_SIMILARITY", "1.5"),
        ("TETHER_RETRIEVAL__TOP_K", "0"),  # no passage could ever be found
        ("TETHER_RETRIEVAL__MAX_PASSAGES", "-1"),
        ("TETHER_RETRIEVAL__MIN_SCORE", "inf"),
        ("TETHER_LLM__READ_TIMEOUT", "0"),
        ("TETHER_LLM__MAX_CONCURRENT", "0"),
        ("TETHER_LLM__RATE_LIMIT_PER_SECOND", "-2"),
        ("TETHER_LLM__BREAKER_FAILURES", "0"),
        ("TETHER_CONSOLE__PORT", "70000"),
        ("TETHER_TEMPORAL_UI_PORT", "0"),
    ],
)
def test_a_number_out_of_its_range_is_refused_when_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, given: str
) -> None:
    monkeypatch.setenv(variable, given)
    with pytest.raises(ValidationError) as caught:
        Settings()
    lines = settings_problems(caught.value)
    assert len(lines) == 1 and lines[0].startswith(f"{variable}: "), lines


@pytest.mark.parametrize("given", ["127.0.0.1:9464", "0.0.0.0:0", "[::1]:9464"])
def test_a_metrics_address_the_server_can_bind_is_taken(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("TETHER_METRICS_ADDRESS", given)
    assert Settings().metrics_address == given


def test_zero_is_allowed_where_it_means_something(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zero patience: answer from passages rather than wait in line. A zero schedule-to-start
    or budget beside a start-to-close: Temporal's "no limit". A zero maximum interval:
    Temporal's own, 100 times the initial one."""
    monkeypatch.setenv("TETHER_TIMEOUTS__MODEL_QUEUE_PATIENCE", "0")
    monkeypatch.setenv("TETHER_TIMEOUTS__MODEL_SCHEDULE_TO_START", "0")
    monkeypatch.setenv("TETHER_TIMEOUTS__MODEL_BUDGET", "0")
    monkeypatch.setenv("TETHER_TIMEOUTS__TOOL_BUDGET", "PT0S")
    monkeypatch.setenv("TETHER_TIMEOUTS__DEFAULT_RETRY__MAXIMUM_INTERVAL", "0")
    timeouts = Settings().timeouts
    assert timeouts.model_queue_patience == timeouts.model_schedule_to_start == timedelta(0)
    assert timeouts.model_budget == timeouts.tool_budget == timedelta(0)
    temporalio_policy = timeouts.default_retry.policy()
    temporalio_policy.apply_to_proto(temporalio.api.common.v1.RetryPolicy())
    assert temporalio_policy.maximum_interval == timedelta(0)


def test_a_pack_named_twice_is_served_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_DOMAINS", '["support", "itops", "support"]')
    assert Settings().domains == ["support", "itops"]


def test_ingest_hosts_are_host_names_not_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_RETRIEVAL__SOURCE_HOSTS", '["docs.example.com", "[::1]:8080"]')
    assert Settings().retrieval.source_hosts == ["docs.example.com", "[::1]:8080"]
    for bad in ('["https://docs.example.com/"]', '["::1"]', '["intra:abc"]', '["a:70000"]'):
        monkeypatch.setenv("TETHER_RETRIEVAL__SOURCE_HOSTS", bad)
        with pytest.raises(ValidationError, match="source_hosts"):
            Settings()


def test_one_field_of_a_retry_leaves_the_others_at_that_retrys_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The outcome's record never gives up (no limit on attempts, up to a minute apart):
    changing its backoff must not bring a bare Retry's five attempts and 10 s back."""
    monkeypatch.setenv("TETHER_TIMEOUTS__RECORD_RETRY__BACKOFF", "3")
    monkeypatch.setenv("TETHER_TIMEOUTS__COMPENSATION_RETRY__INITIAL", "PT30S")
    timeouts = Settings().timeouts
    assert timeouts.record_retry == Retry(
        backoff=3, maximum_attempts=0, maximum_interval=timedelta(minutes=1)
    )
    assert timeouts.compensation_retry.initial == timedelta(seconds=30)
    assert timeouts.compensation_retry.maximum_attempts == 0
    assert Timeouts(model_retry={"backoff": 4}).model_retry.maximum_attempts == 6


def test_the_record_and_compensations_never_give_up_whoever_sends_the_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The timeouts travel in the request (ResolutionInput): one that limits the record's or
    a compensation's attempts, or gives the record no time, is held to the rule when the
    workflow reads it (a request from before decodes still), and refused in settings."""
    from tether.contracts import ResolutionInput

    request = {"request_id": "r", "subject": "C-1", "requester": "C-1", "text": "hello there"}
    for bad, said in [
        ({"record_retry": {"maximum_attempts": 1}}, "record_retry.maximum_attempts must be 0"),
        ({"compensation_retry": {"maximum_attempts": 3}}, "compensation_retry.maximum_attempts"),
        ({"record": 0.001}, "must be at least 1 second"),
    ]:
        assert any(said in p for p in Timeouts.model_validate(bad).problems())
        held = ResolutionInput.model_validate(
            {"domain": "support", "request": request, "timeouts": bad, "model_queue": "q"}
        ).timeouts
        assert held.problems() == []
        assert held.record_retry.maximum_attempts == held.compensation_retry.maximum_attempts == 0
        assert held.record >= timedelta(seconds=1)
    monkeypatch.setenv("TETHER_TIMEOUTS__RECORD_RETRY__MAXIMUM_ATTEMPTS", "3")
    with pytest.raises(ValidationError, match=r"record_retry\.maximum_attempts must be 0"):
        Settings()


seconds = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    initial=seconds,
    maximum=seconds,
    backoff=st.floats(allow_nan=True, allow_infinity=True),
    attempts=st.integers(min_value=-5, max_value=50),
)
def test_every_retry_accepted_is_one_temporal_accepts(
    initial: float, maximum: float, backoff: float, attempts: int
) -> None:
    """What the settings let through never fails where a workflow schedules an activity."""
    try:
        retry = Retry.model_validate(
            {
                "initial": initial,
                "maximum_interval": maximum,
                "backoff": backoff,
                "maximum_attempts": attempts,
            }
        )
    except ValidationError:
        return
    retry.policy().apply_to_proto(temporalio.api.common.v1.RetryPolicy())  # raises if refused


@settings(max_examples=100, deadline=None)
@given(value=seconds)
def test_every_timeout_accepted_is_a_limit(value: float) -> None:
    try:
        timeouts = Timeouts.model_validate({"tool": value})
    except ValidationError:
        assert timedelta(seconds=value) <= timedelta(0)  # below a microsecond: 0
        return
    assert timeouts.tool > timedelta(0)


def free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("command", [["approvals", "list"], ["worker", "--role", "workflow"]])
def test_no_server_is_one_line_and_its_own_exit_code(command: list[str], tmp_path: Path) -> None:
    """A command that cannot reach Temporal says so in one line and ends (a worker did not:
    it waited, silent, for a Ctrl-C), with exit code 3: worth trying again, not bad input."""
    address = free_address()  # nobody listens there
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", *command],
        env={
            "PATH": "/usr/bin:/bin",
            "TETHER_TEMPORAL_ADDRESS": address,
            "TETHER_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"cannot connect to Temporal at {address} (TETHER_TEMPORAL_ADDRESS): " + (
        "Connection refused"
    )


@pytest.mark.parametrize(
    ("said", "reason"),
    [
        (
            "Server connection error: tonic::transport::Error(Transport, ConnectError(ConnectError("
            '"dns error", Custom { kind: Uncategorized, error: "failed to lookup address '
            'information: Name or service not known" })))',
            "failed to lookup address information: Name or service not known",
        ),
        (  # the server answered, and refused: its own words, quotes and all
            'status: Unauthenticated, message: "Request unauthorized: \\"bad\\" key", '
            "details: [], metadata: MetadataMap { headers: {} }",
            'Request unauthorized: "bad" key',
        ),
        ("something else", "something else"),
    ],
)
def test_a_failed_connection_is_told_in_its_own_words(said: str, reason: str) -> None:
    assert connect_failure(RuntimeError(f"Failed client connect: {said}")) == reason
