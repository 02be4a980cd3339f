"""Domain packs: the seam between Tether's runtime and one business.

The runtime (contracts, policy gates, workflows, activities) speaks of subjects, references,
context records, tools, rules and tiers. A pack says what those are for one business, in one
folder (``domains/NAME/``, or any importable module) that exposes a ``DomainPack``:

- **references**: the kinds of record a request can point at, how to find their ids in the
  text, which read tool looks each one up as context, and which field names its owner;
- **tools**: a ToolRegistry of ToolSpecs, each naming the business system it acts on;
- **intents** the model may propose, with examples and plans for the local model
  (``intents_file``) and ``fillers`` that give each planned tool its arguments;
- **rules**: pure functions from Facts to verdicts (tether.policy: Reject, Escalate, Allow),
  reading thresholds from ``policy.rules`` through the pack's ``rule_settings`` model;
- **checks**: the verifier's argument checks that only this business knows;
- **instructions**: the model prompt's words about the business;
- **knowledge** sources, **systems** (with an embedded copy for one machine), a default
  **policy** (tiers, approvers, thresholds) and **demo** tickets.

Everything a workflow calls on a pack (rules, checks, validation, describing) runs inside the
workflow, passed through Temporal's sandbox (so not guarded by it), and must be pure: no I/O,
no clock but the ``now`` given, no randomness, so that it decides the same way on replay. A
pack that raises allows nothing (``pack_error``) rather than hanging the workflow. A change
to a pack that alters decisions on recorded facts is a change to workflow code: gate it with
``changed("<pack>/<change>")`` (below), so that runs recorded before it replay the path they
took, and run `tether replay` against the live histories before deploying it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ValidationError
from temporalio import workflow

from tether.config import PolicyConfig
from tether.contracts import DOMAIN, ContextRecord, Facts, Finding, Request, ToolCall
from tether.policy import Rule, Verdict
from tether.reuse import default_key
from tether.tools import ToolRegistry

# What continues an id rather than ends it: a word character, a hyphen or dash of any script
# (U+2010 and its kin, the soft hyphen, full-width), or an invisible format character (a
# zero-width space between "grp-admin" and "-ro2" still makes them one id).
ID_GOES_ON = (
    r"[\w\-\u00ad\u2010-\u2015\u2212\u2043\ufe58\ufe63\uff0d"
    r"\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
)


@dataclass(frozen=True)
class ReferenceKind:
    """A kind of record a request can point at: a host, a booking, a parcel, an invoice."""

    name: str
    pattern: str  # one id, unanchored: matched whole when given, searched for in the text
    lookup: str | None = None  # the read tool that fetches it as a context record
    owner: str | None = None  # the looked-up record's field that names its subject
    max_lookups: int = 1  # records of this kind read per request, first mentioned first
    ignore_case: bool = False  # matched in any case, written upper-case
    describe: Callable[[dict[str, Any]], str] | None = None  # the record in words

    def _regex(self, *, loose: bool = False) -> re.Pattern[str]:
        # Whole ids only: one continued by a hyphen (grp-admin-ro2) is another id, never the
        # prefix that happens to exist (grp-admin), nor is one that continues another's.
        # Loose: any id-shaped part, for text that leaves (it errs towards seeing an id).
        edge = (r"\b", r"\b") if loose else (rf"(?<!{ID_GOES_ON})", rf"(?!{ID_GOES_ON})")
        return re.compile(
            rf"{edge[0]}({self.pattern}){edge[1]}", re.IGNORECASE if self.ignore_case else 0
        )

    def normalise(self, ident: str) -> str:
        return ident.upper() if self.ignore_case else ident

    def valid(self, ident: str) -> bool:
        return (
            re.fullmatch(self.pattern, ident, re.IGNORECASE if self.ignore_case else 0) is not None
        )

    def find(self, text: str, *, loose: bool = False) -> list[str]:
        """Ids mentioned in ``text``, normalised, first mention first (``loose``: every
        id-shaped part, as in ``_regex``)."""
        seen: dict[str, None] = {}
        for match in self._regex(loose=loose).finditer(text):
            seen.setdefault(self.normalise(match.group(1)), None)
        return list(seen)


@dataclass(frozen=True)
class KnowledgeSource:
    """A directory (or http(s) URL) the pack's knowledge comes from."""

    location: str | Path
    source: str = "kb"
    max_age_days: int = 30


