"""The itops tools: what the model may propose against the CMDB and the change executor, each
with typed arguments, a permission, conditions read back from the systems, and its undo.

- ``lookup_asset`` reads a host, group or person from the CMDB;
- ``restart_service`` needs the service on that host and not restarting already; afterwards its
  restart is recorded under our key and the host's count reached it; it cannot be undone, so
  it runs after every step that can;
- ``add_to_group`` is undone by ``remove_from_group``, only when it changed something (a grant
  of access already held is not revoked by the saga); a revocation is never undone (a saga
  must fail closed: it does not hand access back);
- ``rotate_credential`` cannot be undone and is never autonomous;
- ``open_change_record`` is withdrawn by the saga; ``notify_requester`` tells the requester.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tether.contracts import ToolCall, ToolResult
from tether.tools import ConditionFailed, Target, ToolRegistry, ToolSpec

CMDB, CHANGES = "cmdb", "changes"
HOST_ID = r"(?:prod|stg|dev)-[a-z]+-[0-9]{2}"  # ASCII digits only, as in the CMDB
GROUP_ID = r"grp-[a-z]+(?:-[a-z]+)*"
PERSON_ID = r"E-[0-9]{3}"
ASSET_ID = rf"{HOST_ID}|{GROUP_ID}|{PERSON_ID}"
SERVICE_ID = r"svc-[a-z]+"
ASSET = "asset"  # the one reference kind: hosts, groups and people are all CMDB assets


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupAsset(_Args):
    asset_id: str = Field(pattern=rf"^(?:{ASSET_ID})$")


class ServiceArgs(_Args):
    host: str = Field(pattern=rf"^{HOST_ID}$")
    service: str = Field(pattern=rf"^{SERVICE_ID}$")
    requested_by: str = Field(pattern=rf"^{PERSON_ID}$")


class MembershipArgs(_Args):
    group: str = Field(pattern=rf"^{GROUP_ID}$")
    member: str = Field(pattern=rf"^{PERSON_ID}$")
    requested_by: str = Field(pattern=rf"^{PERSON_ID}$")


class OpenChange(_Args):
    summary: str = Field(min_length=10, max_length=1_000)
    requested_by: str = Field(pattern=rf"^{PERSON_ID}$")


class WithdrawChange(_Args):
    change_id: str = Field(pattern=r"^CHG-[0-9a-f]{10}$")


class Notify(_Args):
    employee_id: str = Field(pattern=rf"^{PERSON_ID}$")
    body: str = Field(min_length=1, max_length=2_000)


class Service(BaseModel):
    name: str
    owner_team: str
    owners: list[str]
    state: str
    restarts: int
    credential_version: int


class Asset(BaseModel):
    """A host (environment, services), a group (sensitivity, owners, members) or a person."""

    asset_id: str
    kind: Literal["host", "group", "person"]
    environment: str | None = None
    services: list[Service] = []
    sensitivity: str | None = None
    owner_team: str | None = None
    owners: list[str] = []
    members: list[str] = []
    name: str | None = None
    team: str | None = None
    manager: str | None = None

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)


class Restarted(BaseModel):
    restart_id: str
    host: str
    service: str
    restarts: int


class MembershipChanged(BaseModel):
    change_id: str
    group: str
    member: str
    member_now: bool
    changed: bool


class Rotated(BaseModel):
    rotation_id: str
    host: str
    service: str
    credential_version: int


class ChangeRecord(BaseModel):
    change_id: str
    status: str


class Notified(BaseModel):
    notification_id: str
    employee_id: str


async def _asset(target: Target, asset_id: str) -> Asset:
    return Asset.model_validate(await target.read(f"/assets/{asset_id}"))


async def _service(target: Target, args: ServiceArgs) -> Service:
    found = (await _asset(target, args.host)).service(args.service)
    if found is None:
        raise ConditionFailed(f"{args.service} does not run on {args.host}")
    return found


async def _recorded(target: Target, path: str, key: str) -> dict[str, Any]:
    """The system's own record of an effect, which must carry our idempotency key."""
    record = await target.read(path)
    if record.get("idempotency_key") != key:
        raise ConditionFailed(f"{path} was not made under this request's key")
    return record


