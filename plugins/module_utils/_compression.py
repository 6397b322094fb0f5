# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming (de)compression of layers: gzip (zlib) and zstd (the ``zstandard`` library, imported only when
a zstd layer is met). Every reader here holds at most a block or a chunk, never a whole layer.

zstd streams are walked frame by frame and block by block (RFC 8878), so a frame's compressed offset is
known (zstd:chunked names files by those offsets, see ``_zstd_chunked``) and one call never inflates more
than one block (128 KiB) however well the data compresses.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Callable

from ._errors import OCIError, Unsupported
from ._media import layer_compression

_CHUNK = 1024 * 1024

GZIP = "gzip"
ZSTD = "zstd"
ZSTD_CHUNKED = "zstd:chunked"
#: What ``compression`` can ask for.
ALGORITHMS = (GZIP, ZSTD, ZSTD_CHUNKED)
#: Levels each algorithm takes (zlib's and zstd's own ranges), and the defaults. zstd: 3, as containers/image. gzip: 1,
#: because containers/image's own gzip (klauspost/pgzip) at its default level writes layers about the size zlib
#: writes at level 1 (measured: 46.3 MB where zlib level 1 writes 45.0 MB, level 6 43.3 MB), and zlib's level 1 is
#: twice as fast as its level 6.
LEVELS = {GZIP: (0, 9), ZSTD: (1, 22), ZSTD_CHUNKED: (1, 22)}
DEFAULT_LEVEL = {GZIP: 1, ZSTD: 3, ZSTD_CHUNKED: 3}

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_ZSTD_FRAME = 0xFD2FB528
_SKIPPABLE_MIN, _SKIPPABLE_MAX = 0x184D2A50, 0x184D2A5F
_BLOCK_MAX = 128 * 1024
#: Skippable frames larger than this are skipped without being kept (a zstd:chunked TOC is far smaller).
SKIPPABLE_KEEP_LIMIT = 64 * 1024 * 1024


def detect_compression(head: bytes) -> str | None:
    """``gzip``/``bzip2``/``xz``/``zstd`` from a stream's first bytes, or None for uncompressed."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    # A zstd:chunked layer may start with a skippable frame; zstd readers skip it.
    if len(head) >= 4 and _SKIPPABLE_MIN <= struct.unpack("<I", head[:4])[0] <= _SKIPPABLE_MAX:
        return "zstd"
    return None


def zstandard(context: str):
    """The ``zstandard`` module; a message saying what is missing when it is not installed."""
    try:
        import zstandard as module
    except ImportError:
        raise Unsupported(
            "%s: zstd layers need the Python library zstandard (pip install zstandard) on the host the module runs on; "
            "it is in the collection's requirements.txt and execution environment" % context,
            context,
        ) from None
    return module


def check_level(algorithm: str, level: int | None) -> None:
    """Refuse a compression level the algorithm does not have, before anything is read."""
    if level is None:
        return
    low, high = LEVELS[algorithm]
    if not low <= level <= high:
        raise OCIError("compression_level %d is not a %s level: use %d to %d" % (level, algorithm, low, high))


class _Reader:
    """What the readers here share: a buffer handed out by ``read(n)``, ``close`` passed down."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._out = bytearray()
        self._eof = False

    def _more(self, want: int) -> None:
        raise NotImplementedError

    def read(self, n: int = -1) -> bytes:
        whole = n is None or n < 0
        want = _CHUNK if whole else n
        while (whole or len(self._out) < want) and not self._eof:
            self._more(_CHUNK if whole else want - len(self._out))
        if whole:
            data, self._out = bytes(self._out), bytearray()
            return data
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close:
            close()


class GunzipReader(_Reader):
    """Reads a gzip stream and yields the uncompressed bytes, never holding the whole layer.

    At the end of the gzip data it drains the underlying stream, so a VerifyingReader below
    checks the compressed digest too.
    """

    def __init__(self, stream: BinaryIO, context: str):
        super().__init__(stream)
        self._context = context
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""

    def _more(self, want: int) -> None:
        chunk = self._pending or self._stream.read(_CHUNK)
        self._pending = b""
        if self._inflater.eof:
            if not chunk:
                self._eof = True
                return
            # Concatenated gzip members are legal (Go's reader accepts them too).
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif not chunk:
            raise OCIError("%s: layer ends in the middle of its gzip stream" % self._context, self._context)
        try:
            self._out += self._inflater.decompress(chunk)
        except zlib.error as exc:
            raise OCIError("%s: layer is not valid gzip data (%s)" % (self._context, exc), self._context) from None
        if self._inflater.eof:
            self._pending = self._inflater.unused_data


