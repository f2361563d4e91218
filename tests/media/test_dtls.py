"""DTLS-SRTP endpoint: handshakes between two endpoints in memory, failures, retransmission,
garbage, and interoperation with OpenSSL's own command-line DTLS client and server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incamera.media.api import DtlsFingerprint, DtlsRole
from incamera.media.certificate import Certificate, worker_certificate
from incamera.media.dtls import DtlsEndpoint, DtlsState
from incamera.media.dtls_record import ContentType, DtlsRecord, ProtocolVersion, parse_records
from incamera.media.errors import MediaError
from incamera.media.srtp import SrtpKeys, SrtpProfile, SrtpSession

CLIENT_CERT = Certificate.generate()
SERVER_CERT = Certificate.generate()

# (direction "c>s" or "s>c", index of the datagram in that direction, datagram) -> drop it?
DropRule = Callable[[str, int, bytes], bool]


def endpoints(
    client_profiles: tuple[SrtpProfile, ...] | None = None,
    server_profiles: tuple[SrtpProfile, ...] | None = None,
    **kwargs: object,
) -> tuple[DtlsEndpoint, DtlsEndpoint]:
    client_options: dict = dict(kwargs)
    server_options: dict = dict(kwargs)
    if client_profiles is not None:
        client_options["srtp_profiles"] = client_profiles
    if server_profiles is not None:
        server_options["srtp_profiles"] = server_profiles
    client = DtlsEndpoint(
        CLIENT_CERT, DtlsRole.CLIENT, (SERVER_CERT.fingerprint(),), **client_options
    )
    server = DtlsEndpoint(
        SERVER_CERT, DtlsRole.SERVER, (CLIENT_CERT.fingerprint(),), **server_options
    )
    return client, server


def run(
    client: DtlsEndpoint,
    server: DtlsEndpoint,
    drop: DropRule = lambda direction, index, datagram: False,
    sent: list[bytes] | None = None,
) -> None:
    """Move datagrams between the two until both are quiet, waiting out retransmission
    timers (OpenSSL's own clock) while a handshake is unfinished."""
    counts = {"c>s": 0, "s>c": 0}
    pending: list[tuple[str, bytes]] = [("c>s", d) for d in client.start()]
    for _ in range(50):
        while pending:
            direction, datagram = pending.pop(0)
            index = counts[direction]
            counts[direction] += 1
            if sent is not None:
                sent.append(datagram)
            if drop(direction, index, datagram):
                continue
            if direction == "c>s":
                pending += [("s>c", d) for d in server.feed(datagram)]
            else:
                pending += [("c>s", d) for d in client.feed(datagram)]
        settled = (DtlsState.CONNECTED, DtlsState.FAILED, DtlsState.CLOSED)
        if client.state in settled and server.state in settled:
            return
        timeouts = [t for t in (client.next_timeout(), server.next_timeout()) if t is not None]
        if not timeouts:
            return
        time.sleep(min(timeouts) + 0.01)
        pending += [("c>s", d) for d in client.handle_timeout()]
        pending += [("s>c", d) for d in server.handle_timeout()]


def rtp(sequence: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 111, sequence, sequence * 960, ssrc) + b"opus" * 30


def receiver_report(ssrc: int) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def assert_srtp_works(client: DtlsEndpoint, server: DtlsEndpoint) -> None:
    client_srtp = SrtpSession(client.srtp_keys())
    server_srtp = SrtpSession(server.srtp_keys())
    for seq in range(3):
        assert server_srtp.unprotect(client_srtp.protect(rtp(seq, 1))) == rtp(seq, 1)
        assert client_srtp.unprotect(server_srtp.protect(rtp(seq, 2))) == rtp(seq, 2)
    assert server_srtp.unprotect_rtcp(client_srtp.protect_rtcp(receiver_report(1))) == (
        receiver_report(1)
    )
    assert client_srtp.unprotect_rtcp(server_srtp.protect_rtcp(receiver_report(2))) == (
        receiver_report(2)
    )


def test_handshake_agrees_on_gcm_and_keys() -> None:
    client, server = endpoints()
    assert client.state is DtlsState.NEW
    run(client, server)
    assert client.state is DtlsState.CONNECTED, client.failure_reason
    assert server.state is DtlsState.CONNECTED, server.failure_reason
    client_keys, server_keys = client.srtp_keys(), server.srtp_keys()
    assert client_keys.profile is server_keys.profile is SrtpProfile.AEAD_AES_128_GCM
    assert len(client_keys.local_key_salt) == 16 + 12
    assert client_keys.local_key_salt == server_keys.remote_key_salt
    assert client_keys.remote_key_salt == server_keys.local_key_salt
    assert client_keys.local_key_salt != client_keys.remote_key_salt
    assert client.peer_certificate == SERVER_CERT.x509
    assert server.peer_certificate == CLIENT_CERT.x509
    assert client.next_timeout() is None
    assert_srtp_works(client, server)


def test_fresh_handshakes_give_fresh_keys() -> None:
    first = endpoints()
    second = endpoints()
    run(*first)
    run(*second)
    assert first[0].srtp_keys().local_key_salt != second[0].srtp_keys().local_key_salt


@pytest.mark.parametrize(
    ("client_profiles", "server_profiles"),
    [
        ((SrtpProfile.AES128_CM_SHA1_80,), None),
        (None, (SrtpProfile.AES128_CM_SHA1_80,)),
        (
            (SrtpProfile.AES128_CM_SHA1_80, SrtpProfile.AEAD_AES_128_GCM),
            (SrtpProfile.AES128_CM_SHA1_80,),
        ),
    ],
)
def test_falls_back_to_aes_cm_sha1_80(
    client_profiles: tuple[SrtpProfile, ...] | None,
    server_profiles: tuple[SrtpProfile, ...] | None,
) -> None:
    client, server = endpoints(client_profiles, server_profiles)
    run(client, server)
    assert client.srtp_profile is server.srtp_profile is SrtpProfile.AES128_CM_SHA1_80
    assert len(client.srtp_keys().local_key_salt) == 16 + 14
    assert_srtp_works(client, server)


def test_no_common_srtp_profile_fails() -> None:
    client, server = endpoints((SrtpProfile.AES128_CM_SHA1_80,), (SrtpProfile.AEAD_AES_128_GCM,))
    run(client, server)
    assert client.state is DtlsState.FAILED
    assert "SRTP profile" in client.failure_reason
    with pytest.raises(MediaError):
        client.srtp_keys()


def test_server_rejects_a_client_certificate_with_another_fingerprint() -> None:
    client, _ = endpoints()
    wrong = Certificate.generate().fingerprint()
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER, (wrong,))
    run(client, server)
    assert server.state is DtlsState.FAILED
    assert "fingerprint mismatch" in server.failure_reason
    with pytest.raises(MediaError):
        server.srtp_keys()
    # The server aborted with a fatal alert, so the client failed too.
    assert client.state is DtlsState.FAILED
    with pytest.raises(MediaError):
        client.srtp_keys()


