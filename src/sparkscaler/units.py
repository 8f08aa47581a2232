"""Durations and memory sizes written the way Spark and Dataproc write them.

A data engineer copies ``spark.dynamicAllocation.executorIdleTimeout=60s`` or Dataproc's
``cooldownPeriod: 2m`` into a config and expects it to work; so every setting that is a time
takes ``30s``, ``2m``, ``1.5h`` as well as a number of seconds, and every memory size takes
Spark's ``512m``/``2g``. One parser for each keeps the forms identical everywhere (config,
policy parameters, a job's ``spark.sparkscaler.deadline``, ``simulate --duration``); pydantic
fields get them by their type (:data:`Duration`, :data:`MemoryMB`, :data:`SparkMemory`).

``pydantic.ByteSize`` is not used: it reads ``1kb`` as 1000 bytes, Spark as 1024.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

#: Seconds per duration unit. Spark's ``ms, s, m, min, h, d`` plus ``w`` for simulated weeks;
#: no months or years, whose length varies.
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")

#: Bytes per memory unit, binary as in Spark (``1k`` is 1024 bytes).
_BYTES = {
    unit + suffix: 1024**power
    for power, unit in enumerate("bkmgtp")
    for suffix in (("",) if unit == "b" else ("", "b"))
}
_MEMORY = re.compile(r"^(\d+)([a-z]*)$")
_MIB = 1024**2

#: The forms named in every error, so that a wrong value shows how to write a right one.
DURATION_FORMS = "30s, 2m, 1h"
MEMORY_FORMS = "512m or 2g"


def parse_duration(value: str | float, forms: str = DURATION_FORMS) -> float:
    """Seconds from a number or a string such as ``500ms``, ``30s``, ``2m``, ``5min``, ``1.5h``,
    ``1d``; a bare number is seconds. Case-insensitive, as Spark is.

    ``forms`` are the examples the error suggests (``simulate --duration`` suggests days).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value).strip().lower())
    if not match or match.group(2) not in _SECONDS | {"": 1}:
        raise ValueError(f"not a duration: {value!r} (use seconds or {forms})")
    return float(match.group(1)) * _SECONDS.get(match.group(2), 1)


def parse_memory_mb(value: str | int) -> int:
    """MiB from Spark's notation: ``512m``, ``2g``, ``1024k``, ``1t``, ``512mb``, ``2GB``.

    A bare number is MiB, as in ``spark.executor.memory``; fractions are refused, as Spark
    refuses them. Sizes that are not whole MiB are rounded down, as Spark rounds them.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _MEMORY.match(str(value).strip().lower())
    if not match or match.group(2) not in _BYTES | {"": _MIB}:
        raise ValueError(f"not a memory size: {value!r} (use {MEMORY_FORMS}, or a number of MiB)")
    return int(match.group(1)) * _BYTES.get(match.group(2), _MIB) // _MIB


def spark_memory(mb: int) -> str:
    """MiB in Spark's shortest notation: 2048 -> ``2g``, 1536 -> ``1536m``."""
    return f"{mb // 1024}g" if mb and mb % 1024 == 0 else f"{mb}m"


def _seconds(value: object) -> object:
    """A string becomes seconds; anything else is left for the field's own type to judge."""
    return parse_duration(value) if isinstance(value, str) else value


def _mb(value: object) -> object:
    return parse_memory_mb(value) if isinstance(value, str) else value


def _normalised_memory(value: object) -> object:
    """Spark's own daemons read a bare number as bytes, not MiB, so the value handed to them
    is rewritten in an unambiguous form."""
    return spark_memory(parse_memory_mb(value)) if isinstance(value, str | int) else value


#: Seconds, written as a number or as ``30s``, ``2m``, ``1h``.
Duration = Annotated[float, BeforeValidator(_seconds)]
#: MiB, written as a number of MiB or as ``512m``, ``2g``.
MemoryMB = Annotated[int, BeforeValidator(_mb)]
#: A memory size kept in Spark's notation for a Spark daemon (``2048`` or ``2gb`` become ``2g``).
SparkMemory = Annotated[str, BeforeValidator(_normalised_memory)]
