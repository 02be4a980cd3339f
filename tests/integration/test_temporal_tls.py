"""Reaching a secured Temporal by configuration alone: TLS with a private CA and mTLS with a
client certificate (TETHER_TEMPORAL_TLS__*), and an API key. The dev server speaks plain gRPC,
so a TLS terminator that demands a client certificate signed by the test's CA stands in front
of it, as a load balancer would; certificates come from openssl."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tether import client as tether_client
from tether.client import Tether
from tether.config import Settings, TemporalTLS

pytestmark = pytest.mark.integration


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(cwd: Path, ca: str, name: str, *extensions: str) -> None:
    """``name``.key and ``name``.crt, signed by ``ca``."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj",
             f"/CN={name}", "-out", f"{name}.csr", cwd=cwd)  # fmt: skip
    (cwd / f"{name}.ext").write_text("\n".join(extensions) + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
             cwd=cwd)  # fmt: skip


def _ca(cwd: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("pki")
    _ca(cwd, "ca")
    _ca(cwd, "other-ca")
    _issue(cwd, "ca", "server", "subjectAltName=IP:127.0.0.1,DNS:temporal.internal")
    _issue(cwd, "ca", "client", "extendedKeyUsage=clientAuth")
    return cwd


@pytest.fixture(scope="module")
async def terminator(pki: Path, temporal_env: WorkflowEnvironment) -> AsyncIterator[str]:
    """TLS in, plain gRPC out to the dev server; a client certificate from ``ca`` required."""
    upstream = temporal_env.client.service_client.config.target_host
    host, port = upstream.rsplit(":", 1)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki / "ca.crt")
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


def _settings(settings: Settings, address: str, **tls: Any) -> Settings:
    return settings.model_copy(
        update={"temporal_address": address, "temporal_tls": TemporalTLS(**tls)}
    )


async def test_mtls_with_a_private_ca_by_configuration(
    terminator: str, pki: Path, settings: Settings
) -> None:
    secured = _settings(
        settings,
        terminator,
        server_ca=pki / "ca.crt",
        client_cert=pki / "client.crt",
        client_key=pki / "client.key",
    )
    tether = await asyncio.wait_for(Tether.connect(secured), timeout=30)
    assert await tether.client.count_workflows() is not None  # a real call through TLS
    pending = await tether.pending(domain="support")
    assert isinstance(pending, list)


async def test_the_environment_configures_it(terminator: str, pki: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("TETHER_TEMPORAL_ADDRESS", terminator)
    monkeypatch.setenv("TETHER_TEMPORAL_TLS__SERVER_CA", str(pki / "ca.crt"))
    monkeypatch.setenv("TETHER_TEMPORAL_TLS__CLIENT_CERT", str(pki / "client.crt"))
    monkeypatch.setenv("TETHER_TEMPORAL_TLS__CLIENT_KEY", str(pki / "client.key"))
    client = await asyncio.wait_for(tether_client.connect(Settings()), timeout=30)
    await client.count_workflows()


@pytest.mark.parametrize(
    "tls",
    [
        {"server_ca_name": "ca.crt"},  # no client certificate: the terminator refuses
        {"server_ca_name": "other-ca.crt", "mtls": True},  # a server nobody vouched for
        {},  # plain gRPC against TLS
    ],
)
async def test_what_is_not_trusted_does_not_connect(
    terminator: str, pki: Path, settings: Settings, tls: dict[str, Any]
) -> None:
    options: dict[str, Any] = {}
    if "server_ca_name" in tls:
        options["server_ca"] = pki / tls["server_ca_name"]
    if tls.get("mtls"):
        options |= {"client_cert": pki / "client.crt", "client_key": pki / "client.key"}
    with pytest.raises(Exception):  # noqa: B017 (the SDK raises RuntimeError or RPCError)
        client = await asyncio.wait_for(
            tether_client.connect(_settings(settings, terminator, **options)), timeout=60
        )
        await asyncio.wait_for(client.count_workflows(), timeout=30)


def test_a_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="together"):
        TemporalTLS(client_cert=Path("c.crt"))


async def test_an_api_key_is_sent_and_turns_tls_on(monkeypatch: Any) -> None:
    seen: dict[str, Any] = {}

    async def fake_connect(target: str, **kwargs: Any) -> str:
        seen.update(kwargs, target=target)
        return "client"

    monkeypatch.setattr(Client, "connect", fake_connect)
    configured = Settings(temporal_address="ns.tmprl.cloud:7233", temporal_api_key="k-123")
    assert await tether_client.connect(configured) == "client"
    assert seen["api_key"] == "k-123" and seen["tls"] is None  # the SDK: on with a key
    assert "k-123" not in repr(configured)  # a secret, never printed
    plain = Settings()
    await tether_client.connect(plain)
    assert seen["api_key"] is None and seen["tls"] is None
    await tether_client.connect(Settings(temporal_tls=TemporalTLS(enabled=True)))
    assert seen["tls"] is True
