"""Feedback that arrives after the outcome is attached to it by request id, once."""

from __future__ import annotations

import pytest

from tests.conftest import new_id
from tether.client import Tether
from tether.errors import InvalidRequest
from tether.workers.main import Resources

pytestmark = pytest.mark.integration


async def test_later_feedback_is_attached_to_its_outcome(
    tether: Tether, resources: Resources
) -> None:
    rid = new_id("fb")
    await tether.resolve(
        {
            "request_id": rid,
            "subject": "C-100",
            "requester": "C-100",
            "text": "Where is ORD-1001?",
        }
    )
    await tether.feedback(rid, kind="complaint", detail="the parcel never came")
    await tether.feedback(rid, kind="complaint", detail="the parcel never came")  # sent twice
    [item] = resources.store.later(rid)
    assert (item["kind"], item["detail"], item["source"]) == (
        "complaint",
        "the parcel never came",
        "api",
    )

    with pytest.raises(InvalidRequest, match="no outcome for request"):
        await tether.feedback(new_id("nobody"), kind="complaint", detail="x")
    with pytest.raises(InvalidRequest, match="kind"):
        await tether.feedback(rid, kind="rumour", detail="x")