def test_client_rejects_a_server_certificate_with_another_fingerprint() -> None:
    _, server = endpoints()
    wrong = Certificate.generate().fingerprint()
    client = DtlsEndpoint(CLIENT_CERT, DtlsRole.CLIENT, (wrong,))
    run(client, server)
    assert client.state is DtlsState.FAILED
    assert "fingerprint mismatch" in client.failure_reason
    assert server.state is not DtlsState.CONNECTED
    with pytest.raises(MediaError):
        client.srtp_keys()


@pytest.mark.parametrize("algorithm", ["sha-1", "sha-256", "sha-384", "sha-512", "SHA-256"])
def test_fingerprint_algorithms(algorithm: str) -> None:
    fingerprint = CLIENT_CERT.fingerprint(algorithm.lower())
    fingerprint = DtlsFingerprint(algorithm, fingerprint.value.lower())  # case-insensitive
    client, _ = endpoints()
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER, (fingerprint,))
    run(client, server)
    assert server.state is DtlsState.CONNECTED, server.failure_reason


def test_one_matching_fingerprint_among_several_is_enough() -> None:
    client, _ = endpoints()
    fingerprints = (
        DtlsFingerprint("md5", "00:11"),  # not an accepted algorithm: skipped
        Certificate.generate().fingerprint("sha-512"),
        CLIENT_CERT.fingerprint("sha-384"),
    )
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER, fingerprints)
    run(client, server)
    assert server.state is DtlsState.CONNECTED, server.failure_reason


def test_only_unknown_algorithms_fail() -> None:
    client, _ = endpoints()
    md5 = DtlsFingerprint("md5", "00:11:22")
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER, (md5,))
    run(client, server)
    assert server.state is DtlsState.FAILED


