"""Damaged zstd layers: a corrupt frame, a zstd:chunked TOC that lies about its offsets, a layer whose media type does
not match its bytes. Each is a clear ``msg`` naming the layer, and nothing is written anywhere."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct

import pytest
import zstandard
from ansible_run import run_module
from images import OCI_CONFIG, OCI_MANIFEST, add_to_index, canonical_json, tar_of, write_blob

from ansible_collections.oci.images.plugins.module_utils._zstd_chunked import ChunkedCompressReader

pytestmark = pytest.mark.timeout(300)

ZSTD_TYPE = "application/vnd.oci.image.layer.v1.tar+zstd"
GZIP_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
POSITION = "io.containers.zstd-chunked.manifest-position"
CHECKSUM = "io.containers.zstd-chunked.manifest-checksum"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_with_layer(layout: str, blob: bytes, media_type: str, tar: bytes, annotations: dict | None = None) -> str:
    """An OCI image whose one layer is ``blob`` (declared ``media_type``) and whose config names ``tar``'s digest."""
    config = canonical_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]}})
    config_digest, config_size = write_blob(layout, config)
    digest, size = write_blob(layout, blob)
    layer = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        layer["annotations"] = annotations
    manifest = canonical_json(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size}, "layers": [layer]}
    )
    manifest_digest, manifest_size = write_blob(layout, manifest)
    add_to_index(layout, {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size}, "v1")
    return "oci:%s:v1" % layout


def chunked(tar: bytes) -> tuple[bytes, dict]:
    reader = ChunkedCompressReader(io.BytesIO(tar), "test")
    blob = reader.read()
    return blob, reader.annotations


def retoc(blob: bytes, annotations: dict, change) -> tuple[bytes, dict]:
    """The layer with its TOC edited by ``change(toc)``, the TOC's annotations, digest and footer made to agree again."""
    offset, length, _size, kind = (int(p) for p in annotations[POSITION].split(":"))
    toc = json.loads(zstandard.ZstdDecompressor().decompress(blob[offset : offset + length]))
    change(toc)
    raw = json.dumps(toc, separators=(",", ":")).encode()
    packed = zstandard.ZstdCompressor().compress(raw)
    head = blob[: offset - 8]
    new_offset = len(head) + 8
    footer = struct.pack("<QQQQ", new_offset, len(packed), len(raw), kind) + b"GnUlInUx"
    frame = struct.pack("<II", 0x184D2A50, len(packed)) + packed
    new_blob = head + frame + struct.pack("<II", 0x184D2A50, len(footer)) + footer
    return new_blob, {CHECKSUM: digest_of(packed), POSITION: "%d:%d:%d:%d" % (new_offset, len(packed), len(raw), kind)}


def copy(src: str, dest: str, **extra):
    args = {"src": src, "dest": dest, "src_validate_certs": False, "dest_validate_certs": False}
    args.update(extra)
    return run_module("image_copy", args)


def nothing_written(tmp_path) -> None:
    assert sorted(os.listdir(str(tmp_path))) == ["src"], os.listdir(str(tmp_path))


@pytest.fixture
def tar():
    return tar_of({"one.txt": os.urandom(4000), "two.txt": b"two\n" * 500, "three.bin": os.urandom(1200)})


def test_a_corrupt_zstd_frame_is_a_message_and_nothing_is_written(tmp_path, tar):
    blob = bytearray(zstandard.ZstdCompressor(level=3).compress(tar))
    # The first block header follows the frame header (magic, descriptor, window, no content size here): give it
    # the reserved block type, the way a damaged transfer or a buggy writer would leave it.
    header = 4 + 1 + (0 if blob[4] & 0x20 else 1) + (0, 1, 2, 4)[blob[4] & 3] + ((1 if blob[4] & 0x20 else 0), 2, 4, 8)[blob[4] >> 6]
    blob[header] |= 0x06
    src = image_with_layer(str(tmp_path / "src"), bytes(blob), ZSTD_TYPE, tar)
    for dest, extra in (("docker-archive:%s/out.tar:app:1" % tmp_path, {}), ("oci:%s/out:1" % tmp_path, {"compression": "gzip"})):
        run = copy(src, dest, **extra)
        assert run.failed
        assert "is not valid zstd data: a block at byte %d has the reserved type" % header in run.result["msg"]
        assert src in run.result["msg"]
    nothing_written(tmp_path)


def test_a_zstd_layer_cut_short_is_a_message(tmp_path, tar):
    blob = zstandard.ZstdCompressor(level=3).compress(tar)[:-20]
    src = image_with_layer(str(tmp_path / "src"), blob, ZSTD_TYPE, tar)
    run = copy(src, "docker-archive:%s/out.tar:app:1" % tmp_path)
    assert run.failed
    assert "it ends in the middle of a frame" in run.result["msg"]
    nothing_written(tmp_path)


