"""Property-based fuzzing of everything that reads untrusted input: only the engine's own errors
may come out.

Server bytes (records, ServerHello, Certificate, extensions) go through `hello.FlightParser`, the
same code a probe runs, without a socket. Certificates go through `parse_certificates` and
`analyse_chain`, configuration text through `parse_config`, targets through
`ProbeTarget.parse`. The coverage-guided counterpart is `fuzz/` (atheris).
"""

from __future__ import annotations

import datetime as dt
import functools
import string
import struct
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import (
    CLOUDFRONT_DISCOVERY_KEYS,
    DISCOVERY_KEYS,
    METRICS_KEYS,
    ORIGIN_KEYS,
    SCHEDULER_KEYS,
    TOP_LEVEL_KEYS,
    ConfigError,
    parse_config,
)
from exporter.demo.pki import DAY, NOW, DemoPKI, Issued, issue
from exporter.engine.catalogue import Protocol
from exporter.engine.certs import CertificateParseError, parse_certificates
from exporter.engine.chain import ChainAnalysis, ChainStatus, TrustStore, analyse_chain
from exporter.engine.errors import EngineError, NotTLSError, ProtocolViolation, ResolveError
from exporter.engine.hello import (
    MAX_BYTES_PER_CONNECTION,
    FlightParser,
    HelloSpec,
    ReadUntil,
    Refusal,
    ServerHelloInfo,
    parse_answer,
)
from exporter.engine.target import ProbeTarget
from tests.hostile import (
    SERVER_HELLO_DONE,
    alert_record,
    certificate_message,
    handshake,
    odd_certificate,
    record,
    records,
    server_hello,
)

REPO = Path(__file__).resolve().parent.parent
CONFIGS = [*sorted((REPO / "tests" / "configs").rglob("*.yml")), REPO / "config" / "example.yml"]

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- server bytes ------------------------------------------------------------------------------

EXTENSION_TYPES = (0, 10, 11, 13, 16, 23, 35, 41, 43, 45, 51, 0xFF01, 0x3374, 0xFFFF)


@st.composite
def extensions(draw: st.DrawFn) -> bytes:
    """An extension block: known and unknown types, data that may or may not parse."""
    items = draw(
        st.lists(
            st.tuples(
                st.sampled_from(EXTENSION_TYPES) | st.integers(0, 0xFFFF),
                st.binary(max_size=40)
                | st.sampled_from([b"\x03\x03", b"\x03\x04", b"\x00\x1d", b"\x00", b""]),
            ),
            max_size=5,
        )
    )
    block = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in items)
    if draw(st.booleans()):  # a lying length field somewhere
        cut = draw(st.integers(0, len(block)))
        block = block[:cut] + draw(st.binary(max_size=6)) + block[cut:]
    return block


@st.composite
def handshake_messages(draw: st.DrawFn, kind: str | None = None) -> bytes:
    kind = kind or draw(st.sampled_from(["server_hello", "certificate", "done", "ske", "other"]))
    if kind == "server_hello":
        version = draw(st.sampled_from([(3, 0), (3, 1), (3, 2), (3, 3), (3, 4), (2, 0), (9, 9)]))
        suite = draw(st.sampled_from([0x002F, 0xC02F, 0x1301, 0x0001, 0xFFFF]))
        block = draw(st.none() | extensions())
        length = draw(st.none() | st.integers(0, 0xFFFF))
        return server_hello(suite, version, block, length)
    if kind == "certificate":
        ders = draw(st.lists(st.binary(max_size=64), max_size=20))
        message = certificate_message(ders)
        if draw(st.booleans()):
            message = message[: draw(st.integers(0, len(message)))]
        return message
    if kind == "done":
        return SERVER_HELLO_DONE
    if kind == "ske":
        return handshake(12, b"\x03" + draw(st.binary(max_size=12)))
    return handshake(draw(st.integers(0, 255)), draw(st.binary(max_size=50)))


