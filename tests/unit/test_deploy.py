"""The monitoring bundle in deploy/: Prometheus accepts the config and the rules, the rules'
own unit tests pass (the alerts fire on the series fed to them), and Grafana gets a dashboard
bound to a Prometheus data source it can provision. That every metric queried is exported is
tests/integration/test_deploy_metrics.py's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
PROMTOOL = shutil.which("promtool")
# CI installs it (.ci/run): missing there is a failure, elsewhere a skip that says why.
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool not installed (Debian: apt-get install prometheus)",
)


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    assert PROMTOOL is not None, "promtool is not on PATH"
    done = subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    assert "SUCCESS" in promtool("check", "rules", "rules/tether.yml")


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules_it_loads() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert "rules/tether.yml" in out and "SUCCESS" in out


@needs_promtool
def test_the_alerts_fire_on_the_series_fed_to_them() -> None:
    """tether_test.yml: circuit open, fast burn (and not on the short window alone), SLA
    breach, drift."""
    assert "SUCCESS" in promtool("test", "rules", "tether_test.yml", cwd=PROMETHEUS / "rules")


def alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "rules" / "tether.yml").read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_every_alert_waits_says_how_bad_and_explains_itself() -> None:
    found = alerts()
    assert {
        "TetherErrorBudgetFastBurn",
        "TetherErrorBudgetSlowBurn",
        "TetherModelCircuitOpen",
        "TetherApprovalSLABreached",
        "TetherDriftDetected",
        "TetherWorkflowTaskScheduleToStartSlow",
        "TetherWorkflowTaskExecutionSlow",
    } <= set(found)
    for name, rule in found.items():
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_unit_tests_cover_the_circuit_and_the_fast_burn() -> None:
    tests = yaml.safe_load((PROMETHEUS / "rules" / "tether_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {"TetherModelCircuitOpen", "TetherErrorBudgetFastBurn"} <= fired


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GRAFANA / "tether.json").read_text())
    return loaded


def test_the_dashboard_queries_through_its_datasource_variable() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    queried = [p for p in board["panels"] if p["type"] != "row"]
    for panel in queried:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_the_dashboard_has_a_panel_for_each_question_an_operator_asks() -> None:
    exprs = {
        p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in dashboard()["panels"]
    }

    def panel(*needles: str) -> bool:
        return any(all(n in expr for n in needles) for expr in exprs.values())

    assert panel("tether_decisions", "action", "mode")
    assert panel('action="approval"', "/")  # escalation rate: a share
    assert panel("tether_approval_queue_depth") and panel("tether_approval_sla_breaches")
    assert panel("tether_tool_calls", 'ok="false"')
    assert panel("tether_circuit_state")
    assert panel("tether:slo_burn_rate:1h", "tether:slo_burn_rate:1d")  # fast and slow
    assert panel("tether_drift_psi")
    assert panel("histogram_quantile(0.5", "histogram_quantile(0.95", "tether_stage_latency")
    assert panel("temporal_workflow_task_schedule_to_start_latency_bucket")


def test_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    provisioning = GRAFANA / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"].startswith("http://")
    [provider] = yaml.safe_load((provisioning / "dashboards" / "tether.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file" and provider["options"]["path"]
