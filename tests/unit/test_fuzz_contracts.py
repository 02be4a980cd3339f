"""Bad input, fuzzed, at the contracts: whatever arrives (JSON-like values of any shape, values
near each model's schema with hostile text and numbers in every spelling, JSON text that only
looks like JSON) is refused with a pydantic ValidationError and nothing else; what is accepted
from JSON can be written as JSON again, and an accepted request survives the trip whole.

(Validated from Python objects, a Proposal or ToolCall may hold a lone surrogate in a field
that is a bare ``str`` or ``Any``, which no JSON writer takes: validate_proposal refuses such
a proposal, see test_fuzz_tools.)"""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.unit.builders import GOOD
from tests.unit.hostile import JSON, documents, matching, near, texts
from tether.contracts import IDENT, KIND, Edit, Proposal, Request, Review, ToolCall

pytestmark = pytest.mark.fuzz

CONTRACTS: list[type[BaseModel]] = [Request, Proposal, ToolCall, Review, Edit]
# Text near each contract's schema, or JSON of any shape: every contract reads all of it (a
# fifth is near its own schema), which costs one generated document, not five.
DOCUMENTS = documents(st.one_of(JSON, *(near(c.model_json_schema()) for c in CONTRACTS)))


@given(DOCUMENTS)
def test_bad_input_is_refused_with_a_validation_error_only(text: str) -> None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # no JSON, or none Python reads
        value = None
    for contract in CONTRACTS:
        with contextlib.suppress(ValidationError):
            contract.model_validate_json(text).model_dump_json()  # what came as JSON goes back
        with contextlib.suppress(ValidationError):
            contract.model_validate(value)


IDS = st.one_of(st.sampled_from(["C-1", "E-201", "r.1:a@b-c"]), matching(IDENT))
REQUESTS = st.fixed_dictionaries(
    {
        "request_id": IDS,
        "subject": IDS,
        "requester": IDS,
        "text": st.one_of(
            texts(min_size=3, max_size=60, encodable=True),
            st.builds(
                lambda piece, times: piece * times,
                texts(min_size=1, max_size=4, encodable=True),
                st.integers(3, 1_000),
            ),
            st.just(GOOD["text"]),
        ),
    },
    optional={
        "channel": st.sampled_from(["email", "chat", "api"]),
        "references": st.dictionaries(
            matching(KIND),
            st.one_of(IDS, st.lists(IDS, min_size=1, max_size=3)),
            max_size=3,
        ),
    },
)


@given(REQUESTS)
def test_an_accepted_request_survives_json(value: dict[str, object]) -> None:
    try:
        request = Request.model_validate(value)
    except ValidationError:
        reject()  # text of blanks, short once stripped
    assert Request.model_validate_json(request.model_dump_json()) == request
    assert Request.model_validate(request.model_dump()) == request
