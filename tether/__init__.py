"""Tether: a runtime that makes AI workflows trustworthy in production, built on Temporal.

A model proposes; deterministic software validates, decides, acts, records and learns.
"""

from __future__ import annotations

from typing import Any

from tether.config import Settings
from tether.contracts import Decision, DecisionAction, Mode, Outcome, Request
from tether.errors import FeedbackRefused, InvalidRequest, ReviewRejected, TetherError

__version__ = "0.1.0"
__all__ = [
    "Decision",
    "DecisionAction",
    "FeedbackRefused",
    "InvalidRequest",
    "Mode",
    "Outcome",
    "Request",
    "ReviewRejected",
    "Settings",
    "Tether",
    "TetherError",
]


def __getattr__(name: str) -> Any:
    # Lazy: workflow code imports tether.* inside Temporal's sandbox and must not pull in
    # the client (and with it every workflow) as a side effect.
    if name == "Tether":
        from tether.client import Tether

        return Tether
    raise AttributeError(name)
