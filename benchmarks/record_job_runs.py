"""Record real runs of the four PySpark jobs (word count, PageRank, k-means, the MLlib forecast)
at several sizes and worker counts: the data the job knowledge is measured on
(``benchmarks/job_knowledge.py``) and the simulator's recorded signatures are fitted from
(``sparkscaler simulate --jobs recorded``).

For each worker count a static local cluster of 1-core workers is started; each job runs on it
alone, signed with its kind, its size declared, capped at every core of the cluster
(``spark.cores.max``), with no deadline. While it runs, the cluster's own observer
(``SparkObserver``, what ``sparkscaler run`` uses) is polled every ``--poll`` seconds and every
job context it reports is kept; once the driver exits, its event log gives the run's
``JobRecord``. Each run is appended to ``src/sparkscaler/data/job_runs.jsonl`` as soon as it
ends (rewritten beside and moved into place, so that an interrupted recording keeps every run
it finished); ``--replace`` starts the file afresh.

Run it on a quiet machine: the host's load average is recorded with each run, and a warning is
printed when something else keeps the cores busy.

    .venv/bin/python benchmarks/record_job_runs.py [--workers 1 2] [--scales 0.05 0.1 0.2]
        [--kinds wordcount pagerank kmeans forecast] [--partitions 8] [--replace]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _cluster import throwaway_cluster

from sparkscaler.clock import WallClock
from sparkscaler.core import JobContext
from sparkscaler.models.recorded_runs import RECORDED_RUNS, RecordedRun, append_recorded_runs
from sparkscaler.observe.eventlog import parse_event_log
from sparkscaler.observe.observer import SparkObserver
from sparkscaler.workloads.jobs import SIZED_JOBS, input_bytes
from sparkscaler.workloads.submit import JobSubmitter

#: Above this 1-minute load average (on top of the run's own), timings are not a quiet machine's.
BUSY_LOAD = 0.5
RUN_TIMEOUT_S = 900.0


def record_run(
    submitter: JobSubmitter,
    observer: SparkObserver,
    events_dir: Path,
    kind: str,
    scale: float,
    workers: int,
    partitions: int,
    poll_s: float,
) -> RecordedRun:
    """One run of ``kind`` on its own: submitted, observed every ``poll_s`` until its driver
    exits, and summarised from its event log."""
    name = f"rec-{kind}-s{scale:g}-w{workers}"
    before = set(events_dir.iterdir()) if events_dir.exists() else set()
    job = submitter.submit(
        name,
        [kind, "--scale", f"{scale:g}", "--partitions", str(partitions)],
        cores_max=workers,
        signature=kind,
        input_bytes=input_bytes(kind, scale),
    )
    timeline: list[JobContext] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not job.poll():
        if time.monotonic() > deadline:
            submitter.stop_all()
            raise SystemExit(f"{name} still running after {RUN_TIMEOUT_S:.0f} s; see {job.log}")
        timeline += [c for c in observer.observe().jobs if c.name == name]
        time.sleep(poll_s)
    if not job.succeeded:
        raise SystemExit(f"{name} failed (exit code {job.returncode}); see {job.log}")
    (log,) = set(events_dir.iterdir()) - before
    record = parse_event_log(log)
    if record is None:
        raise SystemExit(f"{name}: its event log {log} has no application end")
    return RecordedRun(
        kind, scale, workers, 1.0, workers, round(os.getloadavg()[0], 2), record, tuple(timeline)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--kinds", nargs="+", choices=sorted(SIZED_JOBS), default=list(SIZED_JOBS))
    parser.add_argument("--partitions", type=int, default=8, help="tasks per stage")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between observations")
    parser.add_argument("--out", type=Path, default=RECORDED_RUNS)
    parser.add_argument("--replace", action="store_true", help="start --out afresh")
    args = parser.parse_args()
    if args.replace:
        args.out.unlink(missing_ok=True)
    elif args.out.exists():
        print(f"appending to {args.out} (--replace starts it afresh)")
    load = os.getloadavg()[0]
    if load > BUSY_LOAD:
        print(f"warning: load average {load:.2f} before the first run: timings will be slower")
    total = len(args.workers) * len(args.scales) * len(args.kinds)
    done = 0
    for workers in args.workers:
        with throwaway_cluster(workers, max_workers=workers) as (cfg, _):
            observer = SparkObserver.from_config(cfg, WallClock())
            submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
            try:
                for scale in args.scales:
                    for kind in args.kinds:
                        run = record_run(
                            submitter, observer, cfg.state_dir / "events", kind, scale,
                            workers, args.partitions, args.poll,
                        )  # fmt: skip
                        append_recorded_runs(args.out, [run])
                        done += 1
                        print(
                            f"[{done}/{total}] {kind} scale {scale:g} on {workers} worker(s): "
                            f"{run.record.duration_s:.1f} s, {len(run.timeline)} observations, "
                            f"load {run.load_avg}",
                            flush=True,
                        )
            finally:
                submitter.stop_all()
                observer.close()
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
