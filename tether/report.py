"""`tether report`: one HTML page a person would rather look at than read. Outcomes over time,
in buckets of minutes, hours or days: decisions, operating modes, escalation rate, grounding
and confidence, latency (p50 and p95), and the live evaluation's scores, with a marker where a
domain's operating mode changed and where a policy version was activated; an events table lists
those markers with the incident timeline's other events (tether/incident.py): the recorded
circuit moves, budgets burning and drift alarms, and model fingerprint changes.

Charts are drawn by matplotlib on Figure objects (the Agg canvas, no pyplot state, so a server
thread may build a report) to SVG with text kept as text, and inlined: the page has no
scripts and loads nothing. Every text from data is escaped, in the SVG and in the HTML."""

from __future__ import annotations

import io
import math
import re
import statistics
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Literal

import matplotlib
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from tether import incident
from tether.contracts import DecisionAction, Mode, Outcome
from tether.text import clean

if TYPE_CHECKING:
    from tether.incident import Event
    from tether.policystore import Activation

# Bucket widths, finest first: the first that gives at most MAX_BUCKETS buckets is used.
STEPS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
)
MAX_BUCKETS = 48
# rc_context swaps the process-wide rcParams: reports built in parallel threads take turns.
_RC_LOCK = threading.Lock()
# No creator URL, no date: nothing in the page points outside it, and output is reproducible.
SVG_METADATA: dict[str, str | None] = {"Creator": None, "Date": None, "Format": None, "Type": None}

PALETTE = ["#2f6f9f", "#d08b2c", "#3f8f4f", "#a33d3d", "#7b5aa6", "#5a5a5a", "#1f9e9e"]
COLOURS = {  # a decision or a mode keeps its colour whichever others are present
    DecisionAction.AUTO.value: "#3f8f4f",
    DecisionAction.APPROVAL.value: "#2f6f9f",
    DecisionAction.REJECT.value: "#a33d3d",
    DecisionAction.DEGRADED.value: "#8a8a8a",
    Mode.NORMAL.value: "#3f8f4f",
    Mode.RETRIEVAL_ONLY.value: "#d08b2c",
    Mode.HUMAN_DRAFT.value: "#7b5aa6",
    Mode.READ_ONLY.value: "#1f9e9e",
    Mode.SAFE_DEFAULT.value: "#a33d3d",
}
MARKER_STYLE = {"mode": ("#7b2d8b", ":"), "policy": ("#222222", "--")}

Scale = Literal["requests", "percent", "score", "ms"]


@dataclass(frozen=True)
class Window:
    """Outcomes in fixed-width buckets from the first to the last, empty ones too, so a gap in
    traffic shows as a gap rather than as a straight line across it."""

    step: timedelta
    starts: list[datetime]
    buckets: list[list[Outcome]]

    @property
    def centres(self) -> list[float]:
        return [_num(s + self.step / 2) for s in self.starts]

    @property
    def end(self) -> datetime:
        return self.starts[-1] + self.step


@dataclass(frozen=True)
class Marker:
    at: datetime
    kind: Literal["mode", "policy"]
    label: str
    detail: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    scale: Scale
    series: dict[str, list[float | None]]
    bars: bool = False  # stacked counts, else lines
    note: str = ""


# matplotlib.dates ships no type hints: its few calls live here.
def _num(at: datetime) -> float:
    """``at`` in matplotlib's date units (days since its epoch)."""
    return float(mdates.date2num(at))  # type: ignore[no-untyped-call]


def _time_axis(ax: Axes) -> None:
    """Ticks at round minutes, hours or days; labels say only what changes (10:15, 10:30...)."""
    locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    concise = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(concise)


def _floor(at: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=at.tzinfo)
    return at - (at - epoch) % step


