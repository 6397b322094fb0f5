# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dir:, oci:, oci-archive: and docker-archive: writers, with skopeo as the oracle.

Each test pushes an image built by tests/lib/images.py through a destination the way the copy
engine does (blobs, child manifests, top manifest, commit), then has skopeo read the result, or
compares it with what skopeo itself writes for the same copy.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from images import build_image, build_index

from ansible_collections.oci.images.plugins.module_utils import _media
from ansible_collections.oci.images.plugins.module_utils._compression import GunzipReader
from ansible_collections.oci.images.plugins.module_utils._convert import go_json, uncompressed_manifest
from ansible_collections.oci.images.plugins.module_utils._digest import VerifyingReader, sha256_digest
from ansible_collections.oci.images.plugins.module_utils._errors import DigestMismatch, InvalidReference, LocalFormatError
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._transports import _oci_layout
from ansible_collections.oci.images.plugins.module_utils._transports._table import open_destination, open_source

REF_NAME = "org.opencontainers.image.ref.name"


# --- a tiny stand-in for the copy engine ------------------------------------------------------


def push(src: str, dest: str, corrupt_layer: bool = False) -> str | None:
    """Copy ``src`` into ``dest`` through the destination's methods, in the engine's order; return current_digest() after."""
    with open_source(parse_reference(src)) as source, open_destination(parse_reference(dest)) as destination:
        destination.current_digest()
        raw, media_type = source.get_manifest()
        doc, media_type = _media.parse_manifest(raw, media_type, src)
        if _media.is_index(media_type):
            for child in doc["manifests"]:
                child_raw, child_type = source.get_manifest(child["digest"])
                _push_image(source, destination, child_raw, child_type, False, corrupt_layer)
            destination.put_manifest(raw, media_type, sha256_digest(raw), True)
        else:
            _push_image(source, destination, raw, media_type, True, corrupt_layer)
        destination.commit()
        return destination.current_digest()


def _push_image(source, destination, raw, media_type, top, corrupt_layer) -> None:
    doc, media_type = _media.parse_manifest(raw, media_type, str(source.reference))
    config = doc["config"]
    blobs = [(config, source.open_blob(config["digest"], config["size"]), config["digest"], config["size"])]
    if destination.wants_uncompressed_layers:
        new_doc = uncompressed_manifest(doc, json.loads(source.get_blob_bytes(config["digest"], config["size"])), "test")
        for layer, target in zip(doc["layers"], new_doc["layers"]):
            stream = VerifyingReader(GunzipReader(source.open_blob(layer["digest"], layer["size"]), "test"), target["digest"], None, "test")
            blobs.append((layer, stream, target["digest"], None))
        raw, media_type = go_json(new_doc), _media.DOCKER_MANIFEST
    else:
        blobs += [(layer, source.open_blob(layer["digest"], layer["size"]), layer["digest"], layer["size"]) for layer in doc["layers"]]
    for i, (descriptor, stream, digest, size) in enumerate(blobs):
        with stream:
            if destination.has_blob(digest, size):
                continue
            if corrupt_layer and i == len(blobs) - 1:
                stream = VerifyingReader(io.BytesIO(b"x" * (size or 10)), digest, size, "test")
            destination.put_blob(stream, digest, size, descriptor["mediaType"])
    destination.put_manifest(raw, media_type, sha256_digest(raw), top)


def listing(path) -> dict:
    """Every file under ``path`` with its bytes (for before/after comparisons)."""
    out = {}
    for root, _unused, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def tar_members(path) -> dict:
    """name -> (type, bytes or link target) of every member."""
    out = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.isfile():
                out[member.name] = (member.type, tar.extractfile(member).read())
            else:
                out[member.name] = (member.type, member.linkname)
    return out


def read_back(ref: str) -> tuple[str, list[str]]:
    """Our reader's digest and layer digests for ``ref``."""
    with open_source(parse_reference(ref)) as source:
        raw, media_type = source.get_manifest()
        doc, _unused = _media.parse_manifest(raw, media_type, ref)
        layers = [layer["digest"] for layer in doc.get("layers") or []]
        return source.manifest_digest(raw), layers


