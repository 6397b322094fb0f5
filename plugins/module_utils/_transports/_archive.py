# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``oci-archive:PATH[:REF]`` and ``docker-archive:PATH[:name:tag|:@N]`` — images in a tar file.

Members are read in place: the tar is scanned once for its member table, then each member
is streamed from its offset through its own file handle (nothing is extracted to disk).
An archive compressed as a whole (gzip, bzip2, xz) is first decompressed to a temporary file
that ``close()`` removes. Archives with unsafe members (absolute paths, ``..`` escapes,
links pointing outside the archive) are refused outright.

Writing streams one new tar into a temporary directory next to PATH and renames it over PATH on
commit, so an existing archive is replaced as a whole (skopeo 1.9 does the same for
oci-archive; for docker-archive it refuses any non-empty file, which would break re-copies).
A file that is not an archive of the same kind is never replaced.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import threading
import time
from typing import BinaryIO

from .. import _media
from .._convert import go_json
from .._digest import sha256_digest, verify_bytes
from .._errors import DigestMismatch, InvalidReference, LocalFormatError, NotFound, OCIError, Unsupported
from .._reference import ImageReference, parse_docker_name, validate_digest
from ._base import ImageSource, verified_stream
from ._directory import LocalDestination, read_whole, remove_path, sync_directory, temp_name, write_new_file
from ._oci_layout import INDEX_FILE, LAYOUT_BYTES, LAYOUT_FILE, OCILayoutSource, blob_path, index_entry, index_json_bytes, named_entry_digest

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_DECOMPRESSORS = {"gzip": gzip.GzipFile, "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}
_MAX_LINK_HOPS = 16
_COPY_CHUNK = 1024 * 1024


def detect_compression(head: bytes) -> str | None:
    """``gzip``/``bzip2``/``xz``/``zstd`` from a stream's first bytes, or None for uncompressed."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def decompressing_stream(stream: BinaryIO, compression: str | None, context: str) -> BinaryIO:
    """``stream`` itself when uncompressed, else a reader that decompresses it."""
    if compression is None:
        return stream
    if compression not in _DECOMPRESSORS:
        stream.close()
        raise Unsupported("%s: %s-compressed content cannot be read here; decompress it first" % (context, compression), context)
    return _DECOMPRESSORS[compression](fileobj=stream, mode="rb")


class _ClosingDecompressor:
    """A decompressing reader that also closes the raw stream under it."""

    def __init__(self, decompressed: BinaryIO, raw: BinaryIO):
        self._decompressed = decompressed
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        return self._decompressed.read(n)

    def close(self) -> None:
        try:
            self._decompressed.close()
        finally:
            self._raw.close()


class _MemberStream:
    """A read-only view of ``size`` bytes at ``offset`` in a file, with its own file handle."""

    def __init__(self, path: str, offset: int, size: int):
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._offset = offset
        self._size = size
        self._pos = 0
        self._file.seek(offset)

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._pos
        if n is None or n < 0 or n > left:
            n = left
        data = self._file.read(n) if n else b""
        self._pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += self._size
        self._pos = min(max(pos, 0), self._size)
        self._file.seek(self._offset + self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _clean(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")) if name else name


def _escapes(path: str) -> bool:
    return path == ".." or path.startswith("../")


class ArchiveFiles:
    """The regular files of a tar archive, by path, streamed in place (same interface as DirectoryFiles)."""

    def __init__(self, path: str, context: str):
        self.root = path
        self.context = context
        self._tar_path: str | None = None
        self._temp: str | None = None
        self._members: dict[str, tarfile.TarInfo] | None = None

    def exists(self) -> bool:
        if not os.path.exists(self.root):
            return False
        self._load()
        return True

    def _load(self) -> dict[str, tarfile.TarInfo]:
        if self._members is not None:
            return self._members
        if os.path.isdir(self.root):
            raise LocalFormatError("%s: %s is a directory, not a tar archive" % (self.context, self.root), self.context)
        try:
            with open(self.root, "rb") as f:
                compression = detect_compression(f.read(8))
        except FileNotFoundError:
            raise NotFound("%s: archive %s does not exist" % (self.context, self.root), self.context) from None
        self._tar_path = self._decompressed_copy(compression) if compression else self.root
        try:
            with tarfile.open(self._tar_path, "r:") as tar:
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
        if compression not in _DECOMPRESSORS:
            raise LocalFormatError("%s: %s is %s-compressed; decompress it first" % (self.context, self.root, compression), self.context)
        fd, temp = tempfile.mkstemp(prefix="oci-images-archive-", suffix=".tar")
        self._temp = temp
        try:
            with os.fdopen(fd, "wb") as out, _DECOMPRESSORS[compression](self.root, "rb") as src:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
        except (OSError, EOFError, lzma.LZMAError) as e:
            self.close()
            raise LocalFormatError("%s: cannot decompress %s: %s" % (self.context, self.root, e), self.context) from None
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

    def open(self, relative: str) -> tuple[BinaryIO, int] | None:
        member = self._resolve(relative)
        if member is None:
            return None
        if member.issparse():
            raise LocalFormatError("%s: member %r of %s is a sparse file, which images never contain" % (self.context, relative, self.root), self.context)
        return _MemberStream(self._tar_path or self.root, member.offset_data, member.size), member.size

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


class OCIArchiveSource(OCILayoutSource):
    """An OCI layout packed in a tar (``oci-archive:``), read in place."""

    kind = "OCI archive"

    def open_files(self):
        return ArchiveFiles(self.reference.path or "", self.context)


# --- docker-archive ---------------------------------------------------------------------------


class DockerArchiveSource(ImageSource):
    """One image of a ``docker save``-format tar, presented as the Docker v2s2 manifest skopeo synthesizes.

    Like containers/image, layers are addressed by their DiffID (the digest of the uncompressed
    tar), sizes are uncompressed sizes, and the layer media type is the Docker gzip one even
    though the bytes served are uncompressed — so digests agree with ``skopeo inspect``.
    """

    #: The copy engine gzips these layers for destinations that keep layers compressed.
    layers_stored_uncompressed = True

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        self.context = str(reference)
        self._files: ArchiveFiles | None = None
        self._manifest: bytes | None = None
        self._config: bytes | None = None
        self._config_digest: str | None = None
        self._layers: dict[str, tuple[str, int]] = {}  # diff_id -> (member path, uncompressed size)

    @property
    def files(self) -> ArchiveFiles:
        if self._files is None:
            self._files = ArchiveFiles(self.reference.path or "", self.context)
        return self._files

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None

    def _items(self) -> list[dict]:
        files = self.files
        if not files.exists():
            raise NotFound("%s: archive %s does not exist" % (self.context, files.root), self.context)
        raw = files.read("manifest.json", _media.MAX_MANIFEST_BYTES, self.context)
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

    def _choose(self, items: list[dict]) -> dict:
        ref = self.reference
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

    def _load(self) -> None:
        if self._manifest is not None:
            return
        item = self._choose(self._items())
        config = self.files.read(item["Config"], _media.MAX_CONFIG_BYTES, self.context)
        if config is None:
            raise NotFound("%s: config %s named by manifest.json is missing from %s" % (self.context, item["Config"], self.files.root), self.context)
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
                chunk = reader.read(_COPY_CHUNK)
                if not chunk:
                    return total
                total += len(chunk)
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise LocalFormatError("%s: layer %s cannot be decompressed: %s" % (self.context, path, e), self.context) from None
        finally:
            reader.close()
            stream.close()

    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        self._load()
        manifest = self._manifest or b""  # _load() set it
        if digest is not None:
            validate_digest(digest, self.context)
            if digest != sha256_digest(manifest):
                raise NotFound("%s: the archive's image has manifest %s, not %s" % (self.context, sha256_digest(manifest), digest), self.context)
        return manifest, _media.DOCKER_MANIFEST

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        validate_digest(digest, self.context)
        self._load()
        if digest == self._config_digest:
            return verified_stream(io.BytesIO(self._config or b""), digest, size if size is not None else len(self._config or b""), self.context)
        if digest not in self._layers:
            raise NotFound("%s: blob %s is not part of this image" % (self.context, digest), self.context)
        path, uncompressed_size = self._layers[digest]
        stream, _unused, compression = self._open_layer(path)
        if compression is not None:
            stream = _ClosingDecompressor(decompressing_stream(stream, compression, self.context), stream)
        return verified_stream(stream, digest, size if size is not None else uncompressed_size, self.context)


# --- writing ----------------------------------------------------------------------------------

_BLOCK = tarfile.BLOCKSIZE
ARCHIVE_FILE = "archive.tar"


class TarStreamWriter:
    """Appends members to a new tar file as their bytes arrive; a member that fails midway is cut off again."""

    def __init__(self, path: str):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._file = os.fdopen(fd, "wb")

    def add(self, info: tarfile.TarInfo, stream: BinaryIO | None = None) -> None:
        """Write ``info``'s header and ``info.size`` bytes read from ``stream`` to EOF (so its digest is checked)."""
        start = self._file.tell()
        try:
            self._file.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            written = 0
            while stream is not None:
                chunk = stream.read(_COPY_CHUNK)
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
        except BaseException:
            self._file.seek(start)
            self._file.truncate()
            raise

    def finish(self) -> None:
        """Write the end-of-archive blocks and make the file durable."""
        self._file.write(b"\0" * (2 * _BLOCK))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def close(self) -> None:
        self._file.close()


class ArchiveDestination(LocalDestination):
    """Shared by the archive writers: one tar in a temporary directory next to PATH, renamed over PATH on commit.

    Blobs may arrive from several threads: one at a time streams straight into the tar; the others
    (and any blob of unknown size) are spooled to a file in the temporary directory first.
    """

    #: what the messages call the archive
    kind = "archive"

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        self._tar: TarStreamWriter | None = None
        self._tar_lock = threading.Lock()
        self._top_written = False

    # --- the target -----------------------------------------------------------------------------
    def target_exists(self) -> bool:
        """False when PATH is absent or an empty file; refuses a directory and a file that is not such an archive."""
        path = self.path
        if not os.path.lexists(path):
            self.check_parent()
            return False
        if os.path.isdir(path):
            raise LocalFormatError("%s: %s is a directory, not a %s file; choose another path" % (self.context, path, self.kind), self.context)
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            return False
        try:
            recognized = self.recognize()
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

    def recognize(self) -> bool:
        """True when the existing file at PATH is an archive of this kind."""
        raise NotImplementedError

    # --- the tar --------------------------------------------------------------------------------
    def prepare_temp(self, temp: str) -> None:
        self._tar = TarStreamWriter(os.path.join(temp, ARCHIVE_FILE))

    def member(self, name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        """A TarInfo for a new member; subclasses set the metadata skopeo uses."""
        info = tarfile.TarInfo(name)
        info.size = size
        info.type = kind
        return info

    def add_member(self, name: str, stream: BinaryIO, size: int | None) -> int:
        """Add a regular file from a stream (spooled first when its size is unknown or the tar is busy); return its size."""
        self.temp_dir()
        if size is not None and self._tar_lock.acquire(blocking=False):
            try:
                self._add_locked(self.member(name, size), stream)
            finally:
                self._tar_lock.release()
            return size
        spool = os.path.join(self.temp_dir(), temp_name(".spool-"))
        try:
            size = write_new_file(spool, stream)
            self.add_spooled(name, spool, size)
        finally:
            remove_path(spool)
        return size

    def add_spooled(self, name: str, spool: str, size: int) -> None:
        with open(spool, "rb") as f:
            with self._tar_lock:
                self._add_locked(self.member(name, size), f)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.temp_dir()
        with self._tar_lock:
            self._add_locked(self.member(name, len(data)), io.BytesIO(data))

    def add_special(self, name: str, kind: bytes, linkname: str = "") -> None:
        """A directory or symbolic link member."""
        self.temp_dir()
        info = self.member(name, 0, kind)
        info.linkname = linkname
        with self._tar_lock:
            self._add_locked(info, None)

    def _add_locked(self, info: tarfile.TarInfo, stream: BinaryIO | None) -> None:
        if self._tar is None:
            raise OCIError("%s: the archive is already finished or aborted" % self.context, self.context)
        self._tar.add(info, stream)

    # --- the protocol ---------------------------------------------------------------------------
    def has_blob(self, digest: str, size: int | None = None) -> bool:
        validate_digest(digest, self.context)
        return digest in self.written

    def finish_archive(self) -> None:
        """Hook: add the metadata members at the end."""

    def commit(self) -> None:
        if not self._top_written or self._temp is None or self._tar is None:
            raise OCIError("%s: nothing to commit: no top-level manifest was written" % self.context, self.context)
        self.finish_archive()
        self._tar.finish()
        self._tar = None
        self.target_exists()  # still nothing that must not be replaced
        os.replace(os.path.join(self._temp, ARCHIVE_FILE), self.path)
        sync_directory(self.parent)
        self.abort()  # the emptied temporary directory

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        super().abort()


class OCIArchiveDestination(ArchiveDestination):
    """Writes ``oci-archive:PATH[:REF]``: a tar of an OCI layout holding this one image (or index)."""

    kind = "OCI archive"
    can_hold_index = True
    required_format = "oci"  # a tar of an OCI layout holds OCI manifests

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        self._entry: dict | None = None
        self._dirs: set[str] = set()
        self._mtime = int(time.time())

    def member(self, name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        # Like skopeo, which tars a directory it wrote: the writer's ids, the current time, 0644/0755.
        info = super().member(name, size, kind)
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.mtime = self._mtime
        info.uid = os.getuid() if hasattr(os, "getuid") else 0
        info.gid = os.getgid() if hasattr(os, "getgid") else 0
        return info

    def recognize(self) -> bool:
        source = OCIArchiveSource(self.reference)
        try:
            return source.files.exists() and source.files.has(INDEX_FILE)
        finally:
            source.close()

    def current_digest(self) -> str | None:
        if not self.target_exists():
            return None
        return named_entry_digest(OCIArchiveSource(self.reference))

    def _blob_member(self, digest: str) -> str:
        algorithm = digest.partition(":")[0]
        with self._temp_lock:
            missing = [d for d in ("blobs", "blobs/" + algorithm) if d not in self._dirs]
            self._dirs.update(missing)
        for directory in missing:
            self.add_special(directory, tarfile.DIRTYPE)
        return blob_path(digest)

    def put_blob(self, stream: BinaryIO, digest: str, size: int | None, media_type: str | None = None) -> None:
        validate_digest(digest, self.context)
        if digest in self.written:
            copy_to_nowhere(stream)
            return
        self.written[digest] = self.add_member(self._blob_member(digest), stream, size)

    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        validate_digest(digest, self.context)
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        if digest not in self.written:
            self.add_member(self._blob_member(digest), io.BytesIO(raw), len(raw))
            self.written[digest] = len(raw)
        if top:
            self._entry = index_entry(self.reference, raw, media_type, digest)
            self._top_written = True

    def finish_archive(self) -> None:
        self.add_bytes(INDEX_FILE, index_json_bytes({"schemaVersion": 2, "manifests": [self._entry or {}]}))
        self.add_bytes(LAYOUT_FILE, LAYOUT_BYTES)


def copy_to_nowhere(stream: BinaryIO) -> None:
    """Read a stream to EOF (verifying it) without keeping the bytes: a blob this writer already holds."""
    while stream.read(_COPY_CHUNK):
        pass


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


class DockerArchiveDestination(ArchiveDestination):
    """Writes ``docker-archive:PATH[:name:tag]`` as skopeo 1.9 does: one image, uncompressed layers named by diff ID.

    Layers go into the tar as they arrive (``<diff-id hex>.tar``); the config is held until the
    manifest says which blob it is, then written as ``<hex>.json`` followed by the legacy
    per-layer directories, ``manifest.json`` and ``repositories``.
    """

    kind = "docker archive"
    can_hold_index = False
    wants_uncompressed_layers = True
    identity = "config"

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        if reference.source_index is not None:
            raise InvalidReference(
                "%s: @N selects an image to read; to write, give docker-archive:PATH or docker-archive:PATH:name:tag" % self.context,
                self.context,
            )
        self._held: dict[str, str] = {}  # digest -> spool file of blobs that may be the config
        self._layers: dict[str, str] = {}  # diff ID -> member name

    def member(self, name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        # skopeo's docker-archive members: mode 0444 (symlinks 0), owner 0:0, no user names, mtime 0.
        info = super().member(name, size, kind)
        info.mode = 0 if kind == tarfile.SYMTYPE else 0o444
        info.mtime = 0
        return info

    def _source(self) -> DockerArchiveSource:
        return DockerArchiveSource(self.reference)

    def recognize(self) -> bool:
        source = self._source()
        try:
            return source.files.exists() and source.files.has("manifest.json")
        finally:
            source.close()

    def current_digest(self) -> str | None:
        if not self.target_exists():
            return None
        source = self._source()
        try:
            try:
                item = source._choose(source._items())
            except (NotFound, InvalidReference):
                return None
            config = source.files.read(item["Config"], _media.MAX_CONFIG_BYTES, self.context)
            return sha256_digest(config) if config is not None else None
        finally:
            source.close()

    def put_blob(self, stream: BinaryIO, digest: str, size: int | None, media_type: str | None = None) -> None:
        validate_digest(digest, self.context)
        if digest in self.written:
            copy_to_nowhere(stream)
            return
        if media_type is None or media_type in _CONFIG_MEDIA_TYPES:
            spool = os.path.join(self.temp_dir(), temp_name(".held-"))
            self.written[digest] = write_new_file(spool, stream)
            self._held[digest] = spool
            return
        name = "%s.tar" % digest.partition(":")[2]
        self.written[digest] = self.add_member(name, stream, size)
        self._layers[digest] = name

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
        for diff_id in diff_ids:
            if diff_id not in self._layers:
                if diff_id not in self._held:
                    raise OCIError("%s: layer %s was never written; cannot finish the archive" % (self.context, diff_id), self.context)
                self._layers[diff_id] = "%s.tar" % diff_id.partition(":")[2]
                self.add_spooled(self._layers[diff_id], self._held[diff_id], self.written[diff_id])
        if config_digest not in self._held:
            raise OCIError("%s: config %s was never written; cannot finish the archive" % (self.context, config_digest), self.context)
        with open(self._held[config_digest], "rb") as f:
            config = f.read(_media.MAX_CONFIG_BYTES + 1)
        _media.parse_config(config, "%s (config %s)" % (self.context, config_digest))
        config_name = "%s.json" % config_digest.partition(":")[2]
        self.add_bytes(config_name, config)
        legacy = legacy_layer_files(diff_ids, config)
        for (layer_id, layer_json), diff_id in zip(legacy, diff_ids):
            self.add_special("%s/layer.tar" % layer_id, tarfile.SYMTYPE, "../" + self._layers[diff_id])
            self.add_bytes("%s/VERSION" % layer_id, b"1.0")
            self.add_bytes("%s/json" % layer_id, layer_json)
        ref = self.reference
        repo_tags = [ref.docker_reference] if ref.repository is not None else []
        self.add_bytes("manifest.json", go_json([{"Config": config_name, "RepoTags": repo_tags, "Layers": [self._layers[d] for d in diff_ids]}]))
        repositories: dict = {}
        if ref.repository is not None and legacy:
            repositories[ref.name] = {ref.tag_or_default: legacy[-1][0]}
        self.add_bytes("repositories", go_json(repositories))
        self._top_written = True
