"""The evaluation's ``report.html``: the results of ``sparkscaler evaluate`` for a person to read.

``results.json`` holds every number, but nobody reads hundreds of kilobytes of JSON. The report
shows the goals, the OLA 2019 paper's table (failures per block of rounds and the round of the last
failure), and plots of the runs. It is one self-contained file — inline CSS, figures embedded as
base64 PNGs, no scripts, fonts or links to fetch — so it opens offline and can be attached to an
issue or mailed as is. Any part of the results may be missing (a suite not run, no goals because
a policy did not run, no DQN trained); the report then says so and goes on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from sparkscaler.htmlpage import Cell, esc, figure_png, page, table

#: Policies whose cumulative failures show the DQN's "sacrifice period" against the baselines;
#: the best policy of the goals is added to them.
ROUND_POLICIES = ("oracle", "static", "dqn-paper-online", "regression")
#: Learning curves with more episodes than this are smoothed with a moving average.
SMOOTH_EPISODES = 30
#: The timelines' y axis ends at this multiple of the most workers; a queue that grows without
#: bound (a policy that never scales out) would otherwise flatten every other plot.
DEMAND_HEADROOM = 1.5
DASH = "—"
MET_STYLE = "color:#1a7f37;font-weight:600"
NOT_MET_STYLE = "color:#b42318;font-weight:600"


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write ``report`` (the dict of ``results.json``) as one self-contained HTML page."""
    suites = report.get("suites") or {}
    parts = [_summary(report), _goals(suites)]
    if suites.get("paper-grid"):
        parts.append(_paper_grid(suites["paper-grid"]))
    for suite in ("trace", "replay"):
        if suites.get(suite):
            parts.append(_continuous(suite, suites[suite].get("cases") or []))
    parts.append(_footer(report))
    path.write_text(page("sparkscaler evaluation", "\n".join(parts)), encoding="utf-8")


# --- formatting ------------------------------------------------------------------------------


def _num(value: float | None, digits: int) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


def _settings_line(settings: dict[str, Any], skip: Iterable[str] = ()) -> str:
    """``key = value`` pairs of a settings dict, on one line."""
    pairs = []
    for key, value in settings.items():
        if key in skip or value is None:
            continue
        if isinstance(value, float):
            text = f"{value:g}"
        elif isinstance(value, list):
            text = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        else:
            text = str(value)
        pairs.append(f"{key} = {text}")
    return f"<p class='settings'>{esc('; '.join(pairs))}</p>"


def _goal_value(key: str, value: Any) -> str | Cell:
    if isinstance(value, bool):
        return Cell("met", MET_STYLE) if value else Cell("not met", NOT_MET_STYLE)
    if isinstance(value, float):
        digits = 2 if "pct" in key or "hours" in key else 3
        return _num(value, digits)
    return DASH if value is None else str(value)


# --- sections --------------------------------------------------------------------------------


def _summary(report: dict[str, Any]) -> str:
    kind = "quick" if report.get("quick") else "full"
    timing = report.get("timing") or {}
    wall = timing.get("wall_s")
    suites = ", ".join(report.get("suites") or {}) or "none"
    text = (
        f"A {kind} run of sparkscaler evaluate (sparkscaler {report.get('sparkscaler', '?')}, "
        f"seed {report.get('seed', '?')}), created {report.get('created', '?')} by the command "
    )
    took = f", took {wall:.1f} s of wall time" if wall is not None else ""
    if wall is not None and timing.get("processes"):
        took += f" on {timing['processes']} processes"
    parts = [
        "<h1>sparkscaler evaluation</h1>",
        f"<p>{esc(text)}<code>{esc(report.get('command', '?'))}</code>{esc(took)}. "
        f"Suites: {esc(suites)}.</p>",
    ]
    calibration = report.get("calibration") or {}
    model = calibration.get("model") or {}
    if calibration:
        runs = f" ({model['n_runs']} runs)" if model.get("n_runs") is not None else ""
        source = calibration.get("source") or model.get("source") or "?"
        parts.append(f"<p>Runtime model calibrated from <code>{esc(source)}</code>{esc(runs)}.</p>")
    notes = report.get("notes") or []
    if notes:
        items = "".join(f"<li>{esc(note)}</li>" for note in notes)
        parts.append(f"<h3>Notes</h3>\n<ul>{items}</ul>")
    return "\n".join(parts)


