"""The probe engine against real servers: one origin per CloudFront failure cause."""

from __future__ import annotations

import pytest

from exporter.engine.catalogue import CATALOGUE, Protocol
from exporter.engine.chain import ChainStatus
from exporter.engine.probe import Engine
from exporter.engine.request import Outcome
from exporter.engine.result import Judgment
from exporter.engine.target import ConfirmMode, ProbeTarget
from exporter.engine.verdict import CloudFrontWarning as W
from exporter.engine.verdict import FailureReason as R
from tests.origins import TestOrigins
from tests.servers.broken import SlowFlightServer
from tests.support.probing import run_probe

TLS = (Protocol.TLSv1, Protocol.TLSv1_1, Protocol.TLSv1_2)


def accepted(result: Judgment, protocol: Protocol) -> set[str]:
    found = result.protocol(protocol)
    assert found is not None
    return {s.name for s in found.accepted_suites}


def test_good_origin_is_compatible_with_the_exact_matrix(
    engine: Engine, origins: TestOrigins
) -> None:
    result = run_probe(engine, origins["good"].target())
    assert result.reasons == ()
    assert result.compatible
    assert result.success
    rsa_cbc = {"ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA", "AES256-SHA", "AES128-SHA"}
    assert accepted(result, Protocol.TLSv1) == rsa_cbc
    assert accepted(result, Protocol.TLSv1_1) == rsa_cbc
    assert accepted(result, Protocol.TLSv1_2) == rsa_cbc | {
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-SHA256",
        # s2n-tls's CloudFront-Upstream offers these three too; AWS does not document them.
        "AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES128-SHA256",
    }
    sslv3 = result.protocol(Protocol.SSLv3)
    assert sslv3 is not None
    assert sslv3.spoken is False
    assert not sslv3.accepted
    # Every picked suite was proven by a complete handshake: CloudFront's pick by s2n-tls's own
    # (under the origin's generation, the same pick), every other one through the local OpenSSL.
    negotiation = result.negotiation
    assert negotiation is not None
    for protocol in TLS:
        found = result.protocol(protocol)
        assert found is not None
        for s in found.picked:
            is_pick = (protocol, s.suite) == (negotiation.protocol, negotiation.suite)
            assert s.confirmed is True, s
            assert s.backend == ("s2n-tls" if is_pick else "openssl"), s
    assert negotiation.completed
    assert negotiation.protocol is Protocol.TLSv1_2
    assert negotiation.suite is not None
    assert negotiation.suite.name in accepted(result, Protocol.TLSv1_2)
    assert negotiation.group == "X25519"
    assert result.chain is not None
    assert result.chain.status is ChainStatus.OK
    assert result.name_match is not None
    assert result.name_match.san
    assert result.name_match.matched_by == "good.test"


def test_exact_matrix_follows_the_server_configuration(
    engine: Engine, origins: TestOrigins
) -> None:
    result = run_probe(engine, origins["modern"].target())
    assert result.compatible
    assert accepted(result, Protocol.TLSv1_2) == {
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-SHA",
        "AES128-SHA",
    }
    # The server prefers its own order: the matrix keeps it.
    tls12 = result.protocol(Protocol.TLSv1_2)
    assert tls12 is not None
    assert next(s.suite.name for s in tls12.picked) == "ECDHE-RSA-AES128-GCM-SHA256"
    for protocol in (Protocol.SSLv3, Protocol.TLSv1, Protocol.TLSv1_1):
        found = result.protocol(protocol)
        assert found is not None
        assert found.spoken is False
    tls13 = result.protocol(Protocol.TLSv1_3)
    assert tls13 is not None
    assert tls13.spoken
    assert not tls13.in_policy
    assert {s.name for s in tls13.accepted_suites} >= {"TLS_AES_128_GCM_SHA256"}


