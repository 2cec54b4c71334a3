"""origin-tls-exporter: can CloudFront reach your origin over HTTPS?"""

__version__ = "0.1.0"
