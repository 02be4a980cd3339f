"""The `tether` command: run the stack, ingest knowledge, ask, review approvals, evaluate.

Human output by default; ``--json`` on every command that prints a record, for programs.
"""

from __future__ import annotations

import os
import sys

from tether.cli import (  # noqa: F401  (they add commands)
    calibration,
    candidates,
    codec,
    db,
    evaluation,
    incident,
    knowledge,
    overlay,
    requests,
    scaffold,
    stack,
    trust,
)
from tether.cli.apps import app


def main() -> None:
    """The `tether` command. Once it has finished, the process leaves without interpreter
    teardown: the Temporal client's Rust threads can abort a short-lived process there
    (temporalio/sdk-python#300), and an operator's script must see the real exit code."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from tether import packs
    from tether.cli.output import UNREACHABLE
    from tether.config import setting_unreadable, settings_problems
    from tether.errors import ConfigurationError, TemporalUnreachable

    code = 0
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except ValidationError as error:
        if error.title != "Settings":
            raise
        for line in settings_problems(error):  # one line per bad variable, no traceback
            print(line, file=sys.stderr)
        code = 2
    except SettingsError as error:  # a JSON-valued variable that is not JSON
        print(setting_unreadable(error), file=sys.stderr)
        code = 2
    except (ConfigurationError, packs.UnknownDomain) as error:  # a store, a pack not found
        print(error, file=sys.stderr)
        code = 2
    except TemporalUnreachable as error:
        print(error, file=sys.stderr)
        code = UNREACHABLE
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
