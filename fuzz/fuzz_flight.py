#!/usr/bin/env python3
"""Coverage-guided fuzzing of the server's first flight: records, ServerHello, Certificate,
ServerKeyExchange, alerts, extensions (tlslite-ng's decoders included).

Input format (see `encode`): one control byte, then the cut points, then the bytes the server
sends.

* control bit 0: what the probe waits for (0: ServerHelloDone, 1: ServerHello only);
* control bits 1-3: how many cut points follow (0-7), each 2 bytes big-endian, taken modulo
  the flight's length + 1: where the network splits the flight between reads.

The flight goes through `FlightParser.feed`/`feed_eof` in those chunks and whole through
`parse_answer` for both read modes. Only `NotTLSError` and `ProtocolViolation` may come out,
and how the bytes were split must not change the answer.

    python fuzz/fuzz_flight.py fuzz/corpus/flight -max_total_time=600
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import atheris

with atheris.instrument_imports(include=["exporter", "tlslite"]):
    from exporter.engine.errors import NotTLSError, ProtocolViolation
    from exporter.engine.hello import (
        MAX_CERTIFICATES,
        FlightParser,
        ReadUntil,
        Refusal,
        ServerHelloInfo,
        parse_answer,
    )

READ_UNTIL = (ReadUntil.SERVER_HELLO_DONE, ReadUntil.SERVER_HELLO)
MAX_CUTS = 7


def encode(flight: bytes, read_until: ReadUntil = READ_UNTIL[0], cuts: Sequence[int] = ()) -> bytes:
    """The fuzz input that feeds `flight` split at `cuts` (the seed corpus is made with this)."""
    if len(cuts) > MAX_CUTS or any(not 0 <= cut < 2**16 for cut in cuts):
        raise ValueError(f"at most {MAX_CUTS} cuts, each below 65536")
    control = READ_UNTIL.index(read_until) | len(cuts) << 1
    return bytes([control]) + b"".join(cut.to_bytes(2, "big") for cut in cuts) + flight


def decode(data: bytes) -> tuple[bytes, ReadUntil, list[int]]:
    if not data:
        return b"", READ_UNTIL[0], []
    control = data[0]
    count = min((control >> 1) & 7, (len(data) - 1) // 2)
    flight = data[1 + 2 * count :]
    cuts = sorted(
        int.from_bytes(data[1 + 2 * i : 3 + 2 * i], "big") % (len(flight) + 1) for i in range(count)
    )
    return flight, READ_UNTIL[control & 1], cuts


Outcome = tuple[str, str]


def outcome(run: Callable[[], ServerHelloInfo | Refusal]) -> Outcome:
    """The answer or the engine error, as comparable text; any other exception propagates."""
    try:
        answer = run()
    except (NotTLSError, ProtocolViolation) as exc:
        return type(exc).__name__, str(exc)
    if isinstance(answer, ServerHelloInfo):
        if len(answer.certificates) > MAX_CERTIFICATES or len(answer.wire_version) != 2:
            raise AssertionError(f"answer beyond the parser's limits: {answer!r}")
    elif not isinstance(answer, Refusal):
        raise AssertionError(f"not an answer: {answer!r}")
    return type(answer).__name__, repr(answer)


def fed_in_chunks(flight: bytes, read_until: ReadUntil, cuts: Sequence[int]) -> Outcome:
    parser = FlightParser(read_until)

    def run() -> ServerHelloInfo | Refusal:
        start = 0
        for cut in [*cuts, len(flight)]:
            answer = parser.feed(flight[start:cut])
            if answer is not None:
                return answer
            start = cut
        return parser.feed_eof()

    return outcome(run)


def TestOneInput(data: bytes) -> None:
    flight, read_until, cuts = decode(data)
    whole = outcome(lambda: parse_answer(flight, read_until))
    chunked = fed_in_chunks(flight, read_until, cuts)
    if chunked != whole:
        raise AssertionError(f"split at {cuts} the flight gives {chunked}, whole {whole}")
    other = READ_UNTIL[1 - READ_UNTIL.index(read_until)]
    outcome(lambda: parse_answer(flight, other))


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
