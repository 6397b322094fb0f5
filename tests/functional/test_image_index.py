"""image_index: a multi-arch index assembled from separate images; skopeo and podman pull the right platform from it."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible_run import run_module
from images import build_image, build_image_of_tars, build_index, tar_of

pytestmark = pytest.mark.timeout(600)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def index(dest: str, images=None, check: bool = False, diff: bool = False, **extra):
    args = {"dest": dest, "images": images or [], "src_validate_certs": False, "dest_validate_certs": False}
    args.update(extra)
    return run_module("image_index", args, check=check, diff=diff)


@pytest.fixture
def arches(tmp_path, registry, skopeo):
    """Three single-arch images pushed to the registry as separate tags, as separate build jobs leave them."""
    refs = {}
    for n, (arch, variant) in enumerate((("amd64", None), ("arm64", "v8"), ("s390x", None))):
        info = build_image(str(tmp_path / arch), ref="v1", layer_sizes=(1500 + n,), seed=300 + n, architecture=arch, variant=variant)
        ref = "docker://%s/index/app:1-%s" % (registry.host, arch)
        skopeo.copy(info["reference"], ref)
        refs[arch] = (ref, info)
    return refs


def raw_of(ref: str, skopeo) -> bytes:
    return skopeo.inspect_raw(ref)


def test_index_from_separate_images_is_pulled_per_platform_by_skopeo_and_podman(arches, registry, skopeo, podman_store):
    dest = "docker://%s/index/app:1" % registry.host
    run = index(dest, [{"src": arches["amd64"][0]}, {"src": arches["arm64"][0]}])
    assert not run.failed, run.output
    assert run.changed
    raw = raw_of(dest, skopeo)
    assert run.result["digest"] == digest_of(raw)
    doc = json.loads(raw)
    assert doc["mediaType"] == OCI_INDEX
    assert [(m["platform"], m["digest"]) for m in doc["manifests"]] == [
        ({"architecture": "amd64", "os": "linux"}, arches["amd64"][1]["manifest_digest"]),
        ({"architecture": "arm64", "os": "linux", "variant": "v8"}, arches["arm64"][1]["manifest_digest"]),
    ]
    for arch in ("amd64", "arm64"):
        inspected = skopeo.inspect(dest, "--override-arch", arch)
        assert inspected["Architecture"] == arch and inspected["Layers"] == arches[arch][1]["layer_digests"]
        podman_store.podman("pull", "-q", "--tls-verify=false", "--arch", arch, dest)
        assert podman_store.inspect(dest.replace("docker://", ""))["Architecture"] == arch
    # The same images again: the same bytes, so nothing is written.
    again = index(dest, [{"src": arches["amd64"][0]}, {"src": arches["arm64"][0]}])
    assert not again.failed, again.output
    assert again.changed is False and again.result["digest"] == run.result["digest"]
    assert again.result["blobs"] == {"copied": 0, "skipped": 0, "mounted": 0}


def test_add_replace_and_remove_one_platform(arches, registry, skopeo, tmp_path):
    dest = "docker://%s/index/grow:1" % registry.host
    assert not index(dest, [{"src": arches["amd64"][0]}]).failed
    # add one
    added = index(dest, [{"src": arches["s390x"][0]}], merge=True, diff=True)
    assert not added.failed, added.output
    assert [m["platform"] for m in added.result["manifests"]] == ["linux/amd64", "linux/s390x"]
    assert "linux/s390x" in added.stdout  # the diff Ansible prints: platforms before and after
    # replace one: a rebuilt amd64 image takes the place of the old entry, the other stays
    rebuilt = build_image(str(tmp_path / "rebuilt"), ref="v2", layer_sizes=(999,), seed=999, architecture="amd64")
    replaced = index(dest, [{"src": rebuilt["reference"]}], merge=True)
    assert not replaced.failed, replaced.output
    doc = json.loads(raw_of(dest, skopeo))
    assert [m["digest"] for m in doc["manifests"]] == [rebuilt["manifest_digest"], arches["s390x"][1]["manifest_digest"]]
    assert skopeo.inspect(dest, "--override-arch", "amd64")["Layers"] == rebuilt["layer_digests"]
    # remove one; removing it again changes nothing
    removed = index(dest, remove=["linux/s390x"])
    assert not removed.failed, removed.output
    assert [m["platform"]["architecture"] for m in json.loads(raw_of(dest, skopeo))["manifests"]] == ["amd64"]
    assert index(dest, remove=["linux/s390x"]).changed is False
    emptied = index(dest, remove=["linux/amd64"])
    assert emptied.failed and "the index would hold no image" in emptied.result["msg"]


def test_check_mode_reports_the_digest_the_real_run_writes_and_writes_nothing(arches, registry, skopeo):
    dest = "docker://%s/index/checked:1" % registry.host
    images = [{"src": arches["arm64"][0]}, {"src": arches["s390x"][0]}]
    predicted = index(dest, images, check=True, diff=True)
    assert not predicted.failed, predicted.output
    assert predicted.changed
    with pytest.raises(skopeo.SkopeoFailed):
        raw_of(dest, skopeo)
    done = index(dest, images)
    assert done.result["digest"] == predicted.result["digest"]
    assert done.result["blobs"] == predicted.result["blobs"]
    assert index(dest, images, check=True).changed is False


@pytest.mark.parametrize("transport", ["oci", "oci-archive", "dir"])
def test_index_written_to_local_destinations_is_read_by_skopeo(arches, tmp_path, skopeo, transport):
    dest = "%s:%s/out%s" % (transport, tmp_path, "" if transport == "dir" else ":multi")
    images = [{"src": arches["amd64"][0]}, {"src": arches["arm64"][0]}]
    run = index(dest, images)
    assert not run.failed, run.output
    for arch in ("amd64", "arm64"):
        assert skopeo.inspect(dest, "--override-arch", arch)["Architecture"] == arch
    skopeo.copy(dest, "oci:%s/check:1" % tmp_path, "--multi-arch", "all")  # every blob of every image read and verified
    assert index(dest, images).changed is False
    added = index(dest, [{"src": arches["s390x"][0]}], merge=True)
    assert not added.failed, added.output
    assert skopeo.inspect(dest, "--override-arch", "s390x")["Architecture"] == "s390x"


def test_platform_given_picks_out_of_an_index_and_files_an_image(tmp_path, registry, skopeo):
    multi = build_index(str(tmp_path / "multi"), ref="m", platforms=["linux/amd64", "linux/arm/v7"], seed=41)
    plain = build_image_of_tars(str(tmp_path / "plain"), "v1", [tar_of({"x": b"x"})])  # its config names amd64
    dest = "docker://%s/index/picked:1" % registry.host
    run = index(dest, [{"src": multi["reference"], "platform": "linux/arm/v7"}, {"src": plain["reference"], "platform": "linux/riscv64"}])
    assert not run.failed, run.output
    doc = json.loads(raw_of(dest, skopeo))
    assert [m["platform"] for m in doc["manifests"]] == [
        {"architecture": "arm", "os": "linux", "variant": "v7"},
        {"architecture": "riscv64", "os": "linux"},
    ]
    assert doc["manifests"][0]["digest"] == multi["manifests"][1]["manifest_digest"]
    unpicked = index(dest, [{"src": multi["reference"]}])
    assert unpicked.failed and "is an index: give the platform to take from it" in unpicked.result["msg"]


def test_docker_images_make_a_docker_manifest_list_unless_oci_is_asked(tmp_path, registry, skopeo):
    refs = []
    for arch in ("amd64", "arm64"):
        info = build_image(str(tmp_path / arch), ref="v1", layer_sizes=(800,), seed=hash(arch) % 1000, architecture=arch, media="docker")
        ref = "docker://%s/index/docker:%s" % (registry.host, arch)
        assert not run_module("image_copy", {"src": info["reference"], "dest": ref, "dest_validate_certs": False}).failed
        refs.append({"src": ref})
    dest = "docker://%s/index/docker:multi" % registry.host
    run = index(dest, refs)
    assert not run.failed, run.output
    assert json.loads(raw_of(dest, skopeo))["mediaType"] == DOCKER_LIST
    assert skopeo.inspect(dest, "--override-arch", "arm64")["Architecture"] == "arm64"
    oci = index(dest, refs, format="oci")
    assert oci.changed and json.loads(raw_of(dest, skopeo))["mediaType"] == OCI_INDEX


def test_bad_requests_are_messages_and_write_nothing(arches, tmp_path, registry, skopeo):
    twice = index("docker://%s/index/never:1" % registry.host, [{"src": arches["amd64"][0]}, {"src": arches["amd64"][0]}])
    assert twice.failed and "two images for platform linux/amd64" in twice.result["msg"]
    archive = index("docker-archive:%s/one.tar:app:1" % tmp_path, [{"src": arches["amd64"][0]}])
    assert archive.failed and "cannot hold an index" in archive.result["msg"]
    v2s2 = index("docker://%s/index/never:1" % registry.host, [{"src": arches["amd64"][0]}], format="v2s2")
    assert v2s2.failed and "a Docker manifest list holds Docker schema 2 images only" in v2s2.result["msg"]
    single = "docker://%s/index/single:1" % registry.host
    skopeo.copy(arches["amd64"][0], single)
    merge = index(single, [{"src": arches["arm64"][0]}], merge=True)
    assert merge.failed and "names a single image, not an index" in merge.result["msg"]
    with pytest.raises(skopeo.SkopeoFailed):
        skopeo.inspect_raw("docker://%s/index/never:1" % registry.host)
    assert "one.tar" not in os.listdir(str(tmp_path))
