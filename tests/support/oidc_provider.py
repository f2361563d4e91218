"""A real OpenID Connect provider for tests: npm ``oidc-provider`` under Node, on 127.0.0.1.

``tests/support/oidc/provider.mjs`` configures it: one confidential client, test users with
passwords, its own login form (no scripts) and consent granted at once. ``start_provider``
runs ``npm ci --ignore-scripts`` there when ``node_modules`` is missing, starts the provider
on a free port, waits until its discovery document answers and returns a handle whose
``stop()`` ends it. The pytest fixture ``oidc_provider_factory`` wraps that (skipped where
Node or npm is missing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

OIDC_DIR = Path(__file__).parent / "oidc"
CLIENT_ID = "incamera-test"
CLIENT_SECRET = "test-client-secret-" + "x" * 24
USERS = {
    "alice": {
        "password": "alice-password-1",
        "name": "Alice Anders",
        "email": "alice@example.test",
    },
    "bob": {"password": "bob-password-1", "name": "Bob Berg", "email": "bob@example.test"},
}


@dataclass
class OidcProvider:
    issuer: str
    process: subprocess.Popen[str]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    users: dict[str, dict[str, str]] = field(default_factory=lambda: dict(USERS))

    def settings(self) -> dict[str, str]:
        """The ``[oidc]`` settings that point incamera at this provider."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "provider_name": "Test IdP",
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _ensure_installed() -> None:
    if (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=OIDC_DIR,
        check=True,
        capture_output=True,
        timeout=300,
    )


def start_provider(redirect_uris: list[str]) -> OidcProvider:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    _ensure_installed()
    config = {
        "port": 0,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
                # incamera's landing page, where signing out at the provider returns
                "post_logout_redirect_uris": sorted(
                    {f"{urlsplit(uri).scheme}://{urlsplit(uri).netloc}/" for uri in redirect_uris}
                ),
            }
        ],
        "users": USERS,
    }
    process = subprocess.Popen(
        [node, str(OIDC_DIR / "provider.mjs"), json.dumps(config)],
        cwd=OIDC_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "NODE_ENV": "test"},
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()  # "listening http://127.0.0.1:<port>"
    if not line.startswith("listening "):
        process.kill()
        process.wait()
        raise RuntimeError(f"the OIDC provider did not start: {line!r}")
    provider = OidcProvider(issuer=line.removeprefix("listening "), process=process)
    discovery = f"{provider.issuer}/.well-known/openid-configuration"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(discovery, timeout=2).status_code == 200:
                return provider
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            provider.stop()
            raise RuntimeError("the OIDC provider's discovery document never answered")
        time.sleep(0.05)


class ProviderFactory:
    """Starts providers (``start(redirect_uris)``) and stops them all at the end."""

    def __init__(self) -> None:
        self.started: list[OidcProvider] = []

    def start(self, redirect_uris: list[str]) -> OidcProvider:
        provider = start_provider(redirect_uris)
        self.started.append(provider)
        return provider

    def stop_all(self) -> None:
        for provider in self.started:
            provider.stop()


@pytest.fixture
def oidc_provider_factory() -> Iterator[ProviderFactory]:
    factory = ProviderFactory()
    try:
        yield factory
    finally:
        factory.stop_all()
