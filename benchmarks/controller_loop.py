"""One controller iteration's wall time and the controller's memory, on a real local cluster.

Runs the loop's ``step()`` back to back (no sleeping) against a 2-worker cluster, first idle,
then while a real PySpark job runs (so the application REST API is queried too), and reports
p50/p99 wall time per iteration and the resident memory of this process, which holds the whole
controller (observer, policy, guard, store).

    .venv/bin/python benchmarks/controller_loop.py [--steps 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psutil
from _cluster import save, throwaway_cluster

from sparkscaler.clock import WallClock
from sparkscaler.config import PolicySettings
from sparkscaler.store import Store
from sparkscaler.wiring import live_loop
from sparkscaler.workloads.submit import JobSubmitter


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    result: dict[str, dict[str, float]] = {}
    with throwaway_cluster(2, max_workers=2) as (cfg, cluster), Store(cfg.store_path) as store:
        clock = WallClock()
        dra = cfg.model_copy(update={"policy": PolicySettings(name="dra")})
        controller = live_loop(dra, store, clock, backend=cluster)
        submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
        try:
            for phase in ("idle", "job running"):
                if phase == "job running":
                    job = submitter.submit(
                        "load", ["backlog", "--tasks", "400", "--task-seconds", "1"]
                    )
                    while not controller.step().observation.running_tasks:
                        if job.poll():
                            raise SystemExit(f"the load job ended early: {job.log}")
                        time.sleep(0.5)
                times = [controller.step().wall_s * 1000 for _ in range(args.steps)]
                result[phase] = {
                    "steps": len(times),
                    "p50_ms": round(statistics.median(times), 2),
                    "p99_ms": round(percentile(times, 99), 2),
                    "max_ms": round(max(times), 2),
                }
                print(f"{phase:12s} {result[phase]}")
        finally:
            submitter.stop_all()
    rss_mb = psutil.Process().memory_info().rss / 2**20
    print(f"controller process RSS: {rss_mb:.0f} MB")
    path = save("controller_loop", {"iterations": result, "rss_mb": round(rss_mb, 1)})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
