"""`tether keys new` and `tether policy show | add | diff | activate`, as an operator runs them
(a process each, a store of their own)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.processes import tether_cli
from tether.config import Settings
from tether.domains.support import PACK
from tether.policystore import PolicyStore


def test_keys_and_policy_versions_from_the_command_line(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", domains=["support"])
    settings.data_dir.mkdir()
    store = PolicyStore(settings.resolved_store_url())
    store.register(PACK, settings, by="worker")  # what a worker does at its start

    made = tether_cli(
        settings, "keys", "new", "lead@northwind.example", "--out", str(tmp_path / "lead.key")
    )
    assert made.returncode == 0, made.stderr
    entry = json.loads(made.stdout.strip().splitlines()[-1])
    public = entry["lead@northwind.example"]["keys"][0]["public_key"]
    again = tether_cli(
        settings, "keys", "new", "lead@northwind.example", "--out", str(tmp_path / "lead.key")
    )
    assert again.returncode == 2 and "never overwritten" in again.stderr

    version = tmp_path / "v2.yaml"
    version.write_text(
        "version: support-policy/v2\n"
        "rules: {auto_limit_cents: 2500}\n"
        "approvers:\n"
        f"  lead@northwind.example: {{roles: [support_lead], keys: [{{public_key: '{public}'}}]}}\n"
    )
    added = tether_cli(settings, "policy", "add", str(version), "--by", "ops", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["version"] == "support-policy/v2"
    typo = tmp_path / "typo.yaml"
    typo.write_text("version: v3\nrules: {auto_limit_cent: 1}\n")
    refused = tether_cli(settings, "policy", "add", str(typo))
    assert refused.returncode == 2 and "auto_limit_cent" in refused.stderr

    diff = tether_cli(
        settings, "policy", "diff", PACK.policy.version, "support-policy/v2", "--json"
    )
    changes = json.loads(diff.stdout)["changes"]
    assert any(c.startswith("rules.auto_limit_cents: 5000 -> 2500") for c in changes), changes

    shown = json.loads(tether_cli(settings, "policy", "show", "--json").stdout)
    assert shown["version"] == PACK.policy.version and shown["active"]  # not yet activated
    no_reason = tether_cli(settings, "policy", "activate", "support-policy/v2", "--reason", " ")
    assert no_reason.returncode == 2
    done = tether_cli(
        settings, "policy", "activate", "support-policy/v2", "--by", "ops", "--reason", "launch"
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(tether_cli(settings, "policy", "show", "--json").stdout)
    assert (
        shown["version"] == "support-policy/v2"
        and shown["policy"]["rules"]["auto_limit_cents"] == 2500
    )
    assert [(a["version"], a["by"], a["reason"]) for a in shown["activations"]][-1] == (
        "support-policy/v2",
        "ops",
        "launch",
    )
    missing = tether_cli(settings, "policy", "activate", "nope", "--reason", "x")
    assert missing.returncode == 1 and "no support policy version 'nope'" in missing.stderr