def window(outcomes: Sequence[Outcome]) -> Window:
    """``outcomes`` in the finest buckets that keep the chart legible."""
    first = min(o.finished_at for o in outcomes)
    last = max(o.finished_at for o in outcomes)
    step = next((s for s in STEPS if (last - first) / s <= MAX_BUCKETS), STEPS[-1])
    start = _floor(first, step)
    count = int((last - start) / step) + 1
    buckets: list[list[Outcome]] = [[] for _ in range(count)]
    for o in outcomes:
        buckets[int((o.finished_at - start) / step)].append(o)
    return Window(step, [start + i * step for i in range(count)], buckets)


def step_name(step: timedelta) -> str:
    if step >= timedelta(days=1):
        return "day"
    if step >= timedelta(hours=1):
        return "hour" if step == timedelta(hours=1) else f"{step // timedelta(hours=1)} hours"
    minutes = step // timedelta(minutes=1)
    return "minute" if minutes == 1 else f"{minutes} minutes"


def _label(text: str, limit: int = 60) -> str:
    """Text from data for a matplotlib label: a dollar sign is a dollar, never mathtext (which
    would render other text than the data's, or refuse it). matplotlib escapes the SVG."""
    return clean(text, limit).replace("$", r"\$")


# -- what the panels show --------------------------------------------------------------------


def _counts(w: Window, label: Callable[[Outcome], str]) -> dict[str, list[float | None]]:
    """Per label, how many outcomes of each bucket carry it."""
    per = [Counter(label(o) for o in bucket) for bucket in w.buckets]
    names = sorted({n for c in per for n in c})
    return {n: [float(c[n]) for c in per] for n in names}


def _means(w: Window, value: Callable[[Outcome], float | None]) -> list[float | None]:
    """Per bucket, the mean of ``value`` over its outcomes that have one (None: none has)."""
    means = []
    for bucket in w.buckets:
        values = [v for o in bucket if (v := value(o)) is not None]
        means.append(statistics.fmean(values) if values else None)
    return means


