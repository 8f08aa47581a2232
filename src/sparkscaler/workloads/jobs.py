"""PySpark jobs that sparkscaler submits to a real cluster (run by ``spark-submit``).

``backlog``: many tasks of a fixed duration, a stand-in for a stage that reads from remote
storage. Each task spends a share of its time computing and the rest waiting, so that on this
2-core machine more workers really do finish the job sooner, as they would on a real cluster.

The other kinds are small versions of real analytics jobs, so that the autoscaler also meets
what uniform sleeping tasks lack: shuffles, caching, skew, and iterations of short stages.

- ``forecast``: a Random-Forest forecast of tomorrow's humidity from lagged weather features
  (Window functions) on decades of generated daily weather per station; prints the test MSE.
- ``wordcount``: counts the words of a generated Zipf-distributed text (RDD); prints the top 5.
- ``pagerank``: the classic RDD PageRank (a join per iteration) on a generated graph.
- ``kmeans``: MLlib k-means on generated Gaussian blobs; prints the cost and silhouette.

Each of them generates its own data on the executors from fixed seeds (``spark.range`` with SQL
functions, or ``mapPartitionsWithIndex``), so it needs no input files, a run is repeatable for a
given ``--partitions``, and nothing large passes through the 512 MB driver. ``--scale`` sets the
amount of data, which the run time follows about linearly (1.0: 30 to 60 s on one worker with one
core and 1 GB, Spark start-up included); ``--partitions`` sets the tasks per stage, so that added
workers have tasks to take.

Every job ends by printing one line ``sparkscaler-job <kind>: <summary>``, which the tests look
for in the driver log.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator
from operator import add
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Every generator and estimator is seeded from this, so that a run is repeatable.
SEED = 20240611

#: Days of weather per station: three decades, enough seasons to learn the yearly cycle from.
FORECAST_DAYS = 30 * 365
#: Station-days at scale 1.0 (about 23 stations).
FORECAST_ROWS = 250_000
#: Test data: the last quarter of the days of every station.
FORECAST_TEST_SHARE = 0.25

#: Lines of text at scale 1.0, words per line, and distinct words.
WORDCOUNT_LINES = 1_000_000
WORDS_PER_LINE = 12
VOCABULARY = 50_000

#: Nodes at scale 1.0, most random out-links per node, and the iterations (as in Spark's example).
PAGERANK_NODES = 60_000
MAX_OUT_LINKS = 8
PAGERANK_ITERATIONS = 10
DAMPING = 0.85

#: Points at scale 1.0, their dimension, the number of blobs (and of clusters fitted), and the
#: most Lloyd iterations: few, so that the time goes into passes over the data rather than into
#: the scheduling of many short stages, which added workers cannot speed up.
KMEANS_POINTS = 800_000
KMEANS_DIMENSIONS = 10
KMEANS_BLOBS = 8
KMEANS_ITERATIONS = 10


def _task(seconds: float, cpu_share: float) -> float:
    """Compute for ``cpu_share`` of ``seconds``, then wait for the rest, like a remote read."""
    end_cpu = time.perf_counter() + seconds * cpu_share
    total = 0.0
    while time.perf_counter() < end_cpu:
        total += sum(i * i for i in range(1000))
    time.sleep(max(0.0, seconds * (1.0 - cpu_share)))
    return total


def backlog(spark: SparkSession, tasks: int, task_seconds: float, cpu_share: float) -> int:
    """One stage of ``tasks`` tasks of ``task_seconds`` each; returns how many ran."""
    rdd = spark.sparkContext.parallelize(range(tasks), tasks)
    return rdd.map(lambda _: _task(task_seconds, cpu_share)).count()


def _share(total: int, parts: int, index: int) -> range:
    """The ``index``-th of ``parts`` contiguous slices of ``range(total)``."""
    return range(total * index // parts, total * (index + 1) // parts)


def weather(spark: SparkSession, rows: int, partitions: int) -> DataFrame:
    """Daily weather (date, temp, wind, rainfall, humidity) of ``rows`` station-days.

    A yearly sine gives the seasons; a sum of two sines with periods of about one and three
    weeks (phase shifted per station) stands in for passing weather systems, so that the
    previous days really tell something about tomorrow beyond the season; Gaussian noise is
    what no model can predict. Humidity falls with temperature and wind and rises with rain.
    """
    from pyspark.sql import functions as F

    day = (F.col("id") % FORECAST_DAYS).cast("int")
    climate = (F.abs(F.xxhash64(F.col("station"), F.lit(SEED))) % 1000) / 1000.0
    season = F.sin(2 * math.pi * (F.col("day") - 110) / 365.25)
    systems = F.sin(2 * math.pi * F.col("day") / 8.7 + 6.0 * F.col("climate")) + 0.6 * F.sin(
        2 * math.pi * F.col("day") / 19.3 + 3.0 * F.col("climate")
    )
    return (
        spark.range(rows, numPartitions=partitions)
        .select(F.floor(F.col("id") / FORECAST_DAYS).cast("int").alias("station"), day.alias("day"))
        .withColumn("climate", climate)
        .withColumn("date", F.date_add(F.lit("1990-01-01").cast("date"), F.col("day")))
        .withColumn("season", season)
        .withColumn("systems", systems)
        .withColumn(
            "temp",
            6.0
            + 10.0 * F.col("climate")
            + 9.0 * F.col("season")
            + 2.5 * F.col("systems")
            + 1.5 * F.randn(SEED + 1),
        )
        .withColumn(
            "wind",
            F.abs(4.0 - 1.5 * F.col("season") + 1.5 * F.col("systems") + 1.2 * F.randn(SEED + 2)),
        )
        .withColumn(
            "rainfall",
            F.greatest(
                F.lit(0.0),
                1.0 - 1.5 * F.col("season") + 3.0 * F.col("systems") + 2.5 * F.randn(SEED + 3),
            ),
        )
        .withColumn(
            "humidity",
            F.least(
                F.lit(100.0),
                F.greatest(
                    F.lit(5.0),
                    78.0
                    - 1.3 * (F.col("temp") - 10.0 * F.col("climate"))
                    - 1.2 * F.col("wind")
                    + 1.6 * F.col("rainfall")
                    + 3.5 * F.randn(SEED + 4),
                ),
            ),
        )
        .select("station", "day", "date", "temp", "wind", "rainfall", "humidity")
    )


def forecast(spark: SparkSession, scale: float, partitions: int) -> str:
    """Forecast each day's humidity from the days before it with a Random Forest.

    The features are lags over a per-station Window (the shuffle of this job): the last three
    days' humidity, yesterday's temperature, wind and rain, the mean humidity of the week
    before, and the day of the year. Training uses all but the last quarter of the days;
    the MSE on that quarter is reported next to the humidity's variance there, which is the
    MSE of always predicting the mean.
    """
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import RandomForestRegressor
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rows = max(1, round(FORECAST_ROWS * scale))
    by_day = Window.partitionBy("station").orderBy("day")
    week_before = by_day.rowsBetween(-7, -1)
    features = {
        "humidity_1": F.lag("humidity", 1).over(by_day),
        "humidity_2": F.lag("humidity", 2).over(by_day),
        "humidity_3": F.lag("humidity", 3).over(by_day),
        "temp_1": F.lag("temp", 1).over(by_day),
        "wind_1": F.lag("wind", 1).over(by_day),
        "rainfall_1": F.lag("rainfall", 1).over(by_day),
        "humidity_week": F.avg("humidity").over(week_before),
        "year_sin": F.sin(2 * math.pi * F.dayofyear("date") / 365.25),
        "year_cos": F.cos(2 * math.pi * F.dayofyear("date") / 365.25),
    }
    data = (
        VectorAssembler(inputCols=list(features), outputCol="features")
        .transform(weather(spark, rows, partitions).withColumns(features).dropna())
        .select("day", "humidity", "features")
        .cache()
    )
    test_from = FORECAST_DAYS * (1 - FORECAST_TEST_SHARE)
    train, test = data.filter(F.col("day") < test_from), data.filter(F.col("day") >= test_from)
    model = RandomForestRegressor(labelCol="humidity", numTrees=20, maxDepth=8, seed=SEED).fit(
        train
    )
    mse = RegressionEvaluator(labelCol="humidity", metricName="mse").evaluate(model.transform(test))
    variance, test_rows = test.agg(F.var_pop("humidity"), F.count("*")).first()
    stations = math.ceil(rows / FORECAST_DAYS)
    return (
        f"test MSE {mse:.3f} (humidity variance {variance:.3f}) on {test_rows} station-days "
        f"of {stations} stations"
    )


def _zipf_lines(index: int, partitions: int, lines: int) -> Iterator[str]:
    """This partition's share of ``lines`` lines of words drawn with Zipf's law (s = 1.1).

    The vocabulary is made of pronounceable words, one per rank, the same on every executor.
    """
    import numpy as np

    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    vocabulary = []
    for rank in range(VOCABULARY):
        word, rest = "", rank + 1
        while rest:
            rest, digit = divmod(rest, len(syllables))
            word += syllables[digit]
        vocabulary.append(word)
    cumulative = np.cumsum(1.0 / np.arange(1, VOCABULARY + 1) ** 1.1)
    rng = np.random.default_rng([SEED, index])
    share = _share(lines, partitions, index)
    for start in range(0, len(share), 10_000):
        count = min(10_000, len(share) - start)
        draws = rng.random((count, WORDS_PER_LINE)) * cumulative[-1]
        for ranks in np.searchsorted(cumulative, draws).tolist():
            yield " ".join(vocabulary[r] for r in ranks)


def wordcount(spark: SparkSession, scale: float, partitions: int) -> str:
    """Count the words of a generated text, the classic flatMap / reduceByKey, in Python."""
    lines = max(1, round(WORDCOUNT_LINES * scale))
    counts = (
        spark.sparkContext.parallelize(range(partitions), partitions)
        .mapPartitionsWithIndex(lambda index, _: _zipf_lines(index, partitions, lines))
        .flatMap(str.split)
        .map(lambda word: (word, 1))
        .reduceByKey(add, partitions)
    )
    top = counts.takeOrdered(5, key=lambda pair: -pair[1])
    words = lines * WORDS_PER_LINE
    return f"{words} words, top 5 " + ", ".join(f"{word}={count}" for word, count in top)


def _random_links(index: int, partitions: int, nodes: int) -> Iterator[tuple[int, int]]:
    """The out-links of this partition's share of the nodes.

    Each node links to the next one (a ring, so that no node is dangling or unreachable and
    the ranks keep summing to the number of nodes) and to up to ``MAX_OUT_LINKS`` random
    nodes, low numbers far more often (the cube of a uniform draw), so that a few nodes
    collect many links as on the web.
    """
    import numpy as np

    rng = np.random.default_rng([SEED, index])
    for node in _share(nodes, partitions, index):
        yield node, (node + 1) % nodes
        targets = (nodes * rng.random(rng.integers(1, MAX_OUT_LINKS + 1)) ** 3).astype(int)
        for target in targets.tolist():
            if target != node:
                yield node, target


def _contributions(links: list[int], rank: float) -> Iterator[tuple[int, float]]:
    """A node's rank, shared out equally over its out-links."""
    for target in links:
        yield target, rank / len(links)


