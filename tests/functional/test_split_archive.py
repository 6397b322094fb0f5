"""``split_size``: an ``oci-archive:`` destination written as numbered volumes plus an index, and read back.

- the volumes, each at most ``split_size`` bytes, joined with ``cat`` are an archive skopeo reads;
  the index gives each volume's size and sha256;
- an ``oci-archive:`` source whose volumes are there reads them as one archive (nothing joined on disk),
  and names a missing, truncated or damaged volume;
- a second write changes no volume; a new ``split_size`` writes them again and removes the stale ones;
  nothing temporary is left next to the volumes;
- peak memory does not grow with the archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
from ansible_run import run_module
from images import build_image
from skopeo import copy as skopeo_copy
from skopeo import inspect as skopeo_inspect

pytestmark = pytest.mark.timeout(600)

SPLIT = 64 * 1024


def volumes_of(directory: str, name: str = "bundle.tar") -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith(name + ".") and n[len(name) + 1 :].isdigit())


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def stats(directory: str) -> dict:
    return {n: (os.stat(os.path.join(directory, n)).st_ino, os.stat(os.path.join(directory, n)).st_mtime_ns) for n in os.listdir(directory)}


def assert_clean_failure(run, *names: str) -> str:
    assert run.failed, run.result
    msg = run.result.get("msg") or ""
    assert "Traceback" not in run.output and "module_stderr" not in run.result, run.output
    for name in names:
        assert name in msg, "msg does not name %r: %s" % (name, msg)
    return msg


@pytest.fixture
def image(tmp_path):
    return build_image(str(tmp_path / "layout"), ref="latest", layer_sizes=(150_000, 90_000, 30_000), labels={"test": "split"})


@pytest.fixture
def split(tmp_path, image):
    """The image written as ``bundle.tar`` in 64 KiB volumes; the directory holding them."""
    out = tmp_path / "media"
    out.mkdir()
    run = run_module("image_copy", {"src": image["reference"], "dest": "oci-archive:%s/bundle.tar:app" % out, "split_size": "64K"})
    assert run.changed and not run.failed, run.output
    return str(out)


def test_volumes_are_at_most_split_size_and_the_index_gives_their_sizes_and_sha256(split):
    names = volumes_of(split)
    assert names == ["bundle.tar.%03d" % i for i in range(len(names))] and len(names) >= 4
    index = json.loads(read(os.path.join(split, "bundle.tar.volumes.json")))
    assert [v["name"] for v in index["volumes"]] == names
    assert index["split_size"] == SPLIT
    for entry in index["volumes"]:
        data = read(os.path.join(split, entry["name"]))
        assert len(data) == entry["size"] <= SPLIT
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert all(v["size"] == SPLIT for v in index["volumes"][:-1])
    assert sorted(os.listdir(split)) == [*names, "bundle.tar.volumes.json"]  # nothing temporary, no unsplit archive


def test_joined_volumes_are_an_archive_skopeo_reads(split, image, tmp_path):
    joined = tmp_path / "joined.tar"
    with open(joined, "wb") as out:
        for name in volumes_of(split):
            out.write(read(os.path.join(split, name)))
    assert skopeo_inspect("oci-archive:%s:app" % joined)["Digest"] == image["manifest_digest"]
    skopeo_copy("oci-archive:%s:app" % joined, "dir:%s" % (tmp_path / "dir"))  # every blob read and checked
    assert os.path.exists(tmp_path / "dir" / image["layer_digests"][0].partition(":")[2])


def test_split_source_reads_the_volumes_as_one_archive(split, image, tmp_path):
    before = sorted(os.listdir(split))
    info = run_module("image_info", {"image": "oci-archive:%s/bundle.tar:app" % split})
    assert not info.failed, info.output
    assert info.result["image"]["digest"] == image["manifest_digest"]
    run = run_module("image_copy", {"src": "oci-archive:%s/bundle.tar:app" % split, "dest": "oci:%s:app" % (tmp_path / "back")})
    assert run.changed and not run.failed, run.output
    assert skopeo_inspect("oci:%s:app" % (tmp_path / "back"))["Digest"] == image["manifest_digest"]
    assert sorted(os.listdir(split)) == before  # read in place: nothing joined next to them


def test_a_missing_volume_is_named(split, tmp_path):
    os.unlink(os.path.join(split, "bundle.tar.002"))
    run = run_module("image_copy", {"src": "oci-archive:%s/bundle.tar:app" % split, "dest": "oci:%s:app" % (tmp_path / "back")})
    msg = assert_clean_failure(run, "bundle.tar.002", "missing")
    assert "bundle.tar.volumes.json" in msg
    assert not os.path.exists(tmp_path / "back")


def test_a_truncated_volume_is_named(split, tmp_path):
    path = os.path.join(split, "bundle.tar.001")
    os.truncate(path, 1000)
    run = run_module("image_info", {"image": "oci-archive:%s/bundle.tar:app" % split})
    assert_clean_failure(run, "bundle.tar.001", "damaged", "1000 bytes")


def test_a_damaged_volume_is_named(split, tmp_path):
    path = os.path.join(split, "bundle.tar.003")
    data = bytearray(read(path))
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    run = run_module("image_copy", {"src": "oci-archive:%s/bundle.tar:app" % split, "dest": "oci:%s:app" % (tmp_path / "back")})
    assert_clean_failure(run, "bundle.tar.003", "damaged", "sha256", "original media")
    assert not os.path.exists(tmp_path / "back")


def test_writing_the_same_bundle_again_changes_no_volume(split, image):
    before = stats(split)
    args = {"src": image["reference"], "dest": "oci-archive:%s/bundle.tar:app" % split, "split_size": SPLIT}
    check = run_module("image_copy", args, check=True)
    assert not check.changed and not check.failed, check.output
    again = run_module("image_copy", args)
    assert not again.changed and not again.failed, again.output
    assert stats(split) == before


def test_a_damaged_destination_volume_is_written_again(split, image):
    os.truncate(os.path.join(split, "bundle.tar.001"), 10)
    run = run_module("image_copy", {"src": image["reference"], "dest": "oci-archive:%s/bundle.tar:app" % split, "split_size": "64K"})
    assert run.changed and not run.failed, run.output
    assert run_module("image_info", {"image": "oci-archive:%s/bundle.tar:app" % split}).result["image"]["digest"] == image["manifest_digest"]


def test_another_split_size_writes_the_volumes_again_and_removes_stale_ones(split, image):
    count = len(volumes_of(split))
    run = run_module("image_copy", {"src": image["reference"], "dest": "oci-archive:%s/bundle.tar:app" % split, "split_size": "128K"})
    assert run.changed and not run.failed, run.output
    names = volumes_of(split)
    assert len(names) == (count + 1) // 2
    assert sorted(os.listdir(split)) == [*names, "bundle.tar.volumes.json"]
    assert json.loads(read(os.path.join(split, "bundle.tar.volumes.json")))["split_size"] == 128 * 1024


def test_unsplit_and_split_writes_replace_each_other(split, image):
    dest = "oci-archive:%s/bundle.tar:app" % split
    whole = run_module("image_copy", {"src": image["reference"], "dest": dest})
    assert whole.changed and not whole.failed, whole.output
    assert sorted(os.listdir(split)) == ["bundle.tar"]  # the volumes of the earlier write are gone
    assert skopeo_inspect("oci-archive:%s/bundle.tar:app" % split)["Digest"] == image["manifest_digest"]
    again = run_module("image_copy", {"src": image["reference"], "dest": dest, "split_size": "64K"})
    assert again.changed and not again.failed, again.output
    assert "bundle.tar" not in os.listdir(split) and volumes_of(split)


def test_a_file_that_is_not_an_archive_is_not_replaced_by_volumes(image, tmp_path):
    (tmp_path / "notes.tar").write_text("not an archive")
    run = run_module("image_copy", {"src": image["reference"], "dest": "oci-archive:%s/notes.tar" % tmp_path, "split_size": "64K"})
    assert_clean_failure(run, "notes.tar", "refusing")
    assert (tmp_path / "notes.tar").read_text() == "not an archive"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(("notes.tar.", ".oci-images"))]


@pytest.mark.parametrize(
    "dest, split_size, words",
    [
        ("oci:{tmp}/layout2:x", "64K", ["split_size", "oci-archive:PATH"]),
        ("oci-archive:{tmp}/b.tar", "lots", ["split_size", "'lots'", "4095M"]),
        ("oci-archive:{tmp}/b.tar", "100", ["split_size", "1024"]),
    ],
)
def test_split_size_refused_clearly(image, tmp_path, dest, split_size, words):
    run = run_module("image_copy", {"src": image["reference"], "dest": dest.format(tmp=tmp_path), "split_size": split_size})
    assert_clean_failure(run, *words)


MEASURE = textwrap.dedent(
    """
    import os, resource, sys
    sys.path[:0] = sys.argv[1:3]
    from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions, copy_image
    from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
    from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
    src, work = sys.argv[3], sys.argv[4]
    archive = parse_reference("oci-archive:%s/bundle.tar:app" % work)
    copy_image(parse_reference(src), archive, ConnectionOptions(), ConnectionOptions(split_size=4 * 1024 * 1024), CopyOptions())
    copy_image(archive, parse_reference("oci:%s/back:app" % work), ConnectionOptions(), ConnectionOptions(), CopyOptions())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def peak_rss_kib(tmp_path, layer_size: int) -> int:
    work = tmp_path / ("work-%d" % layer_size)
    work.mkdir()
    image = build_image(str(work / "layout"), ref="latest", layer_sizes=(layer_size,), seed=layer_size)
    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
    from collection_tree import ensure_collection_tree

    root = ensure_collection_tree(os.path.dirname(os.path.dirname(lib)))
    out = subprocess.run([sys.executable, "-c", MEASURE, root, lib, image["reference"], str(work)], capture_output=True, text=True, check=True)
    assert len([n for n in os.listdir(work) if n.startswith("bundle.tar.")]) >= layer_size // (4 * 1024 * 1024)
    return int(out.stdout.strip())


def test_peak_memory_does_not_grow_with_the_archive(tmp_path):
    small = peak_rss_kib(tmp_path, 4 * 1024 * 1024)
    large = peak_rss_kib(tmp_path, 64 * 1024 * 1024)
    # 60 MiB more archive (15 more volumes) written and read back: peak memory within 8 MiB.
    assert large - small < 8 * 1024, (small, large)
