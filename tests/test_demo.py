"""The embedded demo: every origin shows the failure it claims, through the real engine."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tlslite.handshakesettings import HandshakeSettings
from tlslite.tlsconnection import TLSConnection

from exporter.demo.fleet import HEADER, DemoFleet, DemoOrigin
from exporter.demo.modern import ModernConfig, ModernTLSServer
from exporter.demo.pki import DemoPKI, write_chain
from exporter.demo.tcp import ThreadedTCPServer
from exporter.engine.catalogue import Protocol
from exporter.engine.probe import Engine
from exporter.engine.result import Judgment
from exporter.engine.target import ProbeOptions, ProbeTarget

NAMES = [
    "good",
    "name-mismatch",
    "missing-intermediate",
    "expired",
    "expiring-soon",
    "no-common-cipher",
    "undocumented-suites",
    "tls13-only",
    "legacy-sslv3",
    "self-signed",
]
REQUEST = b"GET / HTTP/1.0\r\nHost: demo.test\r\n\r\n"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoFleet]:
    with DemoFleet(tmp_path_factory.mktemp("demo")) as running:
        yield running


def origin(fleet: DemoFleet, name: str) -> DemoOrigin:
    return next(o for o in fleet.origins if o.name == name)


def probe(fleet: DemoFleet, o: DemoOrigin) -> Judgment:
    target = ProbeTarget(
        host=o.host,
        port=o.port,
        address="127.0.0.1",
        ca_file=str(fleet.ca_file),
        protocols=tuple(Protocol.parse(p) for p in o.protocols),
    )
    return asyncio.run(Engine().probe(target, ProbeOptions(timeout=5)))


def https_get(port: int, host: str, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(REQUEST)
        answer = bytearray()
        while chunk := tls.recv(4096):
            answer += chunk
    return bytes(answer)


def tlslite_get(port: int) -> bytes:
    settings = HandshakeSettings()
    settings.minVersion = settings.maxVersion = (3, 0)
    settings.cipherNames = ["rc4", "3des"]
    settings.macNames = ["md5", "sha"]
    settings.keyExchangeNames = ["rsa"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        tls = TLSConnection(raw)
        tls.handshakeClientCert(settings=settings)
        tls.write(REQUEST)
        answer = bytearray()
        while chunk := tls.read():
            answer += chunk
        tls.close()
    return bytes(answer)


def no_verify(**versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for attribute, version in versions.items():
            setattr(context, attribute, version)
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def test_every_scenario_is_there(fleet: DemoFleet) -> None:
    assert [o.name for o in fleet.origins] == NAMES
    for o in fleet.origins:
        assert o.host == f"{o.name}.demo.test"
        assert o.description
        assert "\n" not in o.description
    assert len({o.port for o in fleet.origins}) == len(NAMES)
    assert fleet.ca_file.is_absolute()
    assert fleet.ca_file.read_bytes().startswith(b"-----BEGIN")


@pytest.mark.parametrize("name", NAMES)
def test_engine_reports_the_expected_reasons(fleet: DemoFleet, name: str) -> None:
    o = origin(fleet, name)
    result = probe(fleet, o)
    assert tuple(str(r) for r in result.reasons) == o.expected_reasons, result.log
    assert result.success, result.error
    assert result.legacy_only is (name == "legacy-sslv3")


def test_expiring_soon_expires_in_ten_days(fleet: DemoFleet) -> None:
    result = probe(fleet, origin(fleet, "expiring-soon"))
    assert result.chain is not None
    days_left = (result.chain.certificates[0].not_after.timestamp() - time.time()) / 86400
    assert 9.9 < days_left <= 10


def test_config_yaml_structure(fleet: DemoFleet) -> None:
    text = fleet.config_yaml(interval="30s")
    assert text.startswith(HEADER)
    config = yaml.safe_load(text)
    assert list(config) == ["defaults", "resolve", "probe_allow", "origins"]
    assert config["defaults"] == {
        "interval": "30s",
        "timeout": "5s",
        "ca_file": str(fleet.ca_file),
    }
    assert config["resolve"] == {o.host: "127.0.0.1" for o in fleet.origins}
    assert config["probe_allow"] == ["*.demo.test:*", "127.0.0.1:*"]
    assert config["origins"] == [
        {
            "name": o.name,
            "host": o.host,
            "port": o.port,
            "protocols": list(o.protocols),
            "labels": {"scenario": o.name},
        }
        for o in fleet.origins
    ]
    assert origin(fleet, "good").protocols == ("TLSv1.2",)
    assert origin(fleet, "legacy-sslv3").protocols == ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2")
    assert yaml.safe_load(fleet.config_yaml())["defaults"]["interval"] == "15s"


def test_every_port_answers_http(fleet: DemoFleet) -> None:
    for o in fleet.origins:
        if o.name == "legacy-sslv3":
            answer = tlslite_get(o.port)
        else:
            answer = https_get(o.port, o.host, no_verify())
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), o.name
        assert answer.endswith(f"\r\n\r\norigin {o.name}\n".encode()), o.name


def test_good_origin_verifies_against_the_demo_ca(fleet: DemoFleet) -> None:
    good = origin(fleet, "good")
    context = ssl.create_default_context(cafile=str(fleet.ca_file))
    assert https_get(good.port, good.host, context).endswith(b"origin good\n")


def test_stop_joins_every_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A client that connects and says nothing would pin its handler thread for a minute: only
    # stop() cutting the connection ends that thread within stop()'s 5 s joins.
    monkeypatch.setattr(ThreadedTCPServer, "conn_timeout", 60.0)
    before = threading.active_count()
    demo = DemoFleet(tmp_path)
    origins = demo.start()
    assert threading.active_count() >= before + len(origins)  # one accept loop each
    probe(demo, origins[0])
    idle = socket.create_connection(("127.0.0.1", origins[0].port), timeout=5)
    try:
        time.sleep(0.2)
        demo.stop()
        # Counted while the idle client is still connected: its closing cannot end the thread.
        assert threading.active_count() == before
    finally:
        idle.close()
    assert demo.origins == []
    demo.stop()  # idempotent
    with pytest.raises(RuntimeError, match="start"):
        demo.config_yaml()


# --- ModernTLSServer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pki = DemoPKI.create(label="Demo")
    leaf = pki.leaf("modern.demo.test")
    return write_chain(tmp_path_factory.mktemp("modern"), "m", [leaf, pki.intermediate], leaf.key)


def test_modern_counts_failed_handshakes_quietly(
    chain: tuple[Path, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    with ModernTLSServer(ModernConfig(*chain, min_version="TLSv1.3", name="m")) as server:
        with pytest.raises(ssl.SSLError):
            https_get(
                server.port, "modern.demo.test", no_verify(maximum_version=ssl.TLSVersion.TLSv1_2)
            )
        assert https_get(server.port, "modern.demo.test", no_verify()).endswith(b"origin m\n")
        deadline = time.monotonic() + 5
        while server.handshake_failures < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert (server.handshakes, server.handshake_failures) == (1, 1)
    assert server.errors == []
    assert capfd.readouterr().err == ""


def test_modern_serves_tls10_without_warnings(chain: tuple[Path, Path]) -> None:
    config = ModernConfig(*chain, min_version="TLSv1", max_version="TLSv1", ciphers="AES128-SHA")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server = ModernTLSServer(config)
    assert caught == []
    with server:
        tls10 = no_verify(
            minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1
        )
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            tls10.wrap_socket(raw, server_hostname="modern.demo.test") as tls,
        ):
            assert tls.version() == "TLSv1"
            cipher = tls.cipher()
            assert cipher is not None
            assert cipher[0] == "AES128-SHA"


def test_modern_rejects_bad_versions(chain: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="unknown version"):
        ModernConfig(*chain, min_version="SSLv3").validate()
    with pytest.raises(ValueError, match=r"min_version TLSv1\.3 > max_version TLSv1\.2"):
        ModernTLSServer(ModernConfig(*chain, min_version="TLSv1.3", max_version="TLSv1.2"))
