"""Sign-in over HTTP: the sign-in pages, sign-out, OpenID Connect, ``/api/me``, TOTP
enrolment. The domain logic is in ``incamera.identity``; this module is the adapter.

Pages are rendered on the server from ``web/signin.html`` (no script needed) and every
form carries the session's CSRF token. A failed step answers with the same page, a clear
message and a fitting status (401 wrong credentials, 403 CSRF or disabled, 429 throttled).
They are in English or German (``page_text``: its table holds every sentence; the
``lang`` query parameter, remembered in a cookie, else ``Accept-Language`` chooses).

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
from urllib.parse import parse_qsl, urlencode

import structlog
from anyio import to_thread
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from incamera.config import OidcSettings, Settings
from incamera.identity import csrf, totp
from incamera.identity.accounts import (
    AccountDisabled,
    AccountError,
    Accounts,
    BadCredentials,
    principal_for,
)
from incamera.identity.oidc import CALLBACK_PATH, OidcClient, OidcError, OidcFlow
from incamera.identity.passwords import MIN_LENGTH, PasswordHashing, PasswordRejected
from incamera.identity.principal import Guest, Principal, SignedInAccount
from incamera.identity.secret_box import SecretBox
from incamera.identity.sessions import Session, SessionPolicy, Sessions
from incamera.identity.throttle import FailureThrottle, Throttled
from incamera.store import Database
from incamera.store.accounts import AccountRecord, AccountStore
from incamera.store.sessions import SessionStore

from . import page_text
from .api import ApiError, read_json_body
from .context import ServerContext
from .page_text import Lang, error_text, html_text, text
from .security import origin_of

log = structlog.get_logger(__name__)

PAGE = "signin.html"
PENDING_TTL_SECONDS = 300  # between the password and the code / new password
MAX_FORM_BYTES = 8 * 1024
NO_STORE = {"cache-control": "no-store"}
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
# Pages whose address may be repeated with another ?lang= (GET only); any other page's
# language switch leads to /signin.
LANG_SWITCH_PATHS = frozenset({"/signin", "/signin/reset", "/signin/totp"})
DEFAULT_PROVIDER_NAME = OidcSettings.model_fields["provider_name"].default


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

    def remember_language(self, response: Response, lang: Lang) -> None:
        """The ``incamera_lang`` cookie: the language chosen with ``?lang=`` (not secret,
        so not HttpOnly; ``Secure`` like the session cookie)."""
        response.set_cookie(
            page_text.COOKIE,
            lang,
            max_age=LANG_COOKIE_MAX_AGE,
            path="/",
            secure=self.secure,
            samesite="lax",
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
                post_logout_redirect_uri=(
                    settings.base_url + "/" if settings.oidc.end_provider_session else None
                ),
                scopes=settings.oidc.scopes,
            )
        return cls(
            accounts=Accounts(
                AccountStore(database),
                PasswordHashing(),
                SecretBox.from_file(settings.secret_key_path),
            ),
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


def page_language(request: HTTPConnection) -> Lang:
    """The sign-in pages' language for ``request`` (see ``page_text.negotiate``)."""
    return page_text.negotiate(
        request.query_params.get(page_text.QUERY),
        request.cookies.get(page_text.COOKIE),
        request.headers.get("accept-language"),
    )


def _say(request: Request, key: str, **params: object) -> str:
    return text(page_language(request), key, **params)


def _h(lang: Lang, key: str, **params: object) -> str:
    """``text`` escaped for HTML."""
    return html.escape(text(lang, key, **params))


def _explain(request: Request, error: Exception) -> str:
    return error_text(page_language(request), error)


def _switch_href(request: Request, lang: Lang) -> str:
    """This page again in ``lang``: the same address where a GET may be repeated, else
    the sign-in page."""
    if request.method in ("GET", "HEAD") and request.url.path in LANG_SWITCH_PATHS:
        path = request.url.path
        query = [(k, v) for k, v in request.query_params.multi_items() if k != page_text.QUERY]
    else:
        path, query = "/signin", []
    return f"{path}?{urlencode([*query, (page_text.QUERY, lang)])}"


