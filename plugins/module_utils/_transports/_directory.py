# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``dir:PATH`` — the directory format ``skopeo copy ... dir:PATH`` writes.

Layout (Directory Transport Version 1.1; 1.0 and no version file are read too)::

    version                      "Directory Transport Version: 1.1\\n"
    manifest.json                the top-level manifest or index, bytes as fetched
    <hex>.manifest.json          each child manifest of an index (skopeo copy --multi-arch all)
    <hex>                        every blob (config and layers), named by its sha256 hex
"""

from __future__ import annotations

import os
from typing import BinaryIO

from .. import _media
from .._digest import sha256_digest, verify_bytes
from .._errors import InvalidManifest, LocalFormatError, NotFound
from .._reference import ImageReference, validate_digest
from ._base import ImageSource, verified_stream

VERSION_FILE = "version"
MANIFEST_FILE = "manifest.json"
KNOWN_VERSIONS = ("Directory Transport Version: 1.0", "Directory Transport Version: 1.1")


class DirectoryFiles:
    """Read access to the files under one local directory, by path relative to it."""

    def __init__(self, root: str):
        self.root = root

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def _path(self, relative: str) -> str:
        return os.path.join(self.root, *relative.split("/"))

    def has(self, relative: str) -> bool:
        return os.path.isfile(self._path(relative))

    def read(self, relative: str, limit: int, context: str) -> bytes | None:
        """The whole file (None when absent); InvalidManifest past ``limit`` bytes."""
        opened = self.open(relative)
        if opened is None:
            return None
        stream, size = opened
        with stream:
            if size > limit:
                raise InvalidManifest("%s: %s is %d bytes, over the %d-byte limit" % (context, relative, size, limit), context)
            return stream.read(limit + 1)

    def open(self, relative: str) -> tuple[BinaryIO, int] | None:
        """An open binary stream and its size, or None when the file does not exist."""
        try:
            stream = open(self._path(relative), "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return stream, os.fstat(stream.fileno()).st_size

    def close(self) -> None:
        pass


def open_verified_blob(files, relative: str, digest: str, size: int | None, context: str) -> BinaryIO:
    """A blob stream from ``files`` checked against digest and size as it is read; NotFound when absent."""
    opened = files.open(relative)
    if opened is None:
        raise NotFound("%s: blob %s is missing (no %s in %s)" % (context, digest, relative, files.root), context)
    stream, actual_size = opened
    # With no declared size, the stored size still lets consumers send Content-Length.
    return verified_stream(stream, digest, size if size is not None else actual_size, context)


class DirectorySource(ImageSource):
    """An image (or index with its children) stored by ``skopeo copy ... dir:PATH``."""

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        self.context = str(reference)
        self.files = DirectoryFiles(reference.path or "")
        self._top: bytes | None = None

    def _top_manifest(self) -> bytes:
        if self._top is not None:
            return self._top
        if not self.files.exists():
            raise NotFound("%s: directory %s does not exist" % (self.context, self.files.root), self.context)
        version = self.files.read(VERSION_FILE, 4096, self.context)
        if version is not None and version.decode("utf-8", "replace").strip() not in KNOWN_VERSIONS:
            raise LocalFormatError(
                "%s: %s/version says %r; this collection reads Directory Transport Version 1.0 and 1.1"
                % (self.context, self.files.root, version.decode("utf-8", "replace").strip()),
                self.context,
            )
        raw = self.files.read(MANIFEST_FILE, _media.MAX_MANIFEST_BYTES, self.context)
        if raw is None:
            raise NotFound(
                "%s: no manifest.json in %s; it does not hold an image written by the dir: transport" % (self.context, self.files.root),
                self.context,
            )
        self._top = raw
        return raw

    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        raw = self._top_manifest()
        if digest is not None:
            validate_digest(digest, self.context)
            if sha256_digest(raw) != digest:
                child = self.files.read("%s.manifest.json" % digest.partition(":")[2], _media.MAX_MANIFEST_BYTES, self.context)
                if child is None:
                    raise NotFound("%s: manifest %s is not in %s" % (self.context, digest, self.files.root), self.context)
                raw = verify_bytes(child, digest, "%s manifest %s" % (self.context, digest))
        _, media_type = _media.parse_manifest(raw, None, self.context)
        return raw, media_type

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        validate_digest(digest, self.context)
        return open_verified_blob(self.files, digest.partition(":")[2], digest, size, self.context)
