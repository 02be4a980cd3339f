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
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._runner import _Instance

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
    return LeanSandboxRunner(restrictions=restrictions)


@dataclass(frozen=True)
class LeanSandboxRunner(SandboxedWorkflowRunner):
    """Temporal's sandbox, less two costs it pays on every payload and every activation.

    The SDK asks the sandboxed instance for a payload's serialization context once per payload
    per codec pass (six passes an activation and its completion), each time by compiling and
    running a snippet of source inside the sandbox; and it compiles its activation snippet
    anew for every activation. Together a seventh of a workflow process's CPU under load, more
    for a governed request, which carries more payloads (py-spy, bench, 2026-12-07). Here the
    snippets are compiled once, and the context is read from the sandboxed instance directly:
    a pure lookup of the pending command, no import and nothing that would not replay
    (tests/integration/test_sandbox_contexts.py holds it to the stock sandbox's answer).
    Workflow code itself still runs with the sandbox's importer and restrictions applied. It
    subclasses the SDK's private ``_Instance``: an SDK that changes it fails that test."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _LeanInstance(det, self.runner_class, self.restrictions)


class _LeanInstance(_Instance):
    def _run_code(self, code: str, **extra_globals: Any) -> None:
        # exec runs the compiled snippet as it would its source.
        super()._run_code(_compiled(code), **extra_globals)  # type: ignore[arg-type]

    def _inside(self) -> Any:
        """The sandbox's own view of the run (temporalio's InSandbox)."""
        return self.globals_and_locals["__temporal_in_sandbox"]

    def get_serialization_context(self, command_info: Any) -> Any:
        return self._inside().get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self._inside().get_external_store_context(command_info)


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> CodeType:
    """The sandbox's snippets: a few fixed strings, and one per workflow class it loads."""
    return compile(source, "workflow_sandbox.py", "exec")


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
