"""Datasets carved from failure history: escalations, reversals, human edits, complaints and
slow requests become named, versioned sets of cases. Each case holds the request, the evidence
as it was, what the system did and what the humans did, to replay candidates against."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from tether.contracts import UNDONE_FEEDBACK, DecisionAction, Outcome


class Case(BaseModel):
    outcome: Outcome  # the request, the evidence as it was, what the system did
    later: list[dict[str, Any]] = []  # what people said or did afterwards

    @property
    def request_id(self) -> str:
        return self.outcome.request_id


Rule = Callable[[Outcome, list[dict[str, Any]], float], bool]

RULES: dict[str, Rule] = {
    "escalations": lambda o, _, __: o.decision.action is DecisionAction.APPROVAL,
    "reversals": lambda o, later, _: (
        bool(o.compensations) or any(f["kind"] in UNDONE_FEEDBACK for f in later)
    ),
    "edits": lambda o, _, __: bool(o.edits),
    "complaints": lambda o, later, _: any(f["kind"] == "complaint" for f in later),
    "slow": lambda o, _, slo_ms: (
        not o.reviews and (o.finished_at - o.started_at).total_seconds() * 1000 > slo_ms
    ),
}


def carve(
    outcomes: Sequence[Outcome],
    later: Callable[[str], list[dict[str, Any]]],
    *,
    slo_ms: float,
) -> dict[str, list[Case]]:
    """Every rule's cases, oldest first."""
    sets: dict[str, list[Case]] = {name: [] for name in RULES}
    for outcome in outcomes:
        heard = [
            {k: str(v) for k, v in f.items() if k in ("kind", "detail", "source", "at")}
            for f in later(outcome.request_id)
        ]
        for name, rule in RULES.items():
            if rule(outcome, heard, slo_ms):
                sets[name].append(Case(outcome=outcome, later=heard))
    return sets


def digest(cases: Sequence[Case]) -> str:
    """Identifies a dataset's content: a new version only when the cases change."""
    h = hashlib.sha256()
    for case in cases:
        h.update(case.model_dump_json().encode())
    return h.hexdigest()
