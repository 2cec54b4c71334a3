"""Origins discovered from elsewhere than the configuration file: CloudFront distributions.

`DiscoveryRunner` keeps them fresh in the background; `merge` puts them after the configured
origins (a configured origin wins a name clash). See docs/discovery.md.
"""

from .cloudfront import (
    MANAGED_CACHE_POLICIES,
    MANAGED_ORIGIN_REQUEST_POLICIES,
    PROVIDER,
    DiscoveredOrigin,
    Discovery,
    Inventory,
    SkipReason,
    discover,
    fetch,
    make_client,
    merge,
    origin_configs,
)
from .runner import DiscoveryMetrics, DiscoveryRunner

__all__ = [
    "MANAGED_CACHE_POLICIES",
    "MANAGED_ORIGIN_REQUEST_POLICIES",
    "PROVIDER",
    "DiscoveredOrigin",
    "Discovery",
    "DiscoveryMetrics",
    "DiscoveryRunner",
    "Inventory",
    "SkipReason",
    "discover",
    "fetch",
    "make_client",
    "merge",
    "origin_configs",
]
