"""The distribution: `python -m build --wheel` makes a wheel that holds every module and data file
the package runs with, and that installs into a fresh venv where `tether --version`,
`tether --help`, the domain packs and `tether new-domain` work from the installed copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import tether

ROOT = Path(__file__).resolve().parents[2]
# tether/<folder> are links to these top-level folders (see pyproject.toml): the wheel must hold
# their modules under tether/, following the links.
LINKED = ("workflows", "activities", "workers", "domains")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (links kept as links): setuptools writes
    build/ and *.egg-info beside the sources, and the checkout is not this test's to touch.
    --no-isolation: an isolated build would fetch setuptools from the registry into a throwaway
    environment on every run, while the dev venv already has the setuptools>=69 that
    build-system.requires names (build checks that it is there)."""
    work = tmp_path_factory.mktemp("package")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in ("tether", *LINKED):
        shutil.copytree(ROOT / folder, src / folder, symlinks=True, ignore=SKIP)
    for folder in LINKED:
        assert (src / "tether" / folder).is_symlink(), f"tether/{folder} is no longer a link"
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", work, cwd=src)
    (built,) = work.glob("tether-*.whl")
    return built


def shipped_sources() -> set[str]:
    """Every file the package holds in the checkout, as its path inside the wheel (links
    followed): modules, and data such as intents.yaml, kb/*.md, templates, migrations."""
    files = set()
    for folder, dirs, names in os.walk(ROOT / "tether", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        here = Path(folder).relative_to(ROOT)
        files.update((here / n).as_posix() for n in names if not n.endswith(".pyc"))
    return files


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert wheel.name == f"tether-{tether.__version__}-py3-none-any.whl"
    sources = shipped_sources()
    linked = {f"tether/{folder}/__init__.py" for folder in LINKED}
    assert linked <= sources  # the walk went through the links
    missing = sources - names
    assert not missing, f"not in the wheel (pyproject.toml package-data?): {sorted(missing)}"
    assert linked <= names
    # Only the tether namespace: no generic top-level name (workflows, domains...) is installed.
    tops = {n.split("/")[0] for n in names if not n.startswith(f"tether-{tether.__version__}")}
    assert tops == {"tether"}


# Run by the fresh venv's interpreter: where everything it imports comes from, and the packs'
# data read from there.
PROBE = """
import importlib, json, sys
from pathlib import Path
import yaml
import tether
from tether import packs, scaffold
from tether.console import TEMPLATES
where = packs.installed()  # entry-point name -> module:ATTRIBUTE
print(json.dumps({
    "tether": tether.__file__,
    "version": tether.__version__,
    "editable_finder": any("__editable__" in m for m in sys.modules),
    "packs": {
        p.name: {
            "module": importlib.import_module(where[p.name].split(":")[0]).__file__,
            "intents_file": str(p.intents_file),
            "intents": sorted(yaml.safe_load(p.intents_file.read_text())["intents"]),
            "kb": sorted(str(f) for k in p.knowledge for f in Path(k.location).glob("*.md")),
        }
        for p in packs.load(None)
    },
    "console_templates": str(TEMPLATES),
    "scaffold_templates": str(scaffold._templates()),
}))
"""


def test_the_wheel_installs_and_runs_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python, tether_bin = venv / "bin" / "python", venv / "bin" / "tether"
    # --no-deps: the wheel's requirements from the registry would pull a multi-GB CUDA torch
    # and take minutes. This venv's pip installs it (--python), so the fresh one needs none.
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(*pip, "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    # The dependencies: the dev venv's site-packages, named by a .pth file. A plain path line
    # adds the directory to sys.path, after this venv's own site-packages, without running the
    # .pth files inside it; so the dev venv's editable install of tether (an import hook that
    # its own .pth installs) stays out, and `tether` is the wheel's copy.
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run(python, "-c", purelib, cwd=tmp_path).strip())
    (site / "dev_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["HF_HUB_OFFLINE"] = "1"
    version = run(tether_bin, "--version", cwd=tmp_path, env=env).split()
    assert version == ["tether", tether.__version__]
    helped = run(tether_bin, "--help", cwd=tmp_path, env=env)
    for command in ("worker", "console", "codec-server", "up", "new-domain"):
        assert command in helped

    # -I: neither the working directory nor PYTHON* variables can put the checkout on the path.
    found = json.loads(run(python, "-I", "-c", PROBE, cwd=tmp_path, env=env))
    assert Path(found["tether"]).is_relative_to(venv), found["tether"]
    assert not found["editable_finder"]
    assert found["version"] == tether.__version__
    assert {"support", "itops"} <= set(found["packs"])
    for name, pack in found["packs"].items():
        assert Path(pack["module"]).is_relative_to(venv / "lib"), (name, pack["module"])
        assert Path(pack["intents_file"]).is_relative_to(venv), name
        assert pack["intents"], name  # read from the installed intents.yaml
        assert pack["kb"], name
        assert all(Path(f).is_relative_to(venv) for f in pack["kb"]), name
    assert Path(found["console_templates"]).is_relative_to(venv)
    assert (Path(found["console_templates"]) / "base.html").is_file()
    assert Path(found["scaffold_templates"]).is_relative_to(venv)

    # The installed templates make a pack.
    run(tether_bin, "new-domain", "rentals", "--into", tmp_path / "made", cwd=tmp_path, env=env)
    assert (tmp_path / "made" / "rentals" / "intents.yaml").is_file()
    assert list((tmp_path / "made" / "rentals" / "kb").glob("*.md"))
