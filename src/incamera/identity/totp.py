"""Time-based one-time passwords, RFC 6238 (TOTP) over RFC 4226 (HOTP).

Parameters are the ones every authenticator app supports: HMAC-SHA1, 6 digits, 30-second
steps (RFC 6238 section 4; the otpauth:// URI format is Google Authenticator's "Key Uri
Format"). A code is accepted for the current step and one step either side (RFC 6238 section
5.2 allows a small window for clock drift and typing time). Replay protection (section 5.2:
"the verifier MUST NOT accept the second attempt of the OTP after the successful validation
has been issued for the first OTP"): the caller stores the step of the last accepted code and
passes it back; no code of that step or an earlier one is accepted again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import constant_time
from cryptography.hazmat.primitives.hashes import SHA1, SHA256, SHA512, HashAlgorithm
from cryptography.hazmat.primitives.twofactor.totp import TOTP

SECRET_BYTES = 20  # 160 bits, the HMAC-SHA1 output size (RFC 4226 section 4, R6)
TIME_STEP = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of the current one

_ALGORITHMS: dict[str, type[HashAlgorithm]] = {"SHA1": SHA1, "SHA256": SHA256, "SHA512": SHA512}


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


@dataclass(frozen=True, slots=True)
class TotpParameters:
    digits: int = DIGITS
    time_step: int = TIME_STEP
    algorithm: str = "SHA1"

    def totp(self, secret: bytes) -> TOTP:
        return TOTP(
            secret,
            self.digits,
            _ALGORITHMS[self.algorithm](),
            self.time_step,
            enforce_key_length=False,  # RFC 6238's SHA-256/512 test keys are 32/64 bytes
        )


DEFAULT = TotpParameters()


def code_at(secret: bytes, unix_time: float, params: TotpParameters = DEFAULT) -> str:
    """The code for the step containing ``unix_time``."""
    return params.totp(secret).generate(unix_time).decode("ascii")


def step_of(unix_time: float, params: TotpParameters = DEFAULT) -> int:
    return int(unix_time // params.time_step)


def verify(
    secret: bytes,
    code: str,
    unix_time: float,
    last_used_step: int | None,
    params: TotpParameters = DEFAULT,
    window: int = WINDOW,
) -> int | None:
    """The step ``code`` belongs to (store it as the new ``last_used_step``), or None when the
    code is wrong, outside the window, or of a step already used."""
    typed = "".join(code.split())  # people type "123 456"
    if len(typed) != params.digits or not typed.isascii() or not typed.isdigit():
        return None
    totp = params.totp(secret)
    now = step_of(unix_time, params)
    matched: int | None = None
    for step in range(now - window, now + window + 1):
        expected = totp.generate(step * params.time_step)
        # Compare every candidate, so the time taken does not depend on which one matched.
        if constant_time.bytes_eq(expected, typed.encode("ascii")) and matched is None:
            matched = step
    if matched is None or (last_used_step is not None and matched <= last_used_step):
        return None
    return matched


def provisioning_uri(
    secret: bytes, account_name: str, issuer: str, params: TotpParameters = DEFAULT
) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app imports (usually as a QR code)."""
    return params.totp(secret).get_provisioning_uri(account_name, issuer)
