"""The join decision through the real server with the Python signalling client: locked
meetings, the moderator key, PINs (and their brute-force limit), members-only meetings
with a signed-in account over HTTP, blocked guest browsers, invitations, the owner."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from anyio import to_thread
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from incamera.rooms.access import new_secret
from incamera.server.auth_routes import identity_of
from incamera.signalling import messages as m
from incamera.signalling.client import SignallingClient, websocket_url
from incamera.signalling.errors import SignallingError

from .conftest import LiveServer

PASSWORD = "correct horse battery"
LOCKED_REASON = "This meeting is locked. Ask a moderator to unlock it."


async def create(
    server: LiveServer, http: httpx.AsyncClient | None = None, **policy: Any
) -> tuple[str, str, dict[str, Any]]:
    """A new meeting with ``policy``: (participant link, moderator key, response body)."""
    response = await (http or server.http).post("/api/meetings", json={"policy": policy})
    assert response.status_code == 201, response.text
    body = response.json()
    fragment = urlsplit(body["moderator_url"]).fragment
    return f"{server.base}/m/{body['id']}", fragment.removeprefix("mod="), body


async def refusal(link: str, name: str = "Eve", **kwargs: Any) -> SignallingError:
    with pytest.raises(SignallingError) as caught:
        client = await SignallingClient.join(link, name, **kwargs)
        await client.close()
    return caught.value


async def raw_hello(link: str, hello: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """Send one hello over a bare WebSocket: (the answer, the close code)."""
    ws_url, origin = websocket_url(link)
    async with connect(ws_url, origin=origin) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "hello", "versions": [1], "name": "Raw", **hello}))
        answer = json.loads(await ws.recv())
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()
        return answer, ws.close_code


async def signed_in_client(server: LiveServer, username: str, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client signed in over the real sign-in form (its cookie jar holds the session)."""
    accounts = identity_of(server.app).accounts
    await to_thread.run_sync(
        lambda: accounts.create(username, username.title(), PASSWORD, **kwargs)
    )
    http = httpx.AsyncClient(base_url=server.base)
    page = await http.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    done = await http.post(
        "/signin",
        data={
            "csrf_token": token.group(1),
            "step": "password",
            "username": username,
            "password": PASSWORD,
        },
    )
    assert done.status_code == 303, done.text
    assert (await http.get("/api/me")).json()["kind"] == "account"
    return http


def session_cookies(http: httpx.AsyncClient) -> dict[str, str]:
    return {name: value for name, value in http.cookies.items()}


async def test_locked_meeting_refuses_a_newcomer_but_not_the_moderator_key(
    live_server: LiveServer,
) -> None:
    link, key, body = await create(live_server, locked=True)
    assert body["policy"]["locked"] is True
    error = await refusal(link)
    assert (error.code, error.reason) == ("meeting_locked", LOCKED_REASON)
    answer, close_code = await raw_hello(link, {})
    assert answer == {"type": "error", "code": "meeting_locked", "reason": LOCKED_REASON}
    assert close_code == 4403
    mo = await SignallingClient.join(link, "Mo", moderator_key=key)
    try:
        assert mo.participant is not None and mo.participant.role == "moderator"
    finally:
        await mo.close()
    assert (await refusal(link, moderator_key=new_secret())).code == "invalid_moderator_key"


async def test_pin_required_wrong_and_right(live_server: LiveServer) -> None:
    link, key, body = await create(live_server, pin="246810")
    assert body["policy"]["pin_set"] is True and "246810" not in json.dumps(body)
    assert (await refusal(link)).code == "pin_required"
    assert (await refusal(link, pin="111111")).code == "wrong_pin"
    client = await SignallingClient.join(link, "Pat", pin="246810")
    try:
        assert client.welcome is not None and client.participant is not None
        assert client.participant.role == "participant"
    finally:
        await client.close()
    mo = await SignallingClient.join(link, "Mo", moderator_key=key)  # no PIN needed
    await mo.close()


