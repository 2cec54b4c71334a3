"""A small certificate authority for the demo and the tests: real keys, every broken shape.

Each demo or test origin needs certificates that are wrong in exactly one way (expired leaf,
missing intermediate, wrong name, ...). Building them at start-up with `cryptography` keeps the
scenarios readable and ships no key material in the package.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

__all__ = [
    "DAY",
    "NOW",
    "DemoPKI",
    "Issued",
    "PrivateKey",
    "SigningHash",
    "issue",
    "new_key",
    "write_chain",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
#: the digests `CertificateBuilder.sign` accepts with an RSA or EC key
SigningHash = (
    hashes.SHA224
    | hashes.SHA256
    | hashes.SHA384
    | hashes.SHA512
    | hashes.SHA3_224
    | hashes.SHA3_256
    | hashes.SHA3_384
    | hashes.SHA3_512
)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


def new_key(kind: str = "rsa2048") -> PrivateKey:
    """`rsa2048`, `rsa1024`, `rsa4096`, `p256` or `p384`."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curve = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}[kind]
    return ec.generate_private_key(curve)


def _name(common_name: str, org: str = "origin-tls-exporter tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass
class Issued:
    """A certificate with its key; `issuer` is None for a self-signed one."""

    cert: x509.Certificate
    key: PrivateKey
    issuer: Issued | None = None

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    sans: list[str] | None = None,
    key: PrivateKey | None = None,
    key_kind: str = "rsa2048",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    aia_ca_issuers: str | None = None,
    hash_algorithm: SigningHash | None = None,
    path_length: int | None = None,
    client: bool = False,
) -> Issued:
    """Issue a certificate; `sans` entries that parse as IP addresses become IP SANs.

    `client` makes a TLS client certificate (clientAuth) instead of a server one.
    """
    key = key or new_key(key_kind)
    subject = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - 30 * DAY)
        .not_valid_after(not_after or NOW + 365 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=path_length), critical=True
        ).add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                False,
            )
        )
    if sans:
        general: list[x509.GeneralName] = []
        for entry in sans:
            try:
                general.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                general.append(x509.DNSName(entry))
        builder = builder.add_extension(x509.SubjectAlternativeName(general), False)
    if aia_ca_issuers:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(aia_ca_issuers),
                    )
                ]
            ),
            False,
        )
    signing_key = issuer.key if issuer else key
    cert = builder.sign(signing_key, hash_algorithm or hashes.SHA256())
    return Issued(cert=cert, key=key, issuer=issuer)


@dataclass
class DemoPKI:
    """Root -> intermediate -> leaves, plus an unrelated root nobody trusts.

    `label` names the CAs ("Test Root CA", "Demo Root CA") so a certificate seen in a report
    says where it came from. The AIA URLs point at a closed port, as CloudFront never fetches
    missing intermediates anyway.
    """

    root: Issued
    intermediate: Issued
    other_root: Issued
    other_intermediate: Issued
    leaves: dict[str, Issued] = field(default_factory=dict)
    label: str = "Test"

    @classmethod
    def create(cls, label: str = "Test") -> DemoPKI:
        slug = label.lower()
        root = issue(f"{label} Root CA", ca=True)
        intermediate = issue(
            f"{label} Intermediate CA",
            issuer=root,
            ca=True,
            path_length=0,
            aia_ca_issuers=f"http://127.0.0.1:9/{slug}-root.der",
        )
        other_root = issue("Untrusted Root CA", ca=True)
        other_intermediate = issue(
            "Untrusted Intermediate CA", issuer=other_root, ca=True, path_length=0
        )
        return cls(root, intermediate, other_root, other_intermediate, label=label)

    def leaf(self, name: str, **kwargs: object) -> Issued:
        """A leaf under the trusted intermediate, with the AIA caIssuers URL real CAs add."""
        kwargs.setdefault("issuer", self.intermediate)
        kwargs.setdefault("sans", [name])
        kwargs.setdefault(
            "aia_ca_issuers", f"http://127.0.0.1:9/{self.label.lower()}-intermediate.der"
        )
        return issue(name, **kwargs)  # type: ignore[arg-type]

    def write_roots(self, path: Path) -> Path:
        path.write_bytes(self.root.pem)
        return path


def write_chain(
    directory: Path, stem: str, certs: list[Issued], key: PrivateKey
) -> tuple[Path, Path]:
    """Write `certs` (in the order a server sends them) and the leaf key; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    chain = directory / f"{stem}.chain.pem"
    key_path = directory / f"{stem}.key.pem"
    chain.write_bytes(b"".join(c.pem for c in certs))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return chain, key_path
