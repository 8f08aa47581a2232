"""``report.html``: self-contained, the paper's table right, text escaped, any suite optional."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

import pytest

from sparkscaler.evaluation.report import write_report

EVIL = "<b>evil</b>"


def _cell(policy: str, blocks: list[int], last: int | None, ratio: float) -> dict[str, Any]:
    return {
        "policy": policy,
        "T_min": 5,
        "N": 5,
        "rounds": 100,
        "failures": sum(blocks),
        "failure_pct": float(sum(blocks)),
        "failures_per_block": blocks,
        "last_failure_round": last,
        "worker_minutes": 1234.567 * ratio,
        "avoidable_failures": 0,
        "ratio_to_oracle": ratio,
    }


def _paper_grid() -> dict[str, Any]:
    cells = [_cell("oracle", [0, 0, 0, 0], None, 1.0), _cell(EVIL, [2, 0, 1, 0], 63, 1.25)]
    failed = [r in (3, 10, 63) for r in range(1, 101)]
    return {
        "settings": {"deadlines_min": [5], "max_workers": [5], "rounds": 100, "block": 25},
        "cells": cells,
        "policies": [
            {
                "policy": c["policy"],
                "failures": c["failures"],
                "failure_pct": c["failure_pct"],
                "avoidable_failures": 0,
                "cells_with_avoidable_failures": 0,
                "first_block_failures": c["failures_per_block"][0],
                "worker_minutes": c["worker_minutes"],
                "ratio_to_oracle": c["ratio_to_oracle"],
            }
            for c in cells
        ],
        "goals": {
            "best_policy": EVIL,
            "avoidable_failures": 0,
            "ratio_to_oracle": 1.25,
            "no_avoidable_failure": True,
            "within_1_05_of_oracle": False,
        },
        "rounds": {
            f"{p}@T5N5": {"failed": failed, "worker_s": [1.0] * 100, "run_s": [1.0] * 100}
            for p in ("oracle", EVIL)
        },
        "dqn_learning_curves": {
            "paper@N5": {"timesteps": [10 * i for i in range(1, 41)], "rewards": [1.0] * 40}
        },
    }


def _trace_case(goals: dict[str, Any] | None, with_timeline: bool) -> dict[str, Any]:
    timeline = {"time_s": [0.0, 3600.0, 7200.0], "workers": [1, 3, 2], "demand_workers": [0, 4, 1]}
    results = [
        {
            "case": "daily",
            "policy": policy,
            "jobs": 50,
            "misses": misses,
            "miss_pct": 2.0 * misses,
            "worker_hours": hours,
            "scale_actions": None if policy == "oracle" else 7,
            "p95_slowdown": None,
            "ratio_to_oracle": None,
            "timeline": timeline if with_timeline and policy != "oracle" else None,
        }
        for policy, misses, hours in (("oracle", 0, 10.0), ("hpa", 3, 14.5))
    ]
    return {
        "name": "daily",
        "settings": {"kind": "daily", "duration_s": 7200.0, "max_workers": 4, "path": None},
        "results": results,
        "goals": goals,
    }


def _report(suites: dict[str, Any]) -> dict[str, Any]:
    return {
        "sparkscaler": "0.1.0",
        "created": "2026-01-01T00:00:00+00:00",
        "command": "sparkscaler evaluate --quick",
        "seed": 0,
        "quick": True,
        "config": {"backend": "local"},
        "versions": {"python": "3.11"},
        "calibration": {"source": "runs.csv", "model": {"n_runs": 3}},
        "notes": ["a note"],
        "suites": suites,
        "timing": {"wall_s": 1.5, "processes": 2},
    }


def _render(report: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / "report.html"
    write_report(report, path)
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A report with every suite and plot, rendered once for the tests that read it."""
    goals = {"best_policy": "hpa", "misses_at_most_1pct": False}
    suites = {"paper-grid": _paper_grid(), "trace": {"cases": [_trace_case(goals, True)]}}
    return _render(_report(suites), tmp_path_factory.mktemp("full"))


def test_report_is_self_contained_with_embedded_pngs(full: str) -> None:
    for external in ("http://", "https://", "<script src", "<link"):
        assert external not in full
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', full)
    # cumulative failures, learning curves, misses vs cost, timelines
    assert len(images) == 4
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)


def test_paper_table_shows_failures_per_block_and_last_round(full: str) -> None:
    assert "<td>2/0/1/0 (last round 63)</td>" in full
    assert "<td>0/0/0/0</td>" in full


def test_goals_show_met_and_not_met(full: str) -> None:
    assert ">met</td>" in full
    assert ">not met</td>" in full


def test_text_is_escaped(full: str) -> None:
    assert EVIL not in full
    assert html.escape(EVIL) in full


def test_trace_only_report_without_goals_renders(tmp_path: Path) -> None:
    report = _report({"trace": {"cases": [_trace_case(None, False)]}})
    report["notes"] = []
    text = _render(report, tmp_path)
    assert "paper-grid" not in text
    assert "No goals" in text
    assert "<td>hpa</td><td>3 (6.00%)</td><td>14.50</td>" in text
    assert text.count("data:image/png;base64,") == 1  # misses vs cost; no timeline to plot
