"""Who is on the other end of a request: a signed-in account or a guest.

Other parts of the control plane (lobby, moderation, access policies, audit log) take a
``Principal`` and never look at cookies or sessions themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# How the person proved who they are in this session.
AuthMethod = Literal["password", "password+totp", "oidc"]


@dataclass(frozen=True, slots=True)
class SignedInAccount:
    """A person signed in with a local account (password, maybe TOTP) or single sign-on."""

    account_id: str
    display_name: str
    method: AuthMethod
    issuer: str | None = None  # the OpenID Connect issuer when ``method == "oidc"``
    is_admin: bool = False

    @property
    def is_guest(self) -> bool:
        return False

    def as_json(self) -> dict[str, object]:
        return {
            "kind": "account",
            "id": self.account_id,
            "display_name": self.display_name,
            "method": self.method,
            "issuer": self.issuer,
            "admin": self.is_admin,
        }


@dataclass(frozen=True, slots=True)
class Guest:
    """Somebody without an account; they carry only the name they typed (labelled "guest")."""

    @property
    def is_guest(self) -> bool:
        return True

    def as_json(self) -> dict[str, object]:
        return {"kind": "guest"}


Principal = SignedInAccount | Guest
