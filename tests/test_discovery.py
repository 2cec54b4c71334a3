"""CloudFront discovery against a real moto server on 127.0.0.1, probing the real test fleet.

The moto server (`python -m moto.server`) holds distributions whose custom origins point at the
fleet's origins (`good.test`, `lonely.test`, mapped to 127.0.0.1 through `resolve`): a good one,
one that forgets its intermediate, one that forwards the viewer's Host with an alias the
certificate does not cover, S3 and http-only origins, managed and custom policies, an origin
group, a disabled distribution; seven distributions, read two per page. The rules themselves
(which behaviour forwards Host, wildcards, groups, skips) are also tested on plain dicts.
Credentials are fake and every client has an endpoint_url: nothing here talks to AWS.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from exporter.config import (
    CLOUDFRONT_DISCOVERY_KEYS,
    DEFAULT_REFRESH_INTERVAL,
    DISCOVERY_KEYS,
    MIN_REFRESH_INTERVAL,
    REFRESH_INTERVAL_RANGE,
    TOP_LEVEL_KEYS,
    CloudFrontDiscoveryConfig,
    ConfigError,
    DiscoveryConfig,
    ExporterConfig,
    OriginConfig,
    OriginDefaults,
    parse_config,
    parse_duration,
)
from exporter.demo.pki import issue
from exporter.discovery import (
    MANAGED_CACHE_POLICIES,
    MANAGED_ORIGIN_REQUEST_POLICIES,
    DiscoveredOrigin,
    DiscoveryRunner,
    SkipReason,
    discover,
    fetch,
    make_client,
    merge,
    origin_configs,
)
from exporter.discovery.cloudfront import (
    CallFailure,
    DiscoveryCallError,
    HostForwarding,
    behaviour_forwards_host,
    discover_distribution,
)
from exporter.engine.catalogue import Protocol
from exporter.engine.probe import Engine
from exporter.engine.target import ClientCertificate, ConfirmMode, IpAddressType
from exporter.engine.verdict import FailureReason
from exporter.metrics import OriginsCollector
from exporter.pages import render_origin
from exporter.store import OriginState, ResultStore
from tests.daemon_process import ExporterProcess, matching, parse_exposition, value
from tests.origins import TestOrigins
from tests.servers import free_port
from tests.servers.aws_errors import RefusingFront

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "discovery.md"
SCHEMA = ROOT / "config" / "schema.json"

ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
HOST_HEADER_ONLY = "bf0718e1-ba1e-49d1-88b1-f726733018ae"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
USE_ORIGIN_CACHE_CONTROL = "83da9c7e-98b4-4e11-a168-04f0df8e2c65"
CUSTOM_POLICY = "0f0f0f0f-1111-2222-3333-444455556666"
"""A custom origin request policy: moto has no policies and answers GetOriginRequestPolicy with a
500 (5.2.6; 5.2.5 answered 404), so it cannot be read and its behaviour is probed both ways."""
PAGE_SIZE = 2
MOTO_STATED_DEFAULTS = (
    ("connection_attempts", 3),
    ("connection_timeout", 10),
    ("origin_read_timeout", 30),
    ("origin_keepalive_timeout", 5),
)
"""What moto (like CloudFront) states for an origin created without these settings."""


# --- a moto server -----------------------------------------------------------------------------


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    endpoint: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def client(self) -> Any:
        return make_client(self.settings())

    def settings(self, **overrides: Any) -> CloudFrontDiscoveryConfig:
        return CloudFrontDiscoveryConfig(endpoint_url=self.endpoint, **overrides)


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[MotoServer]:
    """`python -m moto.server` on a free 127.0.0.1 port, until the block ends."""
    port = free_port()
    log = workdir / "moto.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = MotoServer(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto server exited ({process.returncode}): {log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"moto server did not listen within 30s: {log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def fake_aws_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """boto3's standard chain finds these first; no profile, no instance metadata."""
    missing = str(tmp_path_factory.mktemp("aws") / "none")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_REGION"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", missing)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


# --- distributions -----------------------------------------------------------------------------


def custom_origin(
    origin_id: str,
    domain: str,
    port: int,
    protocols: tuple[str, ...] = ("TLSv1.1", "TLSv1.2"),
    policy: str = "https-only",
) -> dict[str, Any]:
    return {
        "Id": origin_id,
        "DomainName": domain,
        "CustomOriginConfig": {
            "HTTPPort": 80,
            "HTTPSPort": port,
            "OriginProtocolPolicy": policy,
            "OriginSslProtocols": {"Quantity": len(protocols), "Items": list(protocols)},
        },
    }


def s3_origin(origin_id: str) -> dict[str, Any]:
    return {
        "Id": origin_id,
        "DomainName": "assets-bucket.s3.amazonaws.com",
        "S3OriginConfig": {"OriginAccessIdentity": ""},
    }


