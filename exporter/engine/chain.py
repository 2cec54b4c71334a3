"""Does the chain an origin sends lead CloudFront to a root it trusts, and if not, why not?

CloudFront does not fetch missing issuers over AIA: only the certificates the origin sends
count, so everything here works on those certificates exactly as sent, plus a trust store.

Path building and every policy check (signatures, CA constraints, key usage, weak keys,
signature algorithms) are cryptography's X.509 verifier; this module only chooses the
verification time and explains failures. Extended key usage, when present, must allow TLS
server authentication (on the leaf and on the CAs); a host name is not checked here (see
`names`).

Rules, as implemented:

* `complete`: the verifier finds a path from the leaf through the sent certificates to a
  trust-store root at *some* time: now, else the middle of the overlap of the validity periods
  of the certificates that link by issuer (sent ones plus the matching store root), else the
  middle of the overlap of all sent certificates, else the middle of the leaf's period. Dates
  therefore never make a chain incomplete unless no single moment makes it valid.
* `wrong_order` (only when complete): some certificate after the leaf is not the direct issuer
  (name and signature) of the certificate before it; an extra or duplicated certificate counts
  too, because TLS says each certificate certifies the one before it.
* `expired` / `not_yet_valid`: judged at `now` on the certificates of the verified path (the
  trust store's copy of the anchor, so an expired root the server sends needlessly is ignored)
  or, when there is no path, on the leaf and the sent certificates that link up from it.
* When there is no path, walk up from the leaf through the sent certificates by issuer (name
  and signature) to the *top*, then:

  - top is self-signed: `untrusted` (self-signed leaf, or a root the store does not have);
  - the store has a certificate named like top's issuer: `untrusted`, with the verifier's
    message (bad signature, constraints, key usage, dates that never overlap, ...);
  - top is the leaf: `missing_intermediate`. Publicly trusted roots never sign leaves
    directly, so an unknown leaf issuer is an intermediate the server forgot to send;
  - top is a sent intermediate: its issuer may be a second intermediate the server forgot or
    a root the store lacks, and nothing sent says which. `missing_intermediate` when both
    hints point to an intermediate of a CA the store trusts: top carries an AIA caIssuers URL
    (its CA publishes where the issuer lives) and the store has a root of the same
    organisation (O=) as the missing issuer. Otherwise `untrusted`: a CA of an organisation
    the store knows nothing about is what a private or untrusted PKI looks like. The detail
    names the missing issuer either way.

  A sent certificate that has the missing issuer's name but did not sign the certificate below
  it (an old intermediate after a CA re-key) does not count as sent.
* Severity, which orders `problems` and picks `status`: untrusted, missing_intermediate (the
  chain never reaches a root; the two exclude each other), wrong_order, expired, not_yet_valid.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
)

from .certs import (
    CertificateFacts,
    CertificateParseError,
    describe,
    directly_issued_by,
    parse_certificates,
    quiet_parse,
    same_name,
)


class ChainStatus(StrEnum):
    OK = "ok"
    MISSING_INTERMEDIATE = "missing_intermediate"
    WRONG_ORDER = "wrong_order"
    UNTRUSTED = "untrusted"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


_SEVERITY = (
    ChainStatus.UNTRUSTED,
    ChainStatus.MISSING_INTERMEDIATE,
    ChainStatus.WRONG_ORDER,
    ChainStatus.EXPIRED,
    ChainStatus.NOT_YET_VALID,
)


@dataclass(frozen=True)
class TrustStore:
    """The roots a chain must reach: Mozilla's (what CloudFront trusts) or an operator's file."""

    source: str
    roots: tuple[x509.Certificate, ...]

    @classmethod
    def mozilla(cls) -> TrustStore:
        return _mozilla()

    @classmethod
    def from_file(cls, path: str) -> TrustStore:
        """A PEM bundle (or one DER certificate); errors name the file for the operator."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(
                f"trust store file {path!r} cannot be read: {exc.strerror or exc}"
            ) from exc
        return cls.from_pem(data, path)

    @classmethod
    def from_pem(cls, data: bytes, source: str) -> TrustStore:
        """Roots from bytes already read (a recording, a test); errors name `source`."""
        return cls(source=source, roots=_parse_bundle(data, source))

    @cached_property
    def pem(self) -> bytes:
        """The roots as one PEM bundle: what s2n-tls is given to trust."""
        return b"".join(root.public_bytes(Encoding.PEM) for root in self.roots)

    @cached_property
    def digest(self) -> str:
        """Names this set of roots, so a judgment can tell whether s2n-tls saw the same."""
        return hashlib.sha256(self.pem).hexdigest()

    @cached_property
    def store(self) -> Store | None:
        """cryptography's store, built once per trust store; None when there are no roots."""
        return Store(list(self.roots)) if self.roots else None

    @cached_property
    def _by_subject(self) -> dict[bytes, tuple[x509.Certificate, ...]]:
        index: dict[bytes, list[x509.Certificate]] = {}
        for root in self.roots:
            try:
                index.setdefault(root.subject.public_bytes(), []).append(root)
            except Exception:  # a root with an unencodable name cannot be an issuer we name
                continue
        return {name: tuple(certs) for name, certs in index.items()}

    def named(self, name: x509.Name) -> tuple[x509.Certificate, ...]:
        """Store certificates whose subject is `name`."""
        try:
            return self._by_subject.get(name.public_bytes(), ())
        except Exception:
            return ()

    def contains(self, cert: x509.Certificate) -> bool:
        return any(root == cert for root in self.named(cert.subject))

    @cached_property
    def organizations(self) -> frozenset[str]:
        """The O= values of the roots: a hint that a missing issuer belongs to a trusted CA."""
        return frozenset(o for root in self.roots if (o := _organization(root.subject)))


