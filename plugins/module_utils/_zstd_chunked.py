# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zstd:chunked layers: written, and checked when read.

A zstd:chunked layer is an ordinary ``tar+zstd`` layer (any zstd reader gets the same tar) laid out so
that each file's content is its own run of zstd frames, followed by two skippable frames: the table of
contents (TOC: JSON, zstd-compressed, one entry per tar entry with the compressed offsets of its content
and its sha256) and a footer repeating where the TOC is. The layer descriptor carries the TOC's position
and digest as annotations, which lets podman fetch only the files it lacks.

Written as containers/storage 1.43 writes it (the version skopeo 1.9 and podman 4.3 use): TOC version 1,
annotations ``io.containers.zstd-chunked.manifest-checksum`` and ``...manifest-position``
(``offset:length:uncompressed length:1``), a 40-byte footer ending in ``GnUlInUx``. Files are not split
into content-defined chunks (a file is one chunk, which the format allows). Read in that layout and in the
later one (``io.github.containers.zstd-chunked.*`` annotations, a tar-split frame, a 64-byte footer).

Reading checks that the TOC tells the truth: its position and digest match the annotations and the footer,
and each file it lists starts and ends at a frame boundary at the offsets it gives, with the content
(size and sha256) it gives. A lying TOC is an OCIError; nothing is written from such a layer.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import struct
from typing import BinaryIO

from . import _media
from ._compression import DEFAULT_LEVEL, ZSTD_CHUNKED, _Reader, zstandard
from ._convert import go_json
from ._errors import OCIError

_BLOCK = 512
_CHUNK = 1024 * 1024
_SKIPPABLE_MAGIC = struct.pack("<I", 0x184D2A50)
_FOOTER_MAGIC_V1 = b"GnUlInUx"  # containers/storage up to 1.4x
_FOOTER_MAGIC_V2 = b"GNUlInUx"  # later, with the tar-split frame
_FOOTER_V1 = 40
_FOOTER_V2 = 64
_MANIFEST_TYPE_CRFS = 1
#: Extended headers (PAX, GNU long names) larger than this are refused, as Go's archive/tar does.
_MAX_SPECIAL = 1024 * 1024
#: A TOC larger than this is refused (containers/storage's limit is 50 MiB).
MAX_TOC = 50 * 1024 * 1024

_TYPES = {b"0": "reg", b"\x00": "reg", b"1": "hardlink", b"2": "symlink", b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo"}
_HEADER_ONLY = (b"1", b"2", b"3", b"4", b"5", b"6")
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_EPOCH = datetime.datetime(1970, 1, 1)


def _go_time(seconds: int, nanos: int = 0) -> str:
    """A Unix time as Go's time.Time marshals it (RFC 3339 with trailing zeros of the fraction dropped, UTC)."""
    moment = _EPOCH + datetime.timedelta(seconds=seconds)
    fraction = ("%09d" % nanos).rstrip("0") if nanos else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ("." + fraction if fraction else "") + "Z"


def _pax_time(value: str) -> tuple[int, int]:
    whole, _unused, fraction = value.partition(".")
    seconds = int(whole)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    if whole.startswith("-") and nanos:
        seconds, nanos = seconds - 1, 1000000000 - nanos
    return seconds, nanos


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU): big-endian, sign in the second-highest bit
        value = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        return value - (1 << (8 * len(field) - 1)) if field[0] & 0x40 else value
    text = field.split(b"\x00", 1)[0].strip(b" \x00")
    return int(text, 8) if text else 0


def _cstring(field: bytes) -> bytes:
    return field.split(b"\x00", 1)[0]


