"""What CloudFront does around its handshake, against real parts on 127.0.0.0/8: dnsmasq
answering several addresses for one name (nginx on 127.0.0.2 and 127.0.0.3 with different
certificates), origins that want a client certificate, answer too late or not in HTTP."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.engine.probe import Engine
from exporter.engine.request import Outcome
from exporter.engine.result import Judgment
from exporter.engine.target import (
    ClientCertificate,
    DnsServer,
    OriginRequest,
    ProbeOptions,
    ProbeTarget,
)
from exporter.engine.verdict import CloudFrontWarning as W
from exporter.engine.verdict import FailureReason as R
from exporter.metrics import Labelled, render_families, result_families
from tests.pki import DAY, NOW, TestPKI, write_chain
from tests.servers import NginxServer, NginxSite
from tests.servers.dnsmasq import DnsmasqServer, DnsRecords, host_records
from tests.servers.origins_around import (
    HOST,
    SCENARIOS,
    AroundCredentials,
    make_origin,
)

pytestmark = pytest.mark.skipif(
    shutil.which("dnsmasq") is None and not Path("/usr/sbin/dnsmasq").exists(),
    reason="dnsmasq (apt-get install dnsmasq-base) is not installed",
)

NAME = "nodes.test"
OPTIONS = ProbeOptions(timeout=3.0, origin_read_timeout=1.0, connection_timeout=1.0)


def probe(target: ProbeTarget, options: ProbeOptions = OPTIONS) -> Judgment:
    return asyncio.run(Engine().probe(target, options))


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, str]]:
    """nginx on 127.0.0.2 (good) and 127.0.0.3 (expired certificate), one port; dnsmasq
    answering both for NAME. Yields (port, CA file, dnsmasq's port)."""
    workdir = tmp_path_factory.mktemp("nodes")
    pki = TestPKI.create()
    good = pki.leaf(NAME)
    stale = pki.leaf(NAME, not_before=NOW - 400 * DAY, not_after=NOW - 2 * DAY)
    sites = []
    for name, address, leaf in (("node2", "127.0.0.2", good), ("node3", "127.0.0.3", stale)):
        chain, key = write_chain(workdir / "certs", name, [leaf, pki.intermediate], leaf.key)
        sites.append(NginxSite(name, chain, key, port_group="nodes", address=address))
    ca_file = pki.write_roots(workdir / "root.pem")
    nginx = NginxServer(workdir / "nginx")
    ports = nginx.start(sites)
    records = DnsRecords(hosts=host_records(NAME, ["127.0.0.3", "127.0.0.2"]))
    try:
        with DnsmasqServer(records) as dns:
            yield ports["node2"], str(ca_file), str(dns.server[1])
    finally:
        nginx.stop()


def node_target(nodes: tuple[int, str, str]) -> tuple[ProbeTarget, ProbeOptions]:
    port, ca_file, dns_port = nodes
    options = replace(OPTIONS, dns_servers=(DnsServer("127.0.0.1", int(dns_port)),))
    return ProbeTarget(host=NAME, port=port, ca_file=ca_file), options


def test_every_address_is_probed_and_one_bad_node_fails_the_origin(
    nodes: tuple[int, str, str],
) -> None:
    target, options = node_target(nodes)
    judged = probe(target, options)
    by_address = {a.address: a for a in judged.addresses}
    assert set(by_address) == {"127.0.0.2", "127.0.0.3"}
    assert by_address["127.0.0.2"].compatible
    assert not by_address["127.0.0.3"].compatible
    assert by_address["127.0.0.3"].reasons == (R.EXPIRED,)
    assert not judged.compatible
    assert R.EXPIRED in judged.reasons
    resolution = judged.observations.resolution
    assert resolution is not None
    assert resolution.resolver == f"127.0.0.1:{nodes[2]}"
    # Another certificate there: that address was probed in full again.
    other = judged.observations.other_addresses[0]
    assert other.address == "127.0.0.3"
    assert other.full is not None
    text = render_families(result_families([Labelled({"origin": "n"}, judged)], ["origin"]))
    assert b'origin_tls_addresses{origin="n"} 2.0' in text
    assert b'origin_tls_address_compatible{address="127.0.0.3",origin="n"} 0.0' in text
    assert b'origin_tls_address_compatible{address="127.0.0.2",origin="n"} 1.0' in text


def test_max_addresses_limits_the_addresses_probed(nodes: tuple[int, str, str]) -> None:
    target, options = node_target(nodes)
    judged = probe(target, replace(options, max_addresses=1))
    assert [a.address for a in judged.addresses] == ["127.0.0.2"]
    assert judged.compatible
    assert judged.observations.resolution is not None
    assert judged.observations.resolution.truncated_from == 2


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> AroundCredentials:
    return AroundCredentials.create(tmp_path_factory.mktemp("around"))


def around(scenario: str, credentials: AroundCredentials, **target: object) -> Judgment:
    with make_origin(SCENARIOS[scenario], credentials) as origin:
        fields: dict[str, object] = {
            "host": HOST,
            "port": origin.port,
            "address": "127.0.0.1",
            "ca_file": str(credentials.ca_path),
        }
        fields.update(target)
        return probe(ProbeTarget(**fields))  # type: ignore[arg-type]


def test_a_normal_origin_answers_the_request(credentials: AroundCredentials) -> None:
    judged = around("normal", credentials)
    assert judged.compatible, judged.disagreements
    assert judged.http is not None
    assert (judged.http.outcome, judged.http.status_code) == (Outcome.OK, 200)
    assert judged.http.first_byte_seconds is not None


def test_the_origins_own_5xx_is_reported_not_failed(credentials: AroundCredentials) -> None:
    judged = around("status_503", credentials)
    assert judged.compatible
    assert judged.http is not None
    assert judged.http.status_code == 503


def test_no_first_byte_within_the_read_timeout_is_a_504(credentials: AroundCredentials) -> None:
    judged = around("slow", credentials)
    assert judged.reasons == (R.RESPONSE_TIMEOUT,)
    assert R.RESPONSE_TIMEOUT.http_status == 504


def test_an_answer_that_is_not_http_is_a_502(credentials: AroundCredentials) -> None:
    judged = around("not_http", credentials)
    assert judged.reasons == (R.HTTP_INVALID_RESPONSE,)
    assert R.HTTP_INVALID_RESPONSE.http_status == 502


def test_connection_close_warns(credentials: AroundCredentials) -> None:
    judged = around("connection_close", credentials)
    assert judged.compatible
    assert W.CLOSES_KEEPALIVE_EARLY in {w for w, _ in judged.warnings}


def test_no_request_when_turned_off(credentials: AroundCredentials) -> None:
    judged = around("not_http", credentials, request=None)
    assert judged.compatible
    assert judged.http is None


def test_a_required_client_certificate_without_one(credentials: AroundCredentials) -> None:
    judged = around("mtls_required", credentials)
    assert judged.reasons == (R.CLIENT_CERTIFICATE_REQUIRED,)
    assert "OriginMtlsConfig" in R.CLIENT_CERTIFICATE_REQUIRED.remedy


def test_a_required_client_certificate_with_one(credentials: AroundCredentials) -> None:
    certificate = ClientCertificate(
        str(credentials.client_chain_path), str(credentials.client_key_path)
    )
    judged = around("mtls_required", credentials, client_certificate=certificate)
    assert judged.compatible, (judged.reasons, judged.disagreements)
    assert judged.cloudfront is not None
    assert judged.cloudfront.handshake.client_certificate_sent
    assert judged.http is not None
    assert judged.http.status_code == 200


def test_a_requested_but_optional_client_certificate_warns(
    credentials: AroundCredentials,
) -> None:
    judged = around("mtls_optional", credentials)
    assert judged.compatible
    assert W.CLIENT_CERTIFICATE_REQUESTED in {w for w, _ in judged.warnings}


def test_a_custom_request(credentials: AroundCredentials) -> None:
    request = OriginRequest("HEAD", "/health", (("X-Origin-Secret", "s3cr3t"),))
    judged = around("normal", credentials, request=request)
    assert judged.compatible
    assert judged.http is not None
    assert judged.http.status_code == 200