@functools.lru_cache(maxsize=1)
def _mozilla() -> TrustStore:
    with open(certifi.where(), "rb") as bundle:
        return TrustStore(source="certifi", roots=_parse_bundle(bundle.read(), certifi.where()))


def _organization(name: x509.Name) -> str | None:
    try:
        values = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    except Exception:
        return None
    return next((v.value for v in values if isinstance(v.value, str) and v.value), None)


def _parse_bundle(data: bytes, path: str) -> tuple[x509.Certificate, ...]:
    if not data.strip():
        raise ValueError(f"trust store file {path!r} is empty")
    try:
        with quiet_parse():
            if b"-----BEGIN" in data:
                roots = tuple(x509.load_pem_x509_certificates(data))
            else:
                roots = (x509.load_der_x509_certificate(data),)
    except ValueError as exc:
        raise ValueError(
            f"trust store file {path!r} does not hold PEM certificates: {exc}"
        ) from exc
    if not roots:
        raise ValueError(f"trust store file {path!r} holds no certificates")
    return roots


@dataclass(frozen=True)
class ChainAnalysis:
    """The verdict on the chain as sent, with enough detail to tell the operator what to fix."""

    status: ChainStatus
    problems: tuple[ChainStatus, ...]
    complete: bool
    certificates: tuple[CertificateFacts, ...]
    path: tuple[str, ...]
    missing_issuer: str | None
    missing_issuer_url: str | None
    detail: str
    earliest_expiry: datetime | None


def analyse_chain(ders: Sequence[bytes], trust: TrustStore, now: datetime) -> ChainAnalysis:
    """Analyse the chain as sent; only undecodable input raises (`CertificateParseError`)."""
    if not ders:
        raise CertificateParseError("the server sent no certificates")
    certs = parse_certificates(ders)
    facts = tuple(describe(cert, index) for index, cert in enumerate(certs))
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    walk = _walk_up(certs, facts)
    times = _candidate_times(certs, walk, trust, now)
    path, errors = _find_path(certs, walk, trust, times)
    context = _Context(certs, facts, trust, now, walk)

    problems: dict[ChainStatus, str] = {}
    missing_issuer: str | None = None
    missing_issuer_url: str | None = None
    if path is None and errors and all(_DATES in error for error in errors):
        # Linked by name and signature to a trusted root, and refused for dates alone:
        # complete, and the failure is the dates' (an expired leaf whose CA post-dates it).
        path = _undated_path(certs, walk, trust)
    if path is not None:
        out_of_order = _first_out_of_order(certs)
        if out_of_order is not None:
            problems[ChainStatus.WRONG_ORDER] = context.wrong_order(out_of_order, path)
        dated: Sequence[x509.Certificate] = path
    else:
        status, sentence = context.why_incomplete(_best_error(errors))
        problems[status] = sentence
        if status is ChainStatus.MISSING_INTERMEDIATE:
            top = facts[walk[-1]]
            missing_issuer = top.issuer
            missing_issuer_url = top.aia_ca_issuers[0] if top.aia_ca_issuers else None
        dated = [certs[index] for index in walk]
    problems.update(context.date_problems(dated))

    ordered = tuple(status for status in _SEVERITY if status in problems)
    status = ordered[0] if ordered else ChainStatus.OK
    detail = problems[status] if ordered else context.ok(path or [])
    return ChainAnalysis(
        status=status,
        problems=ordered,
        complete=path is not None,
        certificates=facts,
        path=tuple(_subject(cert) for cert in path or ()),
        missing_issuer=missing_issuer,
        missing_issuer_url=missing_issuer_url,
        detail=detail,
        earliest_expiry=min(f.not_after for f in facts),
    )


_DATES = "not valid at validation time"


