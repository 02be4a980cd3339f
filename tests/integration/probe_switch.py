"""What a test flips between a run and its replay, as a deploy changes code under a run:
ChangeProbe (probes.py) imports this module passed through the sandbox, so a run and the
test see one object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Switch:
    meets_change: bool = True  # whether ChangeProbe's run asks changed("probe/first")


SWITCH = Switch()
