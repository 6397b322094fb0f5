# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Split archives: one tar as numbered volumes ``NAME.000``, ``NAME.001``, … of at most a given size.

Next to the volumes, ``NAME.volumes.json`` lists them in order with each one's size and sha256
(the index). ``cat NAME.??? > NAME`` gives the archive back; ``JoinedVolumes`` reads the volumes as
that one file without joining them on disk, after ``check_volumes`` found each one as the index says.

Writing: ``VolumeWriter`` is a file-like sink for ``TarStreamWriter`` that starts the next volume
when one is full and hashes each as it is written; ``SplitArchiveFile`` writes the volumes and the
index in a temporary directory next to NAME and puts them in place on commit (the index last).
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import re
import threading
from dataclasses import dataclass
from typing import Callable

from .._errors import LocalFormatError, NotFound, OCIError
from ._local import ReadOnlyView, Staging, existing_parent, remove_path, replace_file, sync_directory

INDEX_SUFFIX = ".volumes.json"
INDEX_FORMAT = "oci.images split archive"
MAX_VOLUMES = 1000  # three-digit suffixes keep `cat NAME.???` in order
MIN_SPLIT_SIZE = 1024
_CHUNK = 1024 * 1024
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(value, option: str = "split_size") -> int:
    """Bytes from an int or a string with a K, M, G or T suffix (powers of 1024: ``4095M``, ``700MiB``)."""
    match = None if isinstance(value, bool) else _SIZE_RE.match(str(value))
    if match is None:
        raise LocalFormatError("%s: %r is not a size; give bytes, or a number with K, M or G (powers of 1024), such as 4095M" % (option, value))
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size < MIN_SPLIT_SIZE:
        raise LocalFormatError("%s: %r is less than %d bytes; give a larger size" % (option, value, MIN_SPLIT_SIZE))
    return size


def index_path(archive: str) -> str:
    """Where the index of the volumes of ``archive`` is."""
    return archive + INDEX_SUFFIX


def volume_name(archive_name: str, number: int) -> str:
    return "%s.%03d" % (archive_name, number)


def has_volumes(archive: str) -> bool:
    """Whether ``archive`` has an index of volumes next to it (whatever its state)."""
    return os.path.lexists(index_path(archive))


@dataclass
class Volume:
    name: str
    size: int
    sha256: str


@dataclass
class VolumeIndex:
    """What ``NAME.volumes.json`` says: the archive's name, the size asked for each volume, the volumes in order."""

    archive: str
    split_size: int
    volumes: list[Volume]

    def to_bytes(self) -> bytes:
        doc = {
            "format": INDEX_FORMAT,
            "version": 1,
            "archive": self.archive,
            "split_size": self.split_size,
            "size": sum(v.size for v in self.volumes),
            "volumes": [{"name": v.name, "size": v.size, "sha256": v.sha256} for v in self.volumes],
        }
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def read_index(archive: str, context: str) -> VolumeIndex:
    """The index next to ``archive``; NotFound when there is none, LocalFormatError when it is not one of ours."""
    path = index_path(archive)
    problem = "is not an index of volumes written by oci.images"
    try:
        with open(path, "rb") as f:
            raw = f.read(4 * 1024 * 1024 + 1)
    except FileNotFoundError:
        raise NotFound("%s: archive %s does not exist, nor its volumes (%s)" % (context, archive, path), context) from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
        problem = "is not valid JSON"
    try:
        if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT or doc.get("version") != 1:
            raise ValueError
        name = os.path.basename(archive)
        volumes = []
        for number, entry in enumerate(doc["volumes"]):
            volume = Volume(str(entry["name"]), int(entry["size"]), str(entry["sha256"]))
            if volume.name != volume_name(name, number) or volume.size < 0 or not re.match(r"^[0-9a-f]{64}$", volume.sha256):
                raise ValueError
            volumes.append(volume)
        if not volumes or len(volumes) > MAX_VOLUMES:
            raise ValueError
        return VolumeIndex(str(doc.get("archive", name)), int(doc["split_size"]), volumes)
    except (KeyError, TypeError, ValueError):
        raise LocalFormatError("%s: %s %s; remove it or choose another path" % (context, path, problem), context) from None


# Volumes found good, by (path, device, inode, size, mtime, sha256): a task that opens the same
# archive several times (inspect, plan, copy) hashes each volume once.
_checked: set[tuple] = set()
_checked_lock = threading.Lock()


def _stat_key(path: str, st: os.stat_result, sha256: str) -> tuple:
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, sha256)