def _language_switch(request: Request, lang: Lang) -> str:
    links = []
    for code, name in page_text.LANGUAGE_NAMES.items():
        current = ' aria-current="true"' if code == lang else ""
        href = html.escape(_switch_href(request, code))
        links.append(
            f'<a href="{href}" hreflang="{code}" lang="{code}" id="lang-{code}"{current}>'
            f"{html.escape(name)}</a>"
        )
    label = html.escape(text(lang, "page.language"))
    return f'<nav class="signin-lang" aria-label="{label}">{" · ".join(links)}</nav>'


def _page(request: Request, title: str, body: str, status: int = 200) -> HTMLResponse:
    """``title`` and ``body`` (HTML) in the page frame, in the request's language; a valid
    ``?lang=`` is remembered in the language cookie."""
    from .app import WEB_DIR

    lang = page_language(request)
    template = (WEB_DIR / PAGE).read_text(encoding="utf-8")
    frame = (
        template.replace("{{lang}}", lang)
        .replace("{{title}}", html.escape(f"{title} · incamera"))
        .replace("<!--language-switch-->", _language_switch(request, lang))
    )
    content = f"<h1>{html.escape(title)}</h1>\n{body}"
    response = HTMLResponse(
        frame.replace("<!--content-->", content), status_code=status, headers=NO_STORE
    )
    chosen = request.query_params.get(page_text.QUERY)
    if page_text.is_lang(chosen):
        identity_of(request.app).cookie.remember_language(response, chosen)
    return response


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
    lang = page_language(request)
    body = f"""{_error(error)}
<form class="signin-form" method="post" action="/signin">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}{_hidden("step", "password")}
  <label>{_h(lang, "signin.username")} <input name="username" autocomplete="username" required
    autofocus></label>
  <label>{_h(lang, "signin.password")} <input name="password" type="password"
    autocomplete="current-password" required></label>
  <button type="submit">{_h(lang, "signin.submit")}</button>
</form>"""
    if identity.oidc is not None:
        provider = identity.provider_name
        if provider == DEFAULT_PROVIDER_NAME:
            provider = text(lang, "signin.sso_default_name")
        sso = html.escape(text(lang, "signin.sso", provider=provider))
        body += f"""
<p class="signin-or">{_h(lang, "signin.or")}</p>
<p><a class="sso-link" id="sso" href="/auth/oidc/start">{sso}</a></p>"""
    return _page(request, text(lang, "signin.title"), body, status)


def _code_form(session: Session, request: Request, error: str | None, status: int) -> HTMLResponse:
    lang = page_language(request)
    body = f"""{_error(error)}
<p>{_h(lang, "code.intro")}</p>
<form class="signin-form" method="post" action="/signin">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}{_hidden("step", "totp")}
  <label>{_h(lang, "code.field")} <input name="code" inputmode="numeric"
    autocomplete="one-time-code" pattern="[0-9 ]{{6,7}}" required autofocus></label>
  <button type="submit">{_h(lang, "code.submit")}</button>
</form>"""
    return _page(request, text(lang, "code.title"), body, status)


def _change_form(
    session: Session,
    request: Request,
    error: str | None,
    status: int,
    step: str = "change",
    token: str | None = None,
) -> HTMLResponse:
    lang = page_language(request)
    extra = _hidden("token", token) if token else ""
    action = "/signin/reset" if step == "reset" else "/signin"
    intro = html.escape(text(lang, "change.intro", n=MIN_LENGTH))
    body = f"""{_error(error)}
<p>{intro}</p>
<form class="signin-form" method="post" action="{action}">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}{_hidden("step", step)}{extra}
  <label>{_h(lang, "change.new")} <input name="new_password" type="password"
    autocomplete="new-password" required autofocus></label>
  <label>{_h(lang, "change.repeat")} <input name="new_password2" type="password"
    autocomplete="new-password" required></label>
  <button type="submit">{_h(lang, "change.submit")}</button>
</form>"""
    return _page(request, text(lang, "change.title"), body, status)