def _quantile(values: list[float], q: int) -> float | None:
    """The q-th percentile, interpolated between recorded values (one value is every one)."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _latency(w: Window) -> Panel:
    # In ms, as recorded (Outcome.latency_ms). All zero means the data carries no duration
    # (outcomes made with started_at = finished_at): said in words, not drawn as a flat line.
    latency = [[o.latency_ms for o in b] for b in w.buckets]
    return Panel(
        "Latency (request to recorded outcome)",
        "latency (ms)",
        "ms",
        {
            "p50": [_quantile(v, 50) for v in latency],
            "p95": [_quantile(v, 95) for v in latency],
        },
        note=""
        if any(v for b in latency for v in b)
        else "every outcome took 0 ms: started_at equals finished_at in this data",
    )


def _grounding(o: Outcome) -> float | None:
    return o.verification.grounding if o.verification else None


def _scored(scores: dict[str, dict[str, float]], name: str) -> Callable[[Outcome], float | None]:
    return lambda o: scores.get(o.request_id, {}).get(name)


def panels(w: Window, scores: dict[str, dict[str, float]]) -> list[Panel]:
    per = f"requests per {step_name(w.step)}"
    shown = [
        Panel(
            "Decisions by action",
            per,
            "requests",
            _counts(w, lambda o: o.decision.action.value),
            bars=True,
        ),
        Panel("Operating modes", per, "requests", _counts(w, lambda o: o.mode.value), bars=True),
        Panel(
            "Escalation rate (share sent to a person)",
            "escalated (% of requests)",
            "percent",
            {
                "escalated": _means(
                    w, lambda o: 100.0 if o.decision.action is DecisionAction.APPROVAL else 0.0
                )
            },
        ),
        Panel(
            "Grounding and confidence (means)",
            "score (0 to 1)",
            "score",
            {
                "grounding": _means(w, _grounding),
                "confidence": _means(w, lambda o: o.proposal.confidence if o.proposal else None),
            },
        ),
        _latency(w),
    ]
    scorers = sorted({n for s in scores.values() for n in s})
    if scorers:
        means = {n: _means(w, _scored(scores, n)) for n in scorers}
        shown.append(
            Panel("Live evaluation scores (means of the sample)", "score (0 to 1)", "score", means)
        )
    return shown


def mode_switches(w: Window) -> list[Marker]:
    """Per domain, where the mode most outcomes of a bucket ran in differs from the previous
    busy bucket's. One odd outcome shows in the modes panel; a marker is for a change that
    held (a flapping mode would bury the chart in markers). Domains that switched alike in one
    bucket (an outage is everyone's) share a marker."""
    alike: dict[tuple[int, Mode, Mode], list[tuple[datetime, str]]] = {}
    for domain in sorted({o.domain for b in w.buckets for o in b}):
        previous: Mode | None = None
        for i, bucket in enumerate(w.buckets):
            mine = [o for o in bucket if o.domain == domain]
            if not mine:
                continue
            mode = Counter(o.mode for o in mine).most_common(1)[0][0]
            if previous is not None and mode is not previous:
                at = next(o.finished_at for o in mine if o.mode is mode)
                alike.setdefault((i, previous, mode), []).append((at, domain))
            previous = mode
    return [
        Marker(
            min(at for at, _ in switched),
            "mode",
            f"{', '.join(d for _, d in switched)}: {old.value} → {new.value}",
        )
        for (_, old, new), switched in alike.items()
    ]


def policy_markers(w: Window, activations: Sequence[Activation]) -> list[Marker]:
    """Activations inside the charted window (earlier ones govern it but change nothing in it)."""
    return [
        Marker(
            a.at,
            "policy",
            f"{a.domain}: policy {a.version}",
            f"by {a.by}, replacing {a.previous or 'none'}: {a.reason}",
        )
        for a in activations
        if w.starts[0] <= a.at <= w.end
    ]


# -- drawing -----------------------------------------------------------------------------------


def _colour(name: str, i: int) -> str:
    return COLOURS.get(name, PALETTE[i % len(PALETTE)])


def _draw_bars(ax: Axes, w: Window, series: dict[str, list[float | None]]) -> None:
    width = w.step / timedelta(days=1) * 0.8  # date units are days
    bottom = [0.0] * len(w.starts)
    for i, (name, values) in enumerate(series.items()):
        heights = [v or 0.0 for v in values]
        bars = ax.bar(w.centres, heights, width, bottom, color=_colour(name, i), label=_label(name))
        for j, bar in enumerate(bars):  # ids name the series: the SVG says what it draws
            bar.set_gid(f"bars-{i}-{j}")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=3))
    ax.set_ylim(0, max(max(bottom, default=0) * 1.15, 1))


def _draw_lines(ax: Axes, w: Window, series: dict[str, list[float | None]]) -> None:
    for i, (name, values) in enumerate(series.items()):
        ys = [math.nan if v is None else v for v in values]  # nan: a gap, not a zero
        (line,) = ax.plot(
            w.centres, ys, color=_colour(name, i), marker="o", markersize=3, label=_label(name)
        )
        line.set_gid(f"series-{i}")


def _draw_scale(ax: Axes, scale: Scale, series: dict[str, list[float | None]]) -> None:
    if scale == "score":
        ax.set_ylim(0, 1.05)
    elif scale == "percent":
        ax.set_ylim(0, 105)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
    elif scale == "ms":
        top = max((v for s in series.values() for v in s if v is not None), default=0.0)
        ax.set_ylim(0, top * 1.15 or 1.0)


def _placements(xs: Sequence[float], span: float) -> list[tuple[str, float]]:
    """Where each marker's label goes (side of its line, height): a label close to the one
    before goes on the other side of its line, and lower when that side is taken too."""
    placed: list[tuple[str, float]] = []
    for k, x in enumerate(xs):
        close = k > 0 and x - xs[k - 1] < span * 0.03
        if not close:
            placed.append(("right", 0.97))
        elif placed[-1] == ("right", 0.97):
            placed.append(("left", 0.97))
        else:
            placed.append(("right" if placed[-1][0] == "left" else "left", 0.5))
    return placed