def behaviour(
    target: str,
    *,
    host: bool = False,
    cache_policy: str | None = None,
    request_policy: str | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """A cache behaviour: legacy ForwardedValues (Host or not), or policies by id."""
    found: dict[str, Any] = {"TargetOriginId": target, "ViewerProtocolPolicy": "redirect-to-https"}
    if cache_policy or request_policy:
        found["CachePolicyId"] = cache_policy or CACHING_OPTIMIZED
        if request_policy:
            found["OriginRequestPolicyId"] = request_policy
    else:
        headers = ["Host"] if host else []
        found["ForwardedValues"] = {
            "QueryString": False,
            "Cookies": {"Forward": "none"},
            "Headers": {"Quantity": len(headers), "Items": headers},
        }
        found["MinTTL"] = 0
    if path is not None:
        found["PathPattern"] = path
    return found


def distribution_config(
    reference: str,
    origins: list[dict[str, Any]],
    default: dict[str, Any],
    behaviours: tuple[dict[str, Any], ...] = (),
    aliases: tuple[str, ...] = (),
    enabled: bool = True,
    groups: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "CallerReference": reference,
        "Comment": reference,
        "Enabled": enabled,
        "Origins": {"Quantity": len(origins), "Items": origins},
        "DefaultCacheBehavior": default,
    }
    if aliases:
        config["Aliases"] = {"Quantity": len(aliases), "Items": list(aliases)}
    if behaviours:
        config["CacheBehaviors"] = {"Quantity": len(behaviours), "Items": list(behaviours)}
    if groups:
        config["OriginGroups"] = {
            "Quantity": len(groups),
            "Items": [
                {
                    "Id": group_id,
                    "FailoverCriteria": {"StatusCodes": {"Quantity": 1, "Items": [502]}},
                    "Members": {
                        "Quantity": len(members),
                        "Items": [{"OriginId": m} for m in members],
                    },
                }
                for group_id, members in groups
            ],
        }
    return config


@dataclass(frozen=True)
class Fleet:
    """The distributions in the moto server: name -> (id, CloudFront domain name)."""

    ids: dict[str, str]
    domains: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.ids[name]


def create(client: Any, config: dict[str, Any], tags: Mapping[str, str] | None = None) -> Any:
    if tags is None:
        return client.create_distribution(DistributionConfig=config)["Distribution"]
    items = [{"Key": k, "Value": v} for k, v in tags.items()]
    return client.create_distribution_with_tags(
        DistributionConfigWithTags={"DistributionConfig": config, "Tags": {"Items": items}}
    )["Distribution"]


@pytest.fixture(scope="module")
def fleet(moto: MotoServer, origins: TestOrigins) -> Fleet:
    good, lonely = origins["good"], origins["missing_intermediate"]
    assert (good.host, lonely.host) == ("good.test", "lonely.test")
    client = moto.client()
    made: dict[str, Any] = {}
    # Managed policies that do not forward Host: CloudFront sends the origin domain.
    made["good"] = create(
        client,
        distribution_config(
            "good",
            [custom_origin("web", good.host, good.port, ("TLSv1.2",))],
            behaviour("web", cache_policy=CACHING_OPTIMIZED, request_policy=ALL_VIEWER_EXCEPT_HOST),
            aliases=("shop.good.test",),
        ),
        tags={"team": "web"},
    )
    made["lonely"] = create(
        client,
        distribution_config(
            "lonely",
            [custom_origin("app", lonely.host, lonely.port, ("TLSv1", "TLSv1.1", "TLSv1.2"))],
            behaviour("app"),
        ),
    )
    # Legacy cache settings forwarding Host: one probe per alias, one alias not covered.
    made["alias"] = create(
        client,
        distribution_config(
            "alias",
            [custom_origin("web", good.host, good.port)],
            behaviour("web", host=True),
            aliases=("www.elsewhere.test", "WWW.good.test"),
        ),
        tags={"team": "web"},
    )
    # AllViewer on /api/* only; a custom policy moto does not know; S3 by default; disabled.
    made["mixed"] = create(
        client,
        distribution_config(
            "mixed",
            [
                s3_origin("assets"),
                custom_origin("api", good.host, good.port),
                custom_origin("legacy", lonely.host, lonely.port, ("TLSv1",)),
            ],
            behaviour("assets"),
            (
                behaviour("api", request_policy=ALL_VIEWER, path="/api/*"),
                behaviour("legacy", request_policy=CUSTOM_POLICY, path="/old/*"),
            ),
            aliases=("api.mixed.test",),
            enabled=False,
        ),
        tags={"team": "api", "env": "test"},
    )
    made["s3only"] = create(client, distribution_config("s3only", [s3_origin("b")], behaviour("b")))
    made["httponly"] = create(
        client,
        distribution_config(
            "httponly",
            [custom_origin("plain", "plain.test", 80, policy="http-only")],
            behaviour("plain", host=True),
            aliases=("plain.example.test",),
        ),
        tags={"team": "web"},
    )
    # No alias but Host forwarded through an origin group: viewers use the cloudfront.net name.
    made["group"] = create(
        client,
        distribution_config(
            "group",
            [
                custom_origin("primary", good.host, good.port),
                custom_origin("backup", lonely.host, lonely.port),
            ],
            behaviour("primary", cache_policy=CACHING_DISABLED),
            (behaviour("pair", request_policy=HOST_HEADER_ONLY, path="/g/*"),),
            groups=(("pair", ("primary", "backup")),),
        ),
    )
    return Fleet(
        ids={name: d["Id"] for name, d in made.items()},
        domains={name: d["DomainName"] for name, d in made.items()},
    )


def expected_names(fleet: Fleet) -> set[str]:
    return {
        f"{fleet['good']}/web",
        f"{fleet['lonely']}/app",
        f"{fleet['alias']}/web/www.elsewhere.test",
        f"{fleet['alias']}/web/www.good.test",
        f"{fleet['mixed']}/api/api.mixed.test",
        f"{fleet['mixed']}/legacy",  # its only behaviour's policy cannot be read: both ways
        f"{fleet['mixed']}/legacy/api.mixed.test",
        f"{fleet['group']}/primary",
        f"{fleet['group']}/primary/{fleet.domains['group']}",
        f"{fleet['group']}/backup/{fleet.domains['group']}",
    }


def fleet_config(
    moto: MotoServer, origins: TestOrigins, discovery: Mapping[str, Any] | None = None, **top: Any
) -> ExporterConfig:
    document: dict[str, Any] = {
        "defaults": {
            "interval": "30s",
            "timeout": "3s",
            "ca_file": origins.ca_file,
            "confirm": "negotiated",
            "labels": {"env": "test"},
        },
        "resolve": {"good.test": "127.0.0.1", "lonely.test": "127.0.0.1"},
        "origins": [{"name": "static", "host": "static.test", "labels": {"team": "edge"}}],
        "discovery": {"cloudfront": {"endpoint_url": moto.endpoint, **(discovery or {})}},
    }
    document.update(top)
    return parse_config(yaml.safe_dump(document), "fleet.yml")


# --- against moto: what is discovered ----------------------------------------------------------


def test_every_custom_origin_is_discovered_as_cloudfront_connects(
    moto: MotoServer, fleet: Fleet, origins: TestOrigins
) -> None:
    inventory = fetch(moto.client(), moto.settings(), page_size=PAGE_SIZE)
    assert inventory.pages == 4, "7 distributions, 2 per page: moto must honour MaxItems"
    assert inventory.missing_policies == ()
    assert list(inventory.unread_policies) == [CUSTOM_POLICY]
    failure = inventory.unread_policies[CUSTOM_POLICY]
    assert (failure.operation, failure.error) == ("GetOriginRequestPolicy", "500")
    assert "reached max retries" in failure.detail  # botocore retried the 5xx first
    found = discover(inventory)
    assert found.distributions == 7
    assert dict(found.skipped) == {SkipReason.S3: 2, SkipReason.HTTP_ONLY: 1}
    by_name = {o.name: o for o in found.origins}
    assert set(by_name) == expected_names(fleet)
    assert [o.name for o in found.origins] == sorted(by_name)

    good, lonely = origins["good"], origins["missing_intermediate"]
    web = by_name[f"{fleet['good']}/web"]
    assert web == DiscoveredOrigin(
        distribution_id=fleet["good"],
        distribution_domain=fleet.domains["good"],
        enabled=True,
        aliases=1,
        origin_id="web",
        host="good.test",
        port=good.port,
        protocols=(Protocol.TLSv1_2,),
        settings=MOTO_STATED_DEFAULTS,
    )
    assert web.sni is None  # AllViewerExceptHostHeader: the origin domain is the SNI
    app = by_name[f"{fleet['lonely']}/app"]
    assert (app.host, app.port, app.sni, app.aliases) == ("lonely.test", lonely.port, None, 0)
    assert app.protocols == (Protocol.TLSv1, Protocol.TLSv1_1, Protocol.TLSv1_2)
    # Host forwarded: each alias (lower-cased) is the SNI; never the origin domain.
    for alias in ("www.elsewhere.test", "www.good.test"):
        probe = by_name[f"{fleet['alias']}/web/{alias}"]
        assert (probe.host, probe.sni, probe.aliases) == ("good.test", alias, 2)
    assert f"{fleet['alias']}/web" not in by_name
    api = by_name[f"{fleet['mixed']}/api/api.mixed.test"]
    assert (api.sni, api.enabled) == ("api.mixed.test", False)
    # The unreadable policy: probed with the origin's domain and with the alias, both in doubt;
    # every other origin is discovered as if nothing had failed.
    legacy = by_name[f"{fleet['mixed']}/legacy"]
    legacy_alias = by_name[f"{fleet['mixed']}/legacy/api.mixed.test"]
    assert (legacy.sni, legacy_alias.sni) == (None, "api.mixed.test")
    doubt = (f"GetOriginRequestPolicy {CUSTOM_POLICY}: 500",)
    assert legacy.unread_policies == legacy_alias.unread_policies == doubt
    assert legacy.host_forwarding == legacy_alias.host_forwarding == HostForwarding.UNKNOWN
    others = [o for o in found.origins if o.origin_id != "legacy"]
    assert len(others) == len(by_name) - 2
    assert not any(o.unread_policies for o in others)
    # The group's members get the cloudfront.net name; primary also serves the default path.
    assert (
        by_name[f"{fleet['group']}/backup/{fleet.domains['group']}"].sni == (fleet.domains["group"])
    )
    assert by_name[f"{fleet['group']}/primary"].sni is None


def test_discovered_origins_get_defaults_resolve_and_labels(
    moto: MotoServer, fleet: Fleet, origins: TestOrigins
) -> None:
    config = fleet_config(moto, origins)
    found = discover(fetch(moto.client(), moto.settings()))
    configs = {
        o.name: o for o in origin_configs(found.origins, config.defaults, config.address_for)
    }
    alias = configs[f"{fleet['alias']}/web/www.elsewhere.test"]
    assert alias == OriginConfig(
        name=f"{fleet['alias']}/web/www.elsewhere.test",
        host="good.test",
        port=origins["good"].port,
        sni="www.elsewhere.test",
        protocols=(Protocol.TLSv1_1, Protocol.TLSv1_2),
        interval=30.0,
        timeout=3.0,
        ca_file=origins.ca_file,
        confirm=ConfirmMode.NEGOTIATED,
        max_connections=8,
        address="127.0.0.1",
        labels=(
            ("aliases", "2"),
            ("distribution_id", fleet["alias"]),
            ("domain_name", fleet.domains["alias"]),
            ("enabled", "true"),
            ("env", "test"),
            ("host_header_forwarded", "true"),
            ("origin_id", "web"),
        ),
    )
    assert dict(configs[f"{fleet['mixed']}/legacy"].labels)["enabled"] == "false"
    assert configs[f"{fleet['group']}/primary"].target().server_name == "good.test"


def test_bare_summaries_are_completed_with_get_distribution(moto: MotoServer, fleet: Fleet) -> None:
    """Some API implementations list summaries without origins or behaviours."""

    class BareSummaries:
        def __init__(self, client: Any) -> None:
            self.client = client
            self.completed: list[str] = []

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

        def get_paginator(self, operation: str) -> Any:
            paginator = self.client.get_paginator(operation)

            class Bare:
                def paginate(self, **kwargs: Any) -> Iterator[Any]:
                    keep = ("Id", "ARN", "DomainName", "Status", "Enabled")
                    for page in paginator.paginate(**kwargs):
                        items = page["DistributionList"].get("Items", [])
                        page["DistributionList"]["Items"] = [
                            {k: v for k, v in item.items() if k in keep} for item in items
                        ]
                        yield page

            return Bare()

        def get_distribution(self, **kwargs: Any) -> Any:
            self.completed.append(kwargs["Id"])
            return self.client.get_distribution(**kwargs)

    bare = BareSummaries(moto.client())
    assert discover(fetch(bare, moto.settings(), PAGE_SIZE)) == discover(
        fetch(moto.client(), moto.settings(), PAGE_SIZE)
    )
    assert sorted(bare.completed) == sorted(fleet.ids.values())


def test_distribution_ids_and_tags_select_distributions(moto: MotoServer, fleet: Fleet) -> None:
    client = moto.client()
    chosen = moto.settings(distribution_ids=(fleet["good"], fleet["mixed"], "E0NOTTHERE0000"))
    inventory = fetch(client, chosen, PAGE_SIZE)
    assert {d["Id"] for d in inventory.distributions} == {fleet["good"], fleet["mixed"]}
    assert inventory.missing_distributions == ("E0NOTTHERE0000",)
    tagged = fetch(client, moto.settings(tags=(("team", "web"),)), PAGE_SIZE)
    assert {d["Id"] for d in tagged.distributions} == {
        fleet["good"],
        fleet["alias"],
        fleet["httponly"],
    }
    both = fetch(client, moto.settings(tags=(("env", "test"), ("team", "api"))), PAGE_SIZE)
    assert [d["Id"] for d in both.distributions] == [fleet["mixed"]]
    nothing = fetch(client, moto.settings(tags=(("team", "WEB"),)), PAGE_SIZE)  # exact values
    assert discover(nothing).origins == ()


def documented_actions() -> set[str]:
    """The actions of the IAM policy JSON in docs/discovery.md."""
    for block in re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.DOTALL):
        policy = json.loads(block)
        if "Statement" in policy:
            actions: set[str] = set()
            for statement in policy["Statement"]:
                listed = statement["Action"]
                actions.update([listed] if isinstance(listed, str) else listed)
            return actions
    raise AssertionError("no IAM policy JSON in docs/discovery.md")


