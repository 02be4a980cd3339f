"""Search attributes that let operators list work with `temporal workflow list --query`.

Example: ``temporal workflow list --query "TetherStage = 'awaiting_approval'"``.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

DOMAIN = SearchAttributeKey.for_keyword("TetherDomain")  # the pack that governs it
STAGE = SearchAttributeKey.for_keyword("TetherStage")
QUEUE = SearchAttributeKey.for_keyword("TetherQueue")  # approval tier waiting, or "none"
INTENT = SearchAttributeKey.for_keyword("TetherIntent")
MODE = SearchAttributeKey.for_keyword("TetherMode")

ALL = (DOMAIN, STAGE, QUEUE, INTENT, MODE)


def cli_flags() -> list[str]:
    """`temporal server start-dev` flags that register the attributes."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