class GzipCompressReader(_Reader):
    """Reads a stream and yields it gzip-compressed (default level 1, see ``DEFAULT_LEVEL``), on every core.

    Like pigz: the input is cut into 1 MiB blocks, each deflated on its own (primed with the 32 KiB before it, so
    little is lost) and ended with a sync flush, in parallel; the blocks, an empty final block and the CRC make one
    ordinary gzip member. Block boundaries do not depend on the number of threads, so the same input gives the same
    bytes on every machine (no name, mtime 0).
    """

    _BLOCK = 1024 * 1024
    _WINDOW = 32 * 1024

    def __init__(self, stream: BinaryIO, level: int | None = None):
        super().__init__(stream)
        self._level = DEFAULT_LEVEL[GZIP] if level is None else level
        self._crc = 0
        self._size = 0
        self._tail = b""
        self._pending: list = []
        self._pool = None
        self._input_done = False
        self._workers = max(1, min(os.cpu_count() or 1, 8))
        # gzip header: magic, deflate, no flags, mtime 0, extra flags as zlib sets them for the level, OS unix
        self._out += b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + (b"\x02" if self._level == 9 else b"\x04" if self._level < 2 else b"\x00") + b"\x03"

    def _deflate(self, block: bytes, dictionary: bytes) -> bytes:
        if dictionary:
            deflater = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=dictionary)
        else:
            deflater = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS)
        return deflater.compress(block) + deflater.flush(zlib.Z_SYNC_FLUSH)

    def _more(self, want: int) -> None:
        workers = self._workers
        # Twice as many blocks in flight as workers, so none waits while this thread reads the next block.
        while not self._input_done and len(self._pending) < 2 * workers:
            block = self._stream.read(self._BLOCK)
            if not block:
                self._input_done = True
                break
            self._crc = zlib.crc32(block, self._crc)
            self._size += len(block)
            dictionary, self._tail = self._tail, (self._tail + block)[-self._WINDOW :]
            if workers == 1:
                self._pending.append(self._deflate(block, dictionary))
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oci-images-gzip")
            self._pending.append(self._pool.submit(self._deflate, block, dictionary))
        if self._pending:
            done = self._pending.pop(0)
            self._out += done if isinstance(done, bytes) else done.result()
            return
        self._out += zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)
        self._out += struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)
        self._eof = True
        self.close_pool()

    def close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self.close_pool()
        super().close()


