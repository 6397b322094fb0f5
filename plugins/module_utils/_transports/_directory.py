# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``dir:PATH`` — the directory format ``skopeo copy ... dir:PATH`` writes.

Layout (Directory Transport Version 1.1; 1.0 and no version file are read too)::

    version                      "Directory Transport Version: 1.1\\n"
    manifest.json                the top-level manifest or index, bytes as fetched
    <hex>.manifest.json          each child manifest of an index (skopeo copy --multi-arch all)
    <hex>                        every blob (config and layers), named by its sha256 hex

Writing (``DirectoryDestination``) builds the whole directory under a temporary name next to
PATH and renames it into place on commit. Deleting removes the directory, only when it holds
nothing but a dir: image.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
from typing import BinaryIO

from .. import _media
from .._digest import VerifyingReader, sha256_digest, verify_bytes
from .._errors import InvalidReference, LocalFormatError, LocalIOError, NotFound, OCIError
from .._options import ConnectionOptions
from .._reference import ImageReference, validate_digest
from ._base import DeleteTarget, ImageSource
from ._local import TEMP_PREFIX, DirectoryFiles, LocalDestination, local_io, open_verified_blob, swap_directory, sync_directory, write_new_file
from ._table import Transport, register

VERSION_FILE = "version"
MANIFEST_FILE = "manifest.json"
KNOWN_VERSIONS = ("Directory Transport Version: 1.0", "Directory Transport Version: 1.1")
# The exact bytes skopeo 1.9 writes to ``version``.
VERSION_BYTES = b"Directory Transport Version: 1.1\n"
# The files a dir: image may hold (signatures included); anything else stops a delete.
_IMAGE_FILE = re.compile(r"^(version|manifest\.json|[a-f0-9]{64}(\.manifest\.json|\.signature-\d+)?|signature-\d+)$")


class DirectorySource(ImageSource):
    """An image (or index with its children) stored by ``skopeo copy ... dir:PATH``."""

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference, options)
        self.context = str(reference)
        self.files = DirectoryFiles(reference.path or "", self.context)
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

    @local_io("reading the image")
    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        raw = self._top_manifest()
        if digest is not None:
            validate_digest(digest, self.context)
            if sha256_digest(raw) != digest:
                child = self.files.read("%s.manifest.json" % digest.partition(":")[2], _media.MAX_MANIFEST_BYTES, self.context)
                if child is None:
                    raise NotFound("%s: manifest %s is not in %s" % (self.context, digest, self.files.root), self.context)
                raw = verify_bytes(child, digest, "%s manifest %s" % (self.context, digest))
        _unused, media_type = _media.parse_manifest(raw, None, self.context)
        return raw, media_type

    @local_io("reading the image")
    def open_blob(self, digest: str, size: int | None = None) -> VerifyingReader:
        validate_digest(digest, self.context)
        return open_verified_blob(self.files, digest.partition(":")[2], digest, size, self.context)


# --- writing ----------------------------------------------------------------------------------


class DirectoryDestination(LocalDestination):
    """Writes ``dir:PATH`` the way skopeo does; an existing image directory is replaced as a whole on commit."""

    can_hold_index = True

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference, options)
        self._top_written = False

    def _state(self) -> str:
        """``absent``, ``empty`` or ``image``; refuses a path that holds anything else (as skopeo does)."""
        path = self.path
        if not os.path.lexists(path):
            self.check_parent()
            return "absent"
        if not os.path.isdir(path):
            raise LocalFormatError("%s: %s exists and is not a directory; remove it or choose another path" % (self.context, path), self.context)
        if not os.listdir(path):
            return "empty"
        version = DirectoryFiles(path, self.context).read(VERSION_FILE, 4096, self.context)
        if version is None or version.decode("utf-8", "replace") not in [v + "\n" for v in KNOWN_VERSIONS]:
            raise LocalFormatError(
                "%s: %s is not empty and is not an image directory written by the dir: transport (no matching version file); "
                "refusing to replace it: remove it or choose another path" % (self.context, path),
                self.context,
            )
        return "image"

    @local_io("reading what the destination holds now")
    def current_digest(self) -> str | None:
        if self._state() != "image":
            return None
        raw = DirectoryFiles(self.path, self.context).read(MANIFEST_FILE, _media.MAX_MANIFEST_BYTES, self.context)
        return sha256_digest(raw) if raw is not None else None

    def check_parent(self) -> None:
        if not self.reference.member:  # an image of a tree: its directories are made when it is written
            super().check_parent()

    def temp_parent(self) -> str:
        if self.reference.member:
            os.makedirs(self.parent, exist_ok=True)
        return super().temp_parent()

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        validate_digest(digest, self.context)
        return digest in self.written

    def prepare_temp(self, temp: str) -> None:
        write_new_file(os.path.join(temp, VERSION_FILE), io.BytesIO(VERSION_BYTES))

    @local_io("writing the image")
    def put_blob(self, stream: BinaryIO, digest: str, size: int | None, media_type: str | None = None) -> None:
        validate_digest(digest, self.context)
        self.written[digest] = self.stage_file(digest.partition(":")[2], stream)

    @local_io("writing the image")
    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        name = MANIFEST_FILE if top else "%s.manifest.json" % digest.partition(":")[2]
        self.stage_file(name, io.BytesIO(raw))
        if top:
            self._top_written = True

    @local_io("putting the image in place")
    def commit(self) -> None:
        if not self._top_written or self._temp is None:
            raise OCIError("%s: nothing to commit: no top-level manifest was written" % self.context, self.context)
        temp = self._temp
        if self._state() == "image":
            swap_directory(temp, self.path)
        else:
            try:
                # Creates PATH, or replaces an empty directory, in one step.
                os.rename(temp, self.path)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) or self._state() != "image":
                    raise
                swap_directory(temp, self.path)
        self.release_temp()
        sync_directory(self.parent)