def _undated_path(
    certs: Sequence[x509.Certificate], walk: Sequence[int], trust: TrustStore
) -> list[x509.Certificate] | None:
    """The walk up plus a trusted root that signed its top, ignoring every date; None if the
    verifier's refusal was about more than dates (then the chain is not complete)."""
    top = certs[walk[-1]]
    linked = [certs[index] for index in walk]
    if trust.contains(top):
        return linked
    root = next((r for r in trust.named(top.issuer) if directly_issued_by(top, r)), None)
    return None if root is None else [*linked, root]


def _rejected_issuer(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer` is the one that signed `cert` (its key, by key identifier, or an algorithm the
    library will not verify), yet the signature is refused: sent, so never "missing"."""
    try:
        cert.verify_directly_issued_by(issuer)
    except UnsupportedAlgorithm:
        return True
    except Exception:
        return (
            _key_id(cert, x509.AuthorityKeyIdentifier)
            == _key_id(issuer, x509.SubjectKeyIdentifier)
            is not None
        )
    return False


def _key_id(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_class(kind).value
    except Exception:
        return None
    key_id = getattr(value, "key_identifier", None) or getattr(value, "digest", None)
    return key_id if isinstance(key_id, bytes) else None


def _walk_up(certs: Sequence[x509.Certificate], facts: Sequence[CertificateFacts]) -> list[int]:
    """Indices from the leaf up through sent certificates that issued the one below."""
    walk = [0]
    while not facts[walk[-1]].self_signed:
        below = certs[walk[-1]]
        issuer = next(
            (
                index
                for index, cert in enumerate(certs)
                if index not in walk and directly_issued_by(below, cert)
            ),
            None,
        )
        if issuer is None:
            break
        walk.append(issuer)
    return walk


def _candidate_times(
    certs: Sequence[x509.Certificate], walk: Sequence[int], trust: TrustStore, now: datetime
) -> list[datetime]:
    """Moments to verify at: now first, then moments inside the validity windows."""
    linked = [certs[index] for index in walk]
    linked.extend(trust.named(linked[-1].issuer))
    times = [now]
    for group in (linked, certs, certs[:1]):
        moment = _middle_of_overlap(group)
        if moment is not None and moment not in times:
            times.append(moment)
    return times


def _middle_of_overlap(certs: Iterable[x509.Certificate]) -> datetime | None:
    windows = [(c.not_valid_before_utc, c.not_valid_after_utc) for c in certs]
    start = max(w[0] for w in windows)
    end = min(w[1] for w in windows)
    if start > end:
        return None
    return (start + (end - start) / 2).replace(microsecond=0)


def _find_path(
    certs: Sequence[x509.Certificate],
    walk: Sequence[int],
    trust: TrustStore,
    times: Sequence[datetime],
) -> tuple[list[x509.Certificate] | None, list[str]]:
    """The first path the verifier builds at any of `times`, and its complaints until then.

    The verifier gets only the sent certificates on the walk up from the leaf, one issuer per
    step, as OpenSSL (so CloudFront) picks them. Given every sent certificate, its
    backtracking path search is exponential in certificates sharing a subject: four copies of
    a CA re-issued under one name took 50 s, with the event loop blocked.
    """
    intermediates = [certs[index] for index in walk[1:]]
    errors: list[str] = []
    if trust.store is None:
        return None, [f"the trust store ({trust.source}) holds no certificates"]
    for moment in times:
        verifier = (
            PolicyBuilder()
            .store(trust.store)
            .time(moment)
            .extension_policies(ca_policy=_ca_policy(), ee_policy=_ee_policy())
            .build_client_verifier()
        )
        try:
            return verifier.verify(certs[0], intermediates).chain, errors
        except Exception as exc:  # VerificationError, or anything odd about a server's cert
            errors.append(str(exc) or type(exc).__name__)
    return None, errors


def _ca_policy() -> ExtensionPolicy:
    return ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _server_auth_allowed
    )


def _ee_policy() -> ExtensionPolicy:
    return ExtensionPolicy.permit_all().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _server_auth_allowed
    )


def _server_auth_allowed(
    policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    """The client verifier would demand clientAuth; a TLS server's chain needs serverAuth."""
    if eku is None:
        return
    if ExtendedKeyUsageOID.SERVER_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return
    raise ValueError("extended key usage does not allow TLS server authentication")


def _best_error(errors: Sequence[str]) -> str:
    """Prefer a complaint that is not about dates: dates are reported separately."""
    for error in errors:
        if "not valid at validation time" not in error:
            return error
    return errors[0] if errors else "no path to a trusted root"


def _first_out_of_order(certs: Sequence[x509.Certificate]) -> int | None:
    for index in range(1, len(certs)):
        if not directly_issued_by(certs[index - 1], certs[index]):
            return index
    return None


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except Exception:
        return ""


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class _Context:
    """What the sentences need; keeps `analyse_chain` readable."""

    certs: Sequence[x509.Certificate]
    facts: Sequence[CertificateFacts]
    trust: TrustStore
    now: datetime
    walk: Sequence[int]

    def label(self, cert: x509.Certificate) -> str:
        for facts in self.facts:
            if facts.der == cert.public_bytes(serialization.Encoding.DER):
                return self.sent(facts.index)
        return f"trust store root '{_subject(cert)}'"

    def sent(self, index: int) -> str:
        facts = self.facts[index]
        return f"certificate {index} ({facts.position} '{facts.subject}')"

    def ok(self, path: Sequence[x509.Certificate]) -> str:
        return (
            f"The chain links the leaf '{self.facts[0].subject}' to the trusted root "
            f"'{_subject(path[-1])}' ({self.trust.source}) and is valid now."
        )

    def wrong_order(self, index: int, path: Sequence[x509.Certificate]) -> str:
        return (
            f"The chain reaches the trusted root '{_subject(path[-1])}', but it is sent out of "
            f"order: {self.sent(index)} did not issue {self.sent(index - 1)}, the one before it."
        )

    def why_incomplete(self, error: str) -> tuple[ChainStatus, str]:
        """Classify a chain with no path to a root (rules in the module docstring)."""
        top_index = self.walk[-1]
        top, facts = self.certs[top_index], self.facts[top_index]
        source = self.trust.source
        if facts.self_signed:
            if self.trust.contains(top):
                return ChainStatus.UNTRUSTED, f"The verifier rejected the chain: {error}."
            if top_index == 0:
                sentence = f"{self.sent(0)} is self-signed and not in the trust store ({source})"
            else:
                sentence = (
                    f"The chain ends at {self.sent(top_index)}, a self-signed root that is not "
                    f"in the trust store ({source})"
                )
            return ChainStatus.UNTRUSTED, _sentence([sentence])
        if self.trust.named(top.issuer):
            return (
                ChainStatus.UNTRUSTED,
                f"The trust store ({source}) has '{facts.issuer}', the issuer of "
                f"{self.sent(top_index)}, but the verifier rejected the chain: {error}.",
            )
        where = f" (it is at {facts.aia_ca_issuers[0]})" if facts.aia_ca_issuers else ""
        organization = _organization(top.issuer)
        named = next(
            (
                i
                for i, cert in enumerate(self.certs)
                if i != top_index and same_name(top, cert) and _rejected_issuer(top, cert)
            ),
            None,
        )
        if named is not None:
            # Sent, but its signature on the one below is rejected (SHA-1 or MD5 the verifier
            # refuses, a bad signature, another key): present, not missing.
            return (
                ChainStatus.UNTRUSTED,
                f"{self.sent(named)} has the name of the issuer of {self.sent(top_index)}, but "
                f"its signature on it cannot be verified ({error}): the chain does not link.",
            )
        # A CA Issuers URL, or an issuer of an organisation the trust store knows, names an
        # intermediate that exists; otherwise the issuer may as well be a private root.
        known = organization in self.trust.organizations
        aia = bool(facts.aia_ca_issuers)
        if (top_index == 0 and (aia or known)) or (aia and known):
            impostor = next(
                (
                    f"; {self.sent(index)} has that name but did not sign it"
                    for index, cert in enumerate(self.certs)
                    if index != top_index and same_name(top, cert)
                ),
                "",
            )
            return (
                ChainStatus.MISSING_INTERMEDIATE,
                f"The server did not send '{facts.issuer}', which issued {self.sent(top_index)}, "
                f"and CloudFront does not fetch missing intermediates{where}{impostor}.",
            )
        sentence = (
            f"{self.sent(top_index)} was issued by '{facts.issuer}'{where}, which was not sent "
            f"and is not in the trust store ({source}); unless it is an intermediate that "
            "chains to a trusted root, this CA is not trusted"
        )
        return ChainStatus.UNTRUSTED, _sentence([sentence])

    def date_problems(self, certs: Sequence[x509.Certificate]) -> dict[ChainStatus, str]:
        expired = [c for c in certs if c.not_valid_after_utc < self.now]
        early = [c for c in certs if c.not_valid_before_utc > self.now]
        problems: dict[ChainStatus, str] = {}
        if expired:
            problems[ChainStatus.EXPIRED] = _sentence(
                f"{self.label(c)} expired on {_when(c.not_valid_after_utc)}" for c in expired
            )
        if early:
            problems[ChainStatus.NOT_YET_VALID] = _sentence(
                f"{self.label(c)} is not valid until {_when(c.not_valid_before_utc)}" for c in early
            )
        return problems


def _sentence(clauses: Iterable[str]) -> str:
    text = "; ".join(clauses)
    return text[:1].upper() + text[1:] + "."
