"""Certificate chains CloudFront's TLS library and a strict validator judge differently.

Each `case_*` builds (chain PEMs as the origin sends them, leaf key PEM) from the demo PKI; the
s2n-tls tests and the differential test serve them with `tests.servers.ssl_origin.SSLOrigin`.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from exporter.demo.pki import DAY, NOW, DemoPKI, Issued, issue, new_key

HOST = "origin.test"  # the name every case certifies

_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_WEAK_RSA = {"sha1": "06092a864886f70d010105", "md5": "06092a864886f70d010104"}


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _resign(cert: x509.Certificate, issuer: Issued, digest: str) -> bytes:
    """`cert` re-signed by `issuer` with SHA-1 or MD5 (cryptography refuses to sign those)."""
    assert isinstance(issuer.key, rsa.RSAPrivateKey)
    oid = bytes.fromhex(_WEAK_RSA[digest])
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(_SHA256_RSA) == 1
    tbs = tbs.replace(_SHA256_RSA, oid)
    algorithm: hashes.HashAlgorithm = hashes.SHA1() if digest == "sha1" else hashes.MD5()
    signature = issuer.key.sign(tbs, padding.PKCS1v15(), algorithm)
    der = _der(0x30, tbs + _der(0x30, oid + b"\x05\x00") + _der(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _intermediate(pki: DemoPKI, *, basic_constraints: str) -> Issued:
    """An intermediate under the trusted root whose basicConstraints are non-critical/absent."""
    key = new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Odd CA")]))
        .issuer_name(pki.root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.root.key.public_key()), False
        )
    )
    if basic_constraints == "non-critical":
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), False)
    return Issued(builder.sign(pki.root.key, hashes.SHA256()), key, pki.root)


CertCase = Callable[[DemoPKI, Issued], tuple[list[bytes], bytes]]


def case_sha1_leaf(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    return [_resign(leaf.cert, pki.intermediate, "sha1"), pki.intermediate.pem], leaf.key_pem


def case_md5_leaf(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    return [_resign(leaf.cert, pki.intermediate, "md5"), pki.intermediate.pem], leaf.key_pem


def case_sha1_intermediate(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    return [leaf.pem, _resign(pki.intermediate.cert, pki.root, "sha1")], leaf.key_pem


def case_md5_intermediate(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    return [leaf.pem, _resign(pki.intermediate.cert, pki.root, "md5")], leaf.key_pem


def case_ca_bc_non_critical(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    ca = _intermediate(pki, basic_constraints="non-critical")
    cert = issue(HOST, issuer=ca, sans=[HOST])
    return [cert.pem, ca.pem], cert.key_pem


def case_ca_without_bc(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    ca = _intermediate(pki, basic_constraints="absent")
    cert = issue(HOST, issuer=ca, sans=[HOST])
    return [cert.pem, ca.pem], cert.key_pem


def case_root_before_intermediate(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    return [leaf.pem, pki.root.pem, pki.intermediate.pem], leaf.key_pem


def case_unrelated_before_intermediate(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    return [leaf.pem, pki.other_intermediate.pem, pki.intermediate.pem], leaf.key_pem


def case_missing_intermediate(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    return [leaf.pem], leaf.key_pem


def case_untrusted_root_signs_leaf(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    cert = issue(HOST, issuer=pki.other_root, sans=[HOST])
    return [cert.pem, pki.other_root.pem], cert.key_pem


def case_trusted_root_signs_leaf(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    cert = issue(HOST, issuer=pki.root, sans=[HOST])
    return [cert.pem], cert.key_pem


def case_self_signed(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    cert = issue(HOST, sans=[HOST])
    return [cert.pem], cert.key_pem


def case_expired(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    cert = pki.leaf(HOST, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    return [cert.pem, pki.intermediate.pem], cert.key_pem


def case_not_yet_valid(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    cert = pki.leaf(HOST, not_before=NOW + DAY, not_after=NOW + 400 * DAY)
    return [cert.pem, pki.intermediate.pem], cert.key_pem


def case_ecdsa_leaf(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    cert = pki.leaf(HOST, key_kind="p256")
    return [cert.pem, pki.intermediate.pem], cert.key_pem


def case_rsa1024_leaf(pki: DemoPKI, leaf: Issued) -> tuple[list[bytes], bytes]:
    cert = pki.leaf(HOST, key_kind="rsa1024")
    return [cert.pem, pki.intermediate.pem], cert.key_pem
