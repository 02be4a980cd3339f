"""The itops policy rules: who may change what, where, and when. Pure functions of the facts,
the rule settings and the decision's time; the core runs them beside its own gates.

- a host or group the request names that the CMDB does not know: rejected, with its name;
- more hosts in one request than ``max_hosts``: the change board decides (bulk change);
- a restart or rotation: the requester's team must own the service, and it must run there;
- production: the on-call SRE approves, and during a change freeze nothing changes there;
- a credential rotation: security approves, always (it cannot be undone);
- access: the requester must own the group (be on its team) or manage the member (a member
  may also leave a group); a high-sensitivity group is security's, never automatic;
- what the CMDB says that nobody recognised (an environment, a sensitivity) is treated as the
  strictest known value; a change asked in another employee's name waits for a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tether.config import PolicyConfig
from tether.contracts import Facts, Finding, ToolCall
from tether.domain import ID_GOES_ON, ReferenceKind, changed
from tether.policy import Allow, Escalate, Reject, Verdict, writes_of
from tether.text import asserted, clause, negated, own_sentences, questioned, said

from .planner import (
    asked_member,
    asked_services,
    describe_asset,
    not_asked_now,
    refused_services,
)
from .tools import ASSET, ASSET_ID, GROUP_ID, HOST_ID, REGISTRY, SERVICE_ID, Asset

MAX_LOOKUPS = 4  # assets read per request; more hosts than a request may change anyway
ASSETS = ReferenceKind(
    ASSET, ASSET_ID, lookup="lookup_asset", max_lookups=MAX_LOOKUPS, describe=describe_asset
)
SERVICE_TOOLS = ("restart_service", "rotate_credential")
# What may change without the on-call SRE; any other environment (a typo, a new one) needs them.
NON_PRODUCTION = frozenset({"staging", "development"})
MEMBERSHIP_TOOLS = ("add_to_group", "remove_from_group")
# The checks below also judge an approver's edit inside the workflow, so a change to what
# they find is a change to workflow code (tether.domain.changed). This one, after a hostile
# review (2026-12-08): a person the request names otherwise than by an exact id, or by no id
# at all and not as "me", is nobody to guess; a service it says not to touch is not asked
# for; a note's claim is read in more shapes, and past a preface ("Never fear: ...").
STRICT_READING = "itops/strict-reading"


class FreezeWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> FreezeWindow:
        if self.end <= self.start:
            raise ValueError(f"freeze window {self.name!r} ends before it starts")
        return self

    def covers(self, when: datetime) -> bool:
        return self.start <= when < self.end


class ItopsRules(BaseModel):
    """The thresholds the rules read (PolicyConfig.rules); a misspelt one is an error."""

    model_config = ConfigDict(extra="forbid")

    max_hosts: int = Field(default=3, ge=1)
    freeze_windows: list[FreezeWindow] = Field(
        default_factory=lambda: [
            FreezeWindow(
                name="year-end freeze",
                start=datetime(2026, 12, 21, tzinfo=UTC),
                end=datetime(2027, 1, 4, tzinfo=UTC),
            )
        ]
    )
    production_tier: str = "oncall"
    sensitive_tier: str = "security"
    credential_tier: str = "security"
    bulk_tier: str = "change_board"

    def tiers(self) -> dict[str, str]:
        return {
            "production_tier": self.production_tier,
            "sensitive_tier": self.sensitive_tier,
            "credential_tier": self.credential_tier,
            "bulk_tier": self.bulk_tier,
        }


def check_policy(policy: PolicyConfig, rules: ItopsRules) -> Iterator[str]:
    """Every tier the rules escalate to is a tier of the policy."""
    tiers = {t.name for t in policy.tiers}
    for setting, tier in rules.tiers().items():
        if tier not in tiers:
            yield f"rules.{setting} names tier {tier!r}; the tiers are {sorted(tiers)}"


def _named(facts: Facts) -> list[str]:
    """Asset ids the request names: given ones first, then its text's, first mention first."""
    given = facts.request.references.get(ASSET, [])
    return list(dict.fromkeys([*given, *ASSETS.find(facts.request.text)]))