def test_accepted_plus_one_hellos_per_protocol(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(
        engine, origins["modern"].target(), confirm=ConfirmMode.NEGOTIATED, tls13=False
    )
    # (3 accepted + 1) for TLSv1.2, the first of them CloudFront's own hello (the same offer)
    # + 1 each for TLSv1 and TLSv1.1 (refused with a protocol_version alert) + 1 for SSLv3
    # (OpenSSL 3, built without it, answers handshake_failure to a first offer that carried
    # every suite: not spoken, no broad offer after it) + 3 s2n-tls handshakes (one per
    # generation; the one under CloudFront-Upstream confirms the negotiated suite and carries
    # the HTTP request); + at most one spare per enumeration chain (4), which may or may not
    # open before its chain ends.
    used = 4 + 2 * 1 + 1 + 3
    assert used <= result.connections <= used + 4
    reused = [
        line for line in result.log if "TLSv1.2: offered 19 suites (CloudFront's hello)" in line
    ]
    assert len(reused) == 1, result.log
    skipped = [line for line in result.log if "protocol_version alert: protocol not spoken" in line]
    assert len(skipped) == 2, result.log
    tls12 = result.protocol(Protocol.TLSv1_2)
    assert tls12 is not None
    assert [s.confirmed for s in tls12.picked].count(None) == 2


def test_policy_restricts_what_counts(engine: Engine, origins: TestOrigins) -> None:
    """OriginSslProtocols TLSv1 on a TLSv1.2 origin: AWS's documentation says no common
    protocol, but the policy is s2n-tls's CloudFront-Upstream-TLS-1-0, a *minimum*, and s2n-tls
    negotiates TLSv1.2. CloudFront's library decides; the disagreement is said, and warned."""
    result = run_probe(engine, origins["modern"].target(protocols=(Protocol.TLSv1,)))
    assert result.reasons == ()
    assert result.decided_by == "s2n-tls"
    assert [w for w, _ in result.warnings] == [W.NEGOTIATED_OUTSIDE_POLICY]
    assert any("no_common_protocol" in note for note in result.disagreements)
    # The matrix is still measured outside the policy, so the remedy can say what works.
    assert accepted(result, Protocol.TLSv1_2)


@pytest.mark.parametrize(
    ("scenario", "reasons", "chain_status"),
    [
        ("name_mismatch", (R.NAME_MISMATCH,), ChainStatus.OK),
        ("missing_intermediate", (R.MISSING_INTERMEDIATE,), ChainStatus.MISSING_INTERMEDIATE),
        ("wrong_order", (R.WRONG_ORDER,), ChainStatus.WRONG_ORDER),
        ("expired", (R.EXPIRED,), ChainStatus.EXPIRED),
        ("not_yet_valid", (R.NOT_YET_VALID,), ChainStatus.NOT_YET_VALID),
        ("self_signed", (R.UNTRUSTED,), ChainStatus.UNTRUSTED),
        ("untrusted_root", (R.UNTRUSTED,), ChainStatus.UNTRUSTED),
    ],
)
def test_certificate_problems(
    engine: Engine,
    origins: TestOrigins,
    scenario: str,
    reasons: tuple[R, ...],
    chain_status: ChainStatus,
) -> None:
    result = run_probe(engine, origins[scenario].target())
    assert result.reasons == reasons
    assert result.success
    assert not result.compatible
    assert result.chain is not None
    assert result.chain.status is chain_status
    # Facts stay available whatever is wrong with the chain.
    leaf = result.chain.certificates[0]
    assert leaf.not_after == origins.leaf_not_after[scenario]
    assert leaf.key_type == "RSA"
    assert leaf.key_bits == 2048


def test_missing_intermediate_names_the_issuer(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["missing_intermediate"].target())
    assert result.chain is not None
    assert result.chain.missing_issuer is not None
    assert "Test Intermediate CA" in result.chain.missing_issuer
    assert result.chain.missing_issuer_url == "http://127.0.0.1:9/test-intermediate.der"
    assert not result.chain.complete


def test_untrusted_with_mozilla_roots(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["good"].target(ca_file=None))
    assert result.reasons == (R.UNTRUSTED,)


def test_forwarded_host_is_sent_as_sni_and_checked(engine: Engine, origins: TestOrigins) -> None:
    good = origins["good"]
    assert run_probe(engine, good.target(sni="www.good.test")).compatible
    result = run_probe(engine, good.target(sni="alias.example.net"))
    assert result.reasons == (R.NAME_MISMATCH,)
    assert result.name_match is not None
    assert result.name_match.name == "alias.example.net"


def test_wildcard_certificate(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["wildcard"].target())
    assert result.compatible
    assert result.name_match is not None
    assert result.name_match.matched_by == "*.wild.test"


def test_ip_literal_origin_sends_no_sni_and_matches_ip_san(
    engine: Engine, origins: TestOrigins
) -> None:
    origin = origins["ip_address"]
    target = ProbeTarget(host="127.0.0.1", port=origin.port, ca_file=origin.ca_file)
    assert target.server_name is None
    result = run_probe(engine, target)
    assert result.compatible, result.log
    assert result.name_match is not None
    assert result.name_match.san


def test_ecdsa_certificate_accepts_only_ecdsa_suites(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["ecdsa"].target())
    assert result.compatible
    tls12 = accepted(result, Protocol.TLSv1_2)
    assert tls12
    assert all(name.startswith("ECDHE-ECDSA-") for name in tls12)
    assert accepted(result, Protocol.TLSv1) == {"ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"}
    assert result.chain is not None
    leaf = result.chain.certificates[0]
    assert (leaf.key_type, leaf.key_bits, leaf.key_curve) == ("EC", 256, "secp256r1")


def test_no_common_cipher(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["no_common_cipher"].target())
    assert result.reasons == (R.NO_COMMON_CIPHER,)
    tls12 = result.protocol(Protocol.TLSv1_2)
    assert tls12 is not None
    assert tls12.spoken
    assert not tls12.picked
    # Certificate facts are still reported, fetched with a broad offer.
    assert result.chain is not None
    assert result.chain.status is ChainStatus.OK


def test_no_common_protocol_tls13_only(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["no_common_protocol"].target())
    assert result.reasons == (R.NO_COMMON_PROTOCOL,)
    assert all(p.spoken is False for p in result.protocols if p.protocol.cloudfront)
    tls13 = result.protocol(Protocol.TLSv1_3)
    assert tls13 is not None
    assert tls13.spoken


def test_sslv3_rc4_3des_origin(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["sslv3_only"].target())
    assert result.compatible, result.reasons
    assert result.legacy_only
    assert accepted(result, Protocol.SSLv3) == {"RC4-MD5", "DES-CBC3-SHA", "AES128-SHA"}
    sslv3 = result.protocol(Protocol.SSLv3)
    assert sslv3 is not None
    # OpenSSL 3 cannot: tlslite-ng confirms, but CloudFront's own pick, which s2n-tls's
    # handshake under CloudFront-Upstream completed too.
    negotiation = result.negotiation
    assert negotiation is not None
    assert negotiation.protocol is Protocol.SSLv3
    for picked in sslv3.picked:
        assert picked.confirmed, picked
        is_pick = picked.suite == negotiation.suite
        assert picked.backend == ("s2n-tls" if is_pick else "tlslite"), picked
    for protocol in TLS:
        found = result.protocol(protocol)
        assert found is not None
        assert found.spoken is False
    negotiation = result.negotiation
    assert negotiation is not None
    assert negotiation.protocol is Protocol.SSLv3
    assert negotiation.completed
    # Not in the policy: CloudFront cannot connect.
    strict = run_probe(engine, origins["sslv3_only"].target(protocols=TLS))
    assert strict.reasons == (R.NO_COMMON_PROTOCOL,)


def test_legacy_suites_under_tls(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["legacy_tls"].target())
    assert result.compatible
    assert result.legacy_only
    for protocol in TLS:
        assert accepted(result, protocol) == {"DES-CBC3-SHA", "RC4-MD5"}
    assert result.negotiation is not None
    assert result.negotiation.protocol is Protocol.TLSv1_2


def test_picked_but_failing_handshake(engine: Engine, origins: TestOrigins) -> None:
    result = run_probe(engine, origins["handshake_failed"].target())
    assert R.HANDSHAKE_FAILED in result.reasons
    negotiation = result.negotiation
    assert negotiation is not None
    assert negotiation.suite is not None
    assert not negotiation.completed
    assert negotiation.error
    for found in result.protocols:
        assert not found.accepted  # picked, never completed: not accepted
        assert all(s.confirmed is False for s in found.picked)


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [("not_tls", R.NOT_TLS), ("closed", R.CONNECT_FAILED)],
)
def test_connectivity_failures(
    engine: Engine, origins: TestOrigins, scenario: str, reason: R
) -> None:
    result = run_probe(engine, origins[scenario].target())
    assert result.reasons == (reason,)
    assert not result.success
    assert result.error
    # One clear error, not one per suite. A refused connect opens nothing more; an accepted
    # one has the connections CloudFront's hello's followers would use opened while the hello
    # is in flight (at most max_connections - 1, never written to, closed with the error).
    assert result.connections == (1 if scenario == "closed" else 8)


