"""Self-tests of the test origins, with real clients (Python's ssl and tlslite-ng).

If these servers are wrong, every scenario built on them lies, so each one is checked for the
exact behaviour the scenarios rely on.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tlslite.constants import AlertDescription, CipherSuite
from tlslite.errors import TLSRemoteAlert
from tlslite.handshakesettings import HandshakeSettings
from tlslite.tlsconnection import TLSConnection

from tests import pki as test_pki
from tests.pki import Issued, write_chain
from tests.servers import (
    HandshakeFailsAfterHelloServer,
    LegacyConfig,
    LegacyTLSServer,
    NginxError,
    NginxServer,
    NginxSite,
    PlainHTTPServer,
    SilentServer,
    closed_port,
)
from tests.servers import nginx as nginx_module
from tests.servers.ports import HOST, free_port

REPO = Path(__file__).resolve().parent.parent
REQUEST = b"GET / HTTP/1.0\r\nHost: origin.test\r\n\r\n"


class Certs:
    """Leaves (with their chain files) shared by the whole module: RSA keygen is slow."""

    def __init__(self, directory: Path) -> None:
        self.pki = test_pki.TestPKI.create()  # module import: pytest would try to collect it
        self.dir = directory
        self.root_pem = self.pki.write_roots(directory / "root.pem")

    def chain(self, name: str, key_kind: str = "rsa2048") -> tuple[Issued, Path, Path]:
        leaf = self.pki.leaf(name, key_kind=key_kind)
        chain, key = write_chain(self.dir, name, [leaf, self.pki.intermediate], leaf.key)
        return leaf, chain, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def rsa_leaf(certs: Certs) -> tuple[Issued, Path, Path]:
    return certs.chain("origin.test")


def client_context(*, verify: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=str(verify))
    return ctx


def https_get(
    port: int, ctx: ssl.SSLContext, server_hostname: str | None = None
) -> tuple[bytes, bytes, str]:
    """(response body, leaf DER, negotiated version) over Python's ssl."""
    with (
        socket.create_connection((HOST, port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        host = (server_hostname or "origin.test").encode()
        tls.sendall(b"GET / HTTP/1.0\r\nHost: " + host + b"\r\n\r\n")
        response = b""
        while chunk := tls.recv(4096):
            response += chunk
        leaf = tls.getpeercert(binary_form=True)
        assert leaf is not None
        return response.split(b"\r\n\r\n", 1)[1], leaf, str(tls.version())


def tlslite_settings(
    ciphers: list[str], macs: list[str], low: tuple[int, int], high: tuple[int, int]
) -> HandshakeSettings:
    settings = HandshakeSettings()
    settings.minVersion, settings.maxVersion = low, high
    settings.cipherNames, settings.macNames = ciphers, macs
    settings.keyExchangeNames = ["rsa"]
    return settings


def tlslite_get(port: int, settings: HandshakeSettings) -> tuple[str, tuple[int, int], int, bytes]:
    """(cipher name, version, suite code, body) over tlslite-ng."""
    with socket.create_connection((HOST, port), timeout=5) as raw:
        conn = TLSConnection(raw)
        conn.handshakeClientCert(settings=settings)
        negotiated = (conn.getCipherName(), conn.version, conn.session.cipherSuite)
        conn.write(REQUEST)
        response = bytearray()
        while chunk := conn.read():
            response += chunk
        return (*negotiated, bytes(response).split(b"\r\n\r\n", 1)[1])


def refused_alert(port: int, settings: HandshakeSettings) -> int:
    """The alert description a tlslite client gets instead of a handshake."""
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with pytest.raises(TLSRemoteAlert) as info:
            TLSConnection(raw).handshakeClientCert(settings=settings)
        description: int = info.value.description
        return description


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxServer]:
    with NginxServer(tmp_path / "nginx") as server:
        yield server


# --- nginx -------------------------------------------------------------------------------------


def test_nginx_tls12_sends_chain_and_body(
    nginx: NginxServer, certs: Certs, rsa_leaf: tuple[Issued, Path, Path]
) -> None:
    leaf, chain, key = rsa_leaf
    ports = nginx.start([NginxSite("main", chain, key), NginxSite("other", chain, key)])
    assert set(ports) == {"main", "other"}
    assert ports["main"] != ports["other"]
    body, der, version = https_get(ports["main"], client_context())
    assert (body, der, version) == (b"origin main\n", leaf.der, "TLSv1.2")
    # verifying against the root alone proves the intermediate was sent too
    body, _, _ = https_get(ports["other"], client_context(verify=certs.root_pem), "origin.test")
    assert body == b"origin other\n"


def test_nginx_tlsv1_only(nginx: NginxServer, rsa_leaf: tuple[Issued, Path, Path]) -> None:
    _, chain, key = rsa_leaf
    port = nginx.start([NginxSite("old", chain, key, protocols=("TLSv1",))])["old"]
    ctx = client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ssl.TLSVersion.TLSv1
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    assert https_get(port, ctx)[::2] == (b"origin old\n", "TLSv1")
    modern = client_context()
    modern.minimum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        https_get(port, modern)


def test_nginx_ecdsa_curve_and_tls13(nginx: NginxServer, certs: Certs) -> None:
    leaf, chain, key = certs.chain("ec.test", key_kind="p256")
    ecdhe = "ECDHE-ECDSA-AES128-GCM-SHA256"
    ports = nginx.start(
        [
            NginxSite("ec12", chain, key, ciphers=ecdhe, ecdh_curve="secp384r1:prime256v1"),
            NginxSite("ec13", chain, key, protocols=("TLSv1.2", "TLSv1.3"), ciphers=ecdhe),
        ]
    )
    with (
        socket.create_connection((HOST, ports["ec12"]), timeout=5) as raw,
        client_context().wrap_socket(raw) as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        assert cipher[:2] == (ecdhe, "TLSv1.2")
        assert tls.getpeercert(binary_form=True) == leaf.der
    assert https_get(ports["ec13"], client_context())[::2] == (b"origin ec13\n", "TLSv1.3")


def test_nginx_shared_port_selects_by_sni(nginx: NginxServer, certs: Certs) -> None:
    a_leaf, a_chain, a_key = certs.chain("a.test")
    b_leaf, b_chain, b_key = certs.chain("b.test")
    ports = nginx.start(
        [
            NginxSite("a", a_chain, a_key, server_names=("a.test",), port_group="shared"),
            NginxSite("b", b_chain, b_key, server_names=("b.test",), port_group="shared"),
        ]
    )
    assert ports["a"] == ports["b"]
    assert https_get(ports["a"], client_context(), "b.test")[:2] == (b"origin b\n", b_leaf.der)
    assert https_get(ports["a"], client_context(), "a.test")[:2] == (b"origin a\n", a_leaf.der)
    # no SNI: the first site of the group is the default server
    assert https_get(ports["a"], client_context())[1] == a_leaf.der


def test_nginx_config_errors_carry_the_error_log(
    nginx: NginxServer, rsa_leaf: tuple[Issued, Path, Path]
) -> None:
    _, chain, key = rsa_leaf
    with pytest.raises(NginxError, match="no cipher match") as info:
        nginx.start([NginxSite("bad", chain, key, ciphers="NO-SUCH-CIPHER")])
    assert "nginx error log" in str(info.value)
    with pytest.raises(NginxError, match=r"cannot load certificate key"):
        nginx.start([NginxSite("nokey", chain, chain.parent / "missing.key.pem")])
    with pytest.raises(ValueError, match="unknown protocols"):
        nginx.start([NginxSite("typo", chain, key, protocols=("TLSv1.4",))])
    with pytest.raises(ValueError, match="LegacyTLSServer"):
        nginx.start([NginxSite("ssl3", chain, key, protocols=("SSLv3",))])


def test_nginx_stop_reaps_the_process(tmp_path: Path, rsa_leaf: tuple[Issued, Path, Path]) -> None:
    _, chain, key = rsa_leaf
    server = NginxServer(tmp_path)
    port = server.start([NginxSite("s", chain, key)])["s"]
    proc = server._proc
    assert proc is not None
    server.stop()
    server.stop()  # idempotent
    assert proc.returncode is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=2)


def test_nginx_retries_once_when_the_port_was_taken(
    nginx: NginxServer, rsa_leaf: tuple[Issued, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, chain, key = rsa_leaf
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        handed_out = iter([taken])
        monkeypatch.setattr(
            nginx_module, "free_port", lambda: next(handed_out, None) or free_port()
        )
        port = nginx.start([NginxSite("s", chain, key)])["s"]
    assert port != taken
    assert https_get(port, client_context())[0] == b"origin s\n"


# --- legacy (tlslite-ng) -------------------------------------------------------------------------


StartLegacy = Callable[..., LegacyTLSServer]


@pytest.fixture
def legacy(rsa_leaf: tuple[Issued, Path, Path]) -> Iterator[StartLegacy]:
    """Factory: start a LegacyTLSServer for the shared leaf; all are stopped at teardown."""
    _, chain, key = rsa_leaf
    servers: list[LegacyTLSServer] = []

    def start(**kwargs: Any) -> LegacyTLSServer:
        server = LegacyTLSServer(LegacyConfig(chain_pem=chain, key_pem=key, **kwargs))
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
        assert server.errors == []


def test_legacy_sslv3_rc4_md5(legacy: StartLegacy) -> None:
    server = legacy()  # defaults: SSLv3 only, RC4-MD5 + DES-CBC3-SHA
    ssl3 = (3, 0)
    got = tlslite_get(server.port, tlslite_settings(["rc4"], ["md5"], ssl3, ssl3))
    assert got == ("rc4", ssl3, CipherSuite.TLS_RSA_WITH_RC4_128_MD5, b"origin legacy\n")
    # a suite outside the list is refused, including RC4-SHA, which tlslite's name-based
    # settings would enable as the cross product of {rc4, 3des} x {md5, sha}
    for cipher in ("aes128", "rc4"):
        settings = tlslite_settings([cipher], ["sha"], ssl3, ssl3)
        assert refused_alert(server.port, settings) == AlertDescription.handshake_failure


def test_legacy_3des_at_tls12_and_version_floor(legacy: StartLegacy) -> None:
    server = legacy(min_version="TLSv1.2", max_version="TLSv1.2", suites=("DES-CBC3-SHA",))
    tls12 = (3, 3)
    got = tlslite_get(server.port, tlslite_settings(["3des"], ["sha"], (3, 1), tls12))
    assert got[:3] == ("3des", tls12, CipherSuite.TLS_RSA_WITH_3DES_EDE_CBC_SHA)
    below = tlslite_settings(["3des"], ["sha"], (3, 0), (3, 2))
    assert refused_alert(server.port, below) == AlertDescription.protocol_version


def test_legacy_prefers_its_own_order(legacy: StartLegacy) -> None:
    server = legacy(min_version="TLSv1", max_version="TLSv1.2", suites=("AES128-SHA", "AES256-SHA"))
    settings = tlslite_settings(["aes256", "aes128"], ["sha"], (3, 1), (3, 3))
    assert tlslite_get(server.port, settings)[2] == CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA


def test_legacy_survives_many_short_connections(legacy: StartLegacy) -> None:
    server = legacy(max_version="TLSv1")
    threads_before = threading.active_count()
    for i in range(300):
        with socket.create_connection((HOST, server.port), timeout=5) as sock:
            if i % 3 == 1:
                sock.sendall(b"\x16\x03\x01\x00\x05hello")  # truncated garbage record
            elif i % 3 == 2:
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    settings = tlslite_settings(["3des"], ["sha"], (3, 1), (3, 1))
    assert tlslite_get(server.port, settings)[3] == b"origin legacy\n"
    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before


def test_legacy_rejects_bad_config(rsa_leaf: tuple[Issued, Path, Path]) -> None:
    _, chain, key = rsa_leaf
    with pytest.raises(ValueError, match="unsupported suites"):
        LegacyTLSServer(LegacyConfig(chain, key, suites=("ECDHE-RSA-AES128-SHA",)))
    with pytest.raises(ValueError, match=r"min_version TLSv1\.2 > max_version SSLv3"):
        LegacyTLSServer(LegacyConfig(chain, key, min_version="TLSv1.2"))
    with pytest.raises(ValueError, match="none of"):
        LegacyTLSServer(LegacyConfig(chain, key, max_version="TLSv1", suites=("AES128-SHA256",)))


def test_legacy_runs_standalone(rsa_leaf: tuple[Issued, Path, Path]) -> None:
    _, chain, key = rsa_leaf
    args = ["--chain", str(chain), "--key", str(key), "--min", "SSLv3", "--max", "TLSv1"]
    args += ["--suites", "RC4-MD5,DES-CBC3-SHA", "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.legacy", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        got = tlslite_get(port, tlslite_settings(["rc4"], ["md5"], (3, 0), (3, 1)))
        assert got[:2] == ("rc4", (3, 1))
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


# --- broken origins ----------------------------------------------------------------------------


class RecordingSocket:
    """Delegates to a socket, keeping every byte received (to see what a server sent)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.received = bytearray()

    def recv(self, size: int, *flags: int) -> bytes:
        data = self._sock.recv(size, *flags)
        self.received += data
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_handshake_fails_after_server_hello(rsa_leaf: tuple[Issued, Path, Path]) -> None:
    leaf, chain, _ = rsa_leaf
    with (
        HandshakeFailsAfterHelloServer(chain) as server,
        socket.create_connection((HOST, server.port), timeout=5) as raw,
    ):
        recording = RecordingSocket(raw)
        settings = tlslite_settings(["aes256", "aes128"], ["sha"], (3, 1), (3, 3))
        with pytest.raises(TLSRemoteAlert) as info:
            TLSConnection(recording).handshakeClientCert(settings=settings)
        assert info.value.description == AlertDescription.handshake_failure
        # it got as far as ServerHello (TLS 1.2) + Certificate before failing
        assert bytes(recording.received[:3]) == b"\x16\x03\x03"
        assert leaf.der in recording.received
        assert server.errors == []


def test_handshake_fails_after_hello_with_openssl_client(
    rsa_leaf: tuple[Issued, Path, Path],
) -> None:
    _, chain, _ = rsa_leaf
    ctx = client_context()
    ctx.set_ciphers("AES128-SHA:@SECLEVEL=0")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with HandshakeFailsAfterHelloServer(chain) as server, pytest.raises(ssl.SSLError) as info:
        https_get(server.port, ctx)
    assert "HANDSHAKE_FAILURE" in str(info.value).upper()


def test_plain_http_server_answers_400() -> None:
    with PlainHTTPServer() as server:
        with socket.create_connection((HOST, server.port), timeout=5) as sock:
            sock.sendall(b"\x16\x03\x01\x00\x2a" + bytes(42))
            response = b""
            while chunk := sock.recv(4096):
                response += chunk
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert response.endswith(PlainHTTPServer.BODY)
        with pytest.raises(ssl.SSLError):
            https_get(server.port, client_context())


def test_silent_server_never_answers() -> None:
    before = set(threading.enumerate())
    server = SilentServer()
    port = server.start()
    try:
        with socket.create_connection((HOST, port), timeout=0.3) as sock:
            sock.sendall(b"\x16\x03\x01\x00\x00")
            with pytest.raises(TimeoutError):
                sock.recv(1)
            # Must not hang on the held connection: its handler (which would hold it until
            # released, without a timeout) has ended when stop() returns, however long the
            # machine made stop() take; checked while the client is still connected.
            server.stop()
            assert [t for t in threading.enumerate() if t not in before] == []
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b""
    finally:
        server.stop()


def test_closed_port_refuses() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, closed_port()), timeout=2)