def _asset(facts: Facts, ident: str) -> Asset | None:
    record = facts.record(ASSET, ident)
    return record.typed(Asset) if record is not None else None


def itops_rules(facts: Facts, rules: ItopsRules, now: datetime) -> Iterator[Verdict]:
    named = _named(facts)
    for ident in named[:MAX_LOOKUPS]:  # the ones the runtime looked up
        infrastructure = _is(HOST_ID, ident) or _is(GROUP_ID, ident)
        if infrastructure and _asset(facts, ident) is None:
            yield Reject("unknown_asset", f"the CMDB does not know {ident}")
    writes = writes_of(facts, REGISTRY)
    if not writes:
        return
    request = facts.request
    if request.requester != request.subject:  # authority is the subject's: they confirm it
        yield Escalate(
            "filed_on_behalf",
            f"{request.requester} asks in {request.subject}'s name",
            tier=rules.production_tier,
        )
    hosts = {i for i in named if _is(HOST_ID, i)}
    hosts |= {str(c.arguments["host"]) for c in writes if "host" in c.arguments}
    if len(hosts) > rules.max_hosts:
        yield Escalate(
            "bulk_change",
            f"{len(hosts)} hosts in one request; at most {rules.max_hosts}",
            tier=rules.bulk_tier,
        )
    for call in writes:
        if call.tool in SERVICE_TOOLS:
            yield from _service_change(facts, rules, now, call)
        elif call.tool in MEMBERSHIP_TOOLS:
            yield from _access_change(facts, rules, call)
        elif call.tool == "open_change_record":
            yield Allow("change_record", "a change record changes no system")


def _is(pattern: str, ident: str) -> bool:
    return ReferenceKind("x", pattern).valid(ident)


def _service_change(
    facts: Facts, rules: ItopsRules, now: datetime, call: ToolCall
) -> Iterator[Verdict]:
    host_id, name = str(call.arguments["host"]), str(call.arguments["service"])
    host = _asset(facts, host_id)
    if host is None:
        return  # the core refuses a host nobody read
    if host.kind != "host":  # the CMDB says it is something else: nothing runs there
        yield Reject("not_a_host", f"the CMDB knows {host_id} as a {host.kind}, not a host")
        return
    service = host.service(name)
    if service is None:
        yield Reject("service_not_on_host", f"{name} does not run on {host_id}")
        return
    subject = facts.request.subject
    if subject not in service.owners:
        yield Reject(
            "not_service_owner",
            f"{name} belongs to team {service.owner_team}; {subject} is not on it",
        )
    if host.environment not in NON_PRODUCTION:  # production, or what nobody recognised
        frozen = next((w for w in rules.freeze_windows if w.covers(now)), None)
        if frozen is not None:
            yield Reject(
                "change_freeze",
                f"{host_id} is production and the {frozen.name} runs until "
                f"{frozen.end.isoformat()}",
            )
        code = "production_host" if host.environment == "production" else "environment_unknown"
        yield Escalate(code, f"{host_id} is {host.environment!r}", tier=rules.production_tier)
    else:
        yield Allow("non_production", f"{host_id} is {host.environment}; {name} is the team's")
    if call.tool == "rotate_credential":
        yield Escalate(
            "credential_rotation",
            f"rotating {name}'s credential cannot be undone",
            tier=rules.credential_tier,
        )


