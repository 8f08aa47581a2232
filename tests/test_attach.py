"""Attach: observe a cluster that sparkscaler did not start, from ``cluster.master_url`` alone.

A master and a worker are started here by hand through ``spark-class`` (as someone else's
cluster would be), and an application whose driver binds another address (127.0.0.7), so that
probing UI ports on the master's host cannot find it. The observer built from a config naming
only the master must still see the workers, the app's tasks, and the CPU and network features
from Spark's own metrics. Every JVM is stopped by its process group in the end.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from sparkscaler.backends.local import spark_home
from sparkscaler.clock import WallClock
from sparkscaler.config import Config
from sparkscaler.core import Observation
from sparkscaler.observe.observer import SparkObserver
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable
from sparkscaler.observe.spark_metrics import SparkMetricsSampler
from sparkscaler.store import Store
from tests.conftest import (
    assert_all_stopped,
    free_port,
    spark_jvms,
    spawn_spark,
    stop_group,
    wait_for,
)
from tests.test_observation_contract import DEADLINE_S, JOB

pytestmark = [pytest.mark.spark, pytest.mark.isolated]

DRIVER_HOST = "127.0.0.7"
TASKS, TASK_S = 6, 2.0


@pytest.fixture(params=["driver link", "reverse proxy"])
def someone_elses_cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, int, bool]]:
    """(master URL, master UI port, whether it proxies) of a master and one worker started by
    hand; with ``reverse proxy`` the master proxies every application's UI."""
    port, ui_port = free_port(), free_port()
    conf = tmp_path / "master.conf"
    proxy = request.param == "reverse proxy"
    conf.write_text(
        f"spark.ui.reverseProxy {str(proxy).lower()}\n"
        + (f"spark.ui.reverseProxyUrl http://127.0.0.1:{ui_port}\n" if proxy else "")
    )
    spark_class = str(spark_home() / "bin" / "spark-class")
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(
            spawn_spark(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    *("--host", "127.0.0.1", "--port", str(port)),
                    *("--webui-port", str(ui_port), "--properties-file", str(conf)),
                ],
                tmp_path / "master.log",
                "127.0.0.1",
            )
        )
        master = MasterClient(f"http://127.0.0.1:{ui_port}")
        try:

            def answers() -> bool:
                with contextlib.suppress(MasterUnavailable):
                    return master.fetch().get("status") == "ALIVE"
                return False

            wait_for(answers, 90, "the hand-started master")
            started.append(
                spawn_spark(
                    [
                        spark_class,
                        "org.apache.spark.deploy.worker.Worker",
                        *("--webui-port", str(free_port()), "--cores", "1", "--memory", "1g"),
                        f"spark://127.0.0.1:{port}",
                    ],
                    tmp_path / "worker.log",
                    "127.0.0.1",
                )
            )
            wait_for(lambda: len(master.fetch()["workers"]) == 1, 90, "the hand-started worker")
        finally:
            master.close()
        yield f"spark://127.0.0.1:{port}", ui_port, proxy
    finally:
        for proc in reversed(started):
            stop_group(proc, 20)
        assert_all_stopped([p.pid for p in started])
        assert not spark_jvms(port)


