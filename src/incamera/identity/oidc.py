"""Single sign-on with OpenID Connect (OpenID Connect Core 1.0, authorization code flow).

- Discovery (OpenID Connect Discovery 1.0 section 4): ``<issuer>/.well-known/openid-configuration``,
  whose ``issuer`` must equal the configured one exactly (section 4.3).
- Authorization request (Core section 3.1.2.1) with ``state`` (CSRF, RFC 6749 section 10.12),
  ``nonce`` (replay, Core section 3.1.2.1) and PKCE S256 (RFC 7636 section 4), built with
  authlib's OAuth 2 helpers.
- Token request (Core section 3.1.3.1) with client_secret_basic or client_secret_post.
- ID token validation (Core section 3.1.3.7) with joserfc: signature by a key of the
  provider's JWKS (asymmetric algorithms only), ``iss``, ``aud`` (and ``azp`` when there
  are several audiences), ``exp``, ``iat``, ``nonce``.
- The person is (issuer, ``sub``); their name comes from the id token or, when absent
  there, the userinfo endpoint (Core section 5.3), whose ``sub`` must match.

The flow state (state, nonce, verifier) lives in the server-side session that started it
and is used once. Tokens from the provider are not stored.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import constant_time
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

CALLBACK_PATH = "/auth/oidc/callback"
FLOW_TTL_SECONDS = 600  # an authorization started more than 10 minutes ago is refused
CLOCK_LEEWAY_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10.0
ALLOWED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
)


class OidcError(Exception):
    """Single sign-on failed; ``str(error)`` is a sentence for the person (no secrets)."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None  # OpenID Connect RP-Initiated Logout 1.0, section 2.1
    token_auth_methods: tuple[str, ...]
    signing_algorithms: tuple[str, ...]

    @classmethod
    def from_discovery(cls, document: Mapping[str, Any], expected_issuer: str) -> ProviderMetadata:
        if document.get("issuer") != expected_issuer:
            raise OidcError(
                "The identity provider's discovery document names a different issuer "
                f"({document.get('issuer')!r}) than configured ({expected_issuer!r})."
            )
        try:
            endpoints = {
                name: _https_or_loopback(str(document[name]))
                for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
            }
        except KeyError as exc:
            raise OidcError(f"The identity provider's discovery document lacks {exc}.") from None
        userinfo = document.get("userinfo_endpoint")
        end_session = document.get("end_session_endpoint")
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        algorithms = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        return cls(
            issuer=expected_issuer,
            userinfo_endpoint=_https_or_loopback(str(userinfo)) if userinfo else None,
            end_session_endpoint=_https_or_loopback(str(end_session)) if end_session else None,
            token_auth_methods=tuple(str(m) for m in methods),
            signing_algorithms=tuple(a for a in algorithms if a in ALLOWED_ALGORITHMS),
            **endpoints,
        )


def _https_or_loopback(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" or (
        parts.scheme == "http" and host in ("127.0.0.1", "::1", "localhost")
    ):
        return url
    raise OidcError(f"The identity provider announced an insecure endpoint: {url}")


