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
import ssl
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar, cast

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
from .dns import DnsSettings, resolve_addresses
from .enumeration import cloudfront_spec, enumerate_protocol, first_offer
from .errors import BudgetExceeded, ConnectError, EngineError, ProbeTimeout
from .hello import HelloAnswer, HelloSpec, ReadUntil, Refusal, ServerHelloInfo, exchange_hello
from .judge import Policy, judge
from .net import Endpoint
from .observations import (
    AddressRecord,
    EnumerationRecord,
    HandshakeRecord,
    HelloAnswerRecord,
    HelloExchange,
    Observations,
    ResolutionRecord,
    StopRecord,
    TargetRecord,
)
from .request import HttpExchange, forward_request, request_over
from .result import Judgment
from .s2n import (
    GENERATIONS,
    AfterHandshake,
    CloudFrontHandshake,
    S2nStream,
    S2nUnavailable,
    TlsLibraryInfo,
    cloudfront_handshake,
    cloudfront_name_check,
    policy_for,
    tls_library,
)
from .target import CloudFrontPolicy, ConfirmMode, ProbeOptions, ProbeTarget

_T = TypeVar("_T")


class _Log:
    """The probe's own log, with times relative to its start: kept in the result for `debug`.

    `beside` takes the lines of what runs beside the enumerations once CloudFront's hello has
    its ServerHello (s2n-tls, the request): `lines(with_beside=False)` leaves them out when
    that hello then failed, as their observations are."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._lines: list[tuple[float, str]] = []
        self._beside: list[tuple[float, str]] = []

    def __call__(self, message: str) -> None:
        self._lines.append((time.monotonic() - self._start, message))

    def beside(self, message: str) -> None:
        self._beside.append((time.monotonic() - self._start, message))

    def lines(self, with_beside: bool = True) -> tuple[str, ...]:
        kept = sorted([*self._lines, *(self._beside if with_beside else [])], key=lambda e: e[0])
        return tuple(f"{at:7.3f}s {message}" for at, message in kept)


@dataclass
class Engine:
    """Probes origins. Holds only caches (SSL contexts, trust stores); safe to share."""

    catalogue: Catalogue = CATALOGUE
    confirmer: HandshakeConfirmer = field(default_factory=HandshakeConfirmer)
    _trust: dict[tuple[str, float], TrustStore] = field(default_factory=dict)
    _request_contexts: dict[tuple[str, tuple[bytes, bytes] | None], ssl.SSLContext] = field(
        default_factory=dict
    )

    def request_context(
        self, target: ProbeTarget, client: tuple[bytes, bytes] | None
    ) -> ssl.SSLContext:
        """The context of the forwarded request, built once per policy and client certificate."""
        key = (str(target.cloudfront_policy), client)
        if key not in self._request_contexts:
            self._request_contexts[key] = _request_context(self.catalogue, target, client)
        return self._request_contexts[key]

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
        observations = await self.observe(target, options, trust)
        policy = Policy.of(target, options)
        return judge(observations, trust, self.catalogue, policy, dt.datetime.now(dt.UTC))

    def rejudge(
        self,
        observations: Observations,
        target: ProbeTarget,
        now: dt.datetime,
        options: ProbeOptions | None = None,
    ) -> Judgment | None:
        """Judge earlier observations under `target`'s trust store and policy, or None when
        they are not about what `target` would probe (another endpoint, name or offer)."""
        if not _same_probe(observations, target, self.catalogue):
            return None
        trust = self.trust_store(target.ca_file)
        return judge(observations, trust, self.catalogue, Policy.of(target, options), now)

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
        run = _Run(self, target, options, log, trust, client_certificate=_client_pems(target))
        others: list[_Other] = []
        stopped: StopRecord | None = None
        try:
            async with asyncio.timeout(options.deadline):
                others = await self._every_address(run)
        except TimeoutError:
            stopped = StopRecord("timeout", f"probe deadline of {options.deadline:g}s exceeded")
            log(stopped.detail)
        except EngineError as exc:
            stopped = StopRecord(exc.reason, str(exc))
            log(f"stopped: {exc}")
        records = tuple(o.record() for o in others)
        return run.observations(started_at, time.monotonic() - start, stopped, records)

    async def _every_address(self, run: _Run) -> list[_Other]:
        """Resolve as CloudFront does, probe the first address in full and CloudFront's
        handshake on each other one (in parallel), and in full again any address that
        answered differently; then the request CloudFront forwards."""
        target, options = run.target, run.options
        resolution = await resolve_addresses(
            target.host,
            DnsSettings(options.dns_servers, options.dns_timeout),
            options.ip_address_type,
            options.max_addresses,
            target.address,
        )
        run.resolution = ResolutionRecord(
            resolution.resolver,
            resolution.addresses,
            resolution.truncated_from,
            resolution.duration_seconds,
        )
        first, *rest = resolution.addresses
        run.log(
            f"resolved {target.host} to {', '.join(resolution.addresses)} "
            f"({resolution.resolver}); SNI {target.server_name or '(none)'}"
        )
        others = [_Other(run, address) for address in rest]
        beside: list[asyncio.Future[None]] = [asyncio.ensure_future(o.handshake()) for o in others]
        try:
            await run.phases(first)
        except BaseException:
            if run.request is not None:  # the probe stopped: its request would wait in vain
                run.request.cancel()
            raise
        finally:
            run.probed.set()
            beside += [run.request] if run.request is not None else []
            outcomes = await asyncio.gather(*beside, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BudgetExceeded):
                raise outcome
        for other in others:
            if other.differs_from(run):
                await other.probe_in_full()
        return others


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
    resolution: ResolutionRecord | None = None
    http: HttpExchange | None = None
    client_certificate: tuple[bytes, bytes] | None = None  # (chain PEM, key PEM)
    request: asyncio.Future[None] | None = None  # the forwarded request, once TLS is seen
    probed: asyncio.Event = field(default_factory=asyncio.Event)  # the rest is done
    # s2n-tls's handshake under the origin's own generation, once known (None: no s2n-tls)
    hello_failed: bool = False  # CloudFront's own hello raised (the probe stops)
    origin_handshake: asyncio.Future[CloudFrontHandshake | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def observations(
        self,
        started_at: float,
        duration: float,
        stopped: StopRecord | None,
        others: tuple[AddressRecord, ...] = (),
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
            cloudfront_handshakes=() if self.hello_failed else self.cloudfront_handshakes,
            tls_library=self.tls_library,
            trust_digest=self.trust.digest
            if self.cloudfront_handshakes and not self.hello_failed
            else None,
            resolution=self.resolution,
            other_addresses=others,
            http=None if self.hello_failed else self.http,
            connections=self.endpoint.connections_opened if self.endpoint else 0,
            bytes_read=self.endpoint.bytes_read if self.endpoint else 0,
            stopped=stopped,
            log=self.log.lines(with_beside=not self.hello_failed),
        )

    async def phases(self, address: str) -> None:
        endpoint = self.connect_to(address)
        library: list[asyncio.Future[None]] = []
        try:
            await self.tls_phases(endpoint, library)
            await asyncio.gather(*library)
        finally:
            for task in library:
                task.cancel()
            await asyncio.gather(*library, return_exceptions=True)
            endpoint.close_warm()

    async def cloudfront(self, endpoint: Endpoint, carry_request: bool = False) -> None:
        """CloudFront's handshake as its TLS library makes it, under each policy generation;
        with `carry_request`, the request CloudFront forwards rides on the handshake under the
        origin's own generation, as CloudFront sends it (on the engine's own TLS connection
        when s2n-tls is not there or could not complete it)."""
        self.tls_library = tls_library()
        if self.tls_library.library == "none":
            self.log.beside(f"no s2n-tls: {self.tls_library.reason}")
            self.origin_handshake.set_result(None)
            if carry_request:
                self.request = asyncio.ensure_future(self.forward(endpoint))
            return
        carrier = str(self.target.cloudfront_policy)
        # The other generations only say what a policy change would do: they open connections
        # of their own and leave the ones opened ahead of need to the enumerations and the
        # confirmations, the verdict's own critical path.
        others = [g for g in GENERATIONS if g != carrier]
        lane = asyncio.ensure_future(self.s2n_informing(endpoint, others))
        carrying = asyncio.ensure_future(self.carry(endpoint, carrier, carry_request))
        if carry_request:
            self.request = carrying  # it goes on with the request: wait for the handshake only
        try:
            informing = await lane
            origin = cast(CloudFrontHandshake, await self.origin_handshake)
            if not carry_request:
                await carrying
        except BaseException:
            lane.cancel()
            if not carry_request:
                carrying.cancel()
            raise
        handshakes = {carrier: origin, **dict(zip(others, informing, strict=True))}
        self.cloudfront_handshakes = tuple(handshakes[g] for g in GENERATIONS)
        for h in self.cloudfront_handshakes:
            outcome = (
                f"completed {h.protocol} {h.cipher} {h.group or ''}".rstrip()
                if h.completed
                else f"failed: {h.error}"
            )
            self.log.beside(f"s2n-tls {h.policy}: {outcome}")

    async def carry(self, endpoint: Endpoint, generation: str, carry_request: bool) -> None:
        """The handshake under the origin's generation, published in `origin_handshake` as
        soon as it is known; then, with `carry_request`, the request on its connection."""
        published = self.origin_handshake

        async def after(result: CloudFrontHandshake, stream: S2nStream | None) -> None:
            if not published.done():
                published.set_result(result)
            if carry_request and stream is not None:
                await self.forward_over(stream, endpoint)

        try:
            result = await self.s2n(endpoint, generation, after)
        except BaseException as exc:
            if not published.done():
                if isinstance(exc, Exception):
                    published.set_exception(exc)
                else:
                    published.cancel()
            raise
        if not published.done():
            published.set_result(result)
        if carry_request and self.http is None:
            # CloudFront would not get this far; the request is still worth knowing about.
            await self.forward(endpoint)

    async def s2n_informing(
        self, endpoint: Endpoint, generations: list[str]
    ) -> list[CloudFrontHandshake]:
        """The other generations' handshakes, on connections of their own (see `cloudfront`)."""
        return list(await asyncio.gather(*(self.s2n(endpoint, g, warm=False) for g in generations)))

    async def s2n(
        self,
        endpoint: Endpoint,
        generation: str,
        after: AfterHandshake | None = None,
        warm: bool = True,
    ) -> CloudFrontHandshake:
        target = self.target
        policy = policy_for(target.protocols, generation)
        name_check = cloudfront_name_check(target.checked_name)
        try:
            return await cloudfront_handshake(
                endpoint,
                policy,
                target.server_name,
                self.trust.pem,
                name_check,
                self.client_certificate,
                after=after,
                warm=warm,
            )
        except ProbeTimeout as exc:  # one generation's handshake; the probe goes on
            return CloudFrontHandshake(
                "s2n-tls", policy, False, error="timeout", error_detail=str(exc)
            )

    async def tls_phases(self, endpoint: Endpoint, library: list[asyncio.Future[None]]) -> None:
        """Everything after resolving. CloudFront's hello goes first, alone: it is the
        connectivity check. While it is in flight the connections its followers will need are
        opened; as soon as its ServerHello (or refusal) shows TLS spoken, CloudFront's own
        handshakes (s2n-tls, into `library`), the request and the enumerations start, all
        within the origin's connection limit."""
        catalogue = self.engine.catalogue
        name = self.target.server_name
        policy = tuple(p for p in catalogue.protocols if p in self.target.protocols)
        spec = self.hello_spec(policy)
        # CloudFront's hello is, byte for byte but the random, the first offer of the highest
        # protocol's enumeration whenever the policy's suites are that protocol's: its answer
        # serves both, one connection and one round trip fewer.
        reusable = spec == first_offer(catalogue, policy[-1], name)
        early: asyncio.Future[HelloAnswer] = asyncio.get_running_loop().create_future()
        hello_task = asyncio.ensure_future(self.hello(endpoint, spec, policy, early))
        try:
            await asyncio.wait([hello_task, early], return_when=asyncio.FIRST_COMPLETED)
            first = early.result() if early.done() else hello_task.result()
            await self.after_hello(endpoint, library, policy, first, hello_task, reusable)
        finally:
            if not hello_task.done():
                hello_task.cancel()
            await asyncio.gather(hello_task, return_exceptions=True)
            if hello_task.cancelled() or hello_task.exception() is not None:
                # CloudFront's hello failed after its ServerHello: s2n-tls's handshakes, begun
                # beside it, may or may not have finished first; decide without them either way.
                self.hello_failed = True
        hello = hello_task.result()
        if isinstance(hello, ServerHelloInfo) and hello.certificates:
            self.certificates, self.certificates_from = hello.certificates, "cloudfront_hello"
        else:
            self.certificates = await _fetch_certificates(
                endpoint, catalogue, self.enumerations, name, self.log
            )
            self.certificates_from = "broad_offer" if self.certificates else None

    async def after_hello(
        self,
        endpoint: Endpoint,
        library: list[asyncio.Future[None]],
        policy: tuple[Protocol, ...],
        first: HelloAnswer,
        hello: asyncio.Future[HelloAnswer],
        reusable: bool,
    ) -> None:
        """What follows CloudFront's hello, from `first`: its ServerHello or refusal (the rest
        of its flight, certificates included, is `hello`'s once complete)."""
        catalogue = self.engine.catalogue
        if isinstance(first, ServerHelloInfo) or first.alert is not None:
            library.append(
                asyncio.ensure_future(
                    self.cloudfront(endpoint, carry_request=isinstance(first, ServerHelloInfo))
                )
            )
        negotiated = _negotiated(first, policy, catalogue)
        # Pipelined: each confirmation starts as soon as its suite is known (CloudFront's pick
        # now, every other one the moment its enumeration step answers) instead of after the
        # last enumeration; all of them share the origin's connection limit.
        pending = _Confirmations(self.engine.confirmer, endpoint, self.target.server_name)
        try:
            if negotiated is not None:
                # s2n-tls's handshake under the origin's generation is CloudFront's, complete:
                # when it made this very pick, it is the confirmation.
                pending.start_unless_done_by(negotiated, self.origin_handshake)
            self.enumerations = await self.enumerate(
                endpoint, pending, policy[-1], hello if reusable else None
            )
            if not library and endpoint.tls_seen:  # its hello was refused, another was not
                library.append(asyncio.ensure_future(self.cloudfront(endpoint)))
            if isinstance(first, Refusal) and first.alert is None and not endpoint.tls_seen:
                # Not one TLS byte on any connection, whatever was offered: something accepts
                # TCP (a port forwarder with nothing behind it, a firewall) but no TLS server
                # answers.
                raise ConnectError(
                    f"{endpoint.display} accepts TCP connections but {first.describe()} on "
                    "every ClientHello, without sending a single TLS record"
                )
            self.handshakes = await self.confirm(pending, negotiated)
        finally:
            await pending.cancel_rest()

    def connect_to(self, address: str) -> Endpoint:
        self.address = address
        self.endpoint = _endpoint(address, self.target, self.options)
        return self.endpoint

    async def forward(self, endpoint: Endpoint) -> None:
        """The request CloudFront forwards after its handshake (`request: false`: none), on
        the engine's own TLS connection; the idle connection is watched for an early close
        until the rest is done, or for the whole keep-alive timeout with `keepalive_check`."""
        target, options = self.target, self.options
        if target.request is None:
            return
        context = self.engine.request_context(target, self.client_certificate)
        self.http = await forward_request(
            endpoint,
            target.request,
            target.sni or target.host,
            target.server_name,
            context,
            options.origin_read_timeout,
            options.origin_keepalive_timeout,
            None if options.keepalive_check else self.probed,
        )
        self.log_request("OpenSSL")

    async def forward_over(self, stream: S2nStream, endpoint: Endpoint) -> None:
        """The request on s2n-tls's completed handshake, as CloudFront sends it."""
        target, options = self.target, self.options
        if target.request is None:
            return
        self.http = await request_over(
            stream,
            stream,
            endpoint,
            target.request,
            target.sni or target.host,
            options.origin_read_timeout,
            options.origin_keepalive_timeout,
            None if options.keepalive_check else self.probed,
            stream.release_slot,
        )
        self.log_request("s2n-tls")

    def log_request(self, over: str) -> None:
        h, request = self.http, self.target.request
        if h is None or request is None:
            return
        self.log.beside(
            f"request {request.method} {request.path} (over {over}): {h.outcome}"
            + (f", HTTP {h.status_code}" if h.status_code is not None else "")
            + (f": {h.detail}" if h.detail else "")
        )

    def hello_spec(self, policy: tuple[Protocol, ...]) -> HelloSpec:
        """CloudFront's own ClientHello: its suites and order, up to the policy's highest."""
        catalogue = self.engine.catalogue
        offer = tuple(s.code for s in catalogue.suites if any(s.valid_in(p) for p in policy))
        return cloudfront_spec(catalogue, policy[-1], self.target.server_name, offer)

    async def hello(
        self,
        endpoint: Endpoint,
        spec: HelloSpec,
        policy: tuple[Protocol, ...],
        early: asyncio.Future[HelloAnswer],
    ) -> HelloAnswer:
        """Send CloudFront's hello; once connected, open the connections its followers will
        want, and tell `early` its ServerHello (or refusal) before the rest of its flight."""
        catalogue = self.engine.catalogue
        followers = len(self.enumerated_protocols()) + 1 + len(GENERATIONS)

        def connected() -> None:
            endpoint.expect(min(followers, self.options.max_connections - 1))

        def server_hello(answer: HelloAnswer) -> None:
            if not early.done():
                early.set_result(answer)

        hello = await exchange_hello(
            endpoint, replace(spec, read_until=ReadUntil.SERVER_HELLO_DONE), connected, server_hello
        )
        self.cloudfront_hello = HelloExchange(
            str(policy[-1]), spec.suites, HelloAnswerRecord.of(hello), cloudfront_hello=True
        )
        described = _describe(hello, catalogue)
        self.log(f"CloudFront hello (up to {policy[-1]}, {len(spec.suites)} suites): {described}")
        return hello

    def enumerated_protocols(self) -> list[Protocol]:
        return [p for p in ALL_PROTOCOLS if self.options.tls13 or p.cloudfront]

    async def enumerate(
        self,
        endpoint: Endpoint,
        pending: _Confirmations,
        highest: Protocol,
        reusable_hello: asyncio.Future[HelloAnswer] | None,
    ) -> tuple[EnumerationRecord, ...]:
        """Every protocol's enumeration at once; the highest one's starts from CloudFront's
        hello (once its whole flight is in) when that was the same offer."""
        options = self.options

        async def one(protocol: Protocol) -> EnumerationRecord:
            first_answer = None
            if protocol is highest and reusable_hello is not None:
                first_answer = await reusable_hello  # its failure stops the probe, as before
            return await _enumerate(
                endpoint,
                self.engine.catalogue,
                protocol,
                self.target.server_name,
                self.log,
                pending.starter(protocol)
                if options.confirm is ConfirmMode.ALL and protocol.cloudfront
                else None,
                first_answer,
            )

        return tuple(await _all([one(p) for p in self.enumerated_protocols()]))

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


