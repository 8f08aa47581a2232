"""Wall time of the test lanes: the fast lane, the Spark lane, and both side by side.

`make test` runs the two lanes side by side after install and lint; this times them through
make, as a newcomer runs them (install is done first and not timed):

- ``fast``: ``make test-fast`` (no real Spark, no browser; goal: under 3 minutes);
- ``spark``: ``make test-spark`` (real local clusters, local-mode apps, the browser test);
- ``together``: ``make test-lanes``, which is what ``make test`` runs after install and lint:
  the few wall-clock timing tests alone, then both lanes side by side (goal: under 10 minutes).

Each run's pass/fail/skip counts are read from pytest's summary line. A run that collects no
test (pytest's exit code 5) counts as a failure. Other load on the machine distorts every
number: the load average before and after each run is recorded next to it.

    .venv/bin/python benchmarks/test_lanes.py [--runs fast,spark,together]

Writes ``benchmarks/results/test_lanes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GOALS_S = {"fast": 180.0, "together": 600.0}
LANES = {
    "fast": [["make", "--no-print-directory", "test-fast"]],
    "spark": [["make", "--no-print-directory", "test-spark"]],
    "together": [["make", "--no-print-directory", "test-lanes"]],
}
SUMMARY = re.compile(r"^=+ (.*\bin [\d.]+s.*) =+$", re.MULTILINE)
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def machine() -> dict[str, Any]:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def counts(output: str) -> dict[str, int]:
    """Pass/fail/skip counts summed over pytest's summary lines ("== 3 passed, 1 skipped in")."""
    result: dict[str, int] = {}
    for line in SUMMARY.findall(output):
        for number, kind in COUNT.findall(line):
            kind = "errors" if kind.startswith("error") else kind
            result[kind] = result.get(kind, 0) + int(number)
    return result


def run(name: str, logs: Path) -> dict[str, Any]:
    """Start the run's commands together, wait for all, and report wall time and counts (of
    every pytest summary in the output: ``together`` has three)."""
    load_before = os.getloadavg()
    began = time.monotonic()
    procs = []
    for index, command in enumerate(LANES[name]):
        log = logs / f"{name}-{index}.log"
        with log.open("wb") as out:
            procs.append(
                (command, log, subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out))
            )
    lanes = []
    for command, log, proc in procs:
        returncode = proc.wait()
        output = log.read_text(errors="replace")
        lanes.append(
            {
                "command": " ".join(command),
                "returncode": returncode,
                "wall_s": round(time.monotonic() - began, 1),
                "counts": counts(output),
                "log": str(log),
            }
        )
    wall = time.monotonic() - began
    ok = all(lane["returncode"] == 0 and lane["counts"].get("passed", 0) > 0 for lane in lanes)
    return {
        "wall_s": round(wall, 1),
        "goal_s": GOALS_S.get(name),
        "ok": ok,
        "lanes": lanes,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        default="fast,spark,together",
        help="comma-separated, from: " + ", ".join(LANES),
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in LANES]
    if unknown:
        parser.error(f"unknown run(s): {', '.join(unknown)}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="test_lanes-"))  # every run's full output
    # Install (and java/browser checks) first, untimed, so that no run pays for it.
    subprocess.run(["make", "--no-print-directory", "install", "browser"], cwd=ROOT, check=True)

    results: dict[str, Any] = {}
    for name in names:
        print(f"{name}: {' & '.join(' '.join(c) for c in LANES[name])} …", flush=True)
        results[name] = result = run(name, logs)
        for lane in result["lanes"]:
            tally = ", ".join(f"{v} {k}" for k, v in lane["counts"].items()) or "no summary"
            print(
                f"  {lane['command']}: exit {lane['returncode']}, {lane['wall_s']:.0f} s, {tally}"
            )
        goal = result["goal_s"]
        verdict = (
            ""
            if goal is None
            else f" (goal {goal:.0f} s: {'met' if result['wall_s'] < goal else 'missed'})"
        )
        print(
            f"  wall {result['wall_s']:.0f} s{verdict}, load {result['load_average_before']}"
            f" → {result['load_average_after']}",
            flush=True,
        )

    path = RESULTS / "test_lanes.json"
    path.write_text(json.dumps({"machine": machine(), "runs": results}, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
