"""Headless Chromium as the benchmarks and tests start it (Debian's package).

The flag set was measured to work for WebRTC on loopback (fake camera and microphone
without prompts, loopback ICE candidates) with no background traffic to Google's
services. ``/usr/bin/chromium`` is a wrapper that adds flags of its own, so the binary
behind it is preferred.
"""

from __future__ import annotations

import os
import shutil

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
)


def find_chromium() -> str | None:
    """The path of a Chromium binary, preferring the unwrapped Debian binary; None if
    there is none."""
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")
