# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build test images as OCI image layouts, in pure Python, with no network and no engine.

Layers are gzip'd tars holding one file of deterministic pseudo-random bytes: the same
seed gives the same bytes (and digests) every run, different seeds give different layers.
Sizes are parameters, so the same code makes a few KB for unit tests and hundreds of MB for
benchmarks. ``build_image`` makes one image, ``build_index`` a multi-platform index; both add
(or replace) a ``org.opencontainers.image.ref.name`` entry in the layout's index.json.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os as _os
import random
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
DEFAULT_CREATED = "2024-01-02T03:04:05Z"
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64/v8")
_CHUNK = 1024 * 1024

_MEDIA = {
    "oci": {"manifest": OCI_MANIFEST, "index": OCI_INDEX, "config": OCI_CONFIG, "layer": OCI_LAYER_GZIP},
    "docker": {"manifest": DOCKER_MANIFEST, "index": DOCKER_LIST, "config": DOCKER_CONFIG, "layer": DOCKER_LAYER_GZIP},
}


def canonical_json(doc) -> bytes:
    """Compact, key-sorted JSON: stable bytes, so stable digests."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class _PseudoRandomReader:
    """``size`` deterministic bytes for ``key``, produced a chunk at a time (never all in memory)."""

    def __init__(self, key: str, size: int):
        self._random = random.Random(key)
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        self._left -= n
        return self._random.randbytes(n) if n else b""


class _HashingWriter:
    """A write-only file that hashes and counts what passes through to ``target``."""

    def __init__(self, target):
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        if self._target is not None:
            self._target.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


def _blob_dir(layout_dir: str) -> str:
    path = _os.path.join(layout_dir, "blobs", "sha256")
    _os.makedirs(path, exist_ok=True)
    return path


def write_blob(layout_dir: str, data: bytes) -> tuple[str, int]:
    """Store ``data`` under blobs/sha256/ and return (digest, size)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = _os.path.join(_blob_dir(layout_dir), digest[7:])
    if not _os.path.exists(path):
        tmp = path + ".tmp%d" % _os.getpid()
        with open(tmp, "wb") as f:
            f.write(data)
        _os.replace(tmp, path)
    return digest, len(data)


