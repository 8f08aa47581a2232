"""`run` and `serve` log every decision with a timestamp, at a chosen level, as text or JSON."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sparkscaler.controller import Step
from sparkscaler.core import ClusterState, Decision, GuardedDecision, Observation, WorkerInfo
from sparkscaler.logs import log_step, logging_to
from tests.conftest import free_port


def _step(error: str | None = None) -> Step:
    worker = WorkerInfo("w1", "127.0.0.2", 7078, "ALIVE", 1, 1, 1024, 1024)
    observation = Observation(
        time=1_700_000_000.0,
        cluster=ClusterState(workers=(worker,)),
        running_tasks=3,
        pending_tasks=9,
    )
    decision = Decision(target=3, policy="dra", reason="backlog of 9 tasks")
    outcome = GuardedDecision(
        decision=decision, current=1, target=3, action="scale_out", reason="backlog of 9 tasks"
    )
    return Step(observation=observation, outcome=outcome, acted=True, error=error, wall_s=0.01)


def test_text_lines_carry_a_timestamp_level_and_the_decision() -> None:
    out = io.StringIO()
    with logging_to("info", "text", out):
        log_step(_step())
    line = out.getvalue().strip()
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO +sparkscaler\.loop: scale_out", line)
    assert "workers 1->3" in line and "backlog of 9 tasks" in line


def test_json_lines_carry_the_decision_as_fields() -> None:
    out = io.StringIO()
    with logging_to("info", "json", out):
        log_step(_step(error="launch failed"))
    record = json.loads(out.getvalue())
    assert record["level"] == "INFO" and record["logger"] == "sparkscaler.loop"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", record["time"])
    assert (record["action"], record["workers"], record["target"]) == ("scale_out", 1, 3)
    assert record["policy"] == "dra" and record["error"] == "launch failed"


def test_the_level_filters_and_logging_is_restored_afterwards() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with logging_to("warning", "text", out):
        log_step(_step())
        logging.getLogger("sparkscaler.test").warning("careful")
    assert out.getvalue().count("\n") == 1 and "careful" in out.getvalue()
    assert (root.handlers, root.level) == (handlers, level)


RUN_ONCE = (sys.executable, "-m", "sparkscaler", "run", "--once", "--dry-run")


@pytest.mark.skipif(shutil.which("java") is None, reason="`run` checks for java first")
def test_run_logs_its_decision_as_json_on_stderr(tmp_path: Path) -> None:
    """`run --once --dry-run --log-format json` against a master that is not there: the stale
    hold it records is one JSON line on stderr."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        f"cluster:\n  master_ui_port: {free_port()}\n  app_ui_ports: [{free_port()}]\n"
        "metrics:\n  request_timeout_s: 1\npolicy:\n  name: dra\n"
    )
    result = subprocess.run(
        [*RUN_ONCE, "--log-format", "json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SPARKSCALER_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    steps = [r for r in records if r["logger"] == "sparkscaler.loop"]
    assert len(steps) == 1
    assert steps[0]["action"] == "hold" and "stale" in steps[0]["reason"]
