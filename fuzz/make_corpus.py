#!/usr/bin/env python3
"""Write the seed corpus of every harness under fuzz/corpus/, deterministically.

    python fuzz/make_corpus.py            # rewrite fuzz/corpus/{flight,certificates,config}
    python fuzz/make_corpus.py OUT_DIR    # somewhere else (the tests compare the two)

Flights come from the hostile-origin builders in tests/hostile.py; certificates from the demo PKI
(exporter/demo/pki.py), made reproducible here: RSA keys from seeded primes (PKCS#1 v1.5
signatures are deterministic), a fixed clock, counted serial numbers, and a fixed ServerHello
random. Configurations are tests/configs/**.yml and config/example.yml as they are. Files the
fuzzer finds later (and crash reproducers, see README.md) live next to the seeds; only the
`seed-*` files are rewritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parent
sys.path[:0] = [str(REPO), str(FUZZ_DIR)]

import fuzz_certificates  # noqa: E402
import fuzz_flight  # noqa: E402

from exporter.demo import pki  # noqa: E402
from exporter.engine.hello import ReadUntil  # noqa: E402
from tests import hostile  # noqa: E402

SEED_NOW = fuzz_certificates.SEED_NOW
DAY = dt.timedelta(days=1)
_MILLER_RABIN_ROUNDS = 24
_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


# --- a reproducible demo PKI ------------------------------------------------------------------


def _probable_prime(bits: int, rng: random.Random) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if any(candidate % p == 0 for p in _SMALL_PRIMES):
            continue
        d, r = candidate - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for _ in range(_MILLER_RABIN_ROUNDS):
            x = pow(rng.randrange(2, candidate - 1), d, candidate)
            if x in (1, candidate - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, candidate)
                if x == candidate - 1:
                    break
            else:
                break
        else:
            return candidate


def _rsa_key(bits: int, rng: random.Random) -> rsa.RSAPrivateKey:
    e = 65537
    while True:
        p, q = _probable_prime(bits // 2, rng), _probable_prime(bits // 2, rng)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


@contextlib.contextmanager
def reproducible_pki() -> Iterator[None]:
    """Patch the demo PKI's key, clock and serial sources for the duration of the generator."""
    rng = random.Random(20260101)
    serials = itertools.count(0x1000)
    saved = (pki.new_key, pki.NOW, x509.random_serial_number)

    def new_key(kind: str = "rsa2048") -> pki.PrivateKey:
        if not kind.startswith("rsa"):
            raise ValueError(f"{kind}: ECDSA signatures are randomised; use RSA or Ed25519")
        return _rsa_key(int(kind[3:]), rng)

    pki.new_key = new_key
    pki.NOW = SEED_NOW
    x509.random_serial_number = lambda: next(serials)
    try:
        yield
    finally:
        pki.new_key, pki.NOW, x509.random_serial_number = saved


# --- certificates -----------------------------------------------------------------------------


def _mozilla_root(common_name: str) -> bytes:
    from exporter.engine.chain import TrustStore

    for root in TrustStore.mozilla().roots:
        names = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names and names[0].value == common_name:
            return root.public_bytes(serialization.Encoding.DER)
    raise LookupError(f"{common_name!r} is not in certifi's bundle")


def certificate_chains() -> dict[str, list[bytes]]:
    """Named chains, leaf first, as servers send them (and get them wrong)."""
    chains: dict[str, list[bytes]] = {}
    with reproducible_pki():
        demo = pki.DemoPKI.create("Fuzz")
        leaf = demo.leaf("origin.fuzz.test")
        root, inter = demo.root.der, demo.intermediate.der
        chains["good"] = [leaf.der, inter, root]
        chains["reversed"] = [leaf.der, root, inter]
        chains["untrusted"] = [
            pki.issue("x.fuzz.test", issuer=demo.other_intermediate, sans=["x.fuzz.test"]).der,
            demo.other_intermediate.der,
            demo.other_root.der,
        ]
        chains["expired"] = [
            demo.leaf("old.fuzz.test", not_after=SEED_NOW - DAY).der,
            inter,
            root,
        ]
        chains["self_signed_ip"] = [pki.issue("self", sans=["self.fuzz.test", "127.0.0.1"]).der]
        chains["client_leaf"] = [demo.leaf("client.fuzz.test", client=True).der, inter, root]
        chains["rsa1024"] = [
            demo.leaf("weak.fuzz.test", key_kind="rsa1024").der,
            inter,
            root,
        ]
        deep = pki.issue("Too Deep CA", issuer=demo.intermediate, ca=True)
        chains["path_length"] = [
            pki.issue("deep.fuzz.test", issuer=deep, sans=["deep.fuzz.test"]).der,
            deep.der,
            inter,
            root,
        ]
        chains["odd_ed25519"] = [
            hostile.odd_certificate(
                ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))), SEED_NOW, serial=7
            ),
            root,
        ]
    chains["mozilla_root"] = [_mozilla_root("ISRG Root X1")]
    chains["leaf_only"] = [*chains["good"][:1], chains["good"][2]]
    chains["ec_key_cert"] = [_ec_certificate()]
    return chains


