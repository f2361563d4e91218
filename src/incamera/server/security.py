"""HTTP security headers, added to every response the server sends.

The web app loads nothing from another origin and runs no inline script, so the
Content-Security-Policy can be strict: everything from ``'self'``, nothing else.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(base_url: str, form_targets: tuple[str, ...] = ()) -> str:
    """The CSP for pages served from ``base_url`` (an origin such as http://localhost:8080).

    ``connect-src`` names the WebSocket origin explicitly as well as ``'self'``: older
    browsers did not let ``'self'`` match ws:/wss: URLs. ``form_targets``: other origins a
    form submission may end at through a redirect (browsers apply ``form-action`` to the
    redirects too): the single sign-on provider, where signing out continues.
    """
    parts = urlsplit(base_url)
    ws_origin = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data: blob:",
        "media-src": "'self' blob:",
        "font-src": "'self'",
        "connect-src": f"'self' {ws_origin}",
        "worker-src": "'self'",
        "manifest-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": " ".join(("'self'", *form_targets)),
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


PERMISSIONS_POLICY = ", ".join(
    [
        "camera=(self)",
        "microphone=(self)",
        "display-capture=(self)",
        "fullscreen=(self)",
        "autoplay=(self)",
        "geolocation=()",
        "payment=()",
        "usb=()",
    ]
)


def security_headers(
    base_url: str, form_targets: tuple[str, ...] = ()
) -> list[tuple[bytes, bytes]]:
    headers = {
        "content-security-policy": content_security_policy(base_url, form_targets),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "permissions-policy": PERMISSIONS_POLICY,
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-resource-policy": "same-origin",
        "x-frame-options": "DENY",
    }
    if base_url.startswith("https://"):
        headers["strict-transport-security"] = "max-age=31536000"
    return [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]


class SecurityHeadersMiddleware:
    """Pure ASGI middleware: sets the headers above on every HTTP response (replacing any
    the endpoint set, so a handler cannot weaken them by accident)."""

    def __init__(self, app: ASGIApp, base_url: str, form_targets: tuple[str, ...] = ()) -> None:
        self.app = app
        self.headers = security_headers(base_url, form_targets)
        self._names = {name for name, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k not in self._names]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
