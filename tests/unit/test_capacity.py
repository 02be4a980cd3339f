"""`tether capacity`'s arithmetic: from two scrapes of the workers' metrics to the CPU a request
costs each role, the bottleneck, and the processes a target rate needs."""

from __future__ import annotations

import socket

import pytest

from tether.capacity import HEADROOM, Snapshot, Unreadable, assess, parse, scrape

EXPOSITION = """# HELP tether_process_cpu_seconds CPU seconds this worker process has used
# TYPE tether_process_cpu_seconds gauge
tether_process_cpu_seconds{pid="11",role="workflow",service_name="temporal-core-sdk"} 12.5
tether_decisions{action="auto",domain="support",intent="order_status",mode="normal"} 40
tether_decisions{action="approval",domain="support",intent="refund",mode="normal"} 2
temporal_request{operation="PollActivityTaskQueue"} 7
"""


def test_prometheus_text_is_read_with_its_labels() -> None:
    samples = parse(EXPOSITION)
    cpu = [s for s in samples if s.name == "tether_process_cpu_seconds"]
    assert cpu[0].labels == {"pid": "11", "role": "workflow", "service_name": "temporal-core-sdk"}
    assert cpu[0].value == 12.5
    assert sum(s.value for s in samples if s.name == "tether_decisions") == 42


def test_the_role_that_costs_most_per_request_is_the_bottleneck() -> None:
    """10 s, 50 requests: two workflow processes used 4 s of CPU (40 ms a request, 20/s each
    at 0.8 of a core, 40/s together); one compute process used 3 s (60 ms a request, 13.3/s):
    compute limits the deployment, and 30/s needs 3 compute processes and 2 workflow ones."""
    before = Snapshot(
        cpu={("workflow", "1"): 0, ("workflow", "2"): 0, ("compute", "3"): 0}, decisions=100
    )
    after = Snapshot(
        cpu={("workflow", "1"): 2, ("workflow", "2"): 2, ("compute", "3"): 3}, decisions=150
    )
    found = assess(before, after, 10.0, target=30.0)
    roles = {r.role: r for r in found.roles}
    assert found.requests_per_s == 5.0
    assert roles["workflow"].cpu_ms_per_request == pytest.approx(80.0)
    assert roles["compute"].cpu_ms_per_request == pytest.approx(60.0)
    assert roles["compute"].per_process_per_s == pytest.approx(HEADROOM / 0.06)
    assert found.bottleneck == "compute"
    assert found.ceiling_per_s == pytest.approx(HEADROOM / 0.06)
    assert (roles["workflow"].needed, roles["compute"].needed) == (3, 3)


def test_no_traffic_sizes_nothing() -> None:
    still = Snapshot(cpu={("all", "1"): 5.0}, decisions=10)
    found = assess(still, still, 5.0, target=10.0)
    assert found.requests_per_s == 0 and found.bottleneck is None
    assert found.roles[0].per_process_per_s is None and found.roles[0].needed is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        ("127.0.0.1:{closed}", "refused"),
        ("http://127.0.0.1:port/metrics", "Invalid port"),  # not httpx's HTTPError: it escaped
        ("", "missing an 'http://'"),
    ],
)
def test_an_endpoint_without_metrics_is_named_in_one_line(endpoint: str, said: str) -> None:
    endpoint = endpoint.format(closed=_closed_port())  # just before: nobody takes it meanwhile
    with pytest.raises(Unreadable) as caught:
        scrape([endpoint], timeout=2.0)
    message = str(caught.value)
    assert message.startswith(f"{endpoint}: ") and said in message and "\n" not in message


def test_a_host_whose_name_starts_with_http_is_a_host() -> None:
    with pytest.raises(Unreadable) as caught:
        scrape(["httpd-worker.invalid:9464"], timeout=2.0)
    assert "missing an 'http://'" not in str(caught.value)
