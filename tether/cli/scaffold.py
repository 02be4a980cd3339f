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
        inside = sum(1 for f in files if f.relative_to(into / name).parts[0] == part)
        shown = f"{part}/ ({inside})" if (into / name / part).is_dir() else part
        out.print(f"  {shown:<16} {purpose}")
    out.print("\nnext:")
    for line in next_steps(name, into):
        out.print(f"  {line}")


def next_steps(name: str, into: Path) -> list[str]:
    python, tether = _beside_python("python"), _beside_python("tether")
    domains = shlex.quote(json.dumps([f"{name}:PACK"]))
    lead = f"lead@{name}.example"
    directory = {
        name: {
            "approvers": {
                lead: {"roles": [f"{name}_lead"], "keys": [{"public_key": "<printed above>"}]}
            }
        }
    }
    return [
        f"{python} -m pytest -q {shlex.quote(str(into / name / 'tests'))}",
        f"export PYTHONPATH={shlex.quote(str(into))} TETHER_DOMAINS={domains}",
        f"{tether} keys new {lead} --out lead.key   # the lead's key; prints its public key",
        f"export TETHER_POLICIES={shlex.quote(json.dumps(directory))}",
        f"{tether} up                          # in one terminal; the rest in another",
        f"{tether} ingest --domain {name}",
        f"{tether} ask 'Please reserve 3 units of REC-101.' --subject U-100 --domain {name}",
        f"{tether} ask 'I need 15 units of REC-102.' --subject U-101 --domain {name} --no-wait",
        f"{tether} approvals list --domain {name}",
        f"{tether} approvals approve <request id> --as {lead} --key lead.key --reason ok",
        "then make it your own: docs/your-own-domain.md in Tether's source repository",
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