def test_fingerprints_given_after_the_handshake_are_checked_then() -> None:
    client, _ = endpoints()
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER)
    run(client, server)
    assert client.state is DtlsState.CONNECTED
    assert server.state is DtlsState.CONNECTING  # done, but not yet authenticated
    with pytest.raises(MediaError):
        server.srtp_keys()
    assert server.set_remote_fingerprints((CLIENT_CERT.fingerprint(),)) == []
    assert server.state is DtlsState.CONNECTED
    assert_srtp_works(client, server)
    with pytest.raises(MediaError):
        server.set_remote_fingerprints((CLIENT_CERT.fingerprint(),))


def test_wrong_fingerprints_given_after_the_handshake_close_the_association() -> None:
    client, _ = endpoints()
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER)
    run(client, server)
    answer = server.set_remote_fingerprints((Certificate.generate().fingerprint(),))
    assert server.state is DtlsState.FAILED
    assert "fingerprint mismatch" in server.failure_reason
    assert len(answer) == 1  # close_notify, so the client learns of it
    for datagram in answer:
        client.feed(datagram)
    assert client.state is DtlsState.CLOSED


def test_fingerprints_given_before_the_handshake_ends() -> None:
    client, _ = endpoints()
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER)
    server.set_remote_fingerprints((CLIENT_CERT.fingerprint(),))
    run(client, server)
    assert server.state is DtlsState.CONNECTED


def test_handshake_datagrams_respect_the_mtu() -> None:
    sent: list[bytes] = []
    client, server = endpoints(mtu=300)
    run(client, server, sent=sent)
    assert server.state is DtlsState.CONNECTED, server.failure_reason
    assert max(len(d) for d in sent) <= 300
    assert any(len(parse_records(d)) > 1 for d in sent)  # records are packed together
    assert_srtp_works(client, server)


def test_default_mtu_datagrams_are_at_most_1200_bytes() -> None:
    sent: list[bytes] = []
    client, server = endpoints()
    run(client, server, sent=sent)
    assert max(len(d) for d in sent) <= 1200


@pytest.mark.parametrize(
    ("direction", "index", "what"),
    [
        ("c>s", 0, "ClientHello"),
        ("s>c", 0, "the server's first flight"),
        ("c>s", 1, "the client's second flight"),
        ("s>c", 1, "the server's final flight"),
    ],
)
def test_lost_handshake_datagram_is_retransmitted(direction: str, index: int, what: str) -> None:
    client, server = endpoints()
    lost: list[bytes] = []

    def drop(d: str, i: int, datagram: bytes) -> bool:
        if (d, i) == (direction, index):
            lost.append(datagram)
            return True
        return False

    run(client, server, drop=drop)
    assert lost, f"{what} was never sent"
    assert client.state is DtlsState.CONNECTED, client.failure_reason
    assert server.state is DtlsState.CONNECTED, server.failure_reason
    assert client.counters.retransmissions + server.counters.retransmissions >= 1
    assert client.srtp_keys().local_key_salt == server.srtp_keys().remote_key_salt


def test_next_timeout_runs_while_waiting_for_the_server() -> None:
    client, _ = endpoints()
    assert client.next_timeout() is None
    assert len(client.start()) == 1
    timeout = client.next_timeout()
    assert timeout is not None and timeout > 0


def test_garbage_is_counted_and_ignored() -> None:
    client, server = endpoints()
    for garbage in (b"", b"\x16", b"\x80" * 40, b"\x17\xfe\xfd" + b"\x00" * 5):
        assert server.feed(garbage) == []
    assert server.counters.datagrams_malformed == 4
    assert server.state is DtlsState.NEW
    run(client, server)
    assert server.state is DtlsState.CONNECTED
    assert server.feed(b"\x16\xfe\xfd") == []
    assert server.counters.datagrams_malformed == 5


