"""Sign-in over HTTP through a real uvicorn: password, TOTP step, forced password change,
sign-out, CSRF refusals, throttling, /api/me and TOTP enrolment."""

from __future__ import annotations

import base64
import re
import time

import httpx
from anyio import to_thread

from incamera.identity import totp
from incamera.server.auth_routes import identity_of

from .conftest import RunningServer

PASSWORD = "correct horse battery"


def csrf_token(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


async def create_user(server: RunningServer, name: str = "alice", **kwargs: object) -> str:
    accounts = identity_of(server.app).accounts
    record = await to_thread.run_sync(
        lambda: accounts.create(name, name.title() + " Example", PASSWORD, **kwargs)
    )
    return record.id


async def submit(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    return await client.post("/signin", data=fields)


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    page = await client.get("/signin")
    assert page.status_code == 200
    return await submit(
        client, csrf_token=csrf_token(page), step="password", username=username, password=password
    )


async def test_password_sign_in_and_sign_out(server: RunningServer):
    await create_user(server)
    client = server.client
    assert (await client.get("/api/me")).json() == {"kind": "guest", "csrf_token": None}

    page = await client.get("/signin")
    assert 'name="password"' in page.text
    pre_session = client.cookies.get("incamera_session")
    assert pre_session
    cookie_header = page.headers["set-cookie"].lower()
    assert "httponly" in cookie_header and "samesite=lax" in cookie_header
    assert "secure" not in cookie_header  # plain http://localhost (docs/operations.md)

    done = await submit(
        client, csrf_token=csrf_token(page), step="password", username="Alice", password=PASSWORD
    )
    assert done.status_code == 303 and done.headers["location"] == "/"
    # A new session id after sign-in: the pre-sign-in one is worthless (no fixation).
    assert client.cookies.get("incamera_session") not in (None, pre_session)
    me = (await client.get("/api/me")).json()
    assert me["kind"] == "account" and me["display_name"] == "Alice Example"
    assert me["method"] == "password" and me["csrf_token"]

    async with httpx.AsyncClient(
        base_url=server.url, headers=client.headers, timeout=60.0
    ) as other:
        other.cookies.set("incamera_session", pre_session)
        assert (await other.get("/api/me")).json()["kind"] == "guest"

    # Sign-out needs the token too.
    refused = await client.post("/signout", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert (await client.get("/api/me")).json()["kind"] == "account"
    out = await client.post("/signout", data={"csrf_token": me["csrf_token"]})
    assert out.status_code == 303
    assert (await client.get("/api/me")).json()["kind"] == "guest"


async def test_wrong_password_and_unknown_user_get_the_same_answer(server: RunningServer):
    await create_user(server)
    wrong = await sign_in(server.client, "alice", "not the password")
    unknown = await sign_in(server.client, "mallory", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password." in wrong.text
    assert "Wrong username or password." in unknown.text
    assert (await server.client.get("/api/me")).json()["kind"] == "guest"


async def test_missing_or_wrong_csrf_token_is_refused(server: RunningServer):
    await create_user(server)
    page = await server.client.get("/signin")
    token = csrf_token(page)
    wrong = token[:-1] + ("B" if token.endswith("A") else "A")  # never the token itself
    for fields in ({}, {"csrf_token": ""}, {"csrf_token": wrong}):
        response = await submit(
            server.client, step="password", username="alice", password=PASSWORD, **fields
        )
        assert response.status_code == 403, fields
        assert "not sent from this page" in response.text
    assert (await server.client.get("/api/me")).json()["kind"] == "guest"
    # Without any session (a cross-site POST with no cookie) nothing happens either.
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.client.headers, timeout=60.0
    ) as bare:
        response = await submit(
            bare, csrf_token=token, step="password", username="alice", password=PASSWORD
        )
        assert response.status_code == 403
        assert (await bare.get("/api/me")).json()["kind"] == "guest"


async def test_failed_sign_ins_are_throttled_per_account_and_source(server: RunningServer):
    await create_user(server)
    await create_user(server, "bob")
    for _ in range(5):
        assert (await sign_in(server.client, "alice", "guess-guess-guess")).status_code == 401
    blocked = await sign_in(server.client, "alice", PASSWORD)  # even the right password
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.text
    assert "Try again in 15 minutes" in blocked.text
    assert (await server.client.get("/api/me")).json()["kind"] == "guest"
    # Another account from the same address is not affected.
    assert (await sign_in(server.client, "bob", PASSWORD)).status_code == 303


async def test_totp_enrolment_then_sign_in_with_a_code(server: RunningServer):
    await create_user(server)
    client = server.client
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303
    token = (await client.get("/api/me")).json()["csrf_token"]

    assert (await client.post("/api/me/totp")).status_code == 403  # no X-CSRF-Token
    begun = await client.post("/api/me/totp", headers={"x-csrf-token": token})
    assert begun.status_code == 200
    uri = begun.json()["uri"]
    assert uri.startswith("otpauth://totp/incamera:alice?")
    padded = begun.json()["secret"] + "=" * (-len(begun.json()["secret"]) % 8)
    secret = base64.b32decode(padded)
    step = totp.step_of(time.time())
    valid = {totp.code_at(secret, (step + d) * 30) for d in (-1, 0, 1, 2)}
    wrong_code = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    wrong = await client.post(
        "/api/me/totp/confirm", json={"code": wrong_code}, headers={"x-csrf-token": token}
    )
    assert wrong.status_code == 400
    enrol_code = totp.code_at(secret, step * 30)
    confirmed = await client.post(
        "/api/me/totp/confirm", json={"code": enrol_code}, headers={"x-csrf-token": token}
    )
    assert confirmed.status_code == 204
    await client.post("/signout", data={"csrf_token": token})

    first = await sign_in(client, "alice", PASSWORD)
    assert first.status_code == 303 and first.headers["location"] == "/signin"
    code_page = await client.get("/signin")
    assert 'name="code"' in code_page.text
    assert (await client.get("/api/me")).json()["kind"] == "guest"  # not yet signed in
    # The code used for enrolment cannot be used again; the next step's code works.
    replay = await submit(client, csrf_token=csrf_token(code_page), step="totp", code=enrol_code)
    assert replay.status_code == 401 and "already used" in replay.text
    next_code = totp.code_at(secret, (step + 1) * 30)
    done = await submit(client, csrf_token=csrf_token(code_page), step="totp", code=next_code)
    assert done.status_code == 303
    me = (await client.get("/api/me")).json()
    assert me["kind"] == "account" and me["method"] == "password+totp"


async def test_temporary_password_must_be_changed(server: RunningServer):
    account_id = await create_user(server)
    accounts = identity_of(server.app).accounts
    temporary = await to_thread.run_sync(accounts.admin_reset, account_id, "temporary")
    assert (await sign_in(server.client, "alice", PASSWORD)).status_code == 401
    moved = await sign_in(server.client, "alice", temporary)
    assert moved.status_code == 303 and moved.headers["location"] == "/signin"
    page = await server.client.get("/signin")
    assert 'name="new_password"' in page.text
    assert (await server.client.get("/api/me")).json()["kind"] == "guest"
    token = csrf_token(page)
    short = await submit(
        server.client, csrf_token=token, step="change", new_password="short", new_password2="short"
    )
    assert short.status_code == 400 and "at least 10 characters" in short.text
    new = "a brand new passphrase"
    done = await submit(
        server.client, csrf_token=token, step="change", new_password=new, new_password2=new
    )
    assert done.status_code == 303
    assert (await server.client.get("/api/me")).json()["kind"] == "account"


async def test_reset_token_sets_a_new_password_once(server: RunningServer):
    account_id = await create_user(server)
    accounts = identity_of(server.app).accounts
    token = await to_thread.run_sync(accounts.admin_reset, account_id, "token")
    page = await server.client.get(f"/signin/reset?token={token}")
    new = "chosen after the reset"
    fields = {
        "csrf_token": csrf_token(page),
        "step": "reset",
        "token": token,
        "new_password": new,
        "new_password2": new,
    }
    assert (await server.client.post("/signin/reset", data=fields)).status_code == 303
    again = await server.client.post("/signin/reset", data=fields)
    assert again.status_code == 400 and "invalid, used or expired" in again.text
    assert (await sign_in(server.client, "alice", new)).status_code == 303


async def test_disabled_account_cannot_sign_in(server: RunningServer):
    account_id = await create_user(server)
    accounts = identity_of(server.app).accounts
    await to_thread.run_sync(accounts.set_disabled, account_id, True)
    refused = await sign_in(server.client, "alice", PASSWORD)
    assert refused.status_code == 403 and "disabled" in refused.text


async def test_totp_enrolment_page(server: RunningServer):
    await create_user(server)
    client = server.client
    assert (await client.get("/signin/totp")).status_code == 303  # not signed in
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303
    page = await client.get("/signin/totp")
    assert page.status_code == 200
    match = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert match and 'href="otpauth://totp/incamera:alice?' in page.text
    secret = base64.b32decode(match.group(1) + "=" * (-len(match.group(1)) % 8))
    token = csrf_token(page)
    refused = await client.post("/signin/totp", data={"code": "123456"})
    assert refused.status_code == 403
    good = totp.code_at(secret, time.time())
    done = await client.post("/signin/totp", data={"csrf_token": token, "code": good})
    assert done.status_code == 200 and 'id="totp-on"' in done.text
    accounts = identity_of(server.app).accounts
    account = await to_thread.run_sync(accounts.by_username, "alice")
    # Stored sealed under the key file's key, bound to the account (secret_box.py).
    assert account.totp_secret is not None and secret not in account.totp_secret
    assert accounts.box.open(account.totp_secret, account.id) == secret


async def test_signed_in_person_changes_their_own_password(server: RunningServer):
    await create_user(server)
    client = server.client
    # Not signed in: the page sends you to sign in first.
    away = await client.get("/signin/password")
    assert away.status_code == 303 and away.headers["location"] == "/signin"

    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303
    signed_in = await client.get("/signin")
    assert 'href="/signin/password"' in signed_in.text
    # A second device of the same person, signed in too.
    async with httpx.AsyncClient(
        base_url=server.url, headers=client.headers, timeout=60.0
    ) as laptop:
        assert (await sign_in(laptop, "alice", PASSWORD)).status_code == 303
        assert (await laptop.get("/api/me")).json()["kind"] == "account"

        page = await client.get("/signin/password")
        assert page.status_code == 200 and 'name="current_password"' in page.text
        token = csrf_token(page)
        new = "a passphrase of my own"

        async def change(current: str, first: str, second: str, csrf: str = token):
            return await client.post(
                "/signin/password",
                data={
                    "csrf_token": csrf,
                    "current_password": current,
                    "new_password": first,
                    "new_password2": second,
                },
            )

        assert (await change(PASSWORD, new, new, csrf="wrong")).status_code == 403
        wrong = await change("not the password", new, new)
        assert wrong.status_code == 401 and "current password is not right" in wrong.text
        differ = await change(PASSWORD, new, new + "!")
        assert differ.status_code == 400 and "differ" in differ.text
        same = await change(PASSWORD, PASSWORD, PASSWORD)
        assert same.status_code == 400 and "is the current one" in same.text
        short = await change(PASSWORD, "short", "short")
        assert short.status_code == 400 and "at least 10 characters" in short.text

        before = client.cookies.get("incamera_session")
        done = await change(PASSWORD, new, new)
        assert done.status_code == 200 and 'id="password-changed"' in done.text
        # This browser has a fresh session; the other device is signed out.
        assert client.cookies.get("incamera_session") not in (None, before)
        assert (await client.get("/api/me")).json()["kind"] == "account"
        assert (await laptop.get("/api/me")).json()["kind"] == "guest"
        assert (await sign_in(laptop, "alice", PASSWORD)).status_code == 401
        assert (await sign_in(laptop, "alice", new)).status_code == 303
    audit = server.app.state.audit
    await audit.flush()
    kinds = [event.kind for event in await audit.query(limit=50)]
    assert kinds.count("password_change_failed") == 1 and kinds.count("password_changed") == 1


async def test_wrong_current_passwords_are_throttled(server: RunningServer):
    await create_user(server)
    client = server.client
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303
    token = csrf_token(await client.get("/signin/password"))
    fields = {
        "csrf_token": token,
        "current_password": "guess",
        "new_password": "whatever it may be",
        "new_password2": "whatever it may be",
    }
    statuses = [(await client.post("/signin/password", data=fields)).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    # Throttled even with the right password until the window passes.
    right = await client.post("/signin/password", data={**fields, "current_password": PASSWORD})
    assert right.status_code == 429
