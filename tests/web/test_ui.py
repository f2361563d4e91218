"""The meeting page's own behaviour in headless Chromium: grid geometry, languages,
pre-join, keyboard use, phone width, speaker view, and recovery from a dropped connection.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .conftest import MeetingPage, MeetingServer, poll

pytestmark = pytest.mark.browser

OpenPage = Callable[..., Awaitable[MeetingPage]]


async def test_grid_geometry(meeting_server: MeetingServer, open_page: OpenPage) -> None:
    page = await open_page(f"{meeting_server.origin}/", "layout")
    result: dict[str, Any] = await page.evaluate(
        """async () => {
            const L = await import("/layout.js");
            const cols = (n, w, h) => L.gridShape(n, w, h).cols;
            return {
                wide: [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => cols(n, 1280, 620)),
                tall: [1, 2, 3, 4].map((n) => cols(n, 390, 700)),
                size: L.gridShape(2, 1280, 620),
                pageDesktop: L.pageSize(1280, 620),
                pagePhone: L.pageSize(390, 700),
                paged: L.paginate([1, 2, 3, 4, 5, 6, 7], 3, 5),
                order: L.orderTiles(
                    [{id: "a"}, {id: "me"}, {id: "b"}, {id: "c", hand: true}, {id: "d"}],
                    "me", ["d", "b"]).map((t) => t.id),
                hidden: L.layerSize(300, 200, 2, false),
                layer: L.layerSize(320.4, 180.2, 2, true),
            };
        }"""
    )
    assert result["wide"] == [1, 2, 2, 2, 3, 3, 3, 3, 3]
    assert result["tall"] == [1, 1, 1, 1]  # full-width tiles stacked beat two columns
    size = result["size"]
    assert size["tileWidth"] * 2 + 8 <= 1280 and size["tileHeight"] <= 620
    assert abs(size["tileWidth"] / size["tileHeight"] - 16 / 9) < 0.02
    assert 9 <= result["pageDesktop"] <= 16
    assert 1 <= result["pagePhone"] < result["pageDesktop"]
    assert result["paged"] == {"pages": 3, "page": 2, "items": [7]}
    assert result["order"] == ["me", "c", "d", "b", "a"]
    assert result["hidden"] == {"width": 0, "height": 0}
    assert result["layer"] == {"width": 641, "height": 360}


async def test_languages(meeting_server: MeetingServer, open_page: OpenPage) -> None:
    meeting = await meeting_server.create_meeting()
    url = meeting_server.meeting_url(meeting)
    page = await open_page(url, "de", locale="de-DE")
    heading = page.page.locator("#prejoin-heading")
    await heading.wait_for(state="visible")
    assert await heading.text_content() == "Bereit zum Beitreten?"
    assert await page.evaluate("document.documentElement.lang") == "de"
    # Both dictionaries have the same keys and no empty text.
    keys = await page.evaluate(
        """async () => {
            const {dictionaries} = await import("/i18n.js");
            const d = dictionaries();
            const missing = (a, b) => Object.keys(d[a]).filter((k) => !(k in d[b]));
            const empty = Object.values(d).flatMap((x) => Object.entries(x))
                .filter(([, v]) => !v.trim()).map(([k]) => k);
            return {deOnly: missing("de", "en"), enOnly: missing("en", "de"), empty};
        }"""
    )
    assert keys == {"deOnly": [], "enOnly": [], "empty": []}
    # The switch changes the language at once and is remembered.
    await page.page.select_option("#lang-select", "en")
    assert await heading.text_content() == "Ready to join?"
    await page.page.reload()
    await heading.wait_for(state="visible")
    assert await heading.text_content() == "Ready to join?"


async def test_prejoin_preview_and_join(meeting_server: MeetingServer, open_page: OpenPage) -> None:
    meeting = await meeting_server.create_meeting()
    page = await open_page(meeting_server.meeting_url(meeting), "prejoin")
    p = page.page
    await p.locator("#prejoin").wait_for(state="visible")
    # The camera preview plays and the fake devices are listed.
    await poll(
        lambda: page.evaluate("document.getElementById('preview').videoWidth"),
        lambda width: width > 0,
        what="camera preview",
    )
    assert await p.locator("#camera-select option").count() >= 1
    assert await p.locator("#mic-select option").count() >= 1
    # A name is required.
    await p.get_by_role("button", name="Join meeting").click()
    assert await p.locator("#prejoin-error").text_content() == "Please enter your name."
    # Camera off in the preview: the preview shows the avatar, and the meeting starts with
    # the camera off.
    await p.get_by_role("button", name="Turn camera off (V)").click()
    assert await p.locator("#preview-off").is_visible()
    await p.get_by_label("Your name").fill("Katherine")
    await p.keyboard.press("Enter")
    state = await page.wait_joined()
    assert state["self"]["name"] == "Katherine"
    assert await p.locator("#btn-cam").get_attribute("aria-pressed") == "true"
    # The name is remembered for next time.
    assert await page.evaluate("localStorage.getItem('incamera.name')") == "Katherine"


async def test_unknown_meeting(meeting_server: MeetingServer, open_page: OpenPage) -> None:
    url = meeting_server.meeting_url("A" * 22, "Nobody")
    page = await open_page(url, "lost")
    text = page.page.locator("#check-text")
    await poll(
        text.text_content,
        lambda value: value == "This meeting does not exist. Please check the link.",
        what="not-found message",
    )


async def test_keyboard_and_speaker_view(
    meeting_server: MeetingServer, open_page: OpenPage
) -> None:
    meeting = await meeting_server.create_meeting()
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada"), "Ada")
    bob = await open_page(meeting_server.meeting_url(meeting, "Bob"), "Bob")
    await ada.wait_joined()
    await bob.wait_joined()
    await ada.wait_stats(lambda s: "Bob" in s and s["Bob"]["videoFramesDecoded"] > 0, "video")
    p = ada.page
    # Every control is a labelled button reachable with Tab.
    labels = await page_labels(ada)
    assert all(labels.values()), labels
    focused = set()
    for _ in range(30):
        await p.keyboard.press("Tab")
        focused.add(await ada.evaluate("document.activeElement.id"))
    assert {"btn-mic", "btn-cam", "btn-share", "btn-hand", "btn-chat", "btn-leave"} <= focused
    await ada.evaluate("document.activeElement.blur()")
    # Shortcuts toggle; the state shows in aria-pressed and the label.
    for key, button in (("m", "btn-mic"), ("v", "btn-cam"), ("h", "btn-hand")):
        for pressed in ("true", "false"):
            await p.keyboard.press(key)
            await poll(
                lambda b=button: p.locator(f"#{b}").get_attribute("aria-pressed"),
                lambda value, want=pressed: value == want,
                what=f"{button} aria-pressed={pressed}",
            )
    assert await p.locator("#btn-mic").get_attribute("aria-label") == "Mute microphone (M)"
    # Panels: P opens the participant list, Escape closes it and gives focus back.
    await p.keyboard.press("p")
    await poll(p.locator("#people-panel").is_visible, bool, what="participant panel shown")
    await poll(p.locator("#people-list li").count, lambda n: n == 2, what="two people listed")
    await p.keyboard.press("Escape")
    await poll(p.locator("#people-panel").is_hidden, bool, what="participant panel hidden")
    assert await ada.evaluate("document.activeElement.id") == "btn-people"
    # Speaker view: Bob (the only other) goes on the stage, Ada in the strip.
    await p.keyboard.press("g")
    stage = await poll(
        lambda: ada.evaluate(
            "Array.from(document.querySelectorAll('#stage .tile'), (t) => ({...t.dataset}))"
        ),
        lambda tiles: [tile["local"] for tile in tiles] == ["false"],
        what="Bob alone on the stage",
    )
    assert [tile["local"] for tile in stage] == ["false"], (stage, await ada.state())
    # The stage tile asks for a bigger layer than a strip tile would.
    await ada.wait_stats(lambda s: s["Bob"]["videoWidth"] >= 640, "Bob's larger layer on the stage")
    await p.keyboard.press("g")
    await poll(
        lambda: ada.evaluate("document.getElementById('stage').hidden"),
        bool,
        what="stage hidden again",
    )


async def page_labels(page: MeetingPage) -> dict[str, str]:
    labels: dict[str, str] = await page.evaluate(
        """() => Object.fromEntries(Array.from(
            document.querySelectorAll('.toolbar button'),
            (b) => [b.id, b.getAttribute('aria-label') || '']))"""
    )
    return labels


async def test_phone_width(meeting_server: MeetingServer, open_page: OpenPage) -> None:
    meeting = await meeting_server.create_meeting()
    phone = await open_page(
        meeting_server.meeting_url(meeting, "Phone"), "Phone", viewport=(390, 844)
    )
    desk = await open_page(meeting_server.meeting_url(meeting, "Desk"), "Desk")
    await phone.wait_joined()
    await desk.wait_joined()
    await phone.wait_stats(lambda s: "Desk" in s and s["Desk"]["videoFramesDecoded"] > 0, "video")
    geometry = await phone.evaluate(
        """() => ({
            overflow: document.documentElement.scrollWidth,
            buttons: Array.from(document.querySelectorAll('.toolbar button'))
                .filter((b) => b.offsetParent !== null)
                .map((b) => { const r = b.getBoundingClientRect();
                              return [b.id, r.left, r.right, r.width, r.bottom]; }),
            tiles: Array.from(document.querySelectorAll('#grid .tile'))
                .map((t) => [t.clientWidth, t.getBoundingClientRect().right]),
        })"""
    )
    assert geometry["overflow"] <= 390
    assert len(geometry["buttons"]) >= 8
    for button_id, left, right, width, bottom in geometry["buttons"]:
        assert left >= 0 and right <= 390 and bottom <= 844, button_id
        assert width >= 40, button_id  # a comfortable touch target
    assert len(geometry["tiles"]) == 2
    for width, right in geometry["tiles"]:
        assert width >= 300 and right <= 390  # one column, nearly full width
    # The chat panel covers the screen on a phone, with its input usable.
    await phone.page.get_by_role("button", name="Chat (C)").click()
    box = await phone.page.locator("#chat-panel").bounding_box()
    assert box is not None and box["width"] >= 380
    assert await phone.page.locator("#chat-input").is_visible()


async def test_reconnect_after_dropped_connection(
    meeting_server: MeetingServer, open_page: OpenPage
) -> None:
    meeting = await meeting_server.create_meeting()
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada"), "Ada")
    bob = await open_page(meeting_server.meeting_url(meeting, "Bob"), "Bob")
    await ada.wait_joined()
    await bob.wait_joined()
    await bob.wait_stats(lambda s: "Ada" in s and s["Ada"]["videoFramesDecoded"] > 0, "video")
    ada_id = (await ada.state())["self"]["id"]

    # Bob's page records every "reconnecting" state its tiles show, however brief.
    await bob.evaluate(
        """() => {
            window.__reconnecting = [];
            new MutationObserver((records) => {
                for (const r of records) window.__reconnecting.push(r.target.dataset.reconnecting);
            }).observe(document.getElementById("videos"), {
                subtree: true, attributes: true, attributeFilter: ["data-reconnecting"],
            });
        }"""
    )
    # Ada's network goes away: her WebSocket drops and new ones are refused (Playwright
    # routes them) until it is back. Bob sees her as reconnecting.
    network = {"up": False}

    async def route(ws: Any) -> None:
        if network["up"]:
            ws.connect_to_server()
        else:
            await ws.close(code=4000, reason="network down")

    await ada.context.route_web_socket(re.compile(r".*/ws$"), route)
    await ada.evaluate("window.incamera.dropConnection()")
    await poll(
        lambda: bob.evaluate("window.__reconnecting"),
        lambda seen: "true" in seen,
        what="Bob sees Ada reconnecting",
    )
    assert await ada.page.locator("#banner").is_visible()

    # The network is back: the same participant resumes (same id), and media flows again.
    network["up"] = True
    state = await poll(ada.state, lambda s: s["signalling"] == "open", what="Ada's session resumed")
    assert state["self"]["id"] == ada_id
    await poll(
        lambda: bob.tile("Ada"),
        lambda tile: tile is not None and tile["reconnecting"] == "false",
        what="Bob sees Ada back",
    )
    assert [p["name"] for p in (await bob.state())["participants"]] == ["Ada"]
    for page, other in ((bob, "Ada"), (ada, "Bob")):
        before = (await page.stats())[other]["videoFramesDecoded"]
        await page.wait_stats(
            lambda s, o=other, b=before: s[o]["videoFramesDecoded"] > b + 10,
            f"{other}'s video after the reconnect",
        )
    await poll(lambda: ada.page.locator("#banner").is_hidden(), bool, what="Ada's banner gone")


async def test_ice_restart_keeps_media(meeting_server: MeetingServer, open_page: OpenPage) -> None:
    meeting = await meeting_server.create_meeting()
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada"), "Ada")
    bob = await open_page(meeting_server.meeting_url(meeting, "Bob"), "Bob")
    await ada.wait_joined()
    await bob.wait_joined()
    await ada.wait_stats(lambda s: "Bob" in s and s["Bob"]["videoFramesDecoded"] > 0, "video")
    await bob.wait_stats(lambda s: "Ada" in s and s["Ada"]["videoFramesDecoded"] > 0, "video")
    before = await ada.state()
    assert before["sendUfrag"] and before["recvUfrag"]

    await ada.evaluate("window.incamera.restartIce()")
    after = await poll(
        ada.state,
        lambda s: (
            s["sendUfrag"] != before["sendUfrag"]
            and s["recvUfrag"] != before["recvUfrag"]
            and s["send"] == "connected"
            and s["recv"] == "connected"
        ),
        what="both peer connections restarted ICE",
    )
    assert after["self"]["id"] == before["self"]["id"]
    for page, other in ((bob, "Ada"), (ada, "Bob")):
        count = (await page.stats())[other]["videoFramesDecoded"]
        await page.wait_stats(
            lambda s, o=other, c=count: s[o]["videoFramesDecoded"] > c + 10,
            f"{other}'s video after the ICE restart",
        )
