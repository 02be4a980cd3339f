"""`tether codec-server`: the Temporal UI and CLI read encrypted histories through it."""

from __future__ import annotations

import typer

from tether.cli.apps import app
from tether.cli.output import fail, out
from tether.config import Settings


@app.command("codec-server")
def codec_server(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int | None = typer.Option(None, help="port to listen on (default 8234)"),
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
    import uvicorn

    from tether.codecserver import DEFAULT_PORT, CodecServerConfig, create_app

    config = CodecServerConfig(
        host=host,
        port=port or DEFAULT_PORT,
        token=token,
        loopback_without_token=loopback,
        origins=origin,
        namespaces=namespace,
    )
    try:
        codec_app = create_app(Settings(), config)
    except ValueError as error:
        fail(error)
    out.print(f"codec server on http://{host}:{config.port} (for --ui-codec-endpoint)")
    uvicorn.run(codec_app, host=host, port=config.port, log_level="warning")
