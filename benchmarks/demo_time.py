"""Wall time and outcome of ``sparkscaler demo`` with its defaults, run as a newcomer runs it.

``make demo`` is the main job, so how long it takes on this 2-core machine, and whether it
works, is a number the README gives. This runs ``sparkscaler demo`` (the venv's command, after
install) in a fresh ``SPARKSCALER_HOME`` (a temporary directory), its output piped to a file as
in a CI log (no terminal, no ``COLUMNS``), and measures the wall time and the exit code. From the
tables the demo ends with it takes, per run: finished, jobs succeeded, deadlines met,
worker-seconds (over the window both runs are charged) and their ratio, peak workers, scale
actions, p95 job time and the run's duration; per job: signature, scale, deadline, and per run
the planner's predicted and the actual run time; the warm-up's lines (run time, deadline set,
what was learned); and the result lines under the tables, the goal's verdict among them.

The demo shares 2 cores with whatever else runs, and its time follows that load, so the load
average is sampled every 5 s during the run, and the busiest other processes every minute, for
the record. Everything, the demo's whole output included, goes to
``benchmarks/results/demo.json``; the demo's HTML report is copied to ``docs/demo/`` (unless
``--no-report``).

    .venv/bin/python benchmarks/demo_time.py [--timeout 1800] [--no-report] [-- demo options]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from _cluster import save

SPARKSCALER = Path(sys.executable).with_name("sparkscaler")
REPORT_COPY = Path(__file__).resolve().parents[1] / "docs" / "demo" / "demo-report.html"
LOAD_SAMPLE_S = 5.0
OTHERS_SAMPLE_S = 60.0


def busiest_processes(own: int, top: int = 4) -> list[dict[str, Any]]:
    """The ``top`` processes by CPU over one second, the demo's own tree and this script left
    out."""
    ours = {own, os.getpid()}
    with contextlib.suppress(psutil.Error):
        ours |= {p.pid for p in psutil.Process(own).children(recursive=True)}
    procs = [p for p in psutil.process_iter(["cmdline"]) if p.pid not in ours]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            continue
    time.sleep(1.0)
    busy = []
    for p in procs:
        try:
            busy.append((p.cpu_percent(None), " ".join(p.info["cmdline"] or [])[:120]))
        except psutil.Error:
            continue
    busy.sort(reverse=True)
    busy = [(cpu, cmd) for cpu, cmd in busy if cpu > 0 and cmd]  # kernel threads have none
    return [{"cpu_percent": cpu, "cmdline": cmd} for cpu, cmd in busy[:top]]


def _number(text: str) -> float | int:
    value = float(text.replace(",", ""))
    return int(value) if value.is_integer() else value


def _table(lines: list[str], marker: str) -> tuple[list[str], list[list[str]]]:
    """The columns and rows of the box-drawn table whose header row contains ``marker``."""
    at = next((i for i, line in enumerate(lines) if line.startswith("┃") and marker in line), None)
    if at is None:
        return [], []
    columns = [c.strip() for c in lines[at].strip("┃").split("┃")]
    rows = []
    for line in lines[at + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([c.strip() for c in line.strip("│").split("│")])
    return columns, rows


def parse_summary(output: str) -> dict[str, Any]:
    """The summary table (one dict per run, by its label), the jobs table (one dict per job),
    the warm-up's lines and the result lines under the tables."""
    lines = output.splitlines()
    verdict = [
        line
        for line in lines
        if line.startswith(("result:", "deadlines met:", "the autoscaled run used", "goal ("))
    ]
    warmup = [line.strip() for line in lines if line.startswith("  warm-up-")]
    columns, rows = _table(lines, "jobs succeeded")
    runs: dict[str, dict[str, Any]] = {}
    for row in rows:
        cells = dict(zip(columns, row, strict=True))
        window = next(c for c in columns if c.startswith("worker-s over"))
        succeeded, jobs = cells["jobs succeeded"].split("/")
        met, _ = cells["deadlines met"].split("/")
        outs, ins = cells["scale out / in"].split("/")
        runs[cells["run"]] = {
            "finished": cells["finished"] == "yes",
            "jobs": int(jobs),
            "jobs_succeeded": int(succeeded),
            "deadlines_met": int(met),
            "worker_seconds": _number(cells[window]),
            "worker_seconds_ratio": None
            if cells["worker-s ratio"] == "-"
            else _number(cells["worker-s ratio"]),
            "charged_window_s": _number(re.findall(r"[\d.]+", window)[0]),
            "peak_workers": int(cells["peak workers"]),
            "scale_outs": int(outs),
            "scale_ins": int(ins),
            "p95_job_s": _number(cells["p95 job (s)"]),
            "run_s": _number(cells["run (s)"]),
        }
    columns, rows = _table(lines, "deadline (s)")
    jobs_rows = [dict(zip(columns, row, strict=True)) for row in rows]
    return {"runs": runs, "jobs": jobs_rows, "warm_up": warmup, "result": verdict}


