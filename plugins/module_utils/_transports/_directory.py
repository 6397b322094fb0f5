# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``dir:PATH`` — the directory format ``skopeo copy ... dir:PATH`` writes.

Layout (Directory Transport Version 1.1; 1.0 and no version file are read too)::

    version                      "Directory Transport Version: 1.1\\n"
    manifest.json                the top-level manifest or index, bytes as fetched
    <hex>.manifest.json          each child manifest of an index (skopeo copy --multi-arch all)
    <hex>                        every blob (config and layers), named by its sha256 hex

Writing (``DirectoryDestination``) builds the whole directory under a temporary name next to
PATH and renames it into place on commit. This module also holds what every local writer
shares: temporary names, streaming a blob to a file, atomic file replacement.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import threading
from typing import BinaryIO

from .. import _media
from .._digest import sha256_digest, verify_bytes
from .._errors import InvalidManifest, LocalFormatError, NotFound, OCIError
from .._reference import ImageReference, validate_digest
from ._base import ImageDestination, ImageSource, verified_stream

VERSION_FILE = "version"
MANIFEST_FILE = "manifest.json"
KNOWN_VERSIONS = ("Directory Transport Version: 1.0", "Directory Transport Version: 1.1")
# The exact bytes skopeo 1.9 writes to ``version``.
VERSION_BYTES = b"Directory Transport Version: 1.1\n"
# Temporary files and directories of the local writers start with these, so a killed run is recognizable.
TEMP_PREFIX = ".oci-images-tmp-"
OLD_PREFIX = ".oci-images-old-"
_WRITE_CHUNK = 1024 * 1024


def read_whole(opened: tuple[BinaryIO, int] | None, what: str, limit: int, context: str) -> bytes | None:
    """Read an opened (stream, size) whole, refusing more than ``limit`` bytes; None when nothing was opened."""
    if opened is None:
        return None
    stream, size = opened
    with stream:
        if size > limit:
            raise InvalidManifest("%s: %s is %d bytes, over the %d-byte limit" % (context, what, size, limit), context)
        return stream.read(limit + 1)


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
        return read_whole(self.open(relative), relative, limit, context)

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
        _unused, media_type = _media.parse_manifest(raw, None, self.context)
        return raw, media_type

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        validate_digest(digest, self.context)
        return open_verified_blob(self.files, digest.partition(":")[2], digest, size, self.context)


# --- writing ----------------------------------------------------------------------------------


def temp_name(prefix: str = TEMP_PREFIX) -> str:
    """A fresh file name with a recognizable prefix."""
    return prefix + os.urandom(8).hex()


def make_temp_dir(parent: str, prefix: str = TEMP_PREFIX) -> str:
    """Create a new empty directory under ``parent`` and return its path."""
    while True:
        path = os.path.join(parent, temp_name(prefix))
        try:
            # 0o777 minus the umask: the same mode skopeo's directories get.
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path