class TarEntry:
    """One tar entry as Go's archive/tar reads it (what a zstd:chunked TOC entry describes)."""

    def __init__(self) -> None:
        self.name = ""
        self.linkname = ""
        self.typeflag = b"0"
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.size = 0
        self.mtime: tuple[int, int] = (0, 0)
        self.atime: tuple[int, int] | None = None
        self.ctime: tuple[int, int] | None = None
        self.devmajor = 0
        self.devminor = 0
        self.xattrs: dict[str, bytes] = {}
        #: Offset of the content in the uncompressed stream.
        self.data_offset = 0

    @property
    def data_size(self) -> int:
        return 0 if self.typeflag in _HEADER_ONLY else self.size

    def toc_entry(self) -> dict:
        """The TOC entry containers/storage 1.43 writes for this entry (without digest and offsets)."""
        kind = _TYPES.get(self.typeflag)
        entry: dict = {"type": kind, "name": self.name}
        if self.linkname:
            entry["linkName"] = self.linkname
        for key, value in (("mode", self.mode), ("size", self.size), ("uid", self.uid), ("gid", self.gid)):
            if value:
                entry[key] = value
        entry["modtime"] = _go_time(*self.mtime)
        entry["accesstime"] = _go_time(*self.atime) if self.atime else _GO_ZERO_TIME
        entry["changetime"] = _go_time(*self.ctime) if self.ctime else _GO_ZERO_TIME
        if self.devmajor:
            entry["devMajor"] = self.devmajor
        if self.devminor:
            entry["devMinor"] = self.devminor
        if self.xattrs:
            entry["xattrs"] = {k: base64.b64encode(self.xattrs[k]).decode("ascii") for k in sorted(self.xattrs)}
        return entry


