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

from tlslite.constants import CipherSuite as TlsliteSuites

from .catalogue import (
    ALL_PROTOCOLS,
    BROAD_GROUPS,
    BROAD_SIGNATURE_SCHEMES,
    CATALOGUE,
    Catalogue,
    CipherSuite,
    Protocol,
)
from .certs import CertificateParseError
from .chain import ChainAnalysis, ChainStatus, TrustStore, analyse_chain
from .confirm import Confirmation, HandshakeConfirmer
from .enumeration import Enumeration, cloudfront_spec, enumerate_protocol, first_offer
from .errors import BudgetExceeded, ConnectError, EngineError
from .hello import HelloAnswer, HelloSpec, ReadUntil, Refusal, ServerHelloInfo, exchange_hello
from .names import NameMatch, match_name
from .net import Endpoint, resolve
from .result import Negotiation, ProbeResult, ProtocolResult, SuiteResult
from .target import ConfirmMode, ProbeOptions, ProbeTarget
from .verdict import FailureReason

_T = TypeVar("_T")

_CHAIN_REASONS = {
    ChainStatus.MISSING_INTERMEDIATE: FailureReason.MISSING_INTERMEDIATE,
    ChainStatus.WRONG_ORDER: FailureReason.WRONG_ORDER,
    ChainStatus.UNTRUSTED: FailureReason.UNTRUSTED,
    ChainStatus.EXPIRED: FailureReason.EXPIRED,
    ChainStatus.NOT_YET_VALID: FailureReason.NOT_YET_VALID,
}


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

    async def probe(self, target: ProbeTarget, options: ProbeOptions | None = None) -> ProbeResult:
        """Never raises for anything the origin does; bad `ca_file` raises ValueError."""
        options = options or ProbeOptions()
        trust = self.trust_store(target.ca_file)
        started_at = time.time()
        start = time.monotonic()
        log = _Log(start)
        state = _ProbeState()
        try:
            async with asyncio.timeout(options.deadline):
                await self._run(target, options, trust, log, state)
        except TimeoutError:
            state.error = f"probe deadline of {options.deadline:g}s exceeded"
            state.stopped_by = FailureReason.TIMEOUT
            log(state.error)
        except EngineError as exc:
            state.error = str(exc)
            state.stopped_by = FailureReason(exc.reason)
            log(f"stopped: {exc}")
        return state.result(target, started_at, time.monotonic() - start, log.lines)

    async def _run(
        self,
        target: ProbeTarget,
        options: ProbeOptions,
        trust: TrustStore,
        log: _Log,
        state: _ProbeState,
    ) -> None:
        catalogue = self.catalogue
        name = target.server_name
        state.address = await resolve(target.host, target.port, target.address, options.timeout)
        endpoint = Endpoint(
            state.address,
            target.port,
            options.timeout,
            options.max_connections,
            options.max_bytes,
        )
        state.endpoint = endpoint
        log(f"resolved {target.host} to {state.address}; SNI {name or '(none)'}")

        policy = tuple(p for p in catalogue.protocols if p in target.protocols)
        highest = policy[-1]
        offer = tuple(s.code for s in catalogue.suites if any(s.valid_in(p) for p in policy))
        spec = cloudfront_spec(catalogue, highest, name, offer)
        hello = await exchange_hello(
            endpoint, replace(spec, read_until=ReadUntil.SERVER_HELLO_DONE)
        )
        log(f"CloudFront hello (up to {highest}, {len(offer)} suites): {_describe(hello)}")

        negotiated = _negotiated(hello, policy, catalogue)
        # CloudFront's hello is, byte for byte but the random, the first offer of the highest
        # protocol's enumeration whenever the policy's suites are that protocol's: its answer
        # serves both, one connection and one round trip fewer.
        reusable = spec == first_offer(catalogue, highest, name)
        protocols = [p for p in ALL_PROTOCOLS if options.tls13 or p.cloudfront]
        # Pipelined: each confirmation starts as soon as its suite is known (CloudFront's pick
        # now, every other one the moment its enumeration step answers) instead of after the
        # last enumeration; all of them share the origin's connection limit.
        pending = _Confirmations(self.confirmer, endpoint, name)
        try:
            if negotiated is not None:
                pending.start(*negotiated)
            enumerations = await _all(
                [
                    _enumerate(
                        endpoint,
                        catalogue,
                        p,
                        name,
                        log,
                        pending.starter(p)
                        if options.confirm is ConfirmMode.ALL and p.cloudfront
                        else None,
                        hello if p is highest and reusable else None,
                    )
                    for p in protocols
                ]
            )
            if isinstance(hello, Refusal) and hello.alert is None and not endpoint.tls_seen:
                # Not one TLS byte on any connection, whatever was offered: something accepts
                # TCP (a port forwarder with nothing behind it, a firewall) but no TLS server
                # answers.
                raise ConnectError(
                    f"{endpoint.display} accepts TCP connections but {hello.describe()} on "
                    "every ClientHello, without sending a single TLS record"
                )

            to_confirm: list[tuple[Protocol, CipherSuite]] = []
            if negotiated is not None:
                to_confirm.append(negotiated)
            if options.confirm is ConfirmMode.ALL:
                to_confirm += [
                    (e.protocol, s)
                    for e in enumerations
                    if isinstance(e, Enumeration) and e.protocol.cloudfront
                    for s in e.picked
                ]
            unique = list(dict.fromkeys(to_confirm))
            outcomes = await pending.results(unique)
        finally:
            await pending.cancel_rest()
        confirmations = []
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
            confirmations.append(outcome)
        confirmed = {(c.protocol, c.suite): c for c in confirmations}
        for c in confirmations:
            verdict = "completed" if c.completed else f"failed: {c.error}"
            log(f"{c.protocol} {c.suite.name}: full handshake ({c.backend}) {verdict}")

        state.protocols = tuple(
            _protocol_result(e, target.protocols, confirmed) for e in enumerations
        )
        state.negotiation = _negotiation(hello, negotiated, confirmed, policy, catalogue)

        certificates = hello.certificates if isinstance(hello, ServerHelloInfo) else ()
        if not certificates:
            certificates = await _fetch_certificates(endpoint, state.protocols, name, log)
        if certificates:
            try:
                state.chain, state.name_match = _analyse(
                    certificates, trust, target.checked_name, log
                )
            except CertificateParseError as exc:
                state.chain_error = str(exc)
                log(f"certificates: {exc}")


