"""mls.js and the vendored ts-mls bundle in headless Chromium (its WebCrypto: Ed25519, X25519
through @hpke/core, AES-GCM): two members form a group, agree on the security code and the
SFrame epoch secret, and exchange an application message with an authenticated sender."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from incamera.bench.chromium import CHROMIUM_FLAGS, find_chromium
from support.browser import StaticServer

WEB = Path(__file__).resolve().parents[2] / "src" / "incamera" / "web"

SCRIPT = """async () => {
  const { MlsMember, toBase64Url } = await import('/e2ee/mls.js');
  const roster = new Map();
  const join = async (id, name) => {
    const member = await MlsMember.create({ id, name, roster: (who) => roster.get(who) });
    roster.set(id, { name, deviceKey: toBase64Url(member.deviceKey) });
    return member;
  };
  const alice = await join('p-a', 'Alice');
  const bob = await join('p-b', 'Bob');
  await alice.createGroup(crypto.getRandomValues(new Uint8Array(16)));
  const out = await alice.commit({ adds: [bob.keyPackageBytes] });
  await alice.confirmCommit();
  await bob.joinFromWelcome(out.welcome, out.ratchetTree);
  const message = await alice.encryptApplication(new TextEncoder().encode('hallo'));
  const got = await bob.decryptApplication(message);
  return {
    epochs: [alice.epoch, bob.epoch],
    codes: [alice.securityCode(), bob.securityCode()],
    secrets: [toBase64Url(await alice.exportSframeEpochSecret()),
              toBase64Url(await bob.exportSframeEpochSecret())],
    text: new TextDecoder().decode(got.data),
    sender: got.sender.id,
    valid: bob.members().map((m) => m.valid),
  };
}"""


@pytest.mark.browser
async def test_mls_js_runs_in_chromium() -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium binary")
    server = StaticServer(WEB)
    server.start()
    try:
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=list(CHROMIUM_FLAGS), headless=True
            )
            try:
                page = await browser.new_page()
                await page.goto(f"{server.base_url}/favicon.svg")
                result: dict[str, Any] = await page.evaluate(SCRIPT)
            finally:
                await browser.close()
    finally:
        server.stop()
    assert result["epochs"] == [1, 1]
    assert result["codes"][0] == result["codes"][1]
    assert len(result["codes"][0]) == 23
    assert result["secrets"][0] == result["secrets"][1]
    assert result["text"] == "hallo" and result["sender"] == "p-a"
    assert result["valid"] == [True, True]