class EmbeddedSystem(Protocol):
    """A local copy of a business system, started by the embedded stack."""

    @property
    def running(self) -> bool: ...

    def start(self) -> Any: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class SystemSpec:
    """A business system the pack's tools act on, by name; ``url`` is its default address
    (Settings.systems overrides it). ``embedded`` builds a local copy from (database file,
    port) for the one-machine stack."""

    name: str
    url: str
    embedded: Callable[[Path, int], EmbeddedSystem] | None = None


@dataclass(frozen=True)
class Tally:
    """A total a subject's requests are held to over a window (PolicyConfig.tally_windows):
    the sum of ``argument`` over the write calls of their plans, held while a request is
    open and kept once it acted. Rules read the subject's other requests' total from
    ``Facts.tallies[name]``, so splitting across tickets is judged like splitting within one."""

    name: str
    argument: str


@dataclass(frozen=True)
class DemoTicket:
    """One row of `tether demo`."""

    label: str
    subject: str
    text: str
    approve_as: str | None = None  # an operator approves it with `tether approvals approve`
    reason: str = ""
    model_down: bool = False  # runs after the model worker is taken away


# (request, context, the answer, the intent) -> the tool's arguments, or None to leave it out
Filler = Callable[[Request, list[ContextRecord], str, str], dict[str, Any] | None]
# facts (the proposal's calls, the request, the evidence and context) -> findings: argument
# checks only this business knows
ArgumentCheck = Callable[[Facts], Iterable[Finding]]
# (a policy, its rule settings as the pack's model) -> problems: checks across the two
PolicyCheck = Callable[[PolicyConfig, Any], Iterable[str]]
# The owner of a record whose owner field is missing: equal to no subject (ids never hold '?').
UNKNOWN_OWNER = "?"


