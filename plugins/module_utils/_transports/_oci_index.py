# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OCI image layout's own format: ``index.json`` entries and ref names, blob paths, the writers' lock.

``index.json`` is written byte for byte as skopeo 1.9 writes it. Whoever changes ``index.json``
or removes blobs holds ``LayoutLock`` (an exclusive ``flock`` on ``<layout>/.oci-images.lock``)
for the whole read-modify-write, so a delete and concurrent copies into the same layout never
lose each other's changes.
"""

from __future__ import annotations

import errno
import os

from .. import _media
from .._convert import go_json
from .._errors import LocalFormatError
from .._reference import ImageReference, validate_digest
from ._local import DirectoryFiles, replace_file, sync_directory

try:
    import fcntl

    HAS_FCNTL = True
except ImportError:  # not on Windows; locking is then skipped
    HAS_FCNTL = False

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
SUPPORTED_LAYOUT_VERSIONS = ("1.0.0",)
# The exact bytes skopeo 1.9 writes to oci-layout.
LAYOUT_BYTES = b'{"imageLayoutVersion": "1.0.0"}'
LOCK_FILE = ".oci-images.lock"
# On index.json of a layout written as a bundle (many images, each named by its full reference): read back as a bundle
# even when it holds one image (docs/air-gap.md).
BUNDLE_ANNOTATION = "io.github.oci-images.bundle"
# Field order of the Go structs skopeo 1.9 marshals index.json from (image-spec v1.1.0-rc2);
# the fields after ``size`` are omitted when empty, as Go's omitempty does.
_INDEX_FIELDS = ("schemaVersion", "mediaType", "manifests", "annotations")
_DESCRIPTOR_FIELDS = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform")
_PLATFORM_FIELDS = ("architecture", "os", "os.version", "os.features", "variant")
_ALWAYS_WRITTEN = ("schemaVersion", "manifests", "digest", "size", "architecture", "os")


def blob_path(digest: str) -> str:
    """``sha256:abc`` -> ``blobs/sha256/abc`` (the digest is validated first, so no path tricks)."""
    algorithm, _unused, encoded = digest.partition(":")
    return "blobs/%s/%s" % (algorithm, encoded)


def ref_names(index: dict) -> list[str]:
    """The ref names in an index.json, in order, each once."""
    names: list[str] = []
    for descriptor in index.get("manifests") or []:
        name = (descriptor.get("annotations") or {}).get(REF_NAME_ANNOTATION)
        if name and name not in names:
            names.append(name)
    return names


def entries_named(index: dict, ref: str) -> list[dict]:
    """The index.json entries whose ref name is ``ref``."""
    return [d for d in index.get("manifests") or [] if (d.get("annotations") or {}).get(REF_NAME_ANNOTATION) == ref]


def _go_order(doc: dict, fields: tuple) -> dict:
    """``doc`` with known fields in Go struct order (empty optional ones dropped), other fields kept after them."""
    out = {}
    for key in fields:
        if key in doc and (key in _ALWAYS_WRITTEN or doc[key] not in (None, "", [], {})):
            out[key] = doc[key]
    for key, value in doc.items():
        if key not in out and key not in fields:
            out[key] = value
    return out


def index_json_bytes(index: dict) -> bytes:
    """index.json as skopeo writes it: compact Go-style JSON in the structs' field order."""
    manifests = []
    for descriptor in index.get("manifests") or []:
        descriptor = _go_order(descriptor, _DESCRIPTOR_FIELDS)
        if isinstance(descriptor.get("platform"), dict):
            descriptor["platform"] = _go_order(descriptor["platform"], _PLATFORM_FIELDS)
        manifests.append(descriptor)
    return go_json(_go_order(dict(index, manifests=manifests), _INDEX_FIELDS))


