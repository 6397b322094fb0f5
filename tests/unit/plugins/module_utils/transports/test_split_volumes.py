"""Split archives without a copy around them: sizes, the volume writer (including cutting a member back), joined reads."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from ansible_collections.oci.images.plugins.module_utils._errors import DigestMismatch, LocalFormatError
from ansible_collections.oci.images.plugins.module_utils._transports._tar import TarStreamWriter, new_member
from ansible_collections.oci.images.plugins.module_utils._transports._volumes import JoinedVolumes, VolumeWriter, parse_size


@pytest.mark.parametrize(
    "text, size",
    [(4096, 4096), ("4096", 4096), ("64K", 65536), ("700M", 700 * 1024**2), ("4095M", 4095 * 1024**2), ("2g", 2 * 1024**3), ("1GiB", 1024**3), ("8 KB", 8192)],
)
def test_sizes_take_binary_suffixes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "1.5G", "-4K", "4X", True, "100"])
def test_sizes_that_are_not_sizes_are_refused(text):
    with pytest.raises(LocalFormatError, match="split_size"):
        parse_size(text)


def contents(writer: VolumeWriter) -> list[bytes]:
    index = writer.index()
    out = []
    for volume in index.volumes:
        with open(os.path.join(writer.directory, volume.name), "rb") as f:
            data = f.read()
        assert len(data) == volume.size and hashlib.sha256(data).hexdigest() == volume.sha256
        out.append(data)
    return out


def test_writer_fills_each_volume_then_starts_the_next(tmp_path):
    writer = VolumeWriter(str(tmp_path), "a.tar", 1000, "test")
    data = os.urandom(2500)
    writer.write(data[:700])
    writer.write(data[700:])
    writer.flush()
    writer.close()
    assert [len(v) for v in contents(writer)] == [1000, 1000, 500]
    assert b"".join(contents(writer)) == data
    assert sorted(os.listdir(tmp_path)) == ["a.tar.000", "a.tar.001", "a.tar.002"]


@pytest.mark.parametrize("cut, sizes", [(1500, [1000, 500]), (1000, [1000]), (999, [999]), (0, [0])])
def test_cutting_back_removes_later_volumes_and_rehashes_the_cut_one(tmp_path, cut, sizes):
    writer = VolumeWriter(str(tmp_path), "a.tar", 1000, "test")
    data = os.urandom(2500)
    writer.write(data)
    writer.seek(cut)
    writer.truncate()
    assert writer.tell() == cut
    assert [len(v) for v in contents(writer)] == sizes
    writer.write(b"x" * 1200)
    writer.close()
    assert b"".join(contents(writer)) == data[:cut] + b"x" * 1200
    assert all(len(v) <= 1000 for v in contents(writer))


class _Failing:
    def __init__(self, size: int):
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise DigestMismatch("the stream broke")
        n = min(n, self._left, 700)
        self._left -= n
        return b"y" * n


def test_a_member_that_fails_midway_is_cut_out_of_the_volumes(tmp_path):
    writer = VolumeWriter(str(tmp_path), "a.tar", 1024, "test")
    tar = TarStreamWriter(writer, str(tmp_path / "a.tar"))
    tar.add(new_member("first", 1500), io.BytesIO(b"f" * 1500))
    with pytest.raises(DigestMismatch):
        tar.add(new_member("broken", 5000), _Failing(3000))
    tar.add(new_member("second", 10), io.BytesIO(b"s" * 10))
    tar.finish()
    joined = JoinedVolumes([(os.path.join(str(tmp_path), v.name), v.size) for v in writer.index().volumes])
    with tarfile.open(fileobj=joined, mode="r:") as archive:
        assert archive.getnames() == ["first", "second"]
        assert archive.extractfile("second").read() == b"s" * 10


def test_joined_volumes_read_and_seek_across_boundaries(tmp_path):
    data = os.urandom(3000)
    parts = []
    for i, (start, end) in enumerate([(0, 1000), (1000, 1001), (1001, 3000)]):
        path = str(tmp_path / ("v%d" % i))
        with open(path, "wb") as f:
            f.write(data[start:end])
        parts.append((path, end - start))
    joined = JoinedVolumes(parts)
    assert joined.read(1500) == data[:1500]
    joined.seek(999)
    assert joined.read(3) == data[999:1002]
    joined.seek(-10, 2)
    assert joined.read() == data[-10:]
    assert joined.read(5) == b""
    joined.seek(0)
    assert joined.read() == data
    joined.close()
