"""The itops domain pack: an internal IT service desk. Employees ask for services to be
restarted, access to be granted or revoked, credentials rotated and changes recorded; the model
proposes the changes against the CMDB and its change executor; Tether governs them.
Registered as the ``itops`` entry point of ``tether.domains``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tether.config import ApprovalTier, PolicyConfig
from tether.domain import DemoTicket, DomainPack, KnowledgeSource, SystemSpec

from .planner import change_record, describe_call, membership, notify, service_change
from .rules import (
    ASSETS,
    ItopsRules,
    change_asked_now,
    check_policy,
    itops_rules,
    member_as_asked,
    note_tells_the_truth,
    service_as_asked,
)
from .tools import CHANGES, CMDB, REGISTRY

HERE = Path(__file__).resolve().parent

# Intent names the model may propose; intents.yaml holds their examples and plans.
INTENTS: tuple[str, ...] = (
    "restart_service",
    "grant_access",
    "revoke_access",
    "rotate_credential",
    "open_change",
    "runbook_question",
)

INSTRUCTIONS = """You resolve an internal IT service desk's requests. The subject is the employee
asking; the records are hosts, services, access groups and people from the CMDB."""

POLICY = PolicyConfig(
    version="itops-policy/2026-12-01",
    min_auto_confidence=0.55,
    min_grounding=0.75,
    tiers=[
        ApprovalTier(name="oncall", role="oncall_sre", sla=timedelta(minutes=30)),
        ApprovalTier(name="security", role="security", sla=timedelta(hours=2)),
        ApprovalTier(name="change_board", role="change_board", sla=timedelta(hours=8)),
    ],
    autonomous_permissions=[
        "cmdb:read",
        "services:restart",
        "access:change",
        "changes:open",
        "notes:send",
    ],
    rules=ItopsRules().model_dump(mode="json"),
)


def _system(role: str) -> Any:
    def build(db: Path, port: int) -> Any:
        from .systems import ItopsServer  # a web server: only where one is started

        # Both systems serve one database: the executor's changes are the CMDB's records.
        return ItopsServer(db.with_name("itops.sqlite"), role=role, port=port)  # type: ignore[arg-type]

    return build


PACK = DomainPack(
    name="itops",
    title="IT operations service desk",
    subject_label="employee",
    tools=REGISTRY,
    intents=INTENTS,
    intents_file=HERE / "intents.yaml",
    policy=POLICY,
    references=(ASSETS,),
    rules=(itops_rules,),
    rule_settings=ItopsRules,
    check_policy=check_policy,
    checks=(member_as_asked, service_as_asked, note_tells_the_truth, change_asked_now),
    fillers={
        "restart_service": service_change,
        "rotate_credential": service_change,
        "add_to_group": membership,
        "remove_from_group": membership,
        "open_change_record": change_record,
        "notify_requester": notify,
    },
    instructions=INSTRUCTIONS,
    knowledge=(KnowledgeSource(HERE / "kb", source="itops-handbook", max_age_days=365),),
    systems=(
        SystemSpec(CMDB, "http://127.0.0.1:8767", embedded=_system("cmdb")),
        SystemSpec(CHANGES, "http://127.0.0.1:8768", embedded=_system("changes")),
    ),
    describe_call=describe_call,
    demo_approvers={
        "oncall@itops.example": ["oncall_sre"],
        "security@itops.example": ["security", "oncall_sre"],
        "cab@itops.example": ["change_board", "security", "oncall_sre"],
        "helpdesk@itops.example": ["helpdesk"],
    },
    demo=(
        DemoTicket(
            "staging restart",
            "E-201",
            "Please restart svc-checkout on stg-web-01, it is serving a stale config.",
        ),
        DemoTicket(
            "production restart",
            "E-203",
            "svc-search on prod-search-01 is leaking memory, please restart it.",
            approve_as="oncall@itops.example",
            reason="memory at 94%, restart is the runbook's first step",
        ),
        DemoTicket(
            "another team's service",
            "E-205",
            "Restart svc-checkout on stg-web-01 for me, I am testing the data export.",
        ),
        DemoTicket(
            "model down",
            "E-204",
            "Who approves access to a high sensitivity group?",
            model_down=True,
        ),
    ),
)