async def test_pin_brute_force_is_rate_limited_and_then_even_the_right_pin_is_refused(
    live_server: LiveServer,
) -> None:
    link, _, _ = await create(live_server, pin="97531")
    limit = live_server.app.state.admission.gate.limits.pin_failures_per_source.count
    for guess in range(limit):
        assert (await refusal(link, pin=f"{guess:05d}")).code == "wrong_pin"
    error = await refusal(link, pin="97531")
    assert error.code == "rate_limited"
    assert error.reason == "Too many attempts. Try again in 10 minutes."
    answer, close_code = await raw_hello(link, {"pin": "97531"})
    assert answer["code"] == "rate_limited" and close_code == 4429
    # Every refusal is in the audit log, with its code and no PIN.
    meeting_id = urlsplit(link).path.rsplit("/", 1)[1]
    events = await live_server.app.state.audit.query(kind="join_refused", meeting_id=meeting_id)
    codes = sorted(e.details["code"] for e in events)
    assert codes == ["rate_limited"] * 2 + ["wrong_pin"] * limit
    assert all(e.source_ip is None for e in events)  # audit.store_ip_addresses is off
    assert "97531" not in json.dumps([e.as_json() for e in events])


async def test_members_only_refuses_a_guest_and_admits_a_signed_in_account(
    live_server: LiveServer,
) -> None:
    link, _, _ = await create(live_server, members_only=True)
    error = await refusal(link)
    assert error.code == "sign_in_required"
    http = await signed_in_client(live_server, "alice")
    try:
        client = await SignallingClient.join(link, "Alice", cookies=session_cookies(http))
        try:
            assert client.participant is not None
            assert client.participant.guest is False
            assert client.participant.role == "participant"
        finally:
            await client.close()
    finally:
        await http.aclose()


async def test_the_signed_in_creator_is_the_owner_and_joins_as_moderator(
    live_server: LiveServer,
) -> None:
    http = await signed_in_client(live_server, "olga")
    try:
        link, _, body = await create(live_server, http, locked=True)
        assert body["owner"] is not None
        owner = await SignallingClient.join(link, "Olga", cookies=session_cookies(http))
        try:
            assert owner.participant is not None and owner.participant.role == "moderator"
        finally:
            await owner.close()
    finally:
        await http.aclose()


async def test_a_blocked_guest_browser_is_refused_and_another_is_not(
    live_server: LiveServer,
) -> None:
    link, _, body = await create(live_server)
    page = await live_server.http.get(urlsplit(link).path)
    assert page.status_code == 200
    guest_id = page.cookies["incamera_guest"]
    await live_server.app.state.context.registry.block(body["id"], guest_id=guest_id)
    error = await refusal(link, cookies={"incamera_guest": guest_id})
    assert error.code == "removed"
    other = await SignallingClient.join(link, "New", cookies={"incamera_guest": new_secret()})
    await other.close()


async def test_a_moderator_invites_through_signalling_and_a_participant_cannot(
    live_server: LiveServer,
) -> None:
    link, key, body = await create(live_server, lobby="everyone", pin="8642")
    mo = await SignallingClient.join(link, "Mo", moderator_key=key)
    try:
        invitation = await mo.invite("Ines", expires_in_seconds=600)
        assert invitation.role == "participant" and invitation.name == "Ines"
        assert len(invitation.token) >= 22  # 128 bits, base64url
        expires = datetime.fromisoformat(invitation.expires_at.replace("Z", "+00:00"))
        left = (expires - live_server.app.state.context.registry.now()).total_seconds()
        assert 590 < left <= 600
        ines = await SignallingClient.join(link, "Ines", invite=invitation.token)
        try:
            assert ines.welcome is not None and not ines.waiting  # no PIN, no lobby
            assert ines.participant is not None and ines.participant.role == "participant"
            with pytest.raises(SignallingError) as caught:
                await ines.invite("Friend")
            assert caught.value.code == "forbidden"
        finally:
            await ines.close()
        promoted = await mo.invite(role="moderator", expires_in_seconds=60)
        co = await SignallingClient.join(link, "Co", invite=promoted.token)
        try:
            assert co.participant is not None and co.participant.role == "moderator"
        finally:
            await co.close()
        for bad in ({"expires_in_seconds": 59}, {"expires_in_seconds": 91 * 24 * 3600}):
            with pytest.raises(SignallingError) as caught:
                fields = {"type": "invite", "role": "participant", "name": None, **bad}
                await mo.request(m.Invite.model_construct(**fields))  # unchecked, as sent
            assert caught.value.code == "bad_message"
    finally:
        await mo.close()
    events = await live_server.app.state.audit.query(
        kind="invitation_created", meeting_id=body["id"], since=None, limit=10
    )
    assert len(events) == 2
    assert all("Ines" not in str(e.as_json()) for e in events)  # no names in the audit log


