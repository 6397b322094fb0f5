# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``oci:PATH[:REF]`` — an OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``).

REF is chosen the way containers/image does: the ``index.json`` entry whose
``org.opencontainers.image.ref.name`` annotation equals REF; with no REF, the only entry.
An entry may be an image manifest or an index (then the index is the top-level manifest).

Writing (``OCILayoutDestination``) follows skopeo 1.9: the new entry takes REF from any entry
that had it (that entry stays, unnamed), replaces an unnamed entry of the same digest in place,
or is appended. A new layout is built under a temporary name and renamed into place; into an
existing layout, blobs are staged in a hidden temporary directory inside it and moved in on
commit, and index.json is re-read, updated and atomically replaced under an exclusive lock
(``.oci-images.lock``), so concurrent writers of different refs never lose an entry.
"""

from __future__ import annotations

import errno
import io
import json
import os
from typing import BinaryIO

from .. import _media
from .._convert import go_json
from .._digest import verify_bytes
from .._errors import InvalidReference, LocalFormatError, NotFound, OCIError
from .._reference import ImageReference, validate_digest
from ._base import ImageSource
from ._directory import DirectoryFiles, LocalDestination, open_verified_blob, replace_file, sync_directory

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


class OCILayoutSource(ImageSource):
    """The image or index one REF of an OCI layout names."""

    can_list_tags = True
    #: how messages name what is missing
    kind = "OCI layout"

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        self.context = str(reference)
        self._files = None
        self._index: dict | None = None
        self._descriptor: dict | None = None

    # Storage: a directory here; the archive transport swaps in the members of a tar.
    def open_files(self):
        return DirectoryFiles(self.reference.path or "")

    @property
    def files(self):
        if self._files is None:
            self._files = self.open_files()
        return self._files

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None

    def _location(self) -> str:
        return self.reference.path or ""

    def index(self) -> dict:
        """The layout's parsed index.json."""
        if self._index is not None:
            return self._index
        files = self.files
        if not files.exists():
            raise NotFound("%s: %s %s does not exist" % (self.context, self.kind, self._location()), self.context)
        raw_index = files.read(INDEX_FILE, _media.MAX_MANIFEST_BYTES, self.context)
        layout = files.read(LAYOUT_FILE, 4096, self.context)
        if raw_index is None and layout is None:
            raise NotFound("%s: %s holds no OCI image layout (no index.json, no oci-layout)" % (self.context, self._location()), self.context)
        if raw_index is None:
            raise LocalFormatError("%s: %s is not a valid OCI image layout: index.json is missing" % (self.context, self._location()), self.context)
        if layout is None:
            raise LocalFormatError("%s: %s is not a valid OCI image layout: the oci-layout file is missing" % (self.context, self._location()), self.context)
        try:
            version = json.loads(layout.decode("utf-8")).get("imageLayoutVersion")
        except (ValueError, UnicodeDecodeError, AttributeError):
            version = None
        if version not in SUPPORTED_LAYOUT_VERSIONS:
            raise LocalFormatError(
                "%s: %s/oci-layout declares imageLayoutVersion %r; supported: %s"
                % (self.context, self._location(), version, ", ".join(SUPPORTED_LAYOUT_VERSIONS)),
                self.context,
            )
        self._index, _unused = _media.parse_manifest(raw_index, _media.OCI_INDEX, "%s (index.json)" % self.context)
        return self._index

    def descriptor(self) -> dict:
        """The index.json entry the reference names."""
        if self._descriptor is not None:
            return self._descriptor
        index = self.index()
        entries = index.get("manifests") or []
        wanted = self.reference.ref_name
        names = ref_names(index)
        listing = ", ".join(names) if names else "no named images"
        if wanted is not None:
            matches = [d for d in entries if (d.get("annotations") or {}).get(REF_NAME_ANNOTATION) == wanted]
            if not matches:
                raise NotFound("%s: no image named %r in %s; it has: %s" % (self.context, wanted, self._location(), listing), self.context)
            if len(matches) > 1:
                raise LocalFormatError("%s: more than one entry in index.json is named %r" % (self.context, wanted), self.context)
            self._descriptor = matches[0]
        elif len(entries) == 1:
            self._descriptor = entries[0]
        elif not entries:
            raise NotFound("%s: %s %s holds no images" % (self.context, self.kind, self._location()), self.context)
        else:
            raise InvalidReference(
                "%s: %s %s holds %d images; name one with %s:%s:REF (refs: %s)"
                % (self.context, self.kind, self._location(), len(entries), self.reference.transport, self._location(), listing),
                self.context,
            )
        return self._descriptor

    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        declared = None
        size = None
        if digest is None:
            descriptor = self.descriptor()
            digest, declared, size = descriptor["digest"], descriptor.get("mediaType"), descriptor.get("size")
        else:
            validate_digest(digest, self.context)
            self.index()
        raw = self.files.read(blob_path(digest), _media.MAX_MANIFEST_BYTES, self.context)
        if raw is None:
            raise NotFound("%s: manifest %s is missing (no %s in %s)" % (self.context, digest, blob_path(digest), self._location()), self.context)
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        if size is not None and size != len(raw):
            raise LocalFormatError(
                "%s: manifest %s is %d bytes but index.json says %d" % (self.context, digest, len(raw), size),
                self.context,
            )
        _unused, media_type = _media.parse_manifest(raw, declared, self.context)
        return raw, media_type

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        validate_digest(digest, self.context)
        self.index()
        return open_verified_blob(self.files, blob_path(digest), digest, size, self.context)

    def list_tags(self) -> list[str]:
        return ref_names(self.index())


