"""Resolution as CloudFront does it, against a real dnsmasq (and nginx on two addresses)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.demo.pki import DemoPKI, write_chain
from exporter.engine.dns import (
    DnsSettings,
    Resolution,
    resolve_addresses,
)
from exporter.engine.errors import ResolveError
from exporter.engine.target import DnsServer, IpAddressType
from tests.servers.dnsmasq import DnsmasqServer, DnsRecords, host_records, silent_dns_server
from tests.servers.nginx import NginxServer, NginxSite

pytestmark = pytest.mark.skipif(
    shutil.which("dnsmasq") is None and not Path("/usr/sbin/dnsmasq").exists(),
    reason="dnsmasq (apt-get install dnsmasq-base) is not installed",
)

RECORDS = DnsRecords(
    hosts=(
        *host_records("multi.test", ["127.0.0.4", "127.0.0.2", "127.0.0.3"]),
        *host_records("five.test", [f"127.0.1.{i}" for i in (5, 1, 4, 2, 3)]),
        *host_records("v6.test", ["::ffff:127.0.0.2", "::1"]),
        *host_records("both.test", ["127.0.0.5", "::1"]),
        *host_records("origins.test", ["127.0.0.2", "127.0.0.3"]),
    ),
    cnames=(("alias.test", "multi.test"), ("www.test", "alias.test")),
)


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[DnsmasqServer]:
    with DnsmasqServer(RECORDS) as server:
        yield server


#: the lifetime of the queries to dnsmasq: far above its milliseconds, so that no answer is
#: late on a loaded machine, and one that waited for a timeout stands out (see below)
LIFETIME = 30.0


@pytest.fixture(scope="module")
def settings(dnsmasq: DnsmasqServer) -> DnsSettings:
    return DnsSettings(servers=(DnsServer(*dnsmasq.server),), timeout=LIFETIME)


def resolve(host: str, settings: DnsSettings, kind: str = "ipv4", **kwargs: object) -> Resolution:
    return asyncio.run(
        resolve_addresses(host, settings, IpAddressType(kind), **kwargs)  # type: ignore[arg-type]
    )


def test_every_a_record_is_returned_in_a_stable_order(settings: DnsSettings) -> None:
    result = resolve("multi.test", settings)
    assert result.addresses == ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    assert result.resolver == f"127.0.0.1:{settings.servers[0].port}"
    assert result.truncated_from is None
    assert [a.record_type for a in result.answers] == ["A"]
    assert result.duration_seconds < settings.timeout / 3  # answered, not waited out


def test_ipv6_asks_only_for_aaaa(settings: DnsSettings) -> None:
    result = resolve("v6.test", settings, "ipv6")
    assert result.addresses == ("::1", "::ffff:7f00:2")
    assert [a.record_type for a in result.answers] == ["AAAA"]


def test_ipv4_of_an_ipv6_only_name_fails_naming_the_cause(settings: DnsSettings) -> None:
    with pytest.raises(ResolveError, match=r"'v6\.test' via 127\.0\.0\.1:\d+: A: no A record"):
        resolve("v6.test", settings, "ipv4")


def test_dualstack_gives_both_families(settings: DnsSettings) -> None:
    result = resolve("both.test", settings, "dualstack")
    assert result.addresses == ("127.0.0.5", "::1")
    assert {a.record_type: a.addresses for a in result.answers} == {
        "A": ("127.0.0.5",),
        "AAAA": ("::1",),
    }


def test_dualstack_keeps_one_familys_error(settings: DnsSettings) -> None:
    result = resolve("multi.test", settings, "dualstack")
    assert result.addresses == ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    aaaa = next(a for a in result.answers if a.record_type == "AAAA")
    assert aaaa.addresses == ()
    assert aaaa.error is not None
    assert "no AAAA record" in aaaa.error


def test_a_cname_chain_is_followed(settings: DnsSettings) -> None:
    result = resolve("www.test", settings)
    assert result.addresses == ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    assert result.answers[0].canonical_name == "multi.test"


def test_nxdomain_names_the_name_and_the_server(settings: DnsSettings) -> None:
    server = f"127.0.0.1:{settings.servers[0].port}"
    with pytest.raises(ResolveError) as caught:
        resolve("missing.test", settings, "dualstack")
    message = str(caught.value)
    assert "'missing.test'" in message
    assert server in message
    assert "NXDOMAIN" in message
    assert caught.value.reason == "dns_failed"


def test_a_server_that_never_answers_fails_within_the_timeout() -> None:
    """Both queries of dualstack (A and AAAA) end with the one lifetime they share: waited out
    one after the other, or retried, they would take at least twice as long."""
    lifetime = 2.0
    with silent_dns_server() as server:
        settings = DnsSettings(servers=(DnsServer(*server),), timeout=lifetime)
        started = time.monotonic()
        with pytest.raises(
            ResolveError, match=r"A: no answer within 2s.*AAAA: no answer within 2s"
        ) as caught:
            resolve("multi.test", settings, "dualstack")
        elapsed = time.monotonic() - started
    assert f"127.0.0.1:{server[1]}" in str(caught.value)
    assert lifetime * 0.9 <= elapsed < 2 * lifetime


def test_max_addresses_truncates_after_sorting(settings: DnsSettings) -> None:
    result = resolve("five.test", settings, max_addresses=2)
    assert result.addresses == ("127.0.1.1", "127.0.1.2")
    assert result.truncated_from == 5
    assert result.truncated


def test_the_system_resolver_knows_localhost() -> None:
    result = resolve("localhost", DnsSettings())
    assert result.resolver == "system"
    assert "127.0.0.1" in result.addresses


def test_ip_literals_and_overrides_skip_dns() -> None:
    unreachable = DnsSettings(servers=(DnsServer("127.0.0.1", 9),), timeout=0.2)
    assert resolve("[::1]", unreachable, "ipv6").addresses == ("::1",)
    assert resolve("127.0.0.9", unreachable).resolver == "literal"
    result = resolve("anything.test", unreachable, override="127.0.0.3, 127.0.0.2")
    assert (result.addresses, result.resolver) == (("127.0.0.2", "127.0.0.3"), "override")
    with pytest.raises(ValueError, match="override"):
        resolve("anything.test", unreachable, override="not-an-ip")


def test_settings_reject_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="positive"):
        DnsSettings(timeout=0)
    servers = (DnsServer("127.0.0.1"), DnsServer("::1", 5353))
    assert DnsSettings(servers).resolver_name == "127.0.0.1:53, [::1]:5353"


def _loopback_alias_works(address: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
@pytest.mark.skipif(
    not all(_loopback_alias_works(a) for a in ("127.0.0.2", "127.0.0.3")),
    reason="127.0.0.2/127.0.0.3 are not usable loopback addresses here",
)
def test_one_name_two_addresses_two_certificates(settings: DnsSettings, tmp_path: Path) -> None:
    """The integration set-up: a name resolving to two nginx origins with different certs."""
    pki = DemoPKI.create()
    leaves = {addr: pki.leaf("origins.test") for addr in ("127.0.0.2", "127.0.0.3")}
    sites = []
    for address, leaf in leaves.items():
        chain, key = write_chain(tmp_path, address, [leaf, pki.intermediate], leaf.key)
        name = "site-" + address.replace(".", "-")
        sites.append(NginxSite(name, chain, key, port_group="https", address=address))
    addresses = resolve("origins.test", settings).addresses
    assert addresses == ("127.0.0.2", "127.0.0.3")
    with NginxServer(tmp_path / "nginx") as nginx:
        ports = nginx.start(sites)
        assert len(set(ports.values())) == 1  # the same port on both, as for a real origin
        port = next(iter(ports.values()))
        seen = {a: _peer_certificate(a, port, "origins.test", pki) for a in addresses}
    assert seen == {a: leaf.der for a, leaf in leaves.items()}
    assert seen["127.0.0.2"] != seen["127.0.0.3"]


def _peer_certificate(address: str, port: int, name: str, pki: DemoPKI) -> bytes:
    context = ssl.create_default_context(cadata=pki.root.pem.decode())
    with (
        socket.create_connection((address, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der
