"""Helpers for the registry client tests: a tiny OCI layout builder, skopeo pushes, a scripted fake server."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from collection_tree import subprocess_runner

from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient

SKOPEO = "/usr/bin/skopeo"


@dataclass
class LocalImage:
    layout: str
    manifest: bytes
    manifest_digest: str
    config_digest: str
    layer: bytes
    layer_digest: str
    config: bytes


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_layout(path: str, seed: str, size: int = 4096) -> LocalImage:
    """One-layer OCI image layout in ``path`` whose layer holds ``size`` bytes derived from ``seed``."""
    content = b""
    counter = 0
    while len(content) < size:
        content += hashlib.sha256(("%s-%d" % (seed, counter)).encode()).digest()
        counter += 1
    content = content[:size]
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("data/%s.bin" % seed)
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    diff_id = _sha(tar_buf.getvalue())
    layer = gzip.compress(tar_buf.getvalue(), mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}, sort_keys=True).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _sha(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    for data in (layer, config, manifest):
        with open(os.path.join(blobs, _sha(data).split(":")[1]), "wb") as f:
            f.write(data)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _sha(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return LocalImage(path, manifest, _sha(manifest), _sha(config), layer, _sha(layer), config)


def skopeo_push(image: LocalImage, reg, reference: str, creds: bool = False) -> None:
    """Copy the layout to ``reg``/``reference`` with skopeo (the oracle writer)."""
    cmd = [SKOPEO, "--insecure-policy", "copy", "--dest-tls-verify=false", "--preserve-digests"]
    if creds:
        cmd.append("--dest-creds=%s:%s" % (reg.username, reg.password))
    cmd += ["oci:%s:latest" % image.layout, "docker://%s/%s" % (reg.host, reference)]
    subprocess.run(cmd, check=True, capture_output=True)


def blob_file(reg, digest: str) -> str:
    """Where the filesystem driver of ``reg`` keeps a blob's bytes."""
    hexdigest = digest.split(":")[1]
    return os.path.join(reg.data_dir, "docker", "registry", "v2", "blobs", "sha256", hexdigest[:2], hexdigest, "data")


def make_client(reg, **options) -> RegistryClient:
    """A client for ``reg`` with fast retries; plain-HTTP registries need validate_certs false."""
    # Programs (credential helpers) run the way a module's run_command would run them.
    opts = {"validate_certs": reg.kind != "plain", "ca_cert": reg.ca_cert, "retries": 2, "runner": subprocess_runner}
    opts.update(options)
    return RegistryClient(reg.host, ConnectionOptions(**opts), backoff_base=0.01)


@pytest.fixture(autouse=True)
def isolated_credentials(tmp_path, monkeypatch):
    """Keep the machine's own auth files and certs.d out of every test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def pushed_image(registry, tmp_path_factory) -> LocalImage:
    """A small image pushed by skopeo to the plain session registry as ``unit/app:1.0``."""
    image = build_layout(str(tmp_path_factory.mktemp("layout-app")), "app")
    skopeo_push(image, registry, "unit/app:1.0")
    return image


# --- a scripted fake HTTP server for what a real registry cannot be made to do ---------------------


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict


@dataclass
class FakeServer:
    """Answers each request with ``handler(request) -> (status, headers, body[, cut_after])``; records requests."""

    handler: object
    requests: list = field(default_factory=list)
    host: str = ""
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def start_fake_server(handler) -> FakeServer:
    server = FakeServer(handler)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen = SeenRequest(self.command, self.path, dict(self.headers))
            server.requests.append(seen)
            answer = server.handler(seen)
            status, headers, body = answer[:3]
            cut_after = answer[3] if len(answer) > 3 else None
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if cut_after is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body if cut_after is None else body[:cut_after])
            if cut_after is not None:
                self.wfile.flush()
                self.close_connection = True

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server._httpd = httpd
    server.host = "127.0.0.1:%d" % httpd.server_address[1]
    server._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    server._thread.start()
    return server


@pytest.fixture
def fake_server():
    """Factory: ``fake_server(handler)`` starts a scripted server, stopped after the test."""
    started = []

    def start(handler) -> FakeServer:
        server = start_fake_server(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