@dataclass
class _ProbeState:
    address: str | None = None
    endpoint: Endpoint | None = None
    protocols: tuple[ProtocolResult, ...] = ()
    negotiation: Negotiation | None = None
    chain: ChainAnalysis | None = None
    name_match: NameMatch | None = None
    error: str | None = None
    stopped_by: FailureReason | None = None
    chain_error: str | None = None

    def result(
        self, target: ProbeTarget, started_at: float, duration: float, log: Sequence[str]
    ) -> ProbeResult:
        return ProbeResult(
            target=target,
            started_at=started_at,
            duration_seconds=duration,
            reasons=self.reasons(),
            address=self.address,
            protocols=self.protocols,
            negotiation=self.negotiation,
            chain=self.chain,
            name_match=self.name_match,
            connections=self.endpoint.connections_opened if self.endpoint else 0,
            error=self.error,
            log=tuple(log),
        )

    def reasons(self) -> tuple[FailureReason, ...]:
        if self.stopped_by is not None:
            return (self.stopped_by,)
        reasons: list[FailureReason] = []
        negotiation = self.negotiation
        if negotiation is None or not negotiation.completed:
            in_policy = [p for p in self.protocols if p.in_policy]
            if negotiation is not None and any(
                p.protocol is negotiation.protocol for p in in_policy
            ):
                # The server answered CloudFront's own hello with a protocol in the policy,
                # and still the handshake cannot complete (a suite CloudFront did not offer,
                # or the confirmation failed): whatever the other hellos say.
                reasons.append(FailureReason.HANDSHAKE_FAILED)
            elif not any(p.spoken for p in in_policy):
                reasons.append(FailureReason.NO_COMMON_PROTOCOL)
            elif not any(p.picked for p in in_policy):
                reasons.append(FailureReason.NO_COMMON_CIPHER)
            else:
                reasons.append(FailureReason.HANDSHAKE_FAILED)
        if self.chain_error is not None:
            reasons.append(FailureReason.HANDSHAKE_FAILED)
        if self.name_match is not None and not self.name_match.ok:
            reasons.append(FailureReason.NAME_MISMATCH)
        if self.chain is not None:
            reasons.extend(_CHAIN_REASONS[p] for p in self.chain.problems)
        return tuple(dict.fromkeys(reasons))


