"""Does the origin's certificate cover the name CloudFront asks for? RFC 6125, CloudFront style.

CloudFront accepts the name in either a subjectAltName or the subject CN, so both are checked
and reported separately (a CN-only match works today but is fragile elsewhere).

Rules: case-insensitive; one trailing dot ignored on both sides; U-labels become A-labels
(IDNA 2008 with UTS #46 mapping, falling back to lowercase when conversion fails); a wildcard
is only an entire left-most `*` label followed by at least two labels, matches exactly one
non-empty label, and never an A-label (`xn--`) or an IP address; IP literals (IPv4 or IPv6, in
any textual form, IPv6 optionally in brackets) match iPAddress SANs by value, and a CN that is
the same address; DNS names never match iPAddress SANs; a CN that is not a host name (or an IP
address) is ignored.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

import idna

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


@dataclass(frozen=True)
class NameMatch:
    """Which presented identifier, if any, covers the name CloudFront checks."""

    name: str
    san: bool
    cn: bool
    matched_by: str | None

    @property
    def ok(self) -> bool:
        return self.san or self.cn


@dataclass(frozen=True)
class Identifier:
    """One name the leaf presents (CN or SAN) and whether it alone covers the checked name."""

    kind: str  # "CN", "DNS", "IP"
    value: str
    matches: bool


def match_identifiers(
    name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    common_names: Sequence[str],
) -> tuple[Identifier, ...]:
    """Each identifier alone through the same matcher, so a view can mark exactly the entries
    the verdict rests on (wildcards, IDNA, IP forms included): CNs first, then SANs."""
    return (
        *(Identifier("CN", v, match_name(name, (), (), (v,)).cn) for v in common_names),
        *(Identifier("DNS", v, match_name(name, (v,), (), ()).san) for v in dns_names),
        *(Identifier("IP", v, match_name(name, (), (v,), ()).san) for v in ip_addresses),
    )


def match_name(
    name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    common_names: Sequence[str],
) -> NameMatch:
    """Check `name` (the origin domain / SNI) against a leaf certificate's identifiers."""
    address = _ip(name)
    san_hit: str | None
    cn_hit: str | None
    if address is not None:
        san_hit = next((entry for entry in ip_addresses if _ip(entry) == address), None)
        cn_hit = next((entry for entry in common_names if _ip(entry) == address), None)
    else:
        host = _to_ascii(name)
        san_hit = next((entry for entry in dns_names if _dns_match(host, entry)), None)
        cn_hit = next(
            (
                entry
                for entry in common_names
                if _is_host_pattern(entry) and _dns_match(host, entry)
            ),
            None,
        )
    return NameMatch(
        name=name,
        san=san_hit is not None,
        cn=cn_hit is not None,
        matched_by=san_hit if san_hit is not None else cn_hit,
    )


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> _Address | None:
    """The address an IP literal denotes (`[::1]` included), None for anything else.
    Memoised: s2n-tls's name check asks for every name of every handshake."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _to_ascii(host: str) -> str:
    """Lowercase A-label form without one trailing dot; `*` labels are kept as they are."""
    host = host.strip()
    if not host.isascii():
        with contextlib.suppress(idna.IDNAError, UnicodeError, ValueError):
            host = idna.uts46_remap(host, std3_rules=False, transitional=False)
    if host.endswith("."):
        host = host[:-1]
    return ".".join(_label_to_ascii(label) for label in host.split("."))


def _label_to_ascii(label: str) -> str:
    if label.isascii():
        return label.lower()
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return label.lower()


def _dns_match(host: str, presented: str) -> bool:
    """One presented DNS identifier (SAN dNSName or CN) against an A-label host name."""
    if not host or _ip(presented) is not None:
        return False
    pattern = _to_ascii(presented)
    if "*" not in pattern:
        return pattern == host
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or len(rest.split(".")) < 2 or "" in rest.split("."):
        return False
    label, _, host_rest = host.partition(".")
    return bool(label) and not label.startswith("xn--") and host_rest == rest


def _is_host_pattern(common_name: str) -> bool:
    """Whether a CN looks like a (possibly wildcard) host name rather than a description."""
    ascii_name = _to_ascii(common_name)
    if not ascii_name or len(ascii_name) > 253:
        return False
    labels = ascii_name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    return bool(labels) and all(_LABEL.fullmatch(label) for label in labels)