def _signed_in_page(request: Request, session: Session, who: SignedInAccount) -> HTMLResponse:
    lang = page_language(request)
    name = f"<strong>{html.escape(who.display_name)}</strong>"
    second = _h(lang, "signed_in.second_factor")
    body = f"""<p id="signed-in">{html_text(lang, "signed_in.as", name=name)}</p>
<p><a href="/">{_h(lang, "signed_in.meeting")}</a> · <a href="/signin/totp">{second}</a>
 · <a href="/signin/password">{_h(lang, "signed_in.password")}</a></p>
<form method="post" action="/signout">{_hidden(csrf.FORM_FIELD, session.csrf_token)}
  <button type="submit">{_h(lang, "signout.submit")}</button></form>"""
    return _page(request, text(lang, "signed_in.title"), body)


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
    id_token: str | None = None,
) -> Response:
    """End the pre-sign-in session and start a fresh one (no session fixation). A single
    sign-on session keeps the provider's id token: signing out sends it back as the hint."""
    identity = identity_of(request.app)
    if old is not None:
        await to_thread.run_sync(identity.sessions.end, old)
    data: dict[str, str] = {"issuer": issuer} if issuer else {}
    if id_token:
        data["id_token"] = id_token
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
        response = _password_form(request, session, _say(request, "form.expired"), 403)
        identity.cookie.set(response, session.id)
        return response
    try:
        csrf.check(session.csrf_token, form.get(csrf.FORM_FIELD))
    except csrf.CsrfRejected:
        return _password_form(request, session, _say(request, "form.csrf"), 403)
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
        return _password_form(request, session, _explain(request, exc), 429)
    try:
        checked = await to_thread.run_sync(identity.accounts.check_password, username, password)
    except BadCredentials as exc:
        identity.throttle.failed(username, source, time.monotonic())
        log.info("sign-in failed", reason="bad_credentials")
        _audit(request, "signin_failed", None, reason="bad_credentials", step="password")
        return _password_form(request, session, _explain(request, exc), 401)
    except AccountDisabled as exc:
        log.info("sign-in failed", reason="disabled")
        _audit(request, "signin_failed", None, reason="disabled", step="password")
        return _password_form(request, session, _explain(request, exc), 403)
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
        return _password_form(request, session, _say(request, "form.sign_in_again"), 400)
    key, source = f"totp:{account_id}", _source(request)
    try:
        identity.throttle.check(key, source, time.monotonic())
    except Throttled as exc:
        return _code_form(session, request, _explain(request, exc), 429)
    try:
        account = await to_thread.run_sync(
            identity.accounts.check_totp, account_id, form.get("code", "")
        )
    except BadCredentials as exc:
        identity.throttle.failed(key, source, time.monotonic())
        log.info("sign-in failed", reason="bad_totp")
        _audit(request, "signin_failed", account_id, reason="bad_totp", step="totp")
        return _code_form(session, request, _explain(request, exc), 401)
    except AccountError as exc:
        return _password_form(request, session, _explain(request, exc), 403)
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


def _not_changed(request: Request, error: PasswordRejected) -> str:
    return _say(request, "change.refused", reason=_explain(request, error))


def _new_password(form: dict[str, str]) -> str:
    new = form.get("new_password", "")
    if new != form.get("new_password2", ""):
        raise PasswordRejected("the two passwords differ")
    return new