@pytest.fixture
def image(tmp_path):
    return build_image(str(tmp_path / "src"), ref="latest", layer_sizes=(4096, 1024))


@pytest.fixture
def other_image(tmp_path):
    return build_image(str(tmp_path / "src"), ref="other", layer_sizes=(2048,), seed=7)


@pytest.fixture
def index(tmp_path):
    return build_index(str(tmp_path / "idx"), ref="latest", layer_sizes=(2048,))


# --- dir: -------------------------------------------------------------------------------------


def test_dir_write_is_identical_to_skopeo(skopeo, image, tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert push(image["reference"], "dir:%s" % ours) == image["manifest_digest"]
    skopeo.copy(image["reference"], "dir:%s" % theirs)
    assert listing(ours) == listing(theirs)
    with open(ours / "version", "rb") as f:
        assert f.read() == b"Directory Transport Version: 1.1\n"
    assert skopeo.inspect("dir:%s" % ours)["Digest"] == image["manifest_digest"]
    assert read_back("dir:%s" % ours) == (image["manifest_digest"], image["layer_digests"])
    assert sorted(os.listdir(tmp_path)) == ["ours", "src", "theirs"]  # no temporary left behind


def test_dir_index_children_named_like_skopeo(skopeo, index, tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    push(index["reference"], "dir:%s" % ours)
    skopeo.copy(index["reference"], "dir:%s" % theirs, "--multi-arch", "all")
    assert listing(ours) == listing(theirs)
    for child in index["manifests"]:
        assert (ours / ("%s.manifest.json" % child["manifest_digest"][7:])).is_file()
    assert skopeo.inspect("dir:%s" % ours)["Digest"] == index["index_digest"]


def test_dir_replaces_an_existing_image_directory(skopeo, image, other_image, tmp_path):
    dest = "dir:%s" % (tmp_path / "d")
    push(image["reference"], dest)
    assert push(other_image["reference"], dest) == other_image["manifest_digest"]
    assert skopeo.inspect(dest)["Digest"] == other_image["manifest_digest"]
    assert image["layer_digests"][0][7:] not in os.listdir(tmp_path / "d")  # old blobs gone: one image per directory
    assert sorted(os.listdir(tmp_path)) == ["d", "src"]


def test_dir_refuses_to_replace_an_unrelated_directory(image, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with open_destination(parse_reference("dir:%s" % (tmp_path / "mine"))) as destination, pytest.raises(LocalFormatError, match="refusing to replace"):
        destination.current_digest()
    with pytest.raises(LocalFormatError, match="not an image directory"):
        push(image["reference"], "dir:%s" % (tmp_path / "mine"))
    assert listing(tmp_path / "mine") == {"notes.txt": b"keep me"}


def test_dir_digest_mismatch_keeps_previous_image(image, other_image, tmp_path):
    dest = "dir:%s" % (tmp_path / "d")
    push(image["reference"], dest)
    before = listing(tmp_path / "d")
    with pytest.raises(DigestMismatch):
        push(other_image["reference"], dest, corrupt_layer=True)
    assert listing(tmp_path / "d") == before
    assert sorted(os.listdir(tmp_path)) == ["d", "src"]


# --- oci: -------------------------------------------------------------------------------------


def test_oci_write_matches_skopeo(skopeo, image, tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert push(image["reference"], "oci:%s:v1" % ours) == image["manifest_digest"]
    skopeo.copy(image["reference"], "oci:%s:v1" % theirs)
    assert listing(ours) == listing(theirs)
    with open(ours / "oci-layout", "rb") as f:
        assert f.read() == b'{"imageLayoutVersion": "1.0.0"}'
    oracle = skopeo.inspect("oci:%s:v1" % ours)
    assert (oracle["Digest"], oracle["Layers"]) == (image["manifest_digest"], image["layer_digests"])
    assert read_back("oci:%s:v1" % ours) == (image["manifest_digest"], image["layer_digests"])
    skopeo.copy("oci:%s:v1" % ours, "oci:%s:back" % (tmp_path / "back"))
    assert skopeo.inspect("oci:%s:back" % (tmp_path / "back"))["Digest"] == image["manifest_digest"]


def test_oci_index_write_matches_skopeo(skopeo, index, tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    push(index["reference"], "oci:%s:multi" % ours)
    skopeo.copy(index["reference"], "oci:%s:multi" % theirs, "--multi-arch", "all")
    assert listing(ours) == listing(theirs)
    assert skopeo.inspect("oci:%s:multi" % ours)["Digest"] == index["index_digest"]


def test_oci_without_ref_writes_an_unnamed_entry_like_skopeo(skopeo, image, tmp_path):
    push(image["reference"], "oci:%s" % (tmp_path / "ours"))
    skopeo.copy(image["reference"], "oci:%s" % (tmp_path / "theirs"))
    assert listing(tmp_path / "ours") == listing(tmp_path / "theirs")
    assert skopeo.inspect("oci:%s" % (tmp_path / "ours"))["Digest"] == image["manifest_digest"]


def test_oci_refs_move_like_skopeo(skopeo, image, other_image, tmp_path):
    """Same sequence of copies into two layouts, ours and skopeo's: index.json ends up byte-identical."""
    steps = [(image, "foo"), (other_image, "foo"), (image, "bar"), (image, "foo"), (other_image, None), (image, None)]
    for source, ref in steps:
        suffix = ":" + ref if ref else ""
        push(source["reference"], "oci:%s%s" % (tmp_path / "ours", suffix))
        skopeo.copy(source["reference"], "oci:%s%s" % (tmp_path / "theirs", suffix))
        with open(tmp_path / "ours" / "index.json", "rb") as a, open(tmp_path / "theirs" / "index.json", "rb") as b:
            assert a.read() == b.read()
    entries = json.loads((tmp_path / "ours" / "index.json").read_text())["manifests"]
    # foo moved from A to B and back (B stays, unnamed); "A as bar" replaced A's unnamed entry in
    # place; an unnamed copy of B replaced B's unnamed entry; an unnamed copy of A was appended.
    assert [(e["digest"], (e.get("annotations") or {}).get(REF_NAME)) for e in entries] == [
        (image["manifest_digest"], "bar"),
        (other_image["manifest_digest"], None),
        (image["manifest_digest"], "foo"),
        (image["manifest_digest"], None),
    ]


def test_oci_update_keeps_other_refs_and_skips_present_blobs(skopeo, image, other_image, index, tmp_path):
    layout = tmp_path / "layout"
    skopeo.copy(image["reference"], "oci:%s:keep" % layout)
    skopeo.copy(other_image["reference"], "oci:%s:app" % layout)
    with open_destination(parse_reference("oci:%s:app" % layout)) as destination:
        assert destination.current_digest() == other_image["manifest_digest"]
        assert destination.has_blob(image["layer_digests"][0], image["layer_sizes"][0])
        assert not destination.has_blob(image["layer_digests"][0], image["layer_sizes"][0] + 1)
    push(index["reference"], "oci:%s:app" % layout)
    assert skopeo.inspect("oci:%s:keep" % layout)["Digest"] == image["manifest_digest"]
    assert skopeo.inspect("oci:%s:app" % layout)["Digest"] == index["index_digest"]
    # the lock file next to the layout's files does not bother skopeo
    assert ".oci-images.lock" in os.listdir(layout)
    assert [n for n in os.listdir(layout) if n.startswith(".oci-images-tmp")] == []


def test_oci_digest_mismatch_leaves_layout_as_it_was(image, other_image, tmp_path):
    layout = tmp_path / "layout"
    push(image["reference"], "oci:%s:keep" % layout)
    before = listing(layout)
    with pytest.raises(DigestMismatch):
        push(other_image["reference"], "oci:%s:new" % layout, corrupt_layer=True)
    assert listing(layout) == before
    assert sorted(os.listdir(layout)) == ["blobs", "index.json", "oci-layout"]


def test_oci_digest_mismatch_on_new_layout_leaves_nothing(image, tmp_path):
    with pytest.raises(DigestMismatch):
        push(image["reference"], "oci:%s:x" % (tmp_path / "new"), corrupt_layer=True)
    assert sorted(os.listdir(tmp_path)) == ["src"]


def _commit_ref(args):
    src, dest = args
    return push(src, dest)


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_oci_concurrent_commits_keep_every_entry(image, other_image, tmp_path, mode, monkeypatch):
    # Widen the read-modify-write window of index.json so that, without the lock, entries are lost every time.
    add_entry = _oci_layout.add_index_entry

    def slow_add_entry(index, entry):
        time.sleep(0.02)
        return add_entry(index, entry)

    monkeypatch.setattr(_oci_layout, "add_index_entry", slow_add_entry)
    sources = [image["reference"], other_image["reference"]] * 2
    for attempt in range(4):
        layout = tmp_path / ("layout%d" % attempt)
        jobs = [(src, "oci:%s:ref%d" % (layout, i)) for i, src in enumerate(sources)]
        if mode == "threads":
            with ThreadPoolExecutor(len(jobs)) as pool:
                list(pool.map(_commit_ref, jobs))
        else:
            with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
                pool.map(_commit_ref, jobs)
        entries = json.loads((layout / "index.json").read_text())["manifests"]
        assert sorted((e.get("annotations") or {}).get(REF_NAME) for e in entries) == ["ref0", "ref1", "ref2", "ref3"]
        for i, src in enumerate(sources):
            assert read_back("oci:%s:ref%d" % (layout, i))[0] == read_back(src)[0]
        assert [n for n in os.listdir(tmp_path) if n.startswith(".oci-images")] == []


# --- oci-archive: -----------------------------------------------------------------------------


def test_oci_archive_write_is_read_by_skopeo(skopeo, image, tmp_path):
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    assert push(image["reference"], "oci-archive:%s:v1" % ours) == image["manifest_digest"]
    skopeo.copy(image["reference"], "oci-archive:%s:v1" % theirs)
    mine, skopeos = tar_members(ours), tar_members(theirs)
    assert set(mine) == set(skopeos)
    assert all(mine[name][1] == skopeos[name][1] for name in mine)
    oracle = skopeo.inspect("oci-archive:%s:v1" % ours)
    assert (oracle["Digest"], oracle["Layers"]) == (image["manifest_digest"], image["layer_digests"])
    skopeo.copy("oci-archive:%s:v1" % ours, "oci:%s:back" % (tmp_path / "back"))
    assert skopeo.inspect("oci:%s:back" % (tmp_path / "back"))["Digest"] == image["manifest_digest"]
    assert read_back("oci-archive:%s:v1" % ours) == (image["manifest_digest"], image["layer_digests"])


def test_oci_archive_index_and_replacement_like_skopeo(skopeo, image, index, tmp_path):
    archive = tmp_path / "a.tar"
    push(image["reference"], "oci-archive:%s:one" % archive)
    push(index["reference"], "oci-archive:%s:two" % archive)
    # skopeo replaces the whole archive too: the other ref is gone
    entries = json.loads(tar_members(archive)["index.json"][1])["manifests"]
    assert [(e["digest"], e["annotations"][REF_NAME]) for e in entries] == [(index["index_digest"], "two")]
    assert skopeo.inspect("oci-archive:%s:two" % archive)["Digest"] == index["index_digest"]
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "idx", "src"]


def test_oci_archive_refuses_to_replace_a_file_that_is_not_one(image, tmp_path):
    (tmp_path / "notes.tar").write_bytes(b"not an archive")
    with pytest.raises(LocalFormatError, match="refusing to replace"):
        push(image["reference"], "oci-archive:%s" % (tmp_path / "notes.tar"))
    assert (tmp_path / "notes.tar").read_bytes() == b"not an archive"


def test_oci_archive_digest_mismatch_keeps_previous_archive(image, other_image, tmp_path):
    archive = tmp_path / "a.tar"
    push(image["reference"], "oci-archive:%s" % archive)
    before = archive.read_bytes()
    with pytest.raises(DigestMismatch):
        push(other_image["reference"], "oci-archive:%s" % archive, corrupt_layer=True)
    assert archive.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "src"]


# --- docker-archive: --------------------------------------------------------------------------


def test_docker_archive_members_are_skopeos(skopeo, image, tmp_path):
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    name = "registry.example.com/team/app:1.0"
    assert push(image["reference"], "docker-archive:%s:%s" % (ours, name)) == image["config_digest"]
    skopeo.copy(image["reference"], "docker-archive:%s:%s" % (theirs, name))
    # same names, same order, same bytes and link targets: layers by diff ID, config, legacy dirs, manifest.json, repositories
    with tarfile.open(ours) as a, tarfile.open(theirs) as b:
        assert a.getnames() == b.getnames()
    assert tar_members(ours) == tar_members(theirs)
    manifest = json.loads(tar_members(ours)["manifest.json"][1])
    assert manifest == [
        {
            "Config": image["config_digest"][7:] + ".json",
            "RepoTags": [name],
            "Layers": [d[7:] + ".tar" for d in image["diff_ids"]],
        }
    ]
    our_digest, our_layers = read_back("docker-archive:%s" % ours)
    oracle = skopeo.inspect("docker-archive:%s" % ours)
    assert (oracle["Digest"], oracle["Layers"]) == (our_digest, image["diff_ids"])
    assert our_layers == image["diff_ids"]
    skopeo.copy("docker-archive:%s" % ours, "oci:%s:back" % (tmp_path / "back"))
    assert skopeo.inspect("oci:%s:back" % (tmp_path / "back"))["Layers"]  # loads as an image


def push_layers_backwards(src: str, dest: str, announce: bool) -> None:
    """Like ``push``, with the last layer put first (as parallel downloads may end); ``announce``: call expect_blobs first."""
    with open_source(parse_reference(src)) as source, open_destination(parse_reference(dest)) as destination:
        raw, media_type = source.get_manifest()
        doc, media_type = _media.parse_manifest(raw, media_type, src)
        config = doc["config"]
        new_doc = uncompressed_manifest(doc, json.loads(source.get_blob_bytes(config["digest"], config["size"])), "test")
        if announce:
            destination.expect_blobs(
                [(config["digest"], config["mediaType"])] + [(t["digest"], layer["mediaType"]) for layer, t in zip(doc["layers"], new_doc["layers"])]
            )
        for layer, target in reversed(list(zip(doc["layers"], new_doc["layers"]))):
            stream = VerifyingReader(GunzipReader(source.open_blob(layer["digest"], layer["size"]), "test"), target["digest"], None, "test")
            with stream:
                destination.put_blob(stream, target["digest"], None, layer["mediaType"])
        with source.open_blob(config["digest"], config["size"]) as stream:
            destination.put_blob(stream, config["digest"], config["size"], config["mediaType"])
        manifest = go_json(new_doc)
        destination.put_manifest(manifest, _media.DOCKER_MANIFEST, sha256_digest(manifest), True)
        destination.commit()


@pytest.mark.parametrize("announce", [True, False], ids=["expect_blobs", "order-from-manifest"])
def test_docker_archive_is_skopeos_byte_for_byte_whatever_order_layers_arrive_in(skopeo, tmp_path, announce):
    info = build_image(str(tmp_path / "src"), ref="latest", layer_sizes=(5000, 300, 70000, 1), seed=91)
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    push_layers_backwards(info["reference"], "docker-archive:%s:localhost/app:1" % ours, announce)
    skopeo.copy(info["reference"], "docker-archive:%s:localhost/app:1" % theirs)
    with tarfile.open(ours) as a, tarfile.open(theirs) as b:
        assert a.getnames() == b.getnames()
        assert [m.get_info() for m in a.getmembers()] == [m.get_info() for m in b.getmembers()]
    assert ours.read_bytes() == theirs.read_bytes()


def test_docker_archive_without_name_has_no_repo_tags(skopeo, image, tmp_path):
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    push(image["reference"], "docker-archive:%s" % ours)
    skopeo.copy(image["reference"], "docker-archive:%s" % theirs)
    assert tar_members(ours) == tar_members(theirs)
    assert ours.read_bytes() == theirs.read_bytes()
    assert json.loads(tar_members(ours)["manifest.json"][1])[0]["RepoTags"] == []
    assert tar_members(ours)["repositories"][1] == b"{}"


def test_docker_archive_identity_is_the_image_id(image, other_image, tmp_path):
    archive = tmp_path / "a.tar"
    ref = "docker-archive:%s:example.com/app:1" % archive
    push(image["reference"], ref)
    with open_destination(parse_reference(ref)) as destination:
        assert destination.identity == "config"
        assert not destination.can_hold_index and destination.wants_uncompressed_layers
        assert destination.current_digest() == image["config_digest"]
    with open_destination(parse_reference("docker-archive:%s:example.com/app:2" % archive)) as destination:
        assert destination.current_digest() is None
    with open_destination(parse_reference("docker-archive:%s" % archive)) as destination:
        assert destination.current_digest() == image["config_digest"]
    # replaced as a whole (skopeo 1.9 refuses a non-empty file instead)
    assert push(other_image["reference"], ref) == other_image["config_digest"]


def test_docker_archive_refuses_an_index_and_a_source_index(index, tmp_path):
    with pytest.raises(InvalidReference):
        open_destination(parse_reference("docker-archive:%s:@0" % (tmp_path / "a.tar")))
    with pytest.raises(Exception, match="holds one image"):
        push(index["reference"], "docker-archive:%s" % (tmp_path / "a.tar"))
    assert sorted(os.listdir(tmp_path)) == ["idx"]


def test_docker_archive_digest_mismatch_leaves_nothing(image, tmp_path):
    with pytest.raises(DigestMismatch):
        push(image["reference"], "docker-archive:%s" % (tmp_path / "a.tar"), corrupt_layer=True)
    assert sorted(os.listdir(tmp_path)) == ["src"]


# --- every writer -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["dir", "oci", "oci-archive", "docker-archive"])
def test_opening_and_current_digest_write_nothing(transport, tmp_path):
    path = tmp_path / "missing"
    with open_destination(parse_reference("%s:%s" % (transport, path))) as destination:
        assert destination.current_digest() is None
        assert not destination.has_blob("sha256:" + "0" * 64, 1)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("transport", ["dir", "oci", "oci-archive", "docker-archive"])
def test_missing_parent_directory_is_refused(transport, tmp_path):
    with (
        open_destination(parse_reference("%s:%s" % (transport, tmp_path / "no" / "dest"))) as destination,
        pytest.raises(LocalFormatError, match="does not exist"),
    ):
        destination.current_digest()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("transport", ["dir", "oci", "oci-archive", "docker-archive"])
def test_abort_after_writes_removes_the_temporary(transport, image, tmp_path):
    with open_source(parse_reference(image["reference"])) as source:
        destination = open_destination(parse_reference("%s:%s" % (transport, tmp_path / "dest")))
        config = image["config_digest"]
        destination.put_blob(source.open_blob(config, image["config_size"]), config, image["config_size"], _media.OCI_CONFIG)
        assert destination.has_blob(config, image["config_size"])
        assert any(n.startswith(".oci-images-tmp-") for n in os.listdir(tmp_path))
        destination.abort()
        destination.close()
    assert sorted(os.listdir(tmp_path)) == ["src"]
