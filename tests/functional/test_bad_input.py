"""A corpus of bad input, each case through Ansible: a clear msg naming what is wrong, no traceback, nothing written.

References are checked by the modules themselves; manifests and configs come from a tiny fake
registry (the real one refuses to store most of them) or from OCI layouts on disk; archives are
tar files built here. Every copy goes to a local destination that must not exist afterwards, and
the fake registry must have seen no write.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_run import run_module
from images import build_image

pytestmark = pytest.mark.timeout(120)

HEX = "a" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FIVE_MIB = 5 * 1024 * 1024


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(doc) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


# --- a fake registry for what a real one will not store ----------------------------------------


class FakeRegistry:
    """Serves fixed manifests and blobs over plain HTTP; records every request; accepts no writes."""

    def __init__(self):
        self.manifests: dict[tuple[str, str], tuple[bytes, str, dict]] = {}
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, headers: dict) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                fake.requests.append((self.command, self.path))
                match = re.match(r"^/v2/(.+)/(manifests|blobs)/([^/?]+)$", self.path)
                if self.path == "/v2/":
                    return self._send(200, b"{}", {"Content-Type": "application/json"})
                if match and match.group(2) == "manifests" and (match.group(1), match.group(3)) in fake.manifests:
                    body, media_type, headers = fake.manifests[(match.group(1), match.group(3))]
                    return self._send(200, body, dict({"Content-Type": media_type, "Docker-Content-Digest": sha(body)}, **headers))
                if match and match.group(2) == "blobs" and (match.group(1), match.group(3)) in fake.blobs:
                    return self._send(200, fake.blobs[(match.group(1), match.group(3))], {"Content-Type": "application/octet-stream"})
                self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}', {"Content-Type": "application/json"})

            do_HEAD = do_GET

            def _refuse(self):
                fake.requests.append((self.command, self.path))
                self._send(405, b"", {})

            do_PUT = do_POST = do_PATCH = do_DELETE = _refuse

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = "127.0.0.1:%d" % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def serve(self, repo: str, body: bytes, media_type: str = OCI_MANIFEST, ref: str = "1", headers: dict | None = None) -> str:
        self.manifests[(repo, ref)] = (body, media_type, headers or {})
        return "docker://%s/%s:%s" % (self.host, repo, ref)

    def serve_image(self, repo: str, config: bytes, layer: bytes = b"layer", manifest_extra: dict | None = None) -> str:
        """A manifest whose config and layer are served as given (digests computed from the bytes)."""
        self.blobs[(repo, sha(config))] = config
        self.blobs[(repo, sha(layer))] = layer
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha(layer), "size": len(layer)}],
        }
        doc.update(manifest_extra or {})
        return self.serve(repo, canonical(doc))

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] not in ("GET", "HEAD")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake():
    server = FakeRegistry()
    yield server
    assert server.writes() == [], "a module wrote to the registry while rejecting bad input"
    server.stop()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A valid image in an OCI layout, the starting point for the broken layouts and archives."""
    return build_image(str(tmp_path_factory.mktemp("good") / "layout"), ref="1", layer_sizes=(2048,), seed=901)


# --- building the bad inputs -------------------------------------------------------------------


@dataclass
class Ctx:
    tmp: str
    fake: FakeRegistry
    good: dict


def _config(**extra) -> bytes:
    doc = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + HEX]}}
    doc.update(extra)
    return canonical(doc)


def _manifest(fake: FakeRegistry, repo: str, doc) -> str:
    return fake.serve(repo, doc if isinstance(doc, bytes) else canonical(doc))


