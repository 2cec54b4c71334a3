"""Which of CloudFront's suites an origin accepts under one protocol, in accepted+1 hellos.

Offer every remaining catalogue suite; the server picks its favourite; remove it and offer again
until the server declines. To tell "speaks the protocol, none of CloudFront's suites" from "does
not speak it", a protocol's first offer also carries every other suite after CloudFront's: a
refusal of it means "not spoken" at once; a pick outside the catalogue means "spoken" and the
next offer has CloudFront's suites alone. Only when the first offer was CloudFront's own hello,
with its suites alone, and the server declined it, is one more hello made with a broad offer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tlslite.constants import AlertDescription

from .catalogue import BROAD_GROUPS, BROAD_SIGNATURE_SCHEMES, Catalogue, CipherSuite, Protocol
from .errors import ProtocolViolation
from .hello import HelloAnswer, HelloSpec, Refusal, ServerHelloInfo, exchange_hello
from .net import Endpoint
from .observations import EnumerationRecord, HelloAnswerRecord, HelloExchange

Log = Callable[[str], None]


def first_offer(catalogue: Catalogue, protocol: Protocol, server_name: str | None) -> HelloSpec:
    """The ClientHello that starts `protocol`'s enumeration: every catalogue suite it allows."""
    suites = tuple(s.code for s in catalogue.suites_for(protocol))
    return cloudfront_spec(catalogue, protocol, server_name, suites)


def cloudfront_spec(
    catalogue: Catalogue, protocol: Protocol, server_name: str | None, suites: tuple[int, ...]
) -> HelloSpec:
    """A ClientHello with CloudFront's groups and signature schemes (broad ones for TLSv1.3)."""
    if protocol is Protocol.TLSv1_3:
        return HelloSpec(protocol, suites, server_name, BROAD_GROUPS, BROAD_SIGNATURE_SCHEMES)
    return HelloSpec(
        protocol,
        suites,
        server_name,
        tuple(g.code for g in catalogue.groups),
        catalogue.signature_schemes,
    )


async def enumerate_protocol(
    endpoint: Endpoint,
    catalogue: Catalogue,
    protocol: Protocol,
    server_name: str | None,
    log: Log,
    on_pick: Callable[[CipherSuite], None] | None = None,
    first_answer: HelloAnswer | None = None,
    exchanges: list[HelloExchange] | None = None,
) -> EnumerationRecord:
    """`on_pick` is told each suite as soon as the server picks it, so that its confirmation can
    start while the rest of the chain goes on. `first_answer` is the server's answer to this
    protocol's first offer when it has already been asked (CloudFront's own hello, when it is
    that same ClientHello): the chain starts from it instead of asking again. Each exchange is
    appended to `exchanges` as it happens, so a caller still has them if a later one fails."""
    exchanges = [] if exchanges is None else exchanges
    # Each next hello's connection opens during this one; not for TLS 1.3, information only,
    # whose other suites are asked about all at once after its first answer.
    spare = _Spare(endpoint, protocol, keep=protocol.cloudfront)
    try:
        return await _enumerate(
            endpoint, spare, catalogue, protocol, server_name, log, on_pick, first_answer, exchanges
        )
    finally:
        spare.drop()


class _Spare:
    """A chain's claim on one connection opened ahead of its next hello. Dropped the moment
    an answer ends the chain, before that answer's connection frees its slot: a spare still
    waiting for a slot is then never opened, where dropping it after would open and close it."""

    def __init__(self, endpoint: Endpoint, protocol: Protocol, keep: bool = True) -> None:
        self._endpoint = endpoint
        self._protocol = protocol
        self._held = keep
        if keep:
            endpoint.add_spares(1)

    def drop(self) -> None:
        if self._held:
            self._held = False
            self._endpoint.add_spares(-1)

    def watch(self, answer: HelloAnswer) -> None:
        """Called with each answer while its connection still holds its slot."""
        if isinstance(answer, Refusal) or answer.protocol is not self._protocol:
            self.drop()