def write_layer(layout_dir: str, key: str, payload_size: int, name: str = "data.bin") -> dict:
    """Write a gzip'd tar holding one file of ``payload_size`` pseudo-random bytes; return digest, size, diff_id."""
    blobs = _blob_dir(layout_dir)
    tmp = _os.path.join(blobs, "layer.tmp%d" % _os.getpid())
    with open(tmp, "wb") as out:
        compressed = _HashingWriter(out)
        # mtime=0 and no file name: the gzip header is the same every run.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=1, mtime=0) as gz:
            uncompressed = _HashingWriter(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo(name)
                info.size = payload_size
                info.mtime = 0
                info.mode = 0o644
                tar.addfile(info, _PseudoRandomReader(key, payload_size))
    digest = compressed.digest
    _os.replace(tmp, _os.path.join(blobs, digest[7:]))
    return {"digest": digest, "size": compressed.size, "diff_id": uncompressed.digest}


def parse_platform(text: str) -> dict:
    parts = text.split("/")
    platform = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2:
        platform["variant"] = parts[2]
    return platform


def _write_image_blobs(
    layout_dir: str,
    key: str,
    layer_sizes,
    labels,
    env,
    created: str,
    architecture: str,
    os: str,
    variant: str | None,
    media: str,
    annotations: dict | None = None,
    layer_keys=None,
) -> dict:
    types = _MEDIA[media]
    # A layer's bytes come from its key: images given the same key for a layer share that blob.
    keys = list(layer_keys) if layer_keys is not None else ["%s:%d" % (key, i) for i in range(len(layer_sizes))]
    layers = [write_layer(layout_dir, keys[i], size, name="layer%d.bin" % i) for i, size in enumerate(layer_sizes)]
    config = {
        "architecture": architecture,
        "os": os,
        "created": created,
        "config": {"Env": list(env) if env is not None else ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer["diff_id"] for layer in layers]},
        "history": [{"created": created, "created_by": "tests/lib/images.py layer %d" % i} for i in range(len(layers))],
    }
    if labels:
        config["config"]["Labels"] = dict(labels)
    if variant:
        config["variant"] = variant
    config_digest, config_size = write_blob(layout_dir, canonical_json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": {"mediaType": types["config"], "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": types["layer"], "digest": layer["digest"], "size": layer["size"]} for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    raw = canonical_json(manifest)
    manifest_digest, manifest_size = write_blob(layout_dir, raw)
    platform = {"architecture": architecture, "os": os}
    if variant:
        platform["variant"] = variant
    return {
        "layout": layout_dir,
        "manifest_digest": manifest_digest,
        "manifest_size": manifest_size,
        "manifest_media_type": types["manifest"],
        "manifest": raw,
        "config_digest": config_digest,
        "config_size": config_size,
        "config": config,
        "layers": layers,
        "layer_digests": [layer["digest"] for layer in layers],
        "layer_sizes": [layer["size"] for layer in layers],
        "diff_ids": [layer["diff_id"] for layer in layers],
        "platform": platform,
    }


def add_to_index(layout_dir: str, descriptor: dict, ref: str | None) -> None:
    """Create oci-layout/index.json if needed and add ``descriptor`` under ``ref`` (replacing that ref)."""
    _os.makedirs(layout_dir, exist_ok=True)
    marker = _os.path.join(layout_dir, "oci-layout")
    if not _os.path.exists(marker):
        with open(marker, "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index_path = _os.path.join(layout_dir, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if _os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    entry = dict(descriptor)
    if ref is not None:
        entry["annotations"] = {REF_NAME_ANNOTATION: ref}
        index["manifests"] = [m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_NAME_ANNOTATION) != ref]
    index["manifests"].append(entry)
    tmp = index_path + ".tmp%d" % _os.getpid()
    with open(tmp, "w") as f:
        json.dump(index, f)
    _os.replace(tmp, index_path)


def build_image(
    layout_dir: str,
    ref: str | None = "latest",
    layer_sizes=(4096,),
    seed=0,
    labels: dict | None = None,
    env: list | None = None,
    created: str = DEFAULT_CREATED,
    architecture: str = "amd64",
    os: str = "linux",
    variant: str | None = None,
    media: str = "oci",
    annotations: dict | None = None,
    layer_keys=None,
) -> dict:
    """Write one image into the OCI layout ``layout_dir`` under ``ref``; return its digests and sizes.

    ``media`` is ``oci`` or ``docker`` (Docker v2s2 media types inside the OCI layout; skopeo 1.9's
    ``oci:`` reader refuses those, so push them with the collection or convert with ``--format v2s2``).
    ``layer_keys`` (one string per layer) replaces the seed for layer bytes: images built with the
    same key for a layer of the same size share that layer, as images on a common base do.
    """
    image = _write_image_blobs(layout_dir, str(seed), layer_sizes, labels, env, created, architecture, os, variant, media, annotations, layer_keys=layer_keys)
    add_to_index(layout_dir, {"mediaType": image["manifest_media_type"], "digest": image["manifest_digest"], "size": image["manifest_size"]}, ref)
    image["ref"] = ref
    image["reference"] = "oci:%s:%s" % (layout_dir, ref) if ref else "oci:%s" % layout_dir
    return image


def build_index(
    layout_dir: str,
    ref: str | None = "latest",
    platforms=DEFAULT_PLATFORMS,
    layer_sizes=(4096,),
    seed=0,
    labels: dict | None = None,
    env: list | None = None,
    created: str = DEFAULT_CREATED,
    media: str = "oci",
) -> dict:
    """Write a multi-platform index (one image per ``os/arch[/variant]``) under ``ref``; return its digests.

    ``manifests`` in the result holds, per platform, what ``build_image`` returns.
    """
    types = _MEDIA[media]
    children = []
    for text in platforms:
        platform = parse_platform(text)
        child = _write_image_blobs(
            layout_dir,
            "%s/%s" % (seed, text),
            layer_sizes,
            labels,
            env,
            created,
            platform["architecture"],
            platform["os"],
            platform.get("variant"),
            media,
        )
        children.append(child)
    index = {
        "schemaVersion": 2,
        "mediaType": types["index"],
        "manifests": [
            {"mediaType": child["manifest_media_type"], "digest": child["manifest_digest"], "size": child["manifest_size"], "platform": child["platform"]}
            for child in children
        ],
    }
    raw = canonical_json(index)
    digest, size = write_blob(layout_dir, raw)
    add_to_index(layout_dir, {"mediaType": types["index"], "digest": digest, "size": size}, ref)
    return {
        "layout": layout_dir,
        "ref": ref,
        "reference": "oci:%s:%s" % (layout_dir, ref) if ref else "oci:%s" % layout_dir,
        "index_digest": digest,
        "manifest_digest": digest,
        "manifest_size": size,
        "manifest_media_type": types["index"],
        "manifest": raw,
        "manifests": children,
        "platforms": list(platforms),
    }


def layer_bytes(layout_dir: str, digest: str) -> bytes:
    """The stored bytes of a blob (for tests that want to look inside)."""
    with open(_os.path.join(layout_dir, "blobs", "sha256", digest.partition(":")[2]), "rb") as f:
        return f.read()


def tar_of(files: dict, extra=None, mode: int = 0o644, record_padding: bool = False) -> bytes:
    """A PAX tar (in memory, for small test layers) of ``{name: bytes}``; ``extra(tar)`` may add other entries.

    It ends with the two zero blocks of the end-of-archive marker, as Go's archive/tar (docker, buildah) writes it;
    ``record_padding`` keeps the zeros Python adds up to a 10 KiB record (which skopeo 1.9's zstd:chunked drops).
    """
    import io

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            extra(tar)
        end = tar.offset + 2 * tarfile.BLOCKSIZE
    return out.getvalue() if record_padding else out.getvalue()[:end]


def host_program_tar(program: str = "/usr/bin/echo") -> bytes:
    """A tar holding ``program`` and the shared libraries it loads, taken from this host (a layer that runs)."""
    import subprocess

    libraries = []
    for line in subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libraries.append(path)
    files = {}
    for path in [program, *libraries]:
        with open(_os.path.realpath(path), "rb") as f:
            files[path.lstrip("/")] = f.read()
    return tar_of(files, mode=0o755)


def build_image_of_tars(
    layout_dir: str, ref: str | None, tars: list, config: dict | None = None, architecture: str = "amd64", variant: str | None = None
) -> dict:
    """An OCI image whose layers are ``tars`` (bytes, gzip'd here), with ``config`` merged into its config's ``config``."""
    layers = []
    for data in tars:
        packed = gzip.compress(data, compresslevel=1, mtime=0)
        digest, size = write_blob(layout_dir, packed)
        layers.append({"digest": digest, "size": size, "diff_id": "sha256:" + hashlib.sha256(data).hexdigest()})
    image_config = {
        "architecture": architecture,
        "os": "linux",
        "created": DEFAULT_CREATED,
        "config": dict(config or {}),
        "rootfs": {"type": "layers", "diff_ids": [layer["diff_id"] for layer in layers]},
    }
    if variant:
        image_config["variant"] = variant
    config_digest, config_size = write_blob(layout_dir, canonical_json(image_config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer["digest"], "size": layer["size"]} for layer in layers],
    }
    raw = canonical_json(manifest)
    digest, size = write_blob(layout_dir, raw)
    add_to_index(layout_dir, {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}, ref)
    return {
        "layout": layout_dir,
        "reference": "oci:%s:%s" % (layout_dir, ref) if ref else "oci:%s" % layout_dir,
        "manifest_digest": digest,
        "config_digest": config_digest,
        "diff_ids": [layer["diff_id"] for layer in layers],
        "layer_digests": [layer["digest"] for layer in layers],
    }
