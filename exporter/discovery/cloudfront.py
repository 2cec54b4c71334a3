"""CloudFront distributions in, origins to probe out, exactly as CloudFront connects to them.

Two halves, so the rules can be tested without AWS:

- `fetch()` makes the (blocking) boto3 calls: every distribution (`ListDistributions`, paginated;
  `GetDistribution` when a summary lacks its origins), the tags when the configuration filters
  on them (`ListTagsForResource`), and the custom cache and origin request policies that decide
  whether the viewer's `Host` header is forwarded (`GetCachePolicy`, `GetOriginRequestPolicy`;
  AWS-managed policies are known here and never looked up). Run it in a thread. A policy that
  cannot be read (AccessDenied, throttling, a 5xx after retries) is recorded, not raised: it
  leaves "forwards Host?" unknown for the behaviours that use it, and only those.
- `discover()` is pure: it turns that `Inventory` into `DiscoveredOrigin`s (one per name
  CloudFront would send as SNI) and counts what it does not probe; `origin_configs()` then
  applies the exporter's `defaults` and `resolve` to give `OriginConfig`s.

The SNI rule (see docs/discovery.md): CloudFront sends the origin's domain name, unless a cache
behaviour that routes to the origin forwards the viewer's `Host` header; then it sends the
host name the viewer asked for, one of the distribution's alternate domain names (or its
`*.cloudfront.net` name when it has none), and the origin certificate must cover that name.
When a policy that decides it cannot be read, the origin is probed both ways.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from typing import Protocol as TypingProtocol

from .. import __version__
from ..config import (
    CloudFrontDiscoveryConfig,
    ConfigError,
    DnsConfig,
    OriginConfig,
    OriginDefaults,
    origin_config,
    parse_settings,
)
from ..engine.catalogue import CLOUDFRONT_PROTOCOLS, Protocol

log = logging.getLogger("origin_tls_exporter.discovery")

PROVIDER = "cloudfront"
DEFAULT_PAGE_SIZE = 100  # ListDistributions' own default MaxItems
WILDCARD_LABEL = "wildcard"
"""Stands for `*` when an alternate domain name is a wildcard (`*.example.com` is probed with
SNI `wildcard.example.com`): any name viewers use under it must be covered."""


class SkipReason(enum.StrEnum):
    """Why an origin of a discovered distribution is not probed."""

    S3 = "s3"  # S3OriginConfig: a bucket's REST endpoint, served by AWS' own certificate
    HTTP_ONLY = "http_only"  # OriginProtocolPolicy http-only: CloudFront never uses TLS to it
    VPC = "vpc"  # VpcOriginConfig: private, reachable only from CloudFront
    UNSUPPORTED = "unsupported"  # no domain name, no origin type, or no TLS protocol we know


#: AWS-managed origin request policies: id -> (name, forwards the viewer's Host header).
MANAGED_ORIGIN_REQUEST_POLICIES: Mapping[str, tuple[str, bool]] = {
    "216adef6-5c7f-47e4-b989-5492eafa07d3": ("AllViewer", True),
    "33f36d7e-f396-46d9-90e0-52428a34d9dc": ("AllViewerAndCloudFrontHeaders-2022-06", True),
    "b689b0a8-53d0-40ab-baf2-68738e2966ac": ("AllViewerExceptHostHeader", False),
    "59781a5b-3903-41f3-afcb-af62929ccde1": ("CORS-CustomOrigin", False),
    "88a5eaf4-2fd4-4709-b370-b4c650ea3fcf": ("CORS-S3Origin", False),
    "775133bc-15f2-49f9-abea-afb2e0bf67d2": ("Elemental-MediaTailor-PersonalizedManifests", False),
    "bf0718e1-ba1e-49d1-88b1-f726733018ae": ("HostHeaderOnly", True),
    "acba4595-bd28-49b8-b9fe-13317c0390fa": ("UserAgentRefererHeaders", False),
}

#: AWS-managed cache policies: id -> (name, has Host in the cache key, hence forwards it).
MANAGED_CACHE_POLICIES: Mapping[str, tuple[str, bool]] = {
    "2e54312d-136d-493c-8eb9-b001f22f67d2": ("Amplify", True),
    "4135ea2d-6df8-44a3-9df3-4b5a84be39ad": ("CachingDisabled", False),
    "658327ea-f89d-4fab-a63d-7e88639e58f6": ("CachingOptimized", False),
    "b2884449-e4de-46a7-ac36-70bc7f1ddd6d": ("CachingOptimizedForUncompressedObjects", False),
    "08627262-05a9-4f76-9ded-b50ca2e3a84f": ("Elemental-MediaPackage", False),
    "83da9c7e-98b4-4e11-a168-04f0df8e2c65": ("UseOriginCacheControlHeaders", True),
    "4cc15a8a-d715-48a4-82b8-cc0b614638fe": ("UseOriginCacheControlHeaders-QueryStrings", True),
}

_NOT_FOUND_CODES = frozenset({"NoSuchOriginRequestPolicy", "NoSuchCachePolicy", "404"})

T = TypeVar("T")


class HostForwarding(enum.StrEnum):
    """How a probe's SNI was chosen: the `host_header_forwarded` label of a discovered origin."""

    FORWARDED = "true"  # a behaviour forwards the viewer's Host: SNI is the alias
    NOT_FORWARDED = "false"  # CloudFront sends the origin's domain name
    UNKNOWN = "unknown"  # a policy that decides could not be read: probed both ways


