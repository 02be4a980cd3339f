"""The runtime's seam with the business: the core names no business, imports no domain pack,
and installs no generic top-level package; the client needs no workflow code."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The core: tether's own modules (not the links to the design card's folders) and the
# workflows and activities. Workers wire packs in by name; they are checked for imports.
CORE = [
    *[p for p in (ROOT / "tether").glob("*.py")],
    *(ROOT / "workflows").glob("*.py"),
    *(ROOT / "activities").glob("*.py"),
]
# The issue's own check: words of the support business, anywhere in the core, comments too.
BUSINESS = re.compile(r"(^|[^a-z])(order|refund|customer|cents|northwind)", re.IGNORECASE)
ALLOWED = re.compile(r"order_by|ordered|ordering|in order", re.IGNORECASE)


def test_the_core_names_no_business() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in CORE
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if BUSINESS.search(line) and not ALLOWED.search(line)
    ]
    assert found == []


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize(
    "path", [*CORE, *(ROOT / "workers").glob("*.py")], ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_core_module_imports_a_domain_pack(path: Path) -> None:
    bad = {
        n
        for n in _imports(path)
        if n.split(".")[0] in {"domains", "workflows", "activities", "workers"}
        or n.startswith("tether.domains")
    }
    assert bad == set()


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_the_library_imports_without_any_domain_or_app() -> None:
    loaded = _modules_after("import tether, tether.client, tether.policy, tether.domain")
    assert not {m for m in loaded if m.startswith(("tether.domains", "tether.workflows"))}
    assert not {m for m in loaded if m.startswith(("tether.workers", "tether.activities"))}


def test_packs_load_by_name_from_their_entry_point() -> None:
    loaded = _modules_after("from tether import packs; packs.load(['support'])")
    assert "tether.domains.support" in loaded
    assert "tether.domains.support.business" not in loaded  # no web server imported to decide


def test_no_generic_top_level_package_is_installed() -> None:
    top = distribution("tether").read_text("top_level.txt") or ""
    assert top.split() == ["tether"]
    for name in ("workflows", "activities", "workers", "domains"):
        found = subprocess.run(
            [sys.executable, "-c", f"import importlib.util as u; print(u.find_spec({name!r}))"],
            cwd="/",
            capture_output=True,
            text=True,
            check=True,
        )
        assert found.stdout.strip() == "None", name
