"""How the `tether` command speaks: human text that never reads user text as markup, one JSON
document per record with ``--json`` (always valid, whatever the terminal), errors to stderr."""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import sys
from collections.abc import Coroutine, Iterable
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.segment import Segment
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.service import RPCError, RPCStatusCode

from tether import errors
from tether.config import Settings
from tether.errors import ConfigurationError, TemporalUnreachable
from tether.text import hidden, visible


class _Shown(Console):
    """Text from data (a ticket, a passage the model quoted, an approver's edit) never drives
    the terminal: its escape sequences and direction overrides are printed as escapes. Rich's
    own styling is in the segments' styles, rendered after this, and is untouched."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            Segment(visible(text), style, control) if control is None else segment
            for segment in buffer
            for text, style, control in [segment]
        )


# markup=False: a ticket saying "[/red]" or "[bold]" is printed as written, never styled.
# emoji=False: "hotfix:fire:2" is a version name, not a picture.
out = _Shown(markup=False, highlight=False, emoji=False, width=None if sys.stdout.isatty() else 150)
err = _Shown(stderr=True, markup=False, highlight=False, emoji=False)
T = TypeVar("T")

UNREACHABLE = 3  # exit code: Temporal did not answer (2: bad input, 1: refused)

JSON = typer.Option(False, "--json", help="print one JSON document on stdout (for programs)")


def problems(error: ValidationError) -> str:
    """pydantic's many-line report as one line: 'field: message; field: message'."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()
    )


def kept_text(option: str, value: str, limit: int, *, lines: bool) -> str:
    """``value`` as kept in an audit, or a refusal: blank, too long, or with control or
    invisible characters (a name is one line; a reason may have lines and tabs)."""
    value = value.strip()
    if not value:
        fail(f"{option}: say {'who' if option == '--by' else 'why'}")
    if len(value) > limit:
        fail(f"{option}: at most {limit} characters")
    odd = hidden(value, "\n\t" if lines else "")
    if odd:
        shown = ", ".join(f"U+{ord(c):04X}" for c in odd[:5])
        fail(f"{option}: control or invisible characters are not kept ({shown})")
    return value


def fail(message: object, code: int = 2) -> NoReturn:
    """Say what is wrong on stderr, on one line however long (the terminal wraps it, not
    rich), and leave with ``code`` (2: bad input, 1: refused)."""
    err.print(str(message), style="red", soft_wrap=True)
    raise typer.Exit(code)


# Left raw by json.dumps(ensure_ascii=False), though a reader may break a line at them (U+2028,
# U+2029, NEL) or a terminal obey them (C1 controls): escaped. Only strings can hold them.
_UNSAFE = re.compile(
    "[\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)


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

    from tether.stack import http_config

    try:
        server = uvicorn.Server(http_config(app, host, port))
        server.run()
        if not server.started:  # as uvicorn.run says it
            raise SystemExit(UNREACHABLE)
    except SystemExit as exit_:
        if exit_.code == UNREACHABLE:
            fail(f"could not serve on {host}:{port} (the line above says why)", code=1)
        raise


def store_url(settings: Settings | None = None) -> str:
    """The workers' store: TETHER_STORE_URL, or the data folder's file, the folder made (a
    command run where nothing has run yet reads an empty store, not 'unable to open')."""
    settings = settings or Settings()
    if settings.store_url is None:
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            fail(f"TETHER_DATA_DIR {settings.data_dir}: {error}")
    return settings.resolved_store_url()


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ConfigurationError as error:  # no command can do anything useful with these settings
        fail(error)
    except TemporalUnreachable as error:  # worth trying again later: not the input's fault
        fail(error, code=UNREACHABLE)
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            fail(error.message)  # no such request; a query the server cannot read
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            fail(f"Temporal went away: {error.message}", code=UNREACHABLE)  # worth a retry
        fail(f"Temporal refused: {error.message}", 1)
    except WorkflowFailureError as error:  # what the run said, not the client's traceback
        cause = innermost(error)
        bad_input = isinstance(cause, ApplicationError) and cause.type == errors.INVALID_DOCUMENT
        fail(f"failed: {getattr(cause, 'message', None) or cause}", 2 if bad_input else 1)


def innermost(error: BaseException) -> BaseException:
    """The reason of a run's failure: an activity's or a child's own, not "Activity task
    failed" around it."""
    cause = error
    while isinstance(cause, (WorkflowFailureError, ActivityError, ChildWorkflowError)) and (
        cause.cause is not None
    ):
        cause = cause.cause
    return cause


async def until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


LONGEST = timedelta(days=3650)  # a window, an interval: ten years is already none


def within(value: float, option: str, high: float, *, low: float = 0.0) -> float:
    """A number option above ``low`` and at most ``high``; NaN and infinities are neither."""
    if not (math.isfinite(value) and low < value <= high):
        fail(f"{option}: a number above {low:g} and at most {high:g} (got {value!r})")
    return value


def parse_interval(text: str) -> timedelta:
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    number, unit = text[:-1], text[-1:]
    # isascii: "²".isdigit() is true, and int("²") is not a number
    if unit not in units or not (number.isascii() and number.isdigit()) or int(number) == 0:
        fail(f"--every {text!r}: expected a number and s, m, h or d")
    if int(number) > LONGEST.days * 86_400:
        fail(f"--every {text!r}: at most {LONGEST.days} days")
    interval = timedelta(**{units[unit]: int(number)})
    if interval > LONGEST:
        fail(f"--every {text!r}: at most {LONGEST.days} days")
    return interval