@dataclass(frozen=True)
class CallFailure:
    """One CloudFront API call that failed: `origin_tls_discovery_errors_total`'s labels."""

    operation: str  # the API operation, GetOriginRequestPolicy
    error: str  # the AWS error code (AccessDenied), the HTTP status, or the exception's type
    resource: str = ""  # the policy or distribution id, for logs and pages
    detail: str = ""

    def __str__(self) -> str:
        subject = f" {self.resource}" if self.resource else ""
        return f"{self.operation}{subject}: {self.error}"


class DiscoveryCallError(Exception):
    """A CloudFront API call failed in a way that fails the whole refresh."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(f"{failure}: {failure.detail}" if failure.detail else str(failure))
        self.failure = failure


class CloudFrontClient(TypingProtocol):
    """The part of a boto3 CloudFront client that discovery uses (tests pass fakes)."""

    def get_paginator(self, operation_name: str) -> Any: ...
    def get_distribution(self, **kwargs: Any) -> Any: ...
    def list_tags_for_resource(self, **kwargs: Any) -> Any: ...
    def get_origin_request_policy(self, **kwargs: Any) -> Any: ...
    def get_cache_policy(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class DiscoveredOrigin:
    """One probe target, as CloudFront connects to it, before the exporter's defaults."""

    distribution_id: str
    distribution_domain: str  # the distribution's own name, d111111abcdef8.cloudfront.net
    enabled: bool
    aliases: int  # how many alternate domain names (CNAMEs) the distribution has
    origin_id: str
    host: str  # the origin's DomainName: where CloudFront connects
    port: int  # HTTPSPort
    protocols: tuple[Protocol, ...] | None  # OriginSslProtocols; None: not stated
    viewer_host: str | None = None  # the forwarded Host (an alias as written); None: not forwarded
    # CloudFront's own settings, as its API states them, keyed by the configuration key they
    # set (connection_attempts, connection_timeout, origin_read_timeout,
    # origin_keepalive_timeout, ip_address_type); checked by the configuration's rules later.
    settings: tuple[tuple[str, Any], ...] = ()
    mtls: bool = False  # OriginMtlsConfig: CloudFront presents a client certificate
    # The policies of the behaviours routing here that could not be read ("GetCachePolicy
    # <id>: AccessDenied"): whether Host is forwarded is unknown, so both ways are probed.
    unread_policies: tuple[str, ...] = ()

    @property
    def host_forwarding(self) -> HostForwarding:
        if self.unread_policies:
            return HostForwarding.UNKNOWN
        if self.viewer_host is None:
            return HostForwarding.NOT_FORWARDED
        return HostForwarding.FORWARDED

    @property
    def name(self) -> str:
        """`<distribution-id>/<origin-id>`, plus `/<alias>` when probed with a viewer's Host."""
        base = f"{self.distribution_id}/{self.origin_id}"
        return base if self.viewer_host is None else f"{base}/{self.viewer_host}"

    @property
    def sni(self) -> str | None:
        """What CloudFront sends as SNI besides the origin domain: the forwarded Host."""
        if self.viewer_host is None:
            return None
        if self.viewer_host.startswith("*."):
            return f"{WILDCARD_LABEL}{self.viewer_host[1:]}"
        return self.viewer_host

    def labels(self) -> dict[str, str]:
        """The labels `origin_tls_origin_info` gets (the config reserves these names)."""
        return {
            "distribution_id": self.distribution_id,
            "origin_id": self.origin_id,
            "domain_name": self.distribution_domain,
            "aliases": str(self.aliases),
            "enabled": "true" if self.enabled else "false",
            "host_header_forwarded": str(self.host_forwarding),
        }