record_strategy = st.builds(
    DtlsRecord,
    content_type=st.sampled_from([int(t) for t in ContentType]),
    version=st.sampled_from([int(v) for v in ProtocolVersion]),
    epoch=st.integers(0, 2),
    sequence_number=st.integers(0, 40),
    fragment=st.binary(max_size=200),
)
datagram_strategy = st.one_of(
    st.binary(max_size=300),
    st.lists(record_strategy, min_size=1, max_size=3).map(
        lambda records: b"".join(bytes(r) for r in records)
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(datagram_strategy, min_size=1, max_size=4))
def test_fuzz_feed_on_a_fresh_server(datagrams: list[bytes]) -> None:
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER, (CLIENT_CERT.fingerprint(),))
    for datagram in datagrams:
        for answer in server.feed(datagram):
            parse_records(answer)  # whatever it answers is well-formed DTLS
    assert server.state in (DtlsState.NEW, DtlsState.CONNECTING, DtlsState.FAILED)
    assert server.next_timeout() is None or server.next_timeout() >= 0


@pytest.fixture(scope="module")
def connected_pair() -> tuple[DtlsEndpoint, DtlsEndpoint]:
    client, server = endpoints()
    run(client, server)
    assert server.state is DtlsState.CONNECTED
    return client, server


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(datagram_strategy, min_size=1, max_size=4))
def test_fuzz_feed_on_a_connected_server(
    connected_pair: tuple[DtlsEndpoint, DtlsEndpoint], datagrams: list[bytes]
) -> None:
    # Unauthenticated records cannot tear down an established association.
    _client, server = connected_pair
    keys = server.srtp_keys()
    for datagram in datagrams:
        server.feed(datagram)
    assert server.state is DtlsState.CONNECTED, server.failure_reason
    assert server.srtp_keys() == keys


def test_close_sends_close_notify() -> None:
    client, server = endpoints()
    run(client, server)
    goodbye = client.close()
    assert client.state is DtlsState.CLOSED
    assert [r.content_type for d in goodbye for r in parse_records(d)] == [ContentType.ALERT]
    with pytest.raises(MediaError):
        client.srtp_keys()
    answer = []
    for datagram in goodbye:
        answer += server.feed(datagram)
    assert server.state is DtlsState.CLOSED
    assert server.failure_reason == "close_notify received"
    assert len(answer) == 1  # the server's own close_notify
    assert client.feed(answer[0]) == []
    assert client.counters.datagrams_ignored == 1
    assert client.next_timeout() is None


def test_close_before_start() -> None:
    client, _ = endpoints()
    assert client.close() == []
    assert client.state is DtlsState.CLOSED
    assert client.start() == []


def test_auto_role_is_refused() -> None:
    with pytest.raises(ValueError):
        DtlsEndpoint(CLIENT_CERT, DtlsRole.AUTO)


def test_worker_certificate_is_shared() -> None:
    assert worker_certificate() is worker_certificate()
    fingerprint = worker_certificate().fingerprint()
    assert fingerprint.algorithm == "sha-256"
    assert len(fingerprint.value) == 32 * 3 - 1
    assert fingerprint.value == fingerprint.value.upper()


# -- interoperation with OpenSSL's command-line tools over UDP on 127.0.0.1 -------------------

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not on PATH")
GCM_THEN_CM = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"


class _UdpShim(asyncio.DatagramProtocol):
    """Moves datagrams between a DtlsEndpoint and one UDP peer, with its retransmit timer."""

    def __init__(self, endpoint: DtlsEndpoint, peer: tuple[str, int] | None) -> None:
        self.endpoint = endpoint
        self.peer = peer
        self.transport: asyncio.DatagramTransport | None = None
        self.done = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def send(self, datagrams: list[bytes]) -> None:
        assert self.transport is not None
        if self.peer is not None:
            for datagram in datagrams:
                self.transport.sendto(datagram, self.peer)
        self._rearm()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.peer is None:
            self.peer = addr
        if addr == self.peer:
            self.send(self.endpoint.feed(data))

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.endpoint.state is not DtlsState.CONNECTING and not self.done.done():
            self.done.set_result(self.endpoint.state)
        timeout = self.endpoint.next_timeout()
        if timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(
                timeout, lambda: self.send(self.endpoint.handle_timeout())
            )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()


def _write_pem(certificate: Certificate, directory: Path) -> tuple[Path, Path]:
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.certificate_pem())
    key_path.write_bytes(certificate.private_key_pem())
    return cert_path, key_path


async def _read_until(stream: asyncio.StreamReader, needle: bytes, seconds: float) -> bytes:
    """Output of the openssl process up to and including the line holding ``needle``."""
    seen = b""
    async with asyncio.timeout(seconds):
        while needle not in seen:
            line = await stream.readline()
            if not line:
                break
            seen += line
    return seen


