"""Settings: defaults, TOML < environment < command line, and refusals with clear reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from incamera.config import ConfigError, Settings, load_settings
from incamera.server.main import parse_settings


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_embedded_local_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.bind_host == "127.0.0.1"
    assert settings.bind_port == 8080
    assert settings.base_url == "http://localhost:8080"
    assert settings.data_dir == tmp_path / "data"
    assert settings.db_url == f"sqlite:///{tmp_path / 'data' / 'incamera.db'}"
    assert not settings.tls_enabled
    assert settings.media.listen_ip == "127.0.0.1"
    assert settings.media.announced_ips == ["127.0.0.1"]
    assert (settings.media.port_min, settings.media.port_max) == (40000, 40099)
    assert settings.media.workers >= 1
    assert settings.log_level == "info"


def test_toml_then_env_then_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = write_toml(
        tmp_path / "incamera.toml",
        """
        bind_port = 9001
        log_level = "debug"
        public_url = "https://toml.example.org"
        [media]
        workers = 2
        port_min = 41000
        port_max = 41009
        listen_ip = "127.0.0.2"
        """,
    )
    monkeypatch.setenv("INCAMERA_CONFIG", str(config))
    monkeypatch.setenv("INCAMERA_LOG_LEVEL", "warning")
    monkeypatch.setenv("INCAMERA_BIND_PORT", "9002")
    monkeypatch.setenv("INCAMERA_MEDIA__PORT_MIN", "41005")
    monkeypatch.setenv("INCAMERA_MEDIA__ANNOUNCED_IPS", "192.0.2.1, 192.0.2.2")

    settings = parse_settings(["--bind-port", "9003", "--media-workers", "3"])

    assert settings.public_url == "https://toml.example.org"  # TOML only
    assert settings.log_level == "warning"  # env beats TOML
    assert settings.bind_port == 9003  # CLI beats env and TOML
    assert settings.media.workers == 3  # CLI, nested
    assert settings.media.port_min == 41005  # env, nested, merged with TOML's table
    assert settings.media.port_max == 41009  # TOML, same table
    assert settings.media.listen_ip == "127.0.0.2"
    assert settings.media.announced_ips == ["192.0.2.1", "192.0.2.2"]


def test_config_flag_beats_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("INCAMERA_CONFIG", str(write_toml(tmp_path / "a.toml", "bind_port = 1")))
    b = write_toml(tmp_path / "b.toml", "bind_port = 2")
    assert parse_settings(["--config", str(b)]).bind_port == 2


def test_cli_lists_and_booleans():
    settings = parse_settings(
        [
            "--media-listen-ip",
            "0.0.0.0",
            "--media-announced-ips",
            "198.51.100.7,198.51.100.8",
            "--media-announced-ips",
            "2001:db8::1",
            "--log-json",
        ]
    )
    assert settings.media.announced_ips == ["198.51.100.7", "198.51.100.8", "2001:db8::1"]
    assert settings.log_json is True


def test_refuses_plain_http_on_a_non_loopback_address():
    with pytest.raises(ConfigError) as error:
        load_settings(overrides={"bind_host": "0.0.0.0"})
    message = str(error.value)
    assert "refusing to serve plain HTTP on 0.0.0.0" in message
    assert "tls_cert" in message and "allow_insecure_http" in message


def test_plain_http_allowed_on_loopback_and_when_explicitly_allowed():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert load_settings(overrides={"bind_host": host}).bind_host == host
    allowed = load_settings(overrides={"bind_host": "0.0.0.0", "allow_insecure_http": True})
    assert allowed.bind_host == "0.0.0.0"
    # A name that is not 'localhost' is not trusted to be loopback.
    with pytest.raises(ConfigError):
        load_settings(overrides={"bind_host": "meet.example.org"})


def test_tls_makes_non_loopback_acceptable_and_https_default(tmp_path: Path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    settings = load_settings(
        overrides={"bind_host": "0.0.0.0", "bind_port": 8443, "tls_cert": cert, "tls_key": key}
    )
    assert settings.tls_enabled
    assert settings.base_url == "https://localhost:8443"
    with pytest.raises(ConfigError, match="tls_cert and tls_key must be set together"):
        load_settings(overrides={"tls_cert": cert})


def test_wildcard_media_address_needs_announced_ips():
    with pytest.raises(ConfigError, match=r"set media\.announced_ips"):
        load_settings(overrides={"media": {"listen_ip": "0.0.0.0"}})
    settings = load_settings(
        overrides={"media": {"listen_ip": "::", "announced_ips": ["203.0.113.9"]}}
    )
    assert settings.media.announced_ips == ["203.0.113.9"]


@pytest.mark.parametrize(
    ("media", "reason"),
    [
        ({"port_min": 41000, "port_max": 40000}, "is above media.port_max"),
        ({"port_min": 41000, "port_max": 41001, "workers": 3}, "each worker needs one UDP port"),
        ({"listen_ip": "not-an-ip"}, "is not an IPv4 or IPv6 address"),
        ({"announced_ips": ["0.0.0.0"]}, "cannot be reached by clients"),
        ({"workers": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_media_settings_are_explained(media: dict[str, object], reason: str):
    with pytest.raises(ConfigError, match=reason):
        load_settings(overrides={"media": media})


def test_unknown_and_misspelled_settings_are_rejected(tmp_path: Path):
    config = write_toml(tmp_path / "x.toml", "bind_prot = 80\n[media]\nwrokers = 2\n")
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "bind_prot: unknown setting" in str(error.value)
    assert "media.wrokers: unknown setting" in str(error.value)


def test_missing_and_broken_config_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    broken = write_toml(tmp_path / "broken.toml", "bind_port = = 3")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(broken)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://meet.example.org", "https://meet.example.org"),
        ("https://meet.example.org/", "https://meet.example.org"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_public_url_is_normalised(url: str, expected: str):
    assert load_settings(overrides={"public_url": url}).base_url == expected


@pytest.mark.parametrize("url", ["ftp://x.org", "meet.example.org", "https://x.org/sub/path"])
def test_public_url_must_be_an_http_origin(url: str):
    with pytest.raises(ConfigError, match="public_url"):
        load_settings(overrides={"public_url": url})


def test_base_url_follows_the_bind_address():
    assert Settings(bind_host="::1", bind_port=1234).base_url == "http://localhost:1234"
    lan = Settings(bind_host="192.0.2.10", allow_insecure_http=True)
    assert lan.base_url == "http://192.0.2.10:8080"
    v6 = Settings(bind_host="2001:db8::2", allow_insecure_http=True)
    assert v6.base_url == "http://[2001:db8::2]:8080"
