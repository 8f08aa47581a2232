"""Logging for the long-running commands (``run``, ``serve``): timestamped lines a person can
read, or one JSON object per line for a log shipper (Loki, Elasticsearch, CloudWatch).

Every decision is logged as one record whose message reads well on its own and whose JSON
form carries the same facts as fields, so that a query can filter on ``action`` or
``target`` without parsing the text.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from sparkscaler.controller import Step

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]

#: Libraries that log chattily at INFO; they speak only at WARNING and above.
_QUIET = ("httpx", "httpcore", "uvicorn.access", "py4j")

_TEXT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

step_log = logging.getLogger("sparkscaler.loop")


@contextlib.contextmanager
def logging_to(
    level: LogLevel = "info", fmt: LogFormat = "text", stream: TextIO | None = None
) -> Iterator[None]:
    """Send every log record at ``level`` or above to ``stream`` (stderr by default) while the
    block runs.

    The handler is removed and the levels restored on the way out, so that a command run
    inside another program (a test's CliRunner, a notebook) leaves its logging as it was, and
    nothing writes to a stream that has been closed since.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    quiet = [logging.getLogger(name) for name in _QUIET]
    before = (root.level, [q.level for q in quiet])
    root.addHandler(handler)
    root.setLevel(level.upper())
    for logger in quiet:
        logger.setLevel(max(logging.WARNING, root.level))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before[0])
        for logger, old in zip(quiet, before[1], strict=True):
            logger.setLevel(old)


def log_step(step: Step) -> None:
    """One line per iteration: what was seen, what was decided and why, what was done."""
    o, g = step.observation, step.outcome
    error = f" ({step.error})" if step.error else ""
    step_log.info(
        "%s workers %d->%d  running %d  pending %d  %s%s",
        g.action,
        o.workers,
        g.target,
        o.running_tasks,
        o.pending_tasks,
        g.reason,
        error,
        extra={
            "action": g.action,
            "workers": o.workers,
            "target": g.target,
            "running_tasks": o.running_tasks,
            "pending_tasks": o.pending_tasks,
            "reason": g.reason,
            "policy": g.decision.policy if g.decision else None,
            "acted": step.acted,
            "error": step.error,
        },
    )
