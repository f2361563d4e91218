"""Sign-in over HTTP: the sign-in pages, sign-out, OpenID Connect, ``/api/me``, TOTP
enrolment. The domain logic is in ``incamera.identity``; this module is the adapter.

Pages are rendered on the server from ``web/signin.html`` (no script needed) and every
form carries the session's CSRF token. A failed step answers with the same page, a clear
message and a fitting status (401 wrong credentials, 403 CSRF or disabled, 429 throttled).

Other handlers ask ``await principal(request)`` who is there: a ``SignedInAccount`` or a
``Guest``.
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import structlog
from anyio import to_thread
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from incamera.config import Settings
from incamera.identity import csrf, totp
from incamera.identity.accounts import (
    AccountDisabled,
    AccountError,
    Accounts,
    BadCredentials,
    principal_for,
)
from incamera.identity.oidc import CALLBACK_PATH, OidcClient, OidcError, OidcFlow
from incamera.identity.passwords import PasswordHashing, PasswordRejected
from incamera.identity.principal import Guest, Principal, SignedInAccount
from incamera.identity.sessions import Session, SessionPolicy, Sessions
from incamera.identity.throttle import FailureThrottle, Throttled
from incamera.store import Database
from incamera.store.accounts import AccountRecord, AccountStore
from incamera.store.sessions import SessionStore

from .api import ApiError, read_json_body
from .context import ServerContext

log = structlog.get_logger(__name__)

PAGE = "signin.html"
PENDING_TTL_SECONDS = 300  # between the password and the code / new password
MAX_FORM_BYTES = 8 * 1024
NO_STORE = {"cache-control": "no-store"}


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """``Secure`` and the ``__Host-`` prefix whenever the public origin is https; neither on
    plain http://localhost (see docs/operations.md, "Sessions and cookies")."""

    name: str
    secure: bool

    @classmethod
    def for_settings(cls, settings: Settings) -> CookiePolicy:
        secure = settings.base_url.startswith("https://")
        name = settings.identity.cookie_name
        return cls(name=f"__Host-{name}" if secure else name, secure=secure)

    def set(self, response: Response, session_id: str) -> None:
        response.set_cookie(
            self.name,
            session_id,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self.name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )


@dataclass
class Identity:
    """Everything sign-in needs, one per app (``identity_of(app)``)."""

    accounts: Accounts
    sessions: Sessions
    throttle: FailureThrottle
    cookie: CookiePolicy
    oidc: OidcClient | None
    provider_name: str

    @classmethod
    def build(cls, settings: Settings, database: Database) -> Identity:
        ident = settings.identity
        oidc: OidcClient | None = None
        if settings.oidc.issuer is not None:
            assert settings.oidc.client_id and settings.oidc.client_secret
            oidc = OidcClient(
                issuer=settings.oidc.issuer,
                client_id=settings.oidc.client_id,
                client_secret=settings.oidc.client_secret,
                redirect_uri=settings.base_url + CALLBACK_PATH,
                scopes=settings.oidc.scopes,
            )
        return cls(
            accounts=Accounts(AccountStore(database), PasswordHashing()),
            sessions=Sessions(
                SessionStore(database),
                SessionPolicy(
                    idle=timedelta(seconds=ident.session_idle_seconds),
                    absolute=timedelta(seconds=ident.session_absolute_seconds),
                ),
            ),
            throttle=FailureThrottle(
                limit=ident.signin_attempts, window=float(ident.signin_window_seconds)
            ),
            cookie=CookiePolicy.for_settings(settings),
            oidc=oidc,
            provider_name=settings.oidc.provider_name,
        )


def identity_of(app: Any) -> Identity:
    identity: Identity | None = getattr(app.state, "identity", None)
    if identity is None:
        context = ServerContext.of(app)
        identity = Identity.build(context.settings, context.database)
        app.state.identity = identity
    return identity


# --- who is there --------------------------------------------------------------------------


async def current_session(request: HTTPConnection) -> Session | None:
    """The request's live session (cached on the request), or None. ``request`` may also be
    a WebSocket (the upgrade request's cookies)."""
    if "incamera_session" in request.scope:
        cached: Session | None = request.scope["incamera_session"]
        return cached
    identity = identity_of(request.app)
    cookie = request.cookies.get(identity.cookie.name)
    session = await to_thread.run_sync(identity.sessions.resume, cookie) if cookie else None
    request.scope["incamera_session"] = session
    return session