@dataclass
class _Other:
    """Another address of the origin's name (round-robin DNS, a load balancer's nodes)."""

    first: _Run
    address: str
    handshake_result: CloudFrontHandshake | None = None
    full: Observations | None = None
    stopped: StopRecord | None = None
    endpoint: Endpoint | None = None

    async def handshake(self) -> None:
        """CloudFront's handshake under the origin's own policy generation: one connection."""
        run = self.first
        self.endpoint = _endpoint(self.address, run.target, run.options)
        try:
            self.handshake_result = await run.s2n(self.endpoint, run.target.cloudfront_policy)
        except S2nUnavailable:
            return
        except EngineError as exc:
            self.stopped = StopRecord(exc.reason, str(exc))
        result = self.handshake_result
        if result is not None:
            outcome = "completed" if result.completed else f"failed: {result.error}"
            run.log(f"{self.address}: s2n-tls {result.policy}: {outcome}")

    def differs_from(self, first: _Run) -> bool:
        """Another certificate, protocol or suite than the first address: probe it in full."""
        mine = self.handshake_result
        if mine is None:  # no s2n-tls to compare with: only a full probe can tell
            return self.stopped is None
        theirs = next((h for h in first.cloudfront_handshakes if h.policy == mine.policy), None)
        if theirs is None:
            return True
        seen = (mine.completed, mine.protocol, mine.cipher, mine.peer_chain[:1])
        return seen != (theirs.completed, theirs.protocol, theirs.cipher, theirs.peer_chain[:1])

    async def probe_in_full(self) -> None:
        run = self.first
        target = replace(run.target, address=self.address)
        run.log(f"{self.address} answers differently: probing it in full")
        self.full = await run.engine.observe(target, run.options, run.trust)

    def record(self) -> AddressRecord:
        return AddressRecord(
            address=self.address,
            cloudfront_handshakes=(self.handshake_result,) if self.handshake_result else (),
            full=self.full,
            stopped=self.stopped,
            connections=self.endpoint.connections_opened if self.endpoint else 0,
        )


