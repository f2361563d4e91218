"""``incamera serve`` as a real process: start, print the URL, serve, stop on SIGTERM."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from incamera.config import ENV_PREFIX, iter_settings

REPO = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}


def incamera(*args: str, cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "incamera.cli", *args],
        cwd=cwd,
        env=clean_env(),
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Served:
        log = tmp_path / f"server-{len(started)}.log"
        with log.open("w") as log_file:
            process = incamera(
                "serve",
                "--bind-port",
                "0",
                "--media-workers",
                "1",
                *args,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=log_file,
            )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        prefix = "incamera is running at "
        assert line.startswith(prefix), f"no URL printed; log:\n{log.read_text()}"
        return Served(process, line[len(prefix) :].strip(), log)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_prints_url_serves_and_stops_cleanly(serve, tmp_path: Path):  # type: ignore[no-untyped-def]
    served = serve()
    assert served.url.startswith("http://localhost:")
    port = int(served.url.rsplit(":", 1)[1])
    assert port != 0
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        created = client.post("/api/meetings")
        assert created.status_code == 201
        meeting_id = created.json()["id"]
        assert created.json()["join_url"] == f"{served.url}/m/{meeting_id}"
        assert client.get(f"/api/meetings/{meeting_id}").status_code == 200
    assert served.stop() == 0
    assert (tmp_path / "data" / "incamera.db").is_file()
    log = served.log.read_text()
    assert "server ready" in log and "stopped" in log
    # The workers forward with the compiled kernel (make test installs the compiler).
    assert "fanout_kernel=c" in log
    assert "slower Python kernel" not in log
    # Logs carry neither meeting ids nor client addresses.
    assert meeting_id not in log
    assert "127.0.0.1:" not in log


def test_meetings_survive_a_restart(serve):  # type: ignore[no-untyped-def]
    first = serve()
    meeting_id = httpx.post(f"{first.url}/api/meetings", timeout=10).json()["id"]
    assert first.stop() == 0
    second = serve()
    assert httpx.get(f"{second.url}/api/meetings/{meeting_id}", timeout=10).status_code == 200
    assert second.stop() == 0


def serve_refused(cwd: Path, *args: str) -> tuple[int, str, str]:
    """``incamera serve *args`` that is expected to stop at start-up: (status, out, err)."""
    process = incamera("serve", *args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_refuses_non_loopback_http_with_a_clear_message(tmp_path: Path):
    status, out, err = serve_refused(tmp_path, "--bind-host", "0.0.0.0")
    assert status == 2
    assert "refusing to serve plain HTTP on 0.0.0.0" in err
    assert "incamera is running" not in out


def test_busy_port_is_reported(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status, _, err = serve_refused(tmp_path, "--bind-port", str(port))
    assert status == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in err


def test_a_secret_key_file_others_can_read_stops_the_start(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    key = data / "secret.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    status, out, err = serve_refused(tmp_path, "--bind-port", "0", "--data-dir", str(data))
    assert status == 2  # the configuration was refused
    assert "secret.key is accessible to other users (mode 644); make it 0600" in err
    assert "incamera is running" not in out


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_with_a_certificate(serve, tmp_path: Path):  # type: ignore[no-untyped-def]
    cert, key = self_signed(tmp_path)
    served = serve("--tls-cert", str(cert), "--tls-key", str(key))
    assert served.url.startswith("https://localhost:")
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=served.url, verify=trust, timeout=10) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "wss://localhost:" in response.headers["content-security-policy"]
    assert served.stop() == 0


def test_unusable_certificate_is_a_config_error(tmp_path: Path):
    cert, key = self_signed(tmp_path)
    key.write_text("not a key")
    process = incamera(
        "serve",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "cannot use TLS certificate" in err


def test_help_lists_every_option_with_its_env_and_toml_names(tmp_path: Path):
    process = incamera("serve", "--help", cwd=tmp_path, stdout=subprocess.PIPE)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    text = " ".join(out.split())  # argparse wraps lines
    assert "--config PATH" in text and "INCAMERA_CONFIG" in text
    settings = list(iter_settings())
    assert len(settings) >= 17
    for setting in settings:
        assert setting.flag in text, setting.dotted
        assert setting.env in text, setting.dotted
        assert f"TOML: {setting.toml};" in text, setting.dotted


def test_operations_doc_describes_every_setting():
    doc = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    for setting in iter_settings():
        assert f"`{setting.env}`" in doc, setting.dotted
        assert f"`{setting.flag}`" in doc, setting.dotted
