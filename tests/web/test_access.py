"""Only the people you want (issue 5), clicked through in real headless Chromium.

- Lobby: a guest waits and gets neither media nor keys; the moderator lets them in and media
  flows both ways; a declined guest never gets media.
- A server-only admission (test hook: the server lets someone in without a moderator) gives
  that person no keys: they decode nothing and the others mark them unverified.
- Moderator actions (mute everyone, remove with a block, lock, end for everyone) take effect
  in the other browsers; a blocked participant cannot rejoin, a locked meeting refuses a
  newcomer with a clear message.
- A personal invitation created in the meeting skips the lobby and the PIN and its holder
  gets the keys on the proof of the link's key; without that key a moderator lets them into
  the encrypted meeting from the people list.
- Invitations and blocks in the settings panel: a revoked invitation's link is refused; a
  participant removed with a block is listed by name, and once allowed again can rejoin.
- Single sign-on against a real OpenID provider: an "organisation only" meeting refuses a
  guest and admits the signed-in user.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
import pytest_asyncio
import uvicorn
from anyio import to_thread

from incamera.config import load_settings
from incamera.server.app import create_app
from support.oidc_provider import OidcProvider, ProviderFactory
from support.ports import free_udp_port_range

from .conftest import MeetingPage, MeetingServer, poll

pytestmark = pytest.mark.browser

TIMEOUT = 60.0


async def create(server: MeetingServer, policy: dict[str, Any]) -> tuple[str, str]:
    """A meeting with ``policy``; returns its id and the moderator key from its moderator link."""
    response = await server.client.post("/api/meetings", json={"policy": policy})
    assert response.status_code == 201, response.text
    body = response.json()
    fragment = urlsplit(body["moderator_url"]).fragment
    key = dict(part.split("=", 1) for part in fragment.split("&"))["mod"]
    return str(body["id"]), key


async def e2ee(page: MeetingPage) -> dict[str, Any]:
    status: dict[str, Any] = await page.evaluate("() => window.incamera.e2ee()")
    return status


async def visible_screen(page: MeetingPage) -> str | None:
    screen: str | None = await page.evaluate(
        "() => [...document.querySelectorAll('.screen')].find((s) => !s.hidden)?.id ?? null"
    )
    return screen


async def screen_text(page: MeetingPage) -> str:
    text: str = await page.evaluate(
        "() => [...document.querySelectorAll('.screen')].find((s) => !s.hidden)?.innerText ?? ''"
    )
    return text


async def lobby_names(page: MeetingPage) -> list[str]:
    names: list[str] = await page.evaluate(
        "() => [...document.querySelectorAll('#lobby-list li .who')].map((e) => e.firstChild"
        ".textContent)"
    )
    return names


async def received_anything(page: MeetingPage) -> int:
    total: int = await page.evaluate(
        """async () => (await window.incamera.stats()).reduce(
            (n, s) => n + s.videoFramesDecoded + s.audioPacketsReceived + s.screenFramesDecoded,
            0)"""
    )
    return total


async def test_lobby_let_in_and_decline(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting, key = await create(meeting_server, {"lobby": "everyone"})
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada", mod=key), "Ada")
    await ada.wait_joined()
    gus = await open_page(meeting_server.meeting_url(meeting, "Gus"), "Gus")
    await poll(lambda: visible_screen(gus), lambda s: s == "lobby", what="Gus waits")
    await poll(lambda: lobby_names(ada), lambda n: n == ["Gus"], what="Ada sees Gus waiting")
    await ada.page.keyboard.press("p")  # the participant panel, with the waiting list
    # While waiting: no media, no keys, not in anybody's list.
    await asyncio.sleep(2.0)
    assert (await e2ee(gus))["epoch"] is None
    assert await gus.evaluate("() => window.incamera.state().participants.length") == 0
    assert await received_anything(gus) == 0
    assert "Gus" not in {p["name"] for p in (await ada.state())["participants"]}

    await ada.page.locator('#lobby-list li[data-waiting] button[data-action="admit"]').click()
    await gus.wait_joined()
    for page, other in ((ada, "Gus"), (gus, "Ada")):
        await page.wait_stats(
            lambda s, o=other: o in s and s[o]["videoFramesDecoded"] > 0,
            what=f"{page.name} decodes {other}",
            timeout=TIMEOUT,
        )
    status = await poll(
        lambda: e2ee(gus),
        lambda s: {m["name"] for m in s["members"] if m["verified"]} == {"Ada", "Gus"},
        what="Gus in the encrypted group",
    )
    assert status["epoch"] is not None
    assert any(a["name"] == "Gus" for a in (await e2ee(ada))["announced"])

    # Dan is declined: he is told so and never received anything.
    dan = await open_page(meeting_server.meeting_url(meeting, "Dan"), "Dan")
    await poll(lambda: lobby_names(ada), lambda n: n == ["Dan"], what="Ada sees Dan waiting")
    await ada.page.locator('#lobby-list li[data-waiting] button[data-action="deny"]').click()
    text = await poll(
        lambda: screen_text(dan), lambda s: "did not let you in" in s, what="Dan declined"
    )
    assert "did not let you in" in text
    assert await received_anything(dan) == 0


async def test_a_server_only_admission_gives_no_keys(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting, key = await create(meeting_server, {"lobby": "everyone"})
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada", mod=key), "Ada")
    await ada.wait_joined()
    await poll(lambda: e2ee(ada), lambda s: s["epoch"] is not None, what="Ada's group")
    # The server lets Eve in on its own (test hook), as a compromised server could.
    eve = await open_page(meeting_server.meeting_url(meeting, "Eve", test_bypass_lobby="1"), "Eve")
    await eve.wait_joined()
    stats = await eve.wait_stats(
        lambda s: "Ada" in s and s["Ada"]["audioPacketsReceived"] > 300,
        what="Eve receives Ada's packets",
        timeout=TIMEOUT,
    )
    assert stats["Ada"]["videoFramesDecoded"] == 0, stats
    assert (await e2ee(eve))["epoch"] is None
    rows = await poll(
        lambda: ada.evaluate(
            """() => [...document.querySelectorAll('#people-list li')].map(
                (li) => [li.getAttribute('aria-label'), li.dataset.verified])"""
        ),
        lambda rows: any("Eve" in label and v == "false" for label, v in rows),
        what="Ada marks Eve unverified",
    )
    assert rows
    assert "Eve" not in {m["name"] for m in (await e2ee(ada))["members"]}


async def test_a_personal_invitation_skips_lobby_and_pin_and_gets_keys(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting, key = await create(meeting_server, {"lobby": "everyone", "pin": "4711"})
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada", mod=key), "Ada")
    await ada.wait_joined()
    await poll(lambda: e2ee(ada), lambda s: s["epoch"] is not None, what="Ada's group")

    async def invitation_link(name: str) -> str:
        previous = await ada.evaluate("() => document.getElementById('invite-url').value")
        await ada.page.locator("#invite-name").fill(name)
        await ada.page.locator('#invite-form button[type="submit"]').click()
        link: str = await poll(
            lambda: ada.evaluate("() => document.getElementById('invite-url').value"),
            lambda value: value != previous and "#invite=" in value,
            what="Ada's invitation link",
        )
        return link

    await ada.page.locator("#btn-settings").click()
    link = await invitation_link("Ines")
    assert "&ik=" in link  # the group's key for this invitation, in the fragment only
    # Ines opens the link: no PIN, no waiting room, and the group adds her on her proof.
    ines = await open_page(f"{link}&name=Ines&autojoin=1", "Ines")
    await ines.wait_joined()
    for page, other in ((ada, "Ines"), (ines, "Ada")):
        await page.wait_stats(
            lambda s, o=other: o in s and s[o]["videoFramesDecoded"] > 0,
            what=f"{page.name} decodes {other}",
            timeout=TIMEOUT,
        )
    status = await e2ee(ines)
    assert {m["name"] for m in status["members"] if m["verified"]} == {"Ada", "Ines"}

    # The same kind of link without its key (the server's word alone) gets no keys until a
    # moderator lets the person into the encrypted meeting from the people list.
    walt_link = (await invitation_link("Walt")).split("&ik=")[0]
    walt = await open_page(f"{walt_link}&name=Walt&autojoin=1", "Walt")
    await walt.wait_joined()
    await asyncio.sleep(2.0)
    assert (await e2ee(walt))["epoch"] is None
    await ada.page.locator("#btn-people").click()
    await ada.page.locator('#people-list button[data-action="encryption-admit"]').click()
    await walt.wait_stats(
        lambda s: "Ada" in s and s["Ada"]["videoFramesDecoded"] > 0,
        what="Walt decodes Ada after the admission",
        timeout=TIMEOUT,
    )
    assert (await e2ee(walt))["epoch"] is not None


async def test_moderator_actions_take_effect_in_the_other_browsers(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting, key = await create(meeting_server, {})
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada", mod=key), "Ada")
    await ada.wait_joined()
    grace = await open_page(meeting_server.meeting_url(meeting, "Grace"), "Grace")
    linus = await open_page(meeting_server.meeting_url(meeting, "Linus"), "Linus")
    await grace.wait_joined()
    await linus.wait_joined()
    ada.page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await ada.page.keyboard.press("p")

    # Mute everyone: the others' microphones go off in their own pages.
    await ada.page.locator("#btn-mute-all").click()
    for page in (grace, linus):
        await poll(
            lambda p=page: p.evaluate("() => window.incamera.state().self.audio_muted"),
            lambda muted: muted is True,
            what=f"{page.name} muted by the moderator",
        )
        pressed = await page.evaluate(
            "() => document.getElementById('btn-mic').getAttribute('aria-pressed')"
        )
        assert pressed == "true"

    # Remove Linus and block him: he is out, and the same browser cannot come back.
    linus_id = next(p["id"] for p in (await ada.state())["participants"] if p["name"] == "Linus")
    await ada.page.locator(
        f'#people-list li[data-participant="{linus_id}"] button[data-action="remove"]'
    ).click()
    await poll(
        lambda: screen_text(linus), lambda s: "removed" in s, what="Linus sees he was removed"
    )
    await poll(
        lambda: grace.state(),
        lambda s: "Linus" not in {p["name"] for p in s["participants"]},
        what="Linus gone for Grace",
    )
    await linus.page.reload()  # the same browser tries again
    await poll(
        lambda: screen_text(linus),
        lambda s: "cannot join again" in s,
        what="Linus refused when rejoining",
    )

    # Lock: a newcomer is refused with a clear message.
    await ada.page.locator("#btn-lock").click()
    await poll(
        lambda: ada.evaluate("() => document.getElementById('btn-lock').textContent"),
        lambda text: text == "Unlock meeting",
        what="the meeting locked",
    )
    late = await open_page(meeting_server.meeting_url(meeting, "Late"), "Late")
    await poll(lambda: screen_text(late), lambda s: "locked" in s, what="Late refused: locked")

    # End for everyone: Grace's meeting ends, and the link is dead.
    await ada.page.locator("#btn-end-all").click()
    await poll(
        lambda: screen_text(grace),
        lambda s: "ended for everyone" in s,
        what="Grace sees the meeting ended",
    )
    gone = await meeting_server.client.get(f"/api/meetings/{meeting}")
    assert gone.status_code == 410


async def access_rows(page: MeetingPage, list_id: str) -> list[str]:
    rows: list[str] = await page.evaluate(
        "(id) => [...document.querySelectorAll(`#${id} li`)].map((li) => li.innerText)", list_id
    )
    return rows


async def test_a_moderator_revokes_an_invitation_and_lets_a_blocked_person_in_again(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting, key = await create(meeting_server, {})
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada", mod=key), "Ada")
    await ada.wait_joined()
    linus = await open_page(meeting_server.meeting_url(meeting, "Linus"), "Linus")
    await linus.wait_joined()
    ada.page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

    # The settings panel lists what is open: nothing yet.
    await ada.page.locator("#btn-settings").click()
    await poll(
        lambda: access_rows(ada, "invitation-list"),
        lambda rows: rows == ["No open invitations."],
        what="Ada's empty invitation list",
    )
    assert await access_rows(ada, "block-list") == ["Nobody is blocked."]

    # A new invitation is listed (with its role); revoked, its link is refused.
    await ada.page.locator("#invite-name").fill("Ines")
    await ada.page.locator('#invite-form button[type="submit"]').click()
    link = await poll(
        lambda: ada.evaluate("() => document.getElementById('invite-url').value"),
        lambda value: "#invite=" in value,
        what="Ada's invitation link",
    )
    rows = await poll(
        lambda: access_rows(ada, "invitation-list"),
        lambda rows: len(rows) == 1 and "Ines" in rows[0],
        what="the invitation listed",
    )
    assert "Participant" in rows[0] and "valid until" in rows[0]
    await ada.page.locator(
        '#invitation-list button[data-action="revoke-invitation"][data-id]'
    ).click()
    await poll(
        lambda: access_rows(ada, "invitation-list"),
        lambda rows: rows == ["No open invitations."],
        what="the invitation gone from the list",
    )
    ines = await open_page(f"{link}&name=Ines&autojoin=1", "Ines")
    await poll(lambda: screen_text(ines), lambda s: "revoked" in s, what="Ines refused")

    # Linus is removed with a block: listed by name as a guest; allowed again, he rejoins.
    await ada.page.keyboard.press("p")
    linus_id = next(p["id"] for p in (await ada.state())["participants"] if p["name"] == "Linus")
    await ada.page.locator(
        f'#people-list li[data-participant="{linus_id}"] button[data-action="remove"]'
    ).click()
    await poll(lambda: screen_text(linus), lambda s: "removed" in s, what="Linus removed")
    await ada.page.locator("#btn-settings").click()
    rows = await poll(
        lambda: access_rows(ada, "block-list"),
        lambda rows: len(rows) == 1 and "Linus" in rows[0],
        what="Linus listed as blocked",
    )
    assert "guest" in rows[0] and "since" in rows[0]
    await linus.page.reload()
    await poll(
        lambda: screen_text(linus), lambda s: "cannot join again" in s, what="Linus still out"
    )
    await ada.page.locator('#block-list button[data-action="unblock"][data-id]').click()
    await poll(
        lambda: access_rows(ada, "block-list"),
        lambda rows: rows == ["Nobody is blocked."],
        what="the block lifted",
    )
    await linus.page.reload()
    await linus.wait_joined()
    await poll(
        lambda: ada.state(),
        lambda s: "Linus" in {p["name"] for p in s["participants"]},
        what="Linus back for Ada",
    )


@dataclass
class SsoMeetingServer(MeetingServer):
    provider: OidcProvider | None = None


@pytest_asyncio.fixture
async def sso_meeting_server(tmp_path: Path) -> AsyncIterator[SsoMeetingServer]:
    """A meeting server with single sign-on at a real provider started for it."""
    providers = ProviderFactory()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    origin = f"http://localhost:{port}"
    provider = await to_thread.run_sync(providers.start, [f"{origin}/auth/oidc/callback"])
    media_port = free_udp_port_range(1)
    settings = load_settings(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "media": {"workers": 1, "port_min": media_port, "port_max": media_port},
            "public_url": origin,
            "oidc": provider.settings(),
        },
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up")
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"host": f"localhost:{port}"}
    ) as client:
        try:
            yield SsoMeetingServer(
                origin=origin, client=client, tap_path=tmp_path / "none", provider=provider
            )
        finally:
            server.should_exit = True
            await task
            sock.close()
            providers.stop_all()


async def test_organisation_only_meeting_refuses_guests_and_admits_the_signed_in(
    sso_meeting_server: SsoMeetingServer, browser: Any
) -> None:
    server = sso_meeting_server
    assert server.provider is not None
    meeting, _key = await create(server, {"members_only": True})
    url = f"{server.origin}/m/{meeting}"

    guest = await MeetingPage.open(browser, f"{url}#name={quote('Gus')}&autojoin=1", "Gus")
    try:
        text = await poll(
            lambda: screen_text(guest), lambda s: "sign in" in s.lower(), what="guest refused"
        )
        assert "Only signed-in members" in text
    finally:
        await guest.close()

    context = await browser.new_context()
    page = await context.new_page()
    member = MeetingPage("Alice", context, page)
    try:
        await page.goto(f"{server.origin}/")
        await page.get_by_role("link", name="Sign in").click()
        await page.get_by_role("link", name="Sign in with Test IdP").click()
        await page.wait_for_url(f"{server.provider.issuer}/interaction/**")
        await page.get_by_label("Username").fill("alice")
        await page.get_by_label("Password").fill("alice-password-1")
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_url(f"{server.origin}/")
        await page.goto(f"{url}#name={quote('Alice Anders')}&autojoin=1")
        joined = await member.wait_joined(timeout=TIMEOUT)
        assert joined["self"]["guest"] is False
    finally:
        await member.close()
