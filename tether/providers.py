"""The model provider interface. The local model implements it; HTTP providers will too."""

from __future__ import annotations

from typing import Protocol

from tether.contracts import ModelIdentity, ProposeInput, RawProposal


class ModelProvider(Protocol):
    def identity(self) -> ModelIdentity: ...

    async def propose(self, inp: ProposeInput) -> RawProposal:
        """Return the model's output as JSON text; validation happens in the workflow."""
        ...
