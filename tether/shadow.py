"""Shadow evaluation: a dataset's cases run again against a candidate (model, policy), with no
side effects, and compared with what the system and the humans decided."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tether.config import Timeouts
from tether.contracts import DOMAIN
from tether.datasets import Case
from tether.names import MODEL_QUEUE


class Candidate(BaseModel):
    """What changes; everything left unset is as recorded."""

    name: str = Field(default="candidate", max_length=64)
    # A policy version from the workers' store (tether policy add); None: the active one. A
    # candidate version decides only here: it governs nothing live until activated.
    policy_version: str | None = Field(default=None, max_length=64)
    model_queue: str | None = None  # a worker serving the candidate model
    retrieve_again: bool = True  # today's index; False replays the evidence as it was


class DatasetRef(BaseModel):
    name: str
    version: int | None = None  # the latest when unset


class DatasetCases(BaseModel):
    name: str
    version: int
    cases: list[Case]


class ShadowInput(BaseModel):
    domain: str = Field(pattern=DOMAIN)  # the cases of this domain are replayed
    dataset: DatasetRef
    candidate: Candidate
    model_queue: str = MODEL_QUEUE  # the recorded model's queue, when the candidate has none
    timeouts: Timeouts = Timeouts()


class ShadowCase(BaseModel):
    request_id: str
    recorded: str  # action/mode as decided then
    candidate: str  # action/mode as the candidate decides
    recorded_reasons: list[str]
    candidate_reasons: list[str]
    human: str | None  # approve, reject, edited, or None when nobody acted
    grounding_recorded: float | None
    grounding_candidate: float | None
    changed: bool


class ShadowReport(BaseModel):
    dataset: str
    version: int
    candidate: str
    policy_version: str | None = None  # the stored version the candidate decided with
    cases: list[ShadowCase]

    @property
    def changed(self) -> list[str]:
        return [c.request_id for c in self.cases if c.changed]
