# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content digests: compute them, and verify streams while they are read."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from ._errors import DigestMismatch, InvalidReference
from ._reference import validate_digest

_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def new_hasher(digest: str):
    """A hashlib object for the algorithm of ``digest``."""
    algorithm = digest.partition(":")[0]
    try:
        return _ALGORITHMS[algorithm]()
    except KeyError:
        raise InvalidReference("unsupported digest algorithm in %r" % digest, digest) from None


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_bytes(data: bytes, digest: str, context: str) -> bytes:
    """Return ``data`` if it hashes to ``digest``; raise DigestMismatch naming ``context`` otherwise."""
    validate_digest(digest, context)
    hasher = new_hasher(digest)
    hasher.update(data)
    actual = "%s:%s" % (digest.partition(":")[0], hasher.hexdigest())
    if actual != digest:
        raise DigestMismatch("%s: content has digest %s, expected %s" % (context, actual, digest), context)
    return data


class VerifyingReader:
    """A file-like reader that hashes what passes through and checks digest and size at the end.

    ``read`` raises DigestMismatch on the call that reaches the end (end of file, or the last byte of
    a known size) when the content is wrong, before returning those bytes,
    so a consumer never sees a clean EOF for corrupt data. ``__len__`` gives the expected size
    (when known) so requests sends it with Content-Length instead of chunked encoding.
    """

    def __init__(self, stream: BinaryIO, digest: str, size: int | None, context: str, location: str | None = None):
        validate_digest(digest, context)
        self._stream = stream
        self.digest = digest
        self.size = size
        self.context = context
        # Where the bytes come from (a file), for messages: "blob sha256:... (PATH)".
        self._blob = "blob %s (%s)" % (digest, location) if location else "blob %s" % digest
        self._hasher = new_hasher(digest)
        self.bytes_read = 0
        self._done = False

    def __len__(self) -> int:
        if self.size is None:
            raise TypeError("size unknown")
        return self.size

    def __iter__(self):
        while True:
            chunk = self.read(1024 * 1024)
            if not chunk:
                return
            yield chunk

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        chunk = self._stream.read(n) if n is not None and n >= 0 else self._stream.read()
        if chunk:
            self._hasher.update(chunk)
            self.bytes_read += len(chunk)
            if self.size is not None and self.bytes_read > self.size:
                raise DigestMismatch(
                    "%s: %s is larger than the %d bytes its descriptor declares (size mismatch)" % (self.context, self._blob, self.size),
                    self.context,
                )
            # With a known size, the read that delivers the last byte checks the digest: a consumer that stops
            # after ``size`` bytes (an upload with Content-Length) never asks for the end of file.
            if n is None or n < 0 or self.bytes_read == self.size:
                self._finish()
            return chunk
        self._finish()
        return b""

    def _finish(self) -> None:
        self._done = True
        if self.size is not None and self.bytes_read != self.size:
            raise DigestMismatch(
                "%s: %s ended after %d of %d bytes (size mismatch)" % (self.context, self._blob, self.bytes_read, self.size),
                self.context,
            )
        actual = "%s:%s" % (self.digest.partition(":")[0], self._hasher.hexdigest())
        if actual != self.digest:
            raise DigestMismatch(
                "%s: %s does not match its digest: the content hashes to %s (digest mismatch)" % (self.context, self._blob, actual),
                self.context,
            )

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