@st.composite
def flights(draw: st.DrawFn) -> bytes:
    """TLS-shaped answers: handshake messages in records of random sizes and types, alerts,
    a bad byte here and there."""
    first = draw(st.sampled_from(["server_hello"] * 4 + [""]))
    body = draw(handshake_messages(first or None))
    body += b"".join(draw(st.lists(handshake_messages(), max_size=4)))
    size = draw(st.integers(1, 2**14 + 2049))
    version = draw(st.sampled_from([(3, 1), (3, 3), (3, 0), (3, 9)]))
    data = records(22, body, size, version) if body else b""
    if draw(st.booleans()):
        alert = alert_record(draw(st.integers(0, 255)), draw(st.integers(0, 3)))
        data = alert * draw(st.integers(1, 6)) + data if draw(st.booleans()) else data + alert
    if draw(st.booleans()):
        data += record(draw(st.sampled_from([20, 21, 22, 23, 24, 0x99])), draw(st.binary()))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        if data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if len(data) > 1 and draw(st.integers(0, 7)) == 0:
        data = data[: draw(st.integers(1, len(data) - 1))]
    return data


def outcome(run: Callable[[], Any]) -> tuple[str, str]:
    """What a parse came to: the answer or the engine error, as comparable text."""
    try:
        answer = run()
    except (NotTLSError, ProtocolViolation) as exc:
        return type(exc).__name__, str(exc)
    assert isinstance(answer, ServerHelloInfo | Refusal), answer
    if isinstance(answer, ServerHelloInfo):
        assert len(answer.certificates) <= 16
        assert len(answer.wire_version) == 2
        assert answer.protocol is None or isinstance(answer.protocol, Protocol)
    return type(answer).__name__, repr(answer)


def fed_in_chunks(data: bytes, read_until: ReadUntil, cuts: list[int]) -> Any:
    flight = FlightParser(read_until)
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        answer = flight.feed(data[start:cut])
        if answer is not None:
            return answer
        start = cut
    return flight.feed_eof()


@FUZZ
@given(
    data=st.binary(max_size=600) | flights(),
    read_until=st.sampled_from(ReadUntil),
    cuts=st.lists(st.integers(0, 600), max_size=8),
)
def test_server_bytes_give_an_answer_or_an_engine_error(
    data: bytes, read_until: ReadUntil, cuts: list[int]
) -> None:
    whole = outcome(lambda: parse_answer(data, read_until))
    # How the bytes are split by the network changes nothing.
    cuts = [c for c in cuts if c <= len(data)]
    assert outcome(lambda: fed_in_chunks(data, read_until, cuts)) == whole


@FUZZ
@given(ders=st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=16))
def test_certificate_message_round_trip(ders: list[bytes]) -> None:
    hello = server_hello(0x002F)
    data = records(22, hello + certificate_message(ders) + SERVER_HELLO_DONE)
    answer = parse_answer(data)
    assert isinstance(answer, ServerHelloInfo)
    assert answer.certificates == tuple(ders)