# --- writing ----------------------------------------------------------------------------------


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


def named_entry_digest(source: OCILayoutSource) -> str | None:
    """Digest of the entry the reference names in a layout (closing ``source``); None when absent or ambiguous.

    REF absent, or no REF and several entries: a write then adds an entry.
    """
    try:
        return source.descriptor()["digest"]
    except (NotFound, InvalidReference):
        return None
    finally:
        source.close()


class LayoutLock:
    """An exclusive flock on ``<layout>/.oci-images.lock`` for the read-modify-write of index.json."""

    def __init__(self, layout: str):
        self.path = os.path.join(layout, LOCK_FILE)
        self._fd: int | None = None

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        if HAS_FCNTL:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
        return False


class OCILayoutDestination(LocalDestination):
    """Writes one image or index into ``oci:PATH[:REF]``, keeping every other entry of an existing layout."""

    can_hold_index = True
    required_format = "oci"  # an OCI layout holds OCI manifests (skopeo converts Docker ones too)

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        self._entry: dict | None = None

    def _exists(self) -> bool:
        if not os.path.lexists(self.path):
            self.check_parent()
            return False
        if not os.path.isdir(self.path):
            raise LocalFormatError("%s: %s exists and is not a directory; remove it or choose another path" % (self.context, self.path), self.context)
        return True

    def temp_parent(self) -> str:
        # Inside an existing layout, so staged blobs are renamed into blobs/ on the same filesystem.
        return self.path if self._exists() else self.parent

    def current_digest(self) -> str | None:
        if not self._exists():
            return None
        if not os.path.exists(os.path.join(self.path, INDEX_FILE)) and not os.path.exists(os.path.join(self.path, LAYOUT_FILE)):
            return None  # an empty (or foreign) directory: the layout is created in it, as skopeo does
        return named_entry_digest(OCILayoutSource(self.reference))

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        validate_digest(digest, self.context)
        if digest in self.written:
            return True
        existing = os.path.join(self.path, *blob_path(digest).split("/"))
        try:
            return os.path.isfile(existing) and (size is None or os.path.getsize(existing) == size)
        except OSError:
            return False

    def put_blob(self, stream: BinaryIO, digest: str, size: int | None, media_type: str | None = None) -> None:
        validate_digest(digest, self.context)
        self.written[digest] = self.stage_file(blob_path(digest), stream)

    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        validate_digest(digest, self.context)
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        self.written[digest] = self.stage_file(blob_path(digest), io.BytesIO(raw))
        if top:
            self._entry = index_entry(self.reference, raw, media_type, digest)

    def commit(self) -> None:
        if self._entry is None or self._temp is None:
            raise OCIError("%s: nothing to commit: no top-level manifest was written" % self.context, self.context)
        temp = self._temp
        if not self._exists() or not os.listdir(self.path):
            with open(os.path.join(temp, LAYOUT_FILE), "wb") as f:
                f.write(LAYOUT_BYTES)
            replace_file(os.path.join(temp, INDEX_FILE), index_json_bytes(add_index_entry({"schemaVersion": 2, "manifests": []}, self._entry)))
            try:
                os.rename(temp, self.path)  # the whole new layout appears at once
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # Another writer created the layout meanwhile: add to it like to any existing layout.
            else:
                self.release_temp()
                sync_directory(self.parent)
                return
        self._merge(temp)
        self.abort()  # what is left of the staging directory

    def _merge(self, temp: str) -> None:
        with LayoutLock(self.path):
            for digest, size in self.written.items():
                relative = blob_path(digest).split("/")
                target = os.path.join(self.path, *relative)
                staged = os.path.join(temp, *relative)
                if os.path.isfile(target) and os.path.getsize(target) == size:
                    continue  # blobs are immutable: the one there is the same
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(staged, target)
            if not os.path.exists(os.path.join(self.path, LAYOUT_FILE)):
                replace_file(os.path.join(self.path, LAYOUT_FILE), LAYOUT_BYTES)
            index = {"schemaVersion": 2, "manifests": []}
            raw = DirectoryFiles(self.path).read(INDEX_FILE, _media.MAX_MANIFEST_BYTES, self.context)
            if raw is not None:
                # Re-read under the lock: another writer may have added an entry since current_digest().
                index, _unused = _media.parse_manifest(raw, _media.OCI_INDEX, "%s (index.json)" % self.context)
            replace_file(os.path.join(self.path, INDEX_FILE), index_json_bytes(add_index_entry(index, self._entry)))
            sync_directory(self.path)
