"""`tether report`: one HTML page a person would rather look at than read. Outcomes over
time, bucketed by hour or day: decisions, operating modes, escalation rate, grounding and
confidence, latency, and the live evaluation's scores. Charts are inline SVG, no scripts."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from html import escape

from tether.contracts import DecisionAction, Outcome

WIDTH, HEIGHT, PAD = 640, 180, 34
COLOURS = ["#2f6f9f", "#d08b2c", "#3f8f4f", "#a33d3d", "#7b5aa6", "#5a5a5a", "#1f9e9e"]


def _bucket(at: datetime, span: timedelta) -> datetime:
    if span <= timedelta(days=2):
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _x(i: int, n: int) -> float:
    return PAD + (WIDTH - 2 * PAD) * (i / max(n - 1, 1))


def _y(value: float, top: float) -> float:
    return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value / top if top else 0)


def _frame(title: str, labels: list[str], top: float, body: str, legend: list[str]) -> str:
    ticks = "".join(
        f"<text x='{_x(i, len(labels)):.0f}' y='{HEIGHT - 10}' font-size='10' "
        f"text-anchor='middle'>{escape(label)}</text>"
        for i, label in enumerate(labels)
        if len(labels) <= 12 or i % max(len(labels) // 8, 1) == 0
    )
    keys = "".join(
        f"<tspan fill='{COLOURS[i % len(COLOURS)]}'>■ {escape(name)} </tspan>"
        for i, name in enumerate(legend)
    )
    return (
        f"<figure><figcaption>{escape(title)}</figcaption>"
        f"<svg viewBox='0 0 {WIDTH} {HEIGHT}' width='{WIDTH}' height='{HEIGHT}' role='img'>"
        f"<line x1='{PAD}' y1='{HEIGHT - PAD}' x2='{WIDTH - PAD}' y2='{HEIGHT - PAD}' stroke='#999'/>"
        f"<text x='4' y='{PAD}' font-size='10'>{top:g}</text>{body}{ticks}"
        f"<text x='{PAD}' y='14' font-size='11'>{keys}</text></svg></figure>"
    )


def line_chart(title: str, labels: list[str], series: dict[str, list[float | None]]) -> str:
    values = [v for s in series.values() for v in s if v is not None]
    top = max(values, default=1.0) or 1.0
    body = ""
    for i, points in enumerate(series.values()):
        coords = " ".join(
            f"{_x(j, len(labels)):.1f},{_y(v, top):.1f}"
            for j, v in enumerate(points)
            if v is not None
        )
        body += f"<polyline fill='none' stroke='{COLOURS[i % len(COLOURS)]}' stroke-width='2' points='{coords}'/>"
    return _frame(title, labels, round(top, 3), body, list(series))


def stacked_bars(title: str, labels: list[str], series: dict[str, list[int]]) -> str:
    totals = [sum(s[j] for s in series.values()) for j in range(len(labels))]
    top = max(totals, default=1) or 1
    width = (WIDTH - 2 * PAD) / max(len(labels), 1) * 0.7
    body = ""
    for j in range(len(labels)):
        base = 0
        for i, counts in enumerate(series.values()):
            if counts[j]:
                y0, y1 = _y(base, top), _y(base + counts[j], top)
                body += (
                    f"<rect x='{_x(j, len(labels)) - width / 2:.1f}' y='{y1:.1f}' width='{width:.1f}' "
                    f"height='{y0 - y1:.1f}' fill='{COLOURS[i % len(COLOURS)]}'/>"
                )
            base += counts[j]
    return _frame(title, labels, top, body, list(series))


def render(
    outcomes: Sequence[Outcome], scores: dict[str, dict[str, float]], *, generated: datetime
) -> str:
    if not outcomes:
        return "<!doctype html><title>Tether report</title><p>No outcomes in this window.</p>"
    span = outcomes[-1].finished_at - outcomes[0].finished_at
    buckets: dict[datetime, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        buckets[_bucket(o.finished_at, span)].append(o)
    keys = sorted(buckets)
    fmt = "%H:00" if span <= timedelta(days=2) else "%m-%d"
    labels = [k.strftime(fmt) for k in keys]

    def counts(label: Callable[[Outcome], str]) -> dict[str, list[int]]:
        """Per label, how many outcomes of each bucket carry it."""
        per = [Counter(label(o) for o in buckets[k]) for k in keys]
        return {n: [c[n] for c in per] for n in sorted({n for c in per for n in c})}

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 4) if values else None

    escalation = [
        mean([1.0 if o.decision.action is DecisionAction.APPROVAL else 0.0 for o in buckets[k]])
        for k in keys
    ]
    grounding = [
        mean([o.verification.grounding for o in buckets[k] if o.verification]) for k in keys
    ]
    confidence = [mean([o.proposal.confidence for o in buckets[k] if o.proposal]) for k in keys]
    latency: list[float | None] = [
        statistics.median((o.finished_at - o.started_at).total_seconds() for o in buckets[k])
        for k in keys
    ]
    scorers = sorted({n for s in scores.values() for n in s})
    quality = {
        n: [
            mean([scores[o.request_id][n] for o in buckets[k] if n in scores.get(o.request_id, {})])
            for k in keys
        ]
        for n in scorers
    }
    charts = [
        stacked_bars("Decisions", labels, counts(lambda o: o.decision.action.value)),
        stacked_bars("Operating modes", labels, counts(lambda o: o.mode.value)),
        line_chart("Escalation rate (share sent to a person)", labels, {"escalated": escalation}),
        line_chart(
            "Grounding and confidence (means)",
            labels,
            {"grounding": grounding, "confidence": confidence},
        ),
        line_chart(
            "Latency, median seconds (request to recorded outcome)", labels, {"p50": latency}
        ),
    ]
    if scorers:
        charts.append(line_chart("Live evaluation scores (means of the sample)", labels, quality))
    total = Counter(o.decision.action.value for o in outcomes)
    summary = ", ".join(f"{n} {a}" for a, n in total.most_common())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Tether report</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2rem;color:#222}"
        "figure{margin:1.2rem 0}figcaption{font-weight:600;margin-bottom:.3rem}</style></head>"
        f"<body><h1>Tether: {len(outcomes)} outcomes</h1><p>{escape(summary)}; from "
        f"{outcomes[0].finished_at:%Y-%m-%d %H:%M} to {outcomes[-1].finished_at:%Y-%m-%d %H:%M} UTC, "
        f"generated {generated:%Y-%m-%d %H:%M} UTC.</p>{''.join(charts)}</body></html>"
    )
