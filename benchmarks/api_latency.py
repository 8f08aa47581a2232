"""Latency of ``GET /api/status`` under 50 concurrent clients, and the service's memory.

A dashboard, a Prometheus-style poller and a few scripts all read the status at once; the API
must answer them quickly while the control loop keeps running. This starts the service the way
users do (``sparkscaler serve --config FILE --port P`` as a subprocess, which starts its own
2-worker local Spark cluster, policy ``dra``, one decision every 2 s), waits until the loop runs
and a worker is ALIVE, then lets ``--clients`` asyncio clients (one ``httpx.AsyncClient`` each,
so one keep-alive connection each, as independent pollers would have) issue ``GET /api/status``
back to back on loopback for ``--seconds``. Each client's first request, which opens its
connection, is timed apart; the window starts once every client has its connection. It does so
idle, then (``--with-job``, the default) while a real PySpark job runs, so that the loop also
queries the application's REST API.

Reported per phase: requests, throughput, p50/p90/p99/max latency of the 200 answers, non-200
answers and errors (timeouts included), the loop iterations stored during the window (the loop
must not starve), and the resident memory of the ``serve`` process (sampled every 0.5 s: before
the load, peak, after), with the JVMs it started (master, workers, executors) apart, for context.

The load generator runs on the same machine and shares its cores with the server and the JVMs,
so the numbers are a pessimistic bound for a remote client; run it on a quiet machine.
At the end the service is stopped with SIGTERM and every process it started must be gone.

    .venv/bin/python benchmarks/api_latency.py [--seconds 30] [--clients 50] [--no-with-job]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from _cluster import _free_port, bench_config, save

from sparkscaler.config import Config
from sparkscaler.workloads.submit import JobSubmitter

SERVE = Path(sys.executable).with_name("sparkscaler")
STATUS = "/api/status"
INTERVAL_S = 2.0
SAMPLE_S = 0.5
READY_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 90.0


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def write_config(state_dir: Path, path: Path, port: int) -> Config:
    """A config file as a user would write it: free ports, 2-3 workers, dra, a 2 s loop, and a
    token (so that ``serve`` writes no token file; reads need none anyway)."""
    cfg = bench_config(
        state_dir,
        min_workers=2,
        max_workers=3,
        interval_s=INTERVAL_S,
        scale_out_cooldown_s=4,
        scale_in_cooldown_s=10,
        scale_in_stabilization_s=10,
        decommission_timeout_s=60,
    )
    data = {
        "state_dir": str(state_dir),
        "cluster": cfg.cluster.model_dump(mode="json"),
        "scaling": cfg.scaling.model_dump(mode="json"),
        "policy": {"name": "dra", "params": {}},
        "service": {"host": "127.0.0.1", "port": port, "token": secrets.token_urlsafe(24)},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Config.model_validate(data)


# ------------------------------------------------------------------------------ memory
@dataclass
class MemorySampler:
    """Samples the RSS of ``serve`` and of all its descendants (the JVMs) every 0.5 s in a
    thread of its own, so that sampling costs the event loop of the clients nothing. Every
    descendant ever seen is kept, to check at the end that none outlives the service."""

    serve: psutil.Process
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    serve_mb: list[float] = field(default_factory=list)
    jvm_mb: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> tuple[float, float]:
        serve_rss = self.serve.memory_info().rss
        jvm_rss = 0
        for child in self.serve.children(recursive=True):
            self.seen.setdefault(child.pid, child)
            with contextlib.suppress(psutil.Error):
                jvm_rss += child.memory_info().rss
        return serve_rss / 2**20, jvm_rss / 2**20

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            with contextlib.suppress(psutil.Error):
                serve_mb, jvm_mb = self.sample()
                self.serve_mb.append(serve_mb)
                self.jvm_mb.append(jvm_mb)

    def __enter__(self) -> MemorySampler:
        self.serve_mb.clear()
        self.jvm_mb.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# ------------------------------------------------------------------------------ load
@dataclass
class Load:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    connect_ms: list[float] = field(default_factory=list)
    connect_errors: Counter[str] = field(default_factory=Counter)
    window: dict[str, float] = field(default_factory=dict)


async def one_client(
    client: httpx.AsyncClient, seconds: float, load: Load, barrier: asyncio.Barrier
) -> None:
    """One poller: its own client (one keep-alive connection), requests back to back. Its first
    request opens the connection and is timed apart; the window starts once all are open."""
    start = time.perf_counter()
    try:
        await client.get(STATUS)
        load.connect_ms.append((time.perf_counter() - start) * 1000)
    except httpx.HTTPError as error:
        load.connect_errors[type(error).__name__] += 1
    await barrier.wait()
    load.window.setdefault("epoch_start", time.time())
    deadline = load.window.setdefault("end", time.perf_counter() + seconds)
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            response = await client.get(STATUS)
        except httpx.HTTPError as error:
            load.errors[type(error).__name__] += 1
            continue
        elapsed_ms = (time.perf_counter() - start) * 1000
        load.statuses[response.status_code] += 1
        if response.status_code == 200:
            load.latencies_ms.append(elapsed_ms)
    load.window["epoch_end"] = time.time()  # the last client to finish sets it last


async def run_load(url: str, clients: int, seconds: float, timeout_s: float) -> Load:
    """The clients are all made before the first request: making one costs milliseconds of
    this loop's time (httpx builds an SSL context), which would count in the others' latency."""
    load = Load()
    barrier = asyncio.Barrier(clients)
    async with contextlib.AsyncExitStack() as stack:
        pool = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=timeout_s))
            for _ in range(clients)
        ]
        await asyncio.gather(*(one_client(c, seconds, load, barrier) for c in pool))
    return load


# ------------------------------------------------------------------------------ service
def get_status(url: str) -> dict[str, Any] | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        response = httpx.get(url + STATUS, timeout=5)
        if response.status_code == 200:
            return dict(response.json())
    return None


def wait_for(
    url: str,
    serve: subprocess.Popen[bytes],
    log: Path,
    ready: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float,
) -> dict[str, Any]:
    """Poll the status until ``ready(status)``; fail with the service's log if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise SystemExit(f"sparkscaler serve exited ({serve.returncode}):\n{log.read_text()}")
        status = get_status(url)
        if status is not None and ready(status):
            return status
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}:\n{log.read_text()}")


