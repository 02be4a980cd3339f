"""The deployment bundle (docker-compose.yml, Dockerfile, deploy/tether.env.example) is checked
without a container engine: Debian's docker-compose validates and resolves the compose file,
and what it resolves is held against the code: the settings Tether knows, the commands its CLI
has, the files it mounts, the search attributes it writes."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

import tether.cli  # noqa: F401  (registers the commands)
from tether import search
from tether.cli.apps import app
from tether.codecserver import CodecServer
from tether.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
EXAMPLE = ROOT / "deploy" / "tether.env.example"
DOCKERFILE = ROOT / "Dockerfile"
IMAGE = "tether:local"  # the image docker-compose.yml builds from the Dockerfile
# Prometheus scrapes these on TETHER_METRICS_ADDRESS (deploy/prometheus/prometheus.yml).
SCRAPED = {"worker-workflow", "worker-compute", "worker-model", "worker-shadow", "console"}
WORKERS = SCRAPED - {"console"}
METRICS_PORT = 9464
DOCKER_COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"


def setting_names(model: type[BaseModel] = Settings, prefix: str = "TETHER_") -> set[str]:
    """Every variable pydantic-settings maps onto ``model`` (env_prefix TETHER_, nested
    delimiter __), nested models included."""
    names = set()
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        names.add(variable)
        for nested in _models(field.annotation):
            names |= setting_names(nested, f"{variable}__")
    return names


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds: itself, or a member of its union (X | None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    return []


def example_variables() -> dict[str, str]:
    """The example's variables, those commented out included: name -> value as written."""
    found = {}
    for line in EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"(?:# )?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match[1]] = match[2]
    return found


