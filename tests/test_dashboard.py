"""The dashboard in a real browser, against `sparkscaler serve` on a real local Spark cluster.

`serve` runs as a subprocess with a YAML config, as a user runs it: it starts a master and one
worker (policy dra, mode auto). Through the page only, the test switches to manual mode (the
token is typed into the page's dialog) and scales to 2 workers, then waits for the workers
chart to show them. A screenshot of the whole page goes to test-artifacts/dashboard.png.
SIGTERM then stops the service, which must leave none of its processes, JVMs included.

The browser is Debian's chromium (Playwright's own browsers are not downloaded); without it,
or without Java, the test is skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from sparkscaler.backends.local import LocalCluster
from sparkscaler.config import Config
from tests.conftest import assert_all_stopped, free_port, wait_for

pytestmark = [pytest.mark.spark, pytest.mark.browser, pytest.mark.timeout(240)]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TOKEN = "dashboard-test-token"


def _observed(url: str) -> bool:
    """The service answers and its loop has observed the cluster at least once."""
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/api/status", timeout=2).json()["observed_at"] is not None
    return False


def _started_pids(proc: subprocess.Popen[bytes], cfg: Config) -> set[int]:
    """The service, everything under it, and every daemon its cluster's state file names (the
    JVMs detach from the service's process tree)."""
    pids = {proc.pid}
    with contextlib.suppress(psutil.Error):
        pids |= {child.pid for child in psutil.Process(proc.pid).children(recursive=True)}
    with contextlib.suppress(Exception):  # no state file yet, or one being rewritten
        pids |= set(LocalCluster(cfg.cluster, cfg.state_dir).pids)
    return pids


def test_dashboard_switches_to_manual_and_scales_a_real_cluster(
    spark_config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = spark_config.model_dump(mode="json", exclude_none=True)
    settings["service"] = {"host": "127.0.0.1", "port": port, "token": TOKEN}
    assert settings["policy"]["name"] == "dra" and settings["scaling"]["min_workers"] == 1
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    log_file = tmp_path / "serve.log"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "dashboard.png"

    pids: set[int] = set()
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sparkscaler", "serve", "--config", str(config_file)],
            env={**os.environ, "SPARKSCALER_HOME": str(tmp_path / "home")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: proc.poll() is not None or _observed(url),
            120,
            "the service to start its cluster",
        )
        assert proc.poll() is None, log_file.read_text()
        pids |= _started_pids(proc, spark_config)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(url)
                chart = page.locator("#workers-chart")
                expect(page.locator("#status-mode")).to_have_text("auto")
                expect(page.locator("#status-policy")).to_have_text("dra")
                page.wait_for_function(
                    "() => { const c = document.getElementById('workers-chart');"
                    " return Number(c.dataset.points) > 0 && c.dataset.lastWorkers === '1'; }",
                    timeout=30_000,
                )
                expect(page.locator("#forecast-note")).to_contain_text("Hidden")
                expect(page.locator("#scale-apply")).to_be_disabled()

                # Manual mode: the first change asks for the token in the page's dialog.
                page.select_option("#mode-select", "manual")
                page.click("#mode-apply")
                expect(page.locator("#token-dialog")).to_be_visible()
                page.fill("#token-input", TOKEN)
                page.click("#token-submit")
                expect(page.locator("#token-dialog")).to_be_hidden()
                expect(page.locator("#mode-message")).to_have_class("msg ok")
                expect(page.locator("#status-mode")).to_have_text("manual")

                # Scale to 2 with the page's control (no second token prompt).
                expect(page.locator("#scale-apply")).to_be_enabled()
                page.fill("#scale-input", "2")
                page.click("#scale-apply")
                expect(page.locator("#scale-message")).to_have_class("msg ok", timeout=60_000)
                expect(page.locator("#token-dialog")).to_be_hidden()
                expect(chart).to_have_attribute("data-last-workers", "2", timeout=60_000)
                pids |= _started_pids(proc, spark_config)
                expect(page.locator("#status-mode")).to_have_text("manual")
                expect(page.locator("#status-workers")).to_have_text("2")
                expect(page.locator("#decision-log")).to_contain_text("set to 2 by hand")
                page.screenshot(path=str(screenshot), full_page=True)
            except BaseException:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(ARTIFACTS / "dashboard-failed.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        pids |= _started_pids(proc, spark_config) if proc.poll() is None else set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                LocalCluster(spark_config.cluster, spark_config.state_dir).stop()

    output = log_file.read_text()
    assert proc.returncode in (0, 130), output
    assert "Traceback" not in output, output
    assert len(pids) >= 4, f"expected the service, a master and two workers: {sorted(pids)}"
    assert_all_stopped(sorted(pids))
    assert not any(
        "org.apache.spark.deploy" in " ".join(p.info["cmdline"] or [])
        and str(spark_config.cluster.master_port) in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
    )
    kept = tmp_path / screenshot.name
    shutil.copyfile(screenshot, kept)
    with capsys.disabled():
        print(f"\ndashboard screenshot: {screenshot} (pytest artifact: {kept})")