def _keying_material(output: bytes) -> bytes:
    for line in output.decode(errors="replace").splitlines():
        if "Keying material:" in line:
            return bytes.fromhex(line.split(":", 1)[1].strip())
    raise AssertionError(f"no keying material in openssl output:\n{output.decode()}")


def _layout(client_keys: SrtpKeys) -> bytes:
    """RFC 5764 4.2 layout rebuilt from the client's view: ck | sk | csalt | ssalt."""
    key_length = client_keys.profile.key_length
    local, remote = client_keys.local_key_salt, client_keys.remote_key_salt
    return local[:key_length] + remote[:key_length] + local[key_length:] + remote[key_length:]


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


@needs_openssl
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("openssl_profiles", "expected"),
    [
        (GCM_THEN_CM, SrtpProfile.AEAD_AES_128_GCM),
        ("SRTP_AES128_CM_SHA1_80", SrtpProfile.AES128_CM_SHA1_80),
    ],
)
async def test_client_against_openssl_s_server(
    tmp_path: Path, openssl_profiles: str, expected: SrtpProfile
) -> None:
    openssl_cert = Certificate.generate()
    cert_path, key_path = _write_pem(openssl_cert, tmp_path)
    loop = asyncio.get_running_loop()
    # Find a free UDP port for s_server by binding and releasing one.
    probe, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = probe.get_extra_info("sockname")[1]
    probe.close()
    length = 2 * (expected.key_length + expected.salt_length)
    process = await asyncio.create_subprocess_exec(
        OPENSSL or "openssl", "s_server", "-dtls1_2", "-accept", f"127.0.0.1:{port}",
        "-cert", str(cert_path), "-key", str(key_path), "-verify", "1",
        "-use_srtp", openssl_profiles, "-naccept", "1",
        "-keymatexport", "EXTRACTOR-dtls_srtp", "-keymatexportlen", str(length),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    shim = None
    try:
        assert process.stdout is not None
        await _read_until(process.stdout, b"ACCEPT", 10)
        client = DtlsEndpoint(CLIENT_CERT, DtlsRole.CLIENT, (openssl_cert.fingerprint(),))
        _transport, shim = await loop.create_datagram_endpoint(
            lambda: _UdpShim(client, ("127.0.0.1", port)), local_addr=("127.0.0.1", 0)
        )
        shim.send(client.start())
        async with asyncio.timeout(20):
            state = await shim.done
        assert state is DtlsState.CONNECTED, client.failure_reason
        output = await _read_until(process.stdout, b"Keying material:", 10)
        assert client.srtp_profile is expected
        assert f"profile={expected.value}".encode() in output, output.decode()
        assert _keying_material(output) == _layout(client.srtp_keys())
        shim.send(client.close())
    finally:
        if shim is not None:
            shim.close()
        await _stop(process)


@needs_openssl
@pytest.mark.timeout(60)
async def test_server_against_openssl_s_client(tmp_path: Path) -> None:
    openssl_cert = Certificate.generate()
    cert_path, key_path = _write_pem(openssl_cert, tmp_path)
    loop = asyncio.get_running_loop()
    server = DtlsEndpoint(SERVER_CERT, DtlsRole.SERVER, (openssl_cert.fingerprint(),))
    server.start()
    transport, shim = await loop.create_datagram_endpoint(
        lambda: _UdpShim(server, None), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    process = await asyncio.create_subprocess_exec(
        OPENSSL or "openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
        "-cert", str(cert_path), "-key", str(key_path), "-use_srtp", GCM_THEN_CM,
        "-keymatexport", "EXTRACTOR-dtls_srtp", "-keymatexportlen", "56",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            state = await shim.done
        assert state is DtlsState.CONNECTED, server.failure_reason
        assert server.srtp_profile is SrtpProfile.AEAD_AES_128_GCM
        assert process.stdout is not None
        output = await _read_until(process.stdout, b"Keying material:", 10)
        assert b"profile=SRTP_AEAD_AES_128_GCM" in output, output.decode()
        keys = server.srtp_keys()
        client_view = SrtpKeys(keys.profile, keys.remote_key_salt, keys.local_key_salt)
        assert _keying_material(output) == _layout(client_view)
        shim.send(server.close())
    finally:
        shim.close()
        await _stop(process)
