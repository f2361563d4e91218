"""TOTP: the RFC 6238 appendix B test vectors, the +-1 step window, replay refusal."""

from __future__ import annotations

import pytest

from incamera.identity import totp

# RFC 6238 appendix B: the seeds are ASCII "1234567890" repeated to the hash's key size.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [  # (time, SHA1, SHA256, SHA512), 8 digits
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("when", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc_6238_appendix_b_vectors(when: int, sha1: str, sha256: str, sha512: str):
    for algorithm, expected in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        params = totp.TotpParameters(digits=8, algorithm=algorithm)
        assert totp.code_at(SEEDS[algorithm], when, params) == expected, algorithm
        step = totp.verify(SEEDS[algorithm], expected, when, None, params)
        assert step == when // 30


SECRET = SEEDS["SHA1"]
NOW = 1_700_000_000.0
STEP = totp.step_of(NOW)


def code(step: int) -> str:
    return totp.code_at(SECRET, step * 30)


def test_one_step_either_side_is_accepted_and_two_are_not():
    assert totp.verify(SECRET, code(STEP), NOW, None) == STEP
    assert totp.verify(SECRET, code(STEP - 1), NOW, None) == STEP - 1
    assert totp.verify(SECRET, code(STEP + 1), NOW, None) == STEP + 1
    assert totp.verify(SECRET, code(STEP - 2), NOW, None) is None
    assert totp.verify(SECRET, code(STEP + 2), NOW, None) is None


def test_a_used_code_and_older_ones_are_refused():
    used = totp.verify(SECRET, code(STEP), NOW, None)
    assert used == STEP
    assert totp.verify(SECRET, code(STEP), NOW, last_used_step=used) is None
    assert totp.verify(SECRET, code(STEP - 1), NOW, last_used_step=used) is None
    assert totp.verify(SECRET, code(STEP + 1), NOW, last_used_step=used) == STEP + 1


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12 34 5"])
def test_malformed_codes_are_refused(typed: str):
    assert totp.verify(SECRET, typed, NOW, None) is None


def test_spaces_people_type_are_ignored():
    spaced = code(STEP)[:3] + " " + code(STEP)[3:]
    assert totp.verify(SECRET, spaced, NOW, None) == STEP


def test_provisioning_uri_names_issuer_account_and_parameters():
    uri = totp.provisioning_uri(SECRET, "alice", "incamera")
    assert uri.startswith("otpauth://totp/incamera:alice?")
    for part in (
        "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        "issuer=incamera",
        "digits=6",
        "period=30",
        "algorithm=SHA1",
    ):
        assert part in uri
    assert len(totp.new_secret()) == 20 and totp.new_secret() != totp.new_secret()