def _draw_markers(ax: Axes, w: Window, markers: Sequence[Marker]) -> None:
    xs = [_num(m.at) for m in markers]
    span = _num(w.end) - _num(w.starts[0])
    for k, (m, x, (side, y)) in enumerate(zip(markers, xs, _placements(xs, span), strict=True)):
        colour, style = MARKER_STYLE[m.kind]
        ax.axvline(x, color=colour, linestyle=style, linewidth=1.2, gid=f"marker-{k}")
        ax.text(
            x,
            y,
            _label(m.label, 48),
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha=side,
            va="top",
            fontsize=7,
            color=colour,
            gid=f"marker-label-{k}",
            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1},
        )


def draw(ax: Axes, panel: Panel, w: Window, markers: Sequence[Marker]) -> None:
    """One panel on ``ax``: title, both axes labelled with units, gridlines, a legend when
    there are several series, and the markers."""
    (_draw_bars if panel.bars else _draw_lines)(ax, w, panel.series)
    _draw_scale(ax, panel.scale, panel.series)
    ax.set_title(panel.title, loc="left", fontsize=11, fontweight="bold")
    ax.set_ylabel(panel.ylabel)
    ax.set_xlabel(f"time (UTC), one point per {step_name(w.step)}")
    _time_axis(ax)
    ax.set_xlim(_num(w.starts[0]), _num(w.end))
    ax.grid(True, color="#d9d9d9", linewidth=0.8)
    ax.set_axisbelow(True)
    _draw_markers(ax, w, markers)
    if len(panel.series) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if panel.note:
        ax.text(0.5, 0.5, _label(panel.note, 80), transform=ax.transAxes, ha="center")


def _figure(height: float) -> Figure:
    fig = Figure(figsize=(9.5, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, without choosing a backend for the whole process
    return fig


def figure(
    outcomes: Sequence[Outcome],
    scores: dict[str, dict[str, float]],
    *,
    activations: Sequence[Activation] = (),
) -> Figure:
    """Every panel in one tall figure, for a PNG of the report."""
    w = window(outcomes)
    markers = _markers(w, activations)
    shown = panels(w, scores)
    fig = _figure(3.0 * len(shown))
    for ax, panel in zip(fig.subplots(len(shown), 1), shown, strict=True):
        draw(ax, panel, w, markers)
    return fig


def _markers(w: Window, activations: Sequence[Activation]) -> list[Marker]:
    return sorted([*mode_switches(w), *policy_markers(w, activations)], key=lambda m: m.at)


def svg(fig: Figure, prefix: str) -> str:
    """``fig`` as an SVG element to inline in HTML: no XML declaration or DOCTYPE (HTML takes
    neither), and ids (clip paths, glyph markers, gids) prefixed, unique in the page."""
    buffer = io.StringIO()
    # Text stays <text> (searchable, small, testable); a fixed salt: the same report twice is
    # the same page.
    with _RC_LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tether"}):
        fig.savefig(buffer, format="svg", metadata=SVG_METADATA)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\bid="', f'id="{prefix}-', text)
    return re.sub(r'(xlink:href="#|url\(#)', rf"\g<1>{prefix}-", text)


# -- the page ----------------------------------------------------------------------------------

STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}"
    "figure{margin:1.2rem 0}figure svg{max-width:100%;height:auto}"
    "table{border-collapse:collapse;margin:.5rem 0 1rem}"
    "td,th{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left}"
    "td.n{text-align:right}"
)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: int = 0) -> str:
    """Rows of text, escaped here; the last ``numeric`` columns right-aligned."""

    def cell(i: int, value: str) -> str:
        css = " class='n'" if i >= len(head) - numeric else ""
        return f"<td{css}>{escape(clean(value, 200))}</td>"

    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _by_intent(outcomes: Sequence[Outcome]) -> str:
    groups = Counter((o.domain, o.intent or "(none)") for o in outcomes)
    actions = [a.value for a in DecisionAction]
    per = Counter((o.domain, o.intent or "(none)", o.decision.action.value) for o in outcomes)
    rows = [
        [domain, intent, str(n), *(str(per[domain, intent, a]) for a in actions)]
        for (domain, intent), n in sorted(groups.items(), key=lambda g: (-g[1], g[0]))[:30]
    ]
    return _table(["domain", "intent", "requests", *actions], rows, numeric=1 + len(actions))


