"""Accounts: create, sign in with password (+ TOTP when enrolled), disable, reset passwords,
enrol TOTP, and the accounts created by a first single sign-on.

Blocking (database, argon2id): async callers run these methods in a worker thread. Error
messages for a wrong name or password never say which of the two was wrong.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog

from incamera.store.accounts import AccountRecord, AccountStore

from . import totp
from .passwords import PasswordHashing, PasswordRejected, check_new_password
from .principal import AuthMethod, SignedInAccount
from .secret_box import SealedSecretError, SecretBox
from .sessions import utc_now

log = structlog.get_logger(__name__)

USERNAME_MAX = 100
DISPLAY_NAME_MAX = 200
RESET_TOKEN_TTL = timedelta(hours=24)
TOTP_ISSUER = "incamera"


class AccountError(Exception):
    """A refused account operation; ``str(error)`` is a sentence for the person."""

    code = "account_error"


class BadCredentials(AccountError):
    code = "bad_credentials"

    def __init__(self, message: str = "Wrong username or password.") -> None:
        super().__init__(message)


class AccountDisabled(AccountError):
    code = "account_disabled"

    def __init__(self) -> None:
        super().__init__("This account is disabled. Ask your administrator.")


class NoSuchAccount(AccountError):
    code = "no_such_account"


def new_account_id() -> str:
    return secrets.token_urlsafe(16)


def normalise_username(username: str) -> str:
    name = username.strip().casefold()
    if not name or len(name) > USERNAME_MAX or any(c.isspace() for c in name):
        raise AccountError(f"a username has 1 to {USERNAME_MAX} characters and no spaces")
    return name


def clean_display_name(name: str) -> str:
    text = " ".join(name.split())
    if not text or len(text) > DISPLAY_NAME_MAX:
        raise AccountError(f"a display name has 1 to {DISPLAY_NAME_MAX} characters")
    return text


@dataclass(frozen=True, slots=True)
class PasswordChecked:
    """The password was right. ``needs_totp``: the second factor is still to come."""

    account: AccountRecord
    needs_totp: bool

    @property
    def must_change_password(self) -> bool:
        return self.account.must_change_password


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    secret: bytes
    uri: str  # otpauth://totp/...

    @property
    def secret_base32(self) -> str:
        return base64.b32encode(self.secret).decode("ascii").rstrip("=")


def principal_for(
    account: AccountRecord, method: AuthMethod, issuer: str | None = None
) -> SignedInAccount:
    return SignedInAccount(
        account_id=account.id,
        display_name=account.display_name,
        method=method,
        issuer=issuer,
        is_admin=account.is_admin,
    )


class Accounts:
    def __init__(
        self,
        store: AccountStore,
        hashing: PasswordHashing,
        box: SecretBox,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.hashing = hashing
        self.box = box  # seals TOTP seeds at rest (secret_box.py)
        self.clock = clock

    def get(self, account_id: str) -> AccountRecord:
        account = self.store.get(account_id)
        if account is None:
            raise NoSuchAccount("no such account")
        return account

    def by_username(self, username: str) -> AccountRecord:
        account = self.store.by_username(normalise_username(username))
        if account is None:
            raise NoSuchAccount(f"no account with the username {username!r}")
        return account

    # --- creation ----------------------------------------------------------------------------

    def create(
        self,
        username: str,
        display_name: str,
        password: str,
        *,
        is_admin: bool = False,
        must_change_password: bool = False,
    ) -> AccountRecord:
        check_new_password(password)
        record = AccountRecord(
            id=new_account_id(),
            username=normalise_username(username),
            display_name=clean_display_name(display_name),
            password_hash=self.hashing.hash(password),
            must_change_password=must_change_password,
            totp_secret=None,
            totp_last_step=None,
            is_admin=is_admin,
            created_at=self.clock(),
            disabled_at=None,
        )
        self.store.insert(record)
        return record

    def sign_in_with_oidc(self, issuer: str, subject: str, display_name: str) -> AccountRecord:
        """The account linked to (issuer, subject), created on the first sign-in."""
        existing = self.store.by_oidc(issuer, subject)
        if existing is not None:
            if existing.is_disabled:
                raise AccountDisabled()
            return existing
        now = self.clock()
        try:
            name = clean_display_name(display_name)
        except AccountError:
            name = "Signed-in user"
        record = AccountRecord(
            id=new_account_id(),
            username=None,
            display_name=name,
            password_hash=None,
            must_change_password=False,
            totp_secret=None,
            totp_last_step=None,
            is_admin=False,
            created_at=now,
            disabled_at=None,
        )
        return self.store.insert_with_oidc_link(record, issuer, subject, now)

    # --- signing in ---------------------------------------------------------------------------

    def check_password(self, username: str, password: str) -> PasswordChecked:
        """First factor. Raises ``BadCredentials`` (same message and similar time whether
        the account exists or not) or ``AccountDisabled`` (only after a right password)."""
        try:
            name = normalise_username(username)
        except AccountError:
            self.hashing.verify(None, password)
            raise BadCredentials() from None
        account = self.store.by_username(name)
        result = self.hashing.verify(account.password_hash if account else None, password)
        if account is None or not result.ok:
            raise BadCredentials()
        if account.is_disabled:
            raise AccountDisabled()
        if result.needs_rehash:
            self.store.update(account.id, password_hash=self.hashing.hash(password))
        return PasswordChecked(account=account, needs_totp=account.has_totp)

    def check_totp(self, account_id: str, code: str) -> AccountRecord:
        """Second factor. A code is accepted once: its step is recorded atomically."""
        account = self.get(account_id)
        if account.is_disabled:
            raise AccountDisabled()
        if account.totp_secret is None:
            raise BadCredentials("This account has no second factor.")
        secret = self._totp_seed(account.id, account.totp_secret)
        step = totp.verify(secret, code, self.clock().timestamp(), account.totp_last_step)
        if step is None or not self.store.use_totp_step(account.id, step):
            raise BadCredentials("Wrong or already used code.")
        return account

    # --- TOTP enrolment -----------------------------------------------------------------------

    def begin_totp(self, account: AccountRecord) -> TotpEnrolment:
        """A new secret to show (URI/QR code); nothing is stored until ``confirm_totp``."""
        secret = totp.new_secret()
        label = account.username or account.display_name
        return TotpEnrolment(secret, totp.provisioning_uri(secret, label, TOTP_ISSUER))

    def enrolment_token(self, account_id: str, secret: bytes) -> str:
        """``secret`` sealed for the session between ``begin_totp`` and ``confirm_totp``
        (sessions are stored in the database too)."""
        sealed = self.box.seal(secret, f"enrol:{account_id}")
        return base64.b64encode(sealed).decode("ascii")

    def enrolment_secret(self, account_id: str, token: str) -> bytes | None:
        """The secret of ``enrolment_token``, or None if it is not one for this account."""
        try:
            return self.box.open(base64.b64decode(token, validate=True), f"enrol:{account_id}")
        except (ValueError, SealedSecretError):
            return None

    def confirm_totp(self, account_id: str, secret: bytes, code: str) -> None:
        """Store ``secret`` once the person proved their app has it (a current code)."""
        step = totp.verify(secret, code, self.clock().timestamp(), None)
        if step is None:
            raise BadCredentials("Wrong code: check the time on your device and try again.")
        sealed = self.box.seal(secret, account_id)
        self.store.update(account_id, totp_secret=sealed, totp_last_step=step)

    def _totp_seed(self, account_id: str, stored: bytes) -> bytes:
        if len(stored) == totp.SECRET_BYTES:  # stored before seeds were sealed
            return stored
        try:
            return self.box.open(stored, account_id)
        except SealedSecretError:
            log.error("a second factor does not open with the secret key (another key file?)")
            raise AccountError(
                "The second factor of this account cannot be checked. "
                "Ask your administrator to reset it."
            ) from None

    def seal_stored_seeds(self) -> int:
        """Seal TOTP seeds stored in clear by an earlier version; returns how many."""
        sealed = 0
        for account_id, stored in self.store.totp_secrets():
            if len(stored) == totp.SECRET_BYTES:
                self.store.update(account_id, totp_secret=self.box.seal(stored, account_id))
                sealed += 1
        return sealed

    def remove_totp(self, account_id: str) -> None:
        self.store.update(account_id, totp_secret=None, totp_last_step=None)

    # --- administration -----------------------------------------------------------------------

    def delete(self, account_id: str) -> None:
        """Erase the account and what is stored with it (AccountStore.delete)."""
        if not self.store.delete(account_id):
            raise NoSuchAccount("no such account")

    def set_disabled(self, account_id: str, disabled: bool) -> None:
        self.get(account_id)
        self.store.update(account_id, disabled_at=self.clock() if disabled else None)

    def change_password(self, account_id: str, new_password: str) -> None:
        check_new_password(new_password)
        self.store.update(
            account_id,
            password_hash=self.hashing.hash(new_password),
            must_change_password=False,
        )

    def change_own_password(self, account_id: str, current: str, new_password: str) -> None:
        """A signed-in person changes their password: ``current`` must be right (else
        ``BadCredentials``), ``new_password`` acceptable (else ``PasswordRejected``) and
        different from it. Single sign-on accounts have no password here
        (``AccountError``)."""
        account = self.get(account_id)
        if account.password_hash is None:
            raise AccountError("this account signs in through single sign-on")
        if not self.hashing.verify(account.password_hash, current).ok:
            raise BadCredentials("The current password is not right.")
        if new_password == current:
            raise PasswordRejected("the new password is the current one")
        self.change_password(account_id, new_password)

    def admin_reset(self, account_id: str, mode: Literal["token", "temporary"]) -> str:
        """An administrator's password reset. ``token``: a one-time reset token (valid 24
        hours) for the person to choose a new password with; ``temporary``: a new random
        password that must be changed at the next sign-in. Returns the token or password;
        the caller also ends the account's sessions."""
        account = self.get(account_id)
        if mode == "token":
            token = secrets.token_urlsafe(32)
            self.store.insert_reset(_token_hash(token), account.id, self.clock() + RESET_TOKEN_TTL)
            return token
        temporary = secrets.token_urlsafe(12)
        self.store.update(
            account.id,
            password_hash=self.hashing.hash(temporary),
            must_change_password=True,
        )
        return temporary

    def redeem_reset(self, token: str, new_password: str) -> AccountRecord:
        check_new_password(new_password)
        account_id = self.store.take_reset(_token_hash(token), self.clock())
        if account_id is None:
            raise BadCredentials("This reset link is invalid, used or expired.")
        self.change_password(account_id, new_password)
        return self.get(account_id)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