async def principal(request: HTTPConnection) -> Principal:
    """Who sent ``request`` (an HTTP request or a WebSocket): the signed-in account, or a
    guest."""
    session = await current_session(request)
    if session is None or session.account_id is None:
        return Guest()
    identity = identity_of(request.app)
    account = await to_thread.run_sync(identity.accounts.store.get, session.account_id)
    if account is None or account.is_disabled:
        return Guest()
    method = session.auth_method or "password"
    issuer = session.data.get("issuer")
    return principal_for(account, method, issuer if isinstance(issuer, str) else None)  # type: ignore[arg-type]


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _audit(request: Request, kind: str, actor: str | None, **details: object) -> None:
    """Record a sign-in event in the audit log (no user names, no passwords)."""
    audit = getattr(request.app.state, "audit", None)
    if audit is not None:
        audit.record(kind, actor=actor, details=details, source_ip=_source(request))


# --- rendering -----------------------------------------------------------------------------


def _page(request: Request, title: str, body: str, status: int = 200) -> HTMLResponse:
    from .app import WEB_DIR

    template = (WEB_DIR / PAGE).read_text(encoding="utf-8")
    content = f"<h1>{html.escape(title)}</h1>\n{body}"
    return HTMLResponse(
        template.replace("<!--content-->", content), status_code=status, headers=NO_STORE
    )


def _error(message: str | None) -> str:
    if not message:
        return ""
    return f'<p class="signin-error" role="alert" id="signin-error">{html.escape(message)}</p>'


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{name}" value="{html.escape(value)}">'


def _password_form(
    request: Request, session: Session, error: str | None = None, status: int = 200
) -> HTMLResponse:
    identity = identity_of(request.app)
    body = f"""{_error(error)}
<form class="signin-form" method="post" action="/signin">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}{_hidden("step", "password")}
  <label>Username <input name="username" autocomplete="username" required autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"
    required></label>
  <button type="submit">Sign in</button>
</form>"""
    if identity.oidc is not None:
        name = html.escape(identity.provider_name)
        body += f"""
<p class="signin-or">or</p>
<p><a class="sso-link" id="sso" href="/auth/oidc/start">Sign in with {name}</a></p>"""
    return _page(request, "Sign in", body, status)


def _code_form(session: Session, request: Request, error: str | None, status: int) -> HTMLResponse:
    body = f"""{_error(error)}
<p>Enter the 6-digit code from your authenticator app.</p>
<form class="signin-form" method="post" action="/signin">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}{_hidden("step", "totp")}
  <label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code"
    pattern="[0-9 ]{{6,7}}" required autofocus></label>
  <button type="submit">Continue</button>
</form>"""
    return _page(request, "Second factor", body, status)


def _change_form(
    session: Session,
    request: Request,
    error: str | None,
    status: int,
    step: str = "change",
    token: str | None = None,
) -> HTMLResponse:
    extra = _hidden("token", token) if token else ""
    action = "/signin/reset" if step == "reset" else "/signin"
    body = f"""{_error(error)}
<p>Choose a new password (at least 10 characters).</p>
<form class="signin-form" method="post" action="{action}">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}{_hidden("step", step)}{extra}
  <label>New password <input name="new_password" type="password" autocomplete="new-password"
    required autofocus></label>
  <label>Repeat it <input name="new_password2" type="password" autocomplete="new-password"
    required></label>
  <button type="submit">Set password</button>
</form>"""
    return _page(request, "New password", body, status)


def _signed_in_page(request: Request, session: Session, who: SignedInAccount) -> HTMLResponse:
    body = f"""<p id="signed-in">Signed in as <strong>{html.escape(who.display_name)}</strong>.</p>
<p><a href="/">Start or join a meeting</a> · <a href="/signin/totp">Second factor</a></p>
<form method="post" action="/signout">{_hidden(csrf.FORM_FIELD, session.csrf_token)}
  <button type="submit">Sign out</button></form>"""
    return _page(request, "Signed in", body)


# --- sessions and forms --------------------------------------------------------------------


