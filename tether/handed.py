"""Reading what someone else wrote: a file an operator names (a key, a policy) and YAML from
a document fetched from anywhere. Bounded before it is parsed: a regular file only (a FIFO
would block the reader forever), of a size a key or a policy could be, and YAML without
aliases (an alias bomb of a few hundred bytes expands to gigabytes)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml


class Unreadable(ValueError):
    """The file is not one to read: what it is instead, in words."""


def read_small(path: Path, limit: int) -> str:
    """The UTF-8 text of ``path``, a regular file of at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO must not wait
    except OSError as err:
        raise Unreadable(err.strerror or str(err)) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable("not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"larger than {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8 text") from None


class _WithoutAliases(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases are not read here", mark)
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` without anchors' aliases (``*name``): plain data only."""
    return yaml.load(text, Loader=_WithoutAliases)


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line: what, and where (PyYAML's own spans four)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