async def _submit_change(request: Request, session: Session, form: dict[str, str]) -> Response:
    identity = identity_of(request.app)
    account_id = _pending(session, "change")
    if account_id is None:
        return _password_form(request, session, _say(request, "form.sign_in_again"), 400)
    try:
        new = _new_password(form)
        await to_thread.run_sync(identity.accounts.change_password, account_id, new)
    except PasswordRejected as exc:
        return _change_form(session, request, _not_changed(request, exc), 400)
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
        expired = _say(request, "form.reset_expired")
        response = _change_form(session, request, expired, 403, "reset", token)
        identity.cookie.set(response, session.id)
        return response
    try:
        csrf.check(session.csrf_token, form.get(csrf.FORM_FIELD))
        new = _new_password(form)
        account = await to_thread.run_sync(identity.accounts.redeem_reset, token, new)
    except csrf.CsrfRejected:
        return _change_form(session, request, _say(request, "form.try_again"), 403, "reset", token)
    except PasswordRejected as exc:
        return _change_form(session, request, _not_changed(request, exc), 400, "reset", token)
    except BadCredentials as exc:
        return _password_form(request, session, _explain(request, exc), 400)
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
        refused = _error(_say(request, "signout.refused"))
        return _page(request, _say(request, "signout.title"), refused, 403)
    await to_thread.run_sync(identity.sessions.end, session)
    id_token = session.data.get("id_token")
    if identity.oidc is not None and session.auth_method == "oidc" and isinstance(id_token, str):
        # Signed in through the provider: end the session there too (RP-initiated logout),
        # which comes back to the landing page.
        elsewhere = await identity.oidc.logout_url(id_token)
        if elsewhere is not None and origin_of(elsewhere) == origin_of(identity.oidc.issuer):
            response = RedirectResponse(elsewhere, status_code=303, headers=NO_STORE)
        elif elsewhere is not None:  # the page's form-action allows the issuer's origin only
            log.warning("the provider's end-session endpoint is on another origin: not used")
    identity.cookie.clear(response)
    return response


# --- OpenID Connect ------------------------------------------------------------------------


async def oidc_start(request: Request) -> Response:
    identity = identity_of(request.app)
    if identity.oidc is None:
        return _page(request, _say(request, "signin.title"), _error(_say(request, "sso.off")), 404)
    session, fresh = await _ensure_session(request)
    try:
        url, flow = await identity.oidc.start()
    except OidcError as exc:
        log.warning("oidc start failed", reason=str(exc))
        return _password_form(request, session, _explain(request, exc), 502)
    await to_thread.run_sync(identity.sessions.set_data, session, {"oidc": flow.as_dict()})
    response = RedirectResponse(url, status_code=303, headers=NO_STORE)
    if fresh:
        identity.cookie.set(response, session.id)
    return response


async def oidc_callback(request: Request) -> Response:
    identity = identity_of(request.app)
    if identity.oidc is None:
        return _page(request, _say(request, "signin.title"), _error(_say(request, "sso.off")), 404)
    session = await current_session(request)
    flow = OidcFlow.from_dict(session.data.get("oidc")) if session else None
    if session is None or flow is None:
        session, fresh = await _ensure_session(request)
        response = _password_form(request, session, _say(request, "sso.not_started"), 400)
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
        return _password_form(request, session, _explain(request, exc), 400)
    except AccountDisabled as exc:
        return _password_form(request, session, _explain(request, exc), 403)
    # The id token is kept only as the hint for signing out at the provider too.
    hint = found.id_token if identity.oidc.post_logout_redirect_uri else None
    return await _begin_signed_in(
        request, session, account, "oidc", issuer=found.issuer, id_token=hint
    )


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
    token = identity.accounts.enrolment_token(account.id, enrolment.secret)
    data = {**session.data, "totp_enrol": token}
    await to_thread.run_sync(identity.sessions.set_data, session, data)
    return JSONResponse({"secret": enrolment.secret_base32, "uri": enrolment.uri}, headers=NO_STORE)


