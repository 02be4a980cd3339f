"""The workflows' shared steps pass through the sandbox (tether/sandbox.py): loaded once per
process, not per run. The sandbox no longer stands between them and a non-deterministic call
or a run's state left for the next run, so these tests do: no mutable state at module or
class level, and none of the calls the sandbox would have refused."""

from __future__ import annotations
import __future__

import ast
import importlib
import inspect
import types
import typing
from datetime import timedelta
from enum import Enum
from pathlib import Path

import pytest

from tether import sandbox

STEPS = [f"tether.workflows.{name}" for name in sandbox.SHARED_STEPS]
IMMUTABLE = (
    str,
    bytes,
    int,
    float,
    bool,
    type(None),
    frozenset,
    timedelta,
    Enum,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    type,
    typing.TypeVar,
    __future__._Feature,  # from __future__ import annotations
)
# What the sandbox refuses a workflow, by the name it is reached through.
REFUSED_MODULES = {"random", "time", "uuid", "os", "socket", "threading", "secrets", "subprocess"}
REFUSED_CALLS = {"now", "utcnow", "today", "open", "sleep"}


def immutable(value: object) -> bool:
    if isinstance(value, tuple):
        return all(immutable(v) for v in value)
    return isinstance(value, IMMUTABLE) or typing.get_origin(value) is not None


def test_the_shared_steps_pass_through_and_the_workflows_do_not() -> None:
    names = sandbox.passthrough()
    assert set(STEPS) <= set(names)
    assert "tether.workflows" not in names
    assert not any(n.startswith("tether.workflows.resolution") for n in names)


@pytest.mark.parametrize("module_name", STEPS)
def test_a_shared_step_keeps_no_state_between_runs(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        if name.startswith("__"):
            continue
        assert immutable(value), f"{module_name}.{name} is a {type(value).__name__}: state"
        if inspect.isclass(value) and value.__module__ == module_name:
            for attr, held in vars(value).items():
                if attr.startswith("__") or callable(held) or isinstance(held, property):
                    continue
                if isinstance(held, (staticmethod, classmethod)):
                    continue
                assert immutable(held), f"{module_name}.{name}.{attr}: class-level state"


@pytest.mark.parametrize("module_name", STEPS)
def test_a_shared_step_makes_no_call_the_sandbox_would_refuse(module_name: str) -> None:
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(str(module.__file__)).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = {a.name.split(".")[0] for a in node.names} & REFUSED_MODULES
            assert not found, f"{module_name} imports {found}"
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in REFUSED_MODULES, node.module
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            through_workflow = isinstance(owner, ast.Name) and owner.id == "workflow"
            assert called not in REFUSED_CALLS or through_workflow, (
                f"{module_name} line {node.lineno} calls {called}: use workflow.{called}"
            )
