"""Bad input, fuzzed, at the tool contracts: whatever text a model returns (any text, JSON of
any shape, proposals near the contract with invented tools and arguments near each tool's
own), each pack's registry refuses it with ProposalInvalid, whose errors can be shown to the
model again, or returns a proposal of the pack's intents and the tools the model may call, with
arguments their tool's model accepts, that travels as JSON."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.hostile import JSON, KEYS, TEXT, documents, near
from tether.contracts import Proposal
from tether.domain import DomainPack
from tether.domains.itops import PACK as ITOPS
from tether.domains.support import PACK as SUPPORT
from tether.tools import ProposalInvalid

pytestmark = pytest.mark.fuzz


def _calls(pack: DomainPack) -> st.SearchStrategy[dict[str, Any]]:
    own = [
        st.fixed_dictionaries(
            {"tool": st.just(spec.name), "arguments": near(spec.input_model.model_json_schema())}
        )
        for spec in pack.tools
    ]
    invented = st.fixed_dictionaries(
        {"tool": TEXT, "arguments": st.dictionaries(KEYS, JSON, max_size=2)}
    )
    return st.one_of(*own, invented)


def _with(body: Any, parts: dict[str, Any]) -> Any:
    return {**body, **parts} if isinstance(body, dict) else body


def _content(pack: DomainPack) -> st.SearchStrategy[str]:
    """What a model may answer: mostly near a proposal of this pack, now and then anything."""
    parts = st.fixed_dictionaries(
        {},
        optional={
            "intent": st.sampled_from(pack.intents),
            "tool_calls": st.lists(_calls(pack), max_size=3),
        },
    )
    proposals = st.builds(_with, near(Proposal.model_json_schema()), parts)
    return documents(st.one_of(proposals, proposals, proposals, JSON))


CONTENT = {pack.name: _content(pack) for pack in (SUPPORT, ITOPS)}


@pytest.mark.parametrize("pack", [SUPPORT, ITOPS], ids=lambda p: p.name)
@given(data=st.data())
def test_model_output_is_refused_with_reasons_or_accepted_whole(
    pack: DomainPack, data: st.DataObject
) -> None:
    content = data.draw(CONTENT[pack.name], label="content")
    try:
        proposal = pack.tools.validate_proposal(content, intents=pack.intents)
    except ProposalInvalid as invalid:
        assert invalid.errors and all(isinstance(e, str) and e for e in invalid.errors)
        "; ".join(invalid.errors).encode()  # they go back to the model in its next prompt
        return
    assert proposal.intent in pack.intents
    for call in proposal.tool_calls:
        spec = pack.tools.get(call.tool)
        assert spec.proposable, call.tool
        # normalised: what the tool's model makes of the arguments is what they are
        assert spec.input_model.model_validate(call.arguments).model_dump(mode="json") == (
            call.arguments
        )
    assert Proposal.model_validate_json(proposal.model_dump_json()) == proposal