def remove_path(path: str) -> None:
    """Remove a file or a directory tree; nothing happens when it is already gone."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def copy_stream(stream: BinaryIO, out) -> int:
    """Copy ``stream`` to ``out`` in chunks until EOF (so a VerifyingReader checks the digest); return the byte count."""
    total = 0
    while True:
        chunk = stream.read(_WRITE_CHUNK)
        if not chunk:
            return total
        out.write(chunk)
        total += len(chunk)


def write_new_file(path: str, stream: BinaryIO) -> int:
    """Write ``stream`` to a new file at ``path`` and fsync it; on any failure nothing is left at ``path``."""
    # 0o666 minus the umask, like files skopeo creates.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            total = copy_stream(stream, out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        remove_path(path)
        raise
    return total


def replace_file(path: str, data: bytes) -> None:
    """Replace (or create) ``path`` with ``data`` atomically: a temp file in the same directory, then rename."""
    temp = os.path.join(os.path.dirname(path), temp_name())
    write_new_file(temp, io.BytesIO(data))
    try:
        os.replace(temp, path)
    except BaseException:
        remove_path(temp)
        raise


def sync_directory(path: str) -> None:
    """fsync a directory so the renames in it survive a crash (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalDestination(ImageDestination):
    """What the local writers share: a temporary directory, made on the first write, that abort and close remove.

    Opening writes nothing; only ``put_blob``/``put_manifest`` create the temporary directory.
    """

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        self.context = str(reference)
        # Symbolic links are resolved first (as skopeo does), so a replace swaps the real directory, not the link.
        self.path = os.path.realpath(reference.path or "")
        self._temp: str | None = None
        self._temp_lock = threading.Lock()
        # digest -> size of each blob written in this session
        self.written: dict[str, int] = {}

    @property
    def parent(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    def check_parent(self) -> None:
        """Refuse a path whose parent directory does not exist (skopeo does not create it either)."""
        if not os.path.isdir(self.parent):
            raise LocalFormatError(
                "%s: directory %s does not exist; create it first or choose another path" % (self.context, self.parent),
                self.context,
            )

    def temp_parent(self) -> str:
        """Where the temporary directory goes: next to the destination, so renames stay on one filesystem."""
        return self.parent

    def prepare_temp(self, temp: str) -> None:
        """Hook: fill a fresh temporary directory (called once, under the lock)."""

    def temp_dir(self) -> str:
        """The temporary directory, created on first use."""
        with self._temp_lock:
            if self._temp is None:
                self.check_parent()
                temp = make_temp_dir(self.temp_parent())
                try:
                    self.prepare_temp(temp)
                except BaseException:
                    remove_path(temp)
                    raise
                self._temp = temp
            return self._temp

    def stage_file(self, relative: str, stream: BinaryIO) -> int:
        """Write ``stream`` to ``relative`` inside the temporary directory; only a verified, complete file gets that name."""
        temp = self.temp_dir()
        final = os.path.join(temp, *relative.split("/"))
        directory = os.path.dirname(final)
        os.makedirs(directory, exist_ok=True)
        # A per-call partial name: parallel or retried writes of one blob never share a file.
        partial = os.path.join(directory, temp_name(".partial-"))
        size = write_new_file(partial, stream)
        os.replace(partial, final)
        return size

    def release_temp(self) -> None:
        """Forget the temporary directory without removing it (it was renamed into place)."""
        with self._temp_lock:
            self._temp = None

    def abort(self) -> None:
        with self._temp_lock:
            temp, self._temp = self._temp, None
        if temp is not None:
            remove_path(temp)

    def close(self) -> None:
        self.abort()


def swap_directory(new: str, target: str) -> None:
    """Put directory ``new`` at ``target``, replacing what is there: rename the old one away, the new one in, delete the old."""
    old = os.path.join(os.path.dirname(os.path.abspath(target)), temp_name(OLD_PREFIX))
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    remove_path(old)


class DirectoryDestination(LocalDestination):
    """Writes ``dir:PATH`` the way skopeo does; an existing image directory is replaced as a whole on commit."""

    can_hold_index = True

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
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
        version = DirectoryFiles(path).read(VERSION_FILE, 4096, self.context)
        if version is None or version.decode("utf-8", "replace") not in [v + "\n" for v in KNOWN_VERSIONS]:
            raise LocalFormatError(
                "%s: %s is not empty and is not an image directory written by the dir: transport (no matching version file); "
                "refusing to replace it: remove it or choose another path" % (self.context, path),
                self.context,
            )
        return "image"

    def current_digest(self) -> str | None:
        if self._state() != "image":
            return None
        raw = DirectoryFiles(self.path).read(MANIFEST_FILE, _media.MAX_MANIFEST_BYTES, self.context)
        return sha256_digest(raw) if raw is not None else None

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        validate_digest(digest, self.context)
        return digest in self.written

    def prepare_temp(self, temp: str) -> None:
        write_new_file(os.path.join(temp, VERSION_FILE), io.BytesIO(VERSION_BYTES))

    def put_blob(self, stream: BinaryIO, digest: str, size: int | None, media_type: str | None = None) -> None:
        validate_digest(digest, self.context)
        self.written[digest] = self.stage_file(digest.partition(":")[2], stream)

    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        name = MANIFEST_FILE if top else "%s.manifest.json" % digest.partition(":")[2]
        self.stage_file(name, io.BytesIO(raw))
        if top:
            self._top_written = True

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
