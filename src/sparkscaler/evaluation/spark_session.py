"""``evaluate --spark MASTER_URL``: the evaluation's tasks as tasks of a Spark cluster.

joblibspark does the work: it is a joblib backend that runs each batch of calls as a one-task
Spark job, so the harness's ``joblib.Parallel`` runs unchanged, and a task computes on an
executor exactly what it computes in a local process (its arguments are plain data and the
seed). This module only brings the driver up and down around it: it checks the master before
starting a JVM, starts a SparkSession whose executors run this Python, waits for the cores the
cluster gives it, and stops the session and its JVM afterwards, also on an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from sparkscaler.errors import MissingExtraError, SparkscalerError

APP_NAME = "sparkscaler-evaluate"
#: Heap of each executor JVM and of the driver's: tasks run in Python workers outside the heap,
#: and results are small, so the least Spark accepts leaves a small worker's memory to them.
EXECUTOR_MEMORY = "512m"
DRIVER_MEMORY = "512m"
CONNECT_TIMEOUT_S = 5.0
#: How long to wait for the first executor to register, and then for more to stop coming.
EXECUTOR_TIMEOUT_S = 90.0
SETTLE_S = 2.0


class SparkEvaluationError(SparkscalerError, RuntimeError):
    """The master cannot be used: malformed URL, unreachable, or it gives the app no executor."""

    exit_code = 2


def master_addresses(master: str) -> list[tuple[str, int]]:
    """The (host, port) of each master of ``spark://HOST:PORT[,HOST:PORT...]`` (several for a
    master with standby masters), or SparkEvaluationError saying which form it must have."""
    parts = urlsplit(master)
    form = f"the master URL must look like spark://HOST:7077 (got {master!r})"
    if parts.scheme != "spark" or not parts.netloc or parts.path not in ("", "/"):
        raise SparkEvaluationError(form)
    addresses = []
    for item in parts.netloc.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SparkEvaluationError(form)
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def check_master(master: str) -> None:
    """Fail fast, before a JVM starts, when the URL is malformed, joblibspark is missing, or
    no master listens there (Spark itself would retry for a minute, then give up in its log)."""
    addresses = master_addresses(master)
    try:
        import joblibspark  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as error:
        raise MissingExtraError("evaluate --spark", "spark-eval", error.name) from None
    problems = []
    for host, port in addresses:
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
            return
        except OSError as error:
            problems.append(f"{host}:{port}: {error.strerror or error}")
    raise SparkEvaluationError(
        f"no Spark master answers at {master} ({'; '.join(problems)}); "
        "is it running (`sparkscaler cluster start`, or Spark's start-master.sh)?"
    )


def _concurrent_tasks(spark: Any) -> int:
    """How many tasks the app's executors can run at once now (joblibspark's own measure)."""
    sc = spark.sparkContext._jsc.sc()
    return int(sc.maxNumConcurrentTasks(sc.resourceProfileManager().resourceProfileFromId(0)))


def _wait_for_executors(spark: Any, master: str) -> int:
    """The app's concurrent tasks once its first executor has registered and no more have come
    for SETTLE_S; SparkEvaluationError when none comes or the master drops the app."""
    deadline = time.monotonic() + EXECUTOR_TIMEOUT_S
    seen, since = 0, time.monotonic()
    while True:
        if spark.sparkContext._jsc is None or spark.sparkContext._jsc.sc().isStopped():
            raise SparkEvaluationError(f"the master at {master} did not accept the application")
        now = _concurrent_tasks(spark)
        if now != seen:
            seen, since = now, time.monotonic()
        if seen and time.monotonic() - since >= SETTLE_S:
            return seen
        if time.monotonic() > deadline:
            if seen:
                return seen
            raise SparkEvaluationError(
                f"no executor started within {EXECUTOR_TIMEOUT_S:.0f} s at {master}: the cluster "
                f"needs an ALIVE worker with a free core and {EXECUTOR_MEMORY} of free memory "
                "(another application may hold them)"
            )
        time.sleep(0.25)


def _stop(spark: Any) -> None:
    """Stop the session, then its JVM: pyspark keeps the gateway JVM for the next session until
    the Python process ends, which a caller that goes on (a test, a notebook) must not inherit."""
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    proc: subprocess.Popen[bytes] | None = getattr(gateway, "proc", None)
    with contextlib.suppress(Exception):
        gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc is not None:
        if proc.stdin is not None:
            proc.stdin.close()  # the gateway JVM exits when its stdin closes
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@contextlib.contextmanager
def spark_backend(master: str, n_jobs: int) -> Iterator[int]:
    """Within: joblib's active backend runs calls on the cluster at ``master``; yields how many
    are in flight (``n_jobs``, or with -1 the cores the cluster gave the app; at least 2)."""
    check_master(master)
    from joblib import parallel_backend
    from joblibspark import register_spark
    from pyspark.sql import SparkSession

    # Executors must run this very Python, with this sparkscaler and these libraries. pyspark
    # reads the executors' Python from PYSPARK_PYTHON when the context starts (the config
    # spark.pyspark.python is spark-submit's); one the user set names it on the workers.
    chosen = "PYSPARK_PYTHON" in os.environ
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(APP_NAME)
        .config("spark.executor.memory", EXECUTOR_MEMORY)
        .config("spark.driver.memory", DRIVER_MEMORY)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # the command draws its own bar
    )
    if n_jobs > 0:
        builder = builder.config("spark.cores.max", str(n_jobs))
    try:
        spark = builder.getOrCreate()
    finally:
        if not chosen:
            del os.environ["PYSPARK_PYTHON"]
    try:
        spark.sparkContext.setLogLevel("ERROR")
        concurrent = _wait_for_executors(spark, master)
        register_spark()
        # With n_jobs=1 joblib runs the calls in this process, not on the backend: keep at least
        # two in flight (Spark queues what its cores cannot take yet).
        in_flight = max(2, n_jobs if n_jobs > 0 else concurrent)
        with warnings.catch_warnings():
            # joblibspark warns that stage-level scheduling is unsupported (it is supported
            # here) and when n_jobs exceeds the cores registered so far.
            warnings.filterwarnings("ignore", module="joblibspark")
            # pyspark, for each call joblibspark starts in a thread of its own: the calls
            # need no tags.
            warnings.filterwarnings("ignore", "Spark session is not provided")
            with parallel_backend("spark", n_jobs=in_flight):
                yield in_flight
    finally:
        _stop(spark)
