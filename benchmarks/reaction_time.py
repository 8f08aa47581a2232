"""Scale-out reaction time on a real local cluster: backlog → new worker ALIVE → its executor.

Each run starts a fresh cluster with one 1-core worker and the ``dra`` policy (1 s interval,
Spark's 1 s backlog timeout, no cooldown), then submits a job of 8 four-second tasks, so that a
backlog exists from the moment its stage is submitted. Timestamps come from Spark itself where
it has them:

- backlog: the stage's submission time (event log, ``SparkListenerStageSubmitted``);
- decided: the controller's first scale-out decision;
- alive: ``launch()`` returned, i.e. the master lists the new worker as ALIVE;
- executor: the driver registered an executor on the new worker (``SparkListenerExecutorAdded``).

    .venv/bin/python benchmarks/reaction_time.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from _cluster import save, throwaway_cluster

from sparkscaler.clock import WallClock
from sparkscaler.config import PolicySettings
from sparkscaler.observe.eventlog import read_events
from sparkscaler.store import Store
from sparkscaler.wiring import live_loop
from sparkscaler.workloads.submit import JobSubmitter


def one_run() -> dict[str, float]:
    with throwaway_cluster(1, interval_s=1, scale_out_cooldown_s=0, max_workers=2) as (
        cfg,
        cluster,
    ):
        launched: list[tuple[float, list[str]]] = []
        launch = cluster.launch

        def timed_launch(count: int) -> list[str]:
            ids = launch(count)
            launched.append((time.time(), ids))
            return ids

        cluster.launch = timed_launch  # type: ignore[method-assign]
        clock, stop = WallClock(), threading.Event()
        submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
        with Store(cfg.store_path) as store:
            dra = PolicySettings(name="dra", params={"idle_timeout_s": 600})
            controller = live_loop(
                cfg.model_copy(update={"policy": dra}), store, clock, backend=cluster
            )
            thread = threading.Thread(target=controller.run, kwargs={"stop": stop}, daemon=True)
            thread.start()
            try:
                job = submitter.submit(
                    "reaction", ["backlog", "--tasks", "8", "--task-seconds", "4"]
                )
                while not job.poll():
                    time.sleep(0.5)
            finally:
                stop.set()
                clock.interrupt()
                thread.join(timeout=60)
                submitter.stop_all()
            decided = min(d["time"] for d in store.decisions(10_000) if d["action"] == "scale_out")
        if job.returncode != 0 or not launched:
            raise SystemExit(f"run failed (job rc {job.returncode}); see {job.log}")
        alive_at, new_ids = launched[0]
        new_host = next(w.host for w in cluster.workers() if w.id == new_ids[0])
        (log_dir,) = (cfg.state_dir / "events").iterdir()
        events = list(read_events(log_dir))
    submitted = (
        min(
            e["Stage Info"]["Submission Time"]
            for e in events
            if e["Event"] == "SparkListenerStageSubmitted"
        )
        / 1000
    )
    executor = (
        min(
            e["Timestamp"]
            for e in events
            if e["Event"] == "SparkListenerExecutorAdded" and e["Executor Info"]["Host"] == new_host
        )
        / 1000
    )
    return {
        "backlog_to_decision_s": round(decided - submitted, 2),
        "backlog_to_alive_s": round(alive_at - submitted, 2),
        "backlog_to_executor_s": round(executor - submitted, 2),
        "alive_to_executor_s": round(executor - alive_at, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        runs.append(one_run())
        print(f"run {i + 1}/{args.runs}: {runs[-1]}", flush=True)
    summary = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
    print("p50:", summary)
    print(f"written to {save('reaction_time', {'runs': runs, 'p50': summary})}")


if __name__ == "__main__":
    main()