class ZstdFrames:
    """A zstd stream walked frame by frame and block by block, pushed in with ``feed`` and worked by ``pump``.

    ``on_output(data)`` gets the uncompressed bytes, at most one block per call; ``on_frame(offset)`` the
    compressed offset of each data frame as it starts; ``on_skippable(offset, data)`` each skippable frame
    (``data`` None when larger than ``SKIPPABLE_KEEP_LIMIT``). Damage is an OCIError naming ``context``.
    """

    def __init__(self, context: str, what: str, on_output: Callable[[bytes], None], on_frame=None, on_skippable=None):
        self._zstd = zstandard(context)
        self._context = context
        self._what = what
        self._on_output = on_output
        self._on_frame = on_frame
        self._on_skippable = on_skippable
        self._dctx = self._zstd.ZstdDecompressor()
        self._frame = None  # the decompressobj of the data frame being read
        self._buf = bytearray()
        self._at = 0  # stream offset of _buf[0]
        self._state = "magic"
        self._checksum = False
        self._skip_left = 0
        self._skip_start = 0
        self._skip_data: bytearray | None = None
        self.frames = 0
        #: Stream offset where the last data frame ended (after it, only skippable frames so far).
        self.data_end = 0
        self.offset_out = 0

    def _fail(self, why: str) -> OCIError:
        return OCIError("%s: %s is not valid zstd data: %s" % (self._context, self._what, why), self._context)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def pump(self, budget: int) -> int:
        """Work through what was fed until ``budget`` uncompressed bytes came out or more input is needed."""
        produced = 0
        while produced < budget:
            step = self._step()
            if step < 0:
                break
            produced += step
        return produced

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._at += n
        return data

    def _decompress(self, data: bytes) -> int:
        try:
            out = self._frame.decompress(data)
        except self._zstd.ZstdError as exc:
            raise self._fail("a frame is corrupt at byte %d (%s)" % (self._at, exc)) from None
        if out:
            self.offset_out += len(out)
            self._on_output(out)
        return len(out)

    def _step(self) -> int:
        """One unit of work: uncompressed bytes produced (0 for none), or -1 when more input is needed."""
        buf = self._buf
        if self._state == "skip":
            if not buf:
                return -1
            n = min(self._skip_left, len(buf))
            if self._skip_data is not None:
                self._skip_data += buf[:n]
            del buf[:n]
            self._at += n
            self._skip_left -= n
            if not self._skip_left:
                self._state = "magic"
                if self._on_skippable:
                    self._on_skippable(self._skip_start, bytes(self._skip_data) if self._skip_data is not None else None)
                self._skip_data = None
            return 0
        if self._state == "magic":
            if len(buf) < 4:
                return -1
            magic = struct.unpack("<I", buf[:4])[0]
            if _SKIPPABLE_MIN <= magic <= _SKIPPABLE_MAX:
                if len(buf) < 8:
                    return -1
                self._skip_start = self._at
                self._skip_left = struct.unpack("<I", buf[4:8])[0]
                self._skip_data = bytearray() if self._skip_left <= SKIPPABLE_KEEP_LIMIT else None
                self._take(8)
                self._state = "skip"
                if not self._skip_left:
                    self._skip_left = 0
                    self._state = "magic"
                    if self._on_skippable:
                        self._on_skippable(self._skip_start, b"")
                return 0
            if magic != _ZSTD_FRAME:
                raise self._fail("byte %d starts neither a zstd frame nor a skippable frame" % self._at)
            if len(buf) < 5:
                return -1
            descriptor = buf[4]
            if descriptor & 0x08:
                raise self._fail("a frame header at byte %d sets a reserved bit" % self._at)
            single_segment = (descriptor >> 5) & 1
            size_field = (0 if not single_segment else 1, 2, 4, 8)[descriptor >> 6]
            header = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3] + size_field
            if len(buf) < header:
                return -1
            self._checksum = bool(descriptor & 0x04)
            self.frames += 1
            if self._on_frame:
                self._on_frame(self._at)
            self._frame = self._dctx.decompressobj()
            self._state = "block"
            return self._decompress(self._take(header))
        if self._state == "block":
            if len(buf) < 3:
                return -1
            block = buf[0] | buf[1] << 8 | buf[2] << 16
            last, kind, size = block & 1, (block >> 1) & 3, block >> 3
            if kind == 3:
                raise self._fail("a block at byte %d has the reserved type" % self._at)
            if size > _BLOCK_MAX:
                raise self._fail("a block at byte %d declares %d bytes, over the 128 KiB block limit" % (self._at, size))
            length = 3 + (1 if kind == 1 else size)
            if len(buf) < length:
                return -1
            out = self._decompress(self._take(length))
            if last:
                self._state = "checksum" if self._checksum else "end"
            return out
        if self._state == "checksum":
            if len(buf) < 4:
                return -1
            out = self._decompress(self._take(4))
            self._state = "end"
            return out
        # "end": the frame is complete
        if not self._frame.eof:
            raise self._fail("a frame ending at byte %d is incomplete" % self._at)
        self._frame = None
        self.data_end = self._at
        self._state = "magic"
        return 0

    def finish(self) -> None:
        """The input ended: it must end between frames, after at least one data frame."""
        self.pump(1 << 62)
        if self._state == "end":
            self._step()
        if self._state != "magic" or self._buf:
            raise self._fail("it ends in the middle of a frame (truncated at byte %d)" % (self._at + len(self._buf)))
        if not self.frames:
            raise self._fail("it holds no zstd frame")


class ZstdDecompressReader(_Reader):
    """Reads a zstd stream (frames and skippable frames, as zstd:chunked writes them) and yields the uncompressed bytes.

    ``observer`` (a ``_zstd_chunked.TocCheck``) sees frames, skippable frames and output, and is finished at the
    end; the underlying stream is drained, so a VerifyingReader below checks the compressed digest too.
    """

    def __init__(self, stream: BinaryIO, context: str, observer=None):
        super().__init__(stream)
        self._observer = observer

        def output(data: bytes) -> None:
            self._out += data
            if observer is not None:
                observer.output(data)

        self._frames = ZstdFrames(
            context,
            "layer",
            output,
            on_frame=observer.frame if observer is not None else None,
            on_skippable=observer.skippable if observer is not None else None,
        )

    def _more(self, want: int) -> None:
        if self._frames.pump(want) >= want:
            return
        chunk = self._stream.read(256 * 1024)
        if chunk:
            self._frames.feed(chunk)
            return
        self._frames.finish()
        if self._observer is not None:
            self._observer.finish(self._frames)
        self._eof = True


