"""Where each running application's REST API (``.../api/v1``) is, on a cluster we did not set up.

The standalone master's ``/json/`` lists the running applications but not where their drivers
are (Spark 4's ``JsonProtocol.writeApplicationInfo`` writes id, name, cores, user, memory,
submit date, state and duration, and no UI address), and a driver may run on any host: a
client-mode driver on a laptop, a cluster-mode driver on one of the workers. Three ways to find
it, tried in this order for each application id the master lists:

1. **The master's reverse proxy.** With ``spark.ui.reverseProxy=true`` on the master, it serves
   every application's UI, REST API included, at ``<master UI>/proxy/<app id>/api/v1``: the one
   address that reaches every driver through the one port we already talk to. Without it the
   master answers that path with its own HTML page (HTTP 200), so an answer counts only when it
   is JSON naming the application.
2. **The driver UI address the master knows.** The master's application page
   (``/app/?appId=<id>``, ``ApplicationPage.scala``) links to the driver's UI as
   "Application Detail UI" (``ApplicationInfo.desc.appUiUrl``, the driver's
   ``spark.driver.host`` and UI port; the proxy address when the proxy is on). It is HTML, but
   the one place the master gives the address out.
3. **Probing UI ports on one host** (``cluster.app_ui_ports`` on the master's host): what a
   local cluster needs when a driver's UI address is not reachable as the master states it.
   All ports are asked at once, at most every ``reprobe_s``.

An address found is cached per application id and kept until a request to it fails; an
application not found is looked for again after ``reprobe_s``, or after as long as the failed
look took if that was longer (a starting driver can leave each request to its timeout).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin

import httpx

#: The driver UI link on the master's application page, as ``ApplicationPage.scala`` writes it.
_DETAIL_UI = re.compile(r'<a\s+href="([^"]+)"\s*>\s*Application Detail UI\s*</a>')


def detail_ui_url(page: str, master_ui_url: str) -> str | None:
    """The driver UI address on the master's application page, or None when it has none (a
    driver with its UI turned off); relative links are taken relative to the master's UI."""
    match = _DETAIL_UI.search(page)
    if match is None:
        return None
    url = html.unescape(match.group(1)).strip()
    return urljoin(master_ui_url + "/", url).rstrip("/") if url else None


class AppLocator:
    """Finds and caches the REST base URL (``.../api/v1``) of each running application."""

    def __init__(
        self,
        http: httpx.Client,
        master_ui_url: str,
        probe_host: str,
        probe_ports: Iterable[int],
        reprobe_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.master_ui_url = master_ui_url.rstrip("/")
        self.probe_host = probe_host
        self.probe_ports = list(probe_ports)
        self.reprobe_s = reprobe_s
        self._monotonic = monotonic
        self._urls: dict[str, str] = {}
        self._looked: dict[str, float] = {}
        self._probed: dict[str, str] = {}
        self._last_probe = float("-inf")

    def base(self, app_id: str) -> str | None:
        """The app's ``.../api/v1`` base URL, or None when none of the three ways finds it."""
        if app_id in self._urls:
            return self._urls[app_id]
        started = self._monotonic()
        if started < self._looked.get(app_id, float("-inf")):
            return None
        found = self._via_proxy(app_id) or self._via_master_page(app_id) or self._via_probe(app_id)
        if found is not None:
            self._urls[app_id] = found
            self._looked.pop(app_id, None)
        else:
            # A driver that is still starting can leave every request to its timeout: look
            # again no sooner than the look took, so that looking never takes most of the time.
            ended = self._monotonic()
            self._looked[app_id] = ended + max(self.reprobe_s, ended - started)
        return found

    def forget(self, app_id: str) -> None:
        """The cached address stopped answering: find the app afresh next time."""
        self._urls.pop(app_id, None)
        self._probed.pop(app_id, None)

    def retain(self, app_ids: Iterable[str]) -> None:
        """Drop what is known of applications that are no longer running."""
        keep = set(app_ids)
        for cache in (self._urls, self._looked, self._probed):
            for key in [k for k in cache if k not in keep]:
                del cache[key]

    def _json(self, url: str) -> Any:
        """A JSON answer, or None for an error, a refusal or a page that is not JSON."""
        try:
            response = self.http.get(url)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError):
            return None

    def _serves(self, base: str, app_id: str) -> bool:
        info = self._json(f"{base}/applications/{app_id}")
        return isinstance(info, dict) and info.get("id") == app_id

    def _proxy_base(self, app_id: str) -> str:
        return f"{self.master_ui_url}/proxy/{app_id}/api/v1"

    def _via_proxy(self, app_id: str) -> str | None:
        base = self._proxy_base(app_id)
        return base if self._serves(base, app_id) else None

    def _via_master_page(self, app_id: str) -> str | None:
        try:
            response = self.http.get(f"{self.master_ui_url}/app/", params={"appId": app_id})
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        ui = detail_ui_url(response.text, self.master_ui_url)
        if ui is None:
            return None
        base = f"{ui}/api/v1"
        if base == self._proxy_base(app_id):
            return None  # the proxy's address, just tried
        return base if self._serves(base, app_id) else None

    def _via_probe(self, app_id: str) -> str | None:
        """Ask every candidate UI port, all at once, which applications it serves.

        At once, because a driver that is still starting can take seconds to answer, and a new
        application's backlog is exactly what the autoscaler must not see late.
        """
        if app_id not in self._probed and self._monotonic() - self._last_probe >= self.reprobe_s:
            self._last_probe = self._monotonic()

            def ask(port: int) -> tuple[str, Any]:
                base = f"http://{self.probe_host}:{port}/api/v1"
                return base, self._json(f"{base}/applications")

            found: dict[str, str] = {}
            with ThreadPoolExecutor(max_workers=len(self.probe_ports) or 1) as pool:
                for base, apps in pool.map(ask, self.probe_ports):
                    for app in apps if isinstance(apps, list) else []:
                        if isinstance(app, dict) and "id" in app:
                            found[app["id"]] = base
            self._probed = found
        return self._probed.get(app_id)