def loop_ready(status: dict[str, Any]) -> bool:
    alive = [w for w in status["workers"] if w["state"] == "ALIVE"]
    return bool(status["loop_running"]) and len(alive) >= 1


def stop_service(serve: subprocess.Popen[bytes], started: dict[int, psutil.Process]) -> list[int]:
    """SIGTERM the service (its clean shutdown stops the cluster it started), wait, and return
    the pids it started that are still running; those are then killed, by pid only."""
    if serve.poll() is None:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
    time.sleep(1)  # let the last JVMs be reaped
    left = []
    for pid, proc in sorted(started.items()):
        # is_running() compares the creation time, so a reused pid is not taken for ours.
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
    for pid in left:
        with contextlib.suppress(psutil.Error):
            started[pid].kill()
    return left


def stored_iterations(url: str, since: float, until: float) -> int:
    """Observations the loop stored in [since, until]: did it keep its pace under load?"""
    response = httpx.get(url + "/api/observations", params={"since": since}, timeout=10)
    response.raise_for_status()
    return sum(1 for row in response.json() if row["time"] <= until)


def measure(
    url: str, sampler: MemorySampler, clients: int, seconds: float, timeout_s: float
) -> dict[str, Any]:
    before_serve, before_jvm = sampler.sample()
    me = psutil.Process()
    cpu_before = (sum(sampler.serve.cpu_times()[:2]), sum(me.cpu_times()[:2]))
    with sampler:
        load = asyncio.run(run_load(url, clients, seconds, timeout_s))
    serve_cpu = sum(sampler.serve.cpu_times()[:2]) - cpu_before[0]
    client_cpu = sum(me.cpu_times()[:2]) - cpu_before[1]
    started_at, ended_at = load.window["epoch_start"], load.window["epoch_end"]
    time.sleep(1)
    after_serve, after_jvm = sampler.sample()
    lat = load.latencies_ms
    ok = len(lat)
    return {
        "requests": sum(load.statuses.values()) + sum(load.errors.values()),
        "ok": ok,
        "window_s": round(ended_at - started_at, 2),
        "throughput_rps": round(ok / (ended_at - started_at), 1),
        "p50_ms": round(percentile(lat, 50), 2) if ok > 1 else None,
        "p90_ms": round(percentile(lat, 90), 2) if ok > 1 else None,
        "p99_ms": round(percentile(lat, 99), 2) if ok > 1 else None,
        "max_ms": round(max(lat), 2) if lat else None,
        "non_200": {str(s): c for s, c in load.statuses.items() if s != 200},
        "errors": dict(load.errors),
        "first_request_ms": {
            "p50": round(statistics.median(load.connect_ms), 1) if load.connect_ms else None,
            "max": round(max(load.connect_ms), 1) if load.connect_ms else None,
            "errors": dict(load.connect_errors),
        },
        # CPU seconds per second of window, both including the connection warm-up.
        "serve_cpu_cores": round(serve_cpu / (ended_at - started_at), 2),
        "load_generator_cpu_cores": round(client_cpu / (ended_at - started_at), 2),
        "loop_iterations": stored_iterations(url, started_at, ended_at),
        "loop_iterations_expected": int((ended_at - started_at) // INTERVAL_S),
        "serve_rss_mb": {
            "before": round(before_serve, 1),
            "peak": round(max([before_serve, *sampler.serve_mb]), 1),
            "after": round(after_serve, 1),
        },
        "jvm_rss_mb": {
            "before": round(before_jvm, 1),
            "peak": round(max([before_jvm, *sampler.jvm_mb]), 1),
            "after": round(after_jvm, 1),
        },
    }


def _ms(value: float | None, width: int) -> str:
    return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}s}"