async def _ensure_session(request: Request) -> tuple[Session, bool]:
    """The current session, or a new pre-sign-in one (``True``: set its cookie)."""
    session = await current_session(request)
    if session is not None:
        return session, False
    identity = identity_of(request.app)
    session = await to_thread.run_sync(identity.sessions.start)
    request.scope["incamera_session"] = session
    return session, True


async def _read_form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise ApiError(415, "unsupported_media_type", "expected a form")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ApiError(413, "body_too_large", "form too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_form", "form is not UTF-8") from None
    return dict(pairs)


async def _begin_signed_in(
    request: Request,
    old: Session | None,
    account: AccountRecord,
    method: str,
    issuer: str | None = None,
    to: str = "/",
) -> Response:
    """End the pre-sign-in session and start a fresh one (no session fixation)."""
    identity = identity_of(request.app)
    if old is not None:
        await to_thread.run_sync(identity.sessions.end, old)
    data = {"issuer": issuer} if issuer else {}
    session = await to_thread.run_sync(lambda: identity.sessions.start(account.id, method, data))
    response = RedirectResponse(to, status_code=303, headers=NO_STORE)
    identity.cookie.set(response, session.id)
    log.info("signed in", method=method)
    _audit(request, "signin_succeeded", account.id, method=method)
    return response


def _pending(session: Session, step: str) -> str | None:
    pending = session.data.get("pending")
    if not isinstance(pending, dict) or pending.get("step") != step:
        return None
    if time.time() - float(pending.get("since", 0)) > PENDING_TTL_SECONDS:
        return None
    account_id = pending.get("account_id")
    return account_id if isinstance(account_id, str) else None


# --- handlers ------------------------------------------------------------------------------


async def signin_page(request: Request) -> Response:
    session, fresh = await _ensure_session(request)
    who = await principal(request)
    if isinstance(who, SignedInAccount):
        response: Response = _signed_in_page(request, session, who)
    elif _pending(session, "totp"):
        response = _code_form(session, request, None, 200)
    elif _pending(session, "change"):
        response = _change_form(session, request, None, 200)
    else:
        response = _password_form(request, session)
    if fresh:
        identity_of(request.app).cookie.set(response, session.id)
    return response


async def signin_submit(request: Request) -> Response:
    identity = identity_of(request.app)
    form = await _read_form(request)
    session = await current_session(request)
    if session is None:
        session, _ = await _ensure_session(request)
        response = _password_form(
            request, session, "Your sign-in form had expired. Please try again.", 403
        )
        identity.cookie.set(response, session.id)
        return response
    try:
        csrf.check(session.csrf_token, form.get(csrf.FORM_FIELD))
    except csrf.CsrfRejected:
        return _password_form(
            request, session, "The form was not sent from this page. Please try again.", 403
        )
    step = form.get("step", "password")
    if step == "totp":
        return await _submit_code(request, session, form)
    if step == "change":
        return await _submit_change(request, session, form)
    return await _submit_password(request, session, form)


async def _submit_password(request: Request, session: Session, form: dict[str, str]) -> Response:
    identity = identity_of(request.app)
    username = form.get("username", "").strip()
    password = form.get("password", "")
    source = _source(request)
    try:
        identity.throttle.check(username, source, time.monotonic())
    except Throttled as exc:
        log.info("sign-in throttled")
        _audit(request, "signin_failed", None, reason="throttled", step="password")
        return _password_form(request, session, str(exc), 429)
    try:
        checked = await to_thread.run_sync(identity.accounts.check_password, username, password)
    except BadCredentials as exc:
        identity.throttle.failed(username, source, time.monotonic())
        log.info("sign-in failed", reason="bad_credentials")
        _audit(request, "signin_failed", None, reason="bad_credentials", step="password")
        return _password_form(request, session, str(exc), 401)
    except AccountDisabled as exc:
        log.info("sign-in failed", reason="disabled")
        _audit(request, "signin_failed", None, reason="disabled", step="password")
        return _password_form(request, session, str(exc), 403)
    identity.throttle.succeeded(username, source)
    account = checked.account
    if checked.needs_totp or checked.must_change_password:
        step = "totp" if checked.needs_totp else "change"
        pending = {
            "step": step,
            "account_id": account.id,
            "since": time.time(),
            "method": "password",
        }
        await to_thread.run_sync(identity.sessions.set_data, session, {"pending": pending})
        return RedirectResponse("/signin", status_code=303, headers=NO_STORE)
    return await _begin_signed_in(request, session, account, "password")


