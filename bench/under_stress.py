"""The test suite, run several times in a row while busy loops hold the CPU beside it: tests
that depend on an idle machine fail here. A busy loop is a process spinning in pure Python
(what `stress-ng --cpu N` does, for a machine without it).

    python -m bench.under_stress [--runs 3] [--hogs 2] [-- PYTEST ARGS]

Writes bench/results/under_stress.json: each run's exit code, duration and pytest summary.
Stops at the first failing run: its last lines are kept in the results, and its whole output
beside them (bench/results/under_stress-run-N.log, not tracked by git), for the errors'
tracebacks. A run removes the logs an earlier one left.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "under_stress.json"


def spin() -> None:  # pragma: no cover - runs in a child until killed
    x = 0
    while True:
        x = (x * 31 + 7) % 1_000_003


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="busy loops")
    parser.add_argument("pytest_args", nargs="*", default=["-q"])
    args = parser.parse_args()

    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    runs = []
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for stale in RESULTS.parent.glob("under_stress-run-*.log"):  # an earlier failure's
        stale.unlink()
    try:
        for n in range(1, args.runs + 1):
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "pytest", *args.pytest_args],
                capture_output=True,
                text=True,
            )
            lines = done.stdout.strip().splitlines()
            run = {
                "run": n,
                "exit_code": done.returncode,
                "seconds": round(time.monotonic() - started, 1),
                "summary": lines[-1] if lines else "",
            }
            if done.returncode != 0:
                run["output_tail"] = "\n".join(lines[-60:])
                log = RESULTS.with_name(f"under_stress-run-{n}.log")
                log.write_text(done.stdout + done.stderr)
                run["output"] = str(log.relative_to(ROOT))
            runs.append(run)
            print(json.dumps(run), flush=True)
            if done.returncode != 0:
                break
    finally:
        for hog in hogs:
            hog.kill()
    result = {
        "hogs": args.hogs,
        "cpus": os.cpu_count(),
        "pytest_args": args.pytest_args,
        "runs": runs,
        "all_passed": len(runs) == args.runs and all(r["exit_code"] == 0 for r in runs),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
