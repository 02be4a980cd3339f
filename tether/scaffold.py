"""`tether new-domain NAME`: a working domain pack to start from, written from templates.

The pack (``DIR/NAME/``) is a minimal business of its own: records, a read tool and a write
tool with full contracts and a compensation, a notify tool, one rule, two intents, a policy
with one tier, knowledge, a real local HTTP system with SQLite, and tests that run it through
the real worker. The templates (``tether/templates/newdomain/*.tmpl``) are ``string.Template``
text: ``$name``, ``$Name``, ``$port`` and ``$today`` are replaced, ``$$`` is a dollar sign, and
Python's braces need no escaping.
"""

from __future__ import annotations

import hashlib
import importlib.util
import keyword
import re
import secrets
import shutil
import sys
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from tether import packs

NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
# Packs this project ships or tests with: a second pack of the same name could not be served
# beside them (the registry refuses two packs of one name).
KNOWN_PACKS = frozenset({"support", "itops", "rooms"})
SUFFIX = ".tmpl"
PORTS = range(8800, 9000)  # where a pack's system listens by default, one port per name


class Refused(ValueError):
    """The pack cannot be written as asked; nothing was written."""


def problems(name: str, into: Path) -> list[str]:
    """Why ``name`` cannot become ``into/name``: empty when it can."""
    if not NAME.fullmatch(name):
        return [
            f"{name!r} is not a pack name: 2-31 characters, lower-case letters, digits and _,"
            " starting with a letter"
        ]
    found = []
    if keyword.iskeyword(name):
        found.append(f"{name!r} is a Python keyword: the pack is imported by its name")
    if name in KNOWN_PACKS or name in packs.installed():
        found.append(f"{name!r} is the name of an existing pack")
    elif name in sys.stdlib_module_names or importlib.util.find_spec(name) is not None:
        found.append(f"{name!r} is a module importable here already: {name}:PACK would find it")
    if into.exists() and not into.is_dir():
        found.append(f"{into} is not a folder")
    elif (into / name).exists():
        found.append(f"{into / name} already exists")
    return found


def default_port(name: str) -> int:
    """The system's default port, the same for a name every time (tests choose free ones)."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    return PORTS[digest % len(PORTS)]


def words(name: str) -> dict[str, str]:
    """What the templates' placeholders become for ``name``."""
    return {
        "name": name,
        "Name": name.replace("_", " ").title(),
        "port": str(default_port(name)),
        "today": datetime.now(UTC).date().isoformat(),
    }


def _templates() -> Traversable:
    return resources.files("tether") / "templates" / "newdomain"


def _walk(folder: Traversable, under: Path = Path()) -> list[tuple[Path, Traversable]]:
    """(relative path of the file to write, its template) for every template in ``folder``."""
    found: list[tuple[Path, Traversable]] = []
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.is_dir():
            found += _walk(item, under / item.name)
        elif item.name.endswith(SUFFIX):
            found.append((under / item.name.removesuffix(SUFFIX), item))
    return found


def create(name: str, into: Path) -> list[Path]:
    """Write the pack ``into/name`` and return its files; Refused (and nothing written) if
    the name or the place will not do. Written beside the target and moved into place at the
    end, so a failure half-way leaves nothing behind."""
    found = problems(name, into)
    if found:
        raise Refused("; ".join(found))
    values = words(name)
    # Not mkdtemp: its folder is 0700, kept by the rename, and a worker or CI job running as
    # another user could not import the pack. mkdir gives what the umask says.
    staging = into / f".{name}-{secrets.token_hex(6)}"
    try:
        into.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as err:
        raise Refused(f"--into {into}: {err}") from None
    try:
        written = []
        for relative, template in _walk(_templates()):
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(Template(template.read_text(encoding="utf-8")).substitute(values))
            written.append(into / name / relative)
        staging.rename(into / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written
