"""Streaming zstd and zstd:chunked, in-process: round trips, bounded memory, the tar walk, the TOC check."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tracemalloc

import pytest
import zstandard

from ansible_collections.oci.images.plugins.module_utils import _compression, _zstd_chunked
from ansible_collections.oci.images.plugins.module_utils._errors import OCIError


def read_all(reader, n: int = 65536) -> bytes:
    out = bytearray()
    while True:
        chunk = reader.read(n)
        if not chunk:
            return bytes(out)
        out += chunk


def sample_tar(fmt=tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in (("etc/a.conf", b"a=1\n" * 300), ("empty", b""), ("d/" + "n" * 140, os.urandom(2000))):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uid, info.gid, info.mode = len(data), 1700000000, 1000, 1000, 0o600
            tar.addfile(info, io.BytesIO(data))
        for name, kind, link in (("dir", tarfile.DIRTYPE, ""), ("sym", tarfile.SYMTYPE, "etc/a.conf"), ("hard", tarfile.LNKTYPE, "etc/a.conf")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tar.addfile(info)
    return out.getvalue()


def test_zstd_round_trip_through_our_writer_and_reader():
    tar = sample_tar()
    packed = read_all(_compression.ZstdCompressReader(io.BytesIO(tar), "t"))
    assert zstandard.ZstdDecompressor().decompress(packed, max_output_size=len(tar)) == tar
    assert read_all(_compression.ZstdDecompressReader(io.BytesIO(packed), "t")) == tar


def test_zstd_reader_reads_several_frames_and_skips_skippable_ones():
    parts = [b"first " * 100, b"", b"second " * 1000]
    skippable = b"\x50\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"hello"
    stream = skippable + b"".join(zstandard.ZstdCompressor().compress(p) + skippable for p in parts)
    assert read_all(_compression.ZstdDecompressReader(io.BytesIO(stream), "t"), 7) == b"".join(parts)


def test_zstd_reader_holds_a_block_not_the_layer_however_well_it_compresses():
    packed = zstandard.ZstdCompressor(level=1).compress(b"\0" * (256 * 1024 * 1024))
    assert len(packed) < 64 * 1024
    reader = _compression.ZstdDecompressReader(io.BytesIO(packed), "t")
    tracemalloc.start()
    try:
        total = 0
        while True:
            chunk = reader.read(1024 * 1024)
            if not chunk:
                break
            total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 256 * 1024 * 1024
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda b: b[:-3], "ends in the middle of a frame"),
        (lambda b: b"\x00\x01\x02\x03" + b, "starts neither a zstd frame nor a skippable frame"),
        (lambda b: b"", "holds no zstd frame"),
    ],
)
def test_damaged_zstd_is_an_oci_error(damage, says):
    packed = zstandard.ZstdCompressor(write_checksum=True).compress(b"payload " * 1000)
    with pytest.raises(OCIError) as caught:
        read_all(_compression.ZstdDecompressReader(io.BytesIO(damage(packed)), "ref"))
    assert says in caught.value.msg and caught.value.msg.startswith("ref: layer is not valid zstd data")


def test_a_corrupt_compressed_block_is_an_oci_error_not_a_library_exception():
    packed = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(b"abcdefgh" * 5000))
    packed[-6] ^= 0xFF  # inside the last block or its checksum
    with pytest.raises(OCIError) as caught:
        read_all(_compression.ZstdDecompressReader(io.BytesIO(bytes(packed)), "ref"))
    assert "is not valid zstd data" in caught.value.msg


def test_compression_levels_are_checked():
    _compression.check_level("gzip", 9)
    _compression.check_level("zstd", 19)
    with pytest.raises(OCIError, match="compression_level 10 is not a gzip level: use 0 to 9"):
        _compression.check_level("gzip", 10)
    with pytest.raises(OCIError, match="use 1 to 22"):
        _compression.check_level("zstd:chunked", 0)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_scanner_sees_the_entries_tarfile_sees(fmt):
    tar = sample_tar(fmt) if fmt != tarfile.USTAR_FORMAT else sample_tar_ustar()
    seen, raw = [], bytearray()

    class Sink:
        def raw(self, data):
            raw.extend(data)

        def entry(self, entry):
            seen.append((entry.name.rstrip("/"), entry.typeflag, entry.size, entry.linkname, entry.mtime[0]))  # Go keeps "dir/"
            self.content_bytes = bytearray()

        def content(self, data):
            raw.extend(data)

        def entry_end(self):
            pass

    scanner = _zstd_chunked.TarScanner("t", "layer", Sink())
    for start in range(0, len(tar), 333):  # fed in odd pieces
        scanner.feed(tar[start : start + 333])
    scanner.finish()
    assert bytes(raw) == tar  # every byte is either raw or content, once, in order
    with tarfile.open(fileobj=io.BytesIO(tar)) as expected:
        assert seen == [(m.name, m.type, m.size, m.linkname, m.mtime) for m in expected.getmembers()]


def sample_tar_ustar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("p" * 120 + "/file")  # split into prefix and name
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    return out.getvalue()


def test_tar_scanner_refuses_what_is_not_a_tar():
    scanner = _zstd_chunked.TarScanner("ref", "layer", None)
    with pytest.raises(OCIError, match="not a valid tar stream: the header at byte 0 has a wrong checksum"):
        scanner.feed(os.urandom(512))


def chunked(tar: bytes) -> tuple[bytes, dict]:
    reader = _zstd_chunked.ChunkedCompressReader(io.BytesIO(tar), "t")
    return read_all(reader, 4096), reader.annotations


def test_zstd_chunked_is_plain_zstd_to_any_reader_and_its_toc_checks_out():
    tar = sample_tar()
    blob, annotations = chunked(tar)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True)
    assert reader.read(len(tar) + 10) == tar
    check = _zstd_chunked.TocCheck("t", "sha256:x", annotations)
    assert read_all(_compression.ZstdDecompressReader(io.BytesIO(blob), "t", check)) == tar
    # passing through unchanged, checked on the way
    passing = _compression.check_layer_bytes(
        io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+zstd", "sha256:x", len(blob), "t", check_toc(annotations)
    )
    assert read_all(passing) == blob


def check_toc(annotations):
    return _zstd_chunked.TocCheck("t", "sha256:x", annotations)


def test_each_file_of_zstd_chunked_is_its_own_frame_at_the_offsets_of_the_toc():
    tar = sample_tar()
    blob, annotations = chunked(tar)
    offset, length, size, _unused = (int(p) for p in annotations["io.containers.zstd-chunked.manifest-position"].split(":"))
    toc = json.loads(zstandard.ZstdDecompressor().decompress(blob[offset : offset + length], max_output_size=size))
    with tarfile.open(fileobj=io.BytesIO(tar)) as expected:
        members = {m.name: m for m in expected.getmembers()}
    for entry in toc["entries"]:
        if entry.get("size") and entry["type"] == "reg":
            content = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob[entry["offset"] : entry["endOffset"]]), read_across_frames=True).read(10**6)
            with tarfile.open(fileobj=io.BytesIO(tar)) as again:
                assert content == again.extractfile(members[entry["name"]]).read()


def test_a_toc_that_lies_is_refused_in_passing():
    tar = sample_tar()
    blob, annotations = chunked(tar)
    position = annotations["io.containers.zstd-chunked.manifest-position"]
    wrong = dict(annotations, **{"io.containers.zstd-chunked.manifest-position": "1" + position})
    with pytest.raises(OCIError, match="where the layer has no such frame"):
        read_all(_compression.check_layer_bytes(io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+zstd", "sha256:x", len(blob), "t", check_toc(wrong)))
    with pytest.raises(OCIError, match="TOC position annotation"):
        _zstd_chunked.TocCheck("t", "sha256:x", dict(annotations, **{"io.containers.zstd-chunked.manifest-position": "1:2:3"}))


@pytest.mark.parametrize(
    "declared, blob, ok",
    [
        ("application/vnd.oci.image.layer.v1.tar+gzip", gzip.compress(b"x" * 100), True),
        ("application/vnd.oci.image.layer.v1.tar+gzip", zstandard.ZstdCompressor().compress(b"x" * 100), False),
        ("application/vnd.oci.image.layer.v1.tar+zstd", zstandard.ZstdCompressor().compress(b"x" * 100), True),
        ("application/vnd.oci.image.layer.v1.tar", b"plain tar bytes", True),
        ("application/vnd.oci.image.layer.v1.tar", gzip.compress(b"x"), False),
        ("application/vnd.oci.image.config.v1+json", gzip.compress(b"x"), True),  # not a layer: not judged
    ],
)
def test_layer_bytes_must_match_the_declared_compression(declared, blob, ok):
    reader = _compression.check_layer_bytes(io.BytesIO(blob), declared, "sha256:x", len(blob), "ref")
    if ok:
        assert read_all(reader, 3) == blob
    else:
        with pytest.raises(OCIError, match="refusing a layer whose media type does not match its bytes"):
            read_all(reader, 3)


def test_gzip_reader_and_writer_round_trip_in_small_reads():
    data = os.urandom(100000) + b"\0" * 100000
    packed = read_all(_compression.GzipCompressReader(io.BytesIO(data), 1), 1000)
    assert gzip.decompress(packed) == data
    assert read_all(_compression.GunzipReader(io.BytesIO(packed + packed), "t"), 777) == data + data