def test_observer_from_master_url_alone_sees_workers_tasks_and_features(
    someone_elses_cluster: tuple[str, int, bool], tmp_path: Path
) -> None:
    master_url, ui_port, proxied = someone_elses_cluster
    config = Config.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "cluster": {"master_url": master_url, "master_ui_port": ui_port},
        }
    )
    assert config.cluster.attach
    observer = SparkObserver.from_config(config, WallClock())
    assert isinstance(observer.host, SparkMetricsSampler)  # no local pids: Spark's metrics

    size = 2_000_000
    (tmp_path / "input.txt").write_text(("x" * 99 + "\n") * (size // 100))
    script = tmp_path / "job.py"
    script.write_text(JOB)
    args = [master_url, str(tmp_path / "input.txt"), str(size), f"{DEADLINE_S:g}"]
    args += [str(TASK_S), str(TASKS), str(free_port())]
    driver = spawn_spark([sys.executable, str(script), *args], tmp_path / "job.log", DRIVER_HOST)
    seen: list[Observation] = []
    bases: set[str] = set()
    cli: subprocess.CompletedProcess[str] | None = None
    try:
        deadline = time.monotonic() + 120
        while driver.poll() is None and time.monotonic() < deadline:
            seen.append(observer.observe())
            bases |= set(observer.apps.locator._urls.values())
            if cli is None and seen[-1].pending_tasks and not seen[-1].errors:
                cli = _run_once(config, tmp_path / "cfg.yaml")
            time.sleep(1.0)
        assert driver.wait(timeout=30) == 0, (tmp_path / "job.log").read_text()[-2000:]
    finally:
        observer.close()
        stop_group(driver, 20)
        assert_all_stopped([driver.pid])

    assert seen and not any(o.stale for o in seen)
    assert all(o.workers == 1 and o.cluster.cores_total == 1 for o in seen)
    loaded = [o for o in seen if o.cluster.active_apps and not o.errors]
    assert loaded, [o.errors for o in seen]
    # One core; Spark's status store may list a task that ended next to its successor.
    assert 1 <= max(o.running_tasks for o in loaded) <= 2
    assert max(o.pending_tasks for o in loaded) >= TASKS - 2
    assert all(o.input_bytes == size and o.deadline_s == DEADLINE_S for o in loaded)
    assert max(o.input_read_bytes or 0 for o in loaded) > 0
    assert all(0 <= f <= 100 for o in seen for f in o.features.as_tuple())
    assert any(o.features.cu > 0 for o in loaded)  # the task threads' CPU
    assert any(o.features.bi > 0 for o in loaded)  # the input read
    # Found where the cluster offers it: through the master's proxy, or at the driver's own
    # address (which no port probe on the master's host would have found).
    expected = f"http://127.0.0.1:{ui_port}/proxy/" if proxied else f"http://{DRIVER_HOST}:"
    assert bases and all(b.startswith(expected) for b in bases), bases

    # ``sparkscaler run --dry-run --once`` on the same cluster, from the same config file.
    assert cli is not None and cli.returncode == 0, cli and cli.stdout + cli.stderr
    with Store(config.store_path) as store:
        (row,) = store.observations()
    assert (row["workers"], row["input_bytes"], row["deadline_s"]) == (1, size, DEADLINE_S)
    assert row["running_tasks"] + row["pending_tasks"] > 0 and row["errors"] == "[]"
    assert "(dry run)" in cli.stdout


def _run_once(config: Config, path: Path) -> subprocess.CompletedProcess[str]:
    """``sparkscaler run --dry-run --once -c <path>`` with ``config`` written to ``path``."""
    data = {
        "state_dir": str(config.state_dir),
        "cluster": {
            "master_url": config.cluster.master_url,
            "master_ui_port": config.cluster.master_ui_port,
        },
    }
    path.write_text(yaml.safe_dump(data))
    return subprocess.run(
        [sys.executable, "-m", "sparkscaler", "run", "--dry-run", "--once", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


def test_serve_in_recommend_mode_watches_an_attached_cluster_and_never_acts(
    someone_elses_cluster: tuple[str, int, bool], tmp_path: Path
) -> None:
    """`serve --mode recommend` with only master_url configured: decides and records on a
    cluster it did not start, changes nothing, and leaves it running when it stops."""
    master_url, ui_port, _ = someone_elses_cluster
    port = free_port()
    path = tmp_path / "cfg.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "cluster": {"master_url": master_url, "master_ui_port": ui_port},
                "service": {"port": port},
            }
        )
    )
    command = [sys.executable, "-m", "sparkscaler", "serve", "--mode", "recommend", "-c", str(path)]
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    status: dict = {}
    try:

        def decided() -> bool:
            nonlocal status
            with contextlib.suppress(httpx.HTTPError):
                status = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()
            return bool(status.get("last_decision"))

        wait_for(decided, 90, "a decision of serve --mode recommend")
    finally:
        serve.send_signal(signal.SIGINT)
        code = serve.wait(timeout=60)
    assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]
    assert status["mode"] == "recommend"
    assert [w["state"] for w in status["workers"]] == ["ALIVE"]
    assert status["last_decision"]["dry_run"] and status["unreachable_hosts"] == {}
    master = MasterClient(f"http://127.0.0.1:{ui_port}")
    try:  # serve stopped nothing it did not start
        view = master.fetch()
    finally:
        master.close()
    assert view["status"] == "ALIVE"
    assert [w["state"] for w in view["workers"]] == ["ALIVE"]
