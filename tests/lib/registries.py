"""Real registries for tests: the CNCF distribution binary (``docker-registry``) on loopback.

``start_registry(workdir, kind)`` gives a running registry on a free port:
``plain`` (HTTP, no auth), ``tls`` (HTTPS with a test CA), ``basic`` (HTTPS + htpasswd)
or ``token`` (HTTPS + a token server from token_server.py).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

REGISTRY_BINARY = os.environ.get("OCI_IMAGES_REGISTRY_BINARY", "/usr/bin/docker-registry")
READY_TIMEOUT = 20.0
KINDS = ("plain", "tls", "basic", "token")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a test certificate authority -------------------------------------------------------------


@dataclass
class TestCA:
    """A CA certificate (``cert_path``) and its key, able to issue server and client certificates."""

    __test__ = False  # not a pytest test class

    directory: str
    cert_path: str
    key_path: str
    _cert: object
    _key: object

    def issue(self, name: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), client: bool = False) -> tuple[str, str]:
        """Write ``NAME.crt`` and ``NAME.key`` signed by this CA (SANs for ``hosts``); returns their paths."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        sans = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        cert_path = os.path.join(self.directory, name + ".crt")
        key_path = os.path.join(self.directory, name + ".key")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return cert_path, key_path


def make_test_ca(directory: str, name: str = "oci-images-test-ca") -> TestCA:
    """Create a self-signed CA in ``directory`` (``ca.crt``, ``ca.key``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "ca.crt")
    key_path = os.path.join(directory, "ca.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return TestCA(directory, cert_path, key_path, cert, key)


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd entry, made with ``htpasswd -Bbn`` (what distribution reads)."""
    out = subprocess.run(["htpasswd", "-Bbn", username, password], check=True, capture_output=True, text=True).stdout
    return out.strip() + "\n"


# --- the registry process ---------------------------------------------------------------------


class Registry:
    """A running ``docker-registry serve`` on 127.0.0.1; a context manager that stops it."""

    def __init__(
        self,
        workdir: str,
        kind: str = "plain",
        username: str | None = None,
        password: str | None = None,
        token_server=None,
        ca: TestCA | None = None,
        client_ca: TestCA | None = None,
    ):
        if kind not in KINDS:
            raise ValueError("kind must be one of %s" % ", ".join(KINDS))
        self.workdir = workdir
        self.kind = kind
        self.username = username
        self.password = password
        self.token_server = token_server
        self.data_dir = os.path.join(workdir, "data")
        self.config_path = os.path.join(workdir, "config.yml")
        self.log_path = os.path.join(workdir, "registry.log")
        self.ca: TestCA | None = ca
        self.ca_cert: str | None = ca.cert_path if ca else None
        # With TLS: only clients showing a certificate signed by this CA are served (mutual TLS).
        self.client_ca = client_ca
        self._probe_cert = client_ca.issue("ready-probe", client=True) if client_ca else None
        self._server_cert: tuple[str, str] | None = None
        self.port = 0
        self._process: subprocess.Popen | None = None
        self._log = None
        os.makedirs(self.data_dir, exist_ok=True)

    @property
    def host(self) -> str:
        return "127.0.0.1:%d" % self.port

    @property
    def scheme(self) -> str:
        return "http" if self.kind == "plain" else "https"

    @property
    def url(self) -> str:
        return "%s://%s" % (self.scheme, self.host)

    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log: {level: warn}",
            "storage:",
            "  filesystem: {rootdirectory: %s}" % self.data_dir,
            "  delete: {enabled: true}",
            "http:",
            "  addr: 127.0.0.1:%d" % self.port,
            "  secret: oci-images-test-secret",
        ]
        if self.kind != "plain":
            if self.ca is None:
                self.ca = make_test_ca(os.path.join(self.workdir, "pki"))
                self.ca_cert = self.ca.cert_path
            if self._server_cert is None:
                self._server_cert = self.ca.issue("registry")
            clientcas = ", clientcas: [%s]" % self.client_ca.cert_path if self.client_ca else ""
            lines.append("  tls: {certificate: %s, key: %s%s}" % (*self._server_cert, clientcas))
        if self.kind == "basic":
            htpasswd = os.path.join(self.workdir, "htpasswd")
            with open(htpasswd, "w") as f:
                f.write(htpasswd_line(self.username or "", self.password or ""))
            lines += ["auth:", "  htpasswd: {realm: oci-images-test, path: %s}" % htpasswd]
        if self.kind == "token":
            ts = self.token_server
            lines += [
                "auth:",
                "  token: {realm: '%s', service: %s, issuer: %s, rootcertbundle: %s}" % (ts.realm, ts.service, ts.issuer, ts.signing_cert_path),
            ]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self) -> Registry:
        """Start on a free port (or the port it had, on restart) and wait until ``/v2/`` answers."""
        keep_port = self.port != 0
        for _attempt in range(3):
            if not keep_port:
                self.port = free_port()
            self._write_config()
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _terminate, outlives this call
            self._process = subprocess.Popen([REGISTRY_BINARY, "serve", self.config_path], stdout=self._log, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            self._terminate()
        with open(self.log_path, "rb") as f:
            log = f.read()[-2000:].decode("utf-8", "replace")
        raise RuntimeError("docker-registry did not start on %s: %s" % (self.host, log))

    def _wait_ready(self) -> bool:
        context = ssl.create_default_context(cafile=self.ca_cert) if self.ca_cert else None
        if context is not None and self._probe_cert:
            context.load_cert_chain(*self._probe_cert)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2, context=context).close()
                return True
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return True
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)  # polling interval while the process binds its port, not a readiness guess
        return False

    def _terminate(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop the registry process (its data stays in ``data_dir``)."""
        self._terminate()

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self._terminate()
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def __repr__(self) -> str:
        return "Registry(kind=%r, url=%r)" % (self.kind, self.url)


def start_registry(
    workdir: str, kind: str = "plain", username: str = "tester", password: str = "s3cret-pass", token_server=None, mutual_tls: bool = False
) -> Registry:
    """Start a registry of ``kind`` in ``workdir``; for ``token`` a token server is started too unless given.

    ``mutual_tls``: only clients with a certificate from the registry's CA (``registry.ca.issue(name, client=True)``) are served.
    """
    os.makedirs(workdir, exist_ok=True)
    ca = make_test_ca(os.path.join(workdir, "pki")) if kind != "plain" else None
    owns_token_server = False
    if kind == "token" and token_server is None:
        from token_server import start_token_server

        # One CA for the registry and its token server, so a client needs one ca_cert.
        token_server = start_token_server(os.path.join(workdir, "token"), users={username: password}, ca=ca)
        owns_token_server = True
    with_user = kind in ("basic", "token")
    registry = Registry(workdir, kind, username if with_user else None, password if with_user else None, token_server, ca, ca if mutual_tls else None)
    try:
        registry.start()
    except Exception:
        if owns_token_server:
            token_server.stop()
        raise
    if owns_token_server:
        inner_stop = registry.stop

        def stop_both() -> None:
            inner_stop()
            token_server.stop()

        registry.stop = stop_both  # type: ignore[method-assign]
    return registry