def test_the_documented_iam_policy_covers_every_call(moto: MotoServer, fleet: Fleet) -> None:
    client = moto.client()
    calls: set[str] = set()
    client.meta.events.register(
        "before-call.cloudfront", lambda model, **_: calls.add(f"cloudfront:{model.name}")
    )
    fetch(client, moto.settings(tags=(("team", "web"),)), PAGE_SIZE)  # ListTagsForResource
    fetch(client, moto.settings(), PAGE_SIZE)  # GetOriginRequestPolicy (the custom one)
    assert calls == {
        "cloudfront:ListDistributions",
        "cloudfront:ListTagsForResource",
        "cloudfront:GetOriginRequestPolicy",
    }
    assert documented_actions() == {
        "cloudfront:ListDistributions",
        "cloudfront:GetDistribution",
        "cloudfront:ListTagsForResource",
        "cloudfront:GetOriginRequestPolicy",
        "cloudfront:GetCachePolicy",
    }
    assert calls <= documented_actions()


# --- against moto: the runner ------------------------------------------------------------------


def series(registry: CollectorRegistry) -> dict[Any, float]:
    return parse_exposition(generate_latest(registry).decode())


def test_runner_discovers_merges_and_reports(
    moto: MotoServer, fleet: Fleet, origins: TestOrigins
) -> None:
    registry = CollectorRegistry()
    changes: list[tuple[OriginConfig, ...]] = []
    runner = DiscoveryRunner(registry, changes.append, page_size=PAGE_SIZE)
    config = fleet_config(moto, origins)

    values: dict[Any, float] = {}

    async def scenario() -> None:
        await runner.apply(config)
        assert len(changes) == 1
        values.update(series(registry))
        assert {o.name for o in runner.origins} == expected_names(fleet)
        merged = merge(config.origins, runner.origins)
        assert merged[0].name == "static"
        assert len(merged) == 1 + len(expected_names(fleet))
        # Same configuration again: nothing to do.
        await runner.apply(config)
        assert len(changes) == 1
        # New defaults re-derive the origins without asking AWS (the source is unchanged).
        last = runner.last_discovery
        await runner.apply(replace(config, defaults=replace(config.defaults, interval=120.0)))
        assert len(changes) == 2
        assert runner.last_discovery is last
        assert {o.interval for o in runner.origins} == {120.0}
        # Dropping the section stops discovery and empties the set.
        await runner.apply(replace(config, discovery=None))
        assert changes[-1] == ()
        assert runner.origins == ()
        await runner.stop()

    asyncio.run(scenario())
    provider = {"provider": "cloudfront"}
    name = "origin_tls_exporter_discovery"
    assert value(values, f"{name}_origins", **provider) == len(expected_names(fleet))
    assert value(values, f"{name}_distributions", **provider) == 7
    assert value(values, f"{name}_last_refresh_successful", **provider) == 1
    assert value(values, f"{name}_refresh_errors_total", **provider) == 0
    assert value(values, f"{name}_last_success_timestamp_seconds", **provider) > time.time() - 60
    assert value(values, f"{name}_refresh_duration_seconds", **provider) > 0
    skipped = matching(values, f"{name}_origins_skipped", **provider)
    assert {dict(k)["reason"]: v for k, v in skipped.items()} == {
        "s3": 2,
        "http_only": 1,
        "vpc": 0,
        "unsupported": 0,
    }
    # Disabled: the discovery series are gone.
    assert not [k for k in series(registry) if k[0].startswith(name)]


