"""Durations and memory sizes as Spark and Dataproc write them, and the pydantic types."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from sparkscaler.units import (
    Duration,
    MemoryMB,
    SparkMemory,
    parse_duration,
    parse_memory_mb,
    spark_memory,
)


# ------------------------------------------------------------------------------- durations
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("30", 30.0),
        ("30s", 30.0),
        ("2m", 120.0),
        ("5min", 300.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        ("2w", 1209600.0),
        ("60S", 60.0),  # Spark lower-cases its time strings
        (" 2 m ", 120.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "soon", "5 parsecs", "-5m", "5x", "h", "1h30m", "5 mins", "1e3", "1,5h", "m5"]
)
def test_parse_duration_rejects_with_the_forms_to_use(value: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert str(info.value) == f"not a duration: {value!r} (use seconds or 30s, 2m, 1h)"


def test_parse_duration_suggests_the_callers_forms() -> None:
    with pytest.raises(ValueError, match=r"use seconds or 90m, 12h, 7d\)$"):
        parse_duration("a week", forms="90m, 12h, 7d")


def test_parse_duration_refuses_a_boolean() -> None:
    """YAML reads ``yes`` as True, which is no number of seconds."""
    with pytest.raises(ValueError, match="not a duration: True"):
        parse_duration(True)


# ------------------------------------------------------------------------------- memory
@pytest.mark.parametrize(
    ("value", "mb"),
    [
        ("512m", 512),
        ("512M", 512),
        ("512mb", 512),
        ("2g", 2048),
        ("2G", 2048),
        ("2gb", 2048),
        ("2GB", 2048),
        ("1024k", 1),
        ("1024kb", 1),
        ("1t", 1024 * 1024),
        ("1p", 1024**3),
        (f"{3 * 1024**2}b", 3),
        (" 3g ", 3072),
        ("0m", 0),
        ("512", 512),  # a bare number is MiB, as spark.executor.memory reads it
        (512, 512),
        ("1500k", 1),  # not whole MiB: rounded down, as Spark does
    ],
)
def test_parse_memory_mb(value: str | int, mb: int) -> None:
    assert parse_memory_mb(value) == mb


@pytest.mark.parametrize("value", ["3x", "1.5g", "g", "", "-1g", "1 g", "2gib", "-5", -5, True])
def test_parse_memory_mb_rejects_with_the_forms_to_use(value: str | int) -> None:
    with pytest.raises(ValueError) as info:
        parse_memory_mb(value)
    assert str(info.value) == f"not a memory size: {value!r} (use 512m or 2g, or a number of MiB)"


@pytest.mark.parametrize(("mb", "text"), [(2048, "2g"), (1024, "1g"), (1536, "1536m"), (0, "0m")])
def test_spark_memory_is_the_shortest_exact_notation(mb: int, text: str) -> None:
    assert spark_memory(mb) == text
    assert parse_memory_mb(text) == mb


# ------------------------------------------------------------------------------- field types
class _Settings(BaseModel):
    timeout_s: Duration = Field(60.0, gt=0)
    deadline_s: Duration | None = None
    window_s: tuple[Duration, Duration] = (1.0, 2.0)
    memory_mb: MemoryMB | None = None
    worker_memory: SparkMemory = "1g"


def test_a_field_gets_the_parsers_by_its_type() -> None:
    settings = _Settings(
        timeout_s="2m",
        deadline_s="1h",
        window_s=["500ms", 3],
        memory_mb="4g",
        worker_memory="2048mb",
    )
    assert settings.timeout_s == 120.0
    assert settings.deadline_s == 3600.0
    assert settings.window_s == (0.5, 3.0)
    assert settings.memory_mb == 4096
    assert settings.worker_memory == "2g"
    assert _Settings(deadline_s=None, memory_mb=None).deadline_s is None
    assert _Settings(worker_memory=1536).worker_memory == "1536m"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout_s", "soon", "not a duration: 'soon'"),
        ("deadline_s", "soon", "not a duration: 'soon'"),
        ("memory_mb", "lots", "not a memory size: 'lots'"),
        ("worker_memory", "lots", "not a memory size: 'lots'"),
        ("timeout_s", "0s", "greater than 0"),
    ],
)
def test_an_invalid_value_is_one_error_on_its_field(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _Settings(**{field: value})
    (error,) = info.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]