class TarScanner:
    """A tar stream pushed in with ``feed``; the sink hears ``raw(bytes)`` for headers and padding, ``entry(TarEntry)``
    when an entry's content starts, ``content(bytes)`` for the content, ``entry_end()`` after it. Damage is an OCIError."""

    def __init__(self, context: str, what: str, sink):
        self._context = context
        self._what = what
        self._sink = sink
        self._buf = bytearray()
        self._state = "header"
        self._left = 0
        self._pad = 0
        self._special: bytes = b""
        self._special_kind = b""
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._offset = 0  # uncompressed offset of what is fed next from _buf
        self.entries = 0

    def _fail(self, why: str) -> OCIError:
        return OCIError("%s: %s is not a valid tar stream: %s" % (self._context, self._what, why), self._context)

    def feed(self, data) -> None:
        view = memoryview(data)
        while len(view):
            if self._state == "content":
                n = min(self._left, len(view))
                self._sink.content(view[:n])
                view = view[n:]
                self._offset += n
                self._left -= n
                if not self._left:
                    self._end_content()
                continue
            if self._state == "trailer":
                self._sink.raw(view)
                self._offset += len(view)
                return
            need = self._left if self._state in ("special", "pad") else _BLOCK
            take = min(need - len(self._buf), len(view))
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) < need:
                return
            block, self._buf = bytes(self._buf), bytearray()
            if self._state == "header":
                self._header(block)  # emits the block once it is known to be a header
                continue
            self._sink.raw(block)
            self._offset += len(block)
            if self._state == "pad":
                self._state = "header"
            else:
                self._special_done(block)

    def _end_content(self) -> None:
        self._sink.entry_end()
        self._state = "pad" if self._pad else "header"
        self._left = self._pad

    def _header(self, block: bytes) -> None:
        at = self._offset
        try:
            self._parse_header(block)
        except ValueError:
            raise self._fail("the header at byte %d has a field that is not a number" % at) from None

    def _parse_header(self, block: bytes) -> None:
        if block == b"\x00" * _BLOCK:
            self._emit_header(block)
            self._state = "trailer"  # the end-of-archive marker and whatever follows it stay as they are
            return
        try:
            stored = _number(block[148:156])
        except ValueError:
            stored = -1
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        signed = sum(b - 256 if b > 127 else b for b in block[:148]) + 8 * 32 + sum(b - 256 if b > 127 else b for b in block[156:])
        if stored not in (unsigned, signed):
            raise self._fail("the header at byte %d has a wrong checksum" % self._offset)
        self._emit_header(block)
        typeflag = block[156:157]
        size = _number(block[124:136])
        if typeflag in (b"x", b"L", b"K"):
            if not 0 <= size <= _MAX_SPECIAL:
                raise self._fail("an extended header at byte %d is %d bytes" % (self._offset - _BLOCK, size))
            self._special_kind = typeflag
            self._special_size = size
            self._state = "special"
            self._left = (size + _BLOCK - 1) // _BLOCK * _BLOCK
            if not self._left:
                self._special_done(b"")
            return
        if typeflag not in _TYPES:
            raise self._fail("entry type %r at byte %d has no zstd:chunked equivalent" % (typeflag.decode("latin-1"), self._offset - _BLOCK))
        entry = TarEntry()
        magic, version = block[257:263], block[263:265]
        gnu = magic == b"ustar " and version == b" \x00"
        name = _cstring(block[0:100])
        if magic == b"ustar\x00" and block[345:346] != b"\x00":
            name = _cstring(block[345:500]) + b"/" + name
        entry.name = self._long_name if self._long_name is not None else name.decode("utf-8", "replace")
        entry.linkname = self._long_link if self._long_link is not None else _cstring(block[157:257]).decode("utf-8", "replace")
        entry.mode = _number(block[100:108])
        entry.uid = _number(block[108:116])
        entry.gid = _number(block[116:124])
        entry.size = size
        entry.mtime = (_number(block[136:148]), 0)
        if magic in (b"ustar\x00", b"ustar "):
            entry.devmajor = _number(block[329:337])
            entry.devminor = _number(block[337:345])
        if gnu:
            if block[345] != 0:
                entry.atime = (_number(block[345:357]), 0)
            if block[357] != 0:
                entry.ctime = (_number(block[357:369]), 0)
        self._apply_pax(entry)
        if typeflag == b"\x00" and entry.name.endswith("/"):
            typeflag = b"5"  # Go reads old archives' trailing slash as a directory
        entry.typeflag = typeflag
        if entry.size < 0:
            raise self._fail("entry %s has a negative size" % entry.name)
        self._pax, self._long_name, self._long_link = {}, None, None
        entry.data_offset = self._offset
        self.entries += 1
        self._sink.entry(entry)
        self._left = entry.data_size
        self._pad = -self._left % _BLOCK
        if self._left:
            self._state = "content"
        else:
            self._end_content()

    def _emit_header(self, block: bytes) -> None:
        self._sink.raw(block)
        self._offset += len(block)

    def _apply_pax(self, entry: TarEntry) -> None:
        for key, value in self._pax.items():
            try:
                if key == "path":
                    entry.name = value
                elif key == "linkpath":
                    entry.linkname = value
                elif key in ("size", "uid", "gid"):
                    setattr(entry, key, int(value))
                elif key in ("mtime", "atime", "ctime"):
                    setattr(entry, key, _pax_time(value))
                elif key.startswith("SCHILY.xattr."):
                    entry.xattrs[key[len("SCHILY.xattr.") :]] = value.encode("utf-8", "surrogateescape")
                elif key.startswith("GNU.sparse."):
                    raise self._fail("%s is a sparse file, which zstd:chunked cannot describe" % entry.name)
            except ValueError:
                raise self._fail("PAX record %s=%r is not a number" % (key, value)) from None

    def _special_done(self, block: bytes) -> None:
        data = block[: self._special_size]
        if self._special_kind == b"L":
            self._long_name = _cstring(data).decode("utf-8", "replace")
        elif self._special_kind == b"K":
            self._long_link = _cstring(data).decode("utf-8", "replace")
        else:
            self._pax.update(self._parse_pax(data))
        self._state = "header"

    def _parse_pax(self, data: bytes) -> dict[str, str]:
        records: dict[str, str] = {}
        while data:
            length_text, space, _unused = data.partition(b" ")
            try:
                length = int(length_text)
            except ValueError:
                length = 0
            if not space or length <= len(length_text) + 1 or length > len(data) or data[length - 1 : length] != b"\n":
                raise self._fail("a PAX header is malformed")
            key, equals, value = data[len(length_text) + 1 : length - 1].partition(b"=")
            if not equals:
                raise self._fail("a PAX record has no '='")
            records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
            data = data[length:]
        return records

    def finish(self) -> None:
        # Like Go's reader, an archive may also end cleanly right after an entry, without the marker.
        if self._state != "trailer" and (self._state != "header" or self._buf):
            raise self._fail("it ends in the middle of an entry")


def _skippable(data: bytes) -> bytes:
    return _SKIPPABLE_MAGIC + struct.pack("<I", len(data)) + data


