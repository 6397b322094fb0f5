# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming decompression of layers for destinations that store them uncompressed."""

from __future__ import annotations

import zlib
from typing import BinaryIO

from ._errors import OCIError

_CHUNK = 1024 * 1024


class GunzipReader:
    """Reads a gzip stream and yields the uncompressed bytes, never holding the whole layer.

    At the end of the gzip data it drains the underlying stream, so a VerifyingReader below
    checks the compressed digest too.
    """

    def __init__(self, stream: BinaryIO, context: str):
        self._stream = stream
        self._context = context
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buffer = b""
        self._pending = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        want = _CHUNK if n is None or n < 0 else n
        while len(self._buffer) < want and not self._eof:
            self._fill()
        if n is None or n < 0:
            while not self._eof:
                self._fill()
            data, self._buffer = self._buffer, b""
            return data
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _fill(self) -> None:
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
            self._buffer += self._inflater.decompress(chunk)
        except zlib.error as exc:
            raise OCIError("%s: layer is not valid gzip data (%s)" % (self._context, exc), self._context) from None
        if self._inflater.eof:
            self._pending = self._inflater.unused_data

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close:
            close()


class GzipCompressReader:
    """Reads a stream and yields it gzip-compressed (level 6, no name, mtime 0: the same bytes every time)."""

    def __init__(self, stream: BinaryIO, level: int = 6):
        self._stream = stream
        self._deflater = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self._buffer = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        want = _CHUNK if n is None or n < 0 else n
        while len(self._buffer) < want and not self._eof:
            chunk = self._stream.read(_CHUNK)
            if chunk:
                self._buffer += self._deflater.compress(chunk)
            else:
                self._buffer += self._deflater.flush()
                self._eof = True
        data, self._buffer = self._buffer[:want], self._buffer[want:]
        return data

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close:
            close()
