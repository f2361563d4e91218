"""Meeting access over HTTP: the policy at creation, the moderator link, invitations, the
guest cookie of the meeting page, and the audit log's API (administrators only)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
from anyio import to_thread

from incamera.server.auth_routes import identity_of

from .conftest import RunningServer

PASSWORD = "correct horse battery"


async def sign_in(server: RunningServer, username: str, *, admin: bool = False) -> str:
    """Create an account and sign ``server.client`` in; returns the CSRF token for JSON."""
    accounts = identity_of(server.app).accounts
    await to_thread.run_sync(
        lambda: accounts.create(username, username.title(), PASSWORD, is_admin=admin)
    )
    page = await server.client.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    done = await server.client.post(
        "/signin",
        data={
            "csrf_token": token.group(1),
            "step": "password",
            "username": username,
            "password": PASSWORD,
        },
    )
    assert done.status_code == 303, done.text
    me = (await server.client.get("/api/me")).json()
    assert me["kind"] == "account"
    return str(me["csrf_token"])


async def create(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await client.post("/api/meetings", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()
    return data


async def test_policy_at_creation_and_the_moderator_link(server: RunningServer) -> None:
    body = await create(
        server.client,
        title="Council",
        policy={"lobby": "guests", "pin": "123456", "members_only": False, "locked": False},
    )
    assert body["policy"] == {
        "lobby": "guests",
        "locked": False,
        "pin_set": True,
        "members_only": False,
        "guests_allowed": True,
    }
    assert "123456" not in str(body)
    assert body["owner"] is None  # created by a guest
    meeting_id = body["id"]
    moderator_url = urlsplit(str(body["moderator_url"]))
    assert moderator_url.path == f"/m/{meeting_id}"
    key = moderator_url.fragment.removeprefix("mod=")
    assert moderator_url.fragment.startswith("mod=") and len(key) == 22
    assert str(body["join_url"]).endswith(f"/m/{meeting_id}")
    # The key is shown once: GET never returns it, but the policy (without the PIN) yes.
    again = (await server.client.get(f"/api/meetings/{meeting_id}")).json()
    assert "moderator_url" not in again and key not in str(again)
    assert again["policy"]["pin_set"] is True
    # Defaults without a policy.
    plain = await create(server.client)
    assert plain["policy"] == {
        "lobby": "off",
        "locked": False,
        "pin_set": False,
        "members_only": False,
        "guests_allowed": True,
    }
    assert plain["moderator_url"] != body["moderator_url"]


async def test_bad_policies_are_refused_with_a_reason(server: RunningServer) -> None:
    for policy, word in (
        ({"pin": "12"}, "4 to 12 digits"),
        ({"pin": "12ab"}, "4 to 12 digits"),
        ({"lobby": "sometimes"}, "lobby"),
        ({"locked": "yes"}, "locked"),
        ({"colour": "red"}, "colour"),
    ):
        response = await server.client.post("/api/meetings", json={"policy": policy})
        assert response.status_code == 422, policy
        assert response.json()["error"] == "invalid_request"
        assert word in response.json()["detail"]


async def test_invitations_need_the_moderator_key_or_the_owner(server: RunningServer) -> None:
    body = await create(server.client)
    key = urlsplit(str(body["moderator_url"])).fragment.removeprefix("mod=")
    url = f"/api/meetings/{body['id']}/invitations"
    for headers in ({}, {"authorization": "Bearer " + "x" * 22}, {"authorization": key}):
        refused = await server.client.post(url, json={}, headers=headers)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    made = await server.client.post(
        url,
        json={"name": "Ines", "role": "moderator", "expires_in_seconds": 3600},
        headers={"authorization": f"Bearer {key}"},
    )
    assert made.status_code == 201, made.text
    invitation = made.json()
    link = urlsplit(invitation["url"])
    assert link.path == f"/m/{body['id']}" and link.fragment.startswith("invite=")
    assert len(link.fragment.removeprefix("invite=")) == 22
    assert invitation["role"] == "moderator" and invitation["name"] == "Ines"
    assert invitation["expires_at"].endswith("Z")
    for bad in ({"expires_in_seconds": 10}, {"role": "king"}, {"expires_in_seconds": "1h"}):
        response = await server.client.post(
            url, json=bad, headers={"authorization": f"Bearer {key}"}
        )
        assert response.status_code == 422, bad
    missing = await server.client.post(
        "/api/meetings/" + "A" * 22 + "/invitations",
        json={},
        headers={"authorization": f"Bearer {key}"},
    )
    assert missing.status_code == 404


async def test_the_signed_in_owner_invites_with_the_csrf_token(server: RunningServer) -> None:
    csrf = await sign_in(server, "olga")
    body = await create(server.client)
    assert isinstance(body["owner"], str)
    url = f"/api/meetings/{body['id']}/invitations"
    without = await server.client.post(url, json={})
    assert without.status_code == 403
    made = await server.client.post(url, json={}, headers={"x-csrf-token": csrf})
    assert made.status_code == 201, made.text
    assert made.json()["role"] == "participant"


async def test_the_meeting_page_gives_a_browser_a_guest_id_once(server: RunningServer) -> None:
    body = await create(server.client)
    page = await server.client.get(f"/m/{body['id']}")
    assert page.status_code == 200
    header = page.headers["set-cookie"]
    assert header.startswith("incamera_guest=")
    assert "httponly" in header.lower() and "samesite=lax" in header.lower()
    guest_id = server.client.cookies["incamera_guest"]
    assert len(guest_id) == 22
    again = await server.client.get(f"/m/{body['id']}")
    assert "set-cookie" not in again.headers
    assert server.client.cookies["incamera_guest"] == guest_id


async def test_the_audit_log_is_for_administrators_only(server: RunningServer) -> None:
    refused = await server.client.get("/api/admin/audit")
    assert refused.status_code == 401
    await sign_in(server, "bob")
    forbidden = await server.client.get("/api/admin/audit")
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    server.client.cookies.clear()  # a new browser
    # A failed sign-in, then an administrator's.
    page = await server.client.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    await server.client.post(
        "/signin",
        data={
            "csrf_token": token.group(1),
            "step": "password",
            "username": "nobody",
            "password": "wrong password!",
        },
    )
    await sign_in(server, "ada", admin=True)
    body = await create(server.client, policy={"lobby": "everyone"})
    response = await server.client.get("/api/admin/audit")
    assert response.status_code == 200, response.text
    events = response.json()["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "meeting_created"  # newest first
    assert "signin_failed" in kinds and kinds.count("signin_succeeded") == 2
    failed = next(e for e in events if e["kind"] == "signin_failed")
    assert failed["details"] == {"reason": "bad_credentials", "step": "password"}
    assert "nobody" not in str(events) and "wrong password" not in str(events)
    assert all(e["source_ip"] is None for e in events)
    created = events[0]
    assert created["meeting_id"] == body["id"] and created["actor"] == body["owner"]
    assert created["details"]["policy"]["lobby"] == "everyone"
    # Filters.
    only = await server.client.get("/api/admin/audit", params={"kind": "signin_succeeded"})
    assert {e["kind"] for e in only.json()["events"]} == {"signin_succeeded"}
    by_meeting = await server.client.get("/api/admin/audit", params={"meeting": body["id"]})
    assert [e["kind"] for e in by_meeting.json()["events"]] == ["meeting_created"]
    later = await server.client.get("/api/admin/audit", params={"since": "2999-01-01T00:00:00Z"})
    assert later.json()["events"] == []
    one = await server.client.get("/api/admin/audit", params={"limit": "1"})
    assert len(one.json()["events"]) == 1
    for bad in ({"limit": "0"}, {"limit": "x"}, {"since": "yesterday"}, {"since": "2020-01-01"}):
        assert (await server.client.get("/api/admin/audit", params=bad)).status_code == 400