class ChunkedCompressReader(_Reader):
    """Reads a tar stream and yields it as a zstd:chunked layer; ``annotations`` is set once the end is read."""

    def __init__(self, stream: BinaryIO, context: str, level: int | None = None):
        super().__init__(stream)
        self._zstd = zstandard(context)
        self._context = context
        self._cctx = self._zstd.ZstdCompressor(level=DEFAULT_LEVEL[ZSTD_CHUNKED] if level is None else level, write_checksum=True)
        self._frame = self._cctx.compressobj()
        self._written = 0  # bytes written to the current frame
        self._count = 0  # bytes produced so far
        self._toc: list[dict] = []
        self._current: dict | None = None
        self._hasher = None
        self._start = 0
        self._scanner = TarScanner(context, "layer", self)
        self.annotations: dict[str, str] | None = None

    # --- the scanner's sink ------------------------------------------------------------------
    def _emit(self, data: bytes) -> None:
        if data:
            self._out += data
            self._count += len(data)

    def _restart(self) -> int:
        """Close the current frame; the offset where the next one starts."""
        self._emit(self._frame.flush(self._zstd.COMPRESSOBJ_FLUSH_FINISH))
        self._frame = self._cctx.compressobj()
        self._written = 0
        return self._count

    def raw(self, data) -> None:
        self._emit(self._frame.compress(data))
        self._written += len(data)

    def entry(self, entry: TarEntry) -> None:
        self._current = entry.toc_entry()
        if entry.data_size:
            self._start = self._restart()
            self._hasher = hashlib.sha256()

    def content(self, data) -> None:
        self._emit(self._frame.compress(data))
        self._hasher.update(data)

    def entry_end(self) -> None:
        entry = self._current
        if self._hasher is not None:
            end = self._restart()
            entry["digest"] = "sha256:" + self._hasher.hexdigest()
            entry["offset"] = self._start
            entry["endOffset"] = end
            self._hasher = None
        self._toc.append(entry)

    # --- the reader ----------------------------------------------------------------------------
    def _more(self, want: int) -> None:
        chunk = self._stream.read(_CHUNK)
        if chunk:
            self._scanner.feed(chunk)
            return
        self._scanner.finish()
        self._restart()
        self._write_toc()
        self._eof = True

    def _write_toc(self) -> None:
        toc = go_json({"version": 1, "entries": self._toc})
        compressed = self._cctx.compress(toc)
        offset = self._count + 8
        self.annotations = {
            _media.ZSTD_CHUNKED_MANIFEST_CHECKSUM: "sha256:" + hashlib.sha256(compressed).hexdigest(),
            _media.ZSTD_CHUNKED_MANIFEST_POSITION: "%d:%d:%d:%d" % (offset, len(compressed), len(toc), _MANIFEST_TYPE_CRFS),
        }
        footer = struct.pack("<QQQQ", offset, len(compressed), len(toc), _MANIFEST_TYPE_CRFS) + _FOOTER_MAGIC_V1
        self._emit(_skippable(compressed))
        self._emit(_skippable(footer))


def toc_annotations(annotations: dict | None) -> tuple[str, str] | None:
    """(checksum, position) of a layer descriptor's zstd:chunked annotations (either generation), or None."""
    annotations = annotations or {}
    for checksum_key, position_key in _media.ZSTD_CHUNKED_ANNOTATIONS:
        if checksum_key in annotations and position_key in annotations:
            return annotations[checksum_key], annotations[position_key]
    return None