@pytest.mark.parametrize(
    "size", [MAX_BYTES_PER_CONNECTION - 6, MAX_BYTES_PER_CONNECTION, MAX_BYTES_PER_CONNECTION + 1]
)
def test_bytes_per_connection_limit(size: int) -> None:
    flight = FlightParser()
    # A ServerHello announced at 256 KiB - 1, sent in one-byte records: 6 bytes on the wire each.
    data = records(22, b"\x02\x03\xff\xff" + b"\x00" * (size // 6), size=1)[:size]
    if size > MAX_BYTES_PER_CONNECTION:
        with pytest.raises(ProtocolViolation, match="more than"):
            flight.feed(data)
    else:
        assert flight.feed(data) is None


@settings(FUZZ, max_examples=150)
@given(name=st.text(max_size=300), protocol=st.sampled_from(Protocol))
def test_any_server_name_encodes_or_fails_as_dns(name: str, protocol: Protocol) -> None:
    spec = HelloSpec(protocol, (0x002F,), name, (29,), ((4, 1),))
    try:
        hello = spec.encode()
    except ResolveError:
        return
    assert hello[0] == 22
    assert int.from_bytes(hello[3:5], "big") == len(hello) - 5


# --- certificates ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def certificate_pool() -> tuple[tuple[bytes, ...], TrustStore]:
    """Certificates that are odd in every way a chain can be, and the store trusting the root."""
    pki = DemoPKI.create("Fuzz")
    ec = {"key_kind": "p256"}
    root = issue("Fuzz Root", ca=True, **ec)  # type: ignore[arg-type]
    inter = issue("Fuzz Inter", issuer=root, ca=True, path_length=0, **ec)  # type: ignore[arg-type]
    impostor_root = issue("Fuzz Root", ca=True, **ec)  # type: ignore[arg-type]
    impostor = issue("Fuzz Inter", issuer=impostor_root, ca=True, **ec)  # type: ignore[arg-type]
    certs: list[Issued] = [
        root,
        inter,
        impostor,
        impostor_root,
        issue("leaf.test", issuer=inter, sans=["leaf.test"], **ec),  # type: ignore[arg-type]
        issue("old.test", issuer=inter, not_after=NOW - DAY, **ec),  # type: ignore[arg-type]
        issue(
            "future.test",
            issuer=inter,
            not_before=NOW + 10 * DAY,
            not_after=NOW + 20 * DAY,
            **ec,  # type: ignore[arg-type]
        ),
        issue("self.test", sans=["self.test", "127.0.0.1"], **ec),  # type: ignore[arg-type]
        issue("client.test", issuer=inter, client=True, **ec),  # type: ignore[arg-type]
        issue("deep", issuer=impostor, ca=True, **ec),  # type: ignore[arg-type]
        issue("rsa1024.test", issuer=inter, key_kind="rsa1024"),
        pki.leaf("demo.test"),
        pki.intermediate,
        pki.root,
    ]
    ders = [c.der for c in certs]
    ders.append(odd_certificate(ed25519.Ed25519PrivateKey.generate(), NOW, serial=1))
    return tuple(ders), TrustStore("fuzz", (root.cert, pki.root.cert))


def trust_store(which: str) -> TrustStore:
    if which == "pool":
        return certificate_pool()[1]
    if which == "mozilla":
        return TrustStore.mozilla()
    return TrustStore("empty", ())


def trust_stores() -> st.SearchStrategy[TrustStore]:
    return st.sampled_from(["pool", "mozilla", "empty"]).map(trust_store)


def moments() -> st.SearchStrategy[dt.datetime]:
    return st.datetimes(
        min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1)
    ) | st.just(NOW)


def check_analysis(chain: ChainAnalysis, sent: int) -> None:
    assert chain.status in ChainStatus
    assert chain.status is (chain.problems[0] if chain.problems else ChainStatus.OK)
    assert len(chain.certificates) == sent
    assert chain.detail
    unreachable = {ChainStatus.UNTRUSTED, ChainStatus.MISSING_INTERMEDIATE}
    assert chain.complete == (not unreachable.intersection(chain.problems))


#: copies of one certificate a generated chain may hold: 16 fit in a Certificate message.
MAX_COPIES = 16


def few_copies(picks: list[int]) -> bool:
    return max(Counter(picks).values()) <= MAX_COPIES


def test_duplicate_certificates_are_cheap() -> None:
    """A server sending its self-signed certificate 16 times: the verifier's backtracking path
    search was exponential in such copies (4 took 50 s on the event loop); the engine now
    hands it one issuer per step, as OpenSSL picks them."""
    pool, _ = certificate_pool()
    roots = TrustStore.mozilla()
    # CPU time of this thread: what the search costs, whatever else the machine runs.
    start = time.thread_time()
    chain = analyse_chain([pool[0]] * 16, roots, NOW)
    cpu = time.thread_time() - start
    check_analysis(chain, 16)
    assert cpu < 5.0, f"analysing 16 copies of one certificate took {cpu:.1f}s of CPU"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, 14), min_size=1, max_size=6).filter(few_copies),
    trust=trust_stores(),
    now=moments(),
)
def test_weird_chains_are_analysed_without_raising(
    picks: list[int], trust: TrustStore, now: dt.datetime
) -> None:
    pool, _ = certificate_pool()
    ders = [pool[i % len(pool)] for i in picks]
    chain = analyse_chain(ders, trust, now)
    check_analysis(chain, len(ders))


@st.composite
def mutated(draw: st.DrawFn, der: bytes) -> bytes:
    data = bytearray(der)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF]))
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), trust=trust_stores(), now=moments())
def test_mutated_certificates_raise_only_parse_errors(
    data: st.DataObject, trust: TrustStore, now: dt.datetime
) -> None:
    pool, _ = certificate_pool()
    picks = data.draw(
        st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=4).filter(few_copies)
    )
    ders = [data.draw(mutated(pool[i])) if data.draw(st.booleans()) else pool[i] for i in picks]
    try:
        parse_certificates(ders)
    except CertificateParseError:
        return
    try:
        chain = analyse_chain(ders, trust, now)
    except CertificateParseError:
        return
    check_analysis(chain, len(ders))


