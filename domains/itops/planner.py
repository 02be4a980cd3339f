"""The local model's plans for itops: each planned tool's arguments, from the request, the assets
read for it and the answer; and assets described in words, as the model and verifier read them."""

from __future__ import annotations

import re
from typing import Any

from tether.contracts import ContextRecord, Request, ToolCall
from tether.domain import ID_GOES_ON
from tether.text import said, split_sentences

from .tools import ASSET, PERSON_ID, Asset

# Every service the text names, whole: svc-search-ro is named, and is not svc-search.
_SERVICE = re.compile(rf"(?<!{ID_GOES_ON})(svc-{ID_GOES_ON}*\w)")
_PERSON = re.compile(rf"(?<!{ID_GOES_ON})({PERSON_ID})(?!{ID_GOES_ON})")
_ME = re.compile(r"\b(?:me|myself|my own)\b", re.IGNORECASE)
# What a reader takes for a person's id (read through ``said``: full-width folded): any case,
# any dash or none, digits of any script. Only the exact spelling is looked up.
_PERSON_LOOSELY = re.compile(
    r"(?<!\w)e\s?[-\u2010-\u2015\u2212\u2043\ufe58]?\s?(\d{3})(?!\d)", re.IGNORECASE
)
# The requester speaking of themselves, and who else a request can mean: a pronoun, a
# relation ("my report", "a new hire", "E-204's manager"), a name ("Eli Park", "Eli's"). A
# word inside an id (grp-reports-read) is none of them.
_SELF = re.compile(
    rf"(?<!{ID_GOES_ON})(?:i|i'm|i've|i'd|me|my|mine|myself)(?!{ID_GOES_ON})", re.IGNORECASE
)
_PRONOUN = re.compile(
    rf"(?<!{ID_GOES_ON})(?:he|she|him|her|his|hers|they|them|their|theirs)(?!{ID_GOES_ON})",
    re.IGNORECASE,
)
_RELATION = re.compile(
    rf"(?<!{ID_GOES_ON})(?:someone|somebody|everyone|everybody|anyone|colleagues?|co-?workers?"
    r"|team-?mates?|(?:my|our|a|direct) reports?|managers?|boss|new (?:hire|starter|joiner)s?"
    r"|interns?|contractors?|friends?|replacements?|successors?|deputy|backup|others?|whoever"
    r"|guy|person|people|engineers?|analysts?|auditors?|admins?|the one)"
    rf"(?!{ID_GOES_ON})|{PERSON_ID}'s\b"
    # One named to be left out or kept: "all but E-201", "keep E-201", "E-201 is staying".
    rf"|\b(?:but|except|not|other than|apart from|besides|keep)\s+{PERSON_ID}\b"
    r"|\b(?:stays|staying|is staying|remains)\b",
    re.IGNORECASE,
)
# A name in the middle of a sentence ("I need Dana in grp-x"): a capitalised word after a
# lower-case one.
_MID_NAME = re.compile(r"(?<=[a-z,] )([A-Z][a-z]+)\b")
_PAIR = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")
_POSSESSIVE = re.compile(r"\b([A-Z][a-z]+)'s\b")
# Capitalised, and no name: greetings, sign-offs, days, a subject line's words.
_NOT_NAMES = frozenset(
    re.findall(
        r"\w+",
        "Hi Hello Hey Dear Good Morning Afternoon Evening Team All Thanks Thank You Regards Best "
        "Cheers Kind Access Request Please Urgent Today Tomorrow Yesterday Monday Tuesday "
        "Wednesday Thursday Friday Saturday Sunday It That What Here There Let Who",
    )
)


def _names_someone(text: str) -> bool:
    """Whether ``text`` names a person the way people do (two capitalised words that are no
    greeting, or one with "'s"): nobody the lookups can read."""
    pairs = ([w for w in m.group(0).split() if w not in _NOT_NAMES] for m in _PAIR.finditer(text))
    return any(len(words) >= 2 for words in pairs) or any(
        m.group(1) not in _NOT_NAMES for m in _POSSESSIVE.finditer(text)
    )


