"""The main job, `sparkscaler demo`, end to end on a real local cluster (no mocks)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import assert_all_stopped, free_port, spark_test_config, state_pids, wait_for

pytestmark = pytest.mark.spark


#: A small day for the tests: one tiny job (a word count) in a 10 s day. Its 1 s deadline cannot
#: be met, which must not make the demo fail.
QUICK_DEMO = ("--jobs", "1", "--day-seconds", "10", "--size", "0.05", "--deadline", "1")


def _quick_config(path: Path, state_dir: Path) -> Path:
    """The demo's settings made quicker for a test: at most two workers (fewer JVMs to start on
    a busy 2-core machine) and a cluster that shrinks back a few seconds after its job."""
    config = spark_test_config(state_dir, max_workers=2, decommission_timeout_s=30)
    settings = config.model_dump(mode="json", exclude_none=True)
    settings["policy"] = {"name": "hybrid", "params": {"reactive": {"idle_timeout_s": 3}}}
    settings["service"] = {"port": free_port()}
    path.write_text(yaml.safe_dump(settings))
    return path


def _drivers(state: Path) -> list[int]:
    """The pids of the demo's job drivers (spark-submit JVMs) running now."""
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "org.apache.spark.deploy.SparkSubmit" in " ".join(p.info["cmdline"] or [])
        and str(state) in " ".join(p.info["cmdline"] or [])
    ]


def test_demo_replays_the_day_twice_and_writes_its_report(tmp_path: Path) -> None:
    """The main job end to end on a small day, its output in a file as in a CI log: exit 0 with
    every job succeeded in both runs though the deadline was missed, the whole summary table
    (rich would cut it to 80 columns), no spinner or redraw, and nothing left running."""
    state, report, log = tmp_path / "state", tmp_path / "demo.html", tmp_path / "demo.log"
    config = _quick_config(tmp_path / "demo.yaml", state)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    pids: set[int] = set()
    cmd = [sys.executable, "-m", "sparkscaler", "demo", "--config", str(config), *QUICK_DEMO]
    began = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--report", str(report)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                pids.update(state_pids(state))  # every worker it ever launched
            pids.update(_drivers(state))
            time.sleep(1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    took = time.monotonic() - began
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "result: both runs finished and every job succeeded (exit code 0)" in text, text
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/", text)
    assert re.search(r"autoscaled +\d+ s  01-wordcount succeeded in \d+ s", text), text
    assert re.search(r"static 2 +\d+ s  01-wordcount succeeded in \d+ s", text), text
    header = next(line for line in text.splitlines() if "jobs succeeded" in line)
    for column in ("run", "finished", "deadlines met", "worker-s over", "peak workers"):
        assert column in header, header
    assert "scale out / in" in header and "p95 job (s)" in header and "run (s)" in header
    # Each run finished, its one job succeeded and missed its 1 s deadline.
    assert re.search(r"│ autoscaled │ +yes │ +1/1 │ +0/1 │", text), text
    assert re.search(r"│ static 2 +│ +yes │ +1/1 │ +0/1 │", text), text
    assert "deadlines met: autoscaled 0/1, static 2 0/1" in text
    tables = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(tables) == 6 and not any("…" in line for line in tables), text  # no cell cut
    assert "\r" not in text and "\x1b" not in text, text  # no spinner, redraw or colour
    assert all(line.strip() for line in text.splitlines()), text  # no blank or redrawn line
    page = report.read_text()
    assert "static 2" in page and "hybrid" in page and "Every run finished" in page
    assert page.count("01-wordcount") == 1  # the job, once in the jobs table
    assert len(pids) >= 4  # the master, two workers and the drivers of both runs
    assert_all_stopped(sorted(pids))
    print(f"demo end to end: {took:.0f} s")


def test_demo_interrupted_midway_leaves_no_process(tmp_path: Path) -> None:
    """Ctrl-C while the demo's first job runs (its own settings, in SPARKSCALER_HOME): drivers,
    workers and master all stop, and it says so with exit code 130."""
    home = tmp_path / "home"
    env = {**os.environ, "SPARKSCALER_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkscaler", "demo", *QUICK_DEMO],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    state = home / "demo"
    pids: list[int] = []
    drivers: list[int] = []
    try:
        wait_for(lambda: _drivers(state), 180, "the demo to submit its first job")
        time.sleep(3)
        pids, drivers = state_pids(state), _drivers(state)
        assert len(pids) >= 2
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, output.decode()[-2000:]
        assert b"Traceback" not in output
        assert b"exit code 130" in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert_all_stopped(pids + drivers)
