"""The demo's day replayed in the simulator, and the gap to the real demo.

``make demo`` runs, on real PySpark jobs on this machine, a warm-up of the four recurring jobs
(each once, side by side, on the static cluster of N), sets each kind's deadline from its
warm-up run time, then replays a compressed day of them twice: autoscaled by the demo's policy
(``hybrid``, fitted on the warm-up's runs) and on a static cluster of N. This does the same in
the simulator, with the demo's options (:class:`sparkscaler.demo.DemoOptions`) and settings
(:func:`sparkscaler.demo.demo_config`, this machine's provisioning delays), and jobs drawn from
each kind's profile fitted from the recorded real runs (``--runs``, by default the package's
recordings; :func:`sparkscaler.evaluation.simulation.signature_jobs`):

1. **warm-up**: each kind once at the demo's size on N workers; the simulated runs are the
   history the autoscaled run's policy starts from (a store seeded with their records), and
   their run times set the deadlines as the demo sets them (``deadlines_from``), unless the real
   demo's deadlines are known (``--demo``: ``benchmarks/results/demo.json``), which are then used
   so that the two days are judged by the same deadlines;
2. **the day** (``daily_plan``, the demo's seed), autoscaled through the real controller, guard
   and policy, learning from the day's finished jobs as the live loop does from event logs,
   until every job is done and the cluster is back at its minimum; then on a static N;
3. each run's deadlines met and worker-seconds, counted as the demo counts them (ALIVE,
   provisioning and decommissioning workers each observation, over the same window, the longer
   run's, the last size held), against the real demo's.

A job's run time in the demo is from its ``spark-submit`` to the driver's exit; its recorded
runs start at the application's start, some seconds later (the driver's JVM). So each simulated
job's application starts that long (``--submit-s``; by default the real demo's warm-up run times
less their applications', else 0) after it is due, and its run time is counted from when it was
due, against the deadline its application declares.

The simulated workers are hosts of their own, as the simulator's are, and, in a second variant,
workers and drivers share one host of ``--host-cores`` (2, this machine's) cores
(``SimCluster(host_cores=)``): the demo's cluster is four worker JVMs and up to four drivers on
two cores.

    .venv/bin/python benchmarks/sim_replay_day.py [--runs RUNS] [--demo demo.json|demo.log]

Writes ``benchmarks/results/sim_replay_day.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _cluster import RESULTS, save

from sparkscaler.backends.simulated import SimJobHistory, SimObserver, run_alone
from sparkscaler.config import Config
from sparkscaler.controller import Step
from sparkscaler.core import JobRecord
from sparkscaler.demo import DAY_SCALE_RANGE, DemoOptions, demo_config
from sparkscaler.evaluation.simulation import load_recorded, signature_jobs
from sparkscaler.sim.workload import JobSpec, SignatureJobs
from sparkscaler.store import Store
from sparkscaler.wiring import make_sim, simulated_context, simulated_loop
from sparkscaler.workloads.replay import PlannedJob, daily_plan, deadlines_from, warmup_plan

DEMO_JSON = RESULTS / "demo.json"
#: Seconds from a demo job's application start to its REST API's first answer: the mean of the
#: four day jobs of a ``make demo`` run on this machine (1.6, 9.8, 18.5 and 12.8 s, the age of
#: each job's first context in its store's observations; until then "no REST API found").
API_DELAY_S = 10.7
#: As the demo: a run whose jobs are not done this long after its last was due is stopped.
DRAIN_LIMIT_S = 600.0
#: As the demo: after its last job the autoscaled run waits this long to be back at its minimum.
SETTLE_LIMIT_S = 120.0


def sim_config(seed: int) -> Config:
    """The demo's settings, with this machine's provisioning delays in the simulator."""
    cfg = demo_config()
    simulation = cfg.simulation.model_copy(update={"provisioning": "local", "seed": seed})
    return cfg.model_copy(
        update={"simulation": simulation, "state_dir": Path(tempfile.mkdtemp(prefix="h5-day-"))}
    )


def specs(
    plan: Sequence[PlannedJob], source: SignatureJobs, rng: np.random.Generator, submit_s: float
) -> list[JobSpec]:
    """The plan's jobs from their kinds' profiles: its size, core cap and deadline; each arrives
    (its application starts) ``submit_s`` after it is due (submitted), as a driver's JVM takes
    that long to start the application, which declares the deadline T the planner sees."""
    jobs = []
    for i, planned in enumerate(plan):
        profile = source.profile(planned.signature or planned.kind)
        size = (planned.input_bytes or 0) / 1e9
        spec = profile.make(size, rng, source.executor_startup_s)
        spec = dataclasses.replace(spec, name=planned.name, max_cores=planned.cores)
        jobs.append(spec.with_arrival(i, planned.offset_s + submit_s, planned.deadline_s))
    return jobs


def run_day(
    config: Config,
    jobs: list[JobSpec],
    *,
    policy: tuple[str, Mapping[str, Any]] | None,
    workers: int,
    history: Sequence[JobRecord] = (),
    settle: bool = False,
    seed: int = 0,
    submit_s: float = 0.0,
    host_cores: int | None = None,
    api_delay_s: float = 0.0,
) -> dict[str, Any]:
    """One run of ``jobs`` from ``workers`` workers: the config's policy (or ``policy``), its
    store holding ``history``; learning from its finished jobs. Ends when every job is done
    (and, with ``settle``, the cluster is back at its minimum, at most SETTLE_LIMIT_S later).
    A job's run time is from its submission, ``submit_s`` before its application started, as
    the demo measures it."""
    cfg = config.model_copy(
        update={"simulation": config.simulation.model_copy(update={"initial_workers": workers})}
    )
    sim = make_sim(cfg, jobs, seed)
    sim.host_cores = host_cores
    finished = SimJobHistory(sim)
    times: list[float] = []
    sizes: list[int] = []
    low = cfg.scaling.min_workers
    last_due = max(j.arrival for j in jobs)
    with Store(Path(":memory:"), worker_detail=False) as store:
        store.add_jobs(history)
        built = None
        if policy is not None:
            built = simulated_context(cfg).build(policy[0], policy[1], store.jobs())
        observer = SimObserver(sim, cfg.deadline_s, api_delay_s)
        controller = simulated_loop(
            cfg, sim, store, policy=built, history=finished, observer=observer
        )
        done_at: float | None = None
        while True:
            step: Step = controller.step()
            obs = step.observation
            times.append(sim.now)
            sizes.append(obs.workers + obs.cluster.decommissioning_workers)
            all_done = len(sim.results) == len(jobs)
            if all_done and done_at is None:
                done_at = sim.now
            back = obs.workers == low and obs.cluster.decommissioning_workers == 0
            if all_done and (not settle or back or sim.now - done_at > SETTLE_LIMIT_S):
                break
            if sim.now > last_due + DRAIN_LIMIT_S:
                break
            controller.clock.sleep(cfg.scaling.interval_s)
        stored = store.jobs()
        policy_name = controller.policy.name
        version = getattr(controller.policy, "model_version", controller.policy.version)
    results = {r.id: r for r in sim.results}
    rows = []
    for job in jobs:
        r = results.get(job.id)
        took = r.duration_s + submit_s if r is not None else None
        rows.append(
            {
                "name": job.name,
                "signature": job.key,
                "size_gb": job.size_gb,
                "deadline_s": job.deadline_s,
                "duration_s": None if took is None else round(took, 1),
                "met": took is not None and job.deadline_s is not None and took <= job.deadline_s,
            }
        )
    return {
        "policy": policy_name,
        "model_version": version,
        "deadlines_met": sum(r["met"] for r in rows),
        "jobs": len(rows),
        "finished": all(r["duration_s"] is not None for r in rows),
        "run_s": round(times[-1], 1),
        "peak_workers": max(sizes),
        "times": times,
        "sizes": sizes,
        "per_job": rows,
        "records": stored,
    }


def worker_seconds(times: Sequence[float], sizes: Sequence[int], window_s: float) -> float:
    """As the demo counts them: each observation's size until the next, over the first
    ``window_s`` seconds, the last size held to its end."""
    edges = [*times, max(window_s, times[-1])]
    return sum(
        w * (min(t1, window_s) - min(t0, window_s))
        for w, t0, t1 in zip(sizes, edges, edges[1:], strict=False)
    )


def real_demo(path: Path) -> dict[str, Any] | None:
    """The real demo's numbers: ``benchmarks/demo_time.py``'s JSON, or a demo's output (its
    summary and jobs tables and warm-up lines, read as that script reads them); None if absent."""
    if not path.is_file():
        return None
    if path.suffix != ".json":
        from demo_time import parse_summary

        return parse_summary(path.read_text(errors="replace"))
    data = json.loads(path.read_text())
    return data.get("demo", data)


_WARM_UP = re.compile(r"^warm-up-\S+: ([\d.]+) s,.*learned: application ([\d.]+) s")


def submit_overhead(demo: Mapping[str, Any] | None) -> float:
    """The real demo's mean time from a warm-up job's submission to its application's start:
    the warm-up's run time (from submission) less its application's (from its event log)."""
    gaps = []
    for line in (demo or {}).get("warm_up", []):
        found = _WARM_UP.match(line)
        if found:
            gaps.append(float(found.group(1)) - float(found.group(2)))
    return statistics.mean(gaps) if gaps else 0.0


def _seconds(text: Any) -> float | None:
    try:
        return float(str(text).rstrip("s").split()[0])
    except (ValueError, IndexError):
        return None


def real_deadlines(demo: Mapping[str, Any]) -> dict[str, float]:
    """Each kind's deadline in the real demo's jobs table."""
    out: dict[str, float] = {}
    for row in demo.get("jobs", []):
        kind = row.get("signature") or row.get("kind") or row.get("job", "").split("-", 1)[-1]
        deadline = _seconds(row.get("deadline (s)"))
        if kind and deadline is not None:
            out[kind] = deadline
    return out


def one_day(
    source: SignatureJobs,
    opts: DemoOptions,
    seed: int,
    submit_s: float,
    deadlines: Mapping[str, float] | None,
    host_cores: int | None = None,
    api_delay_s: float = 0.0,
) -> dict[str, Any]:
    """The warm-up, the autoscaled day and the static day, simulated from ``seed``, the workers
    on hosts of their own or (``host_cores``) sharing one host of that many cores."""
    cfg = sim_config(seed)
    n = cfg.scaling.max_workers
    rng = np.random.default_rng([seed, 5])
    warm = specs(
        warmup_plan(size=opts.size, kinds=opts.kinds, cores_per_job=opts.cores_per_job),
        source,
        rng,
        submit_s,
    )
    warm_run = run_day(
        cfg,
        warm,
        policy=("static", {"workers": n}),
        workers=n,
        seed=seed,
        submit_s=submit_s,
        host_cores=host_cores,
        api_delay_s=api_delay_s,
    )
    took = {job["signature"]: job["duration_s"] for job in warm_run["per_job"] if job["duration_s"]}
    own = deadlines_from(took, opts.deadline_factor)
    used = dict(deadlines) if deadlines else own
    plan = daily_plan(
        opts.jobs,
        opts.day_s,
        deadline_s=used,
        seed=opts.seed,
        size=opts.size,
        scale_range=DAY_SCALE_RANGE,
        cores_per_job=opts.cores_per_job,
        kinds=opts.kinds,
    )
    day = specs(plan, source, rng, submit_s)
    # Their own application ids: the day's jobs are numbered from 0 again.
    history = [dataclasses.replace(r, app_id=f"warm-up-{r.app_id}") for r in warm_run["records"]]
    auto = run_day(
        cfg,
        day,
        policy=None,
        workers=cfg.scaling.min_workers,
        history=history,
        settle=True,
        seed=seed,
        submit_s=submit_s,
        host_cores=host_cores,
        api_delay_s=api_delay_s,
    )
    static = run_day(
        cfg,
        day,
        policy=("static", {"workers": n}),
        workers=n,
        seed=seed,
        submit_s=submit_s,
        host_cores=host_cores,
        api_delay_s=api_delay_s,
    )
    window = max(auto["times"][-1], static["times"][-1])
    out: dict[str, Any] = {
        "seed": seed,
        "warm_up_s": took,
        "deadlines_from_simulated_warm_up": own,
        "deadlines_used": used,
        "window_s": round(window, 1),
    }
    for label, run in (("autoscaled", auto), ("static", static)):
        run["worker_seconds"] = round(worker_seconds(run["times"], run["sizes"], window), 1)
        out[label] = {k: v for k, v in run.items() if k not in ("times", "sizes", "records")}
    base = out["static"]["worker_seconds"]
    out["worker_seconds_ratio"] = round(out["autoscaled"]["worker_seconds"] / base, 3)
    return out


def profile_errors(source: SignatureJobs) -> dict[str, Any]:
    """How well each kind's profile reproduces its own recorded runs: each run's size on its
    executors, alone, against the run's application time (absolute % error per kind)."""
    startup = source.executor_startup_s
    errors: dict[str, list[float]] = {}
    for record in source.history:
        profile = source.profile(record.key)
        spec = profile.make(record.input_bytes / 1e9, None, startup)
        simulated = run_alone(spec, max(1, record.executors), executor_startup_s=(startup,) * 2)
        errors.setdefault(record.key, []).append(
            abs(simulated.duration_s - record.duration_s) / record.duration_s
        )
    return {
        key: {"runs": len(e), "mape_pct": round(100 * statistics.mean(e), 1)}
        for key, e in sorted(errors.items())
    }


