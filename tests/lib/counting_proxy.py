"""A loopback HTTP reverse proxy in front of a real registry that records every request.

Tests use it to prove what a module did *not* do (no PUT/POST/PATCH on a no-op copy),
which the registry itself cannot tell us.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding", "upgrade"}


class CountingProxy:
    """Forwards http://127.0.0.1:PORT to a plain-HTTP upstream ``host:port``; ``requests`` lists (method, path)."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.requests: list[tuple[str, str]] = []
        #: (method, path, request body bytes) of every request: what the registry behind received.
        self.bodies: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _forward(self):
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                with proxy._lock:
                    proxy.bodies.append((self.command, self.path, len(body or b"")))
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", proxy.upstream)
                # Repeated headers (several Accept lines) must all reach the registry.
                for key, value in self.headers.items():
                    if key.lower() not in _HOP_BY_HOP and key.lower() not in ("host", "content-length"):
                        conn.putheader(key, value)
                conn.putheader("Content-Length", str(len(body or b"")))
                conn.endheaders(body)
                response = conn.getresponse()
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() in _HOP_BY_HOP:
                        continue
                    if key.lower() == "location":
                        value = value.replace("//" + proxy.upstream, "//" + proxy.host)
                    self.send_header(key, value)
                data = response.read()
                if "content-length" not in {k.lower() for k, _unused in response.getheaders()}:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            def _read_chunked(self) -> bytes:
                data = b""
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = "127.0.0.1:%d" % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def writes(self) -> list[tuple[str, str]]:
        """Requests that change state at the registry."""
        with self._lock:
            return [r for r in self.requests if r[0] in ("PUT", "POST", "PATCH", "DELETE")]

    def blob_uploads(self) -> dict[str, int]:
        """Blob uploads finished at the registry, by digest: how often each blob's bytes were sent."""
        counts: dict[str, int] = {}
        with self._lock:
            for method, path, _size in self.bodies:
                if method == "PUT" and "/blobs/uploads/" in path and "digest=" in path:
                    digest = unquote(path.split("digest=", 1)[1].split("&", 1)[0])
                    counts[digest] = counts.get(digest, 0) + 1
        return counts

    def blob_mounts(self) -> list[str]:
        """Paths of the mount requests sent (POST ...?mount=DIGEST&from=REPOSITORY)."""
        with self._lock:
            return [path for method, path in self.requests if method == "POST" and "mount=" in path]

    def bytes_received(self) -> int:
        """Request body bytes the registry received (blob uploads and manifests)."""
        with self._lock:
            return sum(size for _method, _path, size in self.bodies)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bodies.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False
