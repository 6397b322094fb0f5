# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dir:, oci:, oci-archive: and docker-archive: readers, with skopeo as the oracle.

Each test builds an image with tests/lib/images.py, has skopeo write it in a format, and reads
it back with our reader: the manifest bytes and digest must be what skopeo reports, and every
blob must stream and verify.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest
from images import build_image

from ansible_collections.oci.images.plugins.module_utils import _media
from ansible_collections.oci.images.plugins.module_utils._errors import DigestMismatch, InvalidReference, LocalFormatError, NotFound
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._transports._table import open_source


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_all(source, descriptor) -> bytes:
    with source.open_blob(descriptor["digest"], descriptor.get("size")) as stream:
        out = io.BytesIO()
        while True:
            chunk = stream.read(65536)
            if not chunk:
                return out.getvalue()
            out.write(chunk)


def open_ref(text: str):
    return open_source(parse_reference(text))


def assert_matches_skopeo(skopeo, ref: str, platform: str | None = None) -> dict:
    """Our manifest == skopeo's raw manifest; digests agree; config and every layer verify. Returns the image manifest."""
    oracle_raw = skopeo.inspect_raw(ref)
    with open_ref(ref) as source:
        raw, media_type = source.get_manifest()
        assert raw == oracle_raw
        doc, media_type = _media.parse_manifest(raw, media_type, ref)
        if not _media.is_index(media_type):
            assert source.manifest_digest(raw) == skopeo.inspect(ref)["Digest"]
        if _media.is_index(media_type):
            wanted = _media.parse_platform(platform or "linux/amd64")
            chosen = _media.select_manifest(doc, wanted, ref)
            child_raw, child_type = source.get_manifest(chosen["digest"])
            assert sha256(child_raw) == chosen["digest"]
            extra = ["--override-arch", wanted["architecture"]] + (["--override-variant", wanted["variant"]] if wanted.get("variant") else [])
            oracle = skopeo.inspect(ref, *extra)
            # skopeo reports the index digest and the layers of the image it chose for the platform.
            assert oracle["Digest"] == source.manifest_digest(raw)
            assert [layer["digest"] for layer in json.loads(child_raw)["layers"]] == oracle["Layers"]
            doc, media_type = _media.parse_manifest(child_raw, child_type, ref)
        config = _media.parse_config(source.get_blob_bytes(doc["config"]["digest"], doc["config"]["size"]), ref)
        assert len(config["rootfs"]["diff_ids"]) == len(doc["layers"])
        for layer in doc["layers"]:
            data = read_all(source, layer)
            assert sha256(data) == layer["digest"]
            assert len(data) == layer["size"]
        return doc


# --- round trips through skopeo --------------------------------------------------------------


@pytest.mark.parametrize(
    "dest",
    ["dir:{tmp}/dir", "oci:{tmp}/layout:v1", "oci:{tmp}/layout", "oci-archive:{tmp}/image.tar:v1", "oci-archive:{tmp}/image.tar"],
)
def test_reader_agrees_with_skopeo_on_what_skopeo_wrote(tmp_path, skopeo, dest):
    image = build_image(str(tmp_path / "src"), layer_sizes=(3000, 5000), labels={"a": "b"})
    dest = dest.format(tmp=tmp_path)
    skopeo.copy(image["reference"], dest)
    doc = assert_matches_skopeo(skopeo, dest)
    # skopeo keeps the manifest as built, so the digests are the builder's.
    with open_ref(dest) as source:
        assert source.manifest_digest(source.get_manifest()[0]) == image["manifest_digest"]
    assert [layer["digest"] for layer in doc["layers"]] == image["layer_digests"]