class TocCheck:
    """Watches a zstd:chunked layer being decompressed (frames, skippable frames, output) and, at its end,
    checks its TOC against what the layer really holds (see the module docstring)."""

    def __init__(self, context: str, digest: str, annotations: dict):
        self._context = context
        self._digest = digest
        checksum, position = toc_annotations(annotations) or ("", "")
        self._checksum = checksum
        try:
            parts = [int(p) for p in position.split(":")]
        except ValueError:
            parts = []
        if len(parts) != 4 or parts[3] != _MANIFEST_TYPE_CRFS or min(parts) < 0:
            raise self._fail("its TOC position annotation %r is not offset:length:uncompressed length:1" % position)
        self._position = parts
        self._frame_at: dict[int, int] = {}  # compressed offset of each data frame -> uncompressed offset
        self._skippable: dict[int, bytes | None] = {}  # offset of each skippable frame's content -> content
        self._files: list[tuple[TarEntry, str]] = []
        self._hasher = None
        self._current: TarEntry | None = None
        self._out = 0
        self._scanner = TarScanner(context, "layer %s" % digest, self)

    def _fail(self, why: str) -> OCIError:
        return OCIError("%s: zstd:chunked layer %s: %s; refusing to copy it" % (self._context, self._digest, why), self._context)

    # --- from the frame walker ------------------------------------------------------------------
    def frame(self, offset: int) -> None:
        self._frame_at[offset] = self._out

    def skippable(self, offset: int, data: bytes | None) -> None:
        self._skippable[offset + 8] = data

    def output(self, data: bytes) -> None:
        self._out += len(data)
        self._scanner.feed(data)

    # --- from the tar scanner -------------------------------------------------------------------
    def raw(self, data) -> None:
        pass

    def entry(self, entry: TarEntry) -> None:
        self._current = entry
        self._hasher = hashlib.sha256() if entry.data_size else None

    def content(self, data) -> None:
        self._hasher.update(data)

    def entry_end(self) -> None:
        self._files.append((self._current, "sha256:" + self._hasher.hexdigest() if self._hasher else ""))

    # --- the verdict ----------------------------------------------------------------------------
    def finish(self, frames) -> None:
        self._scanner.finish()
        offset, length, uncompressed, _unused = self._position
        toc_bytes = self._skippable.get(offset)
        if toc_bytes is None or len(toc_bytes) != length:
            raise self._fail("its annotations place the TOC at byte %d (%d bytes), where the layer has no such frame" % (offset, length))
        if "sha256:" + hashlib.sha256(toc_bytes).hexdigest() != self._checksum:
            raise self._fail("its TOC does not match the digest its annotation gives (%s)" % self._checksum)
        self._check_footer(offset, length, uncompressed)
        if length > MAX_TOC or uncompressed > MAX_TOC:
            raise self._fail("its TOC is %d bytes, over the %d-byte limit" % (max(length, uncompressed), MAX_TOC))
        zstd = zstandard(self._context)
        try:
            text = zstd.ZstdDecompressor().decompress(toc_bytes, max_output_size=uncompressed)
            toc = json.loads(text)
        except (zstd.ZstdError, ValueError) as exc:
            raise self._fail("its TOC cannot be read (%s)" % exc) from None
        if len(text) != uncompressed or not isinstance(toc, dict) or not isinstance(toc.get("entries"), list):
            raise self._fail("its TOC is not a TOC of the size its annotation gives")
        self._check_entries(toc["entries"], frames.data_end)

    def _check_footer(self, offset: int, length: int, uncompressed: int) -> None:
        footers = [data for data in self._skippable.values() if data is not None and len(data) in (_FOOTER_V1, _FOOTER_V2)]
        footer = footers[-1] if footers else b""
        if footer[-8:] not in (_FOOTER_MAGIC_V1, _FOOTER_MAGIC_V2):
            raise self._fail("it has no zstd:chunked footer")
        if struct.unpack("<QQQ", footer[:24]) != (offset, length, uncompressed):
            raise self._fail("its footer and its annotations place the TOC differently")

    def _check_entries(self, entries: list, data_end: int) -> None:
        files = iter(self._files)
        payload_at = self._frame_at  # compressed offset of a frame -> where its output starts in the tar
        current = None
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise self._fail("TOC entry %d is not an entry" % position)
            if entry.get("type") == "chunk":
                self._check_chunk(entry, current, payload_at)
                continue
            current = next(files, None)
            if current is None or current[0].name != entry["name"]:
                raise self._fail("TOC entry %d names %r, but the tar's next entry is %r" % (position, entry["name"], current[0].name if current else None))
            tar_entry, digest = current
            size = tar_entry.data_size
            if not size:
                continue
            offset, end = entry.get("offset"), entry.get("endOffset")
            if entry.get("size") != tar_entry.size or entry.get("digest") != digest:
                raise self._fail("the TOC gives %s a size or digest its content does not have" % entry["name"])
            if payload_at.get(offset) != tar_entry.data_offset:
                raise self._fail("the TOC says %s starts at byte %r, but its content does not start a frame there" % (entry["name"], offset))
            after = payload_at.get(end) if end in payload_at else (self._out if end == data_end else None)
            if after != tar_entry.data_offset + size:
                raise self._fail("the TOC says %s ends at byte %r, but its content does not end at a frame boundary there" % (entry["name"], end))
        if next(files, None) is not None:
            raise self._fail("the TOC leaves out entries the tar holds")

    def _check_chunk(self, entry: dict, current, payload_at: dict) -> None:
        if current is None or current[0].name != entry["name"]:
            raise self._fail("a TOC chunk of %r does not follow its file" % entry["name"])
        tar_entry = current[0]
        at = payload_at.get(entry.get("offset"))
        if at is None or at != tar_entry.data_offset + (entry.get("chunkOffset") or 0):
            raise self._fail("the TOC places a chunk of %s at byte %r, where its content is not" % (entry["name"], entry.get("offset")))