@dataclass(frozen=True)
class Inventory:
    """What `fetch()` read: the distributions (summary-shaped, filtered) and policy answers."""

    distributions: tuple[Mapping[str, Any], ...] = ()
    origin_request_policies: Mapping[str, bool] = field(default_factory=dict)  # custom: Host?
    cache_policies: Mapping[str, bool] = field(default_factory=dict)  # custom: Host?
    missing_policies: tuple[str, ...] = ()  # referenced but not found (assumed: no Host)
    unread_policies: Mapping[str, CallFailure] = field(default_factory=dict)  # id -> why not
    missing_distributions: tuple[str, ...] = ()  # in distribution_ids but not in the account
    pages: int = 0  # ListDistributions pages read


@dataclass(frozen=True)
class Discovery:
    """The result of one refresh, before defaults: targets sorted by name, skip counts."""

    origins: tuple[DiscoveredOrigin, ...] = ()
    skipped: Mapping[SkipReason, int] = field(default_factory=dict)
    distributions: int = 0

    def skipped_count(self, reason: SkipReason) -> int:
        return self.skipped.get(reason, 0)


# --- pure rules --------------------------------------------------------------------------------


def _items(container: Any) -> list[Any]:
    """`{"Quantity": n, "Items": [...]}` -> the items (none when absent or null)."""
    if not isinstance(container, Mapping):
        return []
    items = container.get("Items")
    return list(items) if isinstance(items, list | tuple) else []


def _has_host(names: Iterable[Any]) -> bool:
    return any(isinstance(n, str) and n.strip().lower() == "host" for n in names)


def legacy_forwards_host(forwarded_values: Any) -> bool:
    """Legacy cache settings (`ForwardedValues`): Host forwarded if listed, or `*` (all)."""
    if not isinstance(forwarded_values, Mapping):
        return False
    headers = _items(forwarded_values.get("Headers"))
    return _has_host(headers) or any(h == "*" for h in headers)


def origin_request_policy_forwards_host(headers_config: Any) -> bool:
    """An origin request policy's `HeadersConfig`: does the origin get the viewer's Host?"""
    if not isinstance(headers_config, Mapping):
        return False
    behavior = headers_config.get("HeaderBehavior")
    headers = _items(headers_config.get("Headers"))
    if behavior in ("allViewer", "allViewerAndWhitelistCloudFront"):
        return True
    if behavior == "allExcept":
        return not _has_host(headers)
    if behavior == "whitelist":
        return _has_host(headers)
    return False  # none


def cache_policy_forwards_host(headers_config: Any) -> bool:
    """A cache policy's `HeadersConfig`: headers in the cache key are forwarded too."""
    if not isinstance(headers_config, Mapping):
        return False
    return headers_config.get("HeaderBehavior") == "whitelist" and _has_host(
        _items(headers_config.get("Headers"))
    )