def test_a_policy_refused_with_access_denied_affects_only_its_origins(
    moto: MotoServer, fleet: Fleet, origins: TestOrigins
) -> None:
    """An IAM policy without cloudfront:GetOriginRequestPolicy: the refresh succeeds, the one
    behaviour that uses the custom policy is probed both ways and says why, and the refusal
    is counted by operation and error."""
    registry = CollectorRegistry()
    refused = {"GetOriginRequestPolicy": ("AccessDenied", 403)}
    with RefusingFront(moto.endpoint, refused) as front:
        runner = DiscoveryRunner(registry, page_size=PAGE_SIZE)
        config = fleet_config(moto, origins, discovery={"endpoint_url": front.endpoint})

        async def scenario() -> None:
            await runner.apply(config)
            assert await runner.refresh() is True  # twice: counted per failed call
            await runner.stop()

        asyncio.run(scenario())
        assert front.calls["GetOriginRequestPolicy"] == 2  # AccessDenied is not retried
    by_name = {o.name: o for o in runner.origins}
    assert set(by_name) == expected_names(fleet)
    doubt = (f"GetOriginRequestPolicy {CUSTOM_POLICY}: AccessDenied",)
    legacy = (f"{fleet['mixed']}/legacy", f"{fleet['mixed']}/legacy/api.mixed.test")
    for name, origin in by_name.items():
        assert origin.unread_policies == (doubt if name in legacy else ()), name
        forwarded = dict(origin.labels)["host_header_forwarded"]
        assert (forwarded == "unknown") == (name in legacy), name
    values = series(registry)
    errors = matching(values, "origin_tls_discovery_errors_total")
    assert errors == {
        frozenset({("operation", "GetOriginRequestPolicy"), ("error", "AccessDenied")}): 2
    }
    provider = {"provider": "cloudfront"}
    assert value(values, "origin_tls_exporter_discovery_last_refresh_successful", **provider) == 1
    # The origin's page says what could not be read and what settles it.
    page = render_origin(OriginState(by_name[legacy[1]], None))
    banner = re.search(r'<p class="banner pending" id="host-forwarding-unknown">.*?</p>', page)
    assert banner, page
    assert f"GetOriginRequestPolicy {CUSTOM_POLICY}: AccessDenied" in banner.group(0)
    assert "cloudfront:GetOriginRequestPolicy" in banner.group(0)
    good = render_origin(OriginState(by_name[f"{fleet['good']}/web"], None))
    assert 'id="host-forwarding-unknown"' not in good


def test_a_failed_listing_is_counted_by_operation(moto: MotoServer, origins: TestOrigins) -> None:
    registry = CollectorRegistry()
    with RefusingFront(moto.endpoint, {"ListDistributions": ("AccessDenied", 403)}) as front:
        runner = DiscoveryRunner(registry)
        config = fleet_config(moto, origins, discovery={"endpoint_url": front.endpoint})

        async def scenario() -> None:
            await runner.apply(config)
            await runner.stop()

        asyncio.run(scenario())
    assert runner.origins == ()
    values = series(registry)
    assert matching(values, "origin_tls_discovery_errors_total") == {
        frozenset({("operation", "ListDistributions"), ("error", "AccessDenied")}): 1
    }
    provider = {"provider": "cloudfront"}
    assert value(values, "origin_tls_exporter_discovery_refresh_errors_total", **provider) == 1


@pytest.fixture
def own_moto(tmp_path: Path, origins: TestOrigins) -> Iterator[MotoServer]:
    """A moto server of its own, to stop or fill without disturbing the shared one."""
    with moto_server(tmp_path) as server:
        good = origins["good"]
        create(
            server.client(),
            distribution_config(
                "first", [custom_origin("web", good.host, good.port)], behaviour("web")
            ),
        )
        yield server


def test_a_failed_refresh_keeps_the_last_good_set(
    own_moto: MotoServer, origins: TestOrigins
) -> None:
    registry = CollectorRegistry()
    changes: list[tuple[OriginConfig, ...]] = []
    runner = DiscoveryRunner(
        registry,
        changes.append,
        client_factory=functools.partial(make_client, max_attempts=1, connect_timeout=1.0),
    )

    async def scenario() -> None:
        await runner.apply(fleet_config(own_moto, origins))
        assert len(runner.origins) == 1
        good = runner.origins
        own_moto.stop()
        assert await runner.refresh() is False
        assert await runner.refresh() is False
        assert runner.origins == good
        await runner.stop()

    asyncio.run(scenario())
    assert len(changes) == 1
    values = series(registry)
    name = "origin_tls_exporter_discovery"
    assert value(values, f"{name}_refresh_errors_total", provider="cloudfront") == 2
    assert value(values, f"{name}_last_refresh_successful", provider="cloudfront") == 0
    assert value(values, f"{name}_origins", provider="cloudfront") == 1


def test_the_background_loop_picks_up_new_distributions(
    own_moto: MotoServer, origins: TestOrigins
) -> None:
    config = fleet_config(own_moto, origins)
    assert config.discovery is not None
    fast = DiscoveryConfig(replace(config.discovery.cloudfront, refresh_interval=0.2))
    changes: list[tuple[OriginConfig, ...]] = []
    lonely = origins["missing_intermediate"]

    async def scenario() -> None:
        grown = asyncio.Event()

        def on_change(found: tuple[OriginConfig, ...]) -> None:
            changes.append(found)
            if len(found) > 1:
                grown.set()

        runner = DiscoveryRunner(CollectorRegistry(), on_change)
        await runner.apply(replace(config, discovery=fast))
        assert len(runner.origins) == 1
        await asyncio.to_thread(
            create,
            own_moto.client(),
            distribution_config(
                "second", [custom_origin("app", lonely.host, lonely.port)], behaviour("app")
            ),
        )
        await asyncio.wait_for(grown.wait(), 15)
        await runner.stop()

    asyncio.run(scenario())
    assert [len(c) for c in changes] == [1, 2]
    assert {o.host for o in changes[-1]} == {"good.test", "lonely.test"}


def test_a_stopped_runner_starts_again_and_a_crashing_callback_is_contained() -> None:
    client = FakeClient([plain()], {})
    pages: list[int] = []
    calls: list[int] = []

    def count_pages(settings: CloudFrontDiscoveryConfig) -> Any:
        pages.append(1)
        return client

    def crash(found: tuple[OriginConfig, ...]) -> None:
        calls.append(len(found))
        raise RuntimeError("the daemon's bug")

    runner = DiscoveryRunner(CollectorRegistry(), crash, client_factory=count_pages)
    config = replace(ExporterConfig(source="x"), discovery=DiscoveryConfig())

    async def scenario() -> None:
        await runner.apply(config)
        assert [o.name for o in runner.origins] == ["E1/o"]
        await runner.stop()
        await runner.apply(config)  # same settings, but stopped: refresh again
        await runner.stop()

    asyncio.run(scenario())
    assert len(pages) == 2
    assert calls == [1]  # the origins did not change the second time


# --- the metrics contract: origin_tls_origin_info ----------------------------------------------


def test_origin_info_carries_the_discovery_labels(
    moto: MotoServer, fleet: Fleet, origins: TestOrigins
) -> None:
    config = fleet_config(moto, origins)
    found = discover(fetch(moto.client(), moto.settings()))
    discovered = origin_configs(found.origins, config.defaults, config.address_for)
    store = ResultStore()
    store.set_origins(merge(config.origins, discovered))
    collector = OriginsCollector(store)
    info = matching(parse_exposition(collector.render().decode()), "origin_tls_origin_info")
    rows = {dict(labels)["origin"]: dict(labels) for labels in info}
    assert rows["static"] == {
        "origin": "static",
        "host": "static.test",
        "port": "443",
        "sni": "static.test",
        "team": "edge",
        "env": "test",
        "distribution_id": "",
        "origin_id": "",
        "domain_name": "",
        "aliases": "",
        "enabled": "",
        "host_header_forwarded": "",
    }
    alias = rows[f"{fleet['alias']}/web/www.elsewhere.test"]
    assert alias == {
        "origin": f"{fleet['alias']}/web/www.elsewhere.test",
        "host": "good.test",
        "port": str(origins["good"].port),
        "sni": "www.elsewhere.test",
        "team": "",
        "env": "test",
        "distribution_id": fleet["alias"],
        "origin_id": "web",
        "domain_name": fleet.domains["alias"],
        "aliases": "2",
        "enabled": "true",
        "host_header_forwarded": "true",
    }
    assert rows[f"{fleet['good']}/web"]["sni"] == "good.test"  # CloudFront sends the domain
    assert rows[f"{fleet['good']}/web"]["host_header_forwarded"] == "false"
    for name in (f"{fleet['mixed']}/legacy", f"{fleet['mixed']}/legacy/api.mixed.test"):
        assert rows[name]["host_header_forwarded"] == "unknown"
    assert rows[f"{fleet['mixed']}/legacy"]["enabled"] == "false"