# A request that asks for no change now: called off ("cancel my request", "never mind", "I
# already restarted it"), for later or on a condition ("next Friday, not now", "only if E-240
# approves"), or a question about one ("Who restarted svc-x?", "Should I restart it?"; not
# "Can you restart it?").
_CALLED_OFF = re.compile(
    r"\b(?:cancel|never ?mind|scratch that|disregard|ignore my|nothing else (?:is )?needed"
    r"|no longer needed|it recovered|(?:i|we)(?:'ve| have)? already (?:restarted|rebooted|rotated"
    r"|fixed|done|handled|sorted)|already (?:restarted|rebooted|rotated|fixed))\b",
    re.IGNORECASE,
)
_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_LATER = re.compile(
    rf"\b(?:not now|not yet|not before|only if|provided that|as long as)\b"
    rf"|\b(?:restart|reboot|bounce|rotate|add|remove|grant|give|revoke)\w*\b[^.;,!?]*"
    rf"\b(?:tomorrow|tonight|on {_WEEKDAY}|next (?:week|month|year|{_WEEKDAY})|before {_WEEKDAY}"
    rf"|after {_WEEKDAY}|at \d{{1,2}}(?::\d\d)?\s*(?:am|pm)?)\b",
    re.IGNORECASE,
)
_ASKED_OF_US = re.compile(
    r"\b(?:can|could|would|will)\s+(?:you|someone|somebody)\b|\bplease\b", re.I
)


def not_asked_now(request: Request) -> str | None:
    """Why the request asks for no change now (None: it may): called off, for later or on a
    condition, or only questions, none of them asking us to act."""
    text = said(request.text)
    if _CALLED_OFF.search(text):
        return "it calls the change off"
    if _LATER.search(text):
        return "it asks for later, or on a condition"
    sentences = split_sentences(text, min_length=1)
    if sentences and all(s.endswith("?") for s in sentences) and not _ASKED_OF_US.search(text):
        return "it only asks questions"
    return None


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
    if not_asked_now(request):
        return None  # nothing to change now: a person reads it, or the answer is enough
    hosts = _assets(context, "host")
    named = asked_services(request)
    if named:
        pairs = [(h.asset_id, s) for h in hosts for s in named if h.service(s)]
        if len(pairs) != 1:
            return None
        host_id, service = pairs[0]
    elif refused_services(request):
        return None  # "do not restart svc-cart": the host's one service is no guess to make
    elif len(hosts) == 1 and len(hosts[0].services) == 1:
        host_id, service = hosts[0].asset_id, hosts[0].services[0].name
    else:
        return None
    return {"host": host_id, "service": service, "requested_by": request.subject}


def asked_services(request: Request, *, strict: bool = True) -> list[str]:
    """The services the request's text asks about, first mention first: any word that starts
    ``svc-``, known or not (one that is no service is still not another one), and none it
    tells us not to touch (``refused_services``), wherever else it names it.
    ``strict=False``: every one it names, as read before itops/strict-reading
    (tether.domain.changed)."""
    named = list(dict.fromkeys(_SERVICE.findall(said(request.text) if strict else request.text)))
    if not strict:
        return named
    refused = refused_services(request)
    return [s for s in named if s not in refused]


