# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``docker save`` format, shared by docker-archive:, docker-daemon: and containers-storage:.

Reading: ``DockerSaveSource`` presents one image of such a tar as the Docker v2s2 manifest
skopeo synthesizes. Where the tar comes from (a file, an engine's export) and which of its
images the reference names is a ``SavedArchive``, given by the transport.

Writing: ``DockerSaveDestination`` writes one image as skopeo 1.9 does (uncompressed layers
named by diff ID, the config, the legacy per-layer directories, ``manifest.json``,
``repositories``) into the tar a ``SaveSink`` gives it: a file replaced on commit, an engine's
load request, a file podman loads.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import threading
from typing import BinaryIO, Callable

from .. import _media
from .._convert import go_json
from .._digest import VerifyingReader, sha256_digest, verify_bytes
from .._errors import EngineError, InvalidReference, LocalFormatError, NotFound, OCIError, Unsupported
from .._options import ConnectionOptions
from .._reference import ImageReference, parse_docker_name, validate_digest
from ._base import ImageDestination, ImageSource, verified_stream
from ._local import GuardedReader, local_io, remove_path
from ._tar import (
    COPY_CHUNK,
    DECOMPRESSION_ERRORS,
    ArchiveFiles,
    ClosingDecompressor,
    TarBuilder,
    TarStreamWriter,
    decompressing_stream,
    detect_compression,
    drain,
    new_member,
)

MANIFEST_FILE = "manifest.json"


class SavedImages:
    """The images a ``docker save`` tar holds: the entries of its manifest.json."""

    def __init__(self, files: ArchiveFiles, context: str):
        self.files = files
        self.context = context

    def items(self) -> list[dict]:
        files = self.files
        if not files.exists():
            raise NotFound("%s: archive %s does not exist" % (self.context, files.root), self.context)
        raw = files.read(MANIFEST_FILE, _media.MAX_MANIFEST_BYTES, self.context)
        if raw is None:
            raise NotFound("%s: %s has no manifest.json; it is not a docker save / docker-archive tar" % (self.context, files.root), self.context)
        try:
            items = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise LocalFormatError("%s: manifest.json in %s is not valid JSON: %s" % (self.context, files.root, e), self.context) from None
        valid = isinstance(items, list) and all(
            isinstance(i, dict)
            and isinstance(i.get("Config"), str)
            and isinstance(i.get("Layers"), list)
            and all(isinstance(layer, str) for layer in i["Layers"])
            and isinstance(i.get("RepoTags") or [], list)
            for i in items
        )
        if not valid:
            raise LocalFormatError(
                "%s: manifest.json in %s is not a list of {Config, RepoTags, Layers} entries" % (self.context, files.root),
                self.context,
            )
        return items

    def by_reference(self, reference: ImageReference) -> dict:
        """The entry a docker-archive reference names: by ``name:tag``, by ``@N``, or the only one."""
        items = self.items()
        ref = reference
        if ref.repository is not None:
            wanted = (ref.registry, ref.repository, ref.tag_or_default)
            available = []
            for item in items:
                for tag in item.get("RepoTags") or []:
                    available.append(tag)
                    try:
                        registry, repository, tag_name, _unused = parse_docker_name(tag, self.context)
                    except InvalidReference:
                        continue
                    if (registry, repository, tag_name) == wanted:
                        return item
            raise NotFound(
                "%s: no image tagged %s in %s; it has: %s" % (self.context, ref.docker_reference, self.files.root, ", ".join(available) or "no tags"),
                self.context,
            )
        if ref.source_index is not None:
            if ref.source_index >= len(items):
                raise NotFound(
                    "%s: no image @%d in %s; it holds %d image(s), @0 to @%d" % (self.context, ref.source_index, self.files.root, len(items), len(items) - 1),
                    self.context,
                )
            return items[ref.source_index]
        if len(items) != 1:
            tags = [t for item in items for t in item.get("RepoTags") or []]
            raise InvalidReference(
                "%s: %s holds %d images; name one with docker-archive:%s:NAME:TAG or :@N (tags: %s)"
                % (self.context, self.files.root, len(items), self.files.root, ", ".join(tags) or "none"),
                self.context,
            )
        return items[0]

    def config(self, item: dict) -> bytes:
        """The config file an entry names."""
        config = self.files.read(item["Config"], _media.MAX_CONFIG_BYTES, self.context)
        if config is None:
            raise NotFound("%s: config %s named by manifest.json is missing from %s" % (self.context, item["Config"], self.files.root), self.context)
        return config


class SavedArchive:
    """Where a source's ``docker save`` tar comes from, and which of its images the reference names."""

    def files(self) -> ArchiveFiles:
        """The tar's members (opened on the first call)."""
        raise NotImplementedError

    def choose(self, images: SavedImages) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        """Release the tar (and a temporary copy of it)."""


class ExportedArchive(SavedArchive):
    """A ``docker save`` tar an engine exports (``export(path)`` writes it), spooled to a temporary file.

    The engine exported exactly the image asked for, whatever its RepoTags say.
    """

    def __init__(self, context: str, export: Callable[[str], None]):
        self.context = context
        self._export = export
        self._spool: str | None = None
        self._files: ArchiveFiles | None = None

    def files(self) -> ArchiveFiles:
        if self._files is None:
            fd, self._spool = tempfile.mkstemp(prefix="oci-images-engine-", suffix=".tar")
            os.close(fd)
            self._export(self._spool)
            self._files = ArchiveFiles(self._spool, self.context)
        return self._files

    def choose(self, images: SavedImages) -> dict:
        items = images.items()
        if len(items) != 1:
            raise EngineError("%s: the engine exported %d images where one was asked for" % (self.context, len(items)), self.context)
        return items[0]

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None
        if self._spool is not None:
            remove_path(self._spool)
            self._spool = None


class DockerSaveSource(ImageSource):
    """One image of a ``docker save``-format tar, presented as the Docker v2s2 manifest skopeo synthesizes.

    Like containers/image, layers are addressed by their DiffID (the digest of the uncompressed
    tar), sizes are uncompressed sizes, and the layer media type is the Docker gzip one even
    though the bytes served are uncompressed — so digests agree with ``skopeo inspect``.
    """

    layers_stored_uncompressed = True

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None, archive: SavedArchive):
        super().__init__(reference, options)
        self.context = str(reference)
        self.archive = archive
        self._manifest: bytes | None = None
        self._config: bytes | None = None
        self._config_digest: str | None = None
        self._layers: dict[str, tuple[str, int]] = {}  # diff_id -> (member path, uncompressed size)

    @property
    def files(self) -> ArchiveFiles:
        return self.archive.files()

    def close(self) -> None:
        self.archive.close()

    def _load(self) -> None:
        if self._manifest is not None:
            return
        images = SavedImages(self.files, self.context)
        item = self.archive.choose(images)
        config = images.config(item)
        parsed = _media.parse_config(config, "%s (config %s)" % (self.context, item["Config"]))
        diff_ids = (parsed.get("rootfs") or {}).get("diff_ids")
        if not isinstance(diff_ids, list):
            raise LocalFormatError("%s: config %s has no rootfs.diff_ids" % (self.context, item["Config"]), self.context)
        if len(diff_ids) != len(item["Layers"]):
            raise LocalFormatError(
                "%s: manifest.json lists %d layers but the config has %d diff_ids" % (self.context, len(item["Layers"]), len(diff_ids)),
                self.context,
            )
        layers: dict[str, tuple[str, int]] = {}
        for diff_id, path in zip(diff_ids, item["Layers"]):
            validate_digest(diff_id, self.context)
            if diff_id not in layers:  # the same layer twice in one image is legal; read it once
                layers[diff_id] = (path, self._uncompressed_size(path))
        self._config = config
        self._config_digest = sha256_digest(config)
        self._layers = layers
        manifest = {
            "schemaVersion": 2,
            "mediaType": _media.DOCKER_MANIFEST,
            "config": {"mediaType": _media.DOCKER_CONFIG, "size": len(config), "digest": self._config_digest},
            "layers": [{"mediaType": _media.DOCKER_LAYER_GZIP, "size": layers[d][1], "digest": d} for d in diff_ids],
        }
        self._manifest = go_json(manifest)

    def _open_layer(self, path: str) -> tuple[BinaryIO, int, str | None]:
        opened = self.files.open(path)
        if opened is None:
            raise NotFound("%s: layer %s named by manifest.json is missing from %s" % (self.context, path, self.files.root), self.context)
        stream, size = opened
        compression = detect_compression(stream.read(8))
        stream.seek(0)
        return stream, size, compression

    def _uncompressed_size(self, path: str) -> int:
        stream, size, compression = self._open_layer(path)
        if compression is None:
            stream.close()
            return size
        # skopeo reports (and serves) compressed layers uncompressed, so the size must be counted.
        reader = decompressing_stream(stream, compression, self.context)
        total = 0
        try:
            while True:
                chunk = reader.read(COPY_CHUNK)
                if not chunk:
                    return total
                total += len(chunk)
        except (OSError, *DECOMPRESSION_ERRORS) as e:
            raise LocalFormatError("%s: layer %s cannot be decompressed: %s" % (self.context, path, e), self.context) from None
        finally:
            reader.close()
            stream.close()

    @local_io("reading the image")
    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        self._load()
        manifest = self._manifest or b""  # _load() set it
        if digest is not None:
            validate_digest(digest, self.context)
            if digest != sha256_digest(manifest):
                raise NotFound("%s: the archive's image has manifest %s, not %s" % (self.context, sha256_digest(manifest), digest), self.context)
        return manifest, _media.DOCKER_MANIFEST

    @local_io("reading the image")
    def open_blob(self, digest: str, size: int | None = None) -> VerifyingReader:
        validate_digest(digest, self.context)
        self._load()
        if digest == self._config_digest:
            return verified_stream(io.BytesIO(self._config or b""), digest, size if size is not None else len(self._config or b""), self.context)
        if digest not in self._layers:
            raise NotFound("%s: blob %s is not part of this image" % (self.context, digest), self.context)
        path, uncompressed_size = self._layers[digest]
        stream, _unused, compression = self._open_layer(path)
        location = self.files.location(path)
        stream = GuardedReader(stream, self.context, location)
        if compression is not None:
            stream = ClosingDecompressor(decompressing_stream(stream, compression, self.context), stream, "%s: layer %s" % (self.context, location))
        return verified_stream(stream, digest, size if size is not None else uncompressed_size, self.context, location)