def _image_doc(**changes) -> dict:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": "sha256:" + HEX, "size": 10},
        "layers": [{"mediaType": OCI_LAYER, "digest": "sha256:" + "b" * 64, "size": 10}],
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def _cycle(fake: FakeRegistry) -> str:
    # Two indexes that list each other: the tag names A, A lists B, B lists A (by digest; the fake serves both).
    b_placeholder = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    a = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_INDEX, "digest": sha(canonical(b_placeholder)), "size": 1}]})
    b = canonical(dict(b_placeholder, manifests=[{"mediaType": OCI_INDEX, "digest": sha(a), "size": len(a)}]))
    a = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_INDEX, "digest": sha(b), "size": len(b)}]})
    fake.serve("cycle/app", b, OCI_INDEX, ref=sha(b))
    return fake.serve("cycle/app", a, OCI_INDEX)


def _self_index(fake: FakeRegistry) -> str:
    # An index whose only entry is served, by digest, as the same index again (it names itself as far as the client can tell).
    inner = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    outer = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_INDEX, "digest": sha(inner), "size": len(inner)}]})
    fake.serve("self/app", outer, OCI_INDEX, ref=sha(inner), headers={"Docker-Content-Digest": sha(inner)})
    return fake.serve("self/app", outer, OCI_INDEX)


def _copy_layout(good: dict, tmp: str, name: str) -> str:
    import shutil

    path = os.path.join(tmp, name)
    shutil.copytree(good["layout"], path)
    return path


def _broken_layout(ctx: Ctx, change) -> str:
    path = _copy_layout(ctx.good, ctx.tmp, "layout")
    change(path, ctx.good)
    return "oci:%s:1" % path


def _blob_path(layout: str, digest: str) -> str:
    return os.path.join(layout, "blobs", "sha256", digest.split(":")[1])


def _corrupt_manifest_blob(path: str, good: dict) -> None:
    with open(_blob_path(path, good["manifest_digest"]), "ab") as f:
        f.write(b" ")


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _tar(ctx: Ctx, members: list[tuple], name: str = "bad.tar") -> str:
    """A tar from (name, bytes) files, (name, 'symlink'|'hardlink', target) links."""
    path = os.path.join(ctx.tmp, name)
    with tarfile.open(path, "w") as tar:
        for member in members:
            info = tarfile.TarInfo(member[0])
            if len(member) == 3:
                info.type = tarfile.SYMTYPE if member[1] == "symlink" else tarfile.LNKTYPE
                info.linkname = member[2]
                tar.addfile(info)
            else:
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def _docker_archive(ctx: Ctx, extra: list[tuple] = (), manifest=None, layer: bool = True, drop: tuple = (), stored=None) -> str:
    """A docker save tar; ``stored`` turns the layer's bytes into what the member holds (a damaged gzip)."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    layer_bytes = layer_tar.getvalue()
    config = _config(rootfs={"type": "layers", "diff_ids": [sha(layer_bytes)]})
    items = manifest if manifest is not None else canonical([{"Config": "config.json", "RepoTags": ["bad:1"], "Layers": ["layer.tar"]}])
    members = [("manifest.json", items), ("config.json", config)]
    if layer:
        members.append(("layer.tar", stored(layer_bytes) if stored else layer_bytes))
    members = [m for m in members if m[0] not in drop] + list(extra)
    return "docker-archive:%s" % _tar(ctx, members)


def _damaged_gzip(data: bytes) -> bytes:
    """gzip with its deflate stream overwritten after the header: zlib refuses it mid-stream."""
    packed = gzip.compress(data + os.urandom(4096), compresslevel=1)
    return packed[:10] + b"\xff" * (len(packed) - 18) + packed[-8:]


def _gzipped_archive(ctx: Ctx) -> str:
    """A whole docker-archive gzip'd, with the deflate stream damaged."""
    path = _docker_archive(ctx).split(":", 1)[1]
    with open(path, "rb") as f:
        damaged = _damaged_gzip(f.read())
    _write(path + ".gz", damaged)
    return "docker-archive:%s.gz" % path


def _oci_archive_without_index(ctx: Ctx) -> str:
    members = []
    for root, _dirs, files in os.walk(ctx.good["layout"]):
        for file in files:
            full = os.path.join(root, file)
            rel = os.path.relpath(full, ctx.good["layout"])
            if rel != "index.json":
                with open(full, "rb") as f:
                    members.append((rel, f.read()))
    return "oci-archive:%s" % _tar(ctx, members, "noindex.tar")