def _goals_table(goals: dict[str, Any] | None) -> str:
    if not goals:
        return "<p>No goals: a policy they compare did not run.</p>"
    return table(["goal", "value"], [[k, _goal_value(k, v)] for k, v in goals.items()])


def _goals(suites: dict[str, Any]) -> str:
    parts = ["<h2>Goals</h2>"]
    if suites.get("paper-grid"):
        parts += ["<h3>paper-grid</h3>", _goals_table(suites["paper-grid"].get("goals"))]
    for suite in ("trace", "replay"):
        for case in (suites.get(suite) or {}).get("cases") or []:
            parts += [
                f"<h3>{esc(suite)}: {esc(case['name'])}</h3>",
                _goals_table(case.get("goals")),
            ]
    if len(parts) == 1:
        parts.append("<p>No suite ran.</p>")
    return "\n".join(parts)


def _paper_grid(grid: dict[str, Any]) -> str:
    settings = grid.get("settings") or {}
    cells = grid.get("cells") or []
    parts = ["<h2>paper-grid</h2>", _settings_line(settings, skip=("policies",))]
    parts += ["<h3>Totals per policy</h3>", _policy_totals(grid.get("policies") or [])]
    if cells:
        block = settings.get("block", "?")
        parts += [
            "<h3>The paper's table</h3>",
            f"<p>Failed rounds per block of {esc(block)} rounds, and the round of the last "
            "failure, per policy (rows) and deadline T (columns), for each cluster size N — as "
            "in the table of the OLA 2019 paper.</p>",
            _per_n_tables(cells, _blocks_cell),
            "<h3>Worker-minutes relative to the oracle</h3>",
            "<p>White is the oracle's cost; the redder, the costlier (darkest from 1.5). Blue "
            "cells are cheaper than the oracle, which a policy only manages by missing "
            "deadlines.</p>",
            _per_n_tables(cells, _ratio_cell),
            "<h3>Failures over the rounds</h3>",
            _cumulative_failures(
                cells, grid.get("rounds") or {}, grid.get("goals"), settings.get("block")
            ),
        ]
    parts += ["<h3>DQN learning curves</h3>", _learning_curves(grid.get("dqn_learning_curves"))]
    return "\n".join(parts)


def _policy_totals(rows: list[dict[str, Any]]) -> str:
    headers = [
        "policy",
        "failures",
        "failure %",
        "avoidable failures",
        "cells with avoidable failures",
        "first-block failures",
        "worker-minutes",
        "× oracle",
    ]
    return table(
        headers,
        [
            [
                r["policy"],
                str(r["failures"]),
                _num(r["failure_pct"], 2),
                str(r.get("avoidable_failures", DASH)),
                str(r.get("cells_with_avoidable_failures", DASH)),
                str(r.get("first_block_failures", DASH)),
                _num(r["worker_minutes"], 0),
                _num(r.get("ratio_to_oracle"), 3),
            ]
            for r in rows
        ],
    )


def _blocks_cell(row: dict[str, Any]) -> str:
    text = "/".join(str(f) for f in row["failures_per_block"])
    if row["failures"] and row.get("last_failure_round") is not None:
        text += f" (last round {row['last_failure_round']})"
    return text


def _ratio_cell(row: dict[str, Any]) -> str | Cell:
    ratio = row.get("ratio_to_oracle")
    if ratio is None:
        return DASH
    if ratio < 1.0:
        return Cell(f"{ratio:.3f}", "background:#dbe9fb")
    fade = round(255 - 130 * min(1.0, 2.0 * (ratio - 1.0)))
    return Cell(f"{ratio:.3f}", f"background:rgb(255,{fade},{fade})")


