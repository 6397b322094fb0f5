"""A small token server (distribution token auth) for tests.

Issues RS256 JWTs that ``docker-registry`` 2.8 verifies: header ``x5c`` with the DER
signing certificate, claims iss/aud/exp/nbf/iat/jti/access. Basic credentials are
checked against ``users``; a valid user gets every action it asks for, an anonymous
caller gets only ``anonymous_actions``. Every request is recorded in ``requests``
(username, scopes, grant) so tests can count token fetches.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SERVICE = "oci-images-test-registry"
ISSUER = "oci-images-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenRequest:
    method: str
    username: str | None
    scopes: list[str]
    service: str | None
    grant_type: str | None = None
    granted: bool = True


@dataclass
class TokenServer:
    """A running token server; ``realm`` is its URL, ``requests`` what it was asked."""

    realm: str
    service: str
    issuer: str
    signing_cert_path: str
    ca_cert: str | None
    users: dict[str, str]
    identity_tokens: dict[str, str] = field(default_factory=dict)
    anonymous_actions: tuple[str, ...] = ()
    expires_in: int = 300
    requests: list[TokenRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _key: object = None
    _cert_der: bytes = b""

    def sign(self, access: list[dict]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._cert_der).decode("ascii")]}
        claims = {
            "iss": self.issuer,
            "sub": "",
            "aud": self.service,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def token_requests(self, scope: str | None = None) -> list[TokenRequest]:
        """Recorded requests, optionally only those asking for ``scope``."""
        return [r for r in self.requests if scope is None or scope in r.scopes]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _grant(scopes: list[str], actions_allowed: tuple[str, ...] | None) -> list[dict]:
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) < 3:
            continue
        kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
        if actions_allowed is not None:
            actions = [a for a in actions if a in actions_allowed]
        access.append({"type": kind, "name": name, "actions": actions})
    return access


def _make_handler(server: TokenServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _user(self) -> tuple[str | None, bool]:
            header = self.headers.get("Authorization") or ""
            if not header.startswith("Basic "):
                return None, True
            try:
                user, _unused, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None, False
            return user, server.users.get(user) == password

        def do_GET(self):
            query = parse_qs(urlsplit(self.path).query)
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            user, valid = self._user()
            record = TokenRequest("GET", user, scopes, (query.get("service") or [None])[0])
            server.requests.append(record)
            if not valid:
                record.granted = False
                self._answer(401, {"details": "invalid username or password"})
                return
            allowed = None if user else server.anonymous_actions
            token = server.sign(_grant(scopes, allowed))
            self._answer(200, {"token": token, "expires_in": server.expires_in, "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            scopes = [s for value in form.get("scope", []) for s in value.split(" ") if s]
            refresh = (form.get("refresh_token") or [""])[0]
            user = server.identity_tokens.get(refresh)
            record = TokenRequest("POST", user, scopes, (form.get("service") or [None])[0], (form.get("grant_type") or [None])[0])
            server.requests.append(record)
            if record.grant_type != "refresh_token" or user is None:
                record.granted = False
                self._answer(401, {"error": "invalid_grant"})
                return
            self._answer(200, {"access_token": server.sign(_grant(scopes, None)), "expires_in": server.expires_in})

    return Handler


def start_token_server(
    workdir: str,
    users: dict[str, str],
    ca=None,
    identity_tokens: dict[str, str] | None = None,
    anonymous_actions: tuple[str, ...] = (),
) -> TokenServer:
    """Start an HTTPS token server on 127.0.0.1 (TLS from ``ca``, a registries.TestCA, made if None)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from registries import make_test_ca

    os.makedirs(workdir, exist_ok=True)
    ca = ca or make_test_ca(os.path.join(workdir, "pki"))
    tls_cert, tls_key = ca.issue("token-server")

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oci-images-test-token-signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    signing_cert_path = os.path.join(workdir, "token-signing.crt")
    with open(signing_cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))

    server = TokenServer(
        realm="",
        service=SERVICE,
        issuer=ISSUER,
        signing_cert_path=signing_cert_path,
        ca_cert=ca.cert_path,
        users=dict(users),
        identity_tokens=dict(identity_tokens or {}),
        anonymous_actions=anonymous_actions,
    )
    server._key = key
    server._cert_der = cert.public_bytes(serialization.Encoding.DER)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(server))
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_cert, tls_key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    server.realm = "https://127.0.0.1:%d/token" % httpd.server_address[1]
    server._server = httpd
    server._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="token-server", daemon=True)
    server._thread.start()
    return server