def _policy_id(behaviour: Mapping[str, Any], key: str) -> str | None:
    value = behaviour.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def behaviour_forwards_host(
    behaviour: Mapping[str, Any],
    origin_request_policies: Mapping[str, bool],
    cache_policies: Mapping[str, bool],
    unread: Collection[str] = (),
) -> bool | None:
    """Whether CloudFront forwards the viewer's Host for requests of this cache behaviour.

    Legacy `ForwardedValues`, the cache policy (headers in the cache key go to the origin) and
    the origin request policy all count. Policies are looked up among the managed ones, then in
    the custom answers; one found in neither (deleted, or an API without policies) does not
    forward. None: no policy read says so, and one in `unread` (it could not be read) might.
    """
    if legacy_forwards_host(behaviour.get("ForwardedValues")):
        return True
    answers: list[bool | None] = []
    for key, managed, custom in (
        ("CachePolicyId", MANAGED_CACHE_POLICIES, cache_policies),
        ("OriginRequestPolicyId", MANAGED_ORIGIN_REQUEST_POLICIES, origin_request_policies),
    ):
        policy_id = _policy_id(behaviour, key)
        if policy_id is None:
            continue
        known = managed.get(policy_id)
        if known is not None:
            answers.append(known[1])
        elif policy_id in unread:
            answers.append(None)
        else:
            answers.append(custom.get(policy_id, False))
    if True in answers:
        return True
    return None if None in answers else False


def unread_policies_of(behaviour: Mapping[str, Any], unread: Collection[str]) -> list[str]:
    """The ids of the behaviour's policies that could not be read."""
    ids = (_policy_id(behaviour, key) for key in ("CachePolicyId", "OriginRequestPolicyId"))
    return [policy_id for policy_id in ids if policy_id is not None and policy_id in unread]


def _behaviours(distribution: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    default = distribution.get("DefaultCacheBehavior")
    found = [default] if isinstance(default, Mapping) else []
    found.extend(b for b in _items(distribution.get("CacheBehaviors")) if isinstance(b, Mapping))
    return found


def _group_members(distribution: Mapping[str, Any]) -> dict[str, set[str]]:
    """Origin group id -> its member origin ids (a behaviour may target a group)."""
    groups: dict[str, set[str]] = {}
    for group in _items(distribution.get("OriginGroups")):
        if isinstance(group, Mapping) and isinstance(group.get("Id"), str):
            members = _items(group.get("Members"))
            groups[group["Id"]] = {
                m["OriginId"]
                for m in members
                if isinstance(m, Mapping) and isinstance(m.get("OriginId"), str)
            }
    return groups


def _parse_protocols(custom: Mapping[str, Any]) -> tuple[Protocol, ...] | None:
    stated = _items(custom.get("OriginSslProtocols"))
    if not stated:
        return None  # not stated: the exporter's default policy applies
    chosen: set[Protocol] = set()
    for item in stated:
        try:
            protocol = Protocol.parse(str(item))
        except ValueError:
            continue  # a name newer than this exporter: not one it can offer
        if protocol.cloudfront:
            chosen.add(protocol)
    return tuple(p for p in CLOUDFRONT_PROTOCOLS if p in chosen)


_S3_DOMAIN = re.compile(r".+\.s3([.-][a-z0-9-]+)*\.amazonaws\.com(\.cn)?\.?\Z", re.IGNORECASE)


def _classify(origin: Mapping[str, Any]) -> SkipReason | None:
    domain = origin.get("DomainName")
    custom = origin.get("CustomOriginConfig")
    if origin.get("S3OriginConfig") is not None:
        return SkipReason.S3
    if origin.get("VpcOriginConfig") is not None:
        return SkipReason.VPC
    if custom is None and isinstance(domain, str) and _S3_DOMAIN.match(domain.strip()):
        return SkipReason.S3  # some API implementations (moto) drop an empty S3OriginConfig
    if not isinstance(custom, Mapping) or not isinstance(domain, str) or not domain.strip():
        return SkipReason.UNSUPPORTED
    if custom.get("OriginProtocolPolicy") == "http-only":
        return SkipReason.HTTP_ONLY
    protocols = _parse_protocols(custom)
    if protocols is not None and not protocols:
        return SkipReason.UNSUPPORTED
    return None


#: configuration key -> (where in the Origin, API field); CloudFront states them all
CLOUDFRONT_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("connection_attempts", "origin", "ConnectionAttempts"),
    ("connection_timeout", "origin", "ConnectionTimeout"),
    ("origin_read_timeout", "custom", "OriginReadTimeout"),
    ("origin_keepalive_timeout", "custom", "OriginKeepaliveTimeout"),
    ("ip_address_type", "custom", "IpAddressType"),
)