def _access_change(facts: Facts, rules: ItopsRules, call: ToolCall) -> Iterator[Verdict]:
    group_id, member_id = str(call.arguments["group"]), str(call.arguments["member"])
    group = _asset(facts, group_id)
    if group is None:
        return  # the core refuses a group nobody read
    if group.kind != "group":
        yield Reject("not_a_group", f"the CMDB knows {group_id} as a {group.kind}, not a group")
        return
    subject = facts.request.subject
    member = _asset(facts, member_id)
    if member_id != subject and member is None:
        yield Reject("member_unknown", f"{member_id} was not read; name them in the request")
        return
    owner = subject in group.owners
    manager = member is not None and member.manager == subject
    leaving = call.tool == "remove_from_group" and member_id == subject
    if not (owner or manager or leaving):
        yield Reject(
            "not_owner_or_manager",
            f"{subject} is neither on {group_id}'s team ({group.owner_team}) nor "
            f"{member_id}'s manager",
        )
    if group.sensitivity != "low":  # high, or what nobody recognised: security's
        yield Escalate(
            "sensitive_group",
            f"{group_id} is {group.sensitivity!r} sensitivity",
            tier=rules.sensitive_tier,
        )
    else:
        why = "the group's owner" if owner else "the member's manager" if manager else "the member"
        yield Allow("low_sensitivity_group", f"{group_id} is low sensitivity; asked by {why}")


def member_as_asked(facts: Facts) -> Iterator[Finding]:
    """A grant or revocation for someone other than whom the request names (the verifier's
    check of the model's arguments against the text): a person looks."""
    asked = asked_member(facts.request, strict=changed(STRICT_READING))
    for call in facts.proposal.tool_calls if facts.proposal else []:
        if call.tool in MEMBERSHIP_TOOLS and call.arguments.get("member") != asked:
            yield Finding(
                code="member_not_asked",
                severity="warn",
                detail=f"{call.tool} names {call.arguments.get('member')}; the request asks "
                f"for {asked or 'nobody clearly'}",
            )


def change_asked_now(facts: Facts) -> Iterator[Finding]:
    """A write for a request that asks for no change now (called off, for later, or only
    questions: ``not_asked_now``): a person looks. A note, and a change record (the way to
    ask for later), are no change. Under STRICT_READING only."""
    why = not_asked_now(facts.request) if changed(STRICT_READING) else None
    writes = [
        c.tool
        for c in writes_of(facts, REGISTRY)
        if c.tool not in ("notify_requester", "open_change_record")
    ]
    if why and writes:
        yield Finding(
            code="change_not_asked_now",
            severity="warn",
            detail=f"{', '.join(dict.fromkeys(writes))} for a request that asks for no change "
            f"now: {why}",
        )


def service_as_asked(facts: Facts) -> Iterator[Finding]:
    """A restart or rotation of a service the request does not name (the verifier's check of
    the model's arguments against the text): a person looks. With no service named, the one
    service of the one host named may be meant; any other is a guess. One it says not to
    touch ("do not restart svc-cart") is never meant."""
    strict = changed(STRICT_READING)
    asked = asked_services(facts.request, strict=strict)
    refused = refused_services(facts.request) if strict else []
    for call in facts.proposal.tool_calls if facts.proposal else []:
        if call.tool not in SERVICE_TOOLS:
            continue
        service, host = (
            call.arguments.get("service"),
            _asset(facts, str(call.arguments.get("host"))),
        )
        if service in refused:
            yield Finding(
                code="service_refused",
                severity="warn",
                detail=f"{call.tool} names {service}; the request says not to",
            )
            continue
        only = (
            not (asked or refused)
            and host is not None
            and [s.name for s in host.services] == [service]
        )
        if service not in asked and not only:
            yield Finding(
                code="service_not_asked",
                severity="warn",
                detail=f"{call.tool} names {service}; the request asks for "
                + (", ".join(asked) if asked else "no service by name"),
            )


# What a note may say was done for the requester, and the tools that must be planned for it
# to be true. A claim: "we (have) restarted", "you have been added", "it was rotated"; not
# what will be, must be or is usually done ("credentials are rotated every 90 days", "a change
# record must be created"), not what was not done, and not a question.
_DONE = r"(?:we|i|has|have|had|was|were|been|'ve)\s+(?:(?!not\b|never\b|yet\b)\w+\s+){0,2}?"


