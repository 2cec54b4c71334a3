"""A CloudFront API front on 127.0.0.1 that refuses chosen operations as AWS does.

moto's server is the API; this stands between the exporter and it for the one thing moto cannot
do here: refuse an operation the caller's IAM policy lacks, with CloudFront's error body
(`AccessDenied`, 403). moto's own IAM enforcement cannot stand in: it recomputes SigV4 for REST
GET requests with the query string (or the headers) as a form body, so every CloudFront read is
refused with `SignatureDoesNotMatch`. Every other request goes to moto unchanged.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from exporter.demo.running import Running

#: (method, path) -> CloudFront operation, for the calls discovery makes
OPERATIONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"/2020-05-31/distribution\Z"), "ListDistributions"),
    ("GET", re.compile(r"/2020-05-31/distribution/[^/]+\Z"), "GetDistribution"),
    ("GET", re.compile(r"/2020-05-31/tagging\Z"), "ListTagsForResource"),
    ("GET", re.compile(r"/2020-05-31/origin-request-policy/[^/]+\Z"), "GetOriginRequestPolicy"),
    ("GET", re.compile(r"/2020-05-31/cache-policy/[^/]+\Z"), "GetCachePolicy"),
)

_ERROR_BODY = (
    '<?xml version="1.0"?>\n'
    '<ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">'
    "<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
    "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
)


def operation_of(method: str, path: str) -> str | None:
    for wanted, pattern, operation in OPERATIONS:
        if method == wanted and pattern.match(path):
            return operation
    return None


class RefusingFront(Running):
    """`with RefusingFront(moto_endpoint, {"GetOriginRequestPolicy": ("AccessDenied", 403)})`:
    `.endpoint` answers those operations with that error and forwards the rest to moto."""

    def __init__(self, upstream: str, refuse: Mapping[str, tuple[str, int]]) -> None:
        self.upstream = urlsplit(upstream)
        self.refuse = dict(refuse)
        self.calls: Counter[str] = Counter()  # operation -> requests seen (refused or not)
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                front.answer(self)

            do_POST = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = urlsplit(request.path).path
        operation = operation_of(request.command, path)
        if operation is not None:
            self.calls[operation] += 1
        if operation in self.refuse:
            code, status = self.refuse[operation]
            message = f"User is not authorized to perform: cloudfront:{operation}"
            self._send(
                request,
                status,
                {"Content-Type": "text/xml"},
                _ERROR_BODY.format(code=code, message=message).encode(),
            )
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30
        )
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            upstream.request(request.command, request.path, body=body, headers=headers)
            reply = upstream.getresponse()
            content = reply.read()
            kept = {
                k: v
                for k, v in reply.getheaders()
                if k.lower() not in ("transfer-encoding", "connection", "content-length")
            }
            self._send(request, reply.status, kept, content)
        finally:
            upstream.close()

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