# --- end to end: the discovered origins probe to the expected verdicts -------------------------


def test_discovered_origins_probe_to_cloudfronts_verdicts(
    moto: MotoServer, fleet: Fleet, origins: TestOrigins, engine: Engine
) -> None:
    config = fleet_config(moto, origins)
    found = discover(fetch(moto.client(), moto.settings()))
    configs = {
        o.name: o for o in origin_configs(found.origins, config.defaults, config.address_for)
    }
    expected = {
        f"{fleet['good']}/web": (),
        f"{fleet['lonely']}/app": (FailureReason.MISSING_INTERMEDIATE,),
        f"{fleet['alias']}/web/www.good.test": (),
        f"{fleet['alias']}/web/www.elsewhere.test": (FailureReason.NAME_MISMATCH,),
    }

    async def probe_all() -> dict[str, tuple[FailureReason, ...]]:
        results = await asyncio.gather(
            *(engine.probe(configs[n].target(), configs[n].options()) for n in expected)
        )
        return {n: r.reasons for n, r in zip(expected, results, strict=True)}

    assert asyncio.run(probe_all()) == expected


# --- the rules, on plain dicts -----------------------------------------------------------------


def plain(**overrides: Any) -> dict[str, Any]:
    """A summary-shaped distribution with one custom origin `o` (overridable)."""
    distribution: dict[str, Any] = {
        "Id": "E1",
        "DomainName": "d1.cloudfront.net",
        "Enabled": True,
        "Aliases": {"Quantity": 0},
        "Origins": {"Quantity": 1, "Items": [custom_origin("o", "origin.example", 443)]},
        "DefaultCacheBehavior": behaviour("o"),
    }
    distribution.update(overrides)
    return distribution


def snis(distribution: Mapping[str, Any], **policies: Mapping[str, bool]) -> set[str | None]:
    found, _ = discover_distribution(
        distribution, policies.get("request", {}), policies.get("cache", {})
    )
    return {o.sni for o in found}


ALIASES = {"Quantity": 2, "Items": ["www.example.com", "*.shop.example.com"]}


@pytest.mark.parametrize(
    ("rule", "forwards"),
    [
        (behaviour("o"), False),
        (behaviour("o", host=True), True),
        ({"TargetOriginId": "o", "ForwardedValues": {"Headers": {"Items": ["*"]}}}, True),
        ({"TargetOriginId": "o", "ForwardedValues": {"Headers": {"Items": ["host"]}}}, True),
        ({"TargetOriginId": "o", "ForwardedValues": {"Headers": {"Items": ["Origin"]}}}, False),
        (behaviour("o", request_policy=ALL_VIEWER), True),
        (behaviour("o", request_policy=HOST_HEADER_ONLY), True),
        (behaviour("o", request_policy="33f36d7e-f396-46d9-90e0-52428a34d9dc"), True),
        (behaviour("o", request_policy=ALL_VIEWER_EXCEPT_HOST), False),
        (behaviour("o", request_policy="59781a5b-3903-41f3-afcb-af62929ccde1"), False),
        (behaviour("o", cache_policy=CACHING_OPTIMIZED), False),
        (behaviour("o", cache_policy=USE_ORIGIN_CACHE_CONTROL), True),  # Host in the cache key
        (behaviour("o", cache_policy="2e54312d-136d-493c-8eb9-b001f22f67d2"), True),  # Amplify
        (behaviour("o", request_policy="custom-yes"), True),
        (behaviour("o", request_policy="custom-no"), False),
        (behaviour("o", request_policy="never-seen"), False),
        (behaviour("o", cache_policy="cache-yes"), True),
        ({"TargetOriginId": "o", "CachePolicyId": "", "OriginRequestPolicyId": ""}, False),
    ],
)
def test_which_behaviours_forward_host(rule: dict[str, Any], forwards: bool) -> None:
    custom_request = {"custom-yes": True, "custom-no": False}
    custom_cache = {"cache-yes": True}
    assert behaviour_forwards_host(rule, custom_request, custom_cache) is forwards


def test_managed_policy_tables() -> None:
    forwarding = {name for name, forwards in MANAGED_ORIGIN_REQUEST_POLICIES.values() if forwards}
    assert forwarding == {"AllViewer", "AllViewerAndCloudFrontHeaders-2022-06", "HostHeaderOnly"}
    assert MANAGED_ORIGIN_REQUEST_POLICIES[ALL_VIEWER] == ("AllViewer", True)
    assert MANAGED_ORIGIN_REQUEST_POLICIES[ALL_VIEWER_EXCEPT_HOST][1] is False
    with_host = {name for name, forwards in MANAGED_CACHE_POLICIES.values() if forwards}
    assert with_host == {
        "Amplify",
        "UseOriginCacheControlHeaders",
        "UseOriginCacheControlHeaders-QueryStrings",
    }


def test_forwarded_host_probes_every_alias_and_wildcards_get_a_name() -> None:
    found, _ = discover_distribution(
        plain(Aliases=ALIASES, DefaultCacheBehavior=behaviour("o", host=True))
    )
    assert {(o.name, o.sni) for o in found} == {
        ("E1/o/www.example.com", "www.example.com"),
        ("E1/o/*.shop.example.com", "wildcard.shop.example.com"),
    }
    # Without forwarding, the aliases do not matter: CloudFront sends the origin domain.
    assert snis(plain(Aliases=ALIASES)) == {None}
    # Forwarding without aliases: viewers can only use the distribution's own name.
    assert snis(plain(DefaultCacheBehavior=behaviour("o", host=True))) == {"d1.cloudfront.net"}


def test_an_origin_reached_both_ways_is_probed_both_ways() -> None:
    distribution = plain(
        Aliases={"Quantity": 1, "Items": ["www.example.com"]},
        CacheBehaviors={"Quantity": 1, "Items": [behaviour("o", host=True, path="/app/*")]},
    )
    assert snis(distribution) == {None, "www.example.com"}


def test_origin_groups_and_unused_origins() -> None:
    distribution = plain(
        Aliases={"Quantity": 1, "Items": ["www.example.com"]},
        Origins={
            "Quantity": 3,
            "Items": [
                custom_origin("a", "a.example", 443),
                custom_origin("b", "b.example", 8443),
                custom_origin("unused", "unused.example", 443),
            ],
        },
        OriginGroups={
            "Quantity": 1,
            "Items": [{"Id": "g", "Members": {"Items": [{"OriginId": "a"}, {"OriginId": "b"}]}}],
        },
        DefaultCacheBehavior=behaviour("g", request_policy=ALL_VIEWER),
    )
    found, skipped = discover_distribution(distribution)
    assert {(o.name, o.port, o.sni) for o in found} == {
        ("E1/a/www.example.com", 443, "www.example.com"),
        ("E1/b/www.example.com", 8443, "www.example.com"),
        ("E1/unused", 443, None),  # no traffic yet: probed as it would be connected to
    }
    assert skipped == {}


