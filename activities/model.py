"""The model activity: asks the configured provider for a proposal (model task queue)."""

from __future__ import annotations

from temporalio import activity

from tether import names
from tether.contracts import ProposeInput, RawProposal
from tether.providers import ModelProvider


class ModelActivities:
    def __init__(self, provider: ModelProvider) -> None:
        self._provider = provider

    @activity.defn(name=names.PROPOSE)
    async def propose_resolution(self, inp: ProposeInput) -> RawProposal:
        return await self._provider.propose(inp)