def test_dir_with_docker_v2s2_manifest_reads_back(tmp_path, skopeo):
    image = build_image(str(tmp_path / "src"), layer_sizes=(3000,))
    dest = "dir:%s" % (tmp_path / "v2s2")
    skopeo.copy(image["reference"], dest, "--format", "v2s2")
    doc = assert_matches_skopeo(skopeo, dest)
    assert doc["mediaType"] == _media.DOCKER_MANIFEST
    assert doc["config"]["mediaType"] == _media.DOCKER_CONFIG
    assert [layer["digest"] for layer in doc["layers"]] == image["layer_digests"]


@pytest.mark.parametrize("dest", ["dir:{tmp}/dir", "oci:{tmp}/layout:multi", "oci-archive:{tmp}/multi.tar:multi"])
@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64/v8"])
def test_multi_arch_index_reads_back_with_every_child(oci_index, tmp_path, skopeo, dest, platform):
    dest = dest.format(tmp=tmp_path)
    skopeo.copy(oci_index["reference"], dest, "--multi-arch", "all")
    with open_ref(dest) as source:
        raw, media_type = source.get_manifest()
        assert media_type == _media.OCI_INDEX
        assert sha256(raw) == oci_index["index_digest"]
    assert_matches_skopeo(skopeo, dest, platform)


def test_dir_holds_index_children_as_hex_manifest_json(oci_index, tmp_path, skopeo):
    skopeo.copy(oci_index["reference"], "dir:%s" % (tmp_path / "d"), "--multi-arch", "all")
    for child in oci_index["manifests"]:
        assert (tmp_path / "d" / (child["manifest_digest"][7:] + ".manifest.json")).is_file()
    with open_ref("dir:%s" % (tmp_path / "d")) as source:
        for child in oci_index["manifests"]:
            raw, media_type = source.get_manifest(child["manifest_digest"])
            assert raw == child["manifest"] and media_type == _media.OCI_MANIFEST


@pytest.mark.parametrize("tag", [None, "example.com/app:1.0"])
def test_docker_archive_manifest_is_byte_for_byte_what_skopeo_synthesizes(oci_image, tmp_path, skopeo, tag):
    path = tmp_path / "d.tar"
    skopeo.copy(oci_image["reference"], "docker-archive:%s%s" % (path, ":" + tag if tag else ""))
    ref = "docker-archive:%s" % path
    doc = assert_matches_skopeo(skopeo, ref)
    assert doc["mediaType"] == _media.DOCKER_MANIFEST
    # Layers are addressed by DiffID and served uncompressed, as skopeo does.
    assert [layer["digest"] for layer in doc["layers"]] == oci_image["diff_ids"]
    assert doc["config"]["digest"] == oci_image["config_digest"]
    if tag:
        assert_matches_skopeo(skopeo, "docker-archive:%s:%s" % (path, tag))


def test_docker_archive_with_gzip_layers_reports_uncompressed_sizes_like_skopeo(oci_image, tmp_path, skopeo):
    """A hand-made docker-archive whose layer members are gzip'd (as some tools write them)."""
    config = read_bytes(os.path.join(oci_image["layout"], "blobs", "sha256", oci_image["config_digest"][7:]))
    members = {"config.json": config}
    layer_names = []
    for i, digest in enumerate(oci_image["layer_digests"]):
        members["layer%d.tar.gz" % i] = read_bytes(os.path.join(oci_image["layout"], "blobs", "sha256", digest[7:]))
        layer_names.append("layer%d.tar.gz" % i)
    members["manifest.json"] = json.dumps([{"Config": "config.json", "RepoTags": ["app:1"], "Layers": layer_names}]).encode()
    path = tmp_path / "gz.tar"
    write_tar(path, members)
    for ref in ("docker-archive:%s" % path, "docker-archive:%s:app:1" % path, "docker-archive:%s:docker.io/library/app:1" % path):
        doc = assert_matches_skopeo(skopeo, ref)
        assert [layer["digest"] for layer in doc["layers"]] == oci_image["diff_ids"]