async def _submit_code(request: Request, session: Session, form: dict[str, str]) -> Response:
    identity = identity_of(request.app)
    account_id = _pending(session, "totp")
    if account_id is None:
        return _password_form(request, session, "Please sign in again.", 400)
    key, source = f"totp:{account_id}", _source(request)
    try:
        identity.throttle.check(key, source, time.monotonic())
    except Throttled as exc:
        return _code_form(session, request, str(exc), 429)
    try:
        account = await to_thread.run_sync(
            identity.accounts.check_totp, account_id, form.get("code", "")
        )
    except BadCredentials as exc:
        identity.throttle.failed(key, source, time.monotonic())
        log.info("sign-in failed", reason="bad_totp")
        _audit(request, "signin_failed", account_id, reason="bad_totp", step="totp")
        return _code_form(session, request, str(exc), 401)
    except AccountError as exc:
        return _password_form(request, session, str(exc), 403)
    identity.throttle.succeeded(key, source)
    if account.must_change_password:
        pending = {
            "step": "change",
            "account_id": account.id,
            "since": time.time(),
            "method": "password+totp",
        }
        await to_thread.run_sync(identity.sessions.set_data, session, {"pending": pending})
        return RedirectResponse("/signin", status_code=303, headers=NO_STORE)
    return await _begin_signed_in(request, session, account, "password+totp")


def _new_password(form: dict[str, str]) -> str:
    new = form.get("new_password", "")
    if new != form.get("new_password2", ""):
        raise PasswordRejected("the two passwords differ")
    return new


async def _submit_change(request: Request, session: Session, form: dict[str, str]) -> Response:
    identity = identity_of(request.app)
    account_id = _pending(session, "change")
    if account_id is None:
        return _password_form(request, session, "Please sign in again.", 400)
    try:
        new = _new_password(form)
        await to_thread.run_sync(identity.accounts.change_password, account_id, new)
    except PasswordRejected as exc:
        return _change_form(session, request, f"Not changed: {exc}.", 400)
    account = await to_thread.run_sync(identity.accounts.get, account_id)
    method = session.data["pending"].get("method", "password")
    await to_thread.run_sync(identity.sessions.end_all_for, account_id)
    return await _begin_signed_in(request, session, account, method)


async def reset_page(request: Request) -> Response:
    """``/signin/reset?token=...``: the link an administrator's reset prints."""
    session, fresh = await _ensure_session(request)
    token = request.query_params.get("token", "")
    response = _change_form(session, request, None, 200, step="reset", token=token)
    if fresh:
        identity_of(request.app).cookie.set(response, session.id)
    return response


async def reset_submit(request: Request) -> Response:
    identity = identity_of(request.app)
    form = await _read_form(request)
    session = await current_session(request)
    token = form.get("token", "")
    if session is None:
        session, _ = await _ensure_session(request)
        response = _change_form(
            session, request, "The form had expired. Please try again.", 403, "reset", token
        )
        identity.cookie.set(response, session.id)
        return response
    try:
        csrf.check(session.csrf_token, form.get(csrf.FORM_FIELD))
        new = _new_password(form)
        account = await to_thread.run_sync(identity.accounts.redeem_reset, token, new)
    except csrf.CsrfRejected:
        return _change_form(session, request, "Please try again.", 403, "reset", token)
    except PasswordRejected as exc:
        return _change_form(session, request, f"Not changed: {exc}.", 400, "reset", token)
    except BadCredentials as exc:
        return _password_form(request, session, str(exc), 400)
    await to_thread.run_sync(identity.sessions.end_all_for, account.id)
    return RedirectResponse("/signin", status_code=303, headers=NO_STORE)


async def signout(request: Request) -> Response:
    identity = identity_of(request.app)
    form = await _read_form(request)
    session = await current_session(request)
    response = RedirectResponse("/", status_code=303, headers=NO_STORE)
    if session is None:
        identity.cookie.clear(response)
        return response
    try:
        csrf.check(session.csrf_token, form.get(csrf.FORM_FIELD))
    except csrf.CsrfRejected:
        return _page(request, "Sign out", _error("Sign-out refused: please use the button."), 403)
    await to_thread.run_sync(identity.sessions.end, session)
    identity.cookie.clear(response)
    return response


