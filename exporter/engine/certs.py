"""Facts about each certificate an origin sent, read without any network or file I/O.

Servers send odd certificates (no SAN, no CN, negative serials, unknown key types, broken
extensions); a report about a broken origin must still come out, so every fact degrades to
"absent" instead of raising. Only bytes that are not a certificate at all raise
`CertificateParseError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

_T = TypeVar("_T")


class CertificateParseError(ValueError):
    """The server sent bytes that are not a DER certificate; nothing about the chain is known."""


@dataclass(frozen=True)
class CertificateFacts:
    """What a report needs about one certificate, as sent (index 0 is the server's own)."""

    index: int
    position: str
    subject: str
    issuer: str
    common_names: tuple[str, ...]
    serial: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    key_type: str
    key_bits: int
    key_curve: str | None
    signature_algorithm: str
    sha256_fingerprint: str
    is_ca: bool
    self_signed: bool
    aia_ca_issuers: tuple[str, ...]
    der: bytes = field(repr=False, compare=False)


def parse_certificates(ders: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    """Decode the chain as sent; the error names the position so the operator can find it."""
    certs: list[x509.Certificate] = []
    for index, der in enumerate(ders):
        try:
            with quiet_parse():
                cert = x509.load_der_x509_certificate(bytes(der))
        except Exception as exc:  # the parser's own exceptions vary; all mean "not a cert"
            raise CertificateParseError(
                f"certificate {index} ({len(der)} bytes) is not a valid DER certificate: {exc}"
            ) from exc
        # Names are decoded lazily; chain building needs both, so a broken one is fatal here
        # rather than a surprise later (a TLS library would refuse such a certificate too).
        for part in ("subject", "issuer"):
            try:
                getattr(cert, part).rfc4514_string()
            except Exception as exc:
                raise CertificateParseError(
                    f"certificate {index} has an undecodable {part} name: {exc}"
                ) from exc
        certs.append(cert)
    return tuple(certs)


def describe(cert: x509.Certificate, index: int) -> CertificateFacts:
    """Facts for one certificate; each one falls back to empty/unknown rather than failing."""
    self_signed = is_self_signed(cert)
    is_ca = _is_ca(cert)
    if index == 0:
        position = "leaf"
    elif self_signed and is_ca:
        position = "root"
    else:
        position = "intermediate"
    key_type, key_bits, key_curve = _key_facts(cert)
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertificateFacts(
        index=index,
        position=position,
        subject=name_string(cert, issuer=False),
        issuer=name_string(cert, issuer=True),
        common_names=_common_names(cert),
        serial=_serial(cert),
        dns_names=_san_values(cert, x509.DNSName),
        ip_addresses=_san_values(cert, x509.IPAddress),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_bits=key_bits,
        key_curve=key_curve,
        signature_algorithm=_signature_algorithm(cert),
        sha256_fingerprint=hashlib.sha256(der).hexdigest(),
        is_ca=is_ca,
        self_signed=self_signed,
        aia_ca_issuers=ca_issuer_urls(cert),
        der=der,
    )


@contextlib.contextmanager
def quiet_parse() -> Iterator[None]:
    """Silence cryptography's warnings about odd but loadable certificates (negative serials).

    They are facts to report, not to print (certifi's bundle has one). `catch_warnings` is
    process-wide and not thread-safe, so the window is kept to a single parse.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def name_string(cert: x509.Certificate, *, issuer: bool) -> str:
    """RFC 4514 subject or issuer; an unparseable name shows as empty rather than failing."""
    return _safe(lambda: (cert.issuer if issuer else cert.subject).rfc4514_string(), "")


def same_name(subject: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer`'s subject is the name `subject` says issued it (DER comparison)."""
    return _safe(
        lambda: subject.issuer.public_bytes() == issuer.subject.public_bytes(),
        False,
    )


def directly_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name link plus a signature made by `issuer`'s key; no policy or date checks."""
    if not same_name(cert, issuer):
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # bad signature, unsupported algorithm, odd key type: not its issuer
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    """Self-issued and signed by its own key: the top of a chain, trusted or not."""
    return directly_issued_by(cert, cert)


def ca_issuer_urls(cert: x509.Certificate) -> tuple[str, ...]:
    """The AIA caIssuers URIs: where a browser would fetch the issuer (CloudFront does not)."""

    def read() -> tuple[str, ...]:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        return tuple(
            str(desc.access_location.value)
            for desc in aia
            if desc.access_method == AuthorityInformationAccessOID.CA_ISSUERS
            and isinstance(desc.access_location, x509.UniformResourceIdentifier)
        )

    return _safe(read, ())


def _serial(cert: x509.Certificate) -> str:
    """Lowercase hex; a negative serial (RFC 5280 forbids it, servers send it) keeps its sign."""
    with quiet_parse():
        return _safe(lambda: format(cert.serial_number, "x"), "")


def _is_ca(cert: x509.Certificate) -> bool:
    return _safe(
        lambda: cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca,
        False,
    )


def _common_names(cert: x509.Certificate) -> tuple[str, ...]:
    def read() -> tuple[str, ...]:
        values = (a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
        return tuple(v if isinstance(v, str) else v.decode("latin-1") for v in values)

    return _safe(read, ())


def _san_values(
    cert: x509.Certificate, kind: type[x509.DNSName] | type[x509.IPAddress]
) -> tuple[str, ...]:
    def read() -> tuple[str, ...]:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return tuple(str(name.value) for name in san if isinstance(name, kind))

    return _safe(read, ())


def _key_facts(cert: x509.Certificate) -> tuple[str, int, str | None]:
    try:
        key = cert.public_key()
    except Exception:  # unsupported or malformed key: still describe the rest
        return "unknown", 0, None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name
    # EdDSA: the size of the encoded public key, as for the other types.
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    return "unknown", 0, None


def _signature_algorithm(cert: x509.Certificate) -> str:
    def read() -> str:
        oid = cert.signature_algorithm_oid
        name = oid._name
        return oid.dotted_string if name == "Unknown OID" else name

    return _safe(read, "unknown")


def _safe(read: Callable[[], _T], default: _T) -> _T:
    """Run a lazy parse of the certificate; any failure means the fact is absent."""
    try:
        return read()
    except Exception:
        return default