def test_a_zstd_chunked_toc_that_lies_about_offsets_is_refused_wherever_its_bytes_go(tmp_path, tar, registry):
    blob, annotations = chunked(tar)

    def shift(toc):
        toc["entries"][1]["offset"] += 8  # two.txt: a few bytes into its frame

    lying, lying_annotations = retoc(blob, annotations, shift)
    src = image_with_layer(str(tmp_path / "src"), lying, ZSTD_TYPE, tar, lying_annotations)
    for dest, extra in (
        ("oci:%s/out:1" % tmp_path, {}),  # passed through as it is
        ("docker-archive:%s/out.tar:app:1" % tmp_path, {}),  # decompressed
        ("oci:%s/gz:1" % tmp_path, {"compression": "gzip"}),  # converted
    ):
        run = copy(src, dest, **extra)
        assert run.failed, dest
        assert "zstd:chunked layer %s: the TOC says two.txt starts at byte" % digest_of(lying) in run.result["msg"]
        assert "refusing to copy it" in run.result["msg"]
    remote = "docker://%s/bad/lying-toc:1" % registry.host
    run = copy(src, remote)
    assert run.failed and "the TOC says two.txt starts at byte" in run.result["msg"]
    assert run_module("image_info", {"image": remote, "validate_certs": False}).result["exists"] is False
    nothing_written(tmp_path)


def test_a_zstd_chunked_toc_with_a_wrong_file_digest_or_end_is_refused(tmp_path, tar):
    blob, annotations = chunked(tar)

    def wrong_digest(toc):
        toc["entries"][0]["digest"] = digest_of(b"something else")

    def wrong_end(toc):
        toc["entries"][2]["endOffset"] -= 3

    for change, says in (
        (wrong_digest, "the TOC gives one.txt a size or digest its content does not have"),
        (wrong_end, "the TOC says three.bin ends at byte"),
    ):
        lying, lying_annotations = retoc(blob, annotations, change)
        layout = tmp_path / "src"
        src = image_with_layer(str(layout), lying, ZSTD_TYPE, tar, lying_annotations)
        run = copy(src, "oci:%s/out:1" % tmp_path)
        assert run.failed
        assert says in run.result["msg"]
        nothing_written(tmp_path)


def test_annotations_that_do_not_match_the_toc_are_refused(tmp_path, tar):
    blob, annotations = chunked(tar)
    offset, length, size, kind = annotations[POSITION].split(":")
    for bad, says in (
        ({CHECKSUM: digest_of(b"not the toc"), POSITION: annotations[POSITION]}, "its TOC does not match the digest its annotation gives"),
        ({CHECKSUM: annotations[CHECKSUM], POSITION: "%d:%s:%s:%s" % (int(offset) - 8, length, size, kind)}, "where the layer has no such frame"),
    ):
        src = image_with_layer(str(tmp_path / "src"), blob, ZSTD_TYPE, tar, bad)
        run = copy(src, "oci:%s/out:1" % tmp_path)
        assert run.failed
        assert says in run.result["msg"]
        nothing_written(tmp_path)


@pytest.mark.parametrize(
    "declared, packing, holds",
    [
        (GZIP_TYPE, "zstd", "zstd data"),
        (ZSTD_TYPE, "gzip", "gzip data"),
        ("application/vnd.oci.image.layer.v1.tar", "gzip", "gzip data"),
        (GZIP_TYPE, "none", "uncompressed or unknown data"),
    ],
)
def test_a_layer_whose_media_type_does_not_match_its_bytes_is_refused(tmp_path, tar, declared, packing, holds):
    blob = {"zstd": zstandard.ZstdCompressor().compress(tar), "gzip": gzip.compress(tar, mtime=0), "none": tar}[packing]
    src = image_with_layer(str(tmp_path / "src"), blob, declared, tar)
    for dest in ("oci:%s/out:1" % tmp_path, "docker-archive:%s/out.tar:app:1" % tmp_path, "dir:%s/dir" % tmp_path):
        run = copy(src, dest)
        assert run.failed, dest
        assert "layer %s is declared" % digest_of(blob) in run.result["msg"]
        assert "(%s) but holds %s" % (declared, holds) in run.result["msg"]
    nothing_written(tmp_path)


def test_a_skopeo_1_9_zstd_chunked_layer_that_lost_the_tar_padding_is_refused_for_its_diff_id(tmp_path, skopeo):
    # skopeo 1.9 (containers/storage 1.43) drops what follows the tar's end-of-archive marker (Python pads to 10 KiB), so
    # the layer it writes no longer decompresses to the diff ID its config keeps: a broken image, refused with the reason.
    from images import build_image_of_tars

    info = build_image_of_tars(str(tmp_path / "src"), "v1", [tar_of({"a.txt": b"a" * 3000}, record_padding=True)])
    # A layout of its own: in the source's, skopeo would reuse the gzip layer it finds there.
    skopeo.copy(info["reference"], "oci:%s/skopeo:chunked" % tmp_path, "--dest-compress", "--dest-compress-format", "zstd:chunked")
    assert "+zstd" in json.loads(skopeo.inspect_raw("oci:%s/skopeo:chunked" % tmp_path))["layers"][0]["mediaType"]
    run = copy("oci:%s/skopeo:chunked" % tmp_path, "docker-archive:%s/out.tar:app:1" % tmp_path)
    assert run.failed
    assert "the uncompressed content of layer" in run.result["msg"] and "does not match its digest" in run.result["msg"]
    assert sorted(os.listdir(str(tmp_path))) == ["skopeo", "src"]
