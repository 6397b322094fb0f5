# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the local transports share: reading files under a directory, and writing atomically.

Reading: ``DirectoryFiles`` gives files by relative path (an archive's members have the same
interface in ``_tar``), ``open_verified_blob`` a blob checked as it is read.

Writing: a destination builds its content under a temporary name next to the target, made on
the first write, and renames it into place on commit; ``abort`` and ``close`` remove it. Temporary
files and directories start with ``TEMP_PREFIX`` so a killed run is recognizable.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import shutil
import stat
import threading
from typing import BinaryIO, Callable

from .._errors import DigestMismatch, InvalidManifest, LocalFormatError, LocalIOError, NotFound
from .._options import ConnectionOptions
from .._reference import ImageReference
from ._base import ImageDestination, verified_stream

TEMP_PREFIX = ".oci-images-tmp-"
OLD_PREFIX = ".oci-images-old-"
_WRITE_CHUNK = 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def local_io(doing: str):
    """Decorate a method of a local source, destination or delete target: an OSError it meets becomes a
    LocalIOError naming ``self.context``, what was being done, the path and what to do.

    An OSError without an errno is not about a file (a library's own error class); it passes unchanged.
    """

    def decorate(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                if exc.errno is None:
                    raise
                raise LocalIOError.from_os_error(exc, self.context, doing) from None

        return run

    return decorate


def naming_path(exc: OSError, path: str) -> OSError:
    """``exc``, made to name ``path`` when it names no file (writes through a file object do not)."""
    if exc.filename is None and exc.errno is not None:
        return OSError(exc.errno, exc.strerror, path)
    return exc


class GuardedReader:
    """A local file's stream: an error reading it is a LocalIOError naming the file (not an error of where it goes)."""

    def __init__(self, stream: BinaryIO, context: str, location: str):
        self._stream = stream
        self._context = context
        self._location = location

    def read(self, n: int = -1) -> bytes:
        try:
            return self._stream.read(n)
        except OSError as exc:
            if exc.errno is None:
                raise
            raise LocalIOError.from_os_error(exc, self._context, "reading", self._location) from None

    def close(self) -> None:
        self._stream.close()


class ReadOnlyView:
    """A read-only, seekable stream of ``size`` bytes; a subclass reads at ``self._pos`` in ``read_at_position``."""

    def __init__(self, size: int):
        self._size = size
        self._pos = 0

    def read_at_position(self, n: int) -> bytes:
        raise NotImplementedError

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._pos
        if n is None or n < 0 or n > left:
            n = left
        data = self.read_at_position(n) if n else b""
        self._pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += self._size
        self._pos = min(max(pos, 0), self._size)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


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
    """Read access to the files under one local directory, by path relative to it.

    Nothing outside the directory is read: a file that is, or lies under, a symbolic link leading
    out of it is refused, and the file itself is opened without following a link.
    """

    def __init__(self, root: str, context: str = ""):
        self.root = root
        self.context = context or root

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def _path(self, relative: str) -> str:
        return os.path.join(self.root, *relative.split("/"))

    def location(self, relative: str) -> str:
        """How messages name the file."""
        return self._path(relative)

    def resolve(self, relative: str) -> str:
        """The file's real path, for reading or writing it; LocalFormatError when symbolic links lead it out of the directory."""
        path = self._path(relative)
        real = os.path.realpath(path)
        base = os.path.realpath(self.root)
        if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
            raise LocalFormatError(
                "%s: %s leads to %s, outside %s, through a symbolic link; refusing it: "
                "the directory must hold its own files (replace the link with what it points to)" % (self.context, path, real, self.root),
                self.context,
            )
        return real

    def has(self, relative: str) -> bool:
        return os.path.isfile(self.resolve(relative))

    def read(self, relative: str, limit: int, context: str) -> bytes | None:
        """The whole file (None when absent); InvalidManifest past ``limit`` bytes."""
        return read_whole(self.open(relative), relative, limit, context)

    def open(self, relative: str) -> tuple[BinaryIO, int] | None:
        """An open binary stream and its size, or None when there is no regular file by that name."""
        real = self.resolve(relative)
        try:
            # No link followed at the last step (the check above cannot be raced with a new link), and no
            # wait on a FIFO: only a regular file is read.
            fd = os.open(real, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LocalFormatError("%s: %s became a symbolic link while being read; refusing it" % (self.context, real), self.context) from None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, "rb"), info.st_size

    def close(self) -> None:
        pass


def open_verified_blob(files, relative: str, digest: str, size: int | None, context: str) -> BinaryIO:
    """A blob stream from ``files`` checked against digest and size as it is read; NotFound when absent."""
    opened = files.open(relative)
    if opened is None:
        raise NotFound("%s: blob %s is missing (no %s in %s)" % (context, digest, relative, files.root), context)
    stream, actual_size = opened
    location = files.location(relative)
    if size is not None and actual_size != size:
        # Refused before a byte is read: nothing of a damaged file goes anywhere (a registry upload included).
        stream.close()
        raise DigestMismatch(
            "%s: blob %s (%s) is %d bytes, but the manifest says %d (size mismatch): the file is damaged; restore it or copy the image there again"
            % (context, digest, location, actual_size, size),
            context,
        )
    # With no declared size, the stored size still lets consumers send Content-Length.
    return verified_stream(GuardedReader(stream, context, location), digest, size if size is not None else actual_size, context, location)


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
    """Remove a file or a directory tree, as far as possible: it cleans up after a failure, whose error must stay the one reported."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
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
    except OSError as exc:
        remove_path(path)
        raise naming_path(exc, path) from None
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


class Staging:
    """A temporary directory made on first use next to where its content goes (renames stay on one filesystem).

    ``abort`` removes it; ``release`` forgets it once its content was renamed into place.
    """

    def __init__(self, parent: Callable[[], str], prepare: Callable[[str], None] | None = None):
        self._parent = parent
        self._prepare = prepare
        self._lock = threading.Lock()
        self.current: str | None = None

    def path(self) -> str:
        with self._lock:
            if self.current is None:
                temp = make_temp_dir(self._parent())
                try:
                    if self._prepare is not None:
                        self._prepare(temp)
                except BaseException:
                    remove_path(temp)
                    raise
                self.current = temp
            return self.current

    def release(self) -> None:
        with self._lock:
            self.current = None

    def abort(self) -> None:
        with self._lock:
            temp, self.current = self.current, None
        if temp is not None:
            remove_path(temp)


def existing_parent(path: str, context: str) -> str:
    """The directory ``path`` goes in; refused when it does not exist (skopeo does not create it either)."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise LocalFormatError("%s: directory %s does not exist; create it first or choose another path" % (context, parent), context)
    return parent


class LocalDestination(ImageDestination):
    """What the local writers share: a temporary directory, made on the first write, that abort and close remove.

    Opening writes nothing; only ``put_blob``/``put_manifest`` create the temporary directory.
    """

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference, options)
        self.context = str(reference)
        # Symbolic links are resolved first (as skopeo does), so a replace swaps the real directory, not the link.
        self.path = os.path.realpath(reference.path or "")
        self.staging = Staging(self.temp_parent, self.prepare_temp)
        # digest -> size of each blob written in this session
        self.written: dict[str, int] = {}

    @property
    def parent(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    def check_parent(self) -> None:
        """Refuse a path whose parent directory does not exist."""
        existing_parent(self.path, self.context)

    def temp_parent(self) -> str:
        """Where the temporary directory goes: next to the destination."""
        return existing_parent(self.path, self.context)

    def prepare_temp(self, temp: str) -> None:
        """Hook: fill a fresh temporary directory (called once)."""

    @property
    def _temp(self) -> str | None:
        return self.staging.current

    def temp_dir(self) -> str:
        """The temporary directory, created on first use."""
        return self.staging.path()

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
        self.staging.release()

    def abort(self) -> None:
        self.staging.abort()

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
