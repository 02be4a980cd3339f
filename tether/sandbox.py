"""The workflow sandbox Tether's workflows run in.

Temporal reloads a workflow's module for every run, and with it every module that is not
passed through. Tether's workflows live inside the ``tether`` package, so without this the
sandbox would load fresh copies of the contracts, the policy and the pack registry (empty) for
each run. Every module of the package is passed through, except the workflows themselves,
which stay sandboxed and reloaded. Every worker and replayer of Tether's workflows uses it.
"""

from __future__ import annotations

import pkgutil

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import tether

SANDBOXED = "workflows"  # tether.workflows.*: reloaded for every run


def passthrough() -> list[str]:
    """``tether.<name>`` for every module and subpackage but the workflows (a subpackage
    passes through with everything under it)."""
    return [
        f"tether.{m.name}" for m in pkgutil.iter_modules(tether.__path__) if m.name != SANDBOXED
    ]


# Native code that imports Python modules itself: cryptography's Rust raises
# cryptography.exceptions.InvalidSignature by importing it, which fails (and aborts the
# process) if the sandbox's importer is in the way. Signatures are verified in validators.
NATIVE = ("cryptography",)


def workflow_runner() -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*passthrough(), *NATIVE)
    return SandboxedWorkflowRunner(restrictions=restrictions)