def test_skipped_origins_are_counted_by_reason() -> None:
    origins = [
        s3_origin("s3"),
        {"Id": "vpc", "DomainName": "internal.example", "VpcOriginConfig": {"VpcOriginId": "v"}},
        custom_origin("http", "http.example", 443, policy="http-only"),
        custom_origin("future", "future.example", 443, protocols=("TLSv1.3",)),
        {"Id": "bare", "DomainName": "bare.example"},
        custom_origin("port", "port.example", 0),
        custom_origin("match", "match.example", 443, policy="match-viewer"),
    ]
    found, skipped = discover_distribution(
        plain(Origins={"Quantity": len(origins), "Items": origins})
    )
    assert [o.name for o in found] == ["E1/match"]  # match-viewer: HTTPS viewers get TLS
    assert skipped == {
        SkipReason.S3: 1,
        SkipReason.VPC: 1,
        SkipReason.HTTP_ONLY: 1,
        SkipReason.UNSUPPORTED: 3,
    }


def test_unstated_protocols_and_port_come_from_the_defaults() -> None:
    bare = {
        "Id": "o",
        "DomainName": "origin.example",
        "CustomOriginConfig": {"OriginProtocolPolicy": "https-only"},
    }
    empty = custom_origin("empty", "empty.example", 443, protocols=())
    found, _ = discover_distribution(plain(Origins={"Quantity": 2, "Items": [bare, empty]}))
    assert [(o.name, o.port, o.protocols) for o in found] == [
        ("E1/o", 443, None),
        ("E1/empty", 443, None),
    ]
    found = found[:1]
    defaults = OriginDefaults(protocols=(Protocol.TLSv1_2,), interval=90.0, timeout=5.0)
    (config,) = origin_configs(found, defaults)
    assert (config.protocols, config.interval, config.timeout) == ((Protocol.TLSv1_2,), 90.0, 5.0)
    assert config.address is None


def test_merge_keeps_configured_origins_first_and_winning() -> None:
    static = (OriginConfig(name="E1/o", host="mine.example"), OriginConfig(name="x", host="x"))
    discovered = origin_configs(discover_distribution(plain())[0], OriginDefaults())
    other = OriginConfig(name="E2/o", host="other.example")
    merged = merge(static, (*discovered, other))
    assert [(o.name, o.host) for o in merged] == [
        ("E1/o", "mine.example"),
        ("x", "x"),
        ("E2/o", "other.example"),
    ]
    assert merge((), discovered) == discovered


class FakeClient:
    """Answers policy look-ups from dicts; raises like botocore for the others."""

    def __init__(self, distributions: list[dict[str, Any]], policies: dict[str, Any]) -> None:
        self.distributions = distributions
        self.policies = policies
        self.calls: list[tuple[str, str]] = []

    def get_paginator(self, operation: str) -> Any:
        items = self.distributions

        class Pages:
            def paginate(self, **kwargs: Any) -> Iterator[Any]:
                yield {"DistributionList": {"Items": items}}

        return Pages()

    def _answer(self, kind: str, policy_id: str) -> Any:
        self.calls.append((kind, policy_id))
        answer = self.policies.get(policy_id)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get_origin_request_policy(self, **kwargs: Any) -> Any:
        return self._answer("request", kwargs["Id"])

    def get_cache_policy(self, **kwargs: Any) -> Any:
        return self._answer("cache", kwargs["Id"])

    def get_distribution(self, **kwargs: Any) -> Any:
        raise AssertionError("summaries are complete")

    def list_tags_for_resource(self, **kwargs: Any) -> Any:
        raise AssertionError("no tag filter")


class ClientError(Exception):
    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


def request_policy(behavior: str, headers: list[str]) -> dict[str, Any]:
    config = {"HeadersConfig": {"HeaderBehavior": behavior, "Headers": {"Items": headers}}}
    return {"OriginRequestPolicy": {"OriginRequestPolicyConfig": config}}


def cache_policy(headers: list[str]) -> dict[str, Any]:
    headers_config = {"HeaderBehavior": "whitelist", "Headers": {"Items": headers}}
    parameters = {"ParametersInCacheKeyAndForwardedToOrigin": {"HeadersConfig": headers_config}}
    return {"CachePolicy": {"CachePolicyConfig": parameters}}


def test_custom_policies_are_read_once_and_decide_the_sni() -> None:
    cases = {
        "allviewer": request_policy("allViewer", []),
        "plus-cf": request_policy("allViewerAndWhitelistCloudFront", ["CloudFront-Viewer-City"]),
        "except-host": request_policy("allExcept", ["Host"]),
        "except-other": request_policy("allExcept", ["Cookie"]),
        "list-host": request_policy("whitelist", ["Origin", "HOST"]),
        "list-other": request_policy("whitelist", ["Origin"]),
        "none": request_policy("none", []),
        "gone": ClientError("NoSuchOriginRequestPolicy", 404),
    }
    distributions = [
        plain(
            Id=f"E{n}",
            Aliases={"Quantity": 1, "Items": ["www.example.com"]},
            DefaultCacheBehavior=behaviour("o", request_policy=policy_id),
            CacheBehaviors={
                "Quantity": 1,
                "Items": [behaviour("o", request_policy=policy_id, path="/again/*")],
            },
        )
        for n, policy_id in enumerate(cases)
    ]
    distributions.append(
        plain(
            Id="EC",
            Aliases={"Quantity": 1, "Items": ["www.example.com"]},
            DefaultCacheBehavior=behaviour("o", cache_policy="cache-host"),
        )
    )
    client = FakeClient(distributions, {**cases, "cache-host": cache_policy(["Host"])})
    inventory = fetch(client, CloudFrontDiscoveryConfig())
    assert sorted(client.calls) == sorted(
        [("request", pid) for pid in cases] + [("cache", "cache-host")]
    )
    assert inventory.missing_policies == ("gone",)
    found = discover(inventory)
    forwarded = {o.distribution_id for o in found.origins if o.sni == "www.example.com"}
    assert forwarded == {"E0", "E1", "E3", "E4", "EC"}
    assert {o.distribution_id for o in found.origins if o.sni is None} == {"E2", "E5", "E6", "E7"}


def test_a_policy_that_cannot_be_read_leaves_only_its_behaviours_unknown() -> None:
    aliases = {"Quantity": 1, "Items": ["www.example.com"]}
    distributions = [
        # only the unreadable policy routes here: both ways, both in doubt
        plain(Id="E1", Aliases=aliases, DefaultCacheBehavior=behaviour("o", request_policy="no")),
        # a known no-Host behaviour beside it: the domain probe is certain, the alias one not
        plain(
            Id="E2",
            Aliases=aliases,
            CacheBehaviors={
                "Quantity": 1,
                "Items": [behaviour("o", cache_policy="slow", path="/slow/*")],
            },
        ),
        # a readable policy forwarding Host wins over an unreadable cache policy
        plain(
            Id="E3",
            Aliases=aliases,
            DefaultCacheBehavior=behaviour("o", cache_policy="slow", request_policy="host"),
        ),
        plain(Id="E4", Aliases=aliases),  # no custom policy: untouched
    ]
    client = FakeClient(
        distributions,
        {
            "no": ClientError("AccessDenied", 403),
            "slow": ClientError("Throttling", 400),
            "host": request_policy("allViewer", []),
        },
    )
    inventory = fetch(client, CloudFrontDiscoveryConfig())
    assert {pid: str(f) for pid, f in inventory.unread_policies.items()} == {
        "no": "GetOriginRequestPolicy no: AccessDenied",
        "slow": "GetCachePolicy slow: Throttling",
    }
    assert inventory.origin_request_policies == {"host": True}
    found = {(o.name, o.host_forwarding) for o in discover(inventory).origins}
    assert found == {
        ("E1/o", HostForwarding.UNKNOWN),
        ("E1/o/www.example.com", HostForwarding.UNKNOWN),
        ("E2/o", HostForwarding.NOT_FORWARDED),
        ("E2/o/www.example.com", HostForwarding.UNKNOWN),
        ("E3/o/www.example.com", HostForwarding.FORWARDED),
        ("E4/o", HostForwarding.NOT_FORWARDED),
    }
    (doubtful,) = [o for o in discover(inventory).origins if o.name == "E2/o/www.example.com"]
    assert doubtful.unread_policies == ("GetCachePolicy slow: Throttling",)
    (config,) = origin_configs([doubtful], OriginDefaults())
    assert config.unread_policies == doubtful.unread_policies
    assert dict(config.labels)["host_header_forwarded"] == "unknown"


