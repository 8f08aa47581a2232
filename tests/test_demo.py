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

from tests.conftest import assert_all_stopped, state_pids, wait_for

pytestmark = pytest.mark.spark


#: A small day for the tests: one tiny job (the seeds' MLlib forecast) in a 10 s day.
QUICK_DEMO = ("--jobs", "1", "--day-seconds", "10", "--size", "0.05", "--deadline", "120")


def test_demo_replays_the_day_twice_and_writes_its_report(tmp_path: Path) -> None:
    """The main job end to end on a small day: the autoscaled run, the static run, the summary
    and the report, and nothing left running afterwards."""
    home, report, log = tmp_path / "home", tmp_path / "demo.html", tmp_path / "demo.log"
    env = {**os.environ, "SPARKSCALER_HOME": str(home), "COLUMNS": "160"}
    pids: set[int] = set()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sparkscaler", "demo", *QUICK_DEMO, "--report", str(report)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 420
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                pids.update(state_pids(home / "demo"))  # every worker it ever launched
            time.sleep(1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/", text)
    assert "autoscaled" in text and "static 4" in text
    assert re.search(r"autoscaled\s.*1/1\s", text), text[-3000:]  # the job succeeded
    assert re.search(r"static 4\s.*1/1\s", text), text[-3000:]
    page = report.read_text()
    assert "static 4" in page and "hybrid" in page
    assert page.count("01-forecast") == 1  # the job, once in the jobs table
    assert len(pids) >= 5  # the master and four workers of the static run
    assert_all_stopped(sorted(pids))


def test_demo_interrupted_midway_leaves_no_process(tmp_path: Path) -> None:
    """Ctrl-C while the demo's jobs run: drivers, workers and master all stop."""
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
    try:
        wait_for(
            lambda: (state / "logs").is_dir() and any((state / "logs").glob("job-*.log")),
            180,
            "the demo to submit its first job",
        )
        time.sleep(3)
        pids = state_pids(state)
        drivers = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if "org.apache.spark.deploy.SparkSubmit" in " ".join(p.info["cmdline"] or [])
            and str(state) in " ".join(p.info["cmdline"] or [])
        ]
        assert len(pids) >= 2
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, output.decode()[-2000:]
        assert b"Traceback" not in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert_all_stopped(pids + drivers)
