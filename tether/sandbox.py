"""The workflow sandbox Tether's workflows run in.

Temporal reloads a workflow's module for every run, and with it every module that is not
passed through. Tether's workflows live inside the ``tether`` package, so without this the
sandbox would load fresh copies of the contracts, the policy and the pack registry (empty) for
each run. Every module of the package is passed through, except the workflows themselves,
which stay sandboxed and reloaded, and with them the sandbox's guard against a call that
would not replay. The steps they share pass through too (``SHARED_STEPS``): stateless, held
to it and to replay-safe calls by tests/unit/test_sandbox.py. Every worker and replayer of
Tether's workflows uses it.
"""

from __future__ import annotations

import compileall
import functools
import importlib
import pkgutil
from pathlib import Path

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import tether

SANDBOXED = "workflows"  # tether.workflows.*: reloaded for every run
# The steps the workflows share, loaded once per process: like tether.policy, functions a
# workflow calls (with no state of their own: tests/unit/test_sandbox.py holds them to it),
# not workflows. Reloading them for every run cost about 2 of the 34 ms of CPU a workflow
# process spent on a governed request (bench, 2026-12-06).
SHARED_STEPS = ("steps", "approval", "effects")


def passthrough() -> list[str]:
    """``tether.<name>`` for every module and subpackage but the workflows (a subpackage
    passes through with everything under it), and the workflows' shared steps."""
    return [
        *(f"tether.{m.name}" for m in pkgutil.iter_modules(tether.__path__) if m.name != SANDBOXED),
        *(f"tether.{SANDBOXED}.{name}" for name in SHARED_STEPS),
    ]


# Native code that imports Python modules itself: cryptography's Rust raises
# cryptography.exceptions.InvalidSignature by importing it, which fails (and aborts the
# process) if the sandbox's importer is in the way. Signatures are verified in validators.
NATIVE = ("cryptography",)


def workflow_runner(*sandboxed: str) -> SandboxedWorkflowRunner:
    """The sandbox, with the bytecode of the modules it reloads (Tether's workflows, and
    ``sandboxed`` packages of other workflows) on disk."""
    for package in (f"tether.{SANDBOXED}", *sandboxed):
        precompile(package)
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*passthrough(), *NATIVE)
    return SandboxedWorkflowRunner(restrictions=restrictions)


@functools.cache
def precompile(package: str) -> None:
    """Write the bytecode of ``package``'s modules, once per process. The sandbox imports them
    again for every workflow run; where no bytecode is on disk (PYTHONDONTWRITEBYTECODE, an
    editable install) every run compiled them from source: a third of a workflow worker's
    CPU under load (bench/governance_overhead.py). Python reads bytecode even when told not
    to write it; a directory that cannot be written is left as it is."""
    module = importlib.import_module(package)
    where = getattr(module, "__path__", None) or [str(Path(str(module.__file__)).parent)]
    for directory in where:
        compileall.compile_dir(directory, quiet=2, workers=1)