def test_timeout_is_bounded(engine: Engine, origins: TestOrigins) -> None:
    """A silent origin costs one timeout: the hello's, recorded as what stopped the probe. A
    second timeout waited out after it (another connection, another suite) would double the
    probe's duration."""
    timeout = 2.0
    result = run_probe(engine, origins["silent"].target(), timeout=timeout)
    assert result.reasons == (R.TIMEOUT,)
    stopped = result.observations.stopped
    assert stopped is not None
    assert stopped.kind == "timeout"
    assert f"within {timeout:g}s" in stopped.detail
    assert timeout * 0.9 <= result.duration_seconds < 2 * timeout


def test_dns_failure(engine: Engine) -> None:
    result = run_probe(engine, ProbeTarget(host="no-such-origin.invalid"))
    assert result.reasons == (R.DNS_FAILED,)
    assert "no-such-origin.invalid" in (result.error or "")


def test_catalogue_is_cloudfronts() -> None:
    assert len(CATALOGUE.suites) == 19
    assert {s.code for s in CATALOGUE.suites if s.documented} == {
        0xC02C, 0xC024, 0xC00A, 0xC02B, 0xC023, 0xC009, 0xC030, 0xC028,
        0xC014, 0xC02F, 0xC027, 0xC013, 0x0035, 0x002F, 0x000A, 0x0004,
    }  # fmt: skip
    assert {s.name for s in CATALOGUE.suites if not s.documented} == {
        "AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES128-SHA256",
    }
    assert len(CATALOGUE.suites_for(Protocol.TLSv1_2)) == 19
    assert len(CATALOGUE.suites_for(Protocol.TLSv1)) == 8
    assert [s.name for s in CATALOGUE.suites_for(Protocol.SSLv3)] == [
        "AES256-SHA",
        "AES128-SHA",
        "DES-CBC3-SHA",
        "RC4-MD5",
    ]


