"""How the `tether` command speaks: human text that never reads user text as markup, one JSON
document per record with ``--json`` (always valid, whatever the terminal), errors to stderr."""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import sys
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from tether.errors import ConfigurationError, TemporalUnreachable

# markup=False: a ticket saying "[/red]" or "[bold]" is printed as written, never styled.
# emoji=False: "hotfix:fire:2" is a version name, not a picture.
out = Console(
    markup=False, highlight=False, emoji=False, width=None if sys.stdout.isatty() else 150
)
err = Console(stderr=True, markup=False, highlight=False, emoji=False)
T = TypeVar("T")

UNREACHABLE = 3  # exit code: Temporal did not answer (2: bad input, 1: refused)

JSON = typer.Option(False, "--json", help="print one JSON document on stdout (for programs)")


def fail(message: object, code: int = 2) -> NoReturn:
    """Say what is wrong on stderr, on one line however long (the terminal wraps it, not
    rich), and leave with ``code`` (2: bad input, 1: refused)."""
    err.print(str(message), style="red", soft_wrap=True)
    raise typer.Exit(code)


# Left raw by json.dumps(ensure_ascii=False), though a reader may break a line at them (U+2028,
# U+2029, NEL) or a terminal obey them (C1 controls): escaped. Only strings can hold them.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")


def _finite(data: Any) -> Any:
    """NaN and infinities (a metric's +Inf) as null: JSON has no word for them."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def emit(record: BaseModel | list[Any] | dict[str, Any]) -> None:
    """One JSON document on stdout, on one line."""
    data = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
    text = json.dumps(_finite(data), ensure_ascii=False, default=str, allow_nan=False)
    sys.stdout.write(_UNSAFE.sub(lambda c: f"\\u{ord(c[0]):04x}", text) + "\n")


def dump(records: list[BaseModel]) -> list[Any]:
    return [r.model_dump(mode="json") for r in records]


def serve(app: Any, host: str, port: int) -> None:
    """An HTTP app until interrupted. uvicorn leaves with 3 when it cannot start (the port in
    use, no such address), which here says Temporal is unreachable: 1, after its own line."""
    import uvicorn

    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except SystemExit as exit_:
        if exit_.code == UNREACHABLE:
            fail(f"could not serve on {host}:{port} (the line above says why)", code=1)
        raise


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ConfigurationError as error:  # no command can do anything useful with these settings
        fail(error)
    except TemporalUnreachable as error:  # worth trying again later: not the input's fault
        fail(error, code=UNREACHABLE)


async def until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def parse_interval(text: str) -> timedelta:
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        fail(f"--every {text!r}: expected a number and s, m, h or d")
    return timedelta(**{units[unit]: int(number)})