def _done(verbs: str, after: str = "", *, before: str = "") -> re.Pattern[str]:
    # DOTALL: what a note says over two lines it says all the same.
    return re.compile(rf"{before}\b{_DONE}(?:{verbs})\b{after}", re.IGNORECASE | re.DOTALL)


_DONE_BY = (
    # Of a membership: added to, removed from, given access (not "a step was added").
    (_done("added|granted|given", r".*\b(?:to grp-|access|member)"), ("add_to_group",)),
    (re.compile(r"\byou (?:now )?have access\b", re.IGNORECASE), ("add_to_group",)),
    (_done("added|granted|given", before=r"\b(?:access|membership)\b.*"), ("add_to_group",)),
    (_done("removed|revoked", r".*\b(?:from grp-|access|member)"), ("remove_from_group",)),
    (_done("removed|revoked", before=r"\b(?:access|membership)\b.*"), ("remove_from_group",)),
    (_done("restarted|rebooted"), ("restart_service",)),
    (_done("rotated"), ("rotate_credential",)),
    (_done("opened|created|raised|filed", r".*\bchange record\b"), ("open_change_record",)),
    (_done("opened|created|raised|filed", before=r"\bchange record\b.*"), ("open_change_record",)),
)


# Under STRICT_READING, also: four words between ("we've gone ahead and also added you"); a
# participle that opens the sentence ("Restarted svc-x for you") or closes a clause about a
# service ("Done - svc-x on prod-db-01 restarted cleanly."), or anyone's doing of one
# ("Ops bounced svc-x", "taken out of grp-x"); a state ("you are now a member", "your
# access is now active", "the credential is now rotated"); a heading ("Access granted:");
# a removal said as a negation ("E-205 is no longer in grp-x"). Not in a clause with a
# hedge ("you will be a member", "svc-x should be restarted"; "we can confirm ..." is
# none) or a sentence that opens with a condition ("If you leave, you are no longer a
# member"), nor after "nothing" or "nobody" in the clause.
_FURTHER = r"(?:we|i|has|have|had|was|were|been|'ve)\s+(?:(?!not\b|never\b|yet\b|to\b)\w+\s+){0,4}?"
_OPENING = r"^(?:(?:ok(?:ay)?|done|sure|all set|good news)\W+)*"
_CLAIM = re.IGNORECASE | re.DOTALL
_MEMBERSHIP = r".*\b(?:grp-|access|member)"
_AFTER = r"(?:\s+(?:\w+ly|fine|ok|okay|again))?\s*(?:[.!]|$)"  # "restarted cleanly."
_ADD, _REMOVE = ("add_to_group",), ("remove_from_group",)
_RESTART, _ROTATE = ("restart_service",), ("rotate_credential",)
_ALSO_DONE_BY = (
    (re.compile(rf"\b{_FURTHER}(?:added|granted|given)\b{_MEMBERSHIP}", _CLAIM), _ADD),
    (re.compile(rf"\b{_FURTHER}(?:removed|revoked)\b{_MEMBERSHIP}", _CLAIM), _REMOVE),
    (re.compile(rf"\b{_FURTHER}(?:restarted|rebooted)\b", _CLAIM), _RESTART),
    (re.compile(rf"\b{_FURTHER}rotated\b", _CLAIM), _ROTATE),
    (re.compile(rf"{_OPENING}(?:added|granted)\b{_MEMBERSHIP}", _CLAIM), _ADD),
    (re.compile(rf"{_OPENING}(?:removed|revoked)\b{_MEMBERSHIP}", _CLAIM), _REMOVE),
    (re.compile(rf"{_OPENING}(?:restarted|rebooted)\b", _CLAIM), _RESTART),
    (re.compile(rf"{_OPENING}rotated\b", _CLAIM), _ROTATE),
    (re.compile(rf"\bsvc-.*\b(?:restarted|rebooted|bounced){_AFTER}", _CLAIM), _RESTART),
    (re.compile(rf"\bsvc-.*\brotated{_AFTER}", _CLAIM), _ROTATE),
    # Anyone's doing, of a service or a group: "Ops bounced svc-x", "taken out of grp-x".
    (re.compile(r"\b(?:restarted|rebooted|bounced)\s+(?:the\s+)?svc-", _CLAIM), _RESTART),
    (
        re.compile(r"\b(?:taken|removed|dropped|kicked)\s+(?:out\s+)?(?:of|from)\s+grp-", _CLAIM),
        _REMOVE,
    ),
    (
        re.compile(r"\b(?:you're|you are|you're now|you are now)\s+(?:now\s+)?in\s+grp-", _CLAIM),
        _ADD,
    ),
    (
        re.compile(r"\bnow (?:an? )?(?:member|admin)s?\b|\bnow (?:have|has|got) access\b", _CLAIM),
        _ADD,
    ),
    (
        re.compile(
            r"\b(?:access|membership)\b(?!\s+requests?\b).*\b(?:is|are)\s+now\s+"
            r"(?:active|enabled|live|granted)\b",
            _CLAIM,
        ),
        _ADD,
    ),
    (
        re.compile(
            rf"{_OPENING}(?:access|membership)\s+(?:granted|given|added|approved)\s*(?:[:.!\-\u2013\u2014]|$)",
            _CLAIM,
        ),
        _ADD,
    ),
    (
        re.compile(
            rf"{_OPENING}(?:access|membership)\s+(?:removed|revoked)\s*(?:[:.!\-\u2013\u2014]|$)",
            _CLAIM,
        ),
        _REMOVE,
    ),
    (re.compile(r"\b(?:is|are|'s|'re)\s+now\s+(?:restarted|rebooted)\b", _CLAIM), _RESTART),
    (re.compile(r"\b(?:is|are|'s|'re)\s+now\s+rotated\b", _CLAIM), _ROTATE),
)
# A removal said as a negation: of a group, or of membership and access themselves.
_GONE = re.compile(
    r"\bno longer\s+(?:(?:in|on|part of|a member of|a member in)\s+grp-|an? members?\b"
    r"|members?\b|(?:has|have) (?:any )?access\b)",
    _CLAIM,
)
_HEDGE = re.compile(
    r"\b(?:if|once|when|after|unless|until|will|would|could|should|may|might|must|needs?"
    r"|can(?!\s+(?:confirm|tell|let|see|say|report)))\b",
    re.IGNORECASE,
)
_CONDITION = re.compile(r"\W*(?:if|once|when|after|unless|until|as soon as)\b", re.IGNORECASE)
_NOBODY = re.compile(r"\b(?:nothing|nobody|no one|none)\b", re.IGNORECASE)
# "Never fear: ...", "Not to worry - ...": what a preface negates is its own.
_PREFACE = re.compile(r":\s|\s[-\u2013]\s")


