"""The embedded demo: real local origins, each showing one cause of CloudFront 502s.

`fleet.DemoFleet` starts them; `pki`, `tcp`, `modern` and `legacy` are the parts it (and the test
suite) builds them from. Nothing is imported here, so `python -m exporter.demo.legacy` stays clean.
"""
