"""Chain analysis on real certificates: each CloudFront 502 cause told apart from the others."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from exporter.engine.certs import CertificateParseError
from exporter.engine.chain import ChainAnalysis, ChainStatus, TrustStore, analyse_chain
from tests.pki import DAY, NOW, Issued, issue, new_key
from tests.pki import TestPKI as PKI

LEAF_AIA = "http://127.0.0.1:9/test-intermediate.der"


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI.create()


@pytest.fixture(scope="module")
def trust(pki: PKI) -> TrustStore:
    return TrustStore(source="test", roots=(pki.root.cert,))


def analyse(certs: Sequence[Issued], trust: TrustStore) -> ChainAnalysis:
    return analyse_chain([c.der for c in certs], trust, NOW)


def subject(issued: Issued) -> str:
    return issued.cert.subject.rfc4514_string()


def test_a_leaf_and_intermediate_to_trusted_root_is_ok(pki: PKI, trust: TrustStore) -> None:
    leaf = pki.leaf("ok.example.com")
    result = analyse([leaf, pki.intermediate], trust)
    assert result.status is ChainStatus.OK
    assert result.problems == ()
    assert result.complete
    assert result.path == (subject(leaf), subject(pki.intermediate), subject(pki.root))
    assert result.missing_issuer is None
    assert result.missing_issuer_url is None
    assert [c.position for c in result.certificates] == ["leaf", "intermediate"]
    assert "Test Root CA" in result.detail


def test_root_also_sent_is_ok(pki: PKI, trust: TrustStore) -> None:
    result = analyse([pki.leaf("root.example.com"), pki.intermediate, pki.root], trust)
    assert result.status is ChainStatus.OK
    assert result.complete
    assert [c.position for c in result.certificates] == ["leaf", "intermediate", "root"]


def test_b_missing_intermediate(pki: PKI, trust: TrustStore) -> None:
    result = analyse([pki.leaf("lonely.example.com")], trust)
    assert result.status is ChainStatus.MISSING_INTERMEDIATE
    assert result.problems == (ChainStatus.MISSING_INTERMEDIATE,)
    assert not result.complete
    assert result.path == ()
    assert result.missing_issuer == subject(pki.intermediate)
    assert result.missing_issuer_url == LEAF_AIA
    assert "Test Intermediate CA" in result.detail


def test_missing_intermediate_without_aia_on_the_leaf(pki: PKI, trust: TrustStore) -> None:
    leaf = issue("noaia.example.com", issuer=pki.intermediate, sans=["noaia.example.com"])
    result = analyse([leaf], trust)
    assert result.status is ChainStatus.MISSING_INTERMEDIATE
    assert result.missing_issuer == subject(pki.intermediate)
    assert result.missing_issuer_url is None


def test_c_self_signed_leaf_is_untrusted(trust: TrustStore) -> None:
    leaf = issue("self.example.com", sans=["self.example.com"])
    result = analyse([leaf], trust)
    assert result.status is ChainStatus.UNTRUSTED
    assert result.problems == (ChainStatus.UNTRUSTED,)
    assert not result.complete
    assert result.missing_issuer is None
    assert result.certificates[0].self_signed
    assert "self-signed" in result.detail


def test_d_intermediate_of_unknown_root_not_sent_is_untrusted(pki: PKI, trust: TrustStore) -> None:
    leaf = pki.leaf("private.example.com", issuer=pki.other_intermediate, aia_ca_issuers=None)
    result = analyse([leaf, pki.other_intermediate], trust)
    assert result.status is ChainStatus.UNTRUSTED
    assert result.problems == (ChainStatus.UNTRUSTED,)
    assert not result.complete
    assert result.missing_issuer is None
    assert "Untrusted Root CA" in result.detail


def test_e_unknown_root_sent_is_untrusted(pki: PKI, trust: TrustStore) -> None:
    leaf = pki.leaf("private.example.com", issuer=pki.other_intermediate)
    result = analyse([leaf, pki.other_intermediate, pki.other_root], trust)
    assert result.status is ChainStatus.UNTRUSTED
    assert result.problems == (ChainStatus.UNTRUSTED,)
    assert not result.complete
    assert result.certificates[2].position == "root"
    assert "Untrusted Root CA" in result.detail


def test_intermediate_of_foreign_ca_with_aia_is_untrusted(pki: PKI, trust: TrustStore) -> None:
    key = new_key("p256")
    name = x509.Name.from_rfc4514_string("CN=Foreign Root,O=Someone Else")
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 300 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    foreign_root = Issued(root_cert, key)
    intermediate = issue(
        "Foreign Intermediate",
        issuer=foreign_root,
        ca=True,
        path_length=0,
        aia_ca_issuers="http://127.0.0.1:9/foreign-root.der",
    )
    leaf = pki.leaf("foreign.example.com", issuer=intermediate)
    result = analyse([leaf, intermediate], trust)
    assert result.status is ChainStatus.UNTRUSTED
    assert result.missing_issuer is None
    assert "Foreign Root" in result.detail
    assert "http://127.0.0.1:9/foreign-root.der" in result.detail


@pytest.mark.parametrize("extra", ["root_first", "unrelated_first", "unrelated_last"])
def test_f_wrong_order_still_complete(pki: PKI, trust: TrustStore, extra: str) -> None:
    leaf = pki.leaf("order.example.com")
    chain = {
        "root_first": [leaf, pki.root, pki.intermediate],
        "unrelated_first": [leaf, pki.other_root, pki.intermediate],
        "unrelated_last": [leaf, pki.intermediate, pki.other_root],
    }[extra]
    result = analyse(chain, trust)
    assert result.status is ChainStatus.WRONG_ORDER
    assert result.problems == (ChainStatus.WRONG_ORDER,)
    assert result.complete
    assert result.path == (subject(leaf), subject(pki.intermediate), subject(pki.root))


@pytest.mark.parametrize("which", ["leaf", "intermediate"])
def test_g_expired_but_otherwise_good(pki: PKI, trust: TrustStore, which: str) -> None:
    start, end = NOW - 400 * DAY, NOW - 10 * DAY
    intermediate = pki.intermediate
    if which == "intermediate":
        intermediate = issue(
            "Expired Intermediate CA",
            issuer=pki.root,
            ca=True,
            path_length=0,
            not_before=start,
            not_after=end,
        )
        leaf = pki.leaf("old.example.com", issuer=intermediate, not_before=NOW - 300 * DAY)
    else:
        leaf = pki.leaf("old.example.com", not_before=start, not_after=end)
    result = analyse([leaf, intermediate], trust)
    assert result.status is ChainStatus.EXPIRED
    assert result.problems == (ChainStatus.EXPIRED,)
    assert result.complete
    assert result.path[-1] == subject(pki.root)
    assert subject(intermediate if which == "intermediate" else leaf) in result.detail
    assert (
        result.earliest_expiry
        == (leaf if which == "leaf" else intermediate).cert.not_valid_after_utc
    )


def test_h_not_yet_valid(pki: PKI, trust: TrustStore) -> None:
    leaf = pki.leaf("future.example.com", not_before=NOW + 5 * DAY, not_after=NOW + 100 * DAY)
    result = analyse([leaf, pki.intermediate], trust)
    assert result.status is ChainStatus.NOT_YET_VALID
    assert result.problems == (ChainStatus.NOT_YET_VALID,)
    assert result.complete
    assert "not valid until" in result.detail


def test_i_expired_and_missing_intermediate(pki: PKI, trust: TrustStore) -> None:
    leaf = pki.leaf("both.example.com", not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    result = analyse([leaf], trust)
    assert result.status is ChainStatus.MISSING_INTERMEDIATE
    assert result.problems == (ChainStatus.MISSING_INTERMEDIATE, ChainStatus.EXPIRED)
    assert not result.complete
    assert result.missing_issuer == subject(pki.intermediate)


def test_wrong_order_and_expired_rank(pki: PKI, trust: TrustStore) -> None:
    leaf = pki.leaf("both.example.com", not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    result = analyse([leaf, pki.root, pki.intermediate], trust)
    assert result.status is ChainStatus.WRONG_ORDER
    assert result.problems == (ChainStatus.WRONG_ORDER, ChainStatus.EXPIRED)
    assert result.complete


def test_expired_root_sent_but_store_copy_valid(pki: PKI) -> None:
    root = issue("Rolled Root CA", ca=True)
    stale = issue("Rolled Root CA", ca=True, key=root.key, not_after=NOW - DAY)
    intermediate = issue("Rolled Intermediate CA", issuer=root, ca=True, path_length=0)
    leaf = issue("rolled.example.com", issuer=intermediate, sans=["rolled.example.com"])
    result = analyse([leaf, intermediate, stale], TrustStore("test", (root.cert,)))
    assert result.status is ChainStatus.OK
    assert result.complete


def test_two_intermediates_missing_the_middle_one(pki: PKI, trust: TrustStore) -> None:
    upper = issue(
        "Upper Intermediate CA",
        issuer=pki.root,
        ca=True,
        path_length=1,
        aia_ca_issuers="http://127.0.0.1:9/root.der",
    )
    middle = issue(
        "Middle Intermediate CA",
        issuer=upper,
        ca=True,
        path_length=0,
        aia_ca_issuers="http://127.0.0.1:9/upper.der",
    )
    leaf = issue(
        "deep.example.com",
        issuer=middle,
        sans=["deep.example.com"],
        aia_ca_issuers="http://127.0.0.1:9/middle.der",
    )
    assert analyse([leaf, middle, upper], trust).status is ChainStatus.OK

    without_middle = analyse([leaf, upper], trust)
    assert without_middle.status is ChainStatus.MISSING_INTERMEDIATE
    assert without_middle.missing_issuer == subject(middle)
    assert without_middle.missing_issuer_url == "http://127.0.0.1:9/middle.der"
    assert "Middle Intermediate CA" in without_middle.detail

    without_upper = analyse([leaf, middle], trust)
    assert without_upper.status is ChainStatus.MISSING_INTERMEDIATE
    assert without_upper.missing_issuer == subject(upper)
    assert without_upper.missing_issuer_url == "http://127.0.0.1:9/upper.der"


def test_rekeyed_intermediate_with_the_right_name_is_still_missing(
    pki: PKI, trust: TrustStore
) -> None:
    impostor = issue("Test Intermediate CA", issuer=pki.root, ca=True, path_length=0)
    result = analyse([pki.leaf("rekey.example.com"), impostor], trust)
    assert result.status is ChainStatus.MISSING_INTERMEDIATE
    assert result.missing_issuer == subject(pki.intermediate)
    assert "did not sign" in result.detail


def test_verifier_rejection_is_untrusted_with_its_message(pki: PKI, trust: TrustStore) -> None:
    not_a_ca = issue("Not A CA", issuer=pki.root)
    leaf = issue("bad.example.com", issuer=not_a_ca, sans=["bad.example.com"])
    result = analyse([leaf, not_a_ca], trust)
    assert result.status is ChainStatus.UNTRUSTED
    assert not result.complete
    assert "basicConstraints" in result.detail


def test_client_auth_only_leaf_is_untrusted(pki: PKI, trust: TrustStore) -> None:
    key = pki.leaf("unused.example.com").key
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=client.example.com"))
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    result = analyse([Issued(cert, key), pki.intermediate], trust)
    assert result.status is ChainStatus.UNTRUSTED
    assert "server authentication" in result.detail


def test_server_auth_only_intermediate_is_accepted(pki: PKI, trust: TrustStore) -> None:
    key = pki.intermediate.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=Server Auth Intermediate"))
        .issuer_name(pki.root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    )
    for extension in pki.intermediate.cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    intermediate = Issued(builder.sign(pki.root.key, hashes.SHA256()), key, pki.root)
    leaf = issue("eku.example.com", issuer=intermediate, sans=["eku.example.com"])
    assert analyse([leaf, intermediate], trust).status is ChainStatus.OK


def test_ca_file_trust_store(pki: PKI, tmp_path: Path) -> None:
    store = TrustStore.from_file(str(pki.write_roots(tmp_path / "roots.pem")))
    assert store.source == str(tmp_path / "roots.pem")
    assert store.roots == (pki.root.cert,)
    result = analyse([pki.leaf("file.example.com"), pki.intermediate], store)
    assert result.status is ChainStatus.OK


def test_self_signed_leaf_in_ca_file_is_ok(tmp_path: Path) -> None:
    leaf = issue("pinned.example.com", sans=["pinned.example.com"])
    (tmp_path / "pinned.pem").write_bytes(leaf.pem)
    result = analyse([leaf], TrustStore.from_file(str(tmp_path / "pinned.pem")))
    assert result.status is ChainStatus.OK
    assert result.path == (subject(leaf),)


@pytest.mark.parametrize("send_root", [True, False])
def test_mozilla_store_rejects_the_test_root(pki: PKI, send_root: bool) -> None:
    mozilla = TrustStore.mozilla()
    assert mozilla.source == "certifi"
    assert len(mozilla.roots) > 50
    assert TrustStore.mozilla() is mozilla
    chain = [pki.leaf("public.example.com"), pki.intermediate] + [pki.root] * send_root
    result = analyse(chain, mozilla)
    # The intermediate has an AIA URL, but no Mozilla root belongs to the test organisation.
    assert result.status is ChainStatus.UNTRUSTED
    assert result.problems == (ChainStatus.UNTRUSTED,)
    assert not result.complete
    assert "Test Root CA" in result.detail


@pytest.mark.parametrize(
    ("content", "complaint"),
    [(None, "cannot be read"), (b"", "empty"), (b"garbage\x00\xff", "PEM")],
)
def test_bad_ca_file_names_the_file(tmp_path: Path, content: bytes | None, complaint: str) -> None:
    path = tmp_path / "roots.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=complaint) as error:
        TrustStore.from_file(str(path))
    assert str(path) in str(error.value)


def test_garbage_pem_block_in_ca_file(tmp_path: Path) -> None:
    path = tmp_path / "roots.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match=r"roots\.pem"):
        TrustStore.from_file(str(path))


def test_garbage_der_raises_parse_error(pki: PKI, trust: TrustStore) -> None:
    with pytest.raises(CertificateParseError, match="certificate 1"):
        analyse_chain([pki.leaf("x.example.com").der, b"\x30\x03\x02\x01\x00"], trust, NOW)


def test_empty_chain_raises_parse_error(trust: TrustStore) -> None:
    with pytest.raises(CertificateParseError):
        analyse_chain([], trust, NOW)


def test_earliest_expiry(pki: PKI, trust: TrustStore) -> None:
    leaf = pki.leaf("soon.example.com", not_after=NOW + 3 * DAY)
    result = analyse([leaf, pki.intermediate, pki.root], trust)
    assert result.earliest_expiry == leaf.cert.not_valid_after_utc
    assert result.status is ChainStatus.OK


def test_naive_now_is_taken_as_utc(pki: PKI, trust: TrustStore) -> None:
    result = analyse_chain(
        [pki.leaf("naive.example.com").der, pki.intermediate.der], trust, NOW.replace(tzinfo=None)
    )
    assert result.status is ChainStatus.OK


def test_corrupted_bytes_never_raise_anything_else(pki: PKI, trust: TrustStore) -> None:
    rng = random.Random(20240601)
    originals = [pki.leaf("fuzz.example.com").der, pki.intermediate.der, pki.root.der]
    for _ in range(300):
        chain = [bytearray(der) for der in originals]
        target = chain[rng.randrange(len(chain))]
        for _ in range(rng.randint(1, 4)):
            target[rng.randrange(len(target))] = rng.randrange(256)
        try:
            result = analyse_chain([bytes(der) for der in chain], trust, NOW)
        except CertificateParseError:
            continue
        assert result.status in ChainStatus
        assert result.detail


def test_completeness_does_not_depend_on_dates(pki: PKI, trust: TrustStore) -> None:
    """A leaf that expired before its (re-issued) CA became valid: no moment makes the whole
    chain valid, yet it links by name and signature to the trusted root, so it is complete
    and expired, not an incomplete chain."""
    late_ca = issue(
        "Test Intermediate CA",
        issuer=pki.root,
        ca=True,
        path_length=0,
        key=pki.intermediate.key,
        not_before=NOW - 10 * DAY,
        not_after=NOW + 400 * DAY,
    )
    leaf = issue(
        "old.example.com",
        issuer=late_ca,
        sans=["old.example.com"],
        not_before=NOW - 400 * DAY,
        not_after=NOW - 20 * DAY,
    )
    result = analyse([leaf, late_ca], trust)
    assert result.complete
    assert result.status is ChainStatus.EXPIRED
    assert ChainStatus.MISSING_INTERMEDIATE not in result.problems
    assert ChainStatus.UNTRUSTED not in result.problems


def test_a_sent_issuer_whose_signature_is_refused_is_not_missing(
    pki: PKI, trust: TrustStore
) -> None:
    """The issuer is sent, with the right key, but its signature on the leaf is corrupt."""
    leaf = issue("tampered.example.com", issuer=pki.intermediate, sans=["tampered.example.com"])
    der = bytearray(leaf.der)
    der[-5] ^= 0xFF  # inside the signature
    tampered = Issued(x509.load_der_x509_certificate(bytes(der)), leaf.key)
    result = analyse([tampered, pki.intermediate], trust)
    assert result.status is ChainStatus.UNTRUSTED
    assert ChainStatus.MISSING_INTERMEDIATE not in result.problems
    assert "cannot be verified" in result.detail