@pytest.mark.parametrize("packing", ["gzip", "bz2", "xz", "zstd"])
def test_docker_archive_of_a_whole_compressed_file_is_read(oci_image, tmp_path, skopeo, packing):
    # skopeo 1.9 itself fails on a gzip'd archive ("unexpected EOF"), so the plain archive is the oracle.
    import bz2
    import lzma

    import zstandard

    plain = tmp_path / "plain.tar"
    skopeo.copy(oci_image["reference"], "docker-archive:%s" % plain)
    packed = tmp_path / ("packed.tar." + packing)
    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress, "zstd": zstandard.ZstdCompressor().compress}[packing]
    packed.write_bytes(compress(plain.read_bytes()))
    with open_ref("docker-archive:%s" % packed) as source:
        raw, _unused = source.get_manifest()
        assert raw == skopeo.inspect_raw("docker-archive:%s" % plain)
        for layer in json.loads(raw)["layers"]:
            assert sha256(read_all(source, layer)) == layer["digest"]
        temp = source.files._temp
        assert temp and os.path.exists(temp)
    assert not os.path.exists(temp)


def test_docker_archive_selects_by_tag_or_index(tmp_path, skopeo):
    one = build_image(str(tmp_path / "src"), ref="one", seed=1)
    two = build_image(str(tmp_path / "src"), ref="two", seed=2)
    path = tmp_path / "two-images.tar"
    # skopeo writes one image per archive; assemble a two-image archive from two of them.
    skopeo.copy(one["reference"], "docker-archive:%s:example.com/one:1" % (tmp_path / "a.tar"))
    skopeo.copy(two["reference"], "docker-archive:%s:example.com/two:2" % (tmp_path / "b.tar"))
    members, items = {}, []
    for part in ("a.tar", "b.tar"):
        with tarfile.open(tmp_path / part) as tar:
            for member in tar.getmembers():
                if member.isreg():
                    members[member.name] = tar.extractfile(member).read()
            items += json.loads(members.pop("manifest.json"))
            members.pop("repositories", None)
    members["manifest.json"] = json.dumps(items).encode()
    write_tar(path, members)
    for suffix, image in ((":example.com/one:1", one), (":@0", one), (":example.com/two:2", two), (":@1", two)):
        with open_ref("docker-archive:%s%s" % (path, suffix)) as source:
            doc = json.loads(source.get_manifest()[0])
            assert doc["config"]["digest"] == image["config_digest"]
        assert_matches_skopeo(skopeo, "docker-archive:%s%s" % (path, suffix))
    with pytest.raises(InvalidReference, match=r"holds 2 images.*example\.com/one:1"):
        open_ref("docker-archive:%s" % path).get_manifest()
    with pytest.raises(NotFound, match=r"no image tagged docker\.io/library/three:latest"):
        open_ref("docker-archive:%s:three" % path).get_manifest()
    with pytest.raises(NotFound, match="@2"):
        open_ref("docker-archive:%s:@2" % path).get_manifest()


# --- OCI layout ref selection ---------------------------------------------------------------------


def test_oci_layout_ref_selection_and_tags(tmp_path):
    layout = str(tmp_path / "layout")
    first = build_image(layout, ref="first", seed=1)
    second = build_image(layout, ref="second", seed=2)
    with open_ref("oci:%s:second" % layout) as source:
        assert sha256(source.get_manifest()[0]) == second["manifest_digest"]
        assert source.can_list_tags and source.list_tags() == ["first", "second"]
    with open_ref("oci:%s:first" % layout) as source:
        assert sha256(source.get_manifest()[0]) == first["manifest_digest"]
    with pytest.raises(InvalidReference, match=r"holds 2 images.*first, second"):
        open_ref("oci:%s" % layout).get_manifest()
    with pytest.raises(NotFound, match=r"no image named 'third'.*first, second"):
        open_ref("oci:%s:third" % layout).get_manifest()


