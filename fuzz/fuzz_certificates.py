#!/usr/bin/env python3
"""Coverage-guided fuzzing of what a server's certificates go through: `parse_certificates`
(cryptography's DER decoder) and `analyse_chain` (path building, names, dates, key facts).

Input format (see `encode`): one control byte, then DER certificates back to back. The input is
split into certificates by their outer DER length (the rest after a bad header is one more
"certificate"), at most 16 as in a Certificate message.

* control bits 0-1: the trust store: 0 empty, 1 Mozilla's (certifi), 2 the last certificate
  is the only root and is not sent, 3 the last certificate is the only root and is sent too;
* control bits 2-3: the moment of the analysis, one of `MOMENTS` (fixed, so a crash replays).

Only `CertificateParseError` may come out.

    python fuzz/fuzz_certificates.py fuzz/corpus/certificates -max_total_time=600
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

import atheris

with atheris.instrument_imports(include=["exporter"]):
    from exporter.engine.certs import CertificateParseError, parse_certificates
    from exporter.engine.chain import ChainAnalysis, ChainStatus, TrustStore, analyse_chain
    from exporter.engine.hello import MAX_CERTIFICATES

#: the seed certificates are valid from 30 days before to 365 days after the first moment
SEED_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MOMENTS = (
    SEED_NOW,
    SEED_NOW + dt.timedelta(days=400),  # after every seed expired
    SEED_NOW - dt.timedelta(days=60),  # before any seed was valid
    dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC),  # UTCTime / GeneralizedTime edge
)
EMPTY, MOZILLA, ROOT_NOT_SENT, ROOT_SENT = range(4)


def encode(ders: Sequence[bytes], trust: int = EMPTY, moment: int = 0) -> bytes:
    """The fuzz input for `ders` (the seed corpus is made with this)."""
    if not (0 <= trust < 4 and 0 <= moment < len(MOMENTS)):
        raise ValueError("trust is 0-3, moment an index into MOMENTS")
    return bytes([trust | moment << 2]) + b"".join(ders)


def split_der(blob: bytes) -> list[bytes]:
    """Certificates by their outer DER length; a bad or overlong header takes the rest."""
    ders: list[bytes] = []
    start = 0
    while start < len(blob) and len(ders) < MAX_CERTIFICATES:
        end = _tlv_end(blob, start)
        if end is None or end > len(blob) or len(ders) == MAX_CERTIFICATES - 1:
            end = len(blob)
        ders.append(blob[start:end])
        start = end
    return ders


def _tlv_end(blob: bytes, start: int) -> int | None:
    if start + 2 > len(blob):
        return None
    first = blob[start + 1]
    if first < 0x80:
        return start + 2 + first
    count = first & 0x7F
    if not 1 <= count <= 4 or start + 2 + count > len(blob):
        return None
    length = int.from_bytes(blob[start + 2 : start + 2 + count], "big")
    return start + 2 + count + length


def check(chain: ChainAnalysis, sent: int) -> None:
    if chain.status not in ChainStatus or len(chain.certificates) != sent or not chain.detail:
        raise AssertionError(f"inconsistent analysis: {chain!r}")
    if chain.status is not (chain.problems[0] if chain.problems else ChainStatus.OK):
        raise AssertionError(f"status is not the first problem: {chain!r}")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    trust_kind, moment = data[0] & 3, MOMENTS[(data[0] >> 2) & 3]
    ders = split_der(data[1:])
    try:
        certs = parse_certificates(ders)
        trust = TrustStore("empty", ())
        if trust_kind == MOZILLA:
            trust = TrustStore.mozilla()
        elif trust_kind in (ROOT_NOT_SENT, ROOT_SENT) and certs:
            trust = TrustStore("fuzz", (certs[-1],))
            if trust_kind == ROOT_NOT_SENT and len(ders) > 1:
                ders = ders[:-1]
        chain = analyse_chain(ders, trust, moment)
    except CertificateParseError:
        return
    check(chain, len(ders))


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