@dataclass(frozen=True, slots=True)
class OidcFlow:
    """One authorization in progress, kept in the browser's server-side session."""

    state: str
    nonce: str
    code_verifier: str
    started_at: float  # unix seconds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> OidcFlow | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                state=str(data["state"]),
                nonce=str(data["nonce"]),
                code_verifier=str(data["code_verifier"]),
                started_at=float(data["started_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    issuer: str
    subject: str
    display_name: str
    email: str | None
    id_token: str  # kept with the session: the hint for signing out at the provider


def _display_name(claims: Mapping[str, Any]) -> str | None:
    for key in ("name", "preferred_username", "nickname", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    given, family = claims.get("given_name"), claims.get("family_name")
    parts = [p for p in (given, family) if isinstance(p, str) and p.strip()]
    return " ".join(parts) or None


class OidcClient:
    """The relying party. ``http`` makes the HTTP client (tests may point it elsewhere)."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        post_logout_redirect_uri: str | None = None,
        scopes: str = "openid profile email",
        clock: Callable[[], float] = time.time,
        http: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.post_logout_redirect_uri = post_logout_redirect_uri
        words = scopes.split()
        self.scope = " ".join(["openid", *[w for w in words if w != "openid"]])
        self.clock = clock
        self._http = http or (lambda: httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS))
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None

    # --- provider documents --------------------------------------------------------------

    async def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
        try:
            async with self._http() as client:
                response = await client.get(url, headers=dict(headers or {}))
        except httpx.HTTPError as exc:
            raise OidcError(
                f"The identity provider cannot be reached ({type(exc).__name__})."
            ) from exc
        if response.status_code != 200:
            raise OidcError(f"The identity provider answered {response.status_code} for {url}.")
        try:
            return response.json()
        except ValueError:
            raise OidcError(f"The identity provider sent no JSON from {url}.") from None

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url)
            if not isinstance(document, dict):
                raise OidcError("The identity provider's discovery document is not an object.")
            self._metadata = ProviderMetadata.from_discovery(document, self.issuer)
        return self._metadata

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            metadata = await self.metadata()
            document = await self._get_json(metadata.jwks_uri)
            try:
                self._keys = KeySet.import_key_set(document)
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise OidcError("The identity provider's key set cannot be read.") from exc
        return self._keys

    # --- the flow --------------------------------------------------------------------------

    async def start(self) -> tuple[str, OidcFlow]:
        """The provider's authorization URL to send the browser to, and the flow to keep."""
        metadata = await self.metadata()
        flow = OidcFlow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),  # 64 characters (RFC 7636: 43-128)
            started_at=self.clock(),
        )
        url = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=self.redirect_uri,
            scope=self.scope,
            state=flow.state,
            nonce=flow.nonce,
            code_challenge=create_s256_code_challenge(flow.code_verifier),
            code_challenge_method="S256",
        )
        return str(url), flow

    async def finish(self, flow: OidcFlow, params: Mapping[str, str]) -> OidcIdentity:
        """Complete the flow from the callback's query parameters."""
        state = params.get("state", "")
        if not constant_time.bytes_eq(state.encode(), flow.state.encode()):
            raise OidcError("The sign-in response does not belong to this browser session.")
        if self.clock() - flow.started_at > FLOW_TTL_SECONDS:
            raise OidcError("The sign-in took too long. Please start again.")
        if "error" in params:
            reason = params.get("error_description") or params["error"]
            raise OidcError(f"The identity provider refused the sign-in: {reason[:200]}")
        code = params.get("code")
        if not code:
            raise OidcError("The identity provider sent no authorization code.")
        tokens = await self._exchange(code, flow)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("The identity provider sent no id token.")
        claims = await self._validate_id_token(id_token, flow.nonce)
        name = _display_name(claims)
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        access_token = tokens.get("access_token")
        metadata = await self.metadata()
        if name is None and metadata.userinfo_endpoint and isinstance(access_token, str):
            info = await self._get_json(
                metadata.userinfo_endpoint, {"authorization": f"Bearer {access_token}"}
            )
            if isinstance(info, dict) and info.get("sub") == claims["sub"]:
                name = _display_name(info)
                if email is None and isinstance(info.get("email"), str):
                    email = info["email"]
        return OidcIdentity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            display_name=name or "Signed-in user",
            email=email,
            id_token=id_token,
        )

    async def logout_url(self, id_token: str) -> str | None:
        """Where to send the browser to end its session at the provider too (OpenID Connect
        RP-Initiated Logout 1.0), or None when the provider offers no end-session endpoint
        or no return address is configured."""
        if self.post_logout_redirect_uri is None:
            return None
        try:
            endpoint = (await self.metadata()).end_session_endpoint
        except OidcError:
            return None  # the provider is unreachable: sign out here only
        if endpoint is None:
            return None
        query = urlencode(
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": self.post_logout_redirect_uri,
                "client_id": self.client_id,
            }
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def _exchange(self, code: str, flow: OidcFlow) -> dict[str, Any]:
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": flow.code_verifier,
        }
        auth: httpx.BasicAuth | None = None
        if "client_secret_basic" in metadata.token_auth_methods:
            # RFC 6749 section 2.3.1: id and secret are form-urlencoded before Basic.
            auth = httpx.BasicAuth(
                quote(self.client_id, safe=""), quote(self.client_secret, safe="")
            )
        else:
            form.update(client_id=self.client_id, client_secret=self.client_secret)
        try:
            async with self._http() as client:
                response = await client.post(
                    metadata.token_endpoint,
                    data=form,
                    auth=auth,
                    headers={"accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise OidcError(
                f"The identity provider cannot be reached ({type(exc).__name__})."
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            reason = error or response.status_code
            raise OidcError(f"The identity provider refused the authorization code ({reason}).")
        return body

    async def _validate_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        metadata = await self.metadata()
        algorithms = list(metadata.signing_algorithms) or ["RS256"]
        keys = await self._key_set()
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=algorithms)
            except JoseError:
                # The provider may have rotated its keys since we fetched them.
                keys = await self._key_set(refresh=True)
                token = jwt.decode(id_token, keys, algorithms=algorithms)
            registry = JWTClaimsRegistry(
                now=lambda: int(self.clock()),
                leeway=CLOCK_LEEWAY_SECONDS,
                iss={"essential": True, "value": self.issuer},
                sub={"essential": True},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(token.claims)
        except JoseError as exc:
            raise OidcError(
                f"The identity provider's id token is not valid ({exc.error})."
            ) from exc
        claims = dict(token.claims)
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise OidcError("The id token was issued to another client (azp).")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise OidcError("The id token names no subject.")
        return claims
