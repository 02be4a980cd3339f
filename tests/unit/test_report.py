"""`tether report`: outcomes over time as matplotlib charts inlined as SVG, computed from what
was recorded, with mode switches and policy activations marked, and the incident timeline's
events in its events table; one page that loads nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.unit.test_drift import NOW, outcome
from tether import packs
from tether.config import Settings
from tether.contracts import DecisionAction, Mode, ModelIdentity, Outcome
from tether.incident import Event, circuit_event
from tether.policystore import Activation, PolicyStore
from tether.report import render, window
from tether.store import Store

SVG = "{http://www.w3.org/2000/svg}"
HOURS = 20
SWITCH_HOUR = 10  # from this hour on, outcomes run retrieval-only
TITLES = [
    ("Decisions by action", "requests per hour"),
    ("Operating modes", "requests per hour"),
    ("Escalation rate", "escalated (% of requests)"),
    ("Grounding and confidence", "score (0 to 1)"),
    ("Latency", "latency (ms)"),
    ("Live evaluation scores", "score (0 to 1)"),
]
SWITCH = "support: normal → retrieval_only"
ACTIVATED = "support: policy v2"


def traffic(
    start: datetime = NOW, domain: str = "support", intent: str = "status"
) -> list[Outcome]:
    """Over 20 hours, 1 to 3 outcomes an hour (39 in all), the first of each hour escalated,
    retrieval-only from hour 10; latency grows from 100 ms by 20 ms an hour."""
    made = []
    for hour in range(HOURS):
        for i in range(1 + hour % 3):
            at = start + timedelta(hours=hour, minutes=10 * i)
            o = outcome(hour * 10 + i, grounding=0.9 - 0.02 * hour, intent=intent, at=at)
            decision = o.decision.model_copy(
                update={"action": DecisionAction.APPROVAL if i == 0 else DecisionAction.AUTO}
            )
            o = o.model_copy(
                update={
                    "domain": domain,
                    "decision": decision,
                    "mode": Mode.RETRIEVAL_ONLY if hour >= SWITCH_HOUR else Mode.NORMAL,
                    "started_at": at - timedelta(milliseconds=100 + 20 * hour + 5 * i),
                }
            )
            made.append(o)
    return made


def activation(at: datetime, domain: str = "support") -> Activation:
    return Activation(
        domain=domain, version="v2", sha256="0" * 64, previous="v1", at=at, by="ops", reason="x"
    )


def scored(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    return {
        o.request_id: {
            "grounded": 1.0 if o.verification and o.verification.grounding > 0.7 else 0.0
        }
        for o in outcomes
    }


def page() -> str:
    outcomes = traffic()
    activations = [activation(NOW + timedelta(hours=5, minutes=30))]
    return render(outcomes, scored(outcomes), generated=NOW, activations=activations)


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", html, re.DOTALL)]


def groups(svg: ET.Element, kind: str) -> list[ET.Element]:
    """matplotlib's groups of one kind (ids are prefixed per chart: p0-xtick_1, ...)."""
    return [g for g in svg.iter(f"{SVG}g") if re.search(rf"-{kind}(_|-|$)", g.get("id", ""))]


def texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()).strip() for t in element.iter(f"{SVG}text")]


def tick_labels(svg: ET.Element, axis: str) -> list[str]:
    return [t for tick in groups(svg, f"{axis}tick") for t in texts(tick) if t]


def axis_labels(svg: ET.Element, number: int) -> list[str]:
    """The texts an axis draws outside its ticks: its label, and the date offset on x."""
    (axis,) = groups(svg, f"matplotlib.axis_{number}")
    own = [g for g in axis if "-text_" in g.get("id", "")]
    return [t for g in own for t in texts(g) if t]


def gridlines(svg: ET.Element) -> int:
    """Lines across the plot from the ticks: the only tick paths clipped to the axes."""
    return sum(
        1
        for tick in groups(svg, "xtick") + groups(svg, "ytick")
        for path in tick.iter(f"{SVG}path")
        if path.get("clip-path")
    )


def test_each_panel_has_a_title_axes_with_units_ticks_and_gridlines() -> None:
    charts = svgs(page())
    assert len(charts) == len(TITLES)
    for chart, (title, ylabel) in zip(charts, TITLES, strict=True):
        assert any(t.startswith(title) for t in texts(chart)), title
        assert "time (UTC), one point per hour" in axis_labels(chart, 1)
        assert axis_labels(chart, 2) == [ylabel]
        assert len(tick_labels(chart, "x")) >= 4, title  # hours along the bottom
        assert len(tick_labels(chart, "y")) >= 3, title  # more than the top value
        assert gridlines(chart) >= 6, title
    escalation = tick_labels(charts[2], "y")
    assert "0%" in escalation and "100%" in escalation
    assert tick_labels(charts[0], "x")[0] == "12:00"  # hours, from the first bucket


