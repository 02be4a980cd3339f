"""`tether ingest`: index a pack's knowledge now, and on a Temporal Schedule."""

from __future__ import annotations

import asyncio

import typer
from rich.markup import escape
from rich.progress import Progress

from tether.cli.apps import app
from tether.cli.output import JSON, dump, emit, fail, out, parse_interval, run
from tether.contracts import IngestReport
from tether.errors import InvalidRequest


@app.command()
def ingest(
    locations: list[str] = typer.Argument(
        None, help="directories or http(s) URLs (default: the pack's own knowledge)"
    ),
    domain: str | None = typer.Option(None, help="whose knowledge (default: the only pack)"),
    source: str | None = typer.Option(
        None,
        help="source name (default: the pack's own for its own knowledge, else the folder's "
        "name or the URL's host and path, with a hash of where it is)",
    ),
    max_age_days: int = typer.Option(30, help="freshness rule for documents without their own"),
    every: str | None = typer.Option(
        None, help="also refresh on a Temporal Schedule, e.g. 30m, 6h, 1d"
    ),
    as_json: bool = JSON,
) -> None:
    """Index knowledge sources now (in the worker that owns the index), and optionally on a
    schedule. Re-indexing embeds only what changed; a URL answering 304 costs nothing."""
    from tether.client import Tether

    if source and locations and len(locations) > 1:
        # A source owns its chunks: two locations under one name would delete each other's.
        fail("--source names one location; omit it to name each by its own")
    interval = parse_interval(every) if every else None

    async def main() -> None:
        tether = await Tether.connect()
        try:
            pack = tether.pack(domain)
            wanted: list[tuple[str, str | None]] = [
                (str(k.location), k.source) for k in pack.knowledge
            ]
            if locations:  # unnamed: named by tether.source, unique to each location
                wanted = [(loc, source) for loc in locations]
            sources = [
                tether.source(loc, domain=pack.name, source=name, max_age_days=max_age_days)
                for loc, name in wanted
            ]
        except InvalidRequest as error:
            fail(error)
        reports: list[IngestReport] = []
        for inp in sources:
            handle = await tether.start_ingest(
                inp.path or inp.url or "",
                domain=inp.domain,
                source=inp.source,
                max_age_days=max_age_days,
            )
            with Progress(console=out, transient=True, disable=as_json) as progress:
                task = progress.add_task(f"indexing {escape(inp.path or inp.url or '')}")
                waiting = asyncio.ensure_future(handle.result())
                while not waiting.done():
                    seen = await tether.ingest_progress(handle)
                    if seen is not None:
                        progress.update(task, completed=seen[0], total=seen[1])
                    await asyncio.wait([waiting], timeout=0.5)
            report = waiting.result()
            reports.append(report)
            if not as_json:
                out.print(
                    f"{report.domain}/{report.source}: {report.documents} documents, "
                    f"{report.chunks} chunks, {report.embedded} embedded, {report.removed} removed"
                    + (" (not modified)" if report.not_modified else "")
                )
                for skipped in report.skipped:  # read next time; what was indexed stays
                    out.print(f"  skipped {escape(skipped)}")
        schedule = await tether.schedule_refresh(sources, interval) if interval else None
        if as_json:
            emit({"reports": dump(list(reports)), "schedule": schedule})
        elif schedule:
            out.print(f"refreshing every {interval} (schedule {schedule})")

    run(main())
