"""The local model's plans for itops: each planned tool's arguments, from the request, the assets
read for it and the answer; and assets described in words, as the model and verifier read them."""

from __future__ import annotations

import re
from typing import Any

from tether.contracts import ContextRecord, Request, ToolCall
from tether.domain import ID_GOES_ON

from .tools import ASSET, PERSON_ID, Asset

# Every service the text names, whole: svc-search-ro is named, and is not svc-search.
_SERVICE = re.compile(rf"(?<!{ID_GOES_ON})(svc-{ID_GOES_ON}*\w)")
_PERSON = re.compile(rf"(?<!{ID_GOES_ON})({PERSON_ID})(?!{ID_GOES_ON})")
_SELF = re.compile(r"\b(?:me|myself|my own)\b", re.IGNORECASE)


def describe_asset(data: dict[str, Any]) -> str:
    asset = Asset.model_validate(data)
    if asset.kind == "host":
        services = "; ".join(
            f"{s.name} is owned by team {s.owner_team}, {s.state}, restarted {s.restarts} times"
            for s in asset.services
        )
        return f"Host {asset.asset_id} is in {asset.environment}. {services}."
    if asset.kind == "group":
        members = ", ".join(asset.members) or "nobody"
        return (
            f"Group {asset.asset_id} has {asset.sensitivity} sensitivity and is owned by team "
            f"{asset.owner_team}. Its members are {members}."
        )
    manager = f"their manager is {asset.manager}" if asset.manager else "they have no manager"
    return f"{asset.asset_id} {asset.name} is on team {asset.team}; {manager}."


def _assets(context: list[ContextRecord], kind: str) -> list[Asset]:
    return [
        asset
        for record in context
        if record.kind == ASSET and (asset := record.typed(Asset)).kind == kind
    ]


def service_change(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any] | None:
    """The one host read that runs a service the text names; with no service named, the one
    host read if it runs one service. Anything else (a service on two hosts read, a service
    that runs on none of them) is a question for a person, not a guess."""
    hosts = _assets(context, "host")
    named = asked_services(request)
    if named:
        pairs = [(h.asset_id, s) for h in hosts for s in named if h.service(s)]
        if len(pairs) != 1:
            return None
        host_id, service = pairs[0]
    elif len(hosts) == 1 and len(hosts[0].services) == 1:
        host_id, service = hosts[0].asset_id, hosts[0].services[0].name
    else:
        return None
    return {"host": host_id, "service": service, "requested_by": request.subject}


def asked_services(request: Request) -> list[str]:
    """The services the request's text names, first mention first: any word that starts
    ``svc-``, known or not (one that is no service is still not another one)."""
    return list(dict.fromkeys(_SERVICE.findall(request.text)))


def membership(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any] | None:
    """The first group read, for the first person the request names, read or not (policy
    refuses one nobody could read); the requester only when it names nobody else."""
    groups = _assets(context, "group")
    if not groups:
        return None
    member = asked_member(request)
    if member is None:
        return None  # whom to grant is a question for a person, not a guess
    return {"group": groups[0].asset_id, "member": member, "requested_by": request.subject}


def asked_member(request: Request) -> str | None:
    """Whom the request asks access for: the requester when they say "me" or name nobody
    else, the one other person it names, else None (two people, or "me" and another)."""
    others = list(dict.fromkeys(p for p in _PERSON.findall(request.text) if p != request.subject))
    if _SELF.search(request.text):
        return None if others else request.subject
    if len(others) > 1:
        return None
    return others[0] if others else request.subject


def change_record(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any]:
    summary = " ".join(request.text.split())[:300]
    return {"summary": summary.ljust(10, "."), "requested_by": request.subject}


def notify(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any]:
    return {"employee_id": request.subject, "body": answer}


def describe_call(call: ToolCall) -> str:
    args = call.arguments
    if "service" in args:
        return f"{call.tool} {args['service']}@{args['host']}"
    if "group" in args:
        return f"{call.tool} {args['member']} {args['group']}"
    return call.tool
