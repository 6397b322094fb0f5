# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``oci-archive:PATH[:REF]`` and ``docker-archive:PATH[:name:tag|:@N]`` — images in a tar file.

Members are read in place: the tar is scanned once for its member table, then each member
is streamed from its offset through its own file handle (nothing is extracted to disk).
An archive compressed as a whole (gzip, bzip2, xz) is first decompressed to a temporary file
that ``close()`` removes. Archives with unsafe members (absolute paths, ``..`` escapes,
links pointing outside the archive) are refused outright.
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
from typing import BinaryIO

from .. import _media
from .._convert import go_json
from .._digest import sha256_digest
from .._errors import InvalidManifest, InvalidReference, LocalFormatError, NotFound, Unsupported
from .._reference import ImageReference, parse_docker_name, validate_digest
from ._base import ImageSource, verified_stream
from ._oci_layout import OCILayoutSource

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
        for _ in range(_MAX_LINK_HOPS):
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
        opened = self.open(relative)
        if opened is None:
            return None
        stream, size = opened
        with stream:
            if size > limit:
                raise InvalidManifest("%s: %s in %s is %d bytes, over the %d-byte limit" % (context, relative, self.root, size, limit), context)
            return stream.read(size)

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
                        registry, repository, tag_name, _ = parse_docker_name(tag, self.context)
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
        assert self._manifest is not None
        if digest is not None:
            validate_digest(digest, self.context)
            if digest != sha256_digest(self._manifest):
                raise NotFound("%s: the archive's image has manifest %s, not %s" % (self.context, sha256_digest(self._manifest), digest), self.context)
        return self._manifest, _media.DOCKER_MANIFEST

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        validate_digest(digest, self.context)
        self._load()
        if digest == self._config_digest:
            return verified_stream(io.BytesIO(self._config or b""), digest, size if size is not None else len(self._config or b""), self.context)
        if digest not in self._layers:
            raise NotFound("%s: blob %s is not part of this image" % (self.context, digest), self.context)
        path, uncompressed_size = self._layers[digest]
        stream, _, compression = self._open_layer(path)
        if compression is not None:
            stream = _ClosingDecompressor(decompressing_stream(stream, compression, self.context), stream)
        return verified_stream(stream, digest, size if size is not None else uncompressed_size, self.context)
