"""A loopback HTTP reverse proxy that injects faults on a schedule, in front of a real registry.

Each ``Fault`` matches requests by method and path regex and fires on chosen occurrences
(``nth=(1,)`` is the first matching request, ``nth=None`` every one). What it does is its
``kind`` (see ``KINDS``): drop the connection before, during or after the exchange, stall,
answer an error status, truncate or corrupt a body, or restart the registry process behind.
Bodies stream through in chunks, so gigabyte blobs pass without being held in memory.

Every request is recorded (``FaultProxy.log``) with its Range header, the status sent and the
number of body bytes sent back, so tests can prove a resume fetched only what was missing.

``FaultProxy.rate_limit(...)`` makes the proxy behave like Docker Hub's pull limit: requests that
count (manifest GETs by default) are allowed ``limit`` per sliding ``window`` seconds, answers carry
``ratelimit-limit``/``ratelimit-remaining`` with ``;w=`` windows, and a request over the limit gets
429 (or 503) with ``Retry-After``. ``FaultProxy.intercept`` lets a test helper answer some requests
itself (tests/lib/paging_front.py serves tag lists in pages that way).
"""

from __future__ import annotations

import email.utils
import http.client
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding", "upgrade"}
CHUNK = 64 * 1024

KINDS = (
    "reset_on_request",  # read the request, then RST the connection: nothing reached the registry
    "reset_mid_body",  # forward, send headers and ``after_bytes`` of the body, then RST
    "reset_mid_upload",  # read ``after_bytes`` of the request body, then RST (the registry never sees the upload end)
    "reset_after_forward",  # the registry handled the request, the client never hears its answer
    "stall_headers",  # hold the answer ``seconds`` (longer than the client timeout), then close
    "stall_mid_body",  # send ``after_bytes`` of the body, then hold the connection ``seconds``
    "status_500",
    "status_502",
    "status_503",
    "status_429",  # with ``Retry-After: retry_after``
    "truncate_body",  # full Content-Length promised, ``after_bytes`` sent, then a clean close
    "corrupt_body",  # one byte at ``after_bytes`` flipped, length unchanged
    "garbage_response",  # bytes that are not HTTP, then close
    "restart_registry",  # stop the registry, drop this connection, start the registry again
)
# Not a fault of the network or the registry, so not in KINDS (the fault matrix runs every kind): a hook.
HOOKS = ("before_forward",)  # run ``action()`` (say, change the registry's state behind the client's back), then forward


@dataclass
class Fault:
    """One scheduled fault: ``kind`` on the ``nth`` requests (1-based) matching ``method`` and ``path``."""

    kind: str
    method: str = "GET"
    path: str = ".*"
    nth: tuple[int, ...] | None = (1,)
    after_bytes: int = 0
    seconds: float = 0.0
    retry_after: str = "0"
    action: object = None
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS + HOOKS:
            raise ValueError("unknown fault kind %r" % self.kind)
        self._path_re = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method) or not self._path_re.search(path):
            return False
        self.seen += 1
        if self.nth is None or self.seen in self.nth:
            self.fired += 1
            return True
        return False


