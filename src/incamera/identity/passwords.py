"""Password hashing with argon2id (RFC 9106) through argon2-cffi.

The stored string is the PHC format (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``), so it
records its own parameters: when the configured parameters change, ``verify`` reports that the
hash should be replaced, and the caller stores ``rehash`` of the password it just checked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

# RFC 9106 section 4, second recommended option: t=3, m=64 MiB, p=4.
DEFAULT_PARAMETERS = RFC_9106_LOW_MEMORY

MIN_LENGTH = 10
MAX_LENGTH = 1024  # hashing a megabyte "password" is a denial of service, not a password


class PasswordRejected(ValueError):
    """A new password does not meet the policy; ``str(error)`` says why."""


def check_new_password(password: str) -> None:
    """Raise ``PasswordRejected`` unless ``password`` may be set as a new password."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"the password must have at most {MAX_LENGTH} characters")
    if not password.strip():
        raise PasswordRejected("the password must not be blank")


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    needs_rehash: bool = False


class PasswordHashing:
    """argon2id with fixed parameters. Thread-safe; hashing takes tens of milliseconds on
    purpose, so async callers run it in a worker thread."""

    def __init__(
        self,
        *,
        time_cost: int = DEFAULT_PARAMETERS.time_cost,
        memory_cost_kib: int = DEFAULT_PARAMETERS.memory_cost,
        parallelism: int = DEFAULT_PARAMETERS.parallelism,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Verified when an account does not exist, so that "no such user" takes as long as
        # "wrong password" (no account enumeration by timing).
        self._dummy = self._hasher.hash("incamera: no such account")

    def hash(self, password: str) -> str:
        if len(password) > MAX_LENGTH:
            raise PasswordRejected(f"the password must have at most {MAX_LENGTH} characters")
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> Verification:
        """Check ``password`` against ``stored`` (None: no password set, always refused
        after the same amount of work)."""
        if len(password) > MAX_LENGTH:
            return Verification(ok=False)
        if stored is None:
            self._burn(password)
            return Verification(ok=False)
        try:
            self._hasher.verify(stored, password)
        except VerifyMismatchError:
            return Verification(ok=False)
        except (InvalidHashError, VerificationError):
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._hasher.check_needs_rehash(stored))

    def _burn(self, password: str) -> None:
        with contextlib.suppress(VerificationError):
            self._hasher.verify(self._dummy, password)