def pagerank(spark: SparkSession, scale: float, partitions: int) -> str:
    """Spark's classic PageRank example: a join of links and ranks per iteration."""
    nodes = max(2, round(PAGERANK_NODES * scale))
    links = (
        spark.sparkContext.parallelize(range(partitions), partitions)
        .mapPartitionsWithIndex(lambda index, _: _random_links(index, partitions, nodes))
        .distinct(partitions)
        .groupByKey(partitions)
        .mapValues(list)
        .cache()
    )
    ranks = links.mapValues(lambda _: 1.0)
    for _ in range(PAGERANK_ITERATIONS):
        ranks = (
            links.join(ranks, partitions)
            .flatMap(lambda pair: _contributions(*pair[1]))
            .reduceByKey(add, partitions)
            .mapValues(lambda rank: 1.0 - DAMPING + DAMPING * rank)
        )
    ranks = ranks.cache()
    top = ranks.takeOrdered(3, key=lambda pair: -pair[1])
    total = ranks.values().sum()
    return f"{nodes} nodes, rank sum {total:.3f}, top 3 " + ", ".join(
        f"{node}={rank:.2f}" for node, rank in top
    )


def blobs(spark: SparkSession, points: int, partitions: int) -> DataFrame:
    """``points`` points around ``KMEANS_BLOBS`` centres, in a ``features`` vector column.

    The centres are drawn uniformly in a cube of side 20 and the points spread around them
    with a standard deviation of 3, so that neighbouring blobs overlap a little and k-means
    needs a few iterations rather than one.
    """
    import numpy as np
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    centres = np.random.default_rng(SEED).uniform(-10, 10, (KMEANS_BLOBS, KMEANS_DIMENSIONS))
    blob = F.floor(F.rand(SEED) * KMEANS_BLOBS).cast("int") + 1
    coordinates = [
        (
            F.element_at(F.array(*[F.lit(float(c)) for c in centres[:, d]]), blob)
            + 3.0 * F.randn(SEED + 1 + d)
        ).alias(f"x{d}")
        for d in range(KMEANS_DIMENSIONS)
    ]
    data = spark.range(points, numPartitions=partitions).select(*coordinates)
    return VectorAssembler(inputCols=data.columns, outputCol="features").transform(data)