class RateLimit:
    """A pull limit as Docker Hub keeps one: ``limit`` counted requests in any ``window`` seconds (a sliding window).

    ``counts`` (method, path regex) says which requests count; answers to requests matching
    ``reports`` (path regex) carry the headers. Over the limit, the answer is ``status`` (429 or 503)
    with ``Retry-After`` in seconds, or as an HTTP date with ``retry_after_date``.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        counts: tuple[str, str] = ("GET", r"/v2/.+/manifests/"),
        reports: str = r"/v2/.+/manifests/",
        status: int = 429,
        headers: bool = True,
        retry_after: bool = True,
        retry_after_date: bool = False,
    ):
        self.limit = limit
        self.window = window
        self.counts = (counts[0], re.compile(counts[1]))
        self.reports = re.compile(reports)
        self.status = status
        self.headers = headers
        self.retry_after = retry_after
        self.retry_after_date = retry_after_date
        self.sent: deque = deque()
        self.allowed = 0
        self.refused = 0
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - self.window:
            self.sent.popleft()

    def admit(self, method: str, path: str) -> tuple[bool, dict]:
        """(allowed, headers to add) for one request."""
        counted = self.counts[0] in ("*", method) and bool(self.counts[1].search(path))
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            if counted:
                if len(self.sent) >= self.limit:
                    self.refused += 1
                    wait = self.sent[0] + self.window - now
                    headers = self._headers(0) if self.headers else {}
                    if self.retry_after:
                        if self.retry_after_date:
                            headers["Retry-After"] = email.utils.formatdate(time.time() + math.ceil(wait) + 1, usegmt=True)
                        else:
                            headers["Retry-After"] = str(max(1, math.ceil(wait)))
                    return False, headers
                self.sent.append(now)
                self.allowed += 1
            remaining = self.limit - len(self.sent)
        return True, (self._headers(remaining) if self.headers and self.reports.search(path) else {})

    def _headers(self, remaining: int) -> dict:
        window = "%d" % self.window if float(self.window).is_integer() else "%g" % self.window
        return {
            "ratelimit-limit": "%d;w=%s" % (self.limit, window),
            "ratelimit-remaining": "%d;w=%s" % (remaining, window),
            "docker-ratelimit-source": "127.0.0.1",
        }


@dataclass
class Exchange:
    """What the proxy saw of one request and did with it."""

    method: str
    path: str
    range: str | None
    fault: str | None = None
    status: int | None = None
    body_bytes: int = 0
    request_bytes: int = 0
    headers: dict = field(default_factory=dict)


def send_json(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> int:
    """Answer the request ``h`` with a JSON body and extra headers; returns the status sent."""
    h.send_response_only(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    for key, value in headers.items():
        h.send_header(key, value)
    h.end_headers()
    h.wfile.write(body)
    return status


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset by peer'."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    """Forwards http://127.0.0.1:PORT to a plain-HTTP upstream; ``faults`` is the schedule, ``log`` the record."""

    def __init__(self, upstream: str, registry=None):
        self.upstream = upstream
        self.registry = registry  # a registries.Registry, for restart_registry
        self.faults: list[Fault] = []
        self.log: list[Exchange] = []
        self.limiter: RateLimit | None = None
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the proxy was handling at once
        # Called as intercept(handler, method, path) before forwarding; the status it sent when it answered the request itself.
        self.intercept = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._restarts: list[threading.Thread] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except (ConnectionError, socket.timeout, OSError):
                    self.close_connection = True

            def _forward(self):
                proxy._handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = "127.0.0.1:%d" % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # --- schedule -------------------------------------------------------------------------------
    def add(self, kind: str, method: str = "GET", path: str = ".*", nth: tuple[int, ...] | None = (1,), **kw) -> Fault:
        """Schedule a fault; returns it (``fired`` counts how often it struck)."""
        fault = Fault(kind, method, path, nth, **kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forget the schedule, the rate limit and the log."""
        with self._lock:
            self.faults.clear()
            self.log.clear()
            self.limiter = None
            self.max_in_flight = self.in_flight

    def rate_limit(self, limit: int, window: float, **kw) -> RateLimit:
        """Limit counted requests to ``limit`` per ``window`` seconds from now on (see ``RateLimit``)."""
        limiter = RateLimit(limit, window, **kw)
        with self._lock:
            self.limiter = limiter
        return limiter

    def exchanges(self, method: str | None = None, path: str | None = None) -> list[Exchange]:
        pattern = re.compile(path) if path else None
        with self._lock:
            return [e for e in self.log if (method is None or e.method == method) and (pattern is None or pattern.search(e.path))]

    def _pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    return fault
        return None

    # --- one request ----------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._handle_counted(h)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _handle_counted(self, h: BaseHTTPRequestHandler) -> None:
        method, path = h.command, h.path
        record = Exchange(method, path, h.headers.get("Range"), headers={k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.log.append(record)
        length = int(h.headers.get("Content-Length") or 0)
        chunked = h.headers.get("Transfer-Encoding", "").lower() == "chunked"
        extra_headers: dict = {}
        limiter = self.limiter
        if limiter is not None:
            allowed, extra_headers = limiter.admit(method, path)
            if not allowed:
                if chunked:
                    self._read_chunked(h)
                else:
                    self._drain(h, length, record)
                record.fault = "rate_limited"
                payload = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}'
                record.status = send_json(h, limiter.status, payload, extra_headers)
                return
        answered = self.intercept(h, method, path) if self.intercept is not None else None
        if answered:
            record.status = answered
            return
        fault = self._pick(method, path)
        kind = fault.kind if fault else None
        record.fault = kind

        if kind == "before_forward":
            fault.action()
        if kind == "reset_mid_upload":
            self._drain(h, min(length, fault.after_bytes), record)
            _reset(h.connection)
            h.close_connection = True
            return
        if kind in ("reset_on_request", "restart_registry", "garbage_response", "stall_headers") or (kind and kind.startswith("status_")):
            body = self._read_chunked(h) if chunked else self._drain(h, length, record)
            del body
            if kind == "reset_on_request":
                _reset(h.connection)
            elif kind == "restart_registry":
                self._restart_registry()
                _reset(h.connection)
            elif kind == "garbage_response":
                h.wfile.write(b"\x16\x03\x01 this is not HTTP \r\n\r\n")
                h.connection.close()
            elif kind == "stall_headers":
                self._stopping.wait(fault.seconds)
                h.connection.close()
            else:
                status = int(kind.split("_")[1])
                record.status = status
                payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
                h.send_response_only(status)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    h.send_header("Retry-After", fault.retry_after)
                h.end_headers()
                h.wfile.write(payload)
                return
            h.close_connection = True
            return

        try:
            conn = http.client.HTTPConnection(self.upstream, timeout=60)
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.upstream)
            for key, value in h.headers.items():
                if key.lower() not in _HOP_BY_HOP and key.lower() not in ("host", "content-length"):
                    conn.putheader(key, value)
            if chunked:
                body = self._read_chunked(h)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
            else:
                conn.putheader("Content-Length", str(length))
                conn.endheaders()
                left = length
                while left > 0:
                    data = h.rfile.read(min(CHUNK, left))
                    if not data:
                        raise ConnectionError("client went away mid-upload")
                    record.request_bytes += len(data)
                    conn.send(data)
                    left -= len(data)
            response = conn.getresponse()
        except (ConnectionRefusedError, ConnectionResetError, http.client.HTTPException, OSError):
            # The registry is down (restarting) or dropped us: answer as a reverse proxy does.
            record.status = 502
            try:
                h.send_response_only(502)
                h.send_header("Content-Length", "0")
                h.end_headers()
            except OSError:
                pass
            h.close_connection = True
            return
        try:
            if kind == "reset_after_forward":
                response.read()
                _reset(h.connection)
                h.close_connection = True
                return
            record.status = response.status
            h.send_response_only(response.status, response.reason)
            headers = response.getheaders()
            for key, value in headers:
                if key.lower() in _HOP_BY_HOP:
                    continue
                if key.lower() == "location":
                    value = value.replace("//" + self.upstream, "//" + self.host)
                h.send_header(key, value)
            for key, value in extra_headers.items():
                h.send_header(key, value)
            declared = next((v for k, v in headers if k.lower() == "content-length"), None)
            if method == "HEAD":
                h.end_headers()
                return
            if declared is None:
                data = response.read()
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
                record.body_bytes = len(data)
                return
            h.end_headers()
            self._stream_body(h, response, fault, record)
        finally:
            conn.close()

    def _stream_body(self, h: BaseHTTPRequestHandler, response, fault: Fault | None, record: Exchange) -> None:
        kind = fault.kind if fault else None
        cut = fault.after_bytes if kind in ("reset_mid_body", "stall_mid_body", "truncate_body") else None
        sent = 0
        while True:
            size = CHUNK if cut is None else max(0, min(CHUNK, cut - sent))
            data = response.read(size) if size else b""
            if not data:
                break
            if kind == "corrupt_body" and sent <= fault.after_bytes < sent + len(data):
                i = fault.after_bytes - sent
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
            try:
                h.wfile.write(data)
            except OSError:
                h.close_connection = True
                return
            sent += len(data)
            record.body_bytes = sent
        if cut is None:
            return
        h.close_connection = True
        if kind == "reset_mid_body":
            _reset(h.connection)
        elif kind == "stall_mid_body":
            self._stopping.wait(fault.seconds)
            h.connection.close()
        else:  # truncate_body: a clean FIN before the promised length
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            h.connection.close()

    @staticmethod
    def _drain(h: BaseHTTPRequestHandler, length: int, record: Exchange) -> None:
        left = length
        while left > 0:
            data = h.rfile.read(min(CHUNK, left))
            if not data:
                break
            record.request_bytes += len(data)
            left -= len(data)

    @staticmethod
    def _read_chunked(h: BaseHTTPRequestHandler) -> bytes:
        data = b""
        while True:
            size = int(h.rfile.readline().strip() or b"0", 16)
            if size == 0:
                h.rfile.readline()
                return data
            data += h.rfile.read(size)
            h.rfile.readline()

    def _restart_registry(self) -> None:
        """Stop the registry now and start it again in the background (same port, same data)."""
        if self.registry is None:
            raise RuntimeError("restart_registry needs FaultProxy(registry=...)")
        self.registry.stop()
        thread = threading.Thread(target=self.registry.start, name="registry-restart", daemon=True)
        thread.start()
        self._restarts.append(thread)

    def wait_restarts(self, timeout: float = 30) -> None:
        """Wait until every registry restart the proxy began has finished."""
        for thread in self._restarts:
            thread.join(timeout)
        self._restarts = []

    def stop(self) -> None:
        self._stopping.set()
        self.wait_restarts()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False