# The events table's names for the incident timeline's kinds the charts do not mark.
EVENT_NAMES = {
    "circuit": "circuit",
    "model_fingerprint": "model fingerprint",
    "budget_burn": "budget burning",
    "drift": "drift",
    "overlay": "conservative overlay",
}


def _events(markers: Sequence[Marker], events: Sequence[Event]) -> str:
    """The markers (mode switches as charted, policy activations) and the other events, by
    time: what the store recorded, and the model fingerprint changes."""
    kinds = {"mode": "mode switch", "policy": "policy activation"}
    rows = [(m.at, kinds[m.kind], m.label, m.detail) for m in markers]
    rows += [
        (e.at, EVENT_NAMES[e.kind], f"{e.domain}: {e.summary}" if e.domain else e.summary, e.source)
        for e in events
        if e.kind in EVENT_NAMES
    ]
    if not rows:
        return (
            "<p>No event in this window: no mode switch, policy activation, circuit move, "
            "budget burning, drift alarm or model fingerprint change.</p>"
        )
    rows.sort(key=lambda r: r[0])
    return _table(
        ["time (UTC)", "event", "what", "detail"],
        [[f"{at:%Y-%m-%d %H:%M:%S}", *rest] for at, *rest in rows],
    )


def render(
    outcomes: Sequence[Outcome],
    scores: dict[str, dict[str, float]],
    *,
    generated: datetime,
    activations: Sequence[Activation] = (),
    events: Sequence[Event] = (),
    title: str = "Tether report",
) -> str:
    """The page: a summary, the events and counts as tables, then one SVG chart per panel.
    ``events``: what the store recorded in the window (``Store.events_between``)."""
    head = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(clean(title))}</title><style>{STYLE}</style></head><body>"
    )
    if not outcomes:
        recorded = f"<h2>Events</h2>{_events([], events)}" if events else ""
        return (
            f"{head}<h1>{escape(clean(title))}</h1><p>No outcomes in this window.</p>"
            f"{recorded}</body></html>"
        )
    outcomes = sorted(outcomes, key=lambda o: (o.finished_at, o.request_id))
    w = window(outcomes)
    markers = _markers(w, activations)
    charts = []
    for i, panel in enumerate(panels(w, scores)):
        fig = _figure(3.2)
        draw(fig.subplots(), panel, w, markers)
        charts.append(f"<figure>{svg(fig, f'p{i}')}</figure>")
    total = Counter(o.decision.action.value for o in outcomes)
    summary = ", ".join(f"{n} {a}" for a, n in total.most_common())
    return (
        f"{head}<h1>{escape(clean(title))}: {len(outcomes)} outcomes</h1><p>{escape(summary)}; "
        f"from {outcomes[0].finished_at:%Y-%m-%d %H:%M} to "
        f"{outcomes[-1].finished_at:%Y-%m-%d %H:%M} UTC, one bucket per {step_name(w.step)}, "
        f"generated {generated:%Y-%m-%d %H:%M} UTC.</p>"
        f"<h2>Events</h2>{_events(markers, [*events, *incident.changes(outcomes)])}"
        f"<h2>By domain and intent</h2>{_by_intent(outcomes)}"
        f"<h2>Over time</h2>{''.join(charts)}</body></html>"
    )