# --- restart ----------------------------------------------------------------------------


async def _can_restart(target: Target, args: ServiceArgs) -> str:
    service = await _service(target, args)
    if service.state != "running":
        raise ConditionFailed(f"{args.service} on {args.host} is {service.state}")
    return f"{args.service} on {args.host} is running, restarted {service.restarts} times"


async def _restarted(target: Target, args: ServiceArgs, out: Restarted, key: str) -> str:
    record = await _recorded(target, f"/restarts/{out.restart_id}", key)
    service = await _service(target, args)
    if (record["host"], record["service"]) != (args.host, args.service):
        raise ConditionFailed(f"restart {out.restart_id} is of another service: {record}")
    if service.restarts < record["restarts_after"]:
        raise ConditionFailed(f"{args.service} shows {service.restarts} restarts")
    return f"{args.service} on {args.host} restart count went up to {record['restarts_after']}"


async def _restart_count(target: Target, args: ServiceArgs) -> dict[str, Any]:
    return {"restarts": (await _service(target, args)).restarts}


# --- membership ---------------------------------------------------------------------------


async def _both_exist(target: Target, args: MembershipArgs) -> str:
    group = await _asset(target, args.group)
    member = await _asset(target, args.member)
    if group.kind != "group" or member.kind != "person":
        raise ConditionFailed(f"{args.group} is a {group.kind}, {args.member} a {member.kind}")
    held = "already a member" if args.member in group.members else "not a member"
    return f"{args.group} exists; {args.member} is {held}"


def _membership_is(present: bool) -> Any:
    async def check(target: Target, args: MembershipArgs, out: MembershipChanged, key: str) -> str:
        record = await _recorded(target, f"/membership-changes/{out.change_id}", key)
        if (record["group_id"], record["employee_id"]) != (args.group, args.member):
            raise ConditionFailed(f"change {out.change_id} is of another membership: {record}")
        members = (await _asset(target, args.group)).members
        if (args.member in members) != present:
            raise ConditionFailed(f"{args.member} is {'not ' * present}in {args.group}")
        return f"{args.member} is {'' if present else 'no longer '}a member of {args.group}"

    return check


async def _members(target: Target, args: MembershipArgs) -> dict[str, Any]:
    return {"members": (await _asset(target, args.group)).members}


def _undo_membership(tool: str) -> Any:
    def undo(result: ToolResult) -> ToolCall | None:
        if result.output and not result.output.get("changed", True):
            return None  # it changed nothing: undoing it would change what was there before
        args = result.arguments
        keep = {k: args[k] for k in ("group", "member", "requested_by")}
        return ToolCall(tool=tool, arguments=keep)

    return undo


# --- credentials, change records, notes ---------------------------------------------------


async def _rotatable(target: Target, args: ServiceArgs) -> str:
    service = await _service(target, args)
    return f"{args.service} on {args.host} has credential version {service.credential_version}"


async def _rotated(target: Target, args: ServiceArgs, out: Rotated, key: str) -> str:
    record = await _recorded(target, f"/rotations/{out.rotation_id}", key)
    if (record["host"], record["service"]) != (args.host, args.service):
        raise ConditionFailed(f"rotation {out.rotation_id} is of another service: {record}")
    service = await _service(target, args)
    if service.credential_version < record["credential_version"]:
        raise ConditionFailed(f"{args.service} is at credential {service.credential_version}")
    return f"{args.service} on {args.host} credential is at version {record['credential_version']}"


async def _credential(target: Target, args: ServiceArgs) -> dict[str, Any]:
    return {"credential_version": (await _service(target, args)).credential_version}


async def _change_opened(target: Target, args: OpenChange, out: ChangeRecord, key: str) -> str:
    record = await _recorded(target, f"/changes/{out.change_id}", key)
    if record["summary"] != args.summary:
        raise ConditionFailed(f"change {out.change_id} says something else")
    return f"change {out.change_id} is {record['status']}"