async def totp_confirm(request: Request) -> Response:
    """``POST /api/me/totp/confirm {"code": "123456"}``: enrol the secret from totp_begin."""
    identity = identity_of(request.app)
    session, who = await _signed_in_json(request)
    body = await read_json_body(request)
    code = body.get("code") if isinstance(body, dict) else None
    pending = session.data.get("totp_enrol")
    secret = (
        identity.accounts.enrolment_secret(who.account_id, pending)
        if isinstance(pending, str)
        else None
    )
    if not isinstance(code, str) or secret is None:
        raise ApiError(400, "invalid_request", "start with POST /api/me/totp, then send a code")
    try:
        await to_thread.run_sync(identity.accounts.confirm_totp, who.account_id, secret, code)
    except BadCredentials as exc:
        raise ApiError(400, "wrong_code", str(exc)) from None
    data = {k: v for k, v in session.data.items() if k != "totp_enrol"}
    await to_thread.run_sync(identity.sessions.set_data, session, data)
    return Response(status_code=204, headers=NO_STORE)


async def totp_page(request: Request) -> Response:
    """``GET /signin/totp``: enrol an authenticator app (signed-in local accounts)."""
    identity = identity_of(request.app)
    found = await _own_account(request, "totp")
    if isinstance(found, Response):
        return found
    session, account = found
    enrolment = identity.accounts.begin_totp(account)
    token = identity.accounts.enrolment_token(account.id, enrolment.secret)
    data = {**session.data, "totp_enrol": token}
    session = await to_thread.run_sync(identity.sessions.set_data, session, data)
    return _totp_enrol_form(request, session, enrolment.secret_base32, enrolment.uri, None, 200)


def _totp_enrol_form(
    request: Request, session: Session, secret: str, uri: str, error: str | None, status: int
) -> HTMLResponse:
    lang = page_language(request)
    link = html.escape(uri)
    body = f"""{_error(error)}
<p>{_h(lang, "totp.intro")}</p>
<p>{_h(lang, "totp.key")} <span class="secret" id="totp-secret">{html.escape(secret)}</span></p>
<p>{_h(lang, "totp.open")} <a class="secret" id="totp-uri" href="{link}">{link}</a></p>
<form class="signin-form" method="post" action="/signin/totp">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}
  <label>{_h(lang, "totp.field")} <input name="code" inputmode="numeric"
    autocomplete="one-time-code" required autofocus></label>
  <button type="submit">{_h(lang, "totp.submit")}</button>
</form>"""
    return _page(request, text(lang, "totp.title"), body, status)


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
        again = _error(_say(request, "form.try_again"))
        return _page(request, _say(request, "totp.title"), again, 403)
    secret = (
        identity.accounts.enrolment_secret(who.account_id, pending)
        if isinstance(pending, str)
        else None
    )
    if secret is None:
        return RedirectResponse("/signin/totp", status_code=303, headers=NO_STORE)
    try:
        await to_thread.run_sync(
            identity.accounts.confirm_totp, who.account_id, secret, form.get("code", "")
        )
    except BadCredentials as exc:
        account = await to_thread.run_sync(identity.accounts.get, who.account_id)
        label = account.username or account.display_name
        uri = totp.provisioning_uri(secret, label, "incamera")
        b32 = base64.b32encode(secret).decode().rstrip("=")
        return _totp_enrol_form(request, session, b32, uri, _explain(request, exc), 400)
    data = {k: v for k, v in session.data.items() if k != "totp_enrol"}
    await to_thread.run_sync(identity.sessions.set_data, session, data)
    on, go_on = html.escape(_say(request, "totp.on")), html.escape(_say(request, "totp.continue"))
    body = f'<p id="totp-on">{on}</p><p><a href="/">{go_on}</a></p>'
    return _page(request, _say(request, "totp.title"), body)


# --- changing one's own password ----------------------------------------------------------