@dataclass(frozen=True)
class DomainPack:
    name: str
    title: str
    tools: ToolRegistry
    intents: tuple[str, ...]
    intents_file: Path
    policy: PolicyConfig
    subject_label: str = "subject"  # what the business calls a subject (employee, patient)
    references: tuple[ReferenceKind, ...] = ()
    rules: tuple[Rule, ...] = ()
    rule_settings: type[BaseModel] | None = None
    check_policy: PolicyCheck | None = None
    checks: tuple[ArgumentCheck, ...] = ()
    tallies: tuple[Tally, ...] = ()
    fillers: Mapping[str, Filler] = field(default_factory=dict)
    instructions: str = ""
    knowledge: tuple[KnowledgeSource, ...] = ()
    systems: tuple[SystemSpec, ...] = ()
    describe_call: Callable[[ToolCall], str] | None = None
    # When two requests ask the same thing (tether/reuse.py; the policy's proposal_reuse
    # turns reuse on): a key from the request and the context read, None for "never".
    reuse_match: Callable[[Request, Sequence[ContextRecord]], str | None] = default_key
    demo: tuple[DemoTicket, ...] = ()
    # The people of the demo and the tests (approver id -> roles). Never in ``policy``: a
    # deployment configures its own directory, with keys (tether/policystore.py).
    demo_approvers: Mapping[str, list[str]] = field(default_factory=dict)
    # Intent -> the tools its plan names (intents_file): what each intent is for, read once.
    plans: Mapping[str, frozenset[str]] = field(init=False, default_factory=dict)
    # The intents with labelled examples: the ones the verifier can read in a request.
    readable: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        object.__setattr__(self, "plans", _plans(self.intents_file))
        object.__setattr__(self, "readable", _readable(self.intents_file))
        problems = []
        if not re.fullmatch(DOMAIN[1:-1], self.name):
            problems.append(f"name {self.name!r} must be a lower-case word")
        systems = {s.name for s in self.systems}
        for spec in self.tools:
            if spec.system not in systems:
                problems.append(f"tool {spec.name} acts on unknown system {spec.system!r}")
            for kind in spec.references.values():
                if kind not in {r.name for r in self.references}:
                    problems.append(f"tool {spec.name} names unknown reference kind {kind!r}")
        for ref in self.references:
            if ref.lookup is None:
                continue
            if ref.lookup not in self.tools or self.tools.get(ref.lookup).writes:
                problems.append(f"reference {ref.name}: lookup {ref.lookup!r} is no read tool")
            elif ref.name not in self.tools.get(ref.lookup).references.values():
                problems.append(f"reference {ref.name}: {ref.lookup} takes no {ref.name} id")
        for tool in self.fillers:
            if tool not in self.tools:
                problems.append(f"filler for unknown tool {tool!r}")
        problems += [f"default policy: {p}" for p in self.policy_problems(self.policy)]
        if problems:
            raise ValueError(f"domain pack {self.name}: " + "; ".join(problems))

    def plans_for(self, intent: str | None, tools: Iterable[str]) -> bool:
        """Whether ``intent``'s plan names every one of ``tools``."""
        return intent is not None and set(tools) <= self.plans.get(intent, frozenset())

    # --- requests --------------------------------------------------------------------

    def reference(self, kind: str) -> ReferenceKind:
        for ref in self.references:
            if ref.name == kind:
                return ref
        raise KeyError(f"{self.name} has no reference kind {kind!r}")

    def problems(self, request: Request) -> list[str]:
        """What is wrong with ``request`` for this business, as 'field: message'."""
        known = {r.name: r for r in self.references}
        found = []
        for kind, ids in request.references.items():
            ref = known.get(kind)
            if ref is None:
                found.append(
                    f"references.{kind}: not a kind of record here; known: {sorted(known)}"
                )
                continue
            bad = [i for i in ids if not ref.valid(i)]
            if bad:
                found.append(f"references.{kind}: {bad} do not match {ref.pattern}")
        return found

    def references_of(self, request: Request) -> dict[str, list[str]]:
        """Every record the request points at: given ones first, then those its text names."""
        found: dict[str, list[str]] = {}
        for ref in self.references:
            given = [ref.normalise(i) for i in request.references.get(ref.name, [])]
            ids = list(dict.fromkeys([*given, *ref.find(request.text)]))
            if ids:
                found[ref.name] = ids
        return found

    def lookups(self, request: Request) -> list[tuple[ReferenceKind, str]]:
        """(kind, id) of each record to read before proposing."""
        mentioned = self.references_of(request)
        return [
            (ref, ident)
            for ref in self.references
            if ref.lookup is not None
            for ident in mentioned.get(ref.name, [])[: ref.max_lookups]
        ]

    def lookup_call(self, ref: ReferenceKind, ident: str) -> ToolCall:
        assert ref.lookup is not None
        spec = self.tools.get(ref.lookup)
        argument = next(a for a, kind in spec.references.items() if kind == ref.name)
        return ToolCall(tool=ref.lookup, arguments={argument: ident})

    def context_record(self, ref: ReferenceKind, ident: str, data: dict[str, Any]) -> ContextRecord:
        text = ref.describe(data) if ref.describe else f"{ref.name} {ident}: {data}"
        owner = None
        if ref.owner:  # a record that should name its owner and does not belongs to nobody
            found = data.get(ref.owner)
            owner = str(found) if found not in (None, "") else UNKNOWN_OWNER
        return ContextRecord(kind=ref.name, id=ident, data=data, text=text, owner=owner)

    # --- policy ----------------------------------------------------------------------

    def settings(self, policy: PolicyConfig) -> Any:
        """``policy.rules`` as the pack's settings model (None if it has none)."""
        if self.rule_settings is None:
            return None
        try:
            return self.rule_settings.model_validate(policy.rules)
        except ValidationError as err:
            raise ValueError(f"rules for {self.name}: {err}") from None

    def policy_problems(self, policy: PolicyConfig) -> list[str]:
        """What is wrong with ``policy`` for this pack: its rule settings, and the pack's own
        checks of them against the rest (e.g. limits for tiers the policy has)."""
        problems = []
        unknown = [i for i in policy.intent_thresholds if i not in self.intents]
        if unknown:  # a misspelt intent would silently keep the policy's thresholds
            problems.append(f"intent_thresholds names {unknown}; the intents are {self.intents}")
        unread = [
            i for i in policy.intent_thresholds if i in self.intents and i not in self.readable
        ]
        if unread:  # the verifier never reads them: their thresholds would never apply
            problems.append(
                f"intent_thresholds names {unread}, which have no labelled examples in "
                f"{self.intents_file.name}: the verifier cannot read them in a request"
            )
        try:
            settings = self.settings(policy)
        except ValueError as err:
            return [*problems, str(err)]
        return problems + (list(self.check_policy(policy, settings)) if self.check_policy else [])

    def judge(self, facts: Facts, policy: PolicyConfig, now: datetime) -> list[Verdict]:
        settings = self.settings(policy)
        return [verdict for rule in self.rules for verdict in rule(facts, settings, now)]

    def check_arguments(self, facts: Facts) -> list[Finding]:
        """The pack's own argument checks on the proposal in ``facts`` (the core's run beside
        them). A check that fails blocks: nothing acts on arguments nobody could check."""
        try:
            found = [f for check in self.checks for f in check(facts)]
        except Exception as err:
            found = [Finding(code="pack_error", severity="block", detail=repr(err)[:300])]
        return [f.model_copy(update={"about": "arguments"}) for f in found]

    def owner_field(self, kind: str) -> str | None:
        return next((r.owner for r in self.references if r.name == kind), None)

    def describe(self, call: ToolCall) -> str:
        """A tool call in a few words, for tables and the console."""
        return self.describe_call(call) if self.describe_call else call.tool


