"""The OpenAI-compatible provider against the fault-injecting server over real HTTP: what it
sends, what it records, and how each failure is classified for Temporal's retry policy."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from tests.fault_model import FaultModelServer
from tether import errors
from tether.config import LLMConfig
from tether.contracts import (
    Evidence,
    FreshnessReport,
    Passage,
    ProposeInput,
    Request,
)
from tether.domains.support import INTENTS, PACK
from tether.domains.support.records import OrderSnapshot
from tether.domains.support.tools import REGISTRY
from tether.localmodel import LocalModel
from tether.openai_compat import OpenAICompatible
from tether.tools import ProposalInvalid

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
PASSAGE = Passage(
    passage_id="refund-policy#0",
    doc_id="refund-policy",
    title="Refund policy",
    source="kb",
    version=3,
    effective_date=date(2026, 10, 1),
    updated_at=NOW,
    fetched_at=NOW,
    content_hash="h",
    text="Refunds of up to $50.00 are issued automatically. Larger refunds need a lead's approval.",
    score=0.8,
)
ORDER = OrderSnapshot(
    order_id="ORD-1003",
    customer_id="C-102",
    status="delivered",
    total_cents=15_900,
    refunded_cents=0,
    placed_at=NOW - timedelta(days=14),
    delivered_at=NOW - timedelta(days=10),
)
INPUT = ProposeInput(
    domain="support",
    request=Request(
        request_id="r-1",
        subject="C-102",
        requester="C-102",
        text="Please refund $20 on ORD-1003, the zip broke.",
    ),
    evidence=Evidence(
        query="refund",
        passages=[PASSAGE],
        freshness=FreshnessReport(index_refreshed_at=NOW, index_age_seconds=1, stale_index=False),
    ),
    context=[
        PACK.context_record(PACK.reference("order"), "ORD-1003", ORDER.model_dump(mode="json"))
    ],
    tool_catalogue=REGISTRY.catalogue(),
    intents=list(INTENTS),
    instructions=PACK.instructions,
)


@pytest.fixture
async def server(local_model: LocalModel) -> AsyncIterator[FaultModelServer]:
    srv = await FaultModelServer(local_model, latency=1.0).start()
    yield srv
    await srv.stop()


def provider(server: FaultModelServer, **config: object) -> OpenAICompatible:
    return OpenAICompatible(
        LLMConfig.model_validate(
            {"provider": "openai", "base_url": server.url, "model": "m", "read_timeout": 0.5}
            | config
        )
    )


async def test_a_healthy_answer_is_a_valid_proposal_with_its_provenance(
    server: FaultModelServer,
) -> None:
    raw = await provider(server, api_key="sk-test").propose(INPUT)
    proposal = REGISTRY.validate_proposal(raw.content, intents=INTENTS)
    assert proposal.intent == "refund_request" and proposal.tool_calls
    assert raw.model.model == "fault-model-1" and raw.model.fingerprint == "fp_fault_1"
    assert raw.usage["total_tokens"] == 150 and raw.response_id and raw.latency_ms
    sent = server.bodies[0]
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["$defs"]["ToolCall"]["properties"]["tool"]["enum"] == [
        "lookup_order",
        "issue_refund",
        "send_reply",
    ]
    assert schema["properties"]["intent"]["enum"] == list(INTENTS)
    assert sent["model"] == "m" and sent["temperature"] == 0.0
    assert "refund_request" in sent["messages"][0]["content"]  # the intents are in the prompt
    assert (
        json.loads(sent["messages"][1]["content"].split("\n", 1)[1])["passages"][0]["passage_id"]
        == PASSAGE.passage_id
    )


@pytest.mark.parametrize(
    ("fault", "kind", "retryable"),
    [
        ("rate_limited", errors.MODEL_RATE_LIMITED, True),
        ("server_error", errors.MODEL_UNAVAILABLE, True),
        ("cut", errors.MODEL_UNAVAILABLE, True),
        ("latency", errors.MODEL_UNAVAILABLE, True),  # 1 s answer, 0.5 s read timeout
        ("malformed", errors.MODEL_UNAVAILABLE, True),
    ],
)
async def test_failures_are_classified_for_the_retry_policy(
    server: FaultModelServer, fault: str, kind: str, retryable: bool
) -> None:
    server.script = [fault]
    with pytest.raises(ApplicationError) as err:
        await provider(server).propose(INPUT)
    assert err.value.type == kind and err.value.non_retryable is not retryable
    if fault == "rate_limited":
        assert err.value.next_retry_delay == timedelta(seconds=1)  # the server's Retry-After


async def test_a_client_error_is_not_retried(server: FaultModelServer) -> None:
    """A 4xx other than 429 (bad request, bad key, no quota) will not pass on a retry."""
    server.script = ["bad_request"]
    with pytest.raises(ApplicationError) as err:
        await provider(server).propose(INPUT)
    assert err.value.type == errors.MODEL_REJECTED and err.value.non_retryable
    assert "400" in err.value.message


async def test_an_unreachable_endpoint_is_transient() -> None:
    model = OpenAICompatible(
        LLMConfig(provider="openai", base_url="http://127.0.0.1:9/v1", connect_timeout=0.5)
    )
    with pytest.raises(ApplicationError) as err:
        await model.propose(INPUT)
    assert err.value.type == errors.MODEL_UNAVAILABLE and not err.value.non_retryable


@pytest.mark.parametrize("fault", ["schema_invalid", "invented_tool"])
async def test_wrong_content_is_returned_for_the_workflow_to_refuse(
    server: FaultModelServer, fault: str
) -> None:
    server.script = [fault]
    raw = await provider(server).propose(INPUT)
    with pytest.raises(ProposalInvalid):
        REGISTRY.validate_proposal(raw.content, intents=INTENTS)


async def test_the_circuit_opens_fails_fast_and_closes_after_a_good_trial(
    server: FaultModelServer,
) -> None:
    model = provider(server, breaker_failures=3, breaker_reset=timedelta(seconds=0.3))
    server.script = ["server_error"] * 3
    for _ in range(3):
        with pytest.raises(ApplicationError):
            await model.propose(INPUT)
    calls = len(server.bodies)
    with pytest.raises(ApplicationError) as err:
        await model.propose(INPUT)
    assert err.value.type == errors.CIRCUIT_OPEN and err.value.non_retryable
    assert len(server.bodies) == calls  # failed fast: the endpoint was not called
    await asyncio.sleep(0.35)
    await model.propose(INPUT)  # the trial succeeds
    assert model.breaker.state == "closed"
    assert model.breaker.transitions == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def completion(message: object, **fields: object) -> bytes:
    """A 200 completion around ``message``, with ``fields`` over the usual ones."""
    body = {"id": "c-1", "model": "m", "choices": [{"message": message}], "usage": {}} | fields
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "body",
    [
        completion("just a string"),
        completion({"content": {"not": "text"}}),
        completion({"content": "{}"}, usage=[1, 2]),
        b'{"choices": "none"}',
        b"[1, 2, 3]",
    ],
)
async def test_an_answer_of_another_shape_is_unavailable_and_counts_against_the_circuit(
    server: FaultModelServer, body: bytes
) -> None:
    """Read whole or not at all: an answer the provider cannot read is a failure of the
    endpoint (retried, and counted by the breaker), never an unclassified error that left
    the breaker thinking the call succeeded."""
    model = provider(server, breaker_failures=2)
    server.verbatim = [(200, body, {}), (200, body, {})]
    for _ in range(2):
        with pytest.raises(ApplicationError) as err:
            await model.propose(INPUT)
        assert err.value.type == errors.MODEL_UNAVAILABLE and not err.value.non_retryable
    assert model.breaker.state == "open"


async def test_content_in_parts_and_an_id_of_any_kind_are_read(server: FaultModelServer) -> None:
    """Some servers send the content as a list of parts, and an id that is a number."""
    parts = [{"type": "text", "text": '{"intent": '}, {"type": "text", "text": '"x"}'}]
    server.verbatim = [(200, completion({"content": parts}, id=7), {})]
    raw = await provider(server).propose(INPUT)
    assert raw.content == '{"intent": "x"}' and raw.response_id == "7"


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "delay"),
    [
        (429, b"{}", {"Retry-After": "-5"}, errors.MODEL_RATE_LIMITED, None),
        (429, b"{}", {"Retry-After": "nan"}, errors.MODEL_RATE_LIMITED, None),
        (429, b"{}", {"Retry-After": "1e400"}, errors.MODEL_RATE_LIMITED, timedelta(seconds=60)),
        (
            429,
            b"{}",
            {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},  # gone by: at once
            errors.MODEL_RATE_LIMITED,
            timedelta(0),
        ),
        (
            429,
            b'{"error": {"message": "quota", "type": "insufficient_quota"}}',
            {},
            errors.MODEL_REJECTED,
            None,
        ),
        (
            301,
            b"",
            {"Location": "https://api.example/v1/chat/completions"},
            errors.MODEL_REJECTED,
            None,
        ),
    ],
)
async def test_what_a_retry_cannot_fix_is_rejected_and_retry_after_is_read_safely(
    server: FaultModelServer,
    status: int,
    body: bytes,
    headers: dict[str, str],
    kind: str,
    delay: timedelta | None,
) -> None:
    server.verbatim = [(status, body, headers)]
    with pytest.raises(ApplicationError) as err:
        await provider(server).propose(INPUT)
    assert err.value.type == kind and err.value.next_retry_delay == delay
    assert err.value.non_retryable is (kind == errors.MODEL_REJECTED)
    if status == 301:
        assert "set base_url to it" in err.value.message


async def test_an_answer_past_its_size_limit_is_not_read(server: FaultModelServer) -> None:
    """Counted as it arrives (after decompression): refused before it is held whole."""
    huge = completion({"content": "x" * 300_000})
    server.verbatim = [(200, huge, {})]
    with pytest.raises(ApplicationError) as err:
        await provider(server, max_response_bytes=100_000).propose(INPUT)
    assert err.value.type == errors.MODEL_UNAVAILABLE
    assert "longer than 100,000 bytes" in err.value.message


async def test_a_compressed_answer_is_measured_as_it_is_inflated(server: FaultModelServer) -> None:
    """A gzip bomb (50 MB of answer in ~50 kB) is refused having inflated at most the limit
    and a byte; an honest compressed answer reads as the same answer sent plain; an encoding
    this client did not ask for is refused, not guessed at."""
    bomb = gzip.compress(b" " * 50_000_000)
    honest = completion({"content": '{"intent": "x"}'})
    server.verbatim = [
        (200, bomb, {"Content-Encoding": "gzip"}),
        (200, gzip.compress(honest), {"Content-Encoding": "gzip"}),
        (200, zlib.compress(honest), {"Content-Encoding": "deflate"}),
        (200, honest, {"Content-Encoding": "br"}),
        (200, b"not gzip at all", {"Content-Encoding": "gzip"}),
    ]
    model = provider(server, max_response_bytes=100_000, breaker_failures=10)
    with pytest.raises(ApplicationError) as err:
        await model.propose(INPUT)
    assert err.value.type == errors.MODEL_UNAVAILABLE
    assert "longer than 100,000 bytes (max_response_bytes)" in err.value.message
    for _ in range(2):
        assert (await model.propose(INPUT)).content == '{"intent": "x"}'
    for said in ("content encoding 'br' is not read here", "not gzip data"):
        with pytest.raises(ApplicationError) as err:
            await model.propose(INPUT)
        assert err.value.type == errors.MODEL_UNAVAILABLE and said in err.value.message


async def test_a_compressed_answer_is_read_whole_or_not_at_all(server: FaultModelServer) -> None:
    """Cut short, it is refused (a part of an answer is no answer); in two gzip members, or
    labelled "gzip, identity", it is read; an error status is classified by its status even
    when its body is in an encoding not read here."""
    honest = completion({"content": '{"intent": "x"}'})
    packed = gzip.compress(honest)
    server.verbatim = [
        (200, packed[: len(packed) // 2], {"Content-Encoding": "gzip"}),
        (
            200,
            gzip.compress(honest[:20]) + gzip.compress(honest[20:]),
            {"Content-Encoding": "gzip"},
        ),
        (200, packed, {"Content-Encoding": "gzip, identity"}),
        (401, b"\x00\x01", {"Content-Encoding": "br"}),
    ]
    model = provider(server, breaker_failures=10)
    with pytest.raises(ApplicationError) as err:
        await model.propose(INPUT)
    assert err.value.type == errors.MODEL_UNAVAILABLE and "gzip data cut short" in err.value.message
    for _ in range(2):
        assert (await model.propose(INPUT)).content == '{"intent": "x"}'
    with pytest.raises(ApplicationError) as err:
        await model.propose(INPUT)
    assert err.value.type == errors.MODEL_REJECTED and err.value.non_retryable