def _own_password_form(
    request: Request, session: Session, error: str | None, status: int
) -> HTMLResponse:
    lang = page_language(request)
    body = f"""{_error(error)}
<p>{_h(lang, "password.intro", n=MIN_LENGTH)}</p>
<form class="signin-form" method="post" action="/signin/password">
  {_hidden(csrf.FORM_FIELD, session.csrf_token)}
  <label>{_h(lang, "password.current")} <input name="current_password" type="password"
    autocomplete="current-password" required autofocus></label>
  <label>{_h(lang, "change.new")} <input name="new_password" type="password"
    autocomplete="new-password" required></label>
  <label>{_h(lang, "change.repeat")} <input name="new_password2" type="password"
    autocomplete="new-password" required></label>
  <button type="submit">{_h(lang, "password.submit")}</button>
</form>"""
    return _page(request, text(lang, "password.title"), body, status)


async def _own_account(request: Request, page: str) -> tuple[Session, AccountRecord] | Response:
    """The signed-in session and its local account, or the response that refuses: to sign
    in first, or (single sign-on accounts) ``page``'s explanation ("totp", "password")."""
    identity = identity_of(request.app)
    session = await current_session(request)
    who = await principal(request)
    if session is None or not isinstance(who, SignedInAccount):
        return RedirectResponse("/signin", status_code=303, headers=NO_STORE)
    account = await to_thread.run_sync(identity.accounts.get, who.account_id)
    if account.password_hash is None:
        body = _error(_say(request, f"{page}.sso_account"))
        return _page(request, _say(request, f"{page}.title"), body, 409)
    return session, account


async def own_password_page(request: Request) -> Response:
    """``GET /signin/password``: a signed-in person changes their own password."""
    found = await _own_account(request, "password")
    if isinstance(found, Response):
        return found
    return _own_password_form(request, found[0], None, 200)


async def own_password_submit(request: Request) -> Response:
    """The current password is checked (throttled like a sign-in), the new one set, every
    session of the account ended, and this browser gets a fresh one."""
    identity = identity_of(request.app)
    form = await _read_form(request)
    found = await _own_account(request, "password")
    if isinstance(found, Response):
        return found
    session, account = found
    try:
        csrf.check(session.csrf_token, form.get(csrf.FORM_FIELD))
    except csrf.CsrfRejected:
        return _own_password_form(request, session, _say(request, "form.try_again"), 403)
    key, source = f"password:{account.id}", _source(request)
    try:
        identity.throttle.check(key, source, time.monotonic())
        new = _new_password(form)
        await to_thread.run_sync(
            identity.accounts.change_own_password,
            account.id,
            form.get("current_password", ""),
            new,
        )
    except Throttled as exc:
        return _own_password_form(request, session, _explain(request, exc), 429)
    except BadCredentials as exc:
        identity.throttle.failed(key, source, time.monotonic())
        log.info("password change refused", reason="bad_credentials")
        _audit(request, "password_change_failed", account.id, reason="bad_credentials")
        return _own_password_form(request, session, _explain(request, exc), 401)
    except PasswordRejected as exc:
        return _own_password_form(request, session, _not_changed(request, exc), 400)
    identity.throttle.succeeded(key, source)
    await to_thread.run_sync(identity.sessions.end_all_for, account.id)
    fresh = await to_thread.run_sync(
        lambda: identity.sessions.start(account.id, session.auth_method, {})
    )
    log.info("password changed")
    _audit(request, "password_changed", account.id)
    lang = page_language(request)
    body = (
        f'<p id="password-changed">{_h(lang, "password.done")}</p>'
        f'<p><a href="/">{_h(lang, "password.continue")}</a></p>'
    )
    response = _page(request, text(lang, "password.title"), body)
    response.headers.update(NO_STORE)
    identity.cookie.set(response, fresh.id)
    return response


routes = [
    Route("/signin/password", own_password_page, methods=["GET"]),
    Route("/signin/password", own_password_submit, methods=["POST"]),
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