def report_path(output: str) -> Path | None:
    """Where the demo says it wrote its report."""
    found = re.search(r"^report: (.+)$", output, re.MULTILINE)
    return Path(found.group(1)) if found else None


def run_demo(extra: list[str], timeout_s: float, keep_report: Path | None) -> dict[str, Any]:
    """One ``sparkscaler demo`` in a fresh home; SIGINT (its own clean stop) on timeout. Its
    report is copied to ``keep_report`` when given."""
    with tempfile.TemporaryDirectory(prefix="sparkscaler-demo-time-") as tmp:
        home, log = Path(tmp) / "home", Path(tmp) / "demo.log"
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["SPARKSCALER_HOME"] = str(home)
        cmd = [str(SPARKSCALER), "demo", *extra]
        loads: list[float] = []
        others: list[dict[str, Any]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(LOAD_SAMPLE_S):
                loads.append(os.getloadavg()[0])

        def sample_others() -> None:
            while True:
                at = round(time.monotonic() - began)
                others.append({"at_s": at, "top": busiest_processes(proc.pid)})
                if stop.wait(OTHERS_SAMPLE_S):
                    return

        load_before = os.getloadavg()
        began = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        for target in (sample, sample_others):
            threading.Thread(target=target, daemon=True).start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # the demo stops everything it started
                proc.wait()
            stop.set()
        wall_s = time.monotonic() - began
        output = log.read_text(errors="replace")
        written = report_path(output)
        if keep_report is not None and written is not None and written.exists():
            keep_report.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(written, keep_report)
    return {
        "command": " ".join(["sparkscaler", "demo", *extra]) + "  (SPARKSCALER_HOME: a new dir)",
        "wall_s": round(wall_s, 1),
        "wall": f"{int(wall_s // 60)} min {wall_s % 60:.0f} s",
        "exit_code": proc.returncode,
        "timed_out": timed_out,
        **parse_summary(output),
        "load_average": {
            "before_1min": round(load_before[0], 2),
            "during_mean_1min": round(statistics.fmean(loads), 2) if loads else None,
            "during_max_1min": round(max(loads), 2) if loads else None,
            "after_1min": round(os.getloadavg()[0], 2),
        },
        "busiest_other_processes": others,
        "output": output.splitlines(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before Ctrl-C")
    parser.add_argument(
        "--no-report", action="store_true", help=f"do not copy the report to {REPORT_COPY}"
    )
    parser.add_argument("extra", nargs="*", help="more `sparkscaler demo` options, after --")
    args = parser.parse_args()
    result = run_demo(args.extra, args.timeout, None if args.no_report else REPORT_COPY)
    path = save("demo", result)
    print(*result["warm_up"], sep="\n")
    for run, figures in result["runs"].items():
        print(f"{run}: {figures}")
    for job in result["jobs"]:
        print(job)
    print(*result["result"], sep="\n")
    print(f"wall {result['wall']}, exit code {result['exit_code']}; load {result['load_average']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