@FUZZ
@given(ders=st.lists(st.binary(max_size=200), min_size=1, max_size=3))
def test_random_bytes_are_not_certificates(ders: list[bytes]) -> None:
    try:
        parse_certificates(ders)
    except CertificateParseError:
        return
    check_analysis(analyse_chain(ders, TrustStore("empty", ()), NOW), len(ders))


# --- configuration and targets -----------------------------------------------------------------

YAML_ALPHABET = string.ascii_letters + string.digits + " :-[]{},.#&*!|>'\"\n\t%@`?/\\_~\x00\u00e9"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["10s", "1h30m", "500ms", "0", "-1", "TLSv1.2", "all", "443", "127.0.0.1", "[::1]", "a:1"]
    )
)
#: every key the configuration knows, so that generated documents reach past the top level
KEYS = sorted(
    {
        *TOP_LEVEL_KEYS,
        *ORIGIN_KEYS,
        *SCHEDULER_KEYS,
        *METRICS_KEYS,
        *DISCOVERY_KEYS,
        *CLOUDFRONT_DISCOVERY_KEYS,
    }
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(KEYS) | st.text(max_size=8) | st.integers(), children, max_size=5
        )
    ),
    max_leaves=25,
)


@functools.lru_cache(maxsize=1)
def real_configs() -> tuple[str, ...]:
    return tuple(path.read_text() for path in CONFIGS)


def parse_only_config_errors(text: str, base_dir: Path) -> None:
    try:
        parse_config(text, "fuzz.yml", base_dir)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yml: "), message


@FUZZ
@given(text=st.text(alphabet=YAML_ALPHABET, max_size=300) | st.text(max_size=200))
def test_random_text_is_a_config_or_a_config_error(text: str) -> None:
    parse_only_config_errors(text, REPO / "tests" / "configs")


@FUZZ
@given(document=documents)
def test_random_documents_are_a_config_or_a_config_error(document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    parse_only_config_errors(text, REPO / "tests" / "configs")


@FUZZ
@given(data=st.data())
def test_mutated_real_configs_are_a_config_or_a_config_error(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(real_configs()))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        how = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(st.text(alphabet=YAML_ALPHABET, min_size=1, max_size=6))
        if how == "insert":
            text = text[:at] + piece + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + len(piece) :]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    parse_only_config_errors(text, REPO / "tests" / "configs")


@pytest.mark.parametrize(
    "text",
    [
        # PyYAML's composer recurses once per nesting level
        pytest.param("[" * 1000, id="deep_nesting"),
        # open() refuses a path with a NUL byte with ValueError, not OSError
        pytest.param('origins:\n  - host: a.test\n    ca_file: "r\\0.pem"\n', id="ca_file_nul"),
        # Path.expanduser() raises RuntimeError for an unknown user
        pytest.param(
            "origins:\n  - host: a.test\n    ca_file: ~no-such-user-x/r.pem\n",
            id="ca_file_unknown_user",
        ),
    ],
)
def test_config_inputs_found_by_fuzzing(text: str) -> None:
    """Each once escaped parse_config as another exception; now a ConfigError naming where."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "fuzz.yml", REPO / "tests" / "configs")
    message = str(caught.value)
    assert message.startswith("fuzz.yml: "), message
    assert "ca_file" in message or "nested too deeply" in message, message


@FUZZ
@given(
    text=st.text(max_size=60)
    | st.from_regex(r"\[?[0-9a-fA-F:.]{0,40}\]?(:[0-9]{0,6})?", fullmatch=True)
    | st.from_regex("[a-z.-]{0,20}(:[0-9\u0660-\u0669\u00b2]{0,6})?", fullmatch=True)
)
def test_probe_target_parse_raises_only_value_error(text: str) -> None:
    try:
        target = ProbeTarget.parse(text)
    except ValueError:
        return
    assert 0 < target.port < 65536
    assert target.host


def test_engine_errors_are_the_only_server_errors() -> None:
    """The exceptions the properties above allow are all the engine's own."""
    assert issubclass(NotTLSError, EngineError)
    assert issubclass(ProtocolViolation, EngineError)
    assert isinstance(parse_answer(alert_record()), Refusal)
