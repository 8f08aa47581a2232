"""Record real runs of the project's PySpark job on the local cluster, for calibration.

For each worker count (static cluster, 1-core workers) and each size, runs the ``backlog`` job
(``6 x size`` tasks of 2 s) and reads its event log: the run time (application start to end),
its tasks, their mean duration, the delay before the first task (driver and executor
start-up) and the time from the last task to the end (shutdown). Writes
``src/sparkscaler/data/local_runs.csv``, which ``sparkscaler calibrate`` reads
(``size,workers,seconds``) and ``validate_simulator.py`` replays.

    .venv/bin/python benchmarks/record_local_runs.py [--workers 1 2 3] [--sizes 1 2 3]
        [--reps 2]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from _cluster import RESULTS, throwaway_cluster

from sparkscaler.models.runtime_model import LOCAL_RUNS
from sparkscaler.observe.eventlog import read_events
from sparkscaler.workloads.submit import JobSubmitter

TASKS_PER_SIZE = 6
TASK_SECONDS = 2.0


def run_once(submitter: JobSubmitter, size: int, name: str, events_dir: Path) -> dict[str, float]:
    before = set(events_dir.iterdir()) if events_dir.exists() else set()
    job = submitter.submit(
        name,
        ["backlog", "--tasks", str(TASKS_PER_SIZE * size), "--task-seconds", str(TASK_SECONDS)],
    )
    if not submitter.wait(600) or job.returncode != 0:
        raise SystemExit(f"{name} failed; see {job.log}")
    (log_dir,) = set(events_dir.iterdir()) - before
    events = list(read_events(log_dir))
    start = next(e["Timestamp"] for e in events if e["Event"] == "SparkListenerApplicationStart")
    end = next(e["Timestamp"] for e in events if e["Event"] == "SparkListenerApplicationEnd")
    tasks = [e["Task Info"] for e in events if e["Event"] == "SparkListenerTaskEnd"]
    first = min(t["Launch Time"] for t in tasks)
    last = max(t["Finish Time"] for t in tasks)
    return {
        "seconds": (end - start) / 1000,
        "tasks": len(tasks),
        "task_seconds_mean": statistics.mean(
            (t["Finish Time"] - t["Launch Time"]) / 1000 for t in tasks
        ),
        "first_task_delay_s": (first - start) / 1000,
        "tail_s": (end - last) / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for workers in args.workers:
        with throwaway_cluster(workers, max_workers=workers) as (cfg, _cluster):
            submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
            try:
                for size in args.sizes:
                    for rep in range(args.reps):
                        name = f"rec-w{workers}-s{size}-r{rep}"
                        row = {
                            "size": size,
                            "workers": workers,
                            **run_once(submitter, size, name, cfg.state_dir / "events"),
                        }
                        rows.append(row)
                        print(
                            {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()},
                            flush=True,
                        )
            finally:
                submitter.stop_all()
    RESULTS.mkdir(exist_ok=True)
    path = LOCAL_RUNS
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
