"""RFC 6125 name matching as CloudFront does it: SAN or CN, strict wildcards, IDN, IP literals."""

from __future__ import annotations

import pytest

from exporter.engine.names import NameMatch, match_name

# (name, dns SANs, ip SANs, CNs, expected san, expected cn, expected matched_by)
Case = tuple[str, list[str], list[str], list[str], bool, bool, str | None]

CASES: dict[str, Case] = {
    # exact and case-insensitive
    "exact": ("www.example.com", ["www.example.com"], [], [], True, False, "www.example.com"),
    "case name": ("WWW.Example.COM", ["www.example.com"], [], [], True, False, "www.example.com"),
    "case san": ("www.example.com", ["WWW.EXAMPLE.com"], [], [], True, False, "WWW.EXAMPLE.com"),
    "other name": ("api.example.com", ["www.example.com"], [], [], False, False, None),
    "suffix is no match": ("example.com", ["www.example.com"], [], [], False, False, None),
    "second san": (
        "b.example.com",
        ["a.example.com", "b.example.com"],
        [],
        [],
        True,
        False,
        "b.example.com",
    ),
    # trailing dots
    "dot on name": (
        "www.example.com.",
        ["www.example.com"],
        [],
        [],
        True,
        False,
        "www.example.com",
    ),
    "dot on san": (
        "www.example.com",
        ["www.example.com."],
        [],
        [],
        True,
        False,
        "www.example.com.",
    ),
    "dots on both": (
        "www.example.com.",
        ["www.example.com."],
        [],
        [],
        True,
        False,
        "www.example.com.",
    ),
    "two dots": ("www.example.com..", ["www.example.com"], [], [], False, False, None),
    # wildcards
    "wildcard": ("a.example.com", ["*.example.com"], [], [], True, False, "*.example.com"),
    "wildcard case": ("A.Example.Com", ["*.EXAMPLE.com"], [], [], True, False, "*.EXAMPLE.com"),
    "wildcard not apex": ("example.com", ["*.example.com"], [], [], False, False, None),
    "wildcard one label": ("a.b.example.com", ["*.example.com"], [], [], False, False, None),
    "partial wildcard": ("foo.example.com", ["f*.example.com"], [], [], False, False, None),
    "suffix wildcard": ("foo.example.com", ["*o.example.com"], [], [], False, False, None),
    "double wildcard": ("a.b.example.com", ["*.*.example.com"], [], [], False, False, None),
    "inner wildcard": ("a.b.example.com", ["a.*.example.com"], [], [], False, False, None),
    "tld wildcard": ("example.com", ["*.com"], [], [], False, False, None),
    "bare wildcard": ("example", ["*"], [], [], False, False, None),
    "wildcard vs a-label": (
        "xn--bcher-kva.example.com",
        ["*.example.com"],
        [],
        [],
        False,
        False,
        None,
    ),
    "wildcard vs u-label": ("bücher.example.com", ["*.example.com"], [], [], False, False, None),
    "wildcard vs ip": ("10.0.0.1", ["*.0.0.1"], [], [], False, False, None),
    "wildcard trailing dot": (
        "a.example.com.",
        ["*.example.com."],
        [],
        [],
        True,
        False,
        "*.example.com.",
    ),
    "wildcard idn suffix": (
        "www.bücher.example",
        ["*.xn--bcher-kva.example"],
        [],
        [],
        True,
        False,
        "*.xn--bcher-kva.example",
    ),
    # IDN
    "u-label name, a-label san": (
        "bücher.example",
        ["xn--bcher-kva.example"],
        [],
        [],
        True,
        False,
        "xn--bcher-kva.example",
    ),
    "a-label name, u-label san": (
        "xn--bcher-kva.example",
        ["bücher.example"],
        [],
        [],
        True,
        False,
        "bücher.example",
    ),
    "u-label uppercase": (
        "BÜCHER.example",
        ["xn--bcher-kva.example"],
        [],
        [],
        True,
        False,
        "xn--bcher-kva.example",
    ),
    "fullwidth dot": (
        "bücher\u3002example",
        ["xn--bcher-kva.example"],
        [],
        [],
        True,
        False,
        "xn--bcher-kva.example",
    ),
    "u-label cn": ("bücher.example", [], [], ["Bücher.example"], False, True, "Bücher.example"),
    "idn different": ("bucher.example", ["xn--bcher-kva.example"], [], [], False, False, None),
    # IP literals
    "ipv4 san": ("192.0.2.10", [], ["192.0.2.10"], [], True, False, "192.0.2.10"),
    "ipv4 other": ("192.0.2.11", [], ["192.0.2.10"], [], False, False, None),
    "ipv4 not dns san": ("192.0.2.10", ["192.0.2.10"], [], [], False, False, None),
    "ipv4 cn": ("192.0.2.10", [], [], ["192.0.2.10"], False, True, "192.0.2.10"),
    "ipv6 compressed vs full": (
        "2001:db8::1",
        [],
        ["2001:db8:0:0:0:0:0:1"],
        [],
        True,
        False,
        "2001:db8:0:0:0:0:0:1",
    ),
    "ipv6 uppercase": ("2001:DB8::1", [], ["2001:db8::1"], [], True, False, "2001:db8::1"),
    "ipv6 brackets": ("[2001:db8::1]", [], ["2001:db8::1"], [], True, False, "2001:db8::1"),
    "ipv6 leading zeros": (
        "2001:0db8:0000::0001",
        [],
        ["2001:db8::1"],
        [],
        True,
        False,
        "2001:db8::1",
    ),
    "ipv6 cn": ("2001:db8::1", [], [], ["2001:DB8:0::1"], False, True, "2001:DB8:0::1"),
    "ipv6 other": ("2001:db8::2", [], ["2001:db8::1"], [], False, False, None),
    "ipv4-mapped is not ipv4": ("::ffff:192.0.2.10", [], ["192.0.2.10"], [], False, False, None),
    "dns never matches ip san": ("localhost", [], ["127.0.0.1"], [], False, False, None),
    "ip cn ignored for dns": ("example.com", [], [], ["192.0.2.10"], False, False, None),
    # CN handling
    "cn only": ("www.example.com", [], [], ["www.example.com"], False, True, "www.example.com"),
    "cn wildcard": ("a.example.com", [], [], ["*.example.com"], False, True, "*.example.com"),
    "cn wildcard not apex": ("example.com", [], [], ["*.example.com"], False, False, None),
    "cn trailing dot": (
        "www.example.com",
        [],
        [],
        ["WWW.example.com."],
        False,
        True,
        "WWW.example.com.",
    ),
    "cn description ignored": ("my server", [], [], ["My Server"], False, False, None),
    "cn with spaces ignored": (
        "a.example.com",
        [],
        [],
        ["a.example.com (prod)"],
        False,
        False,
        None,
    ),
    "cn and san both": (
        "www.example.com",
        ["www.example.com"],
        [],
        ["www.example.com"],
        True,
        True,
        "www.example.com",
    ),
    "cn matches, san does not": (
        "www.example.com",
        ["api.example.com"],
        [],
        ["www.example.com"],
        False,
        True,
        "www.example.com",
    ),
    "san preferred in matched_by": (
        "a.example.com",
        ["*.example.com"],
        [],
        ["a.example.com"],
        True,
        True,
        "*.example.com",
    ),
    "second cn": (
        "b.example.com",
        [],
        [],
        ["Some CA", "b.example.com"],
        False,
        True,
        "b.example.com",
    ),
    # nothing presented
    "no identifiers": ("www.example.com", [], [], [], False, False, None),
    "empty name": ("", ["www.example.com"], [], ["www.example.com"], False, False, None),
}


@pytest.mark.parametrize(
    ("name", "dns", "ips", "cns", "san", "cn", "matched_by"), CASES.values(), ids=CASES.keys()
)
def test_match_name(
    name: str,
    dns: list[str],
    ips: list[str],
    cns: list[str],
    san: bool,
    cn: bool,
    matched_by: str | None,
) -> None:
    result = match_name(name, dns, ips, cns)
    assert result == NameMatch(name=name, san=san, cn=cn, matched_by=matched_by)
    assert result.ok is (san or cn)


def test_name_is_reported_as_given() -> None:
    assert match_name("Bücher.Example.", ["xn--bcher-kva.example"], [], []).name == (
        "Bücher.Example."
    )


def test_garbage_never_raises() -> None:
    odd = ["", ".", "..", "*", "*.", "xn--", "xn--zz.example", "a" * 300, "\udcff.example", "[::1"]
    for name in odd:
        for entry in odd:
            match_name(name, [entry], [entry], [entry])
