"""Finding each application's REST API on a cluster sparkscaler did not set up (no Spark):
the master's reverse proxy first, then the driver UI link on the master's app page, then the
UI port probe; the address is cached per application."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from sparkscaler.observe.app_discovery import AppLocator, detail_ui_url

APP = "app-20261129221831-0000"

#: The lines of Spark 4's ApplicationPage around the driver UI link, as the master wrote them.
APP_PAGE = """<li><strong>State:</strong> RUNNING</li>
            <li><strong>
                      <a href="{url}">Application Detail UI</a>
                  </strong></li>"""


def test_detail_ui_url_from_the_masters_app_page() -> None:
    page = APP_PAGE.format(url="http://127.0.0.7:4040")
    assert detail_ui_url(page, "http://m:8080") == "http://127.0.0.7:4040"
    proxied = APP_PAGE.format(url="http://m:8080/proxy/app-1/")
    assert detail_ui_url(proxied, "http://m:8080") == "http://m:8080/proxy/app-1"
    assert detail_ui_url(APP_PAGE.format(url="/proxy/app-1"), "http://m:8080") == (
        "http://m:8080/proxy/app-1"
    )
    assert detail_ui_url("<html>no link</html>", "http://m:8080") is None
    assert detail_ui_url(APP_PAGE.format(url=""), "http://m:8080") is None


Route = Callable[[str], tuple[int, str, str]]


@pytest.fixture
def serve() -> Iterator[Callable[[Route], tuple[int, list[str]]]]:
    """Start HTTP servers that answer with ``route(path) -> (status, content type, body)``;
    each returns its port and the list of paths it was asked for."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(route: Route) -> tuple[int, list[str]]:
        asked: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked.append(self.path)
                status, kind, body = route(self.path)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return server.server_address[1], asked

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _json(body: object) -> tuple[int, str, str]:
    return 200, "application/json", json.dumps(body)


MASTER_HTML = (200, "text/html", "<!DOCTYPE html><html>Spark Master</html>")


def _driver(app_id: str = APP) -> Route:
    def route(path: str) -> tuple[int, str, str]:
        if path == f"/api/v1/applications/{app_id}":
            return _json({"id": app_id, "name": "job"})
        if path == "/api/v1/applications":
            return _json([{"id": app_id, "name": "job"}])
        return 404, "text/plain", "not found"

    return route


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as client:
        yield client


def _locator(http: httpx.Client, master: int, ports: list[int], clock: list[float]) -> AppLocator:
    return AppLocator(
        http, f"http://127.0.0.1:{master}", "127.0.0.1", ports, 1.0, monotonic=lambda: clock[0]
    )


def test_the_masters_reverse_proxy_comes_first(serve, http) -> None:
    def master(path: str) -> tuple[int, str, str]:
        if path == f"/proxy/{APP}/api/v1/applications/{APP}":
            return _json({"id": APP})
        return MASTER_HTML

    port, asked = serve(master)
    locator = _locator(http, port, [], [0.0])
    assert locator.base(APP) == f"http://127.0.0.1:{port}/proxy/{APP}/api/v1"
    assert locator.base(APP) == f"http://127.0.0.1:{port}/proxy/{APP}/api/v1"
    assert asked == [f"/proxy/{APP}/api/v1/applications/{APP}"]  # cached after the first


def test_without_a_proxy_the_driver_ui_link_on_the_masters_app_page(serve, http) -> None:
    driver, driver_asked = serve(_driver())

    def master(path: str) -> tuple[int, str, str]:
        if path == f"/app/?appId={APP}":
            return 200, "text/html", APP_PAGE.format(url=f"http://127.0.0.1:{driver}")
        return MASTER_HTML  # what a master without the proxy answers for /proxy/...

    port, asked = serve(master)
    # No probe port would find it: the driver is not on a probed port.
    locator = _locator(http, port, [], [0.0])
    assert locator.base(APP) == f"http://127.0.0.1:{driver}/api/v1"
    assert asked == [f"/proxy/{APP}/api/v1/applications/{APP}", f"/app/?appId={APP}"]
    assert driver_asked == [f"/api/v1/applications/{APP}"]


def test_the_port_probe_last_and_again_only_after_reprobe_s(serve, http) -> None:
    driver, _ = serve(_driver())
    port, _ = serve(lambda path: MASTER_HTML)  # no proxy, and an app page with no link
    clock = [0.0]
    locator = _locator(http, port, [driver], clock)
    assert locator.base(APP) == f"http://127.0.0.1:{driver}/api/v1"
    assert locator.base("app-unknown") is None
    clock[0] += 0.5
    assert locator.base("app-unknown") is None  # not looked for again yet


def test_a_forgotten_address_is_found_afresh_and_gone_apps_are_dropped(serve, http) -> None:
    first, _ = serve(_driver())
    second, _ = serve(_driver())
    port, _ = serve(lambda path: MASTER_HTML)
    clock = [0.0]
    locator = _locator(http, port, [first], clock)
    assert locator.base(APP) == f"http://127.0.0.1:{first}/api/v1"
    locator.probe_ports = [second]  # the driver came back elsewhere
    locator.forget(APP)
    assert locator.base(APP) is None  # the ports were probed less than reprobe_s ago
    clock[0] += 1.0
    assert locator.base(APP) == f"http://127.0.0.1:{second}/api/v1"
    locator.retain([])
    assert locator._urls == {} and locator._looked == {} and locator._probed == {}


def test_nothing_answers(http) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    locator = _locator(http, port, [port], [0.0])
    assert locator.base(APP) is None


def test_a_slow_failed_look_is_not_repeated_sooner_than_it_took(serve, http) -> None:
    clock = [0.0]

    def slow_master(path: str) -> tuple[int, str, str]:
        clock[0] += 2.5  # each answer takes 2.5 s: a driver still starting behind the proxy
        return MASTER_HTML

    port, asked = serve(slow_master)
    locator = _locator(http, port, [], clock)
    assert locator.base(APP) is None
    assert (clock[0], len(asked)) == (5.0, 2)  # the proxy, then the app page
    clock[0] = 9.9
    assert locator.base(APP) is None and len(asked) == 2  # not before 5 + 5 s
    clock[0] = 10.0
    assert locator.base(APP) is None and len(asked) == 4


def test_a_driver_link_to_the_proxy_is_not_tried_twice(serve, http) -> None:
    def master(path: str) -> tuple[int, str, str]:
        if path.startswith("/app/"):
            return 200, "text/html", APP_PAGE.format(url=f"http://127.0.0.1:{port}/proxy/{APP}")
        return MASTER_HTML  # the proxy does not answer for this app (yet)

    port, asked = serve(master)
    assert _locator(http, port, [], [0.0]).base(APP) is None
    assert asked == [f"/proxy/{APP}/api/v1/applications/{APP}", f"/app/?appId={APP}"]