def test_a_failed_distribution_call_fails_the_refresh_naming_it() -> None:
    class NoTags(FakeClient):
        def list_tags_for_resource(self, **kwargs: Any) -> Any:
            raise ClientError("AccessDenied", 403)

    client = NoTags([plain(ARN="arn:aws:cloudfront::1:distribution/E1")], {})
    with pytest.raises(DiscoveryCallError, match="ListTagsForResource E1: AccessDenied") as caught:
        fetch(client, CloudFrontDiscoveryConfig(tags=(("team", "web"),)))
    assert caught.value.failure == CallFailure(
        "ListTagsForResource", "AccessDenied", "E1", "ClientError: AccessDenied"
    )


def test_no_region_anywhere_signs_for_us_east_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    client = make_client(CloudFrontDiscoveryConfig(endpoint_url="http://127.0.0.1:9"))
    assert client.meta.region_name == "us-east-1"  # type: ignore[attr-defined]
    china = make_client(CloudFrontDiscoveryConfig(region="cn-north-1"))
    assert china.meta.endpoint_url.endswith(".amazonaws.com.cn")  # type: ignore[attr-defined]


# --- configuration -----------------------------------------------------------------------------


def test_discovery_configuration() -> None:
    config = parse_config(
        "discovery:\n"
        "  cloudfront:\n"
        "    refresh_interval: 10m\n"
        "    endpoint_url: ' http://127.0.0.1:5000 '\n"
        "    region: ' eu-west-1 '\n"
        "    distribution_ids: [E2QWRUHEXAMPLE, E1EXAMPLE2345]\n"
        "    tags: {team: web, empty: ''}\n",
        "conf.yml",
    )
    assert config.discovery == DiscoveryConfig(
        CloudFrontDiscoveryConfig(
            refresh_interval=600.0,
            endpoint_url="http://127.0.0.1:5000",
            region="eu-west-1",
            distribution_ids=("E2QWRUHEXAMPLE", "E1EXAMPLE2345"),
            tags=(("empty", ""), ("team", "web")),
        )
    )
    assert parse_config("discovery: {cloudfront: }", "c").discovery == DiscoveryConfig()
    assert DiscoveryConfig().cloudfront.refresh_interval == DEFAULT_REFRESH_INTERVAL == 300.0
    assert parse_config("discovery:", "c").discovery is None
    assert parse_config("discovery: {}", "c").discovery is None
    assert parse_config("origins: []", "c").discovery is None
    with pytest.raises(ConfigError, match=r"refresh_interval: must be at least 10s, got 9s"):
        parse_config("discovery: {cloudfront: {refresh_interval: 9s}}", "c")
    assert MIN_REFRESH_INTERVAL == 10.0


def test_same_source_ignores_only_the_interval() -> None:
    base = CloudFrontDiscoveryConfig(tags=(("team", "web"),))
    assert base.same_source(replace(base, refresh_interval=60.0))
    assert not base.same_source(replace(base, tags=()))
    assert not base.same_source(replace(base, endpoint_url="http://127.0.0.1:1"))
    assert not base.same_source(replace(base, region="eu-west-1"))
    assert not base.same_source(replace(base, distribution_ids=("E1",)))


def test_schema_mirrors_the_discovery_section() -> None:
    schema = json.loads(SCHEMA.read_text())
    discovery = schema["properties"]["discovery"]
    cloudfront = discovery["properties"]["cloudfront"]
    assert TOP_LEVEL_KEYS[-1] == "discovery"
    assert tuple(discovery["properties"]) == DISCOVERY_KEYS
    assert tuple(cloudfront["properties"]) == CLOUDFRONT_DISCOVERY_KEYS
    assert discovery["additionalProperties"] is False
    assert cloudfront["additionalProperties"] is False
    refresh = cloudfront["properties"]["refresh_interval"]
    assert parse_duration(refresh["default"]) == DEFAULT_REFRESH_INTERVAL
    assert (refresh["minimum"], refresh["maximum"]) == REFRESH_INTERVAL_RANGE
    assert REFRESH_INTERVAL_RANGE[0] == MIN_REFRESH_INTERVAL


# --- the real daemon --------------------------------------------------------------------------


def test_the_daemon_probes_discovered_origins(
    moto: MotoServer, fleet: Fleet, origins: TestOrigins, tmp_path: Path
) -> None:
    document = {
        "defaults": {"interval": "2s", "timeout": "2s", "ca_file": origins.ca_file},
        "resolve": {"good.test": "127.0.0.1", "lonely.test": "127.0.0.1"},
        "origins": [{"name": "listed", "host": "good.test", "port": origins["good"].port}],
        "discovery": {"cloudfront": {"endpoint_url": moto.endpoint}},
    }
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(document))
    good = f"{fleet['good']}/web"
    lonely = f"{fleet['lonely']}/app"
    alias = f"{fleet['alias']}/web/www.elsewhere.test"
    legacy = f"{fleet['mixed']}/legacy"  # its policy cannot be read (moto's 500): both ways
    legacy_alias = f"{legacy}/api.mixed.test"
    wanted = {"listed", good, lonely, alias, legacy, legacy_alias}
    with ExporterProcess(["serve", "--config.file", str(config)], tmp_path / "log") as daemon:

        def verdicts() -> dict[str, float]:
            found = matching(daemon.metrics(), "origin_tls_cloudfront_compatible")
            return {dict(labels)["origin"]: v for labels, v in found.items()}

        daemon.wait_for(lambda: wanted <= set(verdicts()), 60, "discovered probed")
        series = daemon.metrics()
        assert value(series, "origin_tls_cloudfront_compatible", origin="listed") == 1
        assert value(series, "origin_tls_cloudfront_compatible", origin=good) == 1
        assert (
            value(series, "origin_tls_cloudfront_failure_reason", origin=lonely,
                  reason="missing_intermediate")
            == 1
        )  # fmt: skip
        assert (
            value(series, "origin_tls_cloudfront_failure_reason", origin=alias,
                  reason="name_mismatch")
            == 1
        )  # fmt: skip
        info = matching(series, "origin_tls_origin_info", origin=good)
        labels = dict(next(iter(info)))
        assert labels["distribution_id"] == fleet["good"]
        assert labels["origin_id"] == "web"
        assert labels["enabled"] == "true"
        assert labels["sni"] == "good.test"
        aliased = dict(next(iter(matching(series, "origin_tls_origin_info", origin=alias))))
        assert aliased["sni"] == "www.elsewhere.test"
        assert matching(series, "origin_tls_exporter_discovery_last_success_timestamp_seconds")
        # The unreadable policy: both probes ran and say so; the refresh still succeeded.
        for name, sni in ((legacy, "lonely.test"), (legacy_alias, "api.mixed.test")):
            doubtful = dict(next(iter(matching(series, "origin_tls_origin_info", origin=name))))
            assert (doubtful["sni"], doubtful["host_header_forwarded"]) == (sni, "unknown")
            page = daemon.get("/origin/" + urllib.parse.quote(name, safe=""))
            assert page.status == 200
            assert f"GetOriginRequestPolicy {CUSTOM_POLICY}: 500" in page.body
        refused = matching(
            series, "origin_tls_discovery_errors_total", operation="GetOriginRequestPolicy"
        )
        assert {dict(k)["error"] for k in refused} == {"500"}
        successful = "origin_tls_exporter_discovery_last_refresh_successful"
        assert value(series, successful, provider="cloudfront") == 1