def test_oci_layout_with_one_unnamed_image_needs_no_ref(tmp_path):
    image = build_image(str(tmp_path / "layout"), ref=None)
    with open_ref("oci:%s" % image["layout"]) as source:
        raw, media_type = source.get_manifest()
        assert sha256(raw) == image["manifest_digest"] and media_type == _media.OCI_MANIFEST
        assert source.list_tags() == []


def test_oci_ref_naming_an_index_gives_the_index(oci_index):
    with open_ref(oci_index["reference"]) as source:
        raw, media_type = source.get_manifest()
    assert media_type == _media.OCI_INDEX and sha256(raw) == oci_index["index_digest"]


# --- failures ---------------------------------------------------------------------------------------


def corrupt_blob(layout: str, digest: str) -> None:
    path = os.path.join(layout, "blobs", "sha256", digest[7:])
    data = bytearray(read_bytes(path))
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))


def test_corrupt_layer_raises_digest_mismatch_naming_the_digest(oci_image):
    digest = oci_image["layer_digests"][0]
    corrupt_blob(oci_image["layout"], digest)
    with open_ref(oci_image["reference"]) as source, pytest.raises(DigestMismatch) as caught:
        read_all(source, {"digest": digest, "size": oci_image["layer_sizes"][0]})
    assert digest in str(caught.value)
    assert oci_image["reference"] in str(caught.value)


def test_corrupt_manifest_fetched_by_digest_is_refused(oci_image, tmp_path, skopeo):
    corrupt_blob(oci_image["layout"], oci_image["manifest_digest"])
    with open_ref(oci_image["reference"]) as source, pytest.raises(DigestMismatch, match=oci_image["manifest_digest"]):
        source.get_manifest()


def test_corrupt_blob_in_dir_and_archive_is_detected(oci_image, tmp_path, skopeo):
    skopeo.copy(oci_image["reference"], "dir:%s" % (tmp_path / "d"))
    digest = oci_image["layer_digests"][1]
    path = tmp_path / "d" / digest[7:]
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with open_ref("dir:%s" % (tmp_path / "d")) as source, pytest.raises(DigestMismatch, match=digest):
        read_all(source, {"digest": digest, "size": oci_image["layer_sizes"][1]})

    skopeo.copy(oci_image["reference"], "docker-archive:%s" % (tmp_path / "d.tar"))
    data = bytearray((tmp_path / "d.tar").read_bytes())
    with tarfile.open(tmp_path / "d.tar") as tar:
        member = tar.getmember(oci_image["diff_ids"][0][7:] + ".tar")
    data[member.offset_data + 700] ^= 0xFF
    (tmp_path / "d.tar").write_bytes(bytes(data))
    with open_ref("docker-archive:%s" % (tmp_path / "d.tar")) as source, pytest.raises(DigestMismatch, match=oci_image["diff_ids"][0]):
        read_all(source, {"digest": oci_image["diff_ids"][0], "size": None})


@pytest.mark.parametrize(
    "ref, error, says",
    [
        ("dir:{tmp}/nowhere", NotFound, "does not exist"),
        ("dir:{tmp}/empty", NotFound, "no manifest.json"),
        ("oci:{tmp}/nowhere:latest", NotFound, "does not exist"),
        ("oci:{tmp}/empty:latest", NotFound, "no index.json"),
        ("oci:{tmp}/no-index:latest", LocalFormatError, "index.json is missing"),
        ("oci-archive:{tmp}/nowhere.tar", NotFound, "does not exist"),
        ("oci-archive:{tmp}/not-a-tar.tar", LocalFormatError, "not a readable tar"),
        ("docker-archive:{tmp}/nowhere.tar", NotFound, "does not exist"),
        ("docker-archive:{tmp}/empty.tar", NotFound, "has no manifest.json"),
    ],
)
def test_missing_or_malformed_local_images_name_the_reference(tmp_path, ref, error, says):
    (tmp_path / "empty").mkdir()
    (tmp_path / "no-index").mkdir()
    (tmp_path / "no-index" / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "not-a-tar.tar").write_bytes(b"hello, this is not a tar file" * 30)
    write_tar(tmp_path / "empty.tar", {"something": b"x"})
    ref = ref.format(tmp=tmp_path)
    with pytest.raises(error) as caught, open_ref(ref) as source:
        source.get_manifest()
    assert says in str(caught.value)
    assert ref in str(caught.value)


