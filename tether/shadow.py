"""Shadow evaluation: a dataset's cases run again against a candidate (model, policy), with no
side effects, and compared with what the system and the humans decided."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tether.config import MODEL_QUEUE, PolicyConfig, Timeouts
from tether.datasets import Case


class Candidate(BaseModel):
    """What changes; everything left unset is as recorded."""

    name: str = Field(default="candidate", max_length=64)
    policy: PolicyConfig | None = None
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
    dataset: DatasetRef
    candidate: Candidate
    model_queue: str = MODEL_QUEUE  # the recorded model's queue, when the candidate has none
    policy: PolicyConfig = PolicyConfig()  # the policy in force, when the candidate has none
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
    cases: list[ShadowCase]

    @property
    def changed(self) -> list[str]:
        return [c.request_id for c in self.cases if c.changed]
