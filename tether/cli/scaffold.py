"""`tether new-domain NAME`: scaffold a working domain pack to make one's own."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import typer

from tether.cli.apps import app
from tether.cli.output import fail, out

# What each generated file is for, in the order a newcomer reads them.
PURPOSE = {
    "__init__.py": "the pack: records, tools and their contracts, the rule, policy, fillers",
    "system.py": "the example business system: HTTP + SQLite, idempotent writes",
    "intents.yaml": "what the local model may propose: examples and plans",
    "kb": "knowledge the answers cite (markdown with front matter)",
    "tests": "the rule, the system, and two tickets end to end",
    "pytest.ini": "the pack's own test settings",
}


@app.command("new-domain")
def new_domain(
    name: str = typer.Argument(..., help="the pack's name: lower-case letters, digits and _"),
    into: Path = typer.Option(Path("domains"), "--into", help="the folder to write NAME/ in"),
) -> None:
    """Write a working domain pack to start from: tools, a rule, a policy, knowledge, a local
    business system and tests (see docs/your-own-domain.md)."""
    from tether import scaffold

    try:
        files = scaffold.create(name, into)
    except scaffold.Refused as error:
        fail(error)
    out.print(f"created {into / name}/ ({len(files)} files):")
    for part, purpose in PURPOSE.items():
        out.print(f"  {part:<14} {purpose}")
    out.print("\nnext:")
    for line in next_steps(name, into):
        out.print(f"  {line}")


def next_steps(name: str, into: Path) -> list[str]:
    python, tether = _beside_python("python"), _beside_python("tether")
    domains = shlex.quote(json.dumps([f"{name}:PACK"]))
    return [
        f"{python} -m pytest -q {shlex.quote(str(into / name / 'tests'))}",
        f"export PYTHONPATH={shlex.quote(str(into))} TETHER_DOMAINS={domains}",
        f"{tether} up                          # in one terminal; the rest in another",
        f"{tether} ingest --domain {name}",
        f"{tether} ask 'Please reserve 3 units of REC-101.' --subject U-100 --domain {name}",
        f"{tether} ask 'I need 15 units of REC-102.' --subject U-101 --domain {name} --no-wait",
        f"{tether} approvals list --domain {name}",
        "then make it your own: docs/your-own-domain.md",
    ]


def _beside_python(command: str) -> str:
    """``command`` as this environment has it: bare if it is what PATH finds, else its path
    (relative to here when it lives below)."""
    path = Path(sys.executable).parent / command
    if not path.exists() or shutil.which(command) == str(path):
        return command
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return os.fspath(path)
