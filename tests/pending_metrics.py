"""Metrics the shipped alerts and dashboards use before the exporter exposes them.

Another change adds these to the exporter's /metrics and to docs/metrics.md (the contract the
rules and dashboards are checked against). Until then the promtool unit tests exercise them with
synthetic series, and the live tests accept empty dashboard panels only for queries that need a
metric of this list the running exporter does not expose yet (so a panel whose metric exists but
returns nothing still fails). Remove a name once docs/metrics.md has it.
"""

from __future__ import annotations

PENDING_METRICS = frozenset(
    {
        # the exporter's --web.external-url, for links in alerts (1; ends in "/")
        "origin_tls_exporter_web_info",  # {external_url}
        # sharding guards, per replica
        "origin_tls_exporter_shard_index",
        "origin_tls_exporter_shards",
        "origin_tls_exporter_origins_configured",  # the whole fleet, all shards
        # ("origin_tls_exporter_origins", this replica's, exists already)
        # "since when?": unix time `compatible` last changed (the first probe counts)
        "origin_tls_cloudfront_verdict_changed_timestamp_seconds",  # {origin}
        # per address
        "origin_tls_address_compatible",  # {origin, address} 1/0
        "origin_tls_addresses",  # {origin}
        # warnings and policies
        "origin_tls_cloudfront_warning",  # {origin, warning} 1/0
        "origin_tls_cloudfront_policy_compatible",  # {origin, policy} 1/0
        # HTTP
        "origin_tls_http_status_code",  # {origin}
        "origin_tls_http_first_byte_seconds",  # {origin}
        # renamed from origin_tls_cert_key_bits (promtool lint: non-base unit)
        "origin_tls_cert_key_size",  # {origin, position, type}
    }
)

#: metrics the dashboards and rules no longer use (renamed), which must not come back
RETIRED_METRICS = frozenset({"origin_tls_cert_key_bits"})