async def test_invitations_skip_lobby_and_pin_and_expire(live_server: LiveServer) -> None:
    link, key, body = await create(live_server, lobby="everyone", pin="8642")
    response = await live_server.http.post(
        f"/api/meetings/{body['id']}/invitations",
        json={"name": "Ines", "expires_in_seconds": 3600},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text
    token = urlsplit(response.json()["url"]).fragment.removeprefix("invite=")
    invited = await SignallingClient.join(link, "Ines", invite=token)
    try:
        assert invited.welcome is not None and not invited.waiting
    finally:
        await invited.close()
    # Without the invitation: the PIN, then the lobby.
    waiting = await SignallingClient.join(link, "Walt", pin="8642")
    try:
        assert waiting.waiting and waiting.welcome is None
    finally:
        await waiting.close()
    # An expired invitation (stored as if issued long ago) is refused with a reason.
    registry = live_server.app.state.context.registry
    old = new_secret()
    past = registry.now() - timedelta(seconds=1)
    await registry.add_invitation(body["id"], old, "participant", None, past)
    error = await refusal(link, invite=old)
    assert error.code == "invalid_invite" and "expired" in error.reason
    # A moderator invitation gets a guest in as moderator even when locked.
    await registry.set_policy(
        body["id"],
        (await registry.access_policy(body["id"])).changed(
            {"locked": True}, live_server.app.state.pins
        ),
    )
    mod_token = new_secret()
    await registry.add_invitation(
        body["id"], mod_token, "moderator", "Co", registry.now() + timedelta(hours=1)
    )
    co = await SignallingClient.join(link, "Co", invite=mod_token)
    try:
        assert co.participant is not None and co.participant.role == "moderator"
    finally:
        await co.close()
    assert (await refusal(link, invite=token)).code == "meeting_locked"


async def test_a_moderator_lists_and_revokes_invitations_and_a_participant_cannot(
    live_server: LiveServer,
) -> None:
    link, key, body = await create(live_server, lobby="everyone")
    mo = await SignallingClient.join(link, "Mo", moderator_key=key)
    pat = await SignallingClient.join(link, "Pat", invite=(await mo.invite("Pat")).token)
    try:
        assert (await mo.list_access()).invitations[0].name == "Pat"
        ines = await mo.invite("Ines", expires_in_seconds=600)
        anonymous = await mo.invite(role="moderator")
        access = await mo.list_access()
        assert access.blocks == []
        assert [(i.name, i.role, i.expires_at) for i in access.invitations] == [
            (None, "moderator", anonymous.expires_at),
            ("Ines", "participant", ines.expires_at),
            ("Pat", "participant", access.invitations[2].expires_at),
        ]
        listed = json.dumps(access.model_dump())
        assert ines.token not in listed and anonymous.token not in listed  # digests only
        ines_id = access.invitations[1].id
        assert len(ines_id) == 64

        # Participants may neither see nor change any of it.
        for request in (
            pat.list_access(),
            pat.revoke_invitation(ines_id),
            pat.unblock("0" * 64),
        ):
            with pytest.raises(SignallingError) as caught:
                await request
            assert caught.value.code == "forbidden"

        await mo.revoke_invitation(ines_id)
        assert [i.name for i in (await mo.list_access()).invitations] == [None, "Pat"]
        error = await refusal(link, "Ines", invite=ines.token)
        assert error.code == "invalid_invite"
        with pytest.raises(SignallingError) as caught:
            await mo.revoke_invitation(ines_id)  # already revoked
        assert caught.value.code == "not_found"
        # Someone already in with a revoked invitation stays; the link is dead for a rejoin.
        await mo.revoke_invitation((await mo.list_access()).invitations[1].id)
        assert pat.participant is not None and pat.id in mo.participants
    finally:
        await pat.close()
        await mo.close()
    events = await live_server.app.state.audit.query(
        kind="invitation_revoked", meeting_id=body["id"], limit=10
    )
    assert len(events) == 2 and all(e.actor == mo.id for e in events)
    assert all("Ines" not in str(e.as_json()) for e in events)


async def test_blocked_people_are_listed_with_their_names_and_can_be_let_in_again(
    live_server: LiveServer,
) -> None:
    link, key, body = await create(live_server)
    guest_id = new_secret()
    http = await signed_in_client(live_server, "stan")
    mo = await SignallingClient.join(link, "Mo", moderator_key=key)
    gus = await SignallingClient.join(link, "Gus Guest", cookies={"incamera_guest": guest_id})
    stan = await SignallingClient.join(link, "Stan S.", cookies=session_cookies(http))
    try:
        await mo.moderate("remove", gus.id, block=True)
        await gus.wait_for(lambda c: c.close_code is not None)
        await mo.moderate("remove", stan.id, block=True)
        await stan.wait_for(lambda c: c.close_code is not None)
        assert (await refusal(link, cookies={"incamera_guest": guest_id})).code == "removed"
        access = await mo.list_access()
        assert [(b.name, b.kind) for b in access.blocks] == [
            ("Stan S.", "account"),
            ("Gus Guest", "guest"),
        ]
        for block in access.blocks:
            since = datetime.fromisoformat(block.since.replace("Z", "+00:00"))
            assert abs((since - live_server.app.state.context.registry.now()).total_seconds()) < 60
        # The guest's browser id is a secret: the list names the block by a digest.
        assert guest_id not in json.dumps(access.model_dump())
        stan_block, gus_block = access.blocks

        for unknown in ("f" * 64, "ü", guest_id):  # the browser id itself is no block id
            with pytest.raises(SignallingError) as caught:
                await mo.unblock(unknown)
            assert caught.value.code == "not_found"
        await mo.unblock(gus_block.id)
        assert [b.name for b in (await mo.list_access()).blocks] == ["Stan S."]
        back = await SignallingClient.join(link, "Gus", cookies={"incamera_guest": guest_id})
        try:
            assert back.welcome is not None
        finally:
            await back.close()
        assert (
            await refusal(link, "Stan", cookies=session_cookies(http))
        ).code == "removed"  # still blocked
        await mo.unblock(stan_block.id)
        assert (await mo.list_access()).blocks == []
        stan_back = await SignallingClient.join(link, "Stan", cookies=session_cookies(http))
        await stan_back.close()
        with pytest.raises(SignallingError) as caught:
            await mo.unblock(stan_block.id)  # lifted already
        assert caught.value.code == "not_found"
    finally:
        for client in (mo, gus, stan):
            await client.close()
        await http.aclose()
    events = await live_server.app.state.audit.query(
        kind="participant_unblocked", meeting_id=body["id"], limit=10
    )
    assert sorted((e.actor, e.details["by"]) for e in events) == [
        (mo.id, "account"),
        (mo.id, "guest_id"),
    ]
    text = json.dumps([e.as_json() for e in events])
    assert "Gus" not in text and "Stan" not in text and guest_id not in text
