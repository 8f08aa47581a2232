"""How long a newcomer waits for the command line: `sparkscaler --help`, `--version` and
`init`, against `python -c pass` (the interpreter's own start), median and max of N runs.

The goal (issue 11): each under 0.5 s on this 2-core machine. Each run is a fresh process, as
when a person types the command; the first run of each warms the OS file cache and is dropped.

    .venv/bin/python benchmarks/cli_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _cluster import save

GOAL_S = 0.5


def _timed(argv: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = str(Path(sys.executable).with_name("sparkscaler"))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "sparkscaler --help": [script, "--help"],
        "sparkscaler --version": [script, "--version"],
        "sparkscaler init": [script, "init", "x.yaml", "--force"],
    }
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in commands.items():
            _timed(argv, Path(tmp))  # warm-up
            times = [_timed(argv, Path(tmp)) for _ in range(args.runs)]
            rows[name] = {
                "median_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3),
                "runs": args.runs,
            }
            met = (
                ""
                if name.startswith("python")
                else (
                    "  (goal < 0.5 s: met)" if statistics.median(times) < GOAL_S else "  (NOT met)"
                )
            )
            print(
                f"{name:24s} median {statistics.median(times):.3f} s  max {max(times):.3f} s{met}"
            )
    path = save("cli_start", {"goal_s": GOAL_S, "commands": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