def add_index_entry(index: dict, entry: dict) -> dict:
    """A copy of ``index`` with ``entry`` added the way skopeo 1.9 adds it.

    A ref name moves: the first entry that had it loses the annotation but stays. Then the first
    unnamed entry with the same digest is replaced in place; otherwise the entry is appended.
    """
    manifests = [dict(d) for d in index.get("manifests") or []]
    name = (entry.get("annotations") or {}).get(REF_NAME_ANNOTATION)
    if name:
        for descriptor in manifests:
            annotations = descriptor.get("annotations") or {}
            if annotations.get(REF_NAME_ANNOTATION) == name:
                descriptor["annotations"] = {k: v for k, v in annotations.items() if k != REF_NAME_ANNOTATION}
                break
    for i, descriptor in enumerate(manifests):
        if descriptor.get("digest") == entry["digest"] and not (descriptor.get("annotations") or {}).get(REF_NAME_ANNOTATION):
            manifests[i] = dict(entry)
            break
    else:
        manifests.append(dict(entry))
    out = dict(index)
    out.setdefault("schemaVersion", 2)
    out["manifests"] = manifests
    return out


def index_entry(reference: ImageReference, raw: bytes, media_type: str, digest: str) -> dict:
    """The index.json descriptor for a top-level manifest, named by the reference's REF if it has one."""
    entry: dict = {"mediaType": media_type, "digest": digest, "size": len(raw)}
    if reference.ref_name:
        entry["annotations"] = {REF_NAME_ANNOTATION: reference.ref_name}
    return entry


class LayoutLock:
    """An exclusive flock on ``<layout>/.oci-images.lock`` for the read-modify-write of index.json."""

    def __init__(self, layout: str, context: str = ""):
        self.path = os.path.join(layout, LOCK_FILE)
        self.context = context or layout
        self._fd: int | None = None

    def __enter__(self):
        try:
            # Never through a link: a planted one would make the lock create or open a file elsewhere.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise LocalFormatError(
                "%s: the lock file %s is a symbolic link; refusing to follow it: remove it (it is recreated as a plain file)" % (self.context, self.path),
                self.context,
            ) from None
        if HAS_FCNTL:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
        return False


def read_index(path: str, context: str) -> dict:
    """The layout's index.json, parsed and validated."""
    raw = DirectoryFiles(path, context).read(INDEX_FILE, _media.MAX_MANIFEST_BYTES, context)
    if raw is None:
        raise LocalFormatError("%s: %s is not an OCI image layout (no index.json)" % (context, path), context)
    return _media.parse_manifest(raw, _media.OCI_INDEX, "%s (index.json)" % context)[0]


def write_index(path: str, index: dict) -> None:
    """Replace index.json atomically, in the byte form skopeo writes."""
    replace_file(os.path.join(path, INDEX_FILE), index_json_bytes(index))
    sync_directory(path)


def reachable_blobs(path: str, descriptors: list[dict], context: str, files=None) -> set[str]:
    """Digests of every blob the descriptors reach: the manifests, an index's children, configs, layers.

    Manifests are read from the layout directory ``path``, or from ``files`` (an archive's members) when given.
    """
    files = files if files is not None else DirectoryFiles(path, context)
    found: set[str] = set()
    pending = [d for d in descriptors if isinstance(d, dict) and d.get("digest")]
    while pending:
        descriptor = pending.pop()
        digest = descriptor["digest"]
        if digest in found:
            continue
        validate_digest(digest, context)
        found.add(digest)
        media_type = descriptor.get("mediaType") or ""
        if media_type not in _media.MANIFEST_MEDIA_TYPES:
            continue
        raw = files.read(blob_path(digest), _media.MAX_MANIFEST_BYTES, context)
        if raw is None:
            continue
        doc, media_type = _media.parse_manifest(raw, media_type, "%s manifest %s" % (context, digest))
        if _media.is_index(media_type):
            pending.extend(d for d in doc.get("manifests") or [] if isinstance(d, dict))
        elif media_type in _media.IMAGE_MEDIA_TYPES:
            pending.extend(d for d in [doc.get("config") or {}, *(doc.get("layers") or [])] if isinstance(d, dict))
    return found


def remove_blobs(path: str, digests: set[str]) -> int:
    """Delete these blob files; returns the bytes removed (files already gone count 0)."""
    freed = 0
    for digest in sorted(digests):
        file_path = os.path.join(path, *blob_path(digest).split("/"))
        try:
            size = os.lstat(file_path).st_size
            os.unlink(file_path)
        except FileNotFoundError:
            continue
        freed += size
    return freed
