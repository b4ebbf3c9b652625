"""A loopback HTTP proxy that injects faults in front of a real registry.

    proxy = FaultProxy(registry.url)          # listens on 127.0.0.1, port chosen by the OS
    proxy.set_fault(r"/tags/list", "500")     # regex over the request path (with query)
    ...                                       # point a feed at proxy.url
    proxy.clear(); proxy.close()

Requests matching no rule are forwarded unchanged (method, path, headers, body) and
the answer relayed. ``proxy.hits`` counts faults served per kind; ``proxy.requests``
lists every request as (method, path).

Faults:
    ``500``           answer 500 with a JSON error body
    ``reset``         close the connection with a TCP RST before answering
    ``stall``         accept and say nothing for ``stall_seconds`` (past the client timeout)
    ``429``           answer 429 Too Many Requests with ``Retry-After: <proxy.retry_after>`` (1)
    ``truncate``      forward, announce the full Content-Length, send half, close
    ``not-json``      200 with an HTML body labelled application/json
    ``content-type``  forward the real body but label it text/html
    ``huge``          200 streaming a syntactically valid 50 MB tags list (chunked)
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("500", "reset", "stall", "429", "truncate", "not-json", "content-type", "huge")
HUGE_BYTES = 50 * 1024 * 1024


class FaultProxy:
    def __init__(self, upstream: str, *, stall_seconds: float = 6.0) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
        self.upstream = (parts.hostname, parts.port or 80)
        self.stall_seconds = stall_seconds
        self.retry_after = "1"  # seconds, as the 429 fault's Retry-After header says
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self._rules: list[tuple[re.Pattern[str], str]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()  # ends stalls early on close()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def set_fault(self, pattern: str, fault: str) -> None:
        assert fault in FAULTS, fault
        with self._lock:
            self._rules.append((re.compile(pattern), fault))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def fault_for(self, path: str) -> str | None:
        with self._lock:
            for pattern, fault in self._rules:
                if pattern.search(path):
                    self.hits[fault] += 1
                    return fault
        return None

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            proxy.requests.append((self.command, self.path))
            fault = proxy.fault_for(self.path)
            try:
                if fault is None:
                    status, headers, payload = self._forward(body)
                    self._reply(status, headers, payload)
                else:
                    getattr(self, "_fault_" + fault.replace("-", "_"))(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up: that is its right

        # -- plumbing ---------------------------------------------------------------

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"{proxy.upstream[0]}:{proxy.upstream[1]}"
                conn.request(self.command, self.path, body=body or None, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
                kept = [
                    (k, v)
                    for k, v in answer.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                ]
                return answer.status, kept, payload
            finally:
                conn.close()

        def _reply(
            self,
            status: int,
            headers: list[tuple[str, str]],
            payload: bytes,
            *,
            length: int | None = None,
        ) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload) if length is None else length))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        # -- faults -----------------------------------------------------------------

        def _fault_500(self, body: bytes) -> None:
            error = b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}'
            self._reply(500, [("Content-Type", "application/json")], error)

        def _fault_reset(self, body: bytes) -> None:
            # SO_LINGER with a zero timeout turns close() into a TCP RST.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _fault_stall(self, body: bytes) -> None:
            proxy._closing.wait(proxy.stall_seconds)  # bounded: never longer than this
            self.close_connection = True

        def _fault_429(self, body: bytes) -> None:
            error = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            self._reply(
                429,
                [("Content-Type", "application/json"), ("Retry-After", proxy.retry_after)],
                error,
            )

        def _fault_truncate(self, body: bytes) -> None:
            status, headers, payload = self._forward(body)
            self.close_connection = True
            self._reply(status, headers, payload[: len(payload) // 2], length=len(payload))

        def _fault_not_json(self, body: bytes) -> None:
            html = b"<html><body>502 Bad Gateway (captive portal)</body></html>"
            self._reply(200, [("Content-Type", "application/json")], html)

        def _fault_content_type(self, body: bytes) -> None:
            status, headers, payload = self._forward(body)
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            self._reply(status, [*headers, ("Content-Type", "text/html")], payload)

        def _fault_huge(self, body: bytes) -> None:
            # A valid JSON document, so only a size limit (not a parse error) can stop
            # the client; streamed so the proxy itself never holds 50 MB.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command == "HEAD":
                return
            sent = 0
            self._chunk(b'{"name":"huge","tags":["0.0.0"')
            index = 0
            while sent < HUGE_BYTES and not proxy._closing.is_set():
                chunk = "".join(f',"9.{index + n}.0"' for n in range(4096)).encode()
                index += 4096
                self._chunk(chunk)
                sent += len(chunk)
            self._chunk(b"]}")
            self._chunk(b"")
            self.close_connection = True

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    return Handler