def _dir_without_manifest(ctx: Ctx) -> str:
    path = os.path.join(ctx.tmp, "dirimage")
    os.makedirs(path)
    _write(os.path.join(path, "version"), b"Directory Transport Version: 1.1\n")
    return "dir:%s" % path


def _blob_mismatch(ctx: Ctx) -> str:
    ref = ctx.fake.serve_image("b/mismatch", _config(), layer=b"the real layer")
    layer = sha(b"the real layer")
    ctx.fake.blobs[("b/mismatch", layer)] = b"the fake layer"  # same length, other bytes
    return ref


def _plain_file(ctx: Ctx) -> str:
    path = os.path.join(ctx.tmp, "notatar")
    _write(path, b"\x00not a tar archive at all" * 40)
    return path


# Each case: id, module ("copy" copies to a local dest; "info" inspects), a builder (ctx -> reference),
# what the msg must say (regex, case-insensitive) and a string the msg must name (the reference or a path part).
CASES = [
    # references
    ("ref-empty", "copy", lambda c: "", r"empty image reference", ""),
    ("ref-empty-name", "copy", lambda c: "docker://", r"empty image name", "docker://"),
    ("ref-uppercase-repository", "copy", lambda c: "docker://localhost:5000/UPPER/app:1", r"must be lowercase", "UPPER/app"),
    ("ref-tag-and-digest", "copy", lambda c: "docker://localhost:5000/app:1@sha256:" + HEX, r"both a tag and a digest", "app:1@sha256"),
    ("ref-short-digest", "copy", lambda c: "docker://localhost:5000/app@sha256:abcd", r"64 lowercase hex", "sha256:abcd"),
    ("ref-uppercase-digest", "info", lambda c: "docker://localhost:5000/app@sha256:" + "A" * 64, r"64 lowercase hex", "localhost:5000/app"),
    ("ref-unknown-digest-algorithm", "copy", lambda c: "docker://localhost:5000/app@md5:" + "a" * 32, r"unsupported digest algorithm", "md5"),
    ("ref-tag-with-space", "copy", lambda c: "docker://localhost:5000/app:bad tag!", r"invalid tag", "bad tag!"),
    ("ref-tag-leading-dash", "info", lambda c: "docker://localhost:5000/app:-x", r"invalid tag", "-x"),
    ("ref-tag-too-long", "copy", lambda c: "docker://localhost:5000/app:" + "t" * 129, r"up to 128", "t" * 129),
    ("ref-empty-tag", "info", lambda c: "docker://localhost:5000/app:", r"invalid tag", "app:"),
    ("ref-double-slash", "copy", lambda c: "docker://localhost:5000//app:1", r"invalid repository name", "/app"),
    ("ref-name-too-long", "copy", lambda c: "docker://localhost:5000/" + "a/" * 130 + "x:1", r"longer than 255", "a/a/a"),
    ("ref-unknown-transport", "copy", lambda c: "ftp://host/app:1", r"unknown transport", "ftp"),
    ("ref-oci-empty-path", "copy", lambda c: "oci:", r"empty path", "oci:"),
    ("ref-dir-empty-path", "copy", lambda c: "dir:", r"empty path", "dir:"),
    ("ref-oci-archive-empty-path", "copy", lambda c: "oci-archive:", r"empty path", "oci-archive:"),
    ("ref-docker-archive-empty-path", "info", lambda c: "docker-archive:", r"empty path", "docker-archive:"),
    ("ref-oci-bad-ref-name", "copy", lambda c: "oci:%s:bad ref!" % c.good["layout"], r"invalid image reference", "bad ref!"),
    ("ref-docker-daemon-empty", "info", lambda c: "docker-daemon:", r"empty", "docker-daemon:"),
    # manifests from a registry
    ("manifest-invalid-json", "copy", lambda c: _manifest(c.fake, "m/json", b"{not json"), r"not valid JSON", "m/json"),
    ("manifest-json-array", "info", lambda c: _manifest(c.fake, "m/array", b"[1, 2]"), r"not an object|not a JSON object", "m/array"),
    (
        "manifest-wrong-media-type",
        "copy",
        lambda c: c.fake.serve("m/type", canonical(_image_doc(mediaType="text/html")), "text/html"),
        r"media ?type|text/html",
        "m/type",
    ),
    ("manifest-missing-config", "copy", lambda c: _manifest(c.fake, "m/noconfig", _image_doc(config=None)), r"config", "m/noconfig"),
    ("manifest-missing-layers", "copy", lambda c: _manifest(c.fake, "m/nolayers", _image_doc(layers=None)), r"layers", "m/nolayers"),
    (
        "manifest-layer-bad-digest",
        "copy",
        lambda c: _manifest(c.fake, "m/baddigest", _image_doc(layers=[{"mediaType": OCI_LAYER, "digest": "sha256:xyz", "size": 1}])),
        r"digest",
        "m/baddigest",
    ),
    (
        "manifest-layer-size-not-a-number",
        "copy",
        lambda c: _manifest(c.fake, "m/badsize", _image_doc(layers=[{"mediaType": OCI_LAYER, "digest": "sha256:" + HEX, "size": "ten"}])),
        r"size",
        "m/badsize",
    ),
    ("manifest-over-4-mib", "copy", lambda c: _manifest(c.fake, "m/huge", _image_doc(annotations={"pad": "x" * FIVE_MIB})), r"limit", "m/huge"),
    (
        "manifest-digest-header-mismatch",
        "copy",
        lambda c: c.fake.serve("m/header", canonical(_image_doc()), headers={"Docker-Content-Digest": "sha256:" + "c" * 64}),
        r"digest",
        "m/header",
    ),
    (
        "manifest-by-digest-content-mismatch",
        "copy",
        lambda c: c.fake.serve("m/bydigest", canonical(_image_doc()), ref="sha256:" + "d" * 64, headers={"Docker-Content-Digest": "sha256:" + "d" * 64}),
        r"digest",
        "m/bydigest",
    ),
    ("index-cycle", "copy", lambda c: _cycle(c.fake), r"nested|index|cycle", "cycle/app"),
    ("index-self-reference", "copy", lambda c: _self_index(c.fake), r"nested|index|digest", "self/app"),
    (
        "manifest-schema1-copy",
        "copy",
        lambda c: c.fake.serve(
            "m/v1",
            canonical({"schemaVersion": 1, "name": "m/v1", "tag": "1", "architecture": "amd64", "fsLayers": [], "history": []}),
            "application/vnd.docker.distribution.manifest.v1+json",
        ),
        r"schema 1",
        "m/v1",
    ),
    # configs
    ("config-invalid-json", "info", lambda c: c.fake.serve_image("c/json", b"{nope"), r"not valid JSON", "c/json"),
    ("config-over-4-mib", "info", lambda c: c.fake.serve_image("c/huge", _config(pad="x" * FIVE_MIB)), r"limit", "c/huge"),
    ("config-invalid-json-to-docker-archive", "copy-archive", lambda c: c.fake.serve_image("c/json2", b"[oops"), r"JSON", "c/json2"),
    ("blob-content-mismatch", "copy", _blob_mismatch, r"digest", "b/mismatch"),
    # archives
    ("archive-path-traversal", "copy", lambda c: _docker_archive(c, [("../evil.txt", b"evil")]), r"unsafe member", "../evil.txt"),
    ("archive-absolute-path", "copy", lambda c: _docker_archive(c, [("/tmp/oci-images-evil.txt", b"evil")]), r"unsafe member", "oci-images-evil"),
    ("archive-symlink-escaping", "copy", lambda c: _docker_archive(c, [("escape", "symlink", "../../etc/passwd")]), r"unsafe member", "escape"),
    ("archive-hardlink-escaping", "copy", lambda c: _docker_archive(c, [("hard", "hardlink", "../outside")]), r"unsafe member", "hard"),
    (
        "archive-manifest-symlink-outside",
        "copy",
        lambda c: _docker_archive(c, [("manifest.json", "symlink", "/etc/passwd")], drop=("manifest.json",)),
        r"unsafe member",
        "manifest.json",
    ),
    ("archive-missing-manifest-json", "copy", lambda c: _docker_archive(c, drop=("manifest.json",)), r"no manifest.json", "bad.tar"),
    ("archive-manifest-json-invalid", "copy", lambda c: _docker_archive(c, manifest=b"{{"), r"not valid JSON", "bad.tar"),
    ("archive-layer-listed-but-absent", "copy", lambda c: _docker_archive(c, layer=False), r"layer.tar", "bad.tar"),
    ("archive-not-a-tar", "info", lambda c: "docker-archive:%s" % _plain_file(c), r"not a readable tar", "notatar"),
    ("archive-layer-gzip-damaged", "copy", lambda c: _docker_archive(c, stored=_damaged_gzip), r"cannot be decompressed", "layer.tar"),
    ("archive-gzip-damaged", "info", _gzipped_archive, r"cannot decompress", "bad.tar.gz"),
    ("oci-archive-missing-index-json", "copy", _oci_archive_without_index, r"index.json", "noindex.tar"),
    # OCI layouts and dir:
    ("layout-missing-index-json", "copy", lambda c: _broken_layout(c, lambda p, g: os.unlink(os.path.join(p, "index.json"))), r"index.json", "layout"),
    ("layout-index-json-invalid", "copy", lambda c: _broken_layout(c, lambda p, g: _write(os.path.join(p, "index.json"), b"{")), r"JSON", "layout"),
    ("layout-ref-not-found", "copy", lambda c: "oci:%s:nosuchref" % _copy_layout(c.good, c.tmp, "layout"), r"nosuchref", "layout"),
    (
        "layout-blob-missing",
        "copy",
        lambda c: _broken_layout(c, lambda p, g: os.unlink(_blob_path(p, g["layer_digests"][0]))),
        r"missing|not found|does not exist|no such",
        "layout",
    ),
    ("layout-manifest-corrupt", "copy", lambda c: _broken_layout(c, _corrupt_manifest_blob), r"digest", "layout"),
    ("layout-does-not-exist", "copy", lambda c: "oci:%s/nothing-here:1" % c.tmp, r"not exist|not found|no such", "nothing-here"),
    ("dir-missing-manifest-json", "copy", _dir_without_manifest, r"manifest.json", "dirimage"),
]


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id, kind, build, expect, names", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_cleanly(tmp_path, fake, good, case_id, kind, build, expect, names):
    ctx = Ctx(str(tmp_path), fake, good)
    reference = build(ctx)
    dest = tmp_path / "dest"
    if kind == "info":
        run = run_module("image_info", {"image": reference, "validate_certs": False, "retries": 0})
    else:
        target = "docker-archive:%s:bad:1" % dest if kind == "copy-archive" else "oci:%s:1" % dest
        run = run_module("image_copy", {"src": reference, "dest": target, "src_validate_certs": False, "retries": 0})
    assert run.failed, "%s was accepted: %s" % (case_id, run.result)
    msg = run.result.get("msg") or ""
    assert "Traceback" not in run.output and "exception" not in run.result and "module_stderr" not in run.result, run.output
    assert re.search(expect, msg, re.I), "%s: msg does not say what is wrong: %s" % (case_id, msg)
    assert names in msg, "%s: msg does not name %r: %s" % (case_id, names, msg)
    assert not dest.exists(), "%s left %s behind" % (case_id, dest)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".oci-images-tmp")]
    assert not os.path.exists("/tmp/oci-images-evil.txt") and not (tmp_path.parent / "evil.txt").exists()