# --- writing ----------------------------------------------------------------------------------

_CONFIG_MEDIA_TYPES = (_media.DOCKER_CONFIG, _media.OCI_CONFIG)
# What the top legacy layer's "json" takes from the image config (the set containers/image uses).
_LEGACY_CONFIG_FIELDS = ("architecture", "config", "container", "container_config", "created", "docker_version", "os")


def _sorted_go_json(doc: dict) -> bytes:
    # Go marshals a map with its keys sorted; nested values keep their own order.
    return go_json({key: doc[key] for key in sorted(doc)})


def legacy_layer_files(diff_ids: list[str], config: bytes) -> list[tuple[str, bytes]]:
    """(layer ID, json) of each layer in the legacy ``docker save`` layout, computed as skopeo 1.9 does."""
    config_doc = json.loads(config.decode("utf-8"))
    out = []
    chain_id = ""
    parent = ""
    for i, diff_id in enumerate(diff_ids):
        layer: dict = {}
        if parent:
            layer["parent"] = parent
        if i == len(diff_ids) - 1:
            for key in _LEGACY_CONFIG_FIELDS:
                layer[key] = config_doc.get(key)
        chain_id = diff_id if not chain_id else sha256_digest(("%s %s" % (chain_id, diff_id)).encode("utf-8"))
        layer_id = sha256_digest(_sorted_go_json(dict(layer, layer_id=chain_id))).partition(":")[2]
        layer["id"] = layer_id
        out.append((layer_id, _sorted_go_json(layer)))
        parent = layer_id
    return out