# "<pack>/<what changed>": the pack's name as a domain is named (an it-desk pack has changes too).
CHANGE = re.compile(rf"{DOMAIN.strip('^$')}/[A-Za-z0-9][A-Za-z0-9._-]{{0,80}}")
CHANGE_MARKER = "pack:"  # before a change's name in the run's patch marker
_DECIDED = "_tether_pack_changes"  # the run's answers, an attribute of its workflow object


def changed(change: str) -> bool:
    """Whether this run takes the pack's change ``change`` ("<pack>/<what changed>"): the
    pack's own ``workflow.patched``. A run that meets the change first takes it, and its
    history says so (a patch marker ``pack:<change>``); a run recorded before the change was
    deployed replays without it, on the old path. Outside a workflow (an evaluation, a test)
    the change is simply taken.

        if changed("rooms/board-needs-director"):
            yield Escalate(...)  # the new rule
        else:
            ...  # the rule as it was, for runs that started before

    In a query or an update's validator, which write no history, it answers what the run
    decided before, and for a change the run has not met yet, True: neither runs during
    replay, so the run takes the change when it meets it. (An edit's validator runs the
    pack's rules, and must judge as the update's handler will.) Once no run in flight, and
    none of the histories CI replays, predates the change, its old branch can go.
    """
    if not CHANGE.fullmatch(change):
        raise ValueError(f"a pack's change is named '<pack>/<what changed>', not {change!r}")
    if not workflow.in_workflow():
        return True
    # The run's answers so far, on its own workflow object: they live and go with the run
    # (none before the object exists, in the workflow's __init__). "Not met yet" is True as
    # long as no worker sets a patch_activation_callback, which Tether's workers do not.
    run = workflow.instance()
    decided: dict[str, bool] = {} if run is None else vars(run).setdefault(_DECIDED, {})
    if workflow.unsafe.is_read_only():
        return decided.get(change, True)
    decided[change] = workflow.patched(CHANGE_MARKER + change)
    return decided[change]


def _intents(path: Path) -> dict[str, dict[str, Any]]:
    """The intents file's entries (none when it cannot be read)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        return {}
    intents = raw.get("intents") if isinstance(raw, dict) else None
    return {str(k): v for k, v in (intents or {}).items() if isinstance(v, dict)}


def _plans(path: Path) -> dict[str, frozenset[str]]:
    """Each intent's planned tools, from the intents file: the intents that say (``plan: []``
    is a plan of no tool; an intent that names no plan has none, and is left out)."""
    return {
        name: frozenset(body.get("plan") or ())
        for name, body in _intents(path).items()
        if "plan" in body
    }


def _readable(path: Path) -> frozenset[str]:
    """The intents the file gives labelled examples."""
    return frozenset(name for name, body in _intents(path).items() if body.get("examples"))