class DirectoryDeleteTarget(DeleteTarget):
    """A dir: image is deleted as a whole: the directory goes, only when it holds nothing but the image."""

    method = "directory"

    def exists(self) -> bool:
        return os.path.lexists(self.reference.path or "")

    def _manifest_digest(self) -> str:
        path, where = self.reference.path or "", str(self.reference)
        if os.path.islink(path) or not os.path.isdir(path):
            raise LocalFormatError("%s: %s is not a directory; refusing to remove it" % (where, path), where)
        files = DirectoryFiles(path, where)
        version = files.read(VERSION_FILE, 4096, where)
        manifest = files.read(MANIFEST_FILE, _media.MAX_MANIFEST_BYTES, where)
        if version is None or manifest is None:
            raise LocalFormatError("%s: %s holds no dir: image (no version and manifest.json); refusing to remove it" % (where, path), where)
        text = version.decode("utf-8", "replace").strip()
        if text not in KNOWN_VERSIONS:
            raise LocalFormatError("%s: %s/version says %r, not a dir: image; refusing to remove it" % (where, path, text), where)
        return sha256_digest(manifest)

    @local_io("reading the directory")
    def names(self) -> dict[str, str]:
        return {self.reference.path or "": self._manifest_digest()}

    @local_io("deleting")
    def remove(self, names: list[str], check_mode: bool) -> tuple[dict[str, str], int]:
        path, where = self.reference.path or "", str(self.reference)
        digest = self._manifest_digest()
        freed = 0
        for name in os.listdir(path):
            full = os.path.join(path, name)
            if os.path.islink(full) or not os.path.isfile(full) or not (_IMAGE_FILE.match(name) or name.startswith(TEMP_PREFIX)):
                raise LocalFormatError("%s: %s holds %s, which a dir: image does not have; refusing to remove the directory" % (where, path, name), where)
            freed += os.stat(full).st_size
        if not check_mode:
            shutil.rmtree(path)
        return {path: digest}, freed


def tree_images(root: str, context: str) -> list[tuple[str, str]] | None:
    """The dir: images under ``root`` as (path relative to it with '/', full path), sorted; None when ``root`` is one image
    or does not exist.

    Like ``skopeo sync --src dir``: a directory holding ``manifest.json`` is an image, and nothing below it is looked at.
    Symbolic links are not followed and staging directories of unfinished writes are skipped.
    """
    if not os.path.isdir(root) or os.path.lexists(os.path.join(root, MANIFEST_FILE)):
        return None
    found: list[tuple[str, str]] = []

    def failed(exc: OSError) -> None:
        raise exc

    for top, dirs, files in os.walk(root, onerror=failed):
        if MANIFEST_FILE in files and top != root:
            found.append((os.path.relpath(top, root).replace(os.sep, "/"), top))
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(TEMP_PREFIX) and not os.path.islink(os.path.join(top, d)))
    if not found:
        raise NotFound("%s: %s holds no dir: images (no directory below it has a manifest.json)" % (context, root), context)
    return sorted(found)


class DirectoryTransport(Transport):
    name = "dir"
    syntax = "dir:PATH"
    policy_scopes = "path"
    holds_many = "tree"

    def image_in(self, reference: ImageReference, name: str) -> ImageReference:
        path = os.path.join(reference.path or "", *name.split("/"))
        return ImageReference(self.name, path=path, text="dir:" + path, member=True)

    def images_in(self, reference: ImageReference, options: ConnectionOptions) -> list[tuple[str, ImageReference]] | None:
        try:
            found = tree_images(reference.path or "", str(reference))
        except OSError as exc:
            raise LocalIOError.from_os_error(exc, str(reference), "listing the images of the tree") from None
        if found is None:
            return None
        return [(name, ImageReference(self.name, path=path, text="dir:" + path)) for name, path in found]

    def parse(self, rest: str, text: str) -> ImageReference:
        if not rest:
            raise InvalidReference("dir reference %r has an empty path: give dir:/path/to/directory" % text, text)
        return ImageReference(self.name, path=rest, text=text)

    def format(self, reference: ImageReference) -> str:
        return "dir:%s" % reference.path

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> DirectorySource:
        return DirectorySource(reference, options)

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> DirectoryDestination:
        return DirectoryDestination(reference, options)

    def delete_target(self, reference: ImageReference, options: ConnectionOptions) -> DirectoryDeleteTarget:
        return DirectoryDeleteTarget(reference, options)

    def open_signatures(self, reference: ImageReference, options: ConnectionOptions, settings):
        from .._signature_stores import DirectorySignatureStore

        return DirectorySignatureStore(reference, options, settings)


register(DirectoryTransport())
