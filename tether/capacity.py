"""Capacity from the runtime's own metrics: each worker process exports the CPU it has used
(``tether_process_cpu_seconds``, by role) beside the outcomes it recorded (``tether_decisions``)
on its Prometheus endpoint. Two scrapes some seconds apart give, per role, the CPU one request
costs; a Python process does at most one core of work (the GIL), so that cost says how many
requests a second one process of the role can carry, which role limits the deployment, and
how many processes a target rate needs.

The Temporal server's own CPU is not in these metrics: size it from its own (or leave it half
the machine, as measured on the 2-core reference machine, README "Sizing")."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import httpx

CPU = "tether_process_cpu_seconds"
DECISIONS = "tether_decisions"
# One process of a role is counted as full at this share of a core: headroom for bursts.
HEADROOM = 0.8

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> list[Sample]:
    """Prometheus text exposition: one sample per line, comments skipped."""
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        samples.append(Sample(name, dict(_LABEL.findall(labels or "")), number))
    return samples


@dataclass(frozen=True)
class Snapshot:
    """What one scrape of every endpoint says: CPU seconds per (role, pid), outcomes so far."""

    cpu: dict[tuple[str, str], float]
    decisions: float


class Unreadable(Exception):
    """An endpoint that gave no metrics: which one, and why, on one line."""


def scrape(endpoints: list[str], timeout: float = 5.0) -> Snapshot:
    cpu: dict[tuple[str, str], float] = {}
    decisions = 0.0
    for endpoint in endpoints:
        url = endpoint if "://" in endpoint else f"http://{endpoint}/metrics"
        try:
            response = httpx.get(url, timeout=timeout)
            response.raise_for_status()
        except (httpx.HTTPError, httpx.InvalidURL) as err:  # an address mistyped is one too
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise Unreadable(f"{endpoint}: {reason}") from err
        for sample in parse(response.text):
            if sample.name == CPU:
                key = (sample.labels.get("role", "?"), sample.labels.get("pid", endpoint))
                cpu[key] = sample.value
            elif sample.name in (DECISIONS, f"{DECISIONS}_total"):
                decisions += sample.value
    return Snapshot(cpu, decisions)


@dataclass(frozen=True)
class RoleLoad:
    role: str
    processes: int
    cores: float  # CPU used by the role's processes together, in cores
    cpu_ms_per_request: float | None
    per_process_per_s: float | None  # requests a second one process carries at HEADROOM
    needed: int | None  # processes for the target rate


@dataclass(frozen=True)
class Capacity:
    seconds: float
    requests_per_s: float
    roles: list[RoleLoad]
    bottleneck: str | None
    ceiling_per_s: float | None  # what the deployment carries as it is


def assess(before: Snapshot, after: Snapshot, seconds: float, target: float | None) -> Capacity:
    rate = max(0.0, after.decisions - before.decisions) / seconds
    used: dict[str, float] = defaultdict(float)
    processes: dict[str, int] = defaultdict(int)
    for key, value in after.cpu.items():
        processes[key[0]] += 1
        used[key[0]] += max(0.0, value - before.cpu.get(key, value)) / seconds
    roles = []
    for role in sorted(used):
        cost = used[role] / rate if rate > 0 else None
        carry = HEADROOM / cost if cost else None
        needed = -(-target // carry) if target and carry else None
        roles.append(
            RoleLoad(
                role=role,
                processes=processes[role],
                cores=used[role],
                cpu_ms_per_request=cost * 1000 if cost is not None else None,
                per_process_per_s=carry,
                needed=int(needed) if needed is not None else None,
            )
        )
    limits = {r.role: r.per_process_per_s * r.processes for r in roles if r.per_process_per_s}
    bottleneck = min(limits, key=lambda role: limits[role]) if limits else None
    return Capacity(
        seconds=seconds,
        requests_per_s=rate,
        roles=roles,
        bottleneck=bottleneck,
        ceiling_per_s=limits[bottleneck] if bottleneck else None,
    )