def test_each_panel_draws_its_series_with_a_legend_where_there_are_several() -> None:
    charts = svgs(page())
    bars = [{g.get("id", "").split("-")[2] for g in groups(c, "bars")} for c in charts[:2]]
    assert [len(b) for b in bars] == [2, 2]  # approval, auto; normal, retrieval_only
    assert len(groups(charts[0], "bars")) == 2 * HOURS  # one bar a series an hour
    lines = [len(groups(c, "series")) for c in charts[2:]]
    assert lines == [1, 2, 2, 1]  # escalated; grounding, confidence; p50, p95; grounded
    legends = [texts(g) for c in charts for g in groups(c, "legend")]
    assert legends == [
        ["approval", "auto"],
        ["normal", "retrieval_only"],
        ["grounding", "confidence"],
        ["p50", "p95"],
    ]


def test_known_counts_are_summarised_and_tabled() -> None:
    html = page()
    assert "39 outcomes" in html and "20 approval, 19 auto" in html
    assert "one bucket per hour" in html
    row = re.search(r"<tr><td>support</td><td>status</td>(.*?)</tr>", html)
    assert row is not None
    assert re.findall(r">(\d+)<", row.group(1)) == ["39", "19", "20", "0", "0"]


def test_the_mode_switch_and_the_policy_activation_are_marked_on_every_panel() -> None:
    html = page()
    for chart in svgs(html):
        labels = [t for g in groups(chart, "marker-label") for t in texts(g)]
        assert labels == [ACTIVATED, SWITCH]  # earliest first
        assert len([g for g in groups(chart, "marker") if "label" not in g.get("id", "")]) == 2
    switched = NOW + timedelta(hours=SWITCH_HOUR)
    assert f"{switched:%Y-%m-%d %H:%M:%S}</td><td>mode switch</td><td>{SWITCH}" in html
    assert "policy activation</td><td>support: policy v2</td><td>by ops, replacing v1" in html


def circuit_opened(at: datetime, endpoint: str = "m at host") -> Event:
    return circuit_event("closed", "open", at=at, source="worker w:1", endpoint=endpoint)


def rows(html: str) -> list[list[str]]:
    """The events table's rows, as text."""
    table = html.split("<h2>Events</h2>")[1].split("<h2>")[0]
    found = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    return [cells for cells in found if cells]  # not the header


def test_the_events_table_holds_the_incident_events_beside_the_markers() -> None:
    outcomes = traffic()
    # The model's build changes at hour 15 (the retrieval-only hours had none to compare).
    outcomes = [
        o.model_copy(update={"model": ModelIdentity(provider="p", model="m", fingerprint="fp-2")})
        if o.finished_at >= NOW + timedelta(hours=15)
        else o
        for o in outcomes
    ]
    burning = Event(
        at=NOW + timedelta(hours=12),
        kind="budget_burn",
        domain="support",
        summary="quality budget grounded burning at 3.0x",
        source="evaluation e/1",
    )
    outcome_line = Event(at=NOW, kind="outcome", domain="support", summary="not a table row")
    html = render(
        outcomes,
        {},
        generated=NOW,
        activations=[activation(NOW + timedelta(hours=5, minutes=30))],
        events=[burning, circuit_opened(NOW + timedelta(hours=9, minutes=59)), outcome_line],
    )
    switched = NOW + timedelta(hours=SWITCH_HOUR)
    assert rows(html) == [
        [
            f"{NOW + timedelta(hours=5, minutes=30):%Y-%m-%d %H:%M:%S}",
            "policy activation",
            ACTIVATED,
            "by ops, replacing v1: x",
        ],
        [
            f"{switched - timedelta(minutes=1):%Y-%m-%d %H:%M:%S}",
            "circuit",
            "model circuit closed -&gt; open (m at host)",
            "worker w:1",
        ],
        [f"{switched:%Y-%m-%d %H:%M:%S}", "mode switch", SWITCH, ""],
        [
            f"{NOW + timedelta(hours=12):%Y-%m-%d %H:%M:%S}",
            "budget burning",
            "support: quality budget grounded burning at 3.0x",
            "evaluation e/1",
        ],
        [
            f"{NOW + timedelta(hours=15):%Y-%m-%d %H:%M:%S}",
            "model fingerprint",
            "support: model fingerprint fp-1 -&gt; fp-2 (m at p; from r-150-fp-1-"
            f"{(NOW + timedelta(hours=15)).timestamp()})",
            "outcomes",
        ],
    ]
    # Without outcomes the page still lists what was recorded.
    empty = render([], {}, generated=NOW, events=[circuit_opened(NOW)])
    assert "No outcomes in this window" in empty and "circuit" in rows(empty)[0]


def test_hostile_event_text_is_escaped_in_the_table() -> None:
    hostile = "<script>alert(1)</script>\n\x1b[31m\u202e"
    html = render(traffic(), {}, generated=NOW, events=[circuit_opened(NOW, endpoint=hostile)])
    assert "<script" not in html and "\x1b" not in html and "\u202e" not in html
    assert "model circuit closed -&gt; open (&lt;script&gt;alert(1)&lt;/script&gt; [31m)" in html


