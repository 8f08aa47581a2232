"""The README's evaluation tables, in Markdown, from a ``sparkscaler evaluate`` results.json.

Copying numbers from a report by hand is how tables go stale or wrong; this prints them from
the run itself:

- paper-grid at N = 5: failures per block of 25 rounds and the last failing round, per T;
- paper-grid over all cells: failures, avoidable failures, first-block failures,
  worker-minutes and the ratio to the oracle;
- the trace suite: per case, misses (%) and worker-hours (x the oracle).

    .venv/bin/python benchmarks/evaluation_tables.py docs/evaluation/results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _blocks(cell: dict[str, Any]) -> str:
    text = "/".join(str(b) for b in cell["failures_per_block"])
    last = cell.get("last_failure_round")
    return text if last is None else f"{text} (last {last})"


def paper_grid_n(grid: dict[str, Any], n: int) -> list[str]:
    cells = [c for c in grid["cells"] if c["N"] == n]
    ts = sorted({c["T_min"] for c in cells})
    policies = list(dict.fromkeys(c["policy"] for c in cells))
    lines = [
        "| policy | "
        + " | ".join(f"T = {t}" if i == 0 else str(t) for i, t in enumerate(ts))
        + " min |",
        "|---|" + "---|" * len(ts),
    ]
    for policy in policies:
        by_t = {c["T_min"]: c for c in cells if c["policy"] == policy}
        lines.append(f"| {policy} | " + " | ".join(_blocks(by_t[t]) for t in ts) + " |")
    return lines


def paper_grid_totals(grid: dict[str, Any]) -> list[str]:
    lines = [
        "| policy | failures | avoidable | in the 1st block | worker-minutes | × oracle |",
        "|---|---|---|---|---|---|",
    ]
    for p in grid["policies"]:
        ratio = p.get("ratio_to_oracle")
        lines.append(
            f"| {p['policy']} | {p['failures']} ({p['failure_pct']:.1f} %) | "
            f"{p['avoidable_failures']} | {p['first_block_failures']} | "
            f"{p['worker_minutes']:,.0f} | {'-' if ratio is None else f'{ratio:.3f}'} |"
        )
    return lines


def trace_table(trace: dict[str, Any]) -> list[str]:
    cases = [c for c in trace["cases"] if c["results"]]
    names = [c["name"] for c in cases]
    lines = [
        "| policy | " + " | ".join(f"{n}: misses, worker-h (× oracle)" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    oracle = {
        c["name"]: next((r["worker_hours"] for r in c["results"] if r["policy"] == "oracle"), None)
        for c in cases
    }
    policies = list(dict.fromkeys(r["policy"] for c in cases for r in c["results"]))
    for policy in policies:
        cells = []
        for c in cases:
            row = next((r for r in c["results"] if r["policy"] == policy), None)
            if row is None:
                cells.append("-")
                continue
            o = oracle[c["name"]]
            ratio = f" ({row['worker_hours'] / o:.2f})" if o else ""
            cells.append(f"{row['miss_pct']:.2f} %, {row['worker_hours']:,.0f}{ratio}")
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results.json of sparkscaler evaluate")
    parser.add_argument("-n", type=int, default=5, help="N of the paper's per-T table")
    args = parser.parse_args()
    report = json.loads(args.results.read_text())
    suites = report["suites"]
    if "paper-grid" in suites:
        print(f"paper-grid, N = {args.n}\n")
        print("\n".join(paper_grid_n(suites["paper-grid"], args.n)))
        print("\nAll cells:\n")
        print("\n".join(paper_grid_totals(suites["paper-grid"])))
    if "trace" in suites:
        print("\ntrace\n")
        print("\n".join(trace_table(suites["trace"])))


if __name__ == "__main__":
    main()