def check_volumes(archive: str, index: VolumeIndex, context: str) -> list[tuple[str, int]]:
    """The volumes' paths and sizes, after finding each present with the size and sha256 the index gives.

    A missing or damaged volume is named, with what to do; sizes are checked for all volumes before any is hashed.
    """
    directory = os.path.dirname(archive)
    paths = [(os.path.join(directory, v.name), v) for v in index.volumes]
    stats = []
    where = "the index %s lists %d" % (os.path.basename(index_path(archive)), len(index.volumes))
    for path, volume in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(
                "%s: volume %s is missing (%s volumes); put it next to the others, or copy the archive again" % (context, path, where), context
            ) from None
        if st.st_size != volume.size:
            raise LocalFormatError(
                "%s: volume %s is damaged: %d bytes where %s says %d; copy that volume again from the original media"
                % (context, path, st.st_size, os.path.basename(index_path(archive)), volume.size),
                context,
            )
        stats.append(st)
    for (path, volume), st in zip(paths, stats):
        key = _stat_key(path, st, volume.sha256)
        with _checked_lock:
            if key in _checked:
                continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda f=f: f.read(_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != volume.sha256:
            raise LocalFormatError(
                "%s: volume %s is damaged: its sha256 is %s where %s says %s; copy that volume again from the original media"
                % (context, path, digest.hexdigest(), os.path.basename(index_path(archive)), volume.sha256),
                context,
            )
        with _checked_lock:
            _checked.add(key)
    return [(path, volume.size) for path, volume in paths]


class JoinedVolumes(ReadOnlyView):
    """The volumes read as one seekable file (one volume open at a time)."""

    def __init__(self, volumes: list[tuple[str, int]]):
        self._volumes = volumes
        self._starts = []
        offset = 0
        for _path, size in volumes:
            self._starts.append(offset)
            offset += size
        super().__init__(offset)
        self._open: tuple[int, io.BufferedReader] | None = None

    def _file(self, number: int) -> io.BufferedReader:
        if self._open is None or self._open[0] != number:
            self.close()
            self._open = (number, open(self._volumes[number][0], "rb"))  # noqa: SIM115 - closed by close()
        return self._open[1]

    def read_at_position(self, n: int) -> bytes:
        parts = []
        pos = self._pos
        while n > 0:
            number = bisect.bisect_right(self._starts, pos) - 1
            start = self._starts[number]
            f = self._file(number)
            f.seek(pos - start)
            data = f.read(min(n, start + self._volumes[number][1] - pos))
            if not data:
                raise LocalFormatError("volume %s ended early; it changed while being read" % self._volumes[number][0])
            parts.append(data)
            pos += len(data)
            n -= len(data)
        return b"".join(parts)

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None


class VolumeWriter:
    """A sink for ``TarStreamWriter`` that writes ``NAME.000``, ``NAME.001``, … of at most ``split_size`` bytes in ``directory``.

    Each volume is hashed as it is written; cutting back (``seek`` then ``truncate``, what the tar
    writer does to drop a member that failed) removes later volumes and hashes the cut one again.
    """

    def __init__(self, directory: str, archive_name: str, split_size: int, context: str):
        self.directory = directory
        self.archive_name = archive_name
        self.split_size = split_size
        self.context = context
        self._volumes: list[list] = []  # [path, size, hash]
        self._file: io.BufferedWriter | None = None
        self._seek_to: int | None = None

    def _total(self) -> int:
        return sum(v[1] for v in self._volumes)

    def _next_volume(self) -> None:
        self._close_current(sync=True)
        if len(self._volumes) >= MAX_VOLUMES:
            raise OCIError(
                "%s: the archive needs more than %d volumes of %d bytes; give a larger split_size" % (self.context, MAX_VOLUMES, self.split_size),
                self.context,
            )
        path = os.path.join(self.directory, volume_name(self.archive_name, len(self._volumes)))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        self._file = os.fdopen(fd, "r+b")
        self._volumes.append([path, 0, hashlib.sha256()])

    def _close_current(self, sync: bool) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            try:
                f.flush()
                if sync:
                    os.fsync(f.fileno())
            finally:
                f.close()

    def write(self, data: bytes) -> int:
        if self._seek_to is not None and self._seek_to != self._total():
            raise io.UnsupportedOperation("a volume writer only writes at its end")
        self._seek_to = None
        view = memoryview(data)
        while view:
            if self._file is None or self._volumes[-1][1] >= self.split_size:
                self._next_volume()
            volume = self._volumes[-1]
            part = view[: self.split_size - volume[1]]
            self._file.write(part)  # type: ignore[union-attr]
            volume[1] += len(part)
            volume[2].update(part)
            view = view[len(part) :]
        return len(data)

    def tell(self) -> int:
        return self._total() if self._seek_to is None else self._seek_to

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0:
            raise io.UnsupportedOperation("a volume writer seeks to absolute positions only")
        self._seek_to = min(max(pos, 0), self._total())
        return self._seek_to

    def truncate(self) -> None:
        """Cut everything after the position ``seek`` gave."""
        pos = self.tell()
        self._seek_to = None
        self._close_current(sync=False)
        start = 0
        kept = []
        for volume in self._volumes:
            if start >= pos and kept:
                remove_path(volume[0])
                continue
            if start + volume[1] > pos:
                volume[1] = pos - start
                volume[2] = hashlib.sha256()
                with open(volume[0], "r+b") as f:
                    f.truncate(volume[1])
                    for chunk in iter(lambda f=f: f.read(_CHUNK), b""):
                        volume[2].update(chunk)
            kept.append(volume)
            start += volume[1]
        self._volumes = kept
        if kept:
            self._file = open(kept[-1][0], "r+b")  # noqa: SIM115 - closed by close() or the next volume
            self._file.seek(0, 2)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._close_current(sync=False)

    def index(self) -> VolumeIndex:
        volumes = [Volume(os.path.basename(path), size, digest.hexdigest()) for path, size, digest in self._volumes]
        return VolumeIndex(self.archive_name, self.split_size, volumes)


class SplitArchiveFile:
    """The archive at PATH written as volumes: built in a temporary directory next to PATH, put in place on commit.

    Same interface as ``_tar.ArchiveFile``. On commit the volumes are renamed into place, then the
    index (the last step: a reader that sees it finds the volumes it lists), then what a previous
    write left that is no longer part of the archive is removed: volumes past the new last one,
    and an unsplit archive at PATH.
    """

    form = "split"

    def __init__(self, path: str, split_size: int, kind: str, recognize: Callable[[str], bool], context: str):
        self.path = os.path.realpath(path)
        self.split_size = split_size
        self.kind = kind
        self.context = context
        self._recognize = recognize
        self.staging = Staging(lambda: existing_parent(self.path, self.context))
        self._writer: VolumeWriter | None = None

    def _refuse_strangers(self) -> VolumeIndex | None:
        """The current index (None when there is none); refuses an index or an archive at PATH this must not replace."""
        existing_parent(self.path, self.context)
        if os.path.isdir(self.path):
            raise LocalFormatError("%s: %s is a directory, not a %s file; choose another path" % (self.context, self.path, self.kind), self.context)
        if os.path.isfile(self.path) and os.path.getsize(self.path) > 0:
            try:
                recognized = self._recognize(self.path)
            except LocalFormatError:
                recognized = False
            if not recognized:
                raise LocalFormatError(
                    "%s: %s exists and is not a %s; refusing to replace it with volumes: remove it or choose another path"
                    % (self.context, self.path, self.kind),
                    self.context,
                )
        if not has_volumes(self.path):
            return None
        return read_index(self.path, self.context)

    def exists(self) -> bool:
        """True when PATH's volumes are in place, whole, of the asked size, and no unsplit archive is beside them."""
        index = self._refuse_strangers()
        if index is None or index.split_size != self.split_size or os.path.lexists(self.path):
            return False
        try:
            check_volumes(self.path, index, self.context)
        except (NotFound, LocalFormatError):
            return False  # written again in full
        return True

    def open_tar(self):
        from ._tar import TarStreamWriter  # _tar imports this module

        temp = self.staging.path()
        self._writer = VolumeWriter(temp, os.path.basename(self.path), self.split_size, self.context)
        return TarStreamWriter(self._writer, os.path.join(temp, os.path.basename(self.path))), temp

    def commit(self) -> None:
        temp = self.staging.current
        if temp is None or self._writer is None:
            raise OCIError("%s: nothing to commit: no archive was written" % self.context, self.context)
        old = self._refuse_strangers()
        index = self._writer.index()
        directory = os.path.dirname(self.path)
        for volume in index.volumes:
            os.replace(os.path.join(temp, volume.name), os.path.join(directory, volume.name))
        sync_directory(directory)
        replace_file(index_path(self.path), index.to_bytes())
        sync_directory(directory)
        keep = {v.name for v in index.volumes}
        stale = {v.name for v in old.volumes} if old else set()
        pattern = re.compile(re.escape(os.path.basename(self.path)) + r"\.\d{3}$")
        stale.update(name for name in os.listdir(directory) if pattern.match(name))
        for name in sorted(stale - keep):
            remove_path(os.path.join(directory, name))
        if os.path.isfile(self.path):
            remove_path(self.path)  # recognized above as an archive of this kind: now out of date
        self.staging.abort()  # the emptied temporary directory

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.staging.abort()


def remove_volumes(archive: str) -> None:
    """Remove the index and volumes of ``archive`` (an unsplit archive was just written there)."""
    try:
        index = read_index(archive, archive)
    except OCIError:
        return  # not ours: left alone
    remove_path(index_path(archive))
    directory = os.path.dirname(archive)
    for volume in index.volumes:
        remove_path(os.path.join(directory, volume.name))