async def _enumerate(
    endpoint: Endpoint,
    spare: _Spare,
    catalogue: Catalogue,
    protocol: Protocol,
    server_name: str | None,
    log: Log,
    on_pick: Callable[[CipherSuite], None] | None,
    first_answer: HelloAnswer | None,
    exchanges: list[HelloExchange],
) -> EnumerationRecord:
    remaining = list(catalogue.suites_for(protocol))
    first_refusal: Refusal | None = None
    # The first offer of a protocol CloudFront speaks carries every other suite after
    # CloudFront's: refused, the protocol is not spoken, with no broad offer after it.
    with_broad = first_answer is None and protocol.cloudfront
    side: asyncio.Future[list[HelloExchange]] | None = None
    try:
        while remaining:
            offer = tuple(s.code for s in remaining)
            if with_broad:
                offer += tuple(c for c in catalogue.broad_codes if c not in catalogue.by_code)
            source = " (and every other suite)" if with_broad else ""
            reused = first_answer is not None
            if first_answer is not None:
                answer, first_answer = first_answer, None
                source = " (CloudFront's hello)"
            else:
                answer = await exchange_hello(
                    endpoint,
                    cloudfront_spec(catalogue, protocol, server_name, offer),
                    server_hello=spare.watch,
                )
            exchanges.append(
                HelloExchange(
                    str(protocol),
                    offer,
                    HelloAnswerRecord.of(answer),
                    cloudfront_hello=reused,
                    with_broad=with_broad,
                )
            )
            if isinstance(answer, Refusal):
                if len(exchanges) == 1:
                    first_refusal = answer
                log(f"{protocol}: offered {len(remaining)} suites{source}: {answer.describe()}")
                break
            if answer.protocol is not protocol:
                # The server answered with another version: it does not speak this one.
                refusal = f"answered with {_version_name(answer)}"
                log(f"{protocol}: offered {len(remaining)} suites{source}: server {refusal}")
                break
            chosen = catalogue.by_code.get(answer.suite)
            if with_broad and chosen is None and answer.suite in offer:
                # It speaks the protocol and prefers a suite CloudFront does not offer: ask
                # again with CloudFront's alone.
                log(
                    f"{protocol}: offered {len(remaining)} suites{source}: server picked "
                    f"0x{answer.suite:04X}, outside the catalogue"
                )
                with_broad = False
                continue
            with_broad = False
            if chosen is None or chosen not in remaining:
                raise _not_offered(protocol, answer.suite)
            log(f"{protocol}: offered {len(remaining)} suites{source}: server picked {chosen.name}")
            remaining.remove(chosen)
            if on_pick is not None:
                on_pick(chosen)
                # Let the pick's confirmation take the connection opened ahead first: it has
                # a complete handshake to make, this chain's next hello one answer to wait for.
                await asyncio.sleep(0)
            if side is None and _worth_splitting(catalogue, protocol, exchanges, remaining):
                # A long chain: the suites of the other key exchange go down a second one beside
                # it, each in the server's order (their order relative to this chain's is lost).
                others = [s for s in remaining if s.key_exchange != chosen.key_exchange]
                remaining = [s for s in remaining if s.key_exchange == chosen.key_exchange]
                log(f"{protocol}: the {len(others)} other suites in a second chain beside this one")
                side = asyncio.ensure_future(
                    _side_chain(endpoint, catalogue, protocol, server_name, others, log, on_pick)
                )
            if protocol is Protocol.TLSv1_3 and remaining:
                # Information only, and the server's preference among these says nothing to
                # CloudFront: once it speaks TLS 1.3, ask about each other suite at once.
                exchanges.extend(
                    await _one_by_one(endpoint, catalogue, protocol, server_name, remaining, log)
                )
                break
    except BaseException:
        if side is not None:
            side.cancel()
            await asyncio.gather(side, return_exceptions=True)
        raise
    if side is not None:
        exchanges.extend(await side)
    picked_any = len(exchanges) > 1 or (
        exchanges[0].answer.is_server_hello and exchanges[0].answer.protocol == str(protocol)
    )
    if picked_any or protocol is Protocol.TLSv1_3:
        return EnumerationRecord(str(protocol), tuple(exchanges))
    if first_refusal is not None and first_refusal.alert == AlertDescription.protocol_version:
        # The server said outright that it does not speak this version (OpenSSL, and so nginx
        # and most servers, answer an unsupported version this way and a cipher mismatch with
        # handshake_failure): a broad offer would only hear it again.
        log(f"{protocol}: protocol_version alert: protocol not spoken")
        return EnumerationRecord(str(protocol), tuple(exchanges))
    if exchanges[0].with_broad:
        log(f"{protocol}: every suite refused: protocol not spoken")
        return EnumerationRecord(str(protocol), tuple(exchanges))
    broad = HelloSpec(
        protocol, catalogue.broad_codes, server_name, BROAD_GROUPS, BROAD_SIGNATURE_SCHEMES
    )
    answer = await exchange_hello(endpoint, broad)
    exchanges.append(
        HelloExchange(str(protocol), broad.suites, HelloAnswerRecord.of(answer), broad=True)
    )
    if isinstance(answer, ServerHelloInfo) and answer.protocol is protocol:
        log(f"{protocol}: broad offer: server picked 0x{answer.suite:04X}, outside the catalogue")
    else:
        described = _described(answer)
        log(f"{protocol}: broad offer: {described}: protocol not spoken")
    return EnumerationRecord(str(protocol), tuple(exchanges))


SPLIT_AFTER_PICKS = 3
"""A chain with this many picks, and at least `SPLIT_REMAINING` suites left to ask about, is
split by key exchange: a long chain is one round trip per accepted suite (11 under TLSv1.2
for an OpenSSL DEFAULT origin), two chains beside each other about half of that."""
SPLIT_REMAINING = 8


