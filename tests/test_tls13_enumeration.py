"""TLS 1.3 (information only) against a tlslite-ng origin that enables AES-CCM, which no common
server library does by default: the two CCM suites are asked about in one hello, and apart
once the origin picks one of them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from exporter.demo.pki import DemoPKI
from exporter.engine.catalogue import Protocol
from exporter.engine.probe import Engine
from exporter.engine.target import ProbeOptions, ProbeTarget
from tests.servers.tlslite_origins import ModernTlsliteServer

HOST = "ccm.test"


@pytest.fixture(scope="module")
def pki() -> DemoPKI:
    return DemoPKI.create("CCM")


@pytest.fixture(scope="module")
def ca_file(pki: DemoPKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki.write_roots(tmp_path_factory.mktemp("ccm") / "roots.pem")


def probe_tls13(
    pki: DemoPKI, ca_file: Path, ciphers: tuple[str, ...]
) -> tuple[set[str], tuple[str, ...]]:
    leaf = pki.leaf(HOST)
    server = ModernTlsliteServer(leaf.pem + pki.intermediate.pem, leaf.key_pem, ciphers=ciphers)
    port = server.start()
    try:
        target = ProbeTarget(HOST, port, address="127.0.0.1", ca_file=str(ca_file), request=None)
        result = asyncio.run(Engine().probe(target, ProbeOptions(timeout=5.0)))
    finally:
        server.stop()
    tls13 = result.protocol(Protocol.TLSv1_3)
    assert tls13 is not None
    return {s.name for s in tls13.accepted_suites}, result.log


def test_the_rare_suites_go_together_and_apart_once_one_is_picked(
    pki: DemoPKI, ca_file: Path
) -> None:
    accepted, log = probe_tls13(pki, ca_file, ("aes128gcm", "aes128ccm"))
    assert accepted == {"TLS_AES_128_GCM_SHA256", "TLS_AES_128_CCM_SHA256"}, log
    together = [line for line in log if "TLS_AES_128_CCM_8_SHA256 together" in line]
    assert len(together) == 1, log
    assert together[0].endswith("server picked TLS_AES_128_CCM_SHA256"), log
    assert [line for line in log if "offered TLS_AES_128_CCM_8_SHA256 alone" in line], log


def test_a_refusal_of_both_costs_one_hello(pki: DemoPKI, ca_file: Path) -> None:
    accepted, log = probe_tls13(pki, ca_file, ("aes128gcm", "aes256gcm"))
    assert accepted == {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}, log
    ccm = [line for line in log if "CCM" in line]
    assert len(ccm) == 1, log
    assert "together" in ccm[0], log
