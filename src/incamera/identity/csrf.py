"""CSRF protection: the synchronizer token pattern (OWASP CSRF Prevention Cheat Sheet).

Every session has a random token, created with it and stored server-side. HTML forms carry
it in a hidden field ``csrf_token``; JSON API calls carry it in the ``X-CSRF-Token`` header.
A state-changing request whose token is missing or differs from the session's is refused.
SameSite=Lax cookies already stop most cross-site POSTs; the token covers the rest (same-site
subdomains, older browsers).
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import constant_time

FORM_FIELD = "csrf_token"
HEADER = "x-csrf-token"


class CsrfRejected(Exception):
    """The request's CSRF token is missing or wrong."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check(expected: str | None, presented: str | None) -> None:
    """Raise ``CsrfRejected`` unless ``presented`` equals the session's ``expected`` token."""
    if not expected or not presented:
        raise CsrfRejected("missing CSRF token")
    if not constant_time.bytes_eq(expected.encode(), presented.encode()):
        raise CsrfRejected("wrong CSRF token")