def test_the_request_rides_on_cloudfronts_own_handshake(
    engine: Engine, origins: TestOrigins
) -> None:
    """The origin speaks only 3DES and RC4 (tlslite-ng): the local OpenSSL 3 cannot connect,
    s2n-tls can. An answer to the request proves it went over s2n-tls's connection, as
    CloudFront sends it, and no connection of the exporter's own was opened for it."""
    result = run_probe(engine, origins["legacy_tls"].target())
    assert result.http is not None
    assert (result.http.outcome, result.http.status_code) == (Outcome.OK, 200), result.log
    assert [line for line in result.log if "(over s2n-tls)" in line], result.log
    assert not [line for line in result.log if "(over OpenSSL)" in line], result.log


def test_the_request_falls_back_when_cloudfronts_handshake_fails(
    engine: Engine, origins: TestOrigins
) -> None:
    """CloudFront would stop at the expired certificate; what the origin answers is still
    worth knowing, so the request goes over an OpenSSL connection of the exporter's own."""
    result = run_probe(engine, origins["expired"].target())
    assert result.reasons == (R.EXPIRED,)
    assert result.http is not None
    assert result.http.status_code == 200, result.log
    assert [line for line in result.log if "(over OpenSSL)" in line], result.log


def test_an_idle_keepalive_connection_does_not_hold_a_connection_slot(
    engine: Engine, origins: TestOrigins
) -> None:
    """With one connection at a time, the request's idle connection, watched for an early
    close until the rest of the probe is done, must not keep the rest of the probe waiting
    for it (which would end only with the keep-alive timeout)."""
    result = run_probe(
        engine, origins["modern"].target(), max_connections=1, origin_keepalive_timeout=60.0
    )
    assert result.compatible, result.reasons
    assert result.http is not None
    assert result.http.status_code == 200
    watched = result.http.idle_watched_seconds
    assert watched is not None
    assert watched < 30, result.log


