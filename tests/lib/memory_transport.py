"""An in-memory transport, registered in the transport table by tests: ``memory:PLACE[:NAME]``.

It proves the table: a transport defined outside plugins/ takes part in inspect, copy, delete
and footprint without any other file naming it. It also serves the in-process engine tests as
a fake source and destination (the model is go-containerregistry's ``fake`` and ``random``),
with counters of what was asked of it and hooks to make a call fail.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
import threading
from dataclasses import dataclass, field

from ansible_collections.oci.images.plugins.module_utils._digest import VerifyingReader
from ansible_collections.oci.images.plugins.module_utils._errors import InvalidReference, NotFound
from ansible_collections.oci.images.plugins.module_utils._reference import ImageReference, split_path
from ansible_collections.oci.images.plugins.module_utils._transports._base import DeleteTarget, ImageDestination, ImageSource
from ansible_collections.oci.images.plugins.module_utils._transports._table import Transport

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Place:
    """One named place: blobs (manifests too) by digest, and names pointing at manifests."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    media_types: dict[str, str] = field(default_factory=dict)


class MemoryStore:
    """Every place of the transport, and counters of the calls made on it."""

    def __init__(self) -> None:
        self.places: dict[str, Place] = {}
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        # call name -> list of exceptions to raise, one per call, before acting
        self.faults: dict[str, list[BaseException]] = {}

    def place(self, name: str, create: bool = False) -> Place | None:
        with self.lock:
            if name not in self.places and create:
                self.places[name] = Place()
            return self.places.get(name)

    def count(self, call: str) -> None:
        with self.lock:
            self.calls[call] = self.calls.get(call, 0) + 1
            pending = self.faults.get(call)
            fault = pending.pop(0) if pending else None
        if fault is not None:
            raise fault


def random_layer(size: int, rng: random.Random) -> bytes:
    """A gzip-free 'layer' (a tar with one file of random bytes), deterministic for a seed."""
    data = bytes(rng.getrandbits(8) for _unused in range(size))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("file-%d" % rng.getrandbits(32))
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def random_image(store: MemoryStore, place: str, name: str, layer_sizes=(1024, 2048), seed: int = 1, shared: list[bytes] | None = None) -> dict:
    """Put an OCI image with random layers (after the ``shared`` ones) under ``place:name``; its facts."""
    rng = random.Random(seed)
    layers = list(shared or []) + [random_layer(size, rng) for size in layer_sizes]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-%02dT00:00:00Z" % (1 + seed % 28),
            "rootfs": {"type": "layers", "diff_ids": [digest_of(layer) for layer in layers]},
            "config": {"Labels": {"seed": str(seed)}},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            # The bytes are plain tars, and the engine checks that a layer's first bytes are what its type declares.
            "layers": [{"mediaType": OCI_LAYER_TAR, "digest": digest_of(layer), "size": len(layer)} for layer in layers],
        },
        sort_keys=True,
    ).encode()
    target = store.place(place, create=True)
    for blob in [config, *layers]:
        target.blobs[digest_of(blob)] = blob
    target.blobs[digest_of(manifest)] = manifest
    target.media_types[digest_of(manifest)] = OCI_MANIFEST
    target.names[name] = digest_of(manifest)
    return {"manifest_digest": digest_of(manifest), "config_digest": digest_of(config), "layers": [digest_of(layer) for layer in layers], "raw": manifest}