def print_table(phases: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'phase':12s} {'ok':>6s} {'req/s':>6s} {'p50':>7s} {'p90':>7s} {'p99':>7s} "
        f"{'max':>8s} {'bad':>5s} {'loop':>5s}  {'serve RSS MB before/peak/after':30s} "
        f"{'JVMs MB':>7s}"
    )
    for name, r in phases.items():
        bad = sum(r["non_200"].values()) + sum(r["errors"].values())
        mem = r["serve_rss_mb"]
        memory = f"{mem['before']:.1f} / {mem['peak']:.1f} / {mem['after']:.1f}"
        print(
            f"{name:12s} {r['ok']:6d} {r['throughput_rps']:6.1f} {_ms(r['p50_ms'], 7)} "
            f"{_ms(r['p90_ms'], 7)} {_ms(r['p99_ms'], 7)} {_ms(r['max_ms'], 8)} {bad:5d} "
            f"{r['loop_iterations']:>2d}/{r['loop_iterations_expected']:<2d}  {memory:30s} "
            f"{r['jvm_rss_mb']['peak']:7.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="load per phase")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument(
        "--with-job",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure while a PySpark job runs",
    )
    parser.add_argument("--job-tasks", type=int, default=60, help="3 s tasks of that job")
    args = parser.parse_args()
    phases: dict[str, dict[str, Any]] = {}
    left: list[int] = []
    with tempfile.TemporaryDirectory(prefix="sparkscaler-bench-") as tmp:
        state_dir = Path(tmp) / "state"
        config_path, log = Path(tmp) / "sparkscaler.yaml", Path(tmp) / "serve.log"
        port = _free_port()
        cfg = write_config(state_dir, config_path, port)
        url = f"http://127.0.0.1:{port}"
        cmd = [str(SERVE), "serve", "--config", str(config_path), "--port", str(port)]
        with log.open("wb") as out:
            serve = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        serve_proc = psutil.Process(serve.pid)
        sampler = MemorySampler(serve_proc)
        submitter: JobSubmitter | None = None
        try:
            wait_for(url, serve, log, loop_ready, "the loop and a worker", READY_TIMEOUT_S)
            sampler.sample()  # records the JVMs started so far
            print(f"service up on {url} (pid {serve.pid}); {args.clients} clients")
            phases["idle"] = measure(url, sampler, args.clients, args.seconds, args.timeout)
            if args.with_job:
                submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
                job = submitter.submit(
                    "bench", ["backlog", "--tasks", str(args.job_tasks), "--task-seconds", "3"]
                )
                wait_for(
                    url,
                    serve,
                    log,
                    lambda s: bool(s["running_tasks"]) or job.poll(),
                    "the loop to see the job's tasks",
                    READY_TIMEOUT_S,
                )
                if job.poll():
                    raise SystemExit(f"the job ended early: {job.log.read_text()[-2000:]}")
                phases["job running"] = measure(
                    url, sampler, args.clients, args.seconds, args.timeout
                )
                phases["job running"]["job_ran_throughout"] = not job.poll()
            final = get_status(url) or {}
            loop_error = final.get("loop_error")
            sampler.sample()
        finally:
            if submitter is not None:
                submitter.stop_all()
            with contextlib.suppress(psutil.Error):
                sampler.sample()  # the last JVMs (executors) before the stop
            started = {serve.pid: serve_proc, **sampler.seen}
            left = stop_service(serve, started)
            service_log = log.read_text(errors="replace")
    print_table(phases)
    for name, r in phases.items():
        first = r["first_request_ms"]
        print(
            f"{name}: first request (opens the connection) p50 {first['p50']} ms, max "
            f"{first['max']} ms, errors {first['errors']}; window {r['window_s']} s; CPU cores: "
            f"serve {r['serve_cpu_cores']}, load generator {r['load_generator_cpu_cores']}"
        )
        if r["non_200"] or r["errors"]:
            print(f"{name}: non-200 {r['non_200']}, errors {r['errors']}")
    print(f"loop_error at the end: {loop_error}; service exit code {serve.returncode}")
    problem_lines = [
        line
        for line in service_log.splitlines()
        if any(word in line for word in ("ERROR", "Traceback", "error", "Exception"))
    ]
    for line in problem_lines[:10]:
        print(f"  serve log: {line}")
    if left:
        print(f"processes left behind (killed): {left}")
    path = save(
        "api_latency",
        {
            "endpoint": f"GET {STATUS}",
            "clients": args.clients,
            "seconds_per_phase": args.seconds,
            "client": "one httpx.AsyncClient (one keep-alive connection) per client, one "
            "asyncio loop, on the same machine as the service",
            "cluster": "2 local workers (min 2, max 3), 1 core / 1g each, policy dra, "
            f"interval {INTERVAL_S:g} s",
            "phases": phases,
            "loop_error": loop_error,
            "serve_exit_code": serve.returncode,
            "started_pids": len(started),
            "left_behind": left,
            "serve_log_problems": problem_lines[:20],
        },
    )
    print(f"written to {path}")
    if left:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