def _claims(sentence: str, *, strict: bool) -> dict[str, int]:
    """The tools whose work ``sentence`` says was done, each with where its claim starts
    (``strict``: STRICT_READING)."""
    found: dict[str, int] = {}
    checks: list[tuple[re.Pattern[str], tuple[str, ...], dict[str, bool]]] = [
        (pattern, tools, {}) for pattern, tools in _DONE_BY
    ]
    if strict:
        checks += [(pattern, tools, {"hedged": True}) for pattern, tools in _ALSO_DONE_BY]
        checks.append((_GONE, _REMOVE, {"hedged": True, "negative": True}))
    for pattern, tools, how in checks:
        at = _claimed(pattern, sentence, strict=strict, **how)
        if at is not None:
            for tool in tools:
                found.setdefault(tool, at)
    return found


def _claimed(
    pattern: re.Pattern[str],
    sentence: str,
    *,
    strict: bool,
    hedged: bool = False,
    negative: bool = False,
) -> int | None:
    """Where ``sentence`` asserts what ``pattern`` finds, in its own clause (None: nowhere).
    ``strict``: read after any preface, and not after "nothing" or "nobody" in that clause; ``hedged``:
    not with a hedge in that clause; ``negative``: a negation is the claim's own."""
    for m in pattern.finditer(sentence):
        start = 0
        if strict:
            start = max((p.end() for p in _PREFACE.finditer(sentence, 0, m.start())), default=0)
        tail, begin, end = sentence[start:], m.start() - start, m.end() - start
        first, last = clause(tail, begin, end)
        if strict and _NOBODY.search(tail, first, begin):
            continue
        if hedged and (_CONDITION.match(tail) or _HEDGE.search(tail, first, max(last, end))):
            continue
        if (not questioned(tail, end)) if negative else asserted(tail, begin, end):
            return m.start()
    return None


