"""Identity: local accounts (argon2id passwords, optional TOTP), server-side sessions, CSRF
tokens and OpenID Connect sign-in.

Domain modules (``passwords``, ``totp``, ``accounts``, ``sessions``, ``csrf``, ``throttle``)
do no network I/O; ``oidc`` talks to the identity provider. The HTTP adapter is
``incamera.server.auth_routes``; the tables are in ``incamera.store``.
"""

from .principal import Guest, Principal, SignedInAccount

__all__ = ["Guest", "Principal", "SignedInAccount"]