def test_an_activation_outside_the_window_is_not_marked() -> None:
    outcomes = traffic()
    html = render(outcomes, {}, generated=NOW, activations=[activation(NOW - timedelta(days=2))])
    assert ACTIVATED not in html
    assert len(svgs(html)) == 5  # no scores: no live evaluation panel


def test_latency_that_varies_draws_a_line_that_varies() -> None:
    latency = svgs(page())[4]
    for series in groups(latency, "series"):
        (path,) = [p for p in series.iter(f"{SVG}path") if p.get("clip-path")]
        ys = {float(y) for y in re.findall(r"[ML] [\d.]+ ([\d.]+)", path.get("d", ""))}
        assert len(ys) >= HOURS - 1  # 100 ms rising by 20 ms an hour: one height an hour


def test_outcomes_that_took_no_time_say_so_rather_than_draw_a_flat_line() -> None:
    outcomes = [o.model_copy(update={"started_at": o.finished_at}) for o in traffic()]
    assert "every outcome took 0 ms" in render(outcomes, {}, generated=NOW)


def test_buckets_are_minutes_hours_or_days_as_the_window_needs() -> None:
    def step(span: timedelta) -> timedelta:
        outcomes = [outcome(i, grounding=0.9, at=NOW + span * i) for i in range(2)]
        return window(outcomes).step

    assert step(timedelta(minutes=20)) == timedelta(minutes=1)
    assert step(timedelta(hours=20)) == timedelta(hours=1)
    assert step(timedelta(days=7)) == timedelta(hours=6)
    assert step(timedelta(days=30)) == timedelta(days=1)


def test_hostile_names_are_escaped_in_the_page_and_in_the_charts() -> None:
    domain = '<script>alert("$d$")</script>'
    intent = '"><img src=x onerror=alert(1)> $\\frac{1}{0}$ \x00\u202e'
    outcomes = traffic(domain=domain, intent=intent)
    html = render(
        outcomes, {}, generated=NOW, activations=[activation(NOW + timedelta(hours=1), domain)]
    )
    assert "<script" not in html and "<img" not in html
    assert "\x00" not in html and "\u202e" not in html  # no control or direction characters
    assert "&lt;script&gt;alert(&quot;$d$&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt; $\\frac{1}{0}$" in html
    labels = [t for g in groups(svgs(html)[0], "marker-label") for t in texts(g)]
    assert labels[0] == f"{domain}: policy v2"  # as written: not markup, "$d$" not mathtext
    assert labels[1].startswith(f"{domain}: normal → retr") and labels[1].endswith("…")


def test_the_page_is_self_contained() -> None:
    html = page()
    assert "<script" not in html.lower()
    assert not re.search(r"""\b(href|src)\s*=\s*["']?\s*(?!#)[^"'\s>]*:""", html)
    assert not re.search(r"""\b(href|src)\s*=\s*["']?\s*//""", html)
    assert not re.search(r"@import|url\(\s*['\"]?(?!#)", html)
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # each chart's clip paths and markers its own


def test_an_empty_window_says_so() -> None:
    assert "No outcomes" in render([], {}, generated=NOW)


def test_the_command_marks_the_stores_activations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tether.db'}"
    policies = PolicyStore(url)
    (pack,) = packs.load(["support"])
    activated = policies.register(pack, Settings(), by="test")  # activated now
    activation = policies.active_activation("support")
    assert activation is not None
    policies.close()
    now = datetime.now(UTC)
    # Every ten minutes from ten hours ago; those after the command's "now" are not reported.
    outcomes = traffic(start=now - timedelta(hours=10, minutes=1))
    # One after the activation: the chart ends with the last outcome's bucket, and the
    # activation must fall inside it whatever the time of day (a bucket boundary between the
    # last traffic, a minute ago, and the activation left it out of the chart).
    last = max((o for o in outcomes if o.finished_at < now), key=lambda o: o.finished_at)
    after = activation.at + (now - activation.at) / 2
    outcomes.append(
        last.model_copy(update={"request_id": "after-activation", "finished_at": after})
    )
    store = Store(url)
    for o in outcomes:
        store.record_outcome(o)
    store.record_scores(scored(outcomes), now)
    store.record_event(circuit_opened(now - timedelta(hours=2)))  # a worker's, say
    store.record_event(circuit_opened(now - timedelta(days=3)))  # before the window
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", "report", "--days", "1", "--out", "r.html"],
        cwd=tmp_path,
        env={**env, "TETHER_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "r.html").read_text()
    assert f"{sum(o.finished_at < now for o in outcomes)} outcomes" in html
    assert len(svgs(html)) == 6
    labels = [t for g in groups(svgs(html)[0], "marker-label") for t in texts(g)]
    assert labels == [SWITCH, f"support: policy {activated.version}"]  # a minute apart
    assert [r[1] for r in rows(html)] == ["circuit", "mode switch", "policy activation"]
