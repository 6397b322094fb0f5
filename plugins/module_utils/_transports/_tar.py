# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tar archives: reading members in place with safety checks, and writing a tar as members arrive.

Reading (``ArchiveFiles``): the tar is scanned once for its member table, then each member is
streamed from its offset through its own file handle (nothing is extracted to disk). An archive
compressed as a whole (gzip, bzip2, xz) is first decompressed to a temporary file that
``close()`` removes. Archives with unsafe members (absolute paths, ``..`` escapes, links pointing
outside the archive, devices) are refused outright.

Writing (``TarStreamWriter`` over any file-like sink, ``TarBuilder`` on top of it): members are
appended as their bytes arrive; a member that fails midway is cut off again. Blobs may arrive
from several threads: one at a time streams straight into the tar, the others (and any of
unknown size) are spooled to a file first, since a tar header needs the size.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import threading
import zlib
from typing import BinaryIO, Callable

from .._compression import ZstdDecompressReader, detect_compression
from .._errors import DigestMismatch, LocalFormatError, LocalIOError, NotFound, OCIError, Unsupported
from ._local import ReadOnlyView, Staging, existing_parent, naming_path, read_whole, remove_path, sync_directory, temp_name, write_new_file
from ._volumes import JoinedVolumes, check_volumes, has_volumes, index_path, read_index