class ZstdCompressReader(_Reader):
    """Reads a stream and yields it as one zstd frame (level 3 unless given, like containers/image)."""

    def __init__(self, stream: BinaryIO, context: str, level: int | None = None):
        super().__init__(stream)
        zstd = zstandard(context)
        # One thread: zstd's worker threads buffer several MiB-sized jobs (over 100 MiB of memory) and gain little when
        # decompressing the source takes as long; parallel layers use the other cores. A checksum, as containers/image writes.
        self._compressor = zstd.ZstdCompressor(level=DEFAULT_LEVEL[ZSTD] if level is None else level, write_checksum=True).compressobj()
        self._finish = zstd.COMPRESSOBJ_FLUSH_FINISH

    def _more(self, want: int) -> None:
        chunk = self._stream.read(_CHUNK)
        if chunk:
            self._out += self._compressor.compress(chunk)
        else:
            self._out += self._compressor.flush(self._finish)
            self._eof = True


class ObservingReader:
    """Passes a blob through unchanged while observers look at every byte (``feed``); their verdict (``close``) comes
    on the read that delivers the last byte (``size`` known) or reaches the end, before those bytes are handed out."""

    def __init__(self, stream, observers: list, size: int | None):
        self._stream = stream
        self._observers = observers
        self._size = size
        self._seen = 0
        self._done = False

    @property
    def bytes_read(self) -> int:
        return getattr(self._stream, "bytes_read", self._seen)

    def __len__(self) -> int:
        return len(self._stream)

    def __iter__(self):
        while True:
            chunk = self.read(_CHUNK)
            if not chunk:
                return
            yield chunk

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        chunk = self._stream.read(n) if n is not None and n >= 0 else self._stream.read()
        if chunk:
            self._seen += len(chunk)
            for observer in self._observers:
                observer.feed(chunk)
        if not chunk or n is None or n < 0 or self._seen == self._size:
            self._done = True
            for observer in self._observers:
                observer.close()
        return chunk

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close:
            close()


class ZstdObserver:
    """Decompresses a passing zstd stream only to let a ``TocCheck`` judge it (``ObservingReader``'s observer)."""

    def __init__(self, context: str, check):
        self._check = check
        self._frames = ZstdFrames(context, "layer", check.output, on_frame=check.frame, on_skippable=check.skippable)

    def feed(self, data: bytes) -> None:
        self._frames.feed(data)
        self._frames.pump(1 << 62)

    def close(self) -> None:
        self._frames.finish()
        self._check.finish(self._frames)


class _DeclaredCompression:
    """Checks that a layer's first bytes are what its media type declares (gzip, zstd, or a plain tar)."""

    def __init__(self, kind: str, media_type: str, digest: str, context: str):
        self._kind = kind
        self._media_type = media_type
        self._digest = digest
        self._context = context
        self._head = b""
        self._checked = False

    def feed(self, data: bytes) -> None:
        if not self._checked:
            self._head += data[:8]
            if len(self._head) >= 8:
                self._check()

    def close(self) -> None:
        if not self._checked:
            self._check()

    def _check(self) -> None:
        self._checked = True
        found = detect_compression(self._head)
        want = {GZIP: "gzip", ZSTD: "zstd", ZSTD_CHUNKED: "zstd"}.get(self._kind)
        if found == want or (want is None and found not in ("gzip", "zstd")):
            return
        declared = "a plain tar" if want is None else want
        holds = "uncompressed or unknown data" if found is None else "%s data" % found
        raise OCIError(
            "%s: layer %s is declared %s (%s) but holds %s; refusing a layer whose media type does not match its bytes"
            % (self._context, self._digest, declared, self._media_type, holds),
            self._context,
        )


def check_layer_bytes(stream, media_type: str | None, digest: str, size: int | None, context: str, toc=None):
    """``stream`` checked as it passes: its first bytes against the compression ``media_type`` declares (image layers
    only), and with ``toc`` (a ``_zstd_chunked.TocCheck``) the zstd:chunked TOC against the content."""
    kind = layer_compression({"mediaType": media_type})
    observers: list = []
    if kind is not None:
        observers.append(_DeclaredCompression(kind, media_type or "", digest, context))
    if toc is not None:
        observers.append(ZstdObserver(context, toc))
    return ObservingReader(stream, observers, size) if observers else stream


def decompressing_reader(stream: BinaryIO, algorithm: str, context: str, observer=None):
    """A reader of the uncompressed bytes of ``stream``, compressed with ``algorithm`` (``gzip``, ``zstd``)."""
    if algorithm == GZIP:
        return GunzipReader(stream, context)
    return ZstdDecompressReader(stream, context, observer)


def compressing_reader(stream: BinaryIO, algorithm: str, level: int | None, context: str):
    """A reader of ``stream`` compressed with ``algorithm``; for zstd:chunked its ``annotations`` are set at the end."""
    if algorithm == GZIP:
        return GzipCompressReader(stream, level)
    if algorithm == ZSTD:
        return ZstdCompressReader(stream, context, level)
    from ._zstd_chunked import ChunkedCompressReader

    return ChunkedCompressReader(stream, context, level)