def _ec_certificate() -> bytes:
    """A P-256 key signed with Ed25519 (deterministic), as a key the parser must describe."""
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    key = ec.derive_private_key(0x5EED, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec.fuzz.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(8)
        .not_valid_before(SEED_NOW - DAY)
        .not_valid_after(SEED_NOW + 90 * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("ec.fuzz.test")]), False)
        .sign(signer, None)
    )
    return cert.public_bytes(serialization.Encoding.DER)


def certificate_seeds(chains: dict[str, list[bytes]]) -> dict[str, bytes]:
    enc = fuzz_certificates.encode
    ft = fuzz_certificates
    seeds = {
        "good_root_not_sent": enc(chains["good"], ft.ROOT_NOT_SENT),
        "good_root_sent": enc(chains["good"], ft.ROOT_SENT),
        "good_expired_later": enc(chains["good"], ft.ROOT_NOT_SENT, moment=1),
        "good_not_yet_valid": enc(chains["good"], ft.ROOT_NOT_SENT, moment=2),
        "good_empty_store": enc(chains["good"], ft.EMPTY),
        "good_mozilla": enc(chains["good"], ft.MOZILLA, moment=3),
        "missing_intermediate": enc(chains["leaf_only"], ft.ROOT_NOT_SENT),
        "reversed": enc(chains["reversed"], ft.ROOT_SENT),
        "untrusted": enc(chains["untrusted"], ft.MOZILLA),
        "expired": enc(chains["expired"], ft.ROOT_NOT_SENT),
        "self_signed_ip": enc(chains["self_signed_ip"], ft.ROOT_SENT),
        "client_leaf": enc(chains["client_leaf"], ft.ROOT_NOT_SENT),
        "rsa1024": enc(chains["rsa1024"], ft.ROOT_NOT_SENT),
        "path_length": enc(chains["path_length"], ft.ROOT_NOT_SENT),
        "odd_ed25519": enc(chains["odd_ed25519"], ft.ROOT_NOT_SENT),
        "mozilla_root": enc(chains["mozilla_root"], ft.MOZILLA),
        "ec_key": enc(chains["ec_key_cert"], ft.ROOT_SENT),
        "truncated": enc([chains["good"][0][:300]], ft.EMPTY),
        "empty": enc([], ft.EMPTY),
    }
    return seeds


# --- flights ----------------------------------------------------------------------------------

HELLO_RANDOM = bytes(range(32))
TLS13_HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def server_hello(
    suite: int,
    version: tuple[int, int] = (3, 3),
    extensions: bytes | None = hostile.RENEGOTIATION_INFO,
    extensions_length: int | None = None,
) -> bytes:
    """hostile.server_hello with a fixed random instead of os.urandom."""
    message = hostile.server_hello(suite, version, extensions, extensions_length)
    return message[:6] + HELLO_RANDOM + message[38:]


def tls13_hello(random_: bytes = HELLO_RANDOM, group: int = 29) -> bytes:
    key_share = (group.to_bytes(2, "big") + (32).to_bytes(2, "big") + bytes(32)) if group else b""
    extensions = b"\x00\x2b\x00\x02\x03\x04"  # supported_versions: TLS 1.3
    if random_ == TLS13_HRR_RANDOM:
        extensions += b"\x00\x33\x00\x02" + group.to_bytes(2, "big")
    else:
        extensions += b"\x00\x33" + len(key_share).to_bytes(2, "big") + key_share
    message = hostile.server_hello(0x1301, (3, 3), extensions)
    return message[:6] + random_ + message[38:]


