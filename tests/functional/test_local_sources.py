"""Local sources are read as they are, and only what they hold.

- a blob, manifest or index reached through a symbolic link that leads out of an ``oci:`` layout or a
  ``dir:`` directory is refused (as an archive member that escapes is), with a message naming the
  link; a link that stays inside is read; nothing is written through such a link into a layout;
- a damaged blob (same size, other bytes; or truncated) is refused before it reaches a registry,
  with a message naming the source file and what is wrong, and nothing gets tagged.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request

import pytest
from ansible_run import run_module
from images import build_image
from skopeo import copy as skopeo_copy

pytestmark = pytest.mark.timeout(300)


def blob_file(layout: str, digest: str) -> str:
    return os.path.join(layout, "blobs", "sha256", digest.partition(":")[2])


def move_out_and_link(path: str, outside_dir: str) -> str:
    """Move ``path`` out (same bytes, so digests still match) and leave a symbolic link to it; the outside path."""
    os.makedirs(outside_dir, exist_ok=True)
    outside = os.path.join(outside_dir, os.path.basename(path))
    shutil.move(path, outside)
    os.symlink(outside, path)
    return outside


def assert_clean_failure(run, *names: str) -> str:
    assert run.failed, run.result
    msg = run.result.get("msg") or ""
    assert "Traceback" not in run.output and "module_stderr" not in run.result and "exception" not in run.result, run.output
    for name in names:
        assert name in msg, "msg does not name %r: %s" % (name, msg)
    return msg


@pytest.fixture
def image(tmp_path):
    layout = str(tmp_path / "layout")
    info = build_image(layout, ref="v1", layer_sizes=(5000, 3000), seed=4401)
    directory = str(tmp_path / "dir-image")
    skopeo_copy("oci:%s:v1" % layout, "dir:%s" % directory)
    info["dir"] = directory
    return info


@pytest.mark.parametrize(
    "what",
    ["oci-layer", "oci-config", "oci-manifest", "oci-index.json", "oci-under-linked-directory", "dir-layer", "dir-manifest.json"],
)
def test_a_file_linked_from_outside_the_source_is_refused(tmp_path, image, what):
    outside_dir = str(tmp_path / "outside")
    layout, directory = image["layout"], image["dir"]
    if what == "oci-layer":
        src, linked = "oci:%s:v1" % layout, blob_file(layout, image["layer_digests"][1])
    elif what == "oci-config":
        src, linked = "oci:%s:v1" % layout, blob_file(layout, image["config_digest"])
    elif what == "oci-manifest":
        src, linked = "oci:%s:v1" % layout, blob_file(layout, image["manifest_digest"])
    elif what == "oci-index.json":
        src, linked = "oci:%s:v1" % layout, os.path.join(layout, "index.json")
    elif what == "oci-under-linked-directory":
        # blobs/sha256 itself is a link to a directory elsewhere: every blob is outside.
        src, linked = "oci:%s:v1" % layout, os.path.join(layout, "blobs", "sha256")
    elif what == "dir-layer":
        src, linked = "dir:%s" % directory, os.path.join(directory, image["layer_digests"][0].partition(":")[2])
    else:
        src, linked = "dir:%s" % directory, os.path.join(directory, "manifest.json")
    move_out_and_link(linked, outside_dir)
    dest = tmp_path / "dest"
    run = run_module("image_copy", {"src": src, "dest": "oci:%s:v1" % dest})
    msg = assert_clean_failure(run, src, "outside")
    assert "symbolic link" in msg, msg
    assert not dest.exists()
    if "layer" not in what:  # image_info reads no layer
        info = run_module("image_info", {"image": src})
        assert_clean_failure(info, src, "outside")


def test_a_link_that_stays_inside_the_layout_is_read(tmp_path, image):
    layout = image["layout"]
    layer = blob_file(layout, image["layer_digests"][0])
    kept = os.path.join(layout, "kept-layer")
    shutil.move(layer, kept)
    os.symlink(os.path.join("..", "..", "kept-layer"), layer)
    run = run_module("image_copy", {"src": "oci:%s:v1" % layout, "dest": "oci:%s:v1" % (tmp_path / "dest")})
    assert not run.failed, run.output
    assert run.result["digest"] == image["manifest_digest"]


def test_a_linked_blob_in_the_destination_layout_is_replaced_not_reused(tmp_path, image):
    dest = str(tmp_path / "dest")
    assert not run_module("image_copy", {"src": "oci:%s:v1" % image["layout"], "dest": "oci:%s:old" % dest}).failed
    layer = blob_file(dest, image["layer_digests"][0])
    outside = move_out_and_link(layer, str(tmp_path / "outside"))
    run = run_module("image_copy", {"src": "oci:%s:v1" % image["layout"], "dest": "oci:%s:new" % dest})
    assert not run.failed, run.output
    assert not os.path.islink(layer) and os.path.isfile(layer)
    with open(outside, "rb") as a, open(layer, "rb") as b:
        assert a.read() == b.read()
    assert run.result["results"][0]["blobs"]["copied"] >= 1


def test_a_destination_layout_whose_blobs_directory_links_outside_gets_nothing_written_there(tmp_path, image):
    dest = str(tmp_path / "dest")
    assert not run_module("image_copy", {"src": "oci:%s:v1" % image["layout"], "dest": "oci:%s:old" % dest}).failed
    outside = move_out_and_link(os.path.join(dest, "blobs", "sha256"), str(tmp_path / "outside"))
    before = sorted(os.listdir(outside))
    other = build_image(str(tmp_path / "other"), ref="v2", layer_sizes=(2000,), seed=4403)
    run = run_module("image_copy", {"src": other["reference"], "dest": "oci:%s:new" % dest})
    msg = assert_clean_failure(run, "oci:%s:new" % dest, "outside")
    assert "symbolic link" in msg
    assert sorted(os.listdir(outside)) == before
    assert not [p for p in os.listdir(dest) if p.startswith(".oci-images-tmp-")]


def test_a_planted_lock_link_never_creates_a_file_outside_the_layout(tmp_path, image):
    dest = str(tmp_path / "dest")
    assert not run_module("image_copy", {"src": "oci:%s:v1" % image["layout"], "dest": "oci:%s:old" % dest}).failed
    target = tmp_path / "created-through-the-link"
    os.symlink(str(target), os.path.join(dest, ".oci-images.lock"))
    run = run_module("image_copy", {"src": "oci:%s:v1" % image["layout"], "dest": "oci:%s:new" % dest})
    msg = assert_clean_failure(run, "oci:%s:new" % dest, ".oci-images.lock")
    assert "symbolic link" in msg
    assert not target.exists()
    assert not [p for p in os.listdir(dest) if p.startswith(".oci-images-tmp-")]


def _archive_of(layout: str, path: str) -> str:
    with tarfile.open(path, "w") as tar:
        for name in sorted(os.listdir(layout)):
            tar.add(os.path.join(layout, name), arcname=name)
    return path


def tag_exists(registry, repository: str, tag: str) -> bool:
    request = urllib.request.Request("%s/v2/%s/manifests/%s" % (registry.url, repository, tag), method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
@pytest.mark.parametrize("kind", ["oci", "dir", "oci-archive"])
def test_a_damaged_local_blob_is_refused_before_it_reaches_the_registry(registry, tmp_path, kind, damage):
    layout = str(tmp_path / "layout")
    info = build_image(layout, ref="v1", layer_sizes=(200000, 2000), seed=4402)
    layer = info["layer_digests"][0]
    if kind == "dir":
        root = str(tmp_path / "dir-image")
        skopeo_copy("oci:%s:v1" % layout, "dir:%s" % root)
        path = os.path.join(root, layer.partition(":")[2])
    else:
        root, path = layout, blob_file(layout, layer)
    with open(path, "rb") as f:
        data = f.read()
    # Same size with one byte changed (only the digest can tell), or cut in half.
    data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:] if damage == "corrupted" else data[: len(data) // 2]
    with open(path, "wb") as f:
        f.write(data)
    if kind == "dir":
        src, names = "dir:%s" % root, [path]
    elif kind == "oci":
        src, names = "oci:%s:v1" % layout, [path]
    else:
        archive = _archive_of(layout, str(tmp_path / "image.tar"))
        src, names = "oci-archive:%s:v1" % archive, ["blobs/sha256/%s" % layer.partition(":")[2], archive]
    repository = "damaged/%s-%s" % (kind, damage)
    run = run_module("image_copy", {"src": src, "dest": "docker://%s/%s:v1" % (registry.host, repository), "dest_validate_certs": False, "retries": 0})
    msg = assert_clean_failure(run, src, layer, *names)
    assert ("digest mismatch" if damage == "corrupted" else "size mismatch") in msg, msg
    assert "DIGEST_INVALID" not in msg and "registry" not in msg, msg
    assert not tag_exists(registry, repository, "v1")
