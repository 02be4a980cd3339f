"""Search attributes that let operators list work with `temporal workflow list --query`.

Example: ``temporal workflow list --query "TetherStage = 'awaiting_approval'"``.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from tether.contracts import Mode, Stage

DOMAIN = SearchAttributeKey.for_keyword("TetherDomain")  # the pack that governs it
STAGE = SearchAttributeKey.for_keyword("TetherStage")
QUEUE = SearchAttributeKey.for_keyword("TetherQueue")  # approval tier waiting, or "none"
INTENT = SearchAttributeKey.for_keyword("TetherIntent")
MODE = SearchAttributeKey.for_keyword("TetherMode")

ALL = (DOMAIN, STAGE, QUEUE, INTENT, MODE)
# As a resolution run writes them, one after another (ResolutionWorkflow._set_stage).
WRITTEN = (DOMAIN, STAGE, QUEUE, MODE, INTENT)


def at_start(domain: str) -> TypedSearchAttributes:
    """What a resolution run is listed under from its first visibility record: the client
    starts it with these, so the run need not write them itself (a write on the server)."""
    values = (domain, Stage.RECEIVED.value, "none", Mode.NORMAL.value, "unknown")
    return TypedSearchAttributes(
        [SearchAttributePair(key, value) for key, value in zip(WRITTEN, values, strict=True)]
    )


def at_start_of(found: TypedSearchAttributes) -> tuple[str, ...] | None:
    """The attributes a run was started with, as WRITTEN lists them; None unless all are there."""
    values = [found.get(key) for key in WRITTEN]
    strings = [v for v in values if isinstance(v, str)]
    return tuple(strings) if len(strings) == len(WRITTEN) else None


def cli_flags() -> list[str]:
    """`temporal server start-dev` flags that register the attributes."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