# --- CloudFront's origin settings and origin mTLS ---------------------------------------------


def tuned_origin(domain: str, port: int, **custom: Any) -> dict[str, Any]:
    """A custom origin stating every CloudFront setting discovery reads."""
    origin = custom_origin("tuned", domain, port, ("TLSv1.2",))
    origin["ConnectionAttempts"] = 2
    origin["ConnectionTimeout"] = 7
    origin["CustomOriginConfig"].update(
        {"OriginReadTimeout": 45, "OriginKeepaliveTimeout": 9, **custom}
    )
    return origin


def test_moto_carries_the_cloudfront_settings_into_the_origin(
    tmp_path: Path, origins: TestOrigins
) -> None:
    """ConnectionAttempts, ConnectionTimeout, OriginReadTimeout and OriginKeepaliveTimeout
    round-trip through moto; moto 5.2.5 drops IpAddressType and OriginMtlsConfig (botocore
    sends them), so those two are taken from what the API answered and tested on dicts below."""
    good = origins["good"]
    mtls = {"ClientCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"}
    origin = tuned_origin(good.host, good.port, IpAddressType="dualstack", OriginMtlsConfig=mtls)
    with moto_server(tmp_path) as server:
        made = create(server.client(), distribution_config("tuned", [origin], behaviour("tuned")))
        answered = server.client().get_distribution(Id=made["Id"])["Distribution"]
        found = discover(fetch(server.client(), server.settings()))
    stated = answered["DistributionConfig"]["Origins"]["Items"][0]["CustomOriginConfig"]
    (config,) = origin_configs(found.origins, OriginDefaults())
    assert (config.connection_attempts, config.connection_timeout) == (2, 7.0)
    assert (config.origin_read_timeout, config.origin_keepalive_timeout) == (45.0, 9.0)
    assert config.ip_address_type == IpAddressType(stated.get("IpAddressType", "ipv4"))
    assert config.client_certificate_missing == ("OriginMtlsConfig" in stated)
    options = config.options()
    assert (options.connection_attempts, options.connection_timeout) == (2, 7.0)
    assert (options.origin_read_timeout, options.origin_keepalive_timeout) == (45.0, 9.0)


def one_origin(origin: dict[str, Any]) -> list[DiscoveredOrigin]:
    found, _ = discover_distribution(plain(Origins={"Quantity": 1, "Items": [origin]}))
    return found


def test_ip_address_type_and_settings_from_the_api() -> None:
    (found,) = one_origin(tuned_origin("origin.example", 443, IpAddressType="ipv6"))
    assert dict(found.settings) == {
        "connection_attempts": 2,
        "connection_timeout": 7,
        "origin_read_timeout": 45,
        "origin_keepalive_timeout": 9,
        "ip_address_type": "ipv6",
    }
    (config,) = origin_configs([found], OriginDefaults(connection_attempts=1))
    assert config.ip_address_type is IpAddressType.IPV6
    assert config.connection_attempts == 2  # CloudFront's own value beats the defaults
    assert not config.client_certificate_missing
    assert config.client_certificate is None


def test_unstated_cloudfront_settings_come_from_the_defaults() -> None:
    (found,) = one_origin(custom_origin("o", "origin.example", 443))
    assert found.settings == ()
    defaults = OriginDefaults(connection_timeout=4.0, ip_address_type=IpAddressType.DUALSTACK)
    (config,) = origin_configs([found], defaults)
    assert (config.connection_timeout, config.ip_address_type) == (4.0, IpAddressType.DUALSTACK)
    assert (config.connection_attempts, config.origin_read_timeout) == (3, 30.0)


def test_a_setting_the_rules_reject_falls_back_to_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (found,) = one_origin(tuned_origin("origin.example", 443, OriginReadTimeout=600))
    (config,) = origin_configs([found], OriginDefaults())
    assert config.origin_read_timeout == 30.0
    assert config.connection_timeout == 7.0  # the others still apply
    (record,) = [r for r in caplog.records if "not understood" in r.getMessage()]
    assert record.err == "cloudfront: E1/tuned.origin_read_timeout: must be at most 2m, got 600"


def client_pair(directory: Path, name: str) -> tuple[Path, Path]:
    issued = issue(name, client=True, key_kind="p256")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(issued.pem)
    key.write_bytes(issued.key_pem)
    return cert, key


def mtls_settings(tmp_path: Path) -> CloudFrontDiscoveryConfig:
    client_pair(tmp_path, "exact")
    client_pair(tmp_path, "glob")
    config = parse_config(
        "discovery:\n"
        "  cloudfront:\n"
        "    client_certificates:\n"
        "      'E1/*': {cert_file: glob.pem, key_file: glob.key}\n"
        "      E1/web: {cert_file: exact.pem, key_file: exact.key}\n",
        "conf.yml",
        tmp_path,
    )
    assert config.discovery is not None
    return config.discovery.cloudfront


def test_mtls_origins_get_the_mapped_certificate_or_are_flagged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = mtls_settings(tmp_path)
    mtls = {"OriginMtlsConfig": {"ClientCertificateArn": "arn:aws:acm:::certificate/x"}}
    origins = [
        replace(one_origin(tuned_origin("a.example", 443, **mtls))[0], origin_id="web"),
        replace(one_origin(tuned_origin("b.example", 443, **mtls))[0], origin_id="api"),
        replace(one_origin(tuned_origin("c.example", 443))[0], origin_id="plain"),
    ]
    assert [o.mtls for o in origins] == [True, True, False]
    web, api, plain_origin = origin_configs(origins, OriginDefaults(), settings=settings)
    exact = ClientCertificate(str(tmp_path / "exact.pem"), str(tmp_path / "exact.key"))
    glob = ClientCertificate(str(tmp_path / "glob.pem"), str(tmp_path / "glob.key"))
    assert (web.client_certificate, api.client_certificate) == (exact, glob)
    assert web.target().client_certificate == exact
    assert plain_origin.client_certificate is None  # no mTLS: CloudFront presents nothing
    assert not any(o.client_certificate_missing for o in (web, api, plain_origin))
    other = replace(origins[0], distribution_id="E2")
    (unmapped,) = origin_configs([other], OriginDefaults(), settings=settings)
    assert unmapped.client_certificate is None
    assert unmapped.client_certificate_missing is True
    warned = [r for r in caplog.records if "cannot present CloudFront's" in r.getMessage()]
    assert [r.origin for r in warned] == ["E2/web"]


def test_client_certificates_configuration_errors(tmp_path: Path) -> None:
    client_pair(tmp_path, "c")
    base = "discovery: {cloudfront: {client_certificates: "
    cases = {
        "{web: {cert_file: c.pem, key_file: c.key}}}}": (
            "client_certificates.web: keys are origin names <distribution-id>/<origin-id>"
        ),
        "{E1/web: {cert_file: c.pem}}}}": (
            "client_certificates[\"E1/web\"]: missing 'key_file': cert_file and key_file go"
        ),
        "{E1/web: }}}": 'client_certificates["E1/web"]: must be a mapping {cert_file, key_file}',
        "{E1/web: {cert_file: c.pem, key_file: none.key}}}}": (
            "client_certificates[\"E1/web\"].key_file: cannot read 'none.key'"
        ),
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as info:
            parse_config(base + text, "conf.yml", tmp_path)
        assert message in str(info.value), str(info.value)


def test_changing_only_the_certificates_keeps_the_source() -> None:
    files = ClientCertificate("/c.pem", "/c.key")
    base = CloudFrontDiscoveryConfig()
    assert base.same_source(replace(base, client_certificates=(("E1/*", files),)))
    assert replace(base, client_certificates=(("E1/*", files),)).certificate_for("E1", "x") == (
        files
    )
    assert base.certificate_for("E1", "x") is None