def test_missing_blob_is_not_found_naming_the_digest(oci_image):
    digest = oci_image["layer_digests"][0]
    os.unlink(os.path.join(oci_image["layout"], "blobs", "sha256", digest[7:]))
    with open_ref(oci_image["reference"]) as source, pytest.raises(NotFound) as caught:
        source.open_blob(digest)
    assert digest in str(caught.value) and oci_image["reference"] in str(caught.value)


def test_unknown_child_manifest_is_not_found(oci_image, tmp_path, skopeo):
    skopeo.copy(oci_image["reference"], "dir:%s" % (tmp_path / "d"))
    missing = "sha256:" + "0" * 64
    for ref in (oci_image["reference"], "dir:%s" % (tmp_path / "d")):
        with open_ref(ref) as source, pytest.raises(NotFound, match=missing):
            source.get_manifest(missing)


# --- unsafe archives ------------------------------------------------------------------------------


def write_tar(path, members: dict, links: dict | None = None, hardlinks: dict | None = None) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
        for name, target in (hardlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.LNKTYPE
            info.linkname = target
            tar.addfile(info)


def layout_members(oci_image) -> dict:
    members = {}
    for root, _unused, names in os.walk(oci_image["layout"]):
        for name in names:
            full = os.path.join(root, name)
            members[os.path.relpath(full, oci_image["layout"])] = read_bytes(full)
    return members


@pytest.mark.parametrize(
    "extra, links, hardlinks, says",
    [
        ({"../escape": b"x"}, None, None, "escapes the archive"),
        ({"blobs/../../escape": b"x"}, None, None, "escapes the archive"),
        ({"/etc/absolute": b"x"}, None, None, "absolute path"),
        ({}, {"blobs/evil": "../../etc/passwd"}, None, "symbolic link"),
        ({}, {"evil": "/etc/passwd"}, None, "symbolic link"),
        ({}, None, {"evil": "../outside"}, "hard link"),
    ],
)
@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_archives_with_unsafe_members_are_refused(oci_image, tmp_path, skopeo, extra, links, hardlinks, says, transport):
    if transport == "oci-archive":
        members = layout_members(oci_image)
    else:
        skopeo.copy(oci_image["reference"], "docker-archive:%s" % (tmp_path / "ok.tar"))
        with tarfile.open(tmp_path / "ok.tar") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}
    members.update(extra)
    path = tmp_path / "unsafe.tar"
    write_tar(path, members, links, hardlinks)
    with pytest.raises(LocalFormatError) as caught, open_ref("%s:%s" % (transport, path)) as source:
        source.get_manifest()
    assert says in str(caught.value) and "unsafe member" in str(caught.value)


def test_symlinks_inside_an_archive_are_followed(oci_image, tmp_path, skopeo):
    """skopeo's docker-archive links <id>/layer.tar to ../<diffid>.tar; links that stay inside are fine."""
    members = layout_members(oci_image)
    digest = oci_image["layer_digests"][0]
    data = members.pop("blobs/sha256/" + digest[7:])
    members["payload/real"] = data
    path = tmp_path / "linked.tar"
    write_tar(path, members, links={"blobs/sha256/" + digest[7:]: "../../payload/real"})
    with open_ref("oci-archive:%s" % path) as source:
        assert sha256(read_all(source, {"digest": digest, "size": len(data)})) == digest
    assert_matches_skopeo(skopeo, "oci-archive:%s" % path)
