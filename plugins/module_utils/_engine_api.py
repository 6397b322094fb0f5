# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Docker Engine API client on http.client: ``unix://`` sockets and ``tcp://`` (with TLS).

requests cannot speak HTTP over a unix socket without extra libraries, and the engine API needs
only a handful of calls, so this is plain http.client with one connection per call.
Paths are unversioned: the engine serves them as its own current API version.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from ._errors import EngineError, NotFound, TLSFailure
from ._options import ConnectionOptions

DEFAULT_DAEMON_HOST = "unix:///var/run/docker.sock"
# Loading an image answers only once every layer is registered, which takes far longer than a request.
LOAD_ANSWER_TIMEOUT = 3600.0
_CHUNK = 1024 * 1024


def daemon_host(options: ConnectionOptions) -> str:
    """The engine address: the daemon_host option, else DOCKER_HOST, else the default socket."""
    return options.daemon_host or os.environ.get("DOCKER_HOST") or DEFAULT_DAEMON_HOST


def engine_message(body: bytes) -> str:
    """The engine's own error text from an error answer (``{"message": ...}``), or the body itself."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return doc["message"]
    return text


def json_messages(body: bytes) -> list:
    """The JSON objects of a streamed answer (``docker load`` progress), in order; other text is skipped."""
    decoder = json.JSONDecoder()
    text = body.decode("utf-8", "replace")
    messages = []
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        messages.append(doc)
    return messages


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class EngineClient:
    """Talks to one Docker engine. Every method raises EngineError (NotFound for a missing image)."""

    def __init__(self, options: ConnectionOptions, context: str):
        self.options = options
        self.context = context
        self.host = daemon_host(options)
        parts = urlsplit(self.host)
        self._scheme = parts.scheme
        if parts.scheme == "unix":
            self._socket_path = parts.path
            if not self._socket_path:
                raise EngineError(
                    "%s: %s %r names no socket path: use unix:///path/to/docker.sock" % (context, options.option("daemon_host"), self.host), context
                )
        elif parts.scheme == "tcp":
            if not parts.hostname:
                raise EngineError("%s: %s %r names no host: use tcp://HOST:PORT" % (context, options.option("daemon_host"), self.host), context)
            self._address = (parts.hostname, parts.port or (2376 if self._tls_context() else 2375))
        else:
            raise EngineError(
                "%s: %s %r is not supported: use unix:///path/to/docker.sock or tcp://HOST:PORT" % (context, options.option("daemon_host"), self.host), context
            )

    # --- connections ----------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext | None:
        """TLS for tcp:// when asked for: the ca_cert/client_cert options, or DOCKER_TLS_VERIFY with DOCKER_CERT_PATH."""
        opts = self.options
        env_verify = bool(os.environ.get("DOCKER_TLS_VERIFY"))
        if not (env_verify or opts.ca_cert or opts.client_cert):
            return None
        cert_dir = os.environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")
        ca = opts.ca_cert or (os.path.join(cert_dir, "ca.pem") if env_verify else None)
        cert, key = opts.client_cert, opts.client_key
        if cert is None and env_verify and os.path.exists(os.path.join(cert_dir, "cert.pem")):
            cert, key = os.path.join(cert_dir, "cert.pem"), os.path.join(cert_dir, "key.pem")
        context = ssl.create_default_context(cafile=ca if ca and os.path.exists(ca) else None)
        if not opts.validate_certs and not env_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert:
            try:
                context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as e:
                raise TLSFailure("%s: cannot load the client certificate for %s: %s" % (self.context, self.host, e), self.context) from None
        return context

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._scheme == "unix":
            return _UnixHTTPConnection(self._socket_path, timeout)
        host, port = self._address
        tls = self._tls_context()
        if tls is not None:
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def unreachable(self, error: BaseException) -> EngineError:
        """The error for an engine that does not answer at all."""
        if isinstance(error, ssl.SSLError):
            return TLSFailure("%s: TLS with the Docker engine at %s failed: %s" % (self.context, self.host, error), self.context)
        if isinstance(error, socket.timeout):
            return EngineError("%s: the Docker engine at %s did not answer within %g seconds" % (self.context, self.host, self.options.timeout), self.context)
        return EngineError(
            "%s: no Docker engine at %s: is it running? set %s (or DOCKER_HOST) to where it listens (%s)"
            % (self.context, self.host, self.options.option("daemon_host"), getattr(error, "strerror", None) or error),
            self.context,
        )

    def _send(self, method: str, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connection(self.options.timeout)
        try:
            conn.request(method, path)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self.unreachable(e) from None

    def failed(self, what: str, status: int, body: bytes) -> EngineError:
        """An EngineError carrying the engine's own message (NotFound for 404)."""
        cls = NotFound if status == 404 else EngineError
        return cls("%s: %s failed: the Docker engine at %s answered %d: %s" % (self.context, what, self.host, status, engine_message(body)), self.context)

    # --- calls ----------------------------------------------------------------------------------
    def get_json(self, path: str) -> tuple[int, object]:
        """(status, parsed body) of a GET; the body is None unless the answer was 200."""
        conn, response = self._send("GET", path)
        try:
            body = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise self.unreachable(e) from None
        finally:
            conn.close()
        if response.status != 200:
            return response.status, body
        try:
            return 200, json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise EngineError(
                "%s: the Docker engine at %s answered %s with something that is not JSON" % (self.context, self.host, path), self.context
            ) from None

    def image_id(self, name: str) -> str | None:
        """The ID (config digest) of the image ``name`` names, or None when the engine has none."""
        status, doc = self.get_json("/images/%s/json" % quote(name, safe="/:@"))
        if status == 404:
            return None
        if status != 200 or not isinstance(doc, dict):
            raise self.failed("inspecting %s" % name, status, doc if isinstance(doc, bytes) else b"")
        return doc.get("Id")

    def save_image(self, name: str, out: BinaryIO) -> int:
        """Stream ``GET /images/{name}/get`` (a docker-archive tar) into ``out``; return its size."""
        conn, response = self._send("GET", "/images/%s/get" % quote(name, safe="/:@"))
        try:
            if response.status != 200:
                raise self.failed("exporting %s" % name, response.status, response.read(65536))
            total = 0
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    return total
                out.write(chunk)
                total += len(chunk)
        except (OSError, http.client.HTTPException) as e:
            raise self.unreachable(e) from None
        finally:
            conn.close()

    def start_load(self) -> ImageLoad:
        """Open ``POST /images/load`` with a chunked body; write the docker-archive to it, then ``finish()``."""
        conn = self._connection(self.options.timeout)
        try:
            conn.putrequest("POST", "/images/load?quiet=1", skip_accept_encoding=True)
            conn.putheader("Content-Type", "application/x-tar")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self.unreachable(e) from None
        return ImageLoad(self, conn)


class ImageLoad:
    """One ``docker load`` in progress: bytes written go out as chunks as they come, nothing is held.

    ``abort()`` drops the connection without the final chunk, so the engine sees a cut-off tar
    and loads nothing.
    """

    def __init__(self, client: EngineClient, conn: http.client.HTTPConnection):
        self._client = client
        self._conn = conn
        self.done = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._conn.send(b"%x\r\n" % len(data))
            self._conn.send(data)
            self._conn.send(b"\r\n")
        except (OSError, http.client.HTTPException) as e:
            raise self._early_answer(e) from None

    def _early_answer(self, error: BaseException) -> EngineError:
        # An engine that gives up mid-upload usually said why before closing: report that.
        try:
            self._conn.sock.settimeout(5)
            response = self._conn.getresponse()
            body = response.read(65536)
        except Exception:
            return self._client.unreachable(error)
        finally:
            self.abort()
        return self._load_failure(response.status, body) or self._client.unreachable(error)

    def _load_failure(self, status: int, body: bytes) -> EngineError | None:
        if status != 200:
            return self._client.failed("loading the image", status, body)
        for message in json_messages(body):
            if isinstance(message, dict) and message.get("error"):
                return EngineError(
                    "%s: loading the image failed: the Docker engine at %s said: %s" % (self._client.context, self._client.host, message["error"]),
                    self._client.context,
                )
        return None

    def finish(self) -> list[str]:
        """Send the last chunk and wait for the engine's answer; return its messages (``Loaded image: ...``)."""
        try:
            self._conn.send(b"0\r\n\r\n")
            self._conn.sock.settimeout(max(self._client.options.timeout, LOAD_ANSWER_TIMEOUT))
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise self._client.unreachable(e) from None
        finally:
            self.abort()
        failure = self._load_failure(response.status, body)
        if failure is not None:
            raise failure
        return [m["stream"].strip() for m in json_messages(body) if isinstance(m, dict) and isinstance(m.get("stream"), str)]

    def abort(self) -> None:
        self.done = True
        self._conn.close()