def flight_seeds(chains: dict[str, list[bytes]]) -> dict[str, bytes]:
    enc = fuzz_flight.encode
    hello_only = ReadUntil.SERVER_HELLO
    rec, recs, hs = hostile.record, hostile.records, hostile.handshake
    done = hostile.SERVER_HELLO_DONE
    cert_msg = hostile.certificate_message(chains["good"][:2])
    ske = hs(12, b"\x03\x00\x1d\x20" + bytes(32) + b"\x04\x01\x00\x02\xab\xcd")
    tls12 = server_hello(0xC02F) + cert_msg + ske + done
    raw = {
        "tls12_rsa": recs(22, server_hello(0x002F) + cert_msg + done),
        "tls12_ecdhe": recs(22, tls12),
        "tls10": recs(22, server_hello(0x002F, (3, 1)) + cert_msg + done, version=(3, 1)),
        "ssl3_no_extensions": recs(
            22, server_hello(0x000A, (3, 0), extensions=None) + cert_msg + done, version=(3, 0)
        ),
        "tls13_done_mode": recs(22, tls13_hello()),
        "tls13_hrr": recs(22, tls13_hello(TLS13_HRR_RANDOM)),
        "alert_fatal": hostile.alert_record(),
        "alert_warnings_then_flight": hostile.alert_record(112, 1) * 2 + recs(22, tls12),
        "alert_close_notify": hostile.alert_record(0, 1),
        "plain_http": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        "ssh_banner": b"SSH-2.0-OpenSSH_9.6\r\n",
        "bad_record_version": rec(22, server_hello(0x002F), (4, 1)),
        "change_cipher_spec_first": rec(20, b"\x01") + recs(22, tls12),
        "application_data_first": rec(23, b"\x00" * 16),
        "empty_records": rec(22, b"") * 3 + recs(22, tls12),
        "oversized_record": rec(22, b"\x02" + b"\x00" * (2**14 + 2049)),
        "huge_certificate": recs(22, server_hello(0x002F))
        + rec(22, hs(11, b"")[:1] + (2**24 - 1).to_bytes(3, "big") + b"\x00" * 64),
        "hundred_certificates": recs(
            22, server_hello(0x002F) + hostile.certificate_message([b"\x30\x00"] * 100) + done
        ),
        "duplicate_extensions": recs(
            22, server_hello(0x002F, extensions=hostile.RENEGOTIATION_INFO * 2) + cert_msg + done
        ),
        "garbage_extensions": recs(
            22, server_hello(0x002F, extensions=b"\xff\x01\x00\x09\x01", extensions_length=40)
        ),
        "unknown_extension": recs(
            22, server_hello(0x002F, extensions=b"\x7a\x7a\x00\x03abc\x00\x17\x00\x00") + done
        ),
        "certificate_before_hello": recs(22, cert_msg + server_hello(0x002F) + done),
        "truncated_certificate": recs(22, server_hello(0x002F) + cert_msg[:200]),
        "truncated_header": recs(22, tls12)[:3],
    }
    seeds = {name: enc(data) for name, data in raw.items()}
    seeds.update(
        {
            "tls12_hello_only": enc(recs(22, server_hello(0xC02F)), hello_only),
            "tls12_split": enc(recs(22, tls12), cuts=[3, 5, 60, 61, 700, 1500, 1501]),
            "tls12_small_records": enc(recs(22, tls12, size=97), cuts=[150, 2000]),
            "tls13": enc(recs(22, tls13_hello()), hello_only),
            "tls13_split": enc(recs(22, tls13_hello()), hello_only, cuts=[1, 9, 50]),
        }
    )
    return seeds


def config_seeds() -> dict[str, bytes]:
    paths = [*sorted((REPO / "tests" / "configs").rglob("*.yml")), REPO / "config" / "example.yml"]
    seeds = {f"{p.parent.name}_{p.stem}": p.read_bytes() for p in paths}
    seeds["ca_file_readable"] = b"defaults:\n  ca_file: README.md\norigins:\n  - host: a.test\n"
    return seeds


def write(out: Path) -> dict[str, int]:
    chains = certificate_chains()
    flights = flight_seeds(chains)
    corpora = {
        "flight": flights,
        "certificates": certificate_seeds(chains),
        "config": config_seeds(),
    }
    counts = {}
    for harness, seeds in corpora.items():
        directory = out / harness
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (directory / f"seed-{name}").write_bytes(data)
        counts[harness] = len(seeds)
    return counts


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else FUZZ_DIR / "corpus"
    for harness, count in write(out).items():
        print(f"{out / harness}: {count} seeds")


if __name__ == "__main__":
    main()