def test_a_protocol_spoken_with_a_suite_cloudfront_does_not_offer(
    engine: Engine, origins: TestOrigins
) -> None:
    """The first TLSv1 offer carries every suite after CloudFront's; the origin prefers one
    CloudFront does not offer (RC4-SHA), so CloudFront's are offered again alone: it speaks
    TLSv1, and AES128-SHA is the CloudFront suite it accepts."""
    result = run_probe(engine, origins["outside_first"].target())
    assert result.compatible, (result.reasons, result.log)
    tls1 = result.protocol(Protocol.TLSv1)
    assert tls1 is not None
    assert tls1.spoken
    assert accepted(result, Protocol.TLSv1) == {"AES128-SHA"}
    assert tls1.outside_suite is None
    assert [line for line in result.log if "0x0005, outside the catalogue" in line], result.log


def test_a_protocol_spoken_with_no_suite_cloudfront_offers(
    engine: Engine, origins: TestOrigins
) -> None:
    result = run_probe(engine, origins["outside_only"].target())
    assert not result.compatible
    tls1 = result.protocol(Protocol.TLSv1)
    assert tls1 is not None
    assert tls1.spoken  # told from "not spoken" without a broad offer of its own
    assert not tls1.accepted
    assert tls1.outside_suite == "TLS_RSA_WITH_RC4_128_SHA"
    assert not [line for line in result.log if "TLSv1: broad offer" in line], result.log
    for protocol in (Protocol.SSLv3, Protocol.TLSv1_1, Protocol.TLSv1_2):
        found = result.protocol(protocol)
        assert found is not None
        assert not found.spoken


def test_a_long_chain_is_split_by_key_exchange(engine: Engine, origins: TestOrigins) -> None:
    """OpenSSL's DEFAULT suites: 11 of CloudFront's under TLSv1.2, one round trip each in one
    chain. After the third pick the RSA key-exchange suites go down a second chain beside the
    ECDHE one; together they find exactly what one chain found (see the exact matrix above)."""
    result = run_probe(engine, origins["good"].target())
    split = [line for line in result.log if "TLSv1.2: the 7 other suites in a second" in line]
    assert len(split) == 1, result.log
    tls12 = result.protocol(Protocol.TLSv1_2)
    assert tls12 is not None
    names = [s.suite.name for s in tls12.picked]
    assert len(names) == len(set(names)) == 11
    ecdhe = [n for n in names if n.startswith("ECDHE")]
    assert names == ecdhe + [n for n in names if not n.startswith("ECDHE")]


def test_the_enumerations_start_at_cloudfronts_serverhello(origins: TestOrigins) -> None:
    """The origin sends its ServerHello at once and the rest of CloudFront's flight a second
    later: every other protocol's first offer is answered while CloudFront's hello still waits
    for its certificates."""
    pause = 1.0
    with SlowFlightServer(origins.workdir / "certs" / "broken.chain.pem", pause) as server:
        target = ProbeTarget("broken.test", server.port, address="127.0.0.1", request=None)
        result = run_probe(Engine(), target, timeout=5.0)
    assert server.served_first
    times = {
        line.split("s ", 1)[1].split(":")[0]: float(line.split("s ", 1)[0]) for line in result.log
    }
    hello = next(float(line.split("s ", 1)[0]) for line in result.log if "CloudFront hello" in line)
    assert hello >= pause * 0.9, result.log
    for protocol in ("SSLv3", "TLSv1", "TLSv1.1"):
        assert times[protocol] < pause / 2, result.log  # answered before the flight was complete
