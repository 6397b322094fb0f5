# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``oci:PATH[:REF]`` — an OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``).

REF is chosen the way containers/image does: the ``index.json`` entry whose
``org.opencontainers.image.ref.name`` annotation equals REF; with no REF, the only entry.
An entry may be an image manifest or an index (then the index is the top-level manifest).
"""

from __future__ import annotations

import json
from typing import BinaryIO

from .. import _media
from .._digest import verify_bytes
from .._errors import InvalidReference, LocalFormatError, NotFound
from .._reference import ImageReference, validate_digest
from ._base import ImageSource
from ._directory import DirectoryFiles, open_verified_blob

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
SUPPORTED_LAYOUT_VERSIONS = ("1.0.0",)


def blob_path(digest: str) -> str:
    """``sha256:abc`` -> ``blobs/sha256/abc`` (the digest is validated first, so no path tricks)."""
    algorithm, _, encoded = digest.partition(":")
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
        self._index, _ = _media.parse_manifest(raw_index, _media.OCI_INDEX, "%s (index.json)" % self.context)
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
        _, media_type = _media.parse_manifest(raw, declared, self.context)
        return raw, media_type

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        validate_digest(digest, self.context)
        self.index()
        return open_verified_blob(self.files, blob_path(digest), digest, size, self.context)

    def list_tags(self) -> list[str]:
        return ref_names(self.index())
