"""`tether codec-server`: the Temporal UI and CLI read encrypted histories through it."""

from __future__ import annotations

import typer
from pydantic import SecretStr

from tether.cli.apps import app
from tether.cli.output import fail, out, serve
from tether.config import Settings


@app.command("codec-server")
def codec_server(
    host: str | None = typer.Option(None, help="address to listen on (default 127.0.0.1)"),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="port to listen on (default 8234)"
    ),
    origin: list[str] = typer.Option(
        [], help="a UI origin browsers may call from (repeatable; default: the settings' UI)"
    ),
    namespace: list[str] = typer.Option(
        [], help="a namespace to serve (repeatable; default: the settings' namespace)"
    ),
    token: str | None = typer.Option(
        None,
        envvar="TETHER_CODEC_TOKEN",
        show_default=False,
        help="the bearer token callers must show (prefer the environment variable)",
    ),
    loopback: bool = typer.Option(
        False,
        "--allow-loopback-without-token",
        help="callers on this machine need no token (a local dev stack; never behind a proxy)",
    ),
) -> None:
    """Serve Temporal's remote codec (/decode, /encode) with this installation's keys."""
    from tether.codecserver import create_app

    settings = Settings()
    given = settings.codec_server  # TETHER_CODEC_SERVER__*; the options here win
    config = given.model_copy(
        update={
            "host": host or given.host,
            "port": port or given.port,
            "token": SecretStr(token) if token else given.token,
            "loopback_without_token": loopback or given.loopback_without_token,
            "origins": origin or given.origins,
            "namespaces": namespace or given.namespaces,
        }
    )
    try:
        codec_app = create_app(settings, config)
    except ValueError as error:
        fail(error)
    out.print(f"codec server on http://{config.host}:{config.port} (for --ui-codec-endpoint)")
    serve(codec_app, config.host, config.port)
