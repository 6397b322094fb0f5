# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""VerifyingReader: a consumer that reads exactly the declared size still gets the digest checked."""

from __future__ import annotations

import io

import pytest

from ansible_collections.oci.images.plugins.module_utils._digest import VerifyingReader, sha256_digest
from ansible_collections.oci.images.plugins.module_utils._errors import DigestMismatch

GOOD = b"the blob's real bytes" * 100
BAD = b"X" + GOOD[1:]


def test_the_read_that_delivers_the_last_declared_byte_checks_the_digest():
    # An upload with Content-Length reads exactly the size and never asks for the end of file.
    reader = VerifyingReader(io.BytesIO(BAD), sha256_digest(GOOD), len(GOOD), "ctx", "/path/to/blob")
    with pytest.raises(DigestMismatch, match=r"blob sha256:\w+ \(/path/to/blob\) does not match its digest.*digest mismatch"):
        reader.read(len(GOOD))


def test_a_good_blob_read_to_its_size_then_ends():
    reader = VerifyingReader(io.BytesIO(GOOD), sha256_digest(GOOD), len(GOOD), "ctx")
    assert reader.read(1000) + reader.read(len(GOOD) - 1000) == GOOD
    assert reader.read(10) == b""


def test_more_bytes_than_declared_are_a_size_mismatch():
    reader = VerifyingReader(io.BytesIO(GOOD + b"more"), sha256_digest(GOOD), len(GOOD), "ctx")
    with pytest.raises(DigestMismatch, match="larger than the %d bytes its descriptor declares .size mismatch" % len(GOOD)):
        reader.read(len(GOOD) + 4)


def test_a_short_blob_is_a_size_mismatch():
    reader = VerifyingReader(io.BytesIO(GOOD[:-1]), sha256_digest(GOOD), len(GOOD), "ctx")
    assert reader.read(len(GOOD)) == GOOD[:-1]
    with pytest.raises(DigestMismatch, match="ended after %d of %d bytes .size mismatch" % (len(GOOD) - 1, len(GOOD))):
        reader.read(1)