def note_tells_the_truth(facts: Facts) -> Iterator[Finding]:
    """What the requester reads (a note's body, the answer) may say a grant, removal, restart,
    rotation or change record was done only when the plan does it. Sentences copied from a
    cited source are the source's word."""
    if facts.proposal is None:
        return
    strict = changed(STRICT_READING)
    cited = set(facts.proposal.citations)
    sources = [said(p.text) for p in facts.evidence.passages if p.passage_id in cited]
    sources += [said(r.text) for r in facts.context if r.citation_id in cited]
    planned = {c.tool for c in facts.proposal.tool_calls}
    notes = [
        str(c.arguments.get("body", ""))
        for c in facts.proposal.tool_calls
        if c.tool == "notify_requester"
    ]
    told = [("the note", body) for body in notes]
    if facts.proposal.answer.strip() not in {b.strip() for b in notes}:
        told.append(("the answer", facts.proposal.answer))
    for where, text in told:
        claims = [
            (s, tool, at)
            for s in own_sentences(text, sources)
            for tool, at in _claims(s, strict=strict).items()
        ]
        claimed = {tool for _, tool, _ in claims} - planned
        if claimed:
            yield Finding(
                code="note_claims_unplanned_action",
                severity="block",
                detail=f"{where} says what only {', '.join(sorted(claimed))} would do, and the "
                "plan does not",
            )
        elif strict:  # a planned tool, said of more than the plan does it to
            untouched = sorted(
                {
                    ident
                    for s, tool, at in claims
                    for ident in _untouched(s, at, tool, facts.proposal.tool_calls)
                }
            )
            if untouched:
                yield Finding(
                    code="note_claims_unplanned_action",
                    severity="block",
                    detail=f"{where} says it was done to {', '.join(untouched)}, and the plan "
                    "does not touch it",
                )


# What a claim names that its tool acts on: services for a restart or rotation, groups for
# a membership. The claim reaches to its sentence's stop, a semicolon or a "but".
_SERVICES = re.compile(rf"(?<!{ID_GOES_ON}){SERVICE_ID}(?!{ID_GOES_ON})")
_GROUPS = re.compile(rf"(?<!{ID_GOES_ON}){GROUP_ID}(?!{ID_GOES_ON})")
_ACTED_ON = {
    "restart_service": _SERVICES,
    "rotate_credential": _SERVICES,
    "add_to_group": _GROUPS,
    "remove_from_group": _GROUPS,
}
_CLAIM_ENDS = re.compile(r"[.;!?\n](?=\s|$)|\bbut\b", re.IGNORECASE)


def _untouched(sentence: str, at: int, tool: str, calls: list[ToolCall]) -> list[str]:
    """The services or groups a claim of ``tool`` names that no planned call of it acts on
    ("we restarted svc-cart and svc-checkout", only svc-cart planned); not one it says was
    not ("..., not svc-checkout")."""
    ids = _ACTED_ON.get(tool)
    if ids is None:
        return []
    stop = _CLAIM_ENDS.search(sentence, at)
    claim = sentence[at : stop.start() if stop else len(sentence)]
    acted_on = {str(v) for c in calls if c.tool == tool for v in c.arguments.values()}
    return [
        m.group()
        for m in ids.finditer(claim)
        if m.group() not in acted_on and not negated(claim, m.start(), m.end())
    ]
