"""Per-certificate facts from real certificates, including odd ones servers really send."""

from __future__ import annotations

import hashlib
from datetime import UTC

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtensionOID, NameOID

from exporter.engine.certs import (
    CertificateFacts,
    CertificateParseError,
    describe,
    parse_certificates,
)
from tests.pki import DAY, NOW, Issued, issue
from tests.pki import TestPKI as PKI


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI.create()


def facts_of(issued: Issued | x509.Certificate, index: int = 0) -> CertificateFacts:
    cert = issued.cert if isinstance(issued, Issued) else issued
    (parsed,) = parse_certificates([cert.public_bytes(serialization.Encoding.DER)])
    return describe(parsed, index)


@pytest.mark.parametrize(
    ("kind", "key_type", "bits", "curve", "signature"),
    [
        ("rsa2048", "RSA", 2048, None, "sha256WithRSAEncryption"),
        ("p256", "EC", 256, "secp256r1", "ecdsa-with-SHA256"),
        ("p384", "EC", 384, "secp384r1", "ecdsa-with-SHA256"),
    ],
)
def test_key_facts(kind: str, key_type: str, bits: int, curve: str | None, signature: str) -> None:
    # Self-signed, so the signature algorithm follows the certificate's own key.
    facts = facts_of(issue(f"{kind}.example.com", key_kind=kind))
    assert (facts.key_type, facts.key_bits, facts.key_curve) == (key_type, bits, curve)
    assert facts.signature_algorithm == signature


def test_ed25519_key(pki: PKI) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=ed.example.com"))
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    facts = facts_of(cert)
    assert (facts.key_type, facts.key_bits, facts.key_curve) == ("Ed25519", 256, None)


def test_leaf_facts(pki: PKI) -> None:
    leaf = pki.leaf(
        "www.example.com", sans=["www.example.com", "*.example.com", "192.0.2.7", "::1"]
    )
    facts = facts_of(leaf)
    assert facts.index == 0
    assert facts.position == "leaf"
    assert facts.subject == "CN=www.example.com,O=origin-tls-exporter tests"
    assert facts.issuer == pki.intermediate.cert.subject.rfc4514_string()
    assert facts.common_names == ("www.example.com",)
    assert facts.dns_names == ("www.example.com", "*.example.com")
    assert facts.ip_addresses == ("192.0.2.7", "::1")
    assert facts.serial == format(leaf.cert.serial_number, "x")
    assert facts.not_before == leaf.cert.not_valid_before_utc
    assert facts.not_after == leaf.cert.not_valid_after_utc
    assert facts.not_before.tzinfo is not None
    assert facts.not_after.utcoffset() == UTC.utcoffset(None)
    assert facts.sha256_fingerprint == hashlib.sha256(leaf.der).hexdigest()
    assert facts.der == leaf.der
    assert not facts.is_ca
    assert not facts.self_signed
    assert facts.aia_ca_issuers == ("http://127.0.0.1:9/test-intermediate.der",)
    assert "der=" not in repr(facts)


def test_positions_and_self_signed(pki: PKI) -> None:
    chain = [pki.leaf("pos.example.com"), pki.intermediate, pki.root]
    facts = [describe(cert, i) for i, cert in enumerate(parse_certificates([c.der for c in chain]))]
    assert [f.position for f in facts] == ["leaf", "intermediate", "root"]
    assert [f.self_signed for f in facts] == [False, False, True]
    assert [f.is_ca for f in facts] == [False, True, True]
    assert [f.index for f in facts] == [0, 1, 2]


def test_self_signed_leaf_stays_leaf() -> None:
    facts = facts_of(issue("self.example.com", sans=["self.example.com"]))
    assert facts.position == "leaf"
    assert facts.self_signed


def test_self_issued_but_not_self_signed_is_not_a_root(pki: PKI) -> None:
    # A CA whose issuer name equals its subject but whose signature is by another key.
    impostor = issue("Test Root CA", issuer=pki.root, ca=True, key_kind="p256")
    facts = facts_of(impostor, index=1)
    assert facts.subject == facts.issuer
    assert not facts.self_signed
    assert facts.position == "intermediate"


def test_no_san_no_cn_no_extensions(pki: PKI) -> None:
    key = pki.leaf("unused.example.com").key
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "No CN Ltd")]))
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(key.public_key())
        .serial_number(255)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00"), False
        )
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    facts = facts_of(cert)
    assert facts.common_names == ()
    assert facts.dns_names == ()
    assert facts.ip_addresses == ()
    assert facts.aia_ca_issuers == ()
    assert facts.serial == "ff"
    assert not facts.is_ca


def test_malformed_extension_is_treated_as_absent(pki: PKI) -> None:
    key = pki.leaf("unused.example.com").key
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=broken.example.com"))
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x04\x02no"), False
        )
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    with pytest.raises(ValueError):  # noqa: PT011 - proves the extension really is broken
        _ = cert.extensions
    facts = facts_of(cert)
    assert facts.dns_names == ()
    assert facts.common_names == ("broken.example.com",)
    assert not facts.is_ca


@pytest.mark.filterwarnings("error")
def test_negative_serial(pki: PKI) -> None:
    leaf = pki.leaf("negative.example.com")
    der = bytearray(leaf.der)
    serial = leaf.cert.serial_number.to_bytes(20, "big")
    der[der.index(serial)] |= 0x80  # same length, sign bit set: the signature breaks, parsing not
    (cert,) = parse_certificates([bytes(der)])
    facts = describe(cert, 0)
    assert facts.serial.startswith("-")
    assert facts.dns_names == ("negative.example.com",)


def test_parse_error_names_the_index(pki: PKI) -> None:
    with pytest.raises(CertificateParseError, match="certificate 2") as error:
        parse_certificates([pki.root.der, pki.root.der, b"not a certificate"])
    assert isinstance(error.value, ValueError)


def test_truncated_der_is_a_parse_error(pki: PKI) -> None:
    with pytest.raises(CertificateParseError, match="certificate 0"):
        parse_certificates([pki.root.der[:-10]])