async def _enumerate(
    endpoint: Endpoint,
    catalogue: Catalogue,
    protocol: Protocol,
    name: str | None,
    log: _Log,
    on_pick: Callable[[CipherSuite], None] | None = None,
    first_answer: HelloAnswer | None = None,
) -> Enumeration | ProtocolResult:
    """One protocol's enumeration; a server misbehaving on it does not cost the others."""
    try:
        return await enumerate_protocol(
            endpoint, catalogue, protocol, name, log, on_pick, first_answer
        )
    except BudgetExceeded:
        raise
    except EngineError as exc:
        log(f"{protocol}: enumeration stopped: {exc}")
        return ProtocolResult(protocol, False, None, error=str(exc))


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


def _describe(answer: ServerHelloInfo | Refusal) -> str:
    if isinstance(answer, Refusal):
        return answer.describe()
    suite = CATALOGUE.by_code.get(answer.suite)
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


def _negotiation(
    hello: ServerHelloInfo | Refusal,
    negotiated: tuple[Protocol, CipherSuite] | None,
    confirmed: dict[tuple[Protocol, CipherSuite], Confirmation],
    policy: tuple[Protocol, ...],
    catalogue: Catalogue,
) -> Negotiation:
    if isinstance(hello, Refusal):
        return Negotiation(None, None, None, False, f"server declined: {hello.describe()}")
    group = catalogue.group_name(hello.group)
    if negotiated is None:
        if hello.protocol not in policy:
            version = hello.protocol or f"version {hello.wire_version}"
            error = f"server chose {version}, which the origin protocol policy does not enable"
        else:
            error = f"server chose suite 0x{hello.suite:04X}, which CloudFront did not offer"
        return Negotiation(hello.protocol, catalogue.by_code.get(hello.suite), group, False, error)
    protocol, suite = negotiated
    confirmation = confirmed[negotiated]
    return Negotiation(protocol, suite, group, confirmation.completed, confirmation.error)


def _protocol_result(
    enumeration: Enumeration | ProtocolResult,
    policy: tuple[Protocol, ...],
    confirmed: dict[tuple[Protocol, CipherSuite], Confirmation],
) -> ProtocolResult:
    if isinstance(enumeration, ProtocolResult):
        return replace(enumeration, in_policy=enumeration.protocol in policy)
    picked = []
    for suite in enumeration.picked:
        confirmation = confirmed.get((enumeration.protocol, suite))
        if confirmation is None:
            picked.append(SuiteResult(suite, None))
        else:
            picked.append(
                SuiteResult(suite, confirmation.completed, confirmation.backend, confirmation.error)
            )
    return ProtocolResult(
        protocol=enumeration.protocol,
        in_policy=enumeration.protocol in policy,
        spoken=enumeration.spoken,
        picked=tuple(picked),
        refusal=enumeration.refusal,
        outside_suite=None
        if enumeration.broad_suite is None
        else str(
            TlsliteSuites.ietfNames.get(enumeration.broad_suite, f"0x{enumeration.broad_suite:04X}")
        ),
    )


async def _fetch_certificates(
    endpoint: Endpoint,
    protocols: tuple[ProtocolResult, ...],
    server_name: str | None,
    log: _Log,
) -> tuple[bytes, ...]:
    """When CloudFront's hello got no certificate, ask with a broad offer so facts still show."""
    spoken = [p.protocol for p in protocols if p.spoken and p.protocol.cloudfront]
    if not spoken:
        return ()
    spec = HelloSpec(
        spoken[-1],
        CATALOGUE.broad_codes,
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
        log(f"certificates: broad {spoken[-1]} offer failed: {exc}")
        return ()
    if isinstance(answer, ServerHelloInfo) and answer.certificates:
        log(f"certificates fetched with a broad {spoken[-1]} offer")
        return answer.certificates
    return ()


def _analyse(
    certificates: tuple[bytes, ...], trust: TrustStore, name: str, log: _Log
) -> tuple[ChainAnalysis, NameMatch]:
    chain = analyse_chain(certificates, trust, dt.datetime.now(dt.UTC))
    leaf = chain.certificates[0]
    match = match_name(name, leaf.dns_names, leaf.ip_addresses, leaf.common_names)
    log(f"chain: {chain.status}: {chain.detail}")
    log(f"name {name}: {'matches ' + str(match.matched_by) if match.ok else 'not covered'}")
    return chain, match