_DECOMPRESSORS = {"gzip": gzip.GzipFile, "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}
#: What decompressors raise for content that is not what it claims (besides OSError without an errno).
DECOMPRESSION_ERRORS = (EOFError, lzma.LZMAError, zlib.error)
_MAX_LINK_HOPS = 16
COPY_CHUNK = 1024 * 1024


def decompressing_stream(stream: BinaryIO, compression: str | None, context: str) -> BinaryIO:
    """``stream`` itself when uncompressed, else a reader that decompresses it."""
    if compression is None:
        return stream
    if compression == "zstd":
        return ZstdDecompressReader(stream, context)  # type: ignore[return-value]
    if compression not in _DECOMPRESSORS:
        stream.close()
        raise Unsupported("%s: %s-compressed content cannot be read here; decompress it first" % (context, compression), context)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return _DECOMPRESSORS[compression](stream, mode="rb")  # BZ2File and LZMAFile take the file object first


class ClosingDecompressor:
    """A decompressing reader that also closes the raw stream under it; content that does not decompress is a
    LocalFormatError naming ``what``."""

    def __init__(self, decompressed: BinaryIO, raw: BinaryIO, what: str):
        self._decompressed = decompressed
        self._raw = raw
        self._what = what

    def read(self, n: int = -1) -> bytes:
        try:
            return self._decompressed.read(n)
        except (*DECOMPRESSION_ERRORS, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise  # an error of the file itself, not of its content
            raise LocalFormatError("%s cannot be decompressed: %s" % (self._what, exc), self._what) from None

    def close(self) -> None:
        try:
            self._decompressed.close()
        finally:
            self._raw.close()


class _MemberStream(ReadOnlyView):
    """A read-only view of ``size`` bytes at ``offset`` in a file, with its own file handle."""

    def __init__(self, file: BinaryIO, offset: int, size: int):
        super().__init__(size)
        self._file = file
        self._offset = offset

    def read_at_position(self, n: int) -> bytes:
        self._file.seek(self._offset + self._pos)
        return self._file.read(n)

    def close(self) -> None:
        self._file.close()


def _clean(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")) if name else name


def _escapes(path: str) -> bool:
    return path == ".." or path.startswith("../")


class ArchiveFiles:
    """The regular files of a tar archive, by path, streamed in place (same interface as DirectoryFiles).

    ``form``: "whole" reads the file at ``path``; "split" its volumes (see ``_volumes``), checked
    against their index first; "any" whichever is there (both at once is refused as ambiguous).
    """

    def __init__(self, path: str, context: str, form: str = "whole"):
        self.root = path
        self.context = context
        self.form = form
        self._tar_path: str | None = None
        self._volumes: list[tuple[str, int]] | None = None
        self._temp: str | None = None
        self._members: dict[str, tarfile.TarInfo] | None = None

    def exists(self) -> bool:
        if not os.path.exists(self.root) and not (self.form != "whole" and has_volumes(self.root)):
            return False
        self._load()
        return True

    def _split(self) -> bool:
        """Whether the archive is read from volumes."""
        if self.form == "whole":
            return False
        if self.form == "split" or not os.path.lexists(self.root):
            return has_volumes(self.root) or self.form == "split"
        if has_volumes(self.root):
            raise LocalFormatError(
                "%s: both %s and volumes of it (%s) are there; remove the one that is out of date" % (self.context, self.root, index_path(self.root)),
                self.context,
            )
        return False

    def _open_raw(self) -> BinaryIO:
        """The archive as it is stored (one file, or the volumes joined)."""
        if self._volumes is not None:
            return JoinedVolumes(self._volumes)  # type: ignore[return-value]
        return open(self.root, "rb")

    def _load(self) -> dict[str, tarfile.TarInfo]:
        if self._members is not None:
            return self._members
        if self._split():
            self._volumes = check_volumes(self.root, read_index(self.root, self.context), self.context)
        elif os.path.isdir(self.root):
            raise LocalFormatError("%s: %s is a directory, not a tar archive" % (self.context, self.root), self.context)
        try:
            with self._open_raw() as f:
                compression = detect_compression(f.read(8))
        except FileNotFoundError:
            raise NotFound("%s: archive %s does not exist" % (self.context, self.root), self.context) from None
        if compression:
            self._tar_path = self._decompressed_copy(compression)
            self._volumes = None
        elif self._volumes is None:
            self._tar_path = self.root
        try:
            with self._open_raw() if self._tar_path is None else open(self._tar_path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
                members = tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as e:
            raise LocalFormatError("%s: %s is not a readable tar archive: %s" % (self.context, self.root, e), self.context) from None
        table: dict[str, tarfile.TarInfo] = {}
        for member in members:
            self._check_safe(member)
            table[_clean(member.name)] = member
        self._members = table
        return table

    def _decompressed_copy(self, compression: str) -> str:
        if compression not in _DECOMPRESSORS and compression != "zstd":
            raise LocalFormatError("%s: %s is %s-compressed; decompress it first" % (self.context, self.root, compression), self.context)
        doing = "decompressing %s to a temporary file" % self.root
        try:
            fd, temp = tempfile.mkstemp(prefix="oci-images-archive-", suffix=".tar")
        except OSError as e:
            raise LocalIOError.from_os_error(e, self.context, doing, tempfile.gettempdir()) from None
        self._temp = temp
        try:
            with os.fdopen(fd, "wb") as out, self._open_raw() as raw:
                src = decompressing_stream(raw, compression, self.context)
                shutil.copyfileobj(src, out, COPY_CHUNK)
        except OSError as e:
            self.close()
            if e.errno is not None:  # reading the archive or writing the copy, not the content
                raise LocalIOError.from_os_error(naming_path(e, temp), self.context, doing) from None
            raise LocalFormatError("%s: cannot decompress %s: %s" % (self.context, self.root, e), self.context) from None
        except DECOMPRESSION_ERRORS as e:
            self.close()
            raise LocalFormatError("%s: cannot decompress %s: %s" % (self.context, self.root, e), self.context) from None
        except OCIError:  # zstd: damaged or not installed; the message says which
            self.close()
            raise
        return temp

    def _check_safe(self, member: tarfile.TarInfo) -> None:
        name = member.name
        problem = None
        if name.startswith("/"):
            problem = "has an absolute path"
        elif _escapes(posixpath.normpath(name)):
            problem = "escapes the archive with '..'"
        elif member.issym():
            target = member.linkname
            if target.startswith("/") or _escapes(posixpath.normpath(posixpath.join(posixpath.dirname(name), target))):
                problem = "is a symbolic link to %r, outside the archive" % target
        elif member.islnk():
            target = member.linkname
            if target.startswith("/") or _escapes(posixpath.normpath(target)):
                problem = "is a hard link to %r, outside the archive" % target
        elif member.isdev():
            problem = "is a device file"
        if problem:
            raise LocalFormatError("%s: unsafe member %r in %s: it %s; refusing the archive" % (self.context, name, self.root, problem), self.context)

    def _resolve(self, relative: str) -> tarfile.TarInfo | None:
        members = self._load()
        name = _clean(relative)
        for _unused in range(_MAX_LINK_HOPS):
            member = members.get(name)
            if member is None:
                return None
            if member.issym():
                name = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
            elif member.islnk():
                name = _clean(member.linkname)
            else:
                return member if member.isreg() else None
        raise LocalFormatError("%s: too many links to follow for %r in %s" % (self.context, relative, self.root), self.context)

    def has(self, relative: str) -> bool:
        return self._resolve(relative) is not None

    def location(self, relative: str) -> str:
        """How messages name the member."""
        return "%s in %s" % (relative, self.root)

    def open(self, relative: str) -> tuple[BinaryIO, int] | None:
        member = self._resolve(relative)
        if member is None:
            return None
        if member.issparse():
            raise LocalFormatError("%s: member %r of %s is a sparse file, which images never contain" % (self.context, relative, self.root), self.context)
        raw = open(self._tar_path, "rb") if self._tar_path is not None else self._open_raw()  # noqa: SIM115 - closed with the stream
        return _MemberStream(raw, member.offset_data, member.size), member.size

    def read(self, relative: str, limit: int, context: str) -> bytes | None:
        return read_whole(self.open(relative), "%s in %s" % (relative, self.root), limit, context)

    def close(self) -> None:
        if self._temp is not None:
            try:
                os.unlink(self._temp)
            except FileNotFoundError:
                pass
            self._temp = None
        self._members = None
        self._volumes = None
        self._tar_path = None


# --- writing ----------------------------------------------------------------------------------

_BLOCK = tarfile.BLOCKSIZE
_USTAR_NAME = 100
_USTAR_SIZE_LIMIT = 8**11  # the 12-byte octal size field
_USTAR_ID_LIMIT = 8**7  # the 8-byte octal mode, uid, gid and device fields


def _octal(value: int, width: int) -> bytes:
    # Zero-padded, one NUL at the end: what Go's archive/tar writes (Python leaves device fields empty).
    return b"%0*o\0" % (width - 1, value)


def _text(value: str, width: int) -> bytes:
    return value.encode("ascii").ljust(width, b"\0")


def ustar_header(info: tarfile.TarInfo) -> bytes | None:
    """The 512-byte header Go's archive/tar (so skopeo) writes for ``info`` in the USTAR format.

    None when USTAR cannot hold it (a name or link over 100 bytes or not ASCII, 8 GiB and more,
    large ids); the caller then writes a PAX header, as Go would, though not in Go's exact bytes.
    """
    texts = (info.name, info.linkname, info.uname, info.gname)
    numbers = (info.mode, info.uid, info.gid, info.devmajor, info.devminor)
    if not all(t.isascii() for t in texts) or max(len(info.name), len(info.linkname)) > _USTAR_NAME or max(len(info.uname), len(info.gname)) > 32:
        return None
    if not 0 <= info.size < _USTAR_SIZE_LIMIT or not 0 <= int(info.mtime) < _USTAR_SIZE_LIMIT or any(not 0 <= n < _USTAR_ID_LIMIT for n in numbers):
        return None
    block = b"".join(
        (
            _text(info.name, 100),
            _octal(info.mode, 8),
            _octal(info.uid, 8),
            _octal(info.gid, 8),
            _octal(info.size, 12),
            _octal(int(info.mtime), 12),
            b" " * 8,  # the checksum, counted as spaces
            info.type,
            _text(info.linkname, 100),
            b"ustar\x0000",
            _text(info.uname, 32),
            _text(info.gname, 32),
            _octal(info.devmajor, 8),
            _octal(info.devminor, 8),
        )
    ).ljust(_BLOCK, b"\0")
    return block[:148] + b"%06o\0 " % sum(block) + block[156:]


def tar_header(info: tarfile.TarInfo) -> bytes:
    """A member's header: USTAR byte for byte as Go writes it, or PAX where USTAR does not reach."""
    return ustar_header(info) or info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarStreamWriter:
    """Appends members to a tar as their bytes arrive; a member that fails midway is cut off again.

    The sink is a new file (``create``) or any file-like object with ``write``, ``tell``, ``seek``,
    ``truncate``, ``flush`` and ``close``; ``finish`` makes a file sink durable.
    """

    def __init__(self, sink, path: str | None = None):
        self._file = sink
        self.path = path  # named by errors writing to it

    @classmethod
    def create(cls, path: str) -> TarStreamWriter:
        """A writer on a new file at ``path`` (refuses an existing one)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        return cls(os.fdopen(fd, "wb"), path)

    def add(self, info: tarfile.TarInfo, stream: BinaryIO | None = None) -> None:
        """Write ``info``'s header and ``info.size`` bytes read from ``stream`` to EOF (so its digest is checked)."""
        start = self._file.tell()
        try:
            self._file.write(tar_header(info))
            written = 0
            while stream is not None:
                chunk = stream.read(COPY_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > info.size:
                    raise DigestMismatch("%s: more than the %d bytes expected" % (info.name, info.size), info.name)
                self._file.write(chunk)
            if written != info.size:
                raise DigestMismatch("%s: %d bytes where %d were expected" % (info.name, written, info.size), info.name)
            if written % _BLOCK:
                self._file.write(b"\0" * (_BLOCK - written % _BLOCK))
        except OSError as exc:
            self._cut(start)
            raise naming_path(exc, self.path) if self.path else exc from None
        except BaseException:
            self._cut(start)
            raise

    def _cut(self, start: int) -> None:
        """Drop a member that failed midway (as far as the file allows: it may be what failed)."""
        try:
            self._file.seek(start)
            self._file.truncate()
        except OSError:
            pass

    def finish(self) -> None:
        """Write the end-of-archive blocks and make the file durable."""
        try:
            self._file.write(b"\0" * (2 * _BLOCK))
            self._file.flush()
            if isinstance(self._file, io.IOBase):
                os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:
            self.close()
            raise naming_path(exc, self.path) if self.path else exc from None

    def close(self) -> None:
        """Close without finishing (after a failure: an error closing must not hide the one reported)."""
        try:
            self._file.close()
        except OSError:
            pass


class TarBuilder:
    """Adds members to a ``TarStreamWriter`` from several threads; ``member`` gives each its metadata.

    One blob at a time streams straight in; the others, and any of unknown size, are spooled to
    ``spool_dir`` first.
    """

    def __init__(self, writer: TarStreamWriter, spool_dir: str, member: Callable[[str, int, bytes], tarfile.TarInfo], context: str):
        self._tar: TarStreamWriter | None = writer
        self._spool_dir = spool_dir
        self._member = member
        self._lock = threading.Lock()
        self.context = context

    def add_member(self, name: str, stream: BinaryIO, size: int | None) -> int:
        """Add a regular file from a stream; return its size."""
        if size is not None and self._lock.acquire(blocking=False):
            try:
                self._add_locked(self._member(name, size, tarfile.REGTYPE), stream)
            finally:
                self._lock.release()
            return size
        spool = self.spool(stream)
        try:
            size = os.path.getsize(spool)
            self.add_spooled(name, spool, size)
        finally:
            remove_path(spool)
        return size

    def spool(self, stream: BinaryIO) -> str:
        """Write a stream to a new file in the spool directory (to EOF, so its digest is checked); its path."""
        spool = os.path.join(self._spool_dir, temp_name(".spool-"))
        write_new_file(spool, stream)
        return spool

    def add_spooled(self, name: str, spool: str, size: int) -> None:
        with open(spool, "rb") as f:
            with self._lock:
                self._add_locked(self._member(name, size, tarfile.REGTYPE), f)

    def add_bytes(self, name: str, data: bytes) -> None:
        with self._lock:
            self._add_locked(self._member(name, len(data), tarfile.REGTYPE), io.BytesIO(data))

    def add_special(self, name: str, kind: bytes, linkname: str = "") -> None:
        """A directory or symbolic link member."""
        info = self._member(name, 0, kind)
        info.linkname = linkname
        with self._lock:
            self._add_locked(info, None)

    def _add_locked(self, info: tarfile.TarInfo, stream: BinaryIO | None) -> None:
        if self._tar is None:
            raise OCIError("%s: the archive is already finished or aborted" % self.context, self.context)
        self._tar.add(info, stream)

    def finish(self) -> None:
        with self._lock:
            tar, self._tar = self._tar, None
        if tar is None:
            raise OCIError("%s: the archive is already finished or aborted" % self.context, self.context)
        tar.finish()

    def close(self) -> None:
        with self._lock:
            tar, self._tar = self._tar, None
        if tar is not None:
            tar.close()


def new_member(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    """A bare TarInfo; writers set the owner, mode and time they want."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info


def drain(stream: BinaryIO) -> None:
    """Read a stream to EOF (verifying it) without keeping the bytes: a blob a writer already holds."""
    while stream.read(COPY_CHUNK):
        pass


def archive_has(path: str, member: str) -> bool:
    """True when ``path`` is a readable tar holding ``member`` (how an archive of one kind is recognized)."""
    files = ArchiveFiles(path, path)
    try:
        return files.exists() and files.has(member)
    finally:
        files.close()


ARCHIVE_FILE = "archive.tar"


class ArchiveFile:
    """The archive file at PATH: a new tar is written in a temporary directory next to it and renamed over PATH on commit.

    An existing file is replaced as a whole, and only when ``recognize(path)`` says it is an
    archive of the same kind; an empty file counts as absent.
    """

    def __init__(self, path: str, kind: str, recognize: Callable[[str], bool], context: str):
        # Symbolic links are resolved first (as skopeo does), so a replace swaps the real file, not the link.
        self.path = os.path.realpath(path)
        self.kind = kind
        self.context = context
        self._recognize = recognize
        self.staging = Staging(lambda: existing_parent(self.path, self.context))

    def exists(self) -> bool:
        """False when PATH is absent or an empty file; refuses a directory and a file that is not such an archive."""
        path = self.path
        if not os.path.lexists(path):
            existing_parent(path, self.context)
            return False
        if os.path.isdir(path):
            raise LocalFormatError("%s: %s is a directory, not a %s file; choose another path" % (self.context, path, self.kind), self.context)
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            return False
        try:
            recognized = self._recognize(path)
        except LocalFormatError as e:
            raise LocalFormatError(
                "%s: %s exists and is not a readable %s (%s); refusing to replace it: remove it or choose another path" % (self.context, path, self.kind, e),
                self.context,
            ) from None
        if not recognized:
            raise LocalFormatError(
                "%s: %s exists and is not a %s; refusing to replace it: remove it or choose another path" % (self.context, path, self.kind),
                self.context,
            )
        return True

    def open_tar(self) -> tuple[TarStreamWriter, str]:
        """The new tar, and the temporary directory it is in (for spool files)."""
        temp = self.staging.path()
        return TarStreamWriter.create(os.path.join(temp, ARCHIVE_FILE)), temp

    def commit(self) -> None:
        """Put the finished tar at PATH."""
        temp = self.staging.current
        if temp is None:
            raise OCIError("%s: nothing to commit: no archive was written" % self.context, self.context)
        self.exists()  # still nothing that must not be replaced
        os.replace(os.path.join(temp, ARCHIVE_FILE), self.path)
        sync_directory(os.path.dirname(self.path))
        self.staging.abort()  # the emptied temporary directory

    def abort(self) -> None:
        self.staging.abort()