# --- OpenID Connect ------------------------------------------------------------------------


async def oidc_start(request: Request) -> Response:
    identity = identity_of(request.app)
    if identity.oidc is None:
        return _page(request, "Sign in", _error("Single sign-on is not configured."), 404)
    session, fresh = await _ensure_session(request)
    try:
        url, flow = await identity.oidc.start()
    except OidcError as exc:
        log.warning("oidc start failed", reason=str(exc))
        return _password_form(request, session, str(exc), 502)
    await to_thread.run_sync(identity.sessions.set_data, session, {"oidc": flow.as_dict()})
    response = RedirectResponse(url, status_code=303, headers=NO_STORE)
    if fresh:
        identity.cookie.set(response, session.id)
    return response


async def oidc_callback(request: Request) -> Response:
    identity = identity_of(request.app)
    if identity.oidc is None:
        return _page(request, "Sign in", _error("Single sign-on is not configured."), 404)
    session = await current_session(request)
    flow = OidcFlow.from_dict(session.data.get("oidc")) if session else None
    if session is None or flow is None:
        session, fresh = await _ensure_session(request)
        response = _password_form(
            request, session, "This sign-in was not started here, or it expired. Try again.", 400
        )
        if fresh:
            identity.cookie.set(response, session.id)
        return response
    await to_thread.run_sync(identity.sessions.set_data, session, {})  # the flow is used once
    try:
        found = await identity.oidc.finish(flow, dict(request.query_params))
        account = await to_thread.run_sync(
            identity.accounts.sign_in_with_oidc, found.issuer, found.subject, found.display_name
        )
    except OidcError as exc:
        log.info("sign-in failed", reason="oidc", detail=str(exc))
        _audit(request, "signin_failed", None, reason="oidc", step="oidc")
        return _password_form(request, session, str(exc), 400)
    except AccountDisabled as exc:
        return _password_form(request, session, str(exc), 403)
    return await _begin_signed_in(request, session, account, "oidc", issuer=found.issuer)


# --- JSON API ------------------------------------------------------------------------------


async def me(request: Request) -> Response:
    """``GET /api/me``: who am I, and the CSRF token for JSON calls (None without session)."""
    who = await principal(request)
    session = await current_session(request)
    body: dict[str, Any] = who.as_json()
    body["csrf_token"] = session.csrf_token if session else None
    return JSONResponse(body, headers=NO_STORE)


async def _signed_in_json(request: Request) -> tuple[Session, SignedInAccount]:
    """For JSON calls that change state: a signed-in session and the right X-CSRF-Token."""
    session = await current_session(request)
    who = await principal(request)
    if session is None or not isinstance(who, SignedInAccount):
        raise ApiError(401, "not_signed_in", "sign in first")
    try:
        csrf.check(session.csrf_token, request.headers.get(csrf.HEADER))
    except csrf.CsrfRejected as exc:
        raise ApiError(403, "csrf", f"{exc}: send the X-CSRF-Token header from /api/me") from None
    return session, who


async def totp_begin(request: Request) -> Response:
    """``POST /api/me/totp``: a new secret to enrol (stored once confirmed)."""
    identity = identity_of(request.app)
    session, who = await _signed_in_json(request)
    account = await to_thread.run_sync(identity.accounts.get, who.account_id)
    if account.password_hash is None:
        raise ApiError(409, "no_local_password", "single sign-on accounts use the provider's 2FA")
    enrolment = identity.accounts.begin_totp(account)
    data = {**session.data, "totp_enrol": base64.b64encode(enrolment.secret).decode()}
    await to_thread.run_sync(identity.sessions.set_data, session, data)
    return JSONResponse({"secret": enrolment.secret_base32, "uri": enrolment.uri}, headers=NO_STORE)


async def totp_confirm(request: Request) -> Response:
    """``POST /api/me/totp/confirm {"code": "123456"}``: enrol the secret from totp_begin."""
    identity = identity_of(request.app)
    session, who = await _signed_in_json(request)
    body = await read_json_body(request)
    code = body.get("code") if isinstance(body, dict) else None
    pending = session.data.get("totp_enrol")
    if not isinstance(code, str) or not isinstance(pending, str):
        raise ApiError(400, "invalid_request", "start with POST /api/me/totp, then send a code")
    try:
        await to_thread.run_sync(
            identity.accounts.confirm_totp, who.account_id, base64.b64decode(pending), code
        )
    except BadCredentials as exc:
        raise ApiError(400, "wrong_code", str(exc)) from None
    data = {k: v for k, v in session.data.items() if k != "totp_enrol"}
    await to_thread.run_sync(identity.sessions.set_data, session, data)
    return Response(status_code=204, headers=NO_STORE)