def _worth_splitting(
    catalogue: Catalogue,
    protocol: Protocol,
    exchanges: list[HelloExchange],
    remaining: list[CipherSuite],
) -> bool:
    picks = sum(
        1
        for e in exchanges
        if e.answer.is_server_hello and e.answer.suite in catalogue.by_code and not e.broad
    )
    families = {s.key_exchange for s in remaining}
    return (
        protocol.cloudfront
        and picks >= SPLIT_AFTER_PICKS
        and len(remaining) >= SPLIT_REMAINING
        and len(families) > 1
    )


async def _side_chain(
    endpoint: Endpoint,
    catalogue: Catalogue,
    protocol: Protocol,
    server_name: str | None,
    suites: list[CipherSuite],
    log: Log,
    on_pick: Callable[[CipherSuite], None] | None,
) -> list[HelloExchange]:
    """Offer `suites` (CloudFront's alone: the protocol is known to be spoken) until refused."""
    exchanges: list[HelloExchange] = []
    remaining = list(suites)
    spare = _Spare(endpoint, protocol)
    try:
        while remaining:
            offer = tuple(s.code for s in remaining)
            spec = cloudfront_spec(catalogue, protocol, server_name, offer)
            answer = await exchange_hello(endpoint, spec, server_hello=spare.watch)
            exchanges.append(HelloExchange(str(protocol), offer, HelloAnswerRecord.of(answer)))
            if isinstance(answer, Refusal) or answer.protocol is not protocol:
                described = _described(answer)
                log(f"{protocol}: offered {len(offer)} suites (second chain): {described}")
                break
            chosen = catalogue.by_code.get(answer.suite)
            if chosen is None or chosen not in remaining:
                raise _not_offered(protocol, answer.suite)
            log(f"{protocol}: offered {len(offer)} suites (second chain): picked {chosen.name}")
            remaining.remove(chosen)
            if on_pick is not None:
                on_pick(chosen)
                await asyncio.sleep(0)  # its confirmation first, as in the first chain
    finally:
        spare.drop()
    return exchanges


RARELY_ENABLED = frozenset({"TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"})
"""TLS 1.3 suites no common server library enables by default (OpenSSL, BoringSSL, s2n-tls,
Go): asked about in one hello together, and apart only if the server picks one of them."""


async def _one_by_one(
    endpoint: Endpoint,
    catalogue: Catalogue,
    protocol: Protocol,
    server_name: str | None,
    suites: list[CipherSuite],
    log: Log,
) -> list[HelloExchange]:
    """A single-suite offer for each of `suites`, all at once (within the connection limit);
    the rarely enabled ones together in one offer."""
    rare = [s for s in suites if s.name in RARELY_ENABLED]
    groups = [[s] for s in suites if s not in rare]
    groups += [rare] if len(rare) > 1 else [[s] for s in rare]
    found = await asyncio.gather(
        *(_offer_group(endpoint, catalogue, protocol, server_name, g, log) for g in groups)
    )
    return [exchange for exchanges in found for exchange in exchanges]


async def _offer_group(
    endpoint: Endpoint,
    catalogue: Catalogue,
    protocol: Protocol,
    server_name: str | None,
    group: list[CipherSuite],
    log: Log,
) -> list[HelloExchange]:
    """Offer `group`; when the server picks one of several, offer the others the same way."""
    spec = cloudfront_spec(catalogue, protocol, server_name, tuple(s.code for s in group))
    answer = await exchange_hello(endpoint, spec, warm=False)  # information only
    exchanges = [HelloExchange(str(protocol), spec.suites, HelloAnswerRecord.of(answer))]
    offered = " and ".join(s.name for s in group) + (" together" if len(group) > 1 else " alone")
    if not (isinstance(answer, ServerHelloInfo) and answer.protocol is protocol):
        described = _described(answer)
        log(f"{protocol}: offered {offered}: {described}")
        return exchanges
    picked = next((s for s in group if s.code == answer.suite), None)
    if picked is None:
        raise _not_offered(protocol, answer.suite)
    log(
        f"{protocol}: offered {offered}: server picked "
        + ("it" if len(group) == 1 else picked.name)
    )
    rest = [s for s in group if s is not picked]
    if rest:
        exchanges += await _offer_group(endpoint, catalogue, protocol, server_name, rest, log)
    return exchanges


def _described(answer: HelloAnswer) -> str:
    """A refusal, or a ServerHello of another version than offered, in words."""
    return answer.describe() if isinstance(answer, Refusal) else _version_name(answer)


def _not_offered(protocol: Protocol, suite: int) -> ProtocolViolation:
    return ProtocolViolation(
        f"{protocol}: server picked suite 0x{suite:04X}, which was not offered"
    )


def _version_name(answer: ServerHelloInfo) -> str:
    if answer.protocol is not None:
        return str(answer.protocol)
    major, minor = answer.wire_version
    return f"version {major}.{minor}"