async def _change_withdrawn(
    target: Target, args: WithdrawChange, out: ChangeRecord, key: str
) -> str:
    record = await target.read(f"/changes/{args.change_id}")
    if record["status"] != "withdrawn":
        raise ConditionFailed(f"change {args.change_id} is {record['status']}")
    return f"change {args.change_id} is withdrawn"


def _withdraw(result: ToolResult) -> ToolCall:
    return ToolCall(
        tool="withdraw_change_record", arguments={"change_id": result.output["change_id"]}
    )


async def _notified(target: Target, args: Notify, out: Notified, key: str) -> str:
    record = await _recorded(target, f"/notifications/{out.notification_id}", key)
    if record["body"] != args.body:
        raise ConditionFailed(f"notification {out.notification_id} differs")
    return f"notification {out.notification_id} to {args.employee_id} is recorded"


def _membership_tool(
    name: str, description: str, path: str, undo: str | None, present: bool
) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        input_model=MembershipArgs,
        output_model=MembershipChanged,
        risk="high",
        permission="access:change",
        path=path,
        system=CHANGES,
        references={"group": ASSET},
        subject_argument="requested_by",
        precondition=_both_exist,
        postcondition=_membership_is(present),
        state=_members,
        compensation=_undo_membership(undo) if undo else None,
    )


REGISTRY = ToolRegistry(
    [
        ToolSpec(
            name="lookup_asset",
            description="Read a host (environment, services and their owners), a group "
            "(sensitivity, owners, members) or a person (team, manager) from the CMDB.",
            input_model=LookupAsset,
            output_model=Asset,
            risk="read",
            permission="cmdb:read",
            path="/assets/{asset_id}",
            system=CMDB,
            references={"asset_id": ASSET},
        ),
        ToolSpec(
            name="restart_service",
            description="Restart one service on one host.",
            input_model=ServiceArgs,
            output_model=Restarted,
            risk="high",
            permission="services:restart",
            path="/restarts",
            system=CHANGES,
            references={"host": ASSET},
            subject_argument="requested_by",
            precondition=_can_restart,
            postcondition=_restarted,
            state=_restart_count,
        ),
        _membership_tool(
            "add_to_group",
            "Add a person to an access group.",
            "/memberships",
            undo="remove_from_group",
            present=True,
        ),
        _membership_tool(
            "remove_from_group",
            "Remove a person from an access group.",
            "/memberships/remove",
            undo=None,  # a saga never hands access back: a revocation stands, and runs last
            present=False,
        ),
        ToolSpec(
            name="rotate_credential",
            description="Rotate a service's credential on a host (cannot be undone).",
            input_model=ServiceArgs,
            output_model=Rotated,
            risk="high",
            permission="credentials:rotate",
            path="/rotations",
            system=CHANGES,
            references={"host": ASSET},
            subject_argument="requested_by",
            precondition=_rotatable,
            postcondition=_rotated,
            state=_credential,
        ),
        ToolSpec(
            name="open_change_record",
            description="Open a change record describing a planned change.",
            input_model=OpenChange,
            output_model=ChangeRecord,
            risk="low",
            permission="changes:open",
            path="/changes",
            system=CHANGES,
            subject_argument="requested_by",
            postcondition=_change_opened,
            compensation=_withdraw,
        ),
        ToolSpec(
            name="withdraw_change_record",
            description="Withdraw a change record (compensation only).",
            input_model=WithdrawChange,
            output_model=ChangeRecord,
            risk="low",
            permission="changes:open",
            path="/changes/withdraw",
            system=CHANGES,
            postcondition=_change_withdrawn,
            proposable=False,
        ),
        ToolSpec(
            name="notify_requester",
            description="Send the requester a message.",
            input_model=Notify,
            output_model=Notified,
            risk="low",
            permission="notes:send",
            path="/notifications",
            system=CHANGES,
            subject_argument="employee_id",
            outbound=("body",),
            postcondition=_notified,
        ),
    ]
)