def kmeans(spark: SparkSession, scale: float, partitions: int) -> str:
    """Fit k-means (k-means|| start) to generated blobs; report cost, iterations, silhouette."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.evaluation import ClusteringEvaluator

    points = max(KMEANS_BLOBS, round(KMEANS_POINTS * scale))
    data = blobs(spark, points, partitions).select("features").cache()
    model = KMeans(k=KMEANS_BLOBS, maxIter=KMEANS_ITERATIONS, seed=SEED).fit(data)
    silhouette = ClusteringEvaluator().evaluate(model.transform(data))
    return (
        f"{points} points, cost {model.summary.trainingCost:.6g} after "
        f"{model.summary.numIter} iterations, silhouette {silhouette:.3f}"
    )


SIZED_JOBS = {"forecast": forecast, "wordcount": wordcount, "pagerank": pagerank, "kmeans": kmeans}

#: Bytes of generated data per unit of each job's size (a weather row of 7 numbers, a line of
#: 12 words of about 7 letters, a node's 5.5 links on average as two longs each, a point of 10
#: doubles), so that the size a job declares is the data it would have read from files.
_BYTES_PER_UNIT = {
    "forecast": (FORECAST_ROWS, 7 * 8),
    "wordcount": (WORDCOUNT_LINES, WORDS_PER_LINE * 7),
    "pagerank": (PAGERANK_NODES, (1 + MAX_OUT_LINKS) / 2 * 2 * 8 + 8),
    "kmeans": (KMEANS_POINTS, KMEANS_DIMENSIONS * 8),
}


def input_bytes(kind: str, scale: float) -> int:
    """The input a sized job of ``kind`` works on at ``scale``: what it declares as its size
    (``spark.sparkscaler.inputBytes``), since it generates its data instead of reading files
    and so has no input metrics for sparkscaler to take the size from."""
    if kind not in _BYTES_PER_UNIT:
        raise ValueError(f"{kind!r} is not a sized job (one of {', '.join(_BYTES_PER_UNIT)})")
    units, per_unit = _BYTES_PER_UNIT[kind]
    return max(1, round(units * scale * per_unit))


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a number of ``kind`` above zero."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """One sub-command per kind; ``--name`` (the application's name) goes with every kind."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=None)
    parser = argparse.ArgumentParser(description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    backlog_args = kinds.add_parser("backlog", parents=[common], help=backlog.__doc__)
    backlog_args.add_argument("--tasks", type=int, default=24)
    backlog_args.add_argument("--task-seconds", type=float, default=3.0)
    backlog_args.add_argument("--cpu-share", type=float, default=0.2)
    for kind, job in SIZED_JOBS.items():
        sized = kinds.add_parser(kind, parents=[common], help=job.__doc__)
        sized.add_argument("--scale", type=_positive(float), default=1.0)
        sized.add_argument("--partitions", type=_positive(int), default=8)
    return parser.parse_args(argv)


def sized_job_settings(builder: SparkSession.Builder, partitions: int) -> SparkSession.Builder:
    """The settings a sized job's session runs with (the tests run the four in one session
    with these too).

    Shuffles get exactly ``partitions`` tasks: adaptive execution would otherwise merge these
    small shuffles into one or two partitions that added workers cannot share. Without a
    locality wait, a task whose cached input sits on a busy executor goes to an idle one at
    once: these tasks are shorter than the 3 s default wait, so every iteration would otherwise
    run on whichever executor cached the data first. The serial collector (the JVM's own choice
    on one core) keeps G1's parallel GC threads off the cores that the executors of several
    workers on one machine share."""
    return (
        builder.config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.default.parallelism", str(partitions))
        .config("spark.sql.adaptive.coalescePartitions.enabled", "false")
        .config("spark.locality.wait", "0s")
        .config("spark.executor.extraJavaOptions", "-XX:+UseSerialGC")
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(args.name or f"sparkscaler-{args.kind}")
    if args.kind in SIZED_JOBS:
        builder = sized_job_settings(builder, args.partitions)
    spark = builder.getOrCreate()
    try:
        if args.kind == "backlog":
            count = backlog(spark, args.tasks, args.task_seconds, args.cpu_share)
            summary = f"{count} tasks done"
        else:
            summary = SIZED_JOBS[args.kind](spark, args.scale, args.partitions)
        # One write, newline included: spark-submit runs the driver with PYTHONUNBUFFERED, where
        # print() writes the text and its newline apart, and a JVM log line written in between
        # (SparkContext stopping) would split the summary line that the tests and the demo read.
        sys.stdout.write(f"sparkscaler-job {args.kind}: {summary}\n")
        sys.stdout.flush()
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