def summarise(days: Sequence[Mapping[str, Any]], demo: Mapping[str, Any] | None) -> dict[str, Any]:
    """Deadlines met and worker-seconds over the simulated days, and their gap to the demo's."""
    summary: dict[str, Any] = {}
    for label in ("autoscaled", "static"):
        summary[label] = {
            "deadlines_met_mean": statistics.mean(d[label]["deadlines_met"] for d in days),
            "deadlines_met": [d[label]["deadlines_met"] for d in days],
            "jobs": days[0][label]["jobs"],
            "worker_seconds_median": statistics.median(d[label]["worker_seconds"] for d in days),
            "worker_seconds": [d[label]["worker_seconds"] for d in days],
        }
    summary["worker_seconds_ratio_median"] = statistics.median(
        d["worker_seconds_ratio"] for d in days
    )
    if demo is not None:
        gap: dict[str, Any] = {}
        for label, real in demo.get("runs", {}).items():
            mine = summary["autoscaled" if label.startswith("autoscaled") else "static"]
            gap[label] = {
                "deadlines_met_sim_minus_real": mine["deadlines_met_mean"]
                - real.get("deadlines_met", 0),
                "worker_seconds_sim_over_real": round(
                    mine["worker_seconds_median"] / real["worker_seconds"], 3
                )
                if real.get("worker_seconds")
                else None,
            }
        real_ratio = demo.get("runs", {}).get("autoscaled", {}).get("worker_seconds_ratio")
        gap["worker_seconds_ratio_sim_minus_real"] = (
            None
            if real_ratio is None
            else round(summary["worker_seconds_ratio_median"] - real_ratio, 3)
        )
        summary["gap_to_real_demo"] = gap
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, help="recorded runs (default: the package's)")
    parser.add_argument("--demo", type=Path, default=DEMO_JSON, help="the real demo's numbers")
    parser.add_argument("--seeds", type=int, default=5, help="simulated days (seeds 0..)")
    parser.add_argument(
        "--submit-s", type=float, help="driver start before the app (default: the demo's)"
    )
    parser.add_argument("--host-cores", type=int, default=2, help="this machine's cores")
    parser.add_argument(
        "--api-delay-s",
        type=float,
        default=API_DELAY_S,
        help="application start to its REST API's first answer",
    )
    args = parser.parse_args()
    source = signature_jobs(load_recorded(args.runs))
    demo = real_demo(args.demo)
    deadlines = real_deadlines(demo) if demo else None
    submit_s = args.submit_s if args.submit_s is not None else submit_overhead(demo)
    opts = DemoOptions()
    variants: dict[str, Any] = {}
    delay = args.api_delay_s
    for name, host, api in (
        ("simulator as is", None, 0.0),
        (f"REST API after {delay:g} s", None, delay),
        (f"REST API after {delay:g} s, one {args.host_cores}-core host", args.host_cores, delay),
    ):
        days = [
            one_day(source, opts, seed, submit_s, deadlines, host, api)
            for seed in range(args.seeds)
        ]
        variants[name] = {"summary": summarise(days, demo), "days": days}
    result = {
        "options": dataclasses.asdict(opts),
        "runs": str(args.runs or "package recordings"),
        "demo": str(args.demo),
        "api_delay_s": args.api_delay_s,
        "signatures": {
            p.signature: {
                "runs": p.runs,
                "serial": p.serial,
                "work": p.work,
                "stages": len(p.stages),
            }
            for p in source.profiles
        },
        "profile_fit": profile_errors(source),
        "submit_s": round(submit_s, 2),
        "real_demo": None if demo is None else {"runs": demo.get("runs"), "jobs": demo.get("jobs")},
        "variants": variants,
    }
    print(json.dumps({k: v["summary"] for k, v in variants.items()}, indent=2))
    print(f"written to {save('sim_replay_day', result)}")


if __name__ == "__main__":
    main()
