"""Issue 24's reliability suite, run once, its figures written to benchmarks/results/reliability.json.

The suite (tests/reliability) counts as it checks: each test adds its figures (cases tried,
failures, server errors, acknowledged events lost, bad rows stored, good rows lost, anonymous
writes accepted) to a table that its conftest writes to $FUSIONREC_RELIABILITY_JSON at the end of
the session. This script runs pytest with that variable and a JUnit report, and adds the totals,
the run time, the date, the machine and the command. docs/reliability.md shows the figures.

Usage::

    PYTHONPATH=src python benchmarks/bench_reliability.py [--out benchmarks/results/reliability.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
COMMAND = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider"]

# The headline figures of issue 24's "done when", summed over the suite's parts.
HEADLINE = (
    "cases",
    "cells",
    "failures",
    "server_errors",
    "events_lost",
    "rows_lost",
    "half_written_rows",
    "bad_rows_stored",
    "known_gap_rows_stored",
    "good_rows_lost",
    "anonymous_writes_accepted",
    "traces_left",
    "versions_served",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "reliability.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures_path, junit = Path(tmp) / "figures.json", Path(tmp) / "junit.xml"
        env = {**os.environ, "FUSIONREC_RELIABILITY_JSON": str(figures_path)}
        started = time.perf_counter()
        run = subprocess.run([*COMMAND, f"--junitxml={junit}"], cwd=ROOT, env=env, check=False)
        seconds = time.perf_counter() - started
        parts = json.loads(figures_path.read_text()) if figures_path.exists() else {}
        suite = ET.parse(junit).getroot().iter("testsuite").__next__().attrib if junit.exists() else {}
    tests = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    totals = {name: sum(part.get(name, 0) for part in parts.values()) for name in HEADLINE}
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", *COMMAND[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "note": "2 cores shared with other work",
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "exit_code": run.returncode,
        "seconds": round(seconds, 1),
        "tests": tests,
        "totals": totals,
        "parts": parts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"exit_code": run.returncode, "seconds": report["seconds"], **totals}, indent=2))
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
