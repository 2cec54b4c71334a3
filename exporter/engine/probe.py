"""One probe of one origin: what CloudFront would experience, and why.

Order of work, chosen for round trips: resolve; make CloudFront's own hello (it doubles as the
connectivity check, and brings the certificates); then enumerate every protocol concurrently,
confirming each picked suite with a complete handshake as soon as it is picked (pipelined, all
within the origin's connection limit); analyse the chain and the name. Nothing here knows about
Prometheus or HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .catalogue import (
    ALL_PROTOCOLS,
    BROAD_GROUPS,
    BROAD_SIGNATURE_SCHEMES,
    CATALOGUE,
    Catalogue,
    CipherSuite,
    Protocol,
)
from .chain import TrustStore
from .confirm import Confirmation, HandshakeConfirmer
from .enumeration import cloudfront_spec, enumerate_protocol, first_offer
from .errors import BudgetExceeded, ConnectError, EngineError, ProbeTimeout
from .hello import HelloAnswer, HelloSpec, ReadUntil, Refusal, ServerHelloInfo, exchange_hello
from .judge import Policy, judge
from .net import Endpoint, resolve
from .observations import (
    EnumerationRecord,
    HandshakeRecord,
    HelloAnswerRecord,
    HelloExchange,
    Observations,
    StopRecord,
    TargetRecord,
)
from .result import Judgment
from .s2n import (
    GENERATIONS,
    CloudFrontHandshake,
    TlsLibraryInfo,
    cloudfront_handshake,
    cloudfront_name_check,
    policy_for,
    tls_library,
)
from .target import ConfirmMode, ProbeOptions, ProbeTarget

_T = TypeVar("_T")


class _Log:
    """The probe's own log, with times relative to its start: kept in the result for `debug`."""

    def __init__(self, start: float) -> None:
        self._start = start
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(f"{time.monotonic() - self._start:7.3f}s {message}")


@dataclass
class Engine:
    """Probes origins. Holds only caches (SSL contexts, trust stores); safe to share."""

    catalogue: Catalogue = CATALOGUE
    confirmer: HandshakeConfirmer = field(default_factory=HandshakeConfirmer)
    _trust: dict[tuple[str, float], TrustStore] = field(default_factory=dict)

    def trust_store(self, ca_file: str | None) -> TrustStore:
        """Mozilla's roots, or `ca_file`'s (reloaded when the file changes). Raises ValueError."""
        if ca_file is None:
            return TrustStore.mozilla()
        try:
            mtime = os.stat(ca_file).st_mtime
        except OSError as exc:
            raise ValueError(f"ca_file {ca_file}: {exc.strerror or exc}") from None
        key = (ca_file, mtime)
        if key not in self._trust:
            self._trust = {k: v for k, v in self._trust.items() if k[0] != ca_file}
            self._trust[key] = TrustStore.from_file(ca_file)
        return self._trust[key]

    async def probe(self, target: ProbeTarget, options: ProbeOptions | None = None) -> Judgment:
        """Observe, then judge with the target's trust store and this engine's catalogue.

        Never raises for anything the origin does; bad `ca_file` raises ValueError."""
        trust = self.trust_store(target.ca_file)
        observations = await self.observe(target, options)
        return judge(
            observations, trust, self.catalogue, Policy.of(target), dt.datetime.now(dt.UTC)
        )

    def rejudge(
        self, observations: Observations, target: ProbeTarget, now: dt.datetime
    ) -> Judgment | None:
        """Judge earlier observations under `target`'s trust store and policy, or None when
        they are not about what `target` would probe (another endpoint, name or offer)."""
        if not _same_probe(observations, target, self.catalogue):
            return None
        trust = self.trust_store(target.ca_file)
        return judge(observations, trust, self.catalogue, Policy.of(target), now)

    async def observe(
        self,
        target: ProbeTarget,
        options: ProbeOptions | None = None,
        trust: TrustStore | None = None,
    ) -> Observations:
        """What the origin does; never raises for anything the origin does. `trust` is what
        CloudFront's own handshake (s2n-tls) verifies against: the target's by default."""
        options = options or ProbeOptions()
        trust = trust or self.trust_store(target.ca_file)
        started_at = time.time()
        start = time.monotonic()
        log = _Log(start)
        run = _Run(self, target, options, log, trust)
        stopped: StopRecord | None = None
        try:
            async with asyncio.timeout(options.deadline):
                await run.phases()
        except TimeoutError:
            stopped = StopRecord("timeout", f"probe deadline of {options.deadline:g}s exceeded")
            log(stopped.detail)
        except EngineError as exc:
            stopped = StopRecord(exc.reason, str(exc))
            log(f"stopped: {exc}")
        return run.observations(started_at, time.monotonic() - start, stopped)