def _per_n_tables(rows: list[dict[str, Any]], cell: Callable[[dict[str, Any]], str | Cell]) -> str:
    """One table per N, a row per policy and a column per T, side by side where they fit."""
    by_key = {(r["policy"], r["T_min"], r["N"]): r for r in rows}
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    deadlines = sorted({r["T_min"] for r in rows})
    tables = []
    for n in sorted({r["N"] for r in rows}):
        body = [
            [p] + [cell(by_key[p, t, n]) if (p, t, n) in by_key else DASH for t in deadlines]
            for p in policies
        ]
        cells = table([f"N = {n}"] + [f"T = {t} min" for t in deadlines], body)
        tables.append(f"<div>{cells}</div>")
    return "<div class='tables'>" + "\n".join(tables) + "</div>"


def _cumulative_failures(
    cells: list[dict[str, Any]],
    rounds: dict[str, Any],
    goals: dict[str, Any] | None,
    block: int | None,
) -> str:
    """Cumulative failures over the rounds of the hardest cell (smallest T and N)."""
    t = min(r["T_min"] for r in cells)
    n = min(r["N"] for r in cells)
    suffix = f"@T{t}N{n}"
    wanted = [*ROUND_POLICIES, (goals or {}).get("best_policy")]
    keys = [f"{p}{suffix}" for p in dict.fromkeys(wanted) if p and f"{p}{suffix}" in rounds]
    keys = keys or [k for k in rounds if k.endswith(suffix)]
    if not keys:
        return f"<p>No per-round results for T = {t} min, N = {n}.</p>"
    fig, ax = plt.subplots(figsize=(8, 4))
    length = 0
    for key in keys:
        failed = np.asarray(rounds[key]["failed"], dtype=int)
        length = max(length, len(failed))
        ax.step(np.arange(1, len(failed) + 1), np.cumsum(failed), where="post", label=key)
    for edge in range(block, length, block) if block else ():
        ax.axvline(edge + 0.5, color="#999999", linestyle=":", linewidth=0.8)
    ax.set(xlabel="round", ylabel="cumulative failures", title=f"T = {t} min, N = {n}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    text = (
        f"<p>Cumulative failed rounds in the cell with the tightest deadline and fewest workers "
        f"(T = {t} min, N = {n}). An online DQN fails often while it learns — the paper's "
        "“sacrifice period” — and the steeper its curve stays, the longer that lasts.</p>"
    )
    return text + figure_png(fig, f"cumulative failures, T = {t} min, N = {n}")