async def totp_page(request: Request) -> Response:
    """``GET /signin/totp``: enrol an authenticator app (signed-in local accounts)."""
    identity = identity_of(request.app)
    session = await current_session(request)
    who = await principal(request)
    if session is None or not isinstance(who, SignedInAccount):
        return RedirectResponse("/signin", status_code=303, headers=NO_STORE)
    account = await to_thread.run_sync(identity.accounts.get, who.account_id)
    if account.password_hash is None:
        body = _error("Single sign-on accounts use the second factor of their provider.")
        return _page(request, "Second factor", body, 409)
    enrolment = identity.accounts.begin_totp(account)
    data = {**session.data, "totp_enrol": base64.b64encode(enrolment.secret).decode()}
    session = await to_thread.run_sync(identity.sessions.set_data, session, data)
    return _totp_enrol_form(request, session, enrolment.secret_base32, enrolment.uri, None, 200)


def _totp_enrol_form(
    request: Request, session: Session, secret: str, uri: str, error: str | None, status: int
) -> HTMLResponse:
    body = f"""{_error(error)}
<p>Add this key to your authenticator app, then enter the code it shows.</p>
<p>Key: <span class="secret" id="totp-secret">{html.escape(secret)}</span></p>
<p>Or open: <a class="secret" id="totp-uri" href="{html.escape(uri)}">{html.escape(uri)}</a></p>
<form class="signin-form" method="post" action="/signin/totp">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}
  <label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code"
    required autofocus></label>
  <button type="submit">Turn on</button>
</form>"""
    return _page(request, "Second factor", body, status)


async def totp_page_submit(request: Request) -> Response:
    identity = identity_of(request.app)
    form = await _read_form(request)
    session = await current_session(request)
    who = await principal(request)
    if session is None or not isinstance(who, SignedInAccount):
        return RedirectResponse("/signin", status_code=303, headers=NO_STORE)
    pending = session.data.get("totp_enrol")
    try:
        csrf.check(session.csrf_token, form.get(csrf.FORM_FIELD))
    except csrf.CsrfRejected:
        return _page(request, "Second factor", _error("Please try again."), 403)
    if not isinstance(pending, str):
        return RedirectResponse("/signin/totp", status_code=303, headers=NO_STORE)
    secret = base64.b64decode(pending)
    try:
        await to_thread.run_sync(
            identity.accounts.confirm_totp, who.account_id, secret, form.get("code", "")
        )
    except BadCredentials as exc:
        account = await to_thread.run_sync(identity.accounts.get, who.account_id)
        label = account.username or account.display_name
        uri = totp.provisioning_uri(secret, label, "incamera")
        b32 = base64.b32encode(secret).decode().rstrip("=")
        return _totp_enrol_form(request, session, b32, uri, str(exc), 400)
    data = {k: v for k, v in session.data.items() if k != "totp_enrol"}
    await to_thread.run_sync(identity.sessions.set_data, session, data)
    body = '<p id="totp-on">The second factor is on.</p><p><a href="/">Continue</a></p>'
    return _page(request, "Second factor", body)


routes = [
    Route("/signin/totp", totp_page, methods=["GET"]),
    Route("/signin/totp", totp_page_submit, methods=["POST"]),
    Route("/signin", signin_page, methods=["GET", "HEAD"]),
    Route("/signin", signin_submit, methods=["POST"]),
    Route("/signin/reset", reset_page, methods=["GET", "HEAD"]),
    Route("/signin/reset", reset_submit, methods=["POST"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/auth/oidc/start", oidc_start, methods=["GET"]),
    Route(CALLBACK_PATH, oidc_callback, methods=["GET"]),
    Route("/api/me", me, methods=["GET"]),
    Route("/api/me/totp", totp_begin, methods=["POST"]),
    Route("/api/me/totp/confirm", totp_confirm, methods=["POST"]),
]
