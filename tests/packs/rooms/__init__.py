"""A domain pack that lives only in the test tree: an office's facilities desk, where
employees ask for meeting rooms. It shares nothing with support but the runtime, and is
registered by configuration alone (Settings.domains = [..., "tests.packs.rooms:PACK"])."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tether.config import ApprovalTier, PolicyConfig
from tether.contracts import ContextRecord, Facts, Finding, Request, ToolCall, ToolResult
from tether.domain import DomainPack, KnowledgeSource, ReferenceKind, SystemSpec
from tether.policy import Allow, Escalate, Reject, Verdict, writes_of
from tether.tools import ConditionFailed, Target, ToolRegistry, ToolSpec

HERE = Path(__file__).resolve().parent
ROOM_ID = r"RM-\d{3}"
_PEOPLE = re.compile(r"\b(\d{1,3})\s+(?:people|persons|attendees|guests)\b", re.IGNORECASE)


class Room(BaseModel):
    room_id: str
    name: str
    capacity: int
    status: str
    restricted: bool = False  # the board's: its bookings need the director


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupRoom(_Args):
    room_id: str = Field(pattern=rf"^{ROOM_ID}$")


class BookRoom(_Args):
    room_id: str = Field(pattern=rf"^{ROOM_ID}$")
    employee_id: str = Field(pattern=r"^E-\d{3}$")
    people: int = Field(gt=0, le=500, strict=True)


class CancelBooking(_Args):
    booking_id: str = Field(pattern=r"^BK-[0-9a-f]{10}$")


class Notify(_Args):
    employee_id: str = Field(pattern=r"^E-\d{3}$")
    body: str = Field(min_length=1, max_length=2_000)


class Booking(BaseModel):
    booking_id: str
    room_id: str
    people: int


class Cancelled(BaseModel):
    booking_id: str
    cancelled: bool


class Note(BaseModel):
    note_id: str
    employee_id: str


async def _open(target: Target, args: BookRoom) -> str:
    room = await target.read(f"/rooms/{args.room_id}")
    if room["status"] != "open":
        raise ConditionFailed(f"{args.room_id} is {room['status']}")
    return f"{args.room_id} is open for {room['capacity']}"


async def _booked(target: Target, args: BookRoom, out: Booking, key: str) -> str:
    record = await target.read(f"/bookings/{out.booking_id}")
    if (record["room_id"], record["people"], record["idempotency_key"]) != (
        args.room_id,
        args.people,
        key,
    ):
        raise ConditionFailed(f"booking {out.booking_id} differs: {record}")
    return f"booking {out.booking_id} of {args.room_id} for {args.people} is recorded"


async def _cancelled(target: Target, args: CancelBooking, out: Cancelled, key: str) -> str:
    record = await target.read(f"/bookings/{args.booking_id}")
    if not record["cancelled"]:
        raise ConditionFailed(f"{args.booking_id} is still booked")
    return f"{args.booking_id} is cancelled"


async def _noted(target: Target, args: Notify, out: Note, key: str) -> str:
    record = await target.read(f"/notes/{out.note_id}")
    if record["body"] != args.body:
        raise ConditionFailed(f"note {out.note_id} differs")
    return f"note {out.note_id} is recorded"


def _cancel(result: ToolResult) -> ToolCall:
    return ToolCall(tool="cancel_booking", arguments={"booking_id": result.output["booking_id"]})


TOOLS = ToolRegistry(
    [
        ToolSpec(
            name="lookup_room",
            description="Read a meeting room: name, capacity, status.",
            input_model=LookupRoom,
            output_model=Room,
            risk="read",
            permission="rooms:read",
            path="/rooms/{room_id}",
            system="rooms",
            references={"room_id": "room"},
        ),
        ToolSpec(
            name="book_room",
            description="Book a meeting room for a number of people.",
            input_model=BookRoom,
            output_model=Booking,
            risk="low",
            permission="rooms:book",
            path="/bookings",
            system="rooms",
            references={"room_id": "room"},
            subject_argument="employee_id",
            precondition=_open,
            postcondition=_booked,
            compensation=_cancel,
        ),
        ToolSpec(
            name="cancel_booking",
            description="Cancel a booking (compensation only).",
            input_model=CancelBooking,
            output_model=Cancelled,
            risk="low",
            permission="rooms:cancel",
            path="/cancellations",
            system="rooms",
            postcondition=_cancelled,
            proposable=False,
        ),
        ToolSpec(
            name="notify_requester",
            description="Send the employee a note.",
            input_model=Notify,
            output_model=Note,
            risk="low",
            permission="notes:send",
            path="/notes",
            system="rooms",
            subject_argument="employee_id",
            outbound=("body",),
            postcondition=_noted,
        ),
    ]
)


def people(text: str) -> int | None:
    found = _PEOPLE.search(text)
    return int(found.group(1)) if found else None


class RoomRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    large_booking: int = 10  # more people than this: the facilities manager decides


def room_rules(facts: Facts, rules: RoomRules, now: datetime) -> Iterator[Verdict]:
    for call in writes_of(facts, TOOLS):
        if call.tool != "book_room":
            continue
        record = facts.record("room", call.arguments["room_id"])
        if record is None:
            continue  # the core refuses a room nobody read
        room = record.typed(Room)
        if room.status != "open":
            yield Reject("room_under_maintenance", f"{room.room_id} is {room.status}")
        if call.arguments["people"] > room.capacity:
            yield Reject("over_capacity", f"{room.room_id} seats {room.capacity}")
        if room.restricted:
            yield Escalate("restricted_room", f"{room.room_id} is the board's", tier="director")
        if call.arguments["people"] > rules.large_booking:
            yield Escalate("large_booking", f"{call.arguments['people']} people", tier="facilities")
        else:
            yield Allow("small_booking", f"{call.arguments['people']} people")


def people_as_asked(facts: Facts) -> Iterator[Finding]:
    asked = people(facts.request.text)
    for call in facts.proposal.tool_calls if facts.proposal else []:
        if call.tool == "book_room" and asked is not None and call.arguments["people"] != asked:
            yield Finding(code="people_not_asked", severity="warn", detail=f"asked for {asked}")


def _book(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any] | None:
    room = next((r for r in context if r.kind == "room"), None)
    if room is None:
        return None
    return {"room_id": room.id, "employee_id": request.subject, "people": people(request.text) or 1}


def _note(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any]:
    return {"employee_id": request.subject, "body": answer}


def _describe_room(data: dict[str, Any]) -> str:
    room = Room.model_validate(data)
    return f"Room {room.room_id} ({room.name}) is {room.status}. It seats {room.capacity} people."


PACK = DomainPack(
    name="rooms",
    demo_approvers={
        "fm@rooms.example": ["facilities_manager"],
        "director@rooms.example": ["director"],
        "desk@rooms.example": ["desk"],
    },
    title="Facilities desk: meeting rooms",
    subject_label="employee",
    tools=TOOLS,
    intents=("book_room", "room_info", "report_issue"),
    intents_file=HERE / "intents.yaml",
    policy=PolicyConfig(
        version="rooms-policy/1",
        tiers=[
            ApprovalTier(name="facilities", role="facilities_manager", sla=timedelta(hours=1)),
            ApprovalTier(name="director", role="director", sla=timedelta(hours=4)),
        ],
        autonomous_permissions=["rooms:read", "rooms:book", "notes:send"],
        rules=RoomRules().model_dump(),
    ),
    references=(
        ReferenceKind(
            "room", ROOM_ID, lookup="lookup_room", ignore_case=True, describe=_describe_room
        ),
    ),
    rules=(room_rules,),
    rule_settings=RoomRules,
    checks=(people_as_asked,),
    fillers={"book_room": _book, "notify_requester": _note},
    instructions="You run an office's facilities desk. The subject is the employee asking.",
    knowledge=(KnowledgeSource(HERE / "kb", source="handbook"),),
    systems=(SystemSpec("rooms", "http://127.0.0.1:8766"),),
    describe_call=lambda call: f"{call.tool} {call.arguments.get('room_id', '')}".strip(),
)
