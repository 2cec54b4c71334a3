"""--web.config.file: TLS and basic auth on the real daemon, checked with real clients."""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from exporter.demo.pki import DemoPKI, write_chain
from exporter.webconfig import WebConfigError, load_web_config
from tests.daemon_process import ExporterProcess

PASSWORD = "correct horse battery staple"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def pki() -> DemoPKI:
    return DemoPKI.create()


def _files(tmp_path: Path, pki: DemoPKI, **tls: str) -> tuple[Path, Path]:
    server = pki.leaf("127.0.0.1", sans=["127.0.0.1", "localhost"])
    chain, key = write_chain(tmp_path, "server", [server, pki.intermediate], server.key)
    roots = pki.write_roots(tmp_path / "roots.pem")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = {
        "tls_server_config": {"cert_file": chain.name, "key_file": key.name, **tls},
        "basic_auth_users": {"prometheus": hashed},
    }
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(web))
    (tmp_path / "config.yml").write_text("origins: []\n")
    return path, roots


def _get(url: str, context: ssl.SSLContext, authorization: str | None = None) -> int:
    request = urllib.request.Request(url)
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_tls_and_basic_auth(tmp_path: Path, pki: DemoPKI) -> None:
    web, roots = _files(tmp_path, pki)
    process = ExporterProcess(
        ["serve", "--config.file", str(tmp_path / "config.yml"), "--web.config.file", str(web)],
        tmp_path / "log",
    )
    process.start_with(lambda: _get_ready(process, roots))
    try:
        client = ssl.create_default_context(cafile=str(roots))
        base = f"https://127.0.0.1:{process.port}"
        assert _get(base + "/metrics", client, _basic("prometheus", PASSWORD)) == 200
        assert _get(base + "/metrics", client) == 401
        assert _get(base + "/metrics", client, _basic("prometheus", "wrong")) == 401
        assert _get(base + "/metrics", client, _basic("nobody", PASSWORD)) == 401
        assert _get(base + "/-/healthy", client, "Bearer x") == 401
        # Plain HTTP is not served on the TLS port.
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"http://127.0.0.1:{process.port}/metrics", timeout=5)
    finally:
        process.stop()
    log = process.log()
    assert PASSWORD not in log
    assert "$2b$" not in log


def test_client_certificates_required(tmp_path: Path, pki: DemoPKI) -> None:
    web, roots = _files(
        tmp_path, pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file="roots.pem"
    )
    client_leaf = pki.leaf("prometheus-client", client=True)
    client_chain, client_key = write_chain(
        tmp_path, "client", [client_leaf, pki.intermediate], client_leaf.key
    )
    process = ExporterProcess(
        ["serve", "--config.file", str(tmp_path / "config.yml"), "--web.config.file", str(web)],
        tmp_path / "log",
    )
    with_cert = ssl.create_default_context(cafile=str(roots))
    with_cert.load_cert_chain(client_chain, client_key)
    process.start_with(lambda: _get_ready(process, roots, with_cert))
    try:
        base = f"https://127.0.0.1:{process.port}"
        assert _get(base + "/metrics", with_cert, _basic("prometheus", PASSWORD)) == 200
        without = ssl.create_default_context(cafile=str(roots))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            _get(base + "/metrics", without, _basic("prometheus", PASSWORD))
    finally:
        process.stop()


def _get_ready(
    process: ExporterProcess, roots: Path, context: ssl.SSLContext | None = None
) -> bool:
    context = context or ssl.create_default_context(cafile=str(roots))
    try:
        return (
            _get(
                f"https://127.0.0.1:{process.port}/-/ready",
                context,
                _basic("prometheus", PASSWORD),
            )
            == 200
        )
    except (OSError, ssl.SSLError):
        return False


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tls_server_config: {cert_file: nope.pem, key_file: nope.pem}", "no such file"),
        ("basic_auth_users: {alice: hunter2}", "must be a bcrypt hash"),
        ("basic_auth: {}", "basic_auth: unknown key"),
        ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: Maybe}", "must be one"),
        (
            "tls_server_config: {cert_file: a, key_file: b, "
            "client_auth_type: RequireAndVerifyClientCert}",
            "client_ca_file: required",
        ),
    ],
)
def test_bad_web_config(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(content + "\n")
    with pytest.raises(WebConfigError, match=message) as error:
        load_web_config(path)
    assert "hunter2" not in str(error.value)
    assert str(path) in str(error.value)