def _unique(digests: list[str]) -> list[str]:
    """Each digest once, in first-seen order (a layer may be listed twice)."""
    return list(dict.fromkeys(digests))


def save_member(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    """skopeo's docker-archive members: mode 0444 (symlinks 0), owner 0:0, no user names, mtime 0."""
    info = new_member(name, size, kind)
    info.mode = 0 if kind == tarfile.SYMTYPE else 0o444
    info.mtime = 0
    return info


class SaveSink:
    """Where a ``DockerSaveDestination``'s tar goes, and what the reference names there now."""

    def open(self) -> tuple[TarStreamWriter, str]:
        """The tar to write, and a directory for spool files (called once, on the first write)."""
        raise NotImplementedError

    def current_image_id(self) -> str | None:
        """The image ID (config digest) the reference names now; None when absent."""
        raise NotImplementedError

    def commit(self, image_id: str) -> None:
        """Make the finished tar's image (``image_id``, its config digest) visible under the reference."""

    def abort(self) -> None:
        """Drop everything not yet committed."""


class DockerSaveDestination(ImageDestination):
    """Writes one image in the ``docker save`` format as skopeo 1.9 does, into the tar a ``SaveSink`` gives.

    Each layer (``<diff-id hex>.tar``) is spooled as it arrives (a tar header needs its size, and
    uncompressed sizes are known only at the end), then added to the tar in the manifest's order,
    as soon as every layer before it is in: the order skopeo writes, whatever order downloads end
    in. The config is held until the manifest says which blob it is, then written as ``<hex>.json``
    followed by the legacy per-layer directories, ``manifest.json`` and ``repositories``. Up to
    date means: the name has the same image ID.
    """

    can_hold_index = False
    wants_uncompressed_layers = True
    identity = "config"

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None, sink: SaveSink):
        super().__init__(reference, options)
        self.context = str(reference)
        self.sink = sink
        self._lock = threading.Lock()  # blobs arrive from several threads
        self._tar: TarBuilder | None = None
        self._spool_dir: str | None = None
        self._top_written = False
        self.written: dict[str, int] = {}  # digest -> size of each blob written
        self._held: dict[str, str] = {}  # digest -> spool file of blobs that may be the config
        self._waiting: dict[str, str] = {}  # diff ID -> spool file of a layer waiting for its turn
        self._layers: dict[str, str] = {}  # diff ID -> member name of each layer in the tar
        self._order: list[str] = []  # the layers' diff IDs in manifest order
        self._adding = False  # a thread is adding layers to the tar
        self._config_digest: str | None = None
        self._open_lock = threading.Lock()

    def _builder(self) -> TarBuilder:
        # Blobs arrive from several threads; the sink is opened once, by the first.
        with self._lock:
            if self._tar is None:
                writer, self._spool_dir = self.sink.open()
                self._tar = TarBuilder(writer, self._spool_dir, save_member, self.context)
            return self._tar

    @local_io("reading what the destination holds now")
    def current_digest(self) -> str | None:
        return self.sink.current_image_id()

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        validate_digest(digest, self.context)
        return digest in self.written

    def expect_blobs(self, blobs: list[tuple[str, str | None]]) -> None:
        with self._lock:
            self._order = _unique([digest for digest, media_type in blobs if media_type is not None and media_type not in _CONFIG_MEDIA_TYPES])

    @local_io("writing the image")
    def put_blob(self, stream: BinaryIO, digest: str, size: int | None, media_type: str | None = None) -> None:
        validate_digest(digest, self.context)
        if digest in self.written:
            drain(stream)
            return
        spool = self._builder().spool(stream)
        with self._lock:
            if digest in self.written:  # the same layer twice in one manifest, written in parallel
                remove_path(spool)
                return
            self.written[digest] = os.path.getsize(spool)
            if media_type is None or media_type in _CONFIG_MEDIA_TYPES:
                self._held[digest] = spool
                return
            self._waiting[digest] = spool
        self._add_layers_in_order()

    def _add_layers_in_order(self) -> None:
        """Add the waiting layers whose turn has come, one thread at a time; the thread adding loops until none is left."""
        tar = self._builder()
        while True:
            with self._lock:
                following = next((d for d in self._order if d not in self._layers), None)
                if self._adding or following is None or following not in self._waiting:
                    return
                spool = self._waiting.pop(following)
                self._adding = True
            try:
                name = "%s.tar" % following.partition(":")[2]
                tar.add_spooled(name, spool, self.written[following])
                with self._lock:
                    self._layers[following] = name
            finally:
                remove_path(spool)
                with self._lock:
                    self._adding = False

    @local_io("writing the image")
    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        if not top:
            raise Unsupported("%s: a docker archive holds one image, not an index; choose one platform" % self.context, self.context)
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        # Not parse_manifest: layer sizes here are -1 (unknown until the layers were written).
        try:
            doc = json.loads(raw.decode("utf-8"))
            config_digest = validate_digest(doc["config"]["digest"], self.context)
            diff_ids = [validate_digest(layer["digest"], self.context) for layer in doc.get("layers") or []]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise Unsupported("%s: a docker archive holds one image; got a %s without config and layers" % (self.context, media_type), self.context) from None
        with self._lock:
            self._order = _unique(diff_ids)  # the manifest decides; without expect_blobs, every layer is still waiting
            for diff_id in self._order:
                if diff_id in self._held and diff_id != config_digest:  # put without a media type: a layer after all
                    self._waiting[diff_id] = self._held.pop(diff_id)
                if diff_id not in self._layers and diff_id not in self._waiting:
                    raise OCIError("%s: layer %s was never written; cannot finish the archive" % (self.context, diff_id), self.context)
        self._add_layers_in_order()
        if any(diff_id not in self._layers for diff_id in self._order):
            raise OCIError("%s: not every layer reached the archive; cannot finish it" % self.context, self.context)
        tar = self._builder()
        self._config_digest = config_digest
        if config_digest not in self._held:
            raise OCIError("%s: config %s was never written; cannot finish the archive" % (self.context, config_digest), self.context)
        with open(self._held[config_digest], "rb") as f:
            config = f.read(_media.MAX_CONFIG_BYTES + 1)
        _media.parse_config(config, "%s (config %s)" % (self.context, config_digest))
        config_name = "%s.json" % config_digest.partition(":")[2]
        tar.add_bytes(config_name, config)
        legacy = legacy_layer_files(diff_ids, config)
        for (layer_id, layer_json), diff_id in zip(legacy, diff_ids):
            tar.add_special("%s/layer.tar" % layer_id, tarfile.SYMTYPE, "../" + self._layers[diff_id])
            tar.add_bytes("%s/VERSION" % layer_id, b"1.0")
            tar.add_bytes("%s/json" % layer_id, layer_json)
        ref = self.reference
        repo_tags = [ref.docker_reference] if ref.repository is not None else []
        tar.add_bytes("manifest.json", go_json([{"Config": config_name, "RepoTags": repo_tags, "Layers": [self._layers[d] for d in diff_ids]}]))
        repositories: dict = {}
        if ref.repository is not None and legacy:
            repositories[ref.name] = {ref.tag_or_default: legacy[-1][0]}
        tar.add_bytes("repositories", go_json(repositories))
        self._top_written = True

    @local_io("putting the image in place")
    def commit(self) -> None:
        if not self._top_written or self._tar is None:
            raise OCIError("%s: nothing to commit: no top-level manifest was written" % self.context, self.context)
        self._tar.finish()
        self._drop_spools()
        self.sink.commit(self._config_digest or "")

    def _drop_spools(self) -> None:
        with self._lock:
            spools = list(self._held.values()) + list(self._waiting.values())
            self._held, self._waiting = {}, {}
        for spool in spools:
            remove_path(spool)

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
        self._drop_spools()
        self.sink.abort()

    def close(self) -> None:
        self.abort()