@dataclass
class _Run:
    """One probe's phases; each returns its observation records, kept here as they arrive so a
    probe stopped half way still reports what it saw."""

    engine: Engine
    target: ProbeTarget
    options: ProbeOptions
    log: _Log
    trust: TrustStore
    address: str | None = None
    endpoint: Endpoint | None = None
    cloudfront_hello: HelloExchange | None = None
    enumerations: tuple[EnumerationRecord, ...] = ()
    handshakes: tuple[HandshakeRecord, ...] = ()
    certificates: tuple[bytes, ...] = ()
    certificates_from: str | None = None
    cloudfront_handshakes: tuple[CloudFrontHandshake, ...] = ()
    tls_library: TlsLibraryInfo | None = None

    def observations(
        self, started_at: float, duration: float, stopped: StopRecord | None
    ) -> Observations:
        target = self.target
        return Observations(
            target=TargetRecord.of(target),
            started_at=started_at,
            duration_seconds=duration,
            address=self.address,
            cloudfront_hello=self.cloudfront_hello,
            enumerations=self.enumerations,
            handshakes=self.handshakes,
            certificates=self.certificates,
            certificates_from=self.certificates_from,
            cloudfront_handshakes=self.cloudfront_handshakes,
            tls_library=self.tls_library,
            trust_digest=self.trust.digest if self.cloudfront_handshakes else None,
            connections=self.endpoint.connections_opened if self.endpoint else 0,
            bytes_read=self.endpoint.bytes_read if self.endpoint else 0,
            stopped=stopped,
            log=tuple(self.log.lines),
        )

    async def phases(self) -> None:
        endpoint = await self.resolve()
        library: list[asyncio.Future[None]] = []
        try:
            await self.tls_phases(endpoint, library)
            await asyncio.gather(*library)
        finally:
            for task in library:
                task.cancel()
            await asyncio.gather(*library, return_exceptions=True)

    async def cloudfront(self, endpoint: Endpoint) -> None:
        """CloudFront's handshake as its TLS library makes it, under each policy generation."""
        self.tls_library = tls_library()
        if self.tls_library.library == "none":
            self.log(f"no s2n-tls: {self.tls_library.reason}")
            return
        self.cloudfront_handshakes = tuple(
            await asyncio.gather(*(self.s2n(endpoint, g) for g in GENERATIONS))
        )
        for h in self.cloudfront_handshakes:
            outcome = (
                f"completed {h.protocol} {h.cipher} {h.group or ''}".rstrip()
                if h.completed
                else f"failed: {h.error}"
            )
            self.log(f"s2n-tls {h.policy}: {outcome}")

    async def s2n(self, endpoint: Endpoint, generation: str) -> CloudFrontHandshake:
        target = self.target
        policy = policy_for(target.protocols, generation)
        name_check = cloudfront_name_check(target.checked_name)
        try:
            return await cloudfront_handshake(
                endpoint, policy, target.server_name, self.trust.pem, name_check
            )
        except ProbeTimeout as exc:  # one generation's handshake; the probe goes on
            return CloudFrontHandshake(
                "s2n-tls", policy, False, error="timeout", error_detail=str(exc)
            )

    async def tls_phases(self, endpoint: Endpoint, library: list[asyncio.Future[None]]) -> None:
        """Everything after resolving; CloudFront's own handshakes (s2n-tls) are started into
        `library` once its hello shows TLS spoken, beside the enumerations, within the
        origin's connection limit: they cost connections, not round trips."""
        catalogue = self.engine.catalogue
        name = self.target.server_name
        policy = tuple(p for p in catalogue.protocols if p in self.target.protocols)
        spec, hello = await self.hello(endpoint, policy)
        if isinstance(hello, ServerHelloInfo) or hello.alert is not None:
            library.append(asyncio.ensure_future(self.cloudfront(endpoint)))
        negotiated = _negotiated(hello, policy, catalogue)
        # CloudFront's hello is, byte for byte but the random, the first offer of the highest
        # protocol's enumeration whenever the policy's suites are that protocol's: its answer
        # serves both, one connection and one round trip fewer.
        reusable = spec == first_offer(catalogue, policy[-1], name)
        # Pipelined: each confirmation starts as soon as its suite is known (CloudFront's pick
        # now, every other one the moment its enumeration step answers) instead of after the
        # last enumeration; all of them share the origin's connection limit.
        pending = _Confirmations(self.engine.confirmer, endpoint, name)
        try:
            if negotiated is not None:
                pending.start(*negotiated)
            self.enumerations = await self.enumerate(
                endpoint, pending, policy[-1], hello if reusable else None
            )
            if not library and endpoint.tls_seen:  # its hello was refused, another was not
                library.append(asyncio.ensure_future(self.cloudfront(endpoint)))
            if isinstance(hello, Refusal) and hello.alert is None and not endpoint.tls_seen:
                # Not one TLS byte on any connection, whatever was offered: something accepts
                # TCP (a port forwarder with nothing behind it, a firewall) but no TLS server
                # answers.
                raise ConnectError(
                    f"{endpoint.display} accepts TCP connections but {hello.describe()} on "
                    "every ClientHello, without sending a single TLS record"
                )
            self.handshakes = await self.confirm(pending, negotiated)
        finally:
            await pending.cancel_rest()
        if isinstance(hello, ServerHelloInfo) and hello.certificates:
            self.certificates, self.certificates_from = hello.certificates, "cloudfront_hello"
        else:
            self.certificates = await _fetch_certificates(
                endpoint, catalogue, self.enumerations, name, self.log
            )
            self.certificates_from = "broad_offer" if self.certificates else None

    async def resolve(self) -> Endpoint:
        target, options = self.target, self.options
        self.address = await resolve(target.host, target.port, target.address, options.timeout)
        self.endpoint = Endpoint(
            self.address,
            target.port,
            options.timeout,
            options.max_connections,
            options.max_bytes,
        )
        self.log(f"resolved {target.host} to {self.address}; SNI {target.server_name or '(none)'}")
        return self.endpoint

    async def hello(
        self, endpoint: Endpoint, policy: tuple[Protocol, ...]
    ) -> tuple[HelloSpec, HelloAnswer]:
        """CloudFront's own ClientHello: its suites and order, up to the policy's highest."""
        catalogue = self.engine.catalogue
        highest = policy[-1]
        offer = tuple(s.code for s in catalogue.suites if any(s.valid_in(p) for p in policy))
        spec = cloudfront_spec(catalogue, highest, self.target.server_name, offer)
        hello = await exchange_hello(
            endpoint, replace(spec, read_until=ReadUntil.SERVER_HELLO_DONE)
        )
        self.cloudfront_hello = HelloExchange(
            str(highest), offer, HelloAnswerRecord.of(hello), cloudfront_hello=True
        )
        described = _describe(hello, catalogue)
        self.log(f"CloudFront hello (up to {highest}, {len(offer)} suites): {described}")
        return spec, hello

    async def enumerate(
        self,
        endpoint: Endpoint,
        pending: _Confirmations,
        highest: Protocol,
        reusable_hello: HelloAnswer | None,
    ) -> tuple[EnumerationRecord, ...]:
        options = self.options
        protocols = [p for p in ALL_PROTOCOLS if options.tls13 or p.cloudfront]
        return tuple(
            await _all(
                [
                    _enumerate(
                        endpoint,
                        self.engine.catalogue,
                        p,
                        self.target.server_name,
                        self.log,
                        pending.starter(p)
                        if options.confirm is ConfirmMode.ALL and p.cloudfront
                        else None,
                        reusable_hello if p is highest else None,
                    )
                    for p in protocols
                ]
            )
        )

    async def confirm(
        self, pending: _Confirmations, negotiated: tuple[Protocol, CipherSuite] | None
    ) -> tuple[HandshakeRecord, ...]:
        """Await every complete handshake: CloudFront's pick, and with `confirm: all` every
        suite an enumeration picked."""
        catalogue = self.engine.catalogue
        to_confirm: list[tuple[Protocol, CipherSuite]] = []
        if negotiated is not None:
            to_confirm.append(negotiated)
        if self.options.confirm is ConfirmMode.ALL:
            to_confirm += [
                (Protocol(e.protocol), suite)
                for e in self.enumerations
                if Protocol(e.protocol).cloudfront
                if e.error is None
                for suite in _picked(e, catalogue)
            ]
        unique = list(dict.fromkeys(to_confirm))
        outcomes = await pending.results(unique)
        records = []
        for (protocol, suite), outcome in zip(unique, outcomes, strict=True):
            if (
                isinstance(outcome, EngineError)
                and not isinstance(outcome, BudgetExceeded)
                and (protocol, suite) != negotiated
            ):
                # A matrix entry that times out is not accepted; the probe goes on.
                outcome = Confirmation(protocol, suite, False, "-", str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            verdict = "completed" if outcome.completed else f"failed: {outcome.error}"
            self.log(f"{protocol} {suite.name}: full handshake ({outcome.backend}) {verdict}")
            records.append(
                HandshakeRecord(
                    str(protocol), suite.name, outcome.completed, outcome.backend, outcome.error
                )
            )
        return tuple(records)


def _same_probe(observations: Observations, target: ProbeTarget, catalogue: Catalogue) -> bool:
    """Would probing `target` send what these observations answer? Same endpoint, same name,
    and CloudFront's hello under the new policy is the one that was sent."""
    seen = observations.target
    if (seen.host, seen.port, seen.sni, seen.address) != (
        target.host,
        target.port,
        target.sni,
        target.address,
    ):
        return False
    hello = observations.cloudfront_hello
    if hello is None:
        return True  # stopped before any hello: nothing depends on the policy
    policy = tuple(p for p in catalogue.protocols if p in target.protocols)
    offer = tuple(s.code for s in catalogue.suites if any(s.valid_in(p) for p in policy))
    return (hello.protocol, hello.offered) == (str(policy[-1]), offer)


def _picked(record: EnumerationRecord, catalogue: Catalogue) -> list[CipherSuite]:
    """The catalogue suites the server picked under the record's own protocol, in order."""
    return [
        catalogue.by_code[e.answer.suite]
        for e in record.exchanges
        if not e.broad
        and e.answer.is_server_hello
        and e.answer.protocol == record.protocol
        and e.answer.suite in catalogue.by_code
    ]


async def _enumerate(
    endpoint: Endpoint,
    catalogue: Catalogue,
    protocol: Protocol,
    name: str | None,
    log: _Log,
    on_pick: Callable[[CipherSuite], None] | None = None,
    first_answer: HelloAnswer | None = None,
) -> EnumerationRecord:
    """One protocol's enumeration; a server misbehaving on it does not cost the others."""
    exchanges: list[HelloExchange] = []
    try:
        return await enumerate_protocol(
            endpoint, catalogue, protocol, name, log, on_pick, first_answer, exchanges
        )
    except BudgetExceeded:
        raise
    except EngineError as exc:
        log(f"{protocol}: enumeration stopped: {exc}")
        return EnumerationRecord(str(protocol), tuple(exchanges), error=str(exc))


class _Confirmations:
    """Complete handshakes started as soon as their suite is known, awaited later in order."""

    def __init__(self, confirmer: HandshakeConfirmer, endpoint: Endpoint, name: str | None):
        self._confirmer = confirmer
        self._endpoint = endpoint
        self._name = name
        self._tasks: dict[tuple[Protocol, CipherSuite], asyncio.Task[Confirmation]] = {}

    def start(self, protocol: Protocol, suite: CipherSuite) -> None:
        key = (protocol, suite)
        if key not in self._tasks:
            self._tasks[key] = asyncio.ensure_future(
                self._confirmer.confirm(self._endpoint, self._name, protocol, suite)
            )

    def starter(self, protocol: Protocol) -> Callable[[CipherSuite], None]:
        return lambda suite: self.start(protocol, suite)

    async def results(
        self, keys: Sequence[tuple[Protocol, CipherSuite]]
    ) -> list[Confirmation | BaseException]:
        """The outcome of each of `keys` (started now if it was not), exceptions included."""
        for key in keys:
            self.start(*key)
        return await asyncio.gather(*(self._tasks[key] for key in keys), return_exceptions=True)

    async def cancel_rest(self) -> None:
        """Stop what is still running: an enumeration that failed after a pick, a deadline."""
        running = [task for task in self._tasks.values() if not task.done()]
        for task in running:
            task.cancel()
        # Retrieve every outcome, so no task exception is reported as never retrieved.
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


async def _all(awaitables: Sequence[Awaitable[_T]]) -> list[_T]:
    """`asyncio.gather`, except that the first exception cancels (and awaits) the others.

    A bug in one enumeration must not leave its siblings running, holding connections to the
    origin after the probe has returned.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _describe(answer: ServerHelloInfo | Refusal, catalogue: Catalogue) -> str:
    if isinstance(answer, Refusal):
        return answer.describe()
    suite = catalogue.by_code.get(answer.suite)
    suite_name = suite.name if suite else f"0x{answer.suite:04X}"
    version = answer.protocol or f"version {answer.wire_version}"
    return f"server picked {version} {suite_name}, {len(answer.certificates)} certificates"


def _negotiated(
    hello: ServerHelloInfo | Refusal, policy: tuple[Protocol, ...], catalogue: Catalogue
) -> tuple[Protocol, CipherSuite] | None:
    """The (protocol, suite) CloudFront would go on with, if its hello got an acceptable answer."""
    if not isinstance(hello, ServerHelloInfo) or hello.protocol not in policy:
        return None
    suite = catalogue.by_code.get(hello.suite)
    if suite is None or not suite.valid_in(hello.protocol):
        return None
    return hello.protocol, suite


async def _fetch_certificates(
    endpoint: Endpoint,
    catalogue: Catalogue,
    enumerations: tuple[EnumerationRecord, ...],
    server_name: str | None,
    log: _Log,
) -> tuple[bytes, ...]:
    """When CloudFront's hello got no certificate, ask with a broad offer so facts still show."""
    answered = [
        Protocol(e.protocol)
        for e in enumerations
        if e.error is None and Protocol(e.protocol).cloudfront and e.server_hello_in_protocol
    ]
    if not answered:
        return ()
    protocol = answered[-1]
    spec = HelloSpec(
        protocol,
        catalogue.broad_codes,
        server_name,
        BROAD_GROUPS,
        BROAD_SIGNATURE_SCHEMES,
        ReadUntil.SERVER_HELLO_DONE,
    )
    try:
        answer = await exchange_hello(endpoint, spec)
    except BudgetExceeded:
        raise
    except EngineError as exc:  # facts only: the verdict is already known
        log(f"certificates: broad {protocol} offer failed: {exc}")
        return ()
    if isinstance(answer, ServerHelloInfo) and answer.certificates:
        log(f"certificates fetched with a broad {protocol} offer")
        return answer.certificates
    return ()