def _settings(origin: Mapping[str, Any], custom: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The CloudFront settings the origin states, raw (see `DiscoveredOrigin.settings`)."""
    found = []
    for key, where, api_name in CLOUDFRONT_SETTINGS:
        value = (origin if where == "origin" else custom).get(api_name)
        if value is not None:
            found.append((key, value))
    return tuple(found)


def _port(custom: Mapping[str, Any]) -> int | None:
    port = custom.get("HTTPSPort")
    if port is None:
        return 443
    if isinstance(port, bool) or not isinstance(port, int | str):
        return None
    try:
        number = int(port)
    except ValueError:
        return None
    return number if 0 < number < 65536 else None


def discover_distribution(
    distribution: Mapping[str, Any],
    origin_request_policies: Mapping[str, bool] | None = None,
    cache_policies: Mapping[str, bool] | None = None,
    unread_policies: Mapping[str, CallFailure] | None = None,
) -> tuple[list[DiscoveredOrigin], dict[SkipReason, int]]:
    """The probe targets of one distribution (summary- or config-shaped) and what it skips.

    A behaviour whose policy could not be read (`unread_policies`) may or may not forward Host:
    its origins are probed both ways, and the probes that exist only for that doubt say why.
    """
    origin_request_policies = origin_request_policies or {}
    cache_policies = cache_policies or {}
    unread = unread_policies or {}
    distribution_id = str(distribution.get("Id", ""))
    domain = str(distribution.get("DomainName", ""))
    enabled = distribution.get("Enabled") is not False
    aliases = sorted({a.strip().lower() for a in _items(distribution.get("Aliases")) if a})
    groups = _group_members(distribution)
    # origin id -> {forwards Host? None: unknown} over the behaviours that route to it
    # (directly or by group), and the policies that made it unknown
    modes: dict[str, set[bool | None]] = {}
    doubts: dict[str, set[str]] = {}
    for behaviour in _behaviours(distribution):
        target = behaviour.get("TargetOriginId")
        if not isinstance(target, str):
            continue
        forwards = behaviour_forwards_host(
            behaviour, origin_request_policies, cache_policies, unread
        )
        for origin_id in groups.get(target, {target}):
            modes.setdefault(origin_id, set()).add(forwards)
            if forwards is None:
                why = (str(unread[p]) for p in unread_policies_of(behaviour, unread))
                doubts.setdefault(origin_id, set()).update(why)
    found: list[DiscoveredOrigin] = []
    skipped: dict[SkipReason, int] = {}
    for origin in _items(distribution.get("Origins")):
        if not isinstance(origin, Mapping):
            continue
        reason = _classify(origin)  # None: a custom origin with a domain name
        custom: Mapping[str, Any] = origin.get("CustomOriginConfig") or {}
        port = _port(custom) if reason is None else None
        if reason is not None or port is None:
            reason = reason or SkipReason.UNSUPPORTED
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        origin_id = str(origin.get("Id", ""))
        base = DiscoveredOrigin(
            distribution_id=distribution_id,
            distribution_domain=domain,
            enabled=enabled,
            aliases=len(aliases),
            origin_id=origin_id,
            host=str(origin["DomainName"]).strip(),
            port=port,
            protocols=_parse_protocols(custom),
            settings=_settings(origin, custom),
            mtls=isinstance(custom.get("OriginMtlsConfig"), Mapping),
        )
        # An origin no behaviour routes to gets no viewer traffic; probe it as CloudFront
        # would connect without a forwarded Host, which is what it gets once routed to.
        ways = modes.get(origin_id, {False})
        doubt = tuple(sorted(doubts.get(origin_id, ())))
        for forwarded in (False, True):
            if forwarded not in ways and None not in ways:
                continue
            way = base if forwarded in ways else replace(base, unread_policies=doubt)
            if not forwarded:
                found.append(way)
                continue
            for viewer_host in aliases or ([domain] if domain else []):
                found.append(_with_viewer_host(way, viewer_host))
    return found, skipped


def _with_viewer_host(origin: DiscoveredOrigin, viewer_host: str) -> DiscoveredOrigin:
    return replace(origin, viewer_host=viewer_host)


def discover(inventory: Inventory) -> Discovery:
    """Every probe target of the inventory's distributions, sorted by name, and skip counts."""
    origins: dict[str, DiscoveredOrigin] = {}
    skipped: dict[SkipReason, int] = {}
    for distribution in inventory.distributions:
        found, skips = discover_distribution(
            distribution,
            inventory.origin_request_policies,
            inventory.cache_policies,
            inventory.unread_policies,
        )
        for origin in found:
            origins.setdefault(origin.name, origin)
        for reason, count in skips.items():
            skipped[reason] = skipped.get(reason, 0) + count
    return Discovery(
        origins=tuple(origins[name] for name in sorted(origins)),
        skipped=skipped,
        distributions=len(inventory.distributions),
    )


def origin_configs(
    found: Iterable[DiscoveredOrigin],
    defaults: OriginDefaults,
    address_for: Callable[[str], str | None] = lambda host: None,
    *,
    settings: CloudFrontDiscoveryConfig | None = None,
    dns: DnsConfig | None = None,
) -> tuple[OriginConfig, ...]:
    """`OriginConfig`s: CloudFront's facts, the rest from `defaults`, `address` from `resolve`.

    Built by `config.origin_config`, like the configured origins; CloudFront's settings are
    checked by the configuration's own rules (`own_settings`). `defaults.labels` are merged
    under the discovery labels (`distribution_id`, `origin_id`, `domain_name`, `aliases`,
    `enabled`), which static configurations cannot set. An origin with OriginMtlsConfig gets
    the client certificate `settings.client_certificates` maps it to, or none and
    `client_certificate_missing`; `unread_policies` says why a probe exists only in doubt.
    """
    settings = settings or CloudFrontDiscoveryConfig()
    configs = []
    for origin in found:
        own = own_settings(origin)
        own["labels"] = tuple(sorted(origin.labels().items()))
        certificate = None
        if origin.mtls:
            certificate = settings.certificate_for(origin.distribution_id, origin.origin_id)
        own["client_certificate"] = certificate
        missing = origin.mtls and certificate is None
        if missing:
            log.warning(
                "origin requires mTLS: the exporter cannot present CloudFront's certificate; "
                "map it in discovery.cloudfront.client_certificates",
                extra={"provider": PROVIDER, "origin": origin.name},
            )
        configs.append(
            origin_config(
                defaults,
                own,
                name=origin.name,
                host=origin.host,
                sni=origin.sni,
                address=address_for(origin.host),
                dns=dns or DnsConfig(),
                client_certificate_missing=missing,
                unread_policies=origin.unread_policies,
            )
        )
    return tuple(configs)


def own_settings(origin: DiscoveredOrigin) -> dict[str, Any]:
    """The origin's port, protocols and CloudFront settings, parsed by the configuration's
    rules; a value they reject (an API newer than this exporter) is logged and left to the
    defaults rather than dropping the origin."""
    raw: dict[str, Any] = {"port": origin.port, **dict(origin.settings)}
    if origin.protocols:
        raw["protocols"] = [str(p) for p in origin.protocols]
    own: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            own.update(parse_settings({key: value}, PROVIDER, origin.name))
        except ConfigError as exc:
            log.warning(
                "CloudFront setting not understood; using the default",
                extra={"provider": PROVIDER, "origin": origin.name, "err": str(exc)},
            )
    return own


def merge(
    static: tuple[OriginConfig, ...], discovered: tuple[OriginConfig, ...]
) -> tuple[OriginConfig, ...]:
    """The configured origins, then the discovered ones whose name no configured origin has."""
    names = {origin.name for origin in static}
    return static + tuple(origin for origin in discovered if origin.name not in names)


# --- the AWS calls (blocking) ------------------------------------------------------------------


def make_client(
    settings: CloudFrontDiscoveryConfig,
    *,
    max_attempts: int = 3,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> CloudFrontClient:
    """A boto3 CloudFront client with the standard credential chain (env, profile, IRSA, role).

    CloudFront is global: the region only picks the partition and signs the requests; with no
    region anywhere (configuration, AWS_REGION, profile), us-east-1.
    """
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    client: CloudFrontClient = session.client(
        "cloudfront",
        region_name=settings.region or session.region_name or "us-east-1",
        endpoint_url=settings.endpoint_url,
        config=Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent_extra=f"origin-tls-exporter/{__version__}",
        ),
    )
    return client


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    error = response.get("Error")
    code = error.get("Code") if isinstance(error, Mapping) else None
    if code:
        return str(code)
    metadata = response.get("ResponseMetadata")
    status = metadata.get("HTTPStatusCode") if isinstance(metadata, Mapping) else None
    return str(status) if status else None


def call_failure(operation: str, exc: BaseException, resource: str = "") -> CallFailure:
    """What went wrong, as a few stable words: AWS's error code, else the HTTP status, else
    the exception's type (EndpointConnectionError, ReadTimeoutError)."""
    error = _error_code(exc) or type(exc).__name__
    return CallFailure(operation, error, resource, f"{type(exc).__name__}: {exc}")


def _call(
    operation: str, call: Callable[..., T], *args: Any, resource: str = "", **kwargs: Any
) -> T:
    """`call(*args, **kwargs)`; a failure fails the refresh, naming the operation."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        raise DiscoveryCallError(call_failure(operation, exc, resource)) from exc


def _summaries(client: CloudFrontClient, page_size: int, pages: list[int]) -> Iterator[Any]:
    paginator = client.get_paginator("list_distributions")
    listing = iter(paginator.paginate(PaginationConfig={"PageSize": page_size}))
    while True:
        page = _call("ListDistributions", next, listing, None)
        if page is None:
            return
        pages[0] += 1
        yield from (page.get("DistributionList") or {}).get("Items") or ()


def _complete(client: CloudFrontClient, summary: Mapping[str, Any]) -> Mapping[str, Any]:
    """The summary if it has the origins and behaviours, else the same shape from
    `GetDistribution` (some API implementations return bare summaries)."""
    if "Origins" in summary and "DefaultCacheBehavior" in summary:
        return summary
    answer = _call(
        "GetDistribution", client.get_distribution, resource=str(summary["Id"]), Id=summary["Id"]
    )
    distribution = answer["Distribution"]
    shaped = dict(distribution.get("DistributionConfig") or {})
    for key in ("Id", "ARN", "DomainName", "Status"):
        if key in distribution:
            shaped[key] = distribution[key]
    return shaped


def _tags_match(
    client: CloudFrontClient, summary: Mapping[str, Any], wanted: tuple[tuple[str, str], ...]
) -> bool:
    answer = _call(
        "ListTagsForResource",
        client.list_tags_for_resource,
        resource=str(summary.get("Id", "")),
        Resource=summary["ARN"],
    )
    tags = {t.get("Key"): t.get("Value", "") for t in _items(answer.get("Tags"))}
    return all(tags.get(key) == value for key, value in wanted)


@dataclass
class _PolicyAnswers:
    """The custom policies' answers of one `fetch()`, each policy asked once."""

    missing: list[str] = field(default_factory=list)
    unread: dict[str, CallFailure] = field(default_factory=dict)

    def lookup(
        self, operation: str, call: Callable[..., Any], policy_id: str, read: Callable[[Any], bool]
    ) -> bool | None:
        """Whether the policy forwards Host; None when it cannot be read (botocore has already
        retried throttling and 5xx), which leaves that question open for its behaviours only."""
        try:
            return read(call(Id=policy_id))
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                self.missing.append(policy_id)
                return False
            self.unread[policy_id] = call_failure(operation, exc, policy_id)
            return None


def _read_origin_request_policy(answer: Any) -> bool:
    config = answer["OriginRequestPolicy"]["OriginRequestPolicyConfig"]
    return origin_request_policy_forwards_host(config.get("HeadersConfig"))


def _read_cache_policy(answer: Any) -> bool:
    config = answer["CachePolicy"]["CachePolicyConfig"]
    parameters = config.get("ParametersInCacheKeyAndForwardedToOrigin") or {}
    return cache_policy_forwards_host(parameters.get("HeadersConfig"))


def _custom_policy_ids(distributions: Iterable[Mapping[str, Any]]) -> tuple[set[str], set[str]]:
    """The origin request and cache policy ids the behaviours use that AWS does not manage."""
    request_ids: set[str] = set()
    cache_ids: set[str] = set()
    for distribution in distributions:
        for behaviour in _behaviours(distribution):
            request_id = _policy_id(behaviour, "OriginRequestPolicyId")
            if request_id is not None and request_id not in MANAGED_ORIGIN_REQUEST_POLICIES:
                request_ids.add(request_id)
            cache_id = _policy_id(behaviour, "CachePolicyId")
            if cache_id is not None and cache_id not in MANAGED_CACHE_POLICIES:
                cache_ids.add(cache_id)
    return request_ids, cache_ids


def fetch(
    client: CloudFrontClient,
    settings: CloudFrontDiscoveryConfig,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Inventory:
    """Read the distributions `settings` select, and the custom policies they use. Blocking.

    A failed distribution call (credentials, network, throttling, AccessDenied) raises
    `DiscoveryCallError` naming the operation: the refresh fails and the last good set stays.
    A policy is different: one that does not exist cannot forward Host, and one that cannot be
    read is recorded in `unread_policies` (see `_PolicyAnswers.lookup`). Each policy is read
    once per call, however many behaviours use it.
    """
    wanted = set(settings.distribution_ids)
    pages = [0]
    distributions: list[Mapping[str, Any]] = []
    for summary in _summaries(client, page_size, pages):
        if wanted and summary.get("Id") not in wanted:
            continue
        if settings.tags and not _tags_match(client, summary, settings.tags):
            continue
        distributions.append(_complete(client, summary))
    request_ids, cache_ids = _custom_policy_ids(distributions)
    answers = _PolicyAnswers()
    request_policies = {
        pid: answers.lookup(
            "GetOriginRequestPolicy",
            client.get_origin_request_policy,
            pid,
            _read_origin_request_policy,
        )
        for pid in sorted(request_ids)
    }
    cache_policies = {
        pid: answers.lookup("GetCachePolicy", client.get_cache_policy, pid, _read_cache_policy)
        for pid in sorted(cache_ids)
    }
    found_ids = {d.get("Id") for d in distributions}
    return Inventory(
        distributions=tuple(distributions),
        origin_request_policies=_known(request_policies),
        cache_policies=_known(cache_policies),
        missing_policies=tuple(answers.missing),
        unread_policies=answers.unread,
        missing_distributions=tuple(i for i in settings.distribution_ids if i not in found_ids),
        pages=pages[0],
    )


def _known(answers: Mapping[str, bool | None]) -> dict[str, bool]:
    return {pid: forwards for pid, forwards in answers.items() if forwards is not None}