# Telling us not to: an instruction ("do not", "never", "avoid", "hold off on", "leave ...
# alone", at a clause's start, "please" aside), to the end of its sentence, a "but",
# "instead" or "rather", or the next restart asked ("..., restart svc-cart"); or an exception
# ("except svc-cart", "but not svc-cart"). Not a negation that reports ("users can't reach
# svc-cart, restart it", "I can't restart it myself").
_DO_NOT = re.compile(
    r"(?:^|[.!?;:,(\n]\s*|\s?(?:-{1,2}|[\u2013\u2014])\s*|\b(?:and|but|so|then)\s+)"
    r"(?:(?:please|pls|kindly|just|but)\s+)*"
    r"(?:do not|don't|dont|never|avoid|hold off(?: on)?|no need to|leave)\b",
    re.IGNORECASE,
)
_EXCEPT = re.compile(
    r"\b(?:except(?: for)?|other than|apart from|but not|besides|not)\b(?=\s+svc-)"
    r"|\bwithout\s+(?:restarting|rebooting|bouncing|touching|rotating)\b"
    r"|\bunder no circumstances\b",
    re.IGNORECASE,
)
# Said of a service after it: "svc-checkout must not be restarted", "... must stay up".
_STAYS = re.compile(
    r"[^.;!?\n]*?\b(?:(?:must|should|can)(?:not|'t| not| never)\s+be\s+(?:restarted|rebooted|"
    r"bounced|touched|rotated)|(?:must|should|has to|needs? to)\s+(?:stay|keep)\s+(?:up|running))",
    re.IGNORECASE,
)
_UNTIL = re.compile(  # a stop before a capital ends a sentence; "e.g. restart" does not
    r"[.!?](?=\s+[A-Z0-9]|\s*$)|[;\n]|\b(?i:but|instead|rather)\b"
)
_ASKED_NEXT = re.compile(
    r"(?:,|\band\b)\s*(?:(?:please|then|just)\s+)*(?:restart|reboot|rotate|bounce)", re.I
)


def refused_services(request: Request) -> list[str]:
    """The services the request tells us not to touch ("Do not restart svc-cart and
    svc-checkout", "never restart svc-etl", "restart everything except svc-cart"): never
    asked for, even where it names them again."""
    text = said(request.text)
    refused: list[str] = []
    for start in [m.end() for m in _DO_NOT.finditer(text)] + [
        m.end() for m in _EXCEPT.finditer(text)
    ]:
        until = _UNTIL.search(text, start)
        scope = text[start : until.start() if until else len(text)]
        first = _SERVICE.search(scope)
        then = _ASKED_NEXT.search(scope, first.end()) if first else None
        refused += _SERVICE.findall(scope[: then.start() if then else len(scope)])
    refused += [m.group(1) for m in _SERVICE.finditer(text) if _STAYS.match(text, m.end())]
    return list(dict.fromkeys(refused))


def membership(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any] | None:
    """The first group read, for the first person the request names, read or not (policy
    refuses one nobody could read), or the requester (``asked_member``): else no plan."""
    groups = _assets(context, "group")
    if not groups or not_asked_now(request):
        return None
    member = asked_member(request)
    if member is None:
        return None  # whom to grant is a question for a person, not a guess
    return {"group": groups[0].asset_id, "member": member, "requested_by": request.subject}


def asked_member(request: Request, *, strict: bool = True) -> str | None:
    """Whom the request asks access for: the one other person it names by id, or the
    requester when it names them by id or speaks of itself ("me", "my", "I") and of nobody
    else; else None, a question for a person: two people, "me" and another, someone it names
    in a way the runtime cannot read (by name, relation or, with no id, pronoun; an id spelt
    otherwise than the lookups read it), or a request that says not to. A guess here would
    grant, or revoke, the wrong person's access.
    ``strict=False``: as read before itops/strict-reading, when naming nobody else by id
    meant the requester."""
    named = list(dict.fromkeys(_PERSON.findall(request.text)))
    others = [p for p in named if p != request.subject]
    if not strict:
        if _ME.search(request.text):
            return None if others else request.subject
        if len(others) > 1:
            return None
        return others[0] if others else request.subject
    text = said(request.text)
    loosely = {f"E-{int(digits):03d}" for digits in _PERSON_LOOSELY.findall(text)}
    if loosely - set(named):
        return None  # an id the lookups did not read: whose, a person says
    # Someone else in sight (a relation, a name, "E-204's"), or told not to: a person reads it.
    if _RELATION.search(text) or _names_someone(text) or _DO_NOT.search(text):
        return None
    if others:  # one other (a pronoun is theirs), and not the requester as well
        alone = len(named) == 1 and not _ME.search(text)
        return others[0] if alone else None
    if named:
        return request.subject  # by their own id
    in_sight = _PRONOUN.search(text) or any(
        m.group(1) not in _NOT_NAMES for m in _MID_NAME.finditer(text)
    )
    if _SELF.search(text) and not in_sight:
        return request.subject  # as "me", with nobody else in sight
    return None


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
