"""Tool contracts and the registry that validates model output against them.

Every side effect goes through a ToolSpec: typed input and output, a risk tier, the
permission it needs, a precondition checked against the target before acting, a
postcondition checked against the target after acting (never against the tool's own
answer), the state it changes (read before and after) and the call that undoes it.
The catalogue the model sees and the checks applied to what it proposes come from the
same definitions, so a tool the model invents or an argument it mistypes is refused
before any side effect, with the reason recorded.

This module is imported by workflows: it holds definitions only; the hooks are called by
the tool activities (activities/tools.py), never inside a workflow.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from tether.contracts import Proposal, ToolCall, ToolResult

Risk = Literal["read", "low", "high"]


class Target(Protocol):
    """The system a tool acts on, as its conditions see it: reads only."""

    async def read(self, path: str) -> dict[str, Any]: ...


class ConditionFailed(Exception):
    """A pre- or postcondition does not hold; the message says what the target showed."""


# (target, arguments) -> evidence that the precondition holds; raises ConditionFailed.
Precondition = Callable[[Target, Any], Awaitable[str]]
# (target, arguments, validated output, idempotency key) -> evidence of the effect.
Postcondition = Callable[[Target, Any, Any, str], Awaitable[str]]
# (target, arguments) -> the part of the target's state the tool changes.
State = Callable[[Target, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    risk: Risk
    # What a decision must grant before this tool runs (see PolicyConfig.autonomous_permissions).
    permission: str
    # Reads: GET path.format(**arguments). Writes: POST path with the arguments as body.
    path: str
    # The business system it acts on, by name (the pack declares its systems).
    system: str
    # Arguments that name a record of the request's references (argument -> reference kind):
    # the verifier wants them mentioned in the request, policy wants them read beforehand.
    references: Mapping[str, str] = field(default_factory=dict)
    # The argument that names the subject (e.g. the addressee): it must be the request's.
    subject_argument: str | None = None
    # Arguments whose text reaches the subject (a message body): verified like the answer.
    outbound: tuple[str, ...] = ()
    precondition: Precondition | None = None
    postcondition: Postcondition | None = None
    state: State | None = None
    # The call that undoes a completed effect of this tool, for sagas; None = irreversible.
    # It may return None for a result that changed nothing (a grant of access already held).
    compensation: Callable[[ToolResult], ToolCall | None] | None = None
    # False for tools only the runtime may call (compensations): never offered to the model.
    proposable: bool = True

    def __post_init__(self) -> None:
        if self.writes and self.postcondition is None:
            raise ValueError(f"{self.name}: a tool with side effects needs a postcondition")
        fields = self.input_model.model_fields
        checked = [
            *self.references,
            *([self.subject_argument] if self.subject_argument else []),
            *self.outbound,
        ]
        for argument in checked:
            if argument not in fields:
                raise ValueError(f"{self.name}: no argument {argument!r} to check")

    def referenced(self, arguments: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """(argument, kind, id) for each argument of ``arguments`` naming a record."""
        return [
            (argument, kind, str(arguments[argument]))
            for argument, kind in self.references.items()
            if arguments.get(argument) is not None
        ]

    @property
    def writes(self) -> bool:
        return self.risk != "read"


class ProposalInvalid(Exception):
    """The model's output failed the contract; ``errors`` go back to it for repair."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@functools.cache
def _schema_json(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema())


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """A tool's argument schema: generated once per model (it is asked for on every proposal),
    a fresh copy each time."""
    parsed: dict[str, Any] = json.loads(_schema_json(model))
    return parsed


class ToolRegistry:
    def __init__(self, specs: Iterable[ToolSpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._specs.values())

    def get(self, name: str) -> ToolSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}") from None

    def catalogue(self) -> list[dict[str, Any]]:
        """The tools as the model sees them: name, description, JSON schema of arguments."""
        return [
            {
                "name": spec.name,
                "description": spec.description,
                "risk": spec.risk,
                "permission": spec.permission,
                "parameters": _schema(spec.input_model),
            }
            for spec in self._specs.values()
            if spec.proposable
        ]

    def check_call(self, call: ToolCall) -> list[str]:
        """Errors for one call; empty when its tool exists and its arguments validate."""
        if call.tool not in self._specs:
            offered = sorted(n for n, spec in self._specs.items() if spec.proposable)
            return [f"tool_calls: unknown tool {call.tool!r}; known: {offered}"]
        try:
            self._specs[call.tool].input_model.model_validate(call.arguments)
        except ValidationError as err:
            return [
                f"tool_calls.{call.tool}.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in err.errors()
            ]
        return []

    def normalise(self, call: ToolCall) -> ToolCall:
        """The call with its arguments coerced by the tool's input model (e.g. '40' -> 40)."""
        args = self._specs[call.tool].input_model.model_validate(call.arguments)
        return ToolCall(tool=call.tool, arguments=args.model_dump(mode="json"))

    def validate_proposal(self, content: str, *, intents: Iterable[str]) -> Proposal:
        """Parse and validate raw model output, or raise ProposalInvalid with every error."""
        try:
            data = json.loads(content)
        except json.JSONDecodeError as err:
            raise ProposalInvalid([f"not valid JSON: {err.msg} at position {err.pos}"]) from None
        except (ValueError, RecursionError) as err:  # an integer past 4300 digits; deep nesting
            raise ProposalInvalid([f"not valid JSON: {err}"[:300]]) from None
        try:
            proposal = Proposal.model_validate(data)
        except ValidationError as err:
            raise ProposalInvalid(
                [f"{'.'.join(map(str, e['loc'])) or 'proposal'}: {e['msg']}" for e in err.errors()]
            ) from None
        errors: list[str] = []
        known = set(intents)
        if proposal.intent not in known:
            errors.append(f"intent: {proposal.intent!r} is not one of {sorted(known)}")
        for call in proposal.tool_calls:
            if call.tool in self._specs and not self._specs[call.tool].proposable:
                errors.append(f"tool_calls: {call.tool!r} is not available to the model")
                continue
            errors.extend(self.check_call(call))
        if errors:
            raise ProposalInvalid(errors)
        accepted = proposal.model_copy(
            update={"tool_calls": [self.normalise(c) for c in proposal.tool_calls]}
        )
        try:  # it travels as JSON: a lone surrogate ("\\ud800") in a citation would not
            accepted.model_dump_json()
        except PydanticSerializationError as err:
            raise ProposalInvalid([f"proposal: not writable as JSON: {err}"[:300]]) from None
        return accepted
