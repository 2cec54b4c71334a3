"""The exporter's verdict against CloudFront's own TLS library's, origin by origin.

Every test origin (nginx, tlslite-ng, the hostile servers, and the chains that s2n-tls and a
strict validator judge differently) is probed by the exporter and handshaken by s2n-tls
directly, under the origin's CloudFront policy. The verdicts agree, except where AWS documents
a condition as a 502 cause although s2n-tls alone accepts it: those exceptions are listed in
`DOCUMENTED_502`, each with its AWS source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.demo.pki import DemoPKI
from exporter.engine import s2n
from exporter.engine.errors import ProbeTimeout
from exporter.engine.net import Endpoint
from exporter.engine.probe import Engine
from exporter.engine.result import Judgment
from exporter.engine.target import ProbeOptions, ProbeTarget
from exporter.engine.verdict import CloudFrontWarning as W
from exporter.engine.verdict import FailureReason as R
from exporter.engine.verdict import Source
from tests.hostile import FAST, HOST, HostileOrigins
from tests.origins import TestOrigins
from tests.servers.ssl_origin import SSLOrigin
from tests.support import chains

pytestmark = pytest.mark.skipif(
    s2n.tls_library().library != "s2n-tls", reason="no s2n-tls (awscrt) here"
)

AWS_502 = (
    "https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/"
    "http-502-bad-gateway.html#ssl-certificate-expired"
)
#: reason -> the AWS page that documents it as a 502 cause although s2n-tls accepts it
DOCUMENTED_502 = {R.WRONG_ORDER: AWS_502}

#: the rows of the s2n issue's table: origin -> (reasons, warnings the exporter must give)
EXPECTED = {
    "undocumented_only": ((), {W.UNDOCUMENTED_SUITES_ONLY}),
    "chain_ca_bc_non_critical": ((), {W.STRICT_VALIDATION_FAILS}),
    "chain_sha1_leaf": ((), {W.SHA1_SIGNATURE}),
    "chain_md5_leaf": ((R.UNTRUSTED,), set()),
    "chain_untrusted_root_signs_leaf": ((R.UNTRUSTED,), set()),
    "no_common_protocol": ((R.NO_COMMON_PROTOCOL,), set()),
    "chain_root_before_intermediate": ((R.WRONG_ORDER,), set()),
    "wrong_order": ((R.WRONG_ORDER,), set()),
}

CHAIN_CASES = {
    "chain_sha1_leaf": chains.case_sha1_leaf,
    "chain_md5_leaf": chains.case_md5_leaf,
    "chain_sha1_intermediate": chains.case_sha1_intermediate,
    "chain_md5_intermediate": chains.case_md5_intermediate,
    "chain_ca_bc_non_critical": chains.case_ca_bc_non_critical,
    "chain_ca_without_bc": chains.case_ca_without_bc,
    "chain_root_before_intermediate": chains.case_root_before_intermediate,
    "chain_unrelated_before_intermediate": chains.case_unrelated_before_intermediate,
    "chain_missing_intermediate": chains.case_missing_intermediate,
    "chain_untrusted_root_signs_leaf": chains.case_untrusted_root_signs_leaf,
    "chain_trusted_root_signs_leaf": chains.case_trusted_root_signs_leaf,
    "chain_self_signed": chains.case_self_signed,
    "chain_expired": chains.case_expired,
    "chain_not_yet_valid": chains.case_not_yet_valid,
    "chain_ecdsa_leaf": chains.case_ecdsa_leaf,
    "chain_rsa1024_leaf": chains.case_rsa1024_leaf,
}


@dataclass(frozen=True)
class Outcome:
    exporter: Judgment
    library: s2n.CloudFrontHandshake


@pytest.fixture(scope="module")
def outcomes(origins: TestOrigins, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    pki = DemoPKI.create("Chains")
    ca_file = tmp_path_factory.mktemp("chains") / "root.pem"
    pki.write_roots(ca_file)
    with _servers(origins, pki, str(ca_file)) as targets:
        return asyncio.run(_probe_all(targets))


@pytest.fixture(scope="module")
def hostile(origins: TestOrigins) -> Iterator[HostileOrigins]:
    leaf = origins.pki.leaf(HOST)
    with HostileOrigins([leaf.der, origins.pki.intermediate.der]) as servers:
        yield servers


class _servers:
    """Every origin of the comparison, started; yields name -> (target, PEM roots)."""

    def __init__(self, origins: TestOrigins, pki: DemoPKI, ca_file: str) -> None:
        self.origins, self.pki, self.ca_file = origins, pki, ca_file
        self.started: list[SSLOrigin] = []

    def __enter__(self) -> dict[str, tuple[ProbeTarget, bytes]]:
        roots = Path(self.origins.ca_file).read_bytes()
        targets = {n: (o.target(), roots) for n, o in self.origins.origins.items()}
        leaf = self.pki.leaf(chains.HOST)
        for name, case in CHAIN_CASES.items():
            chain, key = case(self.pki, leaf)
            server = SSLOrigin(chain, key)
            server.start()
            self.started.append(server)
            target = ProbeTarget(
                host=chains.HOST, port=server.port, address="127.0.0.1", ca_file=self.ca_file
            )
            targets[name] = (target, self.pki.root.pem)
        return targets

    def __exit__(self, *_: object) -> None:
        for server in self.started:
            server.stop()


async def _probe_all(targets: dict[str, tuple[ProbeTarget, bytes]]) -> dict[str, Outcome]:
    engine = Engine()
    options = ProbeOptions(timeout=3.0)

    async def one(target: ProbeTarget, roots: bytes) -> Outcome:
        judged = await engine.probe(target, options)
        endpoint = Endpoint(target.address or "127.0.0.1", target.port, 3.0, 4, 8 << 20)
        policy = s2n.policy_for(target.protocols)
        check = s2n.cloudfront_name_check(target.checked_name)
        try:
            direct = await s2n.cloudfront_handshake(
                endpoint, policy, target.server_name, roots, check
            )
        except ProbeTimeout as exc:  # a silent origin: s2n-tls does not connect either
            direct = s2n.CloudFrontHandshake("s2n-tls", policy, False, error=str(exc))
        return Outcome(judged, direct)

    results = await asyncio.gather(*(one(t, r) for t, r in targets.values()))
    return dict(zip(targets, results, strict=True))


def test_the_exporter_agrees_with_s2n_except_for_documented_502_causes(
    outcomes: dict[str, Outcome],
) -> None:
    disagreeing = {}
    for name, outcome in outcomes.items():
        judged, direct = outcome.exporter, outcome.library
        if judged.compatible == direct.completed:
            continue
        documented = [r for r in judged.reasons if r in DOCUMENTED_502]
        if direct.completed and documented and set(judged.reasons) == set(documented):
            assert set(judged.sources) == {Source.AWS_DOCUMENTATION}, name
            continue
        disagreeing[name] = (judged.reasons, direct.error)
    assert not disagreeing
    assert len(outcomes) >= 35


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_exporter_explains_each_case(name: str, outcomes: dict[str, Outcome]) -> None:
    reasons, warnings = EXPECTED[name]
    judged = outcomes[name].exporter
    assert judged.reasons == reasons, judged.disagreements
    assert warnings <= {w for w, _ in judged.warnings}, judged.warnings
    assert judged.decided_by == "s2n-tls"


def test_a_tls_1_3_only_origin_connects_under_the_2025_generations(
    outcomes: dict[str, Outcome],
) -> None:
    judged = outcomes["no_common_protocol"].exporter
    compatible = {g.generation: g.compatible for g in judged.generations}
    assert compatible == {
        "CloudFront-Upstream": False,
        "CloudFront-Upstream-2025": True,
        "CloudFront-Upstream-2025-PQ": True,
    }
    assert all(str(g.handshake.protocol) == "TLSv1.3" for g in judged.generations if g.compatible)


def test_hostile_origins_fail_for_both(hostile: HostileOrigins) -> None:
    """No hostile behaviour makes s2n-tls connect where the exporter says it cannot."""

    async def run() -> list[tuple[str, bool, bool]]:
        engine = Engine()
        rows = []
        for name in sorted(FAST - {"unresolvable", "refused"}):
            target = ProbeTarget(host=HOST, port=hostile[name], address="127.0.0.1")
            judged = await engine.probe(target, ProbeOptions(timeout=2.0))
            endpoint = Endpoint("127.0.0.1", hostile[name], 2.0, 4, 8 << 20)
            direct = await s2n.cloudfront_handshake(
                endpoint, s2n.policy_for(target.protocols), HOST, b"", None
            )
            rows.append((name, judged.compatible, direct.completed))
        return rows

    assert [row for row in asyncio.run(run()) if row[1] != row[2]] == []