def filled_example(path: Path) -> Path:
    """The example as an operator fills it: every secret made, every optional line taken."""
    made = {
        # Two keys: the example names k2 the primary, as after a rotation.
        "TETHER_ENCRYPTION__KEYS": "'"
        + json.dumps({k: base64.b64encode(os.urandom(32)).decode() for k in ("k1", "k2")})
        + "'",
    }
    lines = []
    for name, value in example_variables().items():
        lines.append(f"{name}={value or made.get(name) or secrets.token_hex(24)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    # Only PATH and HOME: a TETHER_* variable in this shell would reach the bare names.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    return subprocess.run(
        [DOCKER_COMPOSE, "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# CI installs it (.ci/run): missing there is a failure, elsewhere a skip that says why.
MISSING = not Path(DOCKER_COMPOSE).exists() and not os.environ.get("CI")
needs_compose = pytest.mark.skipif(
    MISSING,
    reason="docker-compose is not installed (Debian's package docker-compose; .ci/run installs it)",
)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """docker-compose.yml as docker-compose resolves it with the filled example."""
    if MISSING:
        pytest.skip("docker-compose is not installed (Debian's docker-compose; .ci/run has it)")
    env_file = filled_example(tmp_path_factory.mktemp("compose") / "filled.env")
    checked = compose("config", "-q", env_file=env_file)
    assert checked.returncode == 0, checked.stderr
    done = compose("config", env_file=env_file)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def tether_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = config["services"]
    return {name: s for name, s in services.items() if s.get("image") == IMAGE}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """What the container gets: a bare name left unset in the env file is not passed."""
    given = service.get("environment") or {}
    return {k: str(v) for k, v in given.items() if v is not None}


def test_setting_names_follow_the_nested_models() -> None:
    names = setting_names()
    assert {"TETHER_STORE_URL", "TETHER_CONSOLE__SECRET", "TETHER_ENCRYPTION__KEYS"} <= names
    assert "TETHER_TIMEOUTS__MODEL_RETRY__MAXIMUM_ATTEMPTS" in names  # two levels down
    assert "TETHER_CONSOLE" in names and "TETHER_CONSOLE_SECRET" not in names


@needs_compose
def test_compose_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    """The example ships no secret: as it is, docker-compose stops and says how to make one."""
    shipped = tmp_path / "example.env"
    shutil.copy(EXAMPLE, shipped)
    done = compose("config", "-q", env_file=shipped)
    assert done.returncode != 0
    assert "deploy/tether.env.example says how" in done.stderr, done.stderr


def test_the_example_names_only_settings_that_compose_passes(resolved: dict[str, Any]) -> None:
    known = setting_names()
    ours = {n for n in example_variables() if n.startswith("TETHER_")}
    assert ours - known == set(), "not a Settings field"
    passed = {n for s in tether_services(resolved).values() for n in s.get("environment", {})}
    assert ours - passed == set(), "in the example, but no service passes it (silently ignored)"


def test_every_tether_variable_in_compose_is_a_setting(resolved: dict[str, Any]) -> None:
    known = setting_names()
    for name, service in resolved["services"].items():
        variables = {v for v in service.get("environment") or {} if v.startswith("TETHER_")}
        assert variables - known == set(), f"{name}: not Settings fields"


def test_each_tether_service_gets_valid_settings(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = tether_services(resolved)
    assert set(services) == {*SCRAPED, "console", "codec-server", "evaluation-schedule"}
    for name, service in services.items():
        for variable in list(os.environ):
            if variable.startswith("TETHER_"):
                monkeypatch.delenv(variable)
        for variable, value in environment(service).items():
            monkeypatch.setenv(variable, value)
        settings = Settings()  # as the container's `tether` reads them
        assert settings.encryption.keys, name  # history is encrypted everywhere
        if name in SCRAPED:
            assert settings.metrics_address == f"0.0.0.0:{METRICS_PORT}", name
        if name in WORKERS:
            assert settings.store_url and settings.store_url.startswith("postgresql+psycopg://")
            assert settings.qdrant_url == "http://qdrant:6333"
            assert settings.compute_queue, name  # worker-workflow runs nothing CPU-heavy
        if name == "console":
            assert settings.console.secret is not None
            assert settings.console.host == "0.0.0.0"
            assert f"127.0.0.1:{settings.console.port}:{settings.console.port}" in _ports(service)
        if name == "evaluation-schedule":  # made once, and an operator's own kept
            assert service["command"] == ["eval", "schedule", "--keep"]
            assert service["restart"] == "on-failure"  # until Temporal answers, then done
            assert settings.evaluation_every is not None
        if name == "codec-server":
            CodecServer(settings, settings.codec_server)  # it would start: keys, who may call
            ui = resolved["services"]["temporal-ui"]
            endpoint = ui["environment"]["TEMPORAL_CODEC_ENDPOINT"]
            assert endpoint == f"http://localhost:{settings.codec_server.port}"
            ui_port = next(p.split(":")[1] for p in _ports(ui))
            assert f"http://localhost:{ui_port}" in settings.codec_server.origins


def _ports(service: dict[str, Any]) -> list[str]:
    """Published ports as host_ip:published:target, whichever form docker-compose prints."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            port = f"{port.get('host_ip', '')}:{port['published']}:{port['target']}"
        found.append(str(port).removesuffix("/tcp"))
    return found


def test_only_loopback_is_published(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        for port in _ports(service):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_each_tether_service_runs_a_real_command(resolved: dict[str, Any]) -> None:
    from tether.workers.main import ROLES

    runner = CliRunner()
    commands = {name: s["command"] for name, s in tether_services(resolved).items()}
    commands["Dockerfile CMD"] = dockerfile_json("CMD")
    assert dockerfile_json("ENTRYPOINT") == ["tether"]
    for name, command in commands.items():
        done = runner.invoke(app, [*command, "--help"])
        assert done.exit_code == 0, f"{name}: tether {' '.join(command)}: {done.output}"
        if command[0] == "worker" and "--role" in command:
            assert command[command.index("--role") + 1] in ROLES, name
    roles = {tuple(c) for n, c in commands.items() if n.startswith("worker-")}
    assert roles == {("worker", "--role", r) for r in ("workflow", "compute", "model", "shadow")}


def test_mounted_files_exist(resolved: dict[str, Any]) -> None:
    mounted = []
    for service in resolved["services"].values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("/"):  # a path, not a named volume
                mounted.append(Path(source))
    assert mounted, "docker-compose.yml mounts nothing from the repository?"
    for path in mounted:
        assert path.is_relative_to(ROOT), f"{path} is outside the repository"
    missing = [p.relative_to(ROOT).as_posix() for p in mounted if not p.exists()]
    assert not missing, f"mounted but missing: {missing}"


def test_prometheus_and_grafana_find_what_compose_runs() -> None:
    """Names agreed with deploy/: the scrape targets, Grafana's datasource and dashboards."""
    scrape = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    text = scrape.read_text()
    for service in SCRAPED:
        assert service in text, f"prometheus.yml does not scrape {service}"
    assert str(METRICS_PORT) in text
    provisioned = "\n".join(p.read_text() for p in provisioning.rglob("*.y*ml"))
    assert "http://prometheus:9090" in provisioned  # the compose service
    assert "/var/lib/grafana/dashboards" in provisioned  # where tether.json is mounted


def test_the_search_attributes_created_are_tethers(resolved: dict[str, Any]) -> None:
    script = " ".join(resolved["services"]["temporal-admin"]["command"])
    listed = re.search(r"for key in ([\w ]+); do", script)
    assert listed is not None, script
    assert set(listed[1].split()) == {key.name for key in search.ALL}


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def dockerfile_json(instruction: str) -> list[str]:
    (line,) = [i for i in dockerfile() if i.startswith(f"{instruction} ")]
    form: list[str] = json.loads(line.split(" ", 1)[1])
    return form


def test_the_dockerfile_copies_what_exists_and_runs_as_settled() -> None:
    lines = dockerfile()
    ignored = (ROOT / ".dockerignore").read_text().split()
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{line}: {source} does not exist"
                assert f"!{source.rstrip('/')}" in ignored, f"{source} is not in the context"
    assert lines[0].startswith("FROM python:3.11-slim")
    torch = next(i for i in lines if "torch==" in i)
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in torch
    assert lines.index(torch) < next(i for i, x in enumerate(lines) if ".whl" in x)
    users = [i.split()[1] for i in lines if i.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    env = " ".join(i for i in lines if i.startswith("ENV "))
    assert "HF_HUB_OFFLINE=1" in env
    assert set(re.findall(r"\b(TETHER_\w+)=", env)) <= setting_names()