class MemorySource(ImageSource):
    can_list_tags = True

    def __init__(self, reference, options, store: MemoryStore):
        super().__init__(reference, options)
        self.store = store

    def _place(self) -> Place:
        place = self.store.place(self.reference.path or "")
        if place is None:
            raise NotFound("%s: no such place" % self.reference, str(self.reference))
        return place

    def get_manifest(self, digest=None):
        self.store.count("get_manifest")
        place = self._place()
        if digest is None:
            name = self.reference.ref_name or ""
            if name not in place.names:
                raise NotFound("%s: no image named %r" % (self.reference, name), str(self.reference))
            digest = place.names[name]
        if digest not in place.blobs:
            raise NotFound("%s: no manifest %s" % (self.reference, digest), str(self.reference))
        return place.blobs[digest], place.media_types.get(digest, OCI_MANIFEST)

    def open_blob(self, digest, size=None):
        self.store.count("open_blob")
        place = self._place()
        if digest not in place.blobs:
            raise NotFound("%s: no blob %s" % (self.reference, digest), str(self.reference))
        data = place.blobs[digest]
        return VerifyingReader(io.BytesIO(data), digest, size if size is not None else len(data), str(self.reference))

    def list_tags(self):
        return sorted(self._place().names)

    def read_tag(self, tag):
        place = self._place()
        if tag not in place.names:
            raise NotFound("%s: no image named %r" % (self.reference, tag), str(self.reference))
        digest = place.names[tag]
        return place.blobs[digest], place.media_types.get(digest, OCI_MANIFEST), digest


class MemoryDestination(ImageDestination):
    """Writes into a place the way a registry does: blobs are visible as soon as they land, a name moves on commit."""

    def __init__(self, reference, options, store: MemoryStore):
        super().__init__(reference, options)
        self.store = store
        self._staged: dict[str, bytes] = {}
        self._types: dict[str, str] = {}
        self._top: str | None = None

    def current_digest(self):
        place = self.store.place(self.reference.path or "")
        return place.names.get(self.reference.ref_name or "") if place else None

    def has_blob(self, digest, size=None):
        self.store.count("has_blob")
        place = self.store.place(self.reference.path or "")
        return digest in self._staged or bool(place and digest in place.blobs)

    def put_blob(self, stream, digest, size, media_type=None):
        self.store.count("put_blob")
        data = b""
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            data += chunk
        if digest_of(data) != digest:
            raise InvalidReference("%s: put_blob got other bytes than %s" % (self.reference, digest))
        place = self.store.place(self.reference.path or "", create=True)
        with self.store.lock:
            place.blobs[digest] = data

    def blob_scope(self):
        return ("memory", self.reference.path)

    def put_manifest(self, raw, media_type, digest, top):
        self.store.count("put_manifest")
        self._staged[digest] = raw
        self._types[digest] = media_type
        if top:
            self._top = digest

    def commit(self):
        self.store.count("commit")
        place = self.store.place(self.reference.path or "", create=True)
        with self.store.lock:
            place.blobs.update(self._staged)
            place.media_types.update(self._types)
            if self._top is not None:
                place.names[self.reference.ref_name or ""] = self._top

    def abort(self):
        self._staged = {}
        self._top = None


class MemoryDeleteTarget(DeleteTarget):
    holds_names = True
    method = "memory"

    def __init__(self, reference, options, store: MemoryStore):
        super().__init__(reference, options)
        self.store = store

    def exists(self):
        return self.store.place(self.reference.path or "") is not None

    def names(self):
        return dict(self.store.place(self.reference.path or "").names)

    def remove(self, names, check_mode):
        place = self.store.place(self.reference.path or "")
        removed = {name: place.names[name] for name in names if name in place.names}
        if not check_mode:
            for name in removed:
                del place.names[name]
        return removed, 0


class MemoryTransport(Transport):
    name = "memory"
    syntax = "memory:PLACE[:NAME]"
    holds_names = True

    def __init__(self, store: MemoryStore | None = None):
        self.store = store or MemoryStore()

    def parse(self, rest, text):
        place, name = split_path(rest, self.name, text)
        return ImageReference(self.name, path=place, ref_name=name or None, text=text)

    def format(self, reference):
        return "memory:%s%s" % (reference.path, ":" + reference.ref_name if reference.ref_name else "")

    def open_source(self, reference, options):
        return MemorySource(reference, options, self.store)

    def open_destination(self, reference, options):
        return MemoryDestination(reference, options, self.store)

    def delete_target(self, reference, options):
        return MemoryDeleteTarget(reference, options, self.store)
