"""PySpark jobs that sparkscaler submits to a real cluster (run by ``spark-submit``).

``backlog``: many tasks of a fixed duration, a stand-in for a stage that reads from remote
storage. Each task spends a share of its time computing and the rest waiting, so that on this
2-core machine more workers really do finish the job sooner, as they would on a real cluster.
"""

from __future__ import annotations

import argparse
import time


def _task(seconds: float, cpu_share: float) -> float:
    end_cpu = time.perf_counter() + seconds * cpu_share
    total = 0.0
    while time.perf_counter() < end_cpu:
        total += sum(i * i for i in range(1000))
    time.sleep(max(0.0, seconds * (1.0 - cpu_share)))
    return total


def backlog(spark, tasks: int, task_seconds: float, cpu_share: float) -> int:
    rdd = spark.sparkContext.parallelize(range(tasks), tasks)
    return rdd.map(lambda _: _task(task_seconds, cpu_share)).count()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["backlog"])
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--task-seconds", type=float, default=3.0)
    parser.add_argument("--cpu-share", type=float, default=0.2)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(args.name or f"sparkscaler-{args.kind}").getOrCreate()
    try:
        count = backlog(spark, args.tasks, args.task_seconds, args.cpu_share)
        print(f"sparkscaler-job {args.kind}: {count} tasks done", flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
