"""The DTLS certificate of a media worker.

WebRTC authenticates DTLS peers by the fingerprint of a self-signed certificate carried in
the SDP (``a=fingerprint``, RFC 8122 section 5), not by a certificate chain. One ECDSA P-256
certificate per worker process is enough: :func:`worker_certificate` makes it once and
shares it; :meth:`Certificate.generate` makes a fresh one.
"""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .api import DtlsFingerprint

# RFC 8122 section 5 hash function names (the "Hash Function Textual Names" registry)
# that are still acceptable, mapped to their implementations.
FINGERPRINT_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}

_VALIDITY = datetime.timedelta(days=30)


def certificate_fingerprint(
    certificate: x509.Certificate, algorithm: str = "sha-256"
) -> DtlsFingerprint:
    """The RFC 8122 fingerprint of a certificate's DER encoding.

    Raises ``ValueError`` for a hash function name that is unknown or not allowed.
    """
    name = algorithm.lower()
    hash_type = FINGERPRINT_ALGORITHMS.get(name)
    if hash_type is None:
        raise ValueError(f"unsupported fingerprint algorithm {algorithm!r}")
    digest = certificate.fingerprint(hash_type())
    return DtlsFingerprint(name, ":".join(f"{byte:02X}" for byte in digest))


@dataclass(frozen=True, eq=False)
class Certificate:
    """A private key and its self-signed certificate (compared by identity)."""

    private_key: ec.EllipticCurvePrivateKey
    x509: x509.Certificate

    @classmethod
    def generate(cls) -> Certificate:
        """A fresh ECDSA P-256 self-signed certificate, valid 30 days back and ahead.

        The subject CN is random so certificates of different workers cannot be told apart
        from their names.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(8))])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _VALIDITY)
            .not_valid_after(now + _VALIDITY)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def fingerprint(self, algorithm: str = "sha-256") -> DtlsFingerprint:
        """This certificate's fingerprint, e.g. for ``DtlsParameters.fingerprints``."""
        return certificate_fingerprint(self.x509, algorithm)

    def certificate_pem(self) -> bytes:
        return self.x509.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


_worker_certificate: tuple[int, Certificate] | None = None


def worker_certificate() -> Certificate:
    """The certificate shared by all transports of this process, made on first use.

    A forked child makes its own rather than reusing its parent's key.
    """
    global _worker_certificate
    pid = os.getpid()
    if _worker_certificate is None or _worker_certificate[0] != pid:
        _worker_certificate = (pid, Certificate.generate())
    return _worker_certificate[1]