def _learning_curves(curves: dict[str, Any] | None) -> str:
    """Episode rewards of each DQN; a subplot per variant, as their rewards differ in scale."""
    if not curves:
        return "<p>No DQN was trained in this run, so there are no learning curves.</p>"
    variants = list(dict.fromkeys(key.split("@")[0] for key in curves))
    fig, axes = plt.subplots(1, len(variants), figsize=(8, 3.5), sharex=True, squeeze=False)
    smoothed = False
    for ax, variant in zip(axes.flat, variants, strict=True):
        mine = [key for key in curves if key.split("@")[0] == variant]
        for index, key in enumerate(mine):
            steps = np.asarray(curves[key]["timesteps"], dtype=float)
            rewards = np.asarray(curves[key]["rewards"], dtype=float)
            colour = f"C{index % 10}"
            if len(rewards) > SMOOTH_EPISODES:
                window = max(5, len(rewards) // 10)
                average = np.convolve(rewards, np.ones(window) / window, mode="valid")
                ax.plot(steps, rewards, color=colour, alpha=0.25, linewidth=0.8)
                ax.plot(steps[window - 1 :], average, color=colour, label=key)
                smoothed = True
            else:
                ax.plot(steps, rewards, color=colour, marker=".", label=key)
        ax.set(xlabel="timesteps", title=variant)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes.flat[0].set_ylabel("episode reward")
    fig.tight_layout()
    note = " Faint lines are single episodes, solid ones moving averages." if smoothed else ""
    text = f"<p>Reward per training episode against the timesteps so far, per DQN.{note}</p>"
    return text + figure_png(fig, "DQN learning curves")


def _continuous(suite: str, cases: list[dict[str, Any]]) -> str:
    parts = [f"<h2>{esc(suite)}</h2>"]
    if not cases:
        parts.append("<p>No cases.</p>")
    for case in cases:
        results = case.get("results") or []
        parts += [
            f"<h3>{esc(suite)}: {esc(case['name'])}</h3>",
            _settings_line(case.get("settings") or {}, skip=("name",)),
            _results_table(results),
            _misses_vs_cost(results, case["name"]),
            _timelines(results, case["name"]),
        ]
    return "\n".join(parts)


def _results_table(results: list[dict[str, Any]]) -> str:
    headers = ["policy", "misses (%)", "worker-hours", "× oracle", "scale actions", "p95 slowdown"]
    rows = [
        [
            r["policy"],
            f"{r['misses']} ({r['miss_pct']:.2f}%)",
            _num(r["worker_hours"], 2),
            _num(r.get("ratio_to_oracle"), 3),
            DASH if r.get("scale_actions") is None else str(r["scale_actions"]),
            _num(r.get("p95_slowdown"), 2),
        ]
        for r in results
    ]
    return table(headers, rows)


def _misses_vs_cost(results: list[dict[str, Any]], name: str) -> str:
    points = [r for r in results if None not in (r.get("worker_hours"), r.get("miss_pct"))]
    if not points:
        return ""
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in points:
        oracle = r["policy"] == "oracle"
        ax.scatter(
            r["worker_hours"],
            r["miss_pct"],
            marker="*" if oracle else "o",
            s=160 if oracle else 30,
            color="#d62728" if oracle else "#1f77b4",
            zorder=3,
        )
        ax.annotate(
            r["policy"],
            (r["worker_hours"], r["miss_pct"]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set(xlabel="worker-hours", ylabel="misses (%)", title=f"{name}: misses vs cost")
    ax.grid(alpha=0.3)
    return figure_png(fig, f"{name}: misses % vs worker-hours")


def _timelines(results: list[dict[str, Any]], name: str) -> str:
    """A small plot per policy: its workers and the demand (running + pending cores)."""
    lines = [r for r in results if r.get("timeline") and r["timeline"].get("time_s")]
    if not lines:
        return ""
    cols = min(4, len(lines))
    rows = math.ceil(len(lines) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(8, 0.6 + 1.7 * rows), sharex=True, sharey=True, squeeze=False
    )
    for ax, r in zip(axes.flat, lines, strict=False):
        line = r["timeline"]
        hours = np.asarray(line["time_s"], dtype=float) / 3600.0
        ax.fill_between(hours, line["demand_workers"], color="#999999", alpha=0.4, linewidth=0)
        ax.plot(hours, line["workers"], color="#1f77b4", linewidth=0.7)
        ax.set_title(r["policy"], fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(lines) :]:
        ax.set_visible(False)
    most = max(max(r["timeline"]["workers"], default=0) for r in lines)
    axes.flat[0].set_ylim(0, DEMAND_HEADROOM * max(1, most))
    fig.supxlabel("hours", fontsize=9)
    fig.supylabel("workers", fontsize=9)
    fig.suptitle(f"{name}: workers (blue) vs demand (grey)", fontsize=10)
    fig.tight_layout()
    text = (
        "<p>Workers of each policy over time against the demand — the cores of running and "
        "pending tasks, in workers. Demand above the top of a plot is cut off.</p>"
    )
    return text + figure_png(fig, f"{name}: workers over time vs demand")


def _footer(report: dict[str, Any]) -> str:
    versions = report.get("versions") or {}
    parts = ["<h2>Versions and configuration</h2>"]
    if versions:
        parts.append(table(["package", "version"], [[k, str(v)] for k, v in versions.items()]))
    for title, key in (("Configuration", "config"), ("Options", "options")):
        if report.get(key) is not None:
            text = json.dumps(report[key], indent=2, default=str)
            parts.append(f"<details><summary>{title}</summary><pre>{esc(text)}</pre></details>")
    return "\n".join(parts)