def _endpoint(address: str, target: ProbeTarget, options: ProbeOptions) -> Endpoint:
    return Endpoint(
        address,
        target.port,
        options.timeout,
        options.max_connections,
        options.max_bytes,
        connect_attempts=options.connection_attempts,
        connect_timeout=options.connection_timeout,
    )


def _client_pems(target: ProbeTarget) -> tuple[bytes, bytes] | None:
    """The origin mTLS certificate CloudFront presents, as (chain PEM, key PEM)."""
    certificate = target.client_certificate
    if certificate is None:
        return None
    with open(certificate.cert_file, "rb") as chain, open(certificate.key_file, "rb") as key:
        return chain.read(), key.read()


def _request_context(
    catalogue: Catalogue, target: ProbeTarget, client: tuple[bytes, bytes] | None
) -> ssl.SSLContext:
    """OpenSSL offering CloudFront's suites (what this machine's OpenSSL can of them), for
    the request after the handshake; the handshake's verdict is s2n-tls's, not this one's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        if target.cloudfront_policy == CloudFrontPolicy.UPSTREAM:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(catalogue.openssl_cipher_string(Protocol.TLSv1_2) + ":@SECLEVEL=0")
    if client is not None:
        with tempfile.TemporaryDirectory() as directory:
            chain, key = Path(directory) / "chain.pem", Path(directory) / "key.pem"
            chain.write_bytes(client[0])
            key.write_bytes(client[1])
            context.load_cert_chain(chain, key)
    return context


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

    def start_unless_done_by(
        self,
        key: tuple[Protocol, CipherSuite],
        handshake: asyncio.Future[CloudFrontHandshake | None],
    ) -> None:
        """Take s2n-tls's complete handshake as `key`'s confirmation when it made that very
        pick; confirm it separately when it did not (or could not)."""
        if key not in self._tasks:
            self._tasks[key] = asyncio.ensure_future(self._confirm_unless(key, handshake))

    async def _confirm_unless(
        self,
        key: tuple[Protocol, CipherSuite],
        handshake: asyncio.Future[CloudFrontHandshake | None],
    ) -> Confirmation:
        protocol, suite = key
        try:
            done = await asyncio.shield(handshake)
        except EngineError:
            done = None
        if (
            done is not None
            and done.completed
            and (done.protocol, done.cipher)
            == (
                protocol,
                suite.name,
            )
        ):
            return Confirmation(protocol, suite, True, "s2n-tls")
        return await self._confirmer.confirm(self._endpoint, self._name, protocol, suite)

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
