"""image_copy through Ansible against the real registry, with skopeo as the oracle."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import urllib.request

import pytest
from ansible_run import run_module, run_playbook
from counting_proxy import CountingProxy
from images import build_image, build_index

pytestmark = pytest.mark.timeout(600)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def layout(tmp_path):
    path = tmp_path / "src"
    info = build_image(str(path), ref="v1", layer_sizes=(3000, 7000, 1000), seed=21, labels={"a": "b"})
    return path, info


@pytest.fixture
def multi(tmp_path):
    path = tmp_path / "multi"
    info = build_index(str(path), ref="multi", platforms=["linux/amd64", "linux/arm64/v8", "linux/arm/v7"], seed=5)
    return path, info


def copy(src: str, dest: str, check: bool = False, diff: bool = False, **extra):
    args = {"src": src, "dest": dest, "src_validate_certs": False, "dest_validate_certs": False}
    args.update(extra)
    return run_module("image_copy", args, check=check, diff=diff)


def test_copy_oci_layout_to_registry_then_second_run_writes_nothing(registry, layout, skopeo):
    path, info = layout
    with CountingProxy(registry.host) as proxy:
        dest = "docker://%s/copy/app:1.0" % proxy.host
        first = copy("oci:%s:v1" % path, dest)
        assert not first.failed, first.output
        assert first.changed
        result = first.result["results"][0]
        assert result["dest_digest_before"] is None
        assert result["dest_digest_after"] == info["manifest_digest"] == first.result["digest"]
        assert result["blobs"] == {"copied": 4, "skipped": 0, "mounted": 0}
        assert digest_of(skopeo.inspect_raw(dest)) == info["manifest_digest"]
        proxy.reset()
        second = copy("oci:%s:v1" % path, dest)
        assert not second.failed, second.output
        assert second.changed is False
        assert second.result["unchanged"] == 1
        assert proxy.writes() == []
        assert [m for m, _unused in proxy.requests] == ["HEAD"]  # one manifest HEAD, nothing else


def test_copy_registry_to_registry_preserves_index_digest(registry, multi, skopeo):
    path, info = multi
    src = "docker://%s/copy/multi-src:1" % registry.host
    skopeo.copy("oci:%s:multi" % path, src, "--multi-arch", "all")
    dest = "docker://%s/copy/multi-dest:1" % registry.host
    run = copy(src, dest)
    assert not run.failed, run.output
    assert run.result["digest"] == info["index_digest"]
    assert digest_of(skopeo.inspect_raw(dest)) == info["index_digest"]
    # every child arrived
    for child in json.loads(skopeo.inspect_raw(dest))["manifests"]:
        skopeo.inspect_raw("docker://%s/copy/multi-dest@%s" % (registry.host, child["digest"]))
    assert run.result["results"][0]["blobs"]["mounted"] > 0  # same registry: blobs mounted, not moved


def test_copy_platform_subset_gives_index_with_exactly_those_entries(registry, multi, skopeo):
    path, _unused = multi
    dest = "docker://%s/copy/subset:1" % registry.host
    run = copy("oci:%s:multi" % path, dest, platforms=["linux/arm64/v8", "linux/amd64"])
    assert not run.failed, run.output
    index = json.loads(skopeo.inspect_raw(dest))
    platforms = [(m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")) for m in index["manifests"]]
    assert platforms == [("linux", "arm64", "v8"), ("linux", "amd64", None)]
    assert run.result["digest"] == digest_of(skopeo.inspect_raw(dest))
    again = copy("oci:%s:multi" % path, dest, platforms=["linux/arm64/v8", "linux/amd64"])
    assert again.changed is False


def test_copy_system_platform_writes_one_image(registry, multi, skopeo):
    path, info = multi
    dest = "docker://%s/copy/system:1" % registry.host
    run = copy("oci:%s:multi" % path, dest, multi_arch="system", platforms=["linux/arm/v7"])
    assert not run.failed, run.output
    manifest = json.loads(skopeo.inspect_raw(dest))
    assert "layers" in manifest
    arm = next(m for m in info["manifests"] if m["platform"].get("variant") == "v7")
    assert run.result["digest"] == arm["manifest_digest"]


def test_format_conversion_matches_skopeo_digests(registry, layout, multi, skopeo):
    path, _unused = layout
    ours = "docker://%s/copy/ours-v2s2:1" % registry.host
    theirs = "docker://%s/copy/skopeo-v2s2:1" % registry.host
    run = copy("oci:%s:v1" % path, ours, format="v2s2")
    assert not run.failed, run.output
    skopeo.copy("oci:%s:v1" % path, theirs, "--format", "v2s2")
    assert skopeo.inspect_raw(ours) == skopeo.inspect_raw(theirs)
    assert json.loads(skopeo.inspect_raw(ours))["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert copy("oci:%s:v1" % path, ours, format="v2s2").changed is False


def test_format_with_preserve_digests_is_refused(layout, tmp_path):
    path, _unused = layout
    run = copy("oci:%s:v1" % path, "oci:%s:x" % (tmp_path / "out"), format="v2s2", preserve_digests=True)
    assert run.failed
    assert "preserve_digests" in run.result["msg"]
    assert not (tmp_path / "out").exists()


def test_check_mode_after_source_moved_predicts_and_real_run_matches(registry, tmp_path, skopeo):
    path = tmp_path / "moving"
    build_image(str(path), ref="v1", seed=1)
    dest = "docker://%s/copy/moving:1" % registry.host
    assert copy("oci:%s:v1" % path, dest).changed
    new = build_image(str(path), ref="v1", seed=2)  # the source tag moves
    with CountingProxy(registry.host) as proxy:
        via_proxy = "docker://%s/copy/moving:1" % proxy.host
        check = copy("oci:%s:v1" % path, via_proxy, check=True, diff=True)
        assert not check.failed, check.output
        assert check.changed
        assert proxy.writes() == []
        predicted = check.result["results"][0]
        assert predicted["dest_digest_after"] == new["manifest_digest"]
        # Ansible prints the diff (and drops it from the result it shows): before and after digests per destination.
        assert "+" in check.stdout and new["manifest_digest"] in check.stdout.split("=>")[0]
    real = copy("oci:%s:v1" % path, dest)
    assert real.changed
    done = real.result["results"][0]
    assert done["dest_digest_after"] == predicted["dest_digest_after"]
    assert done["dest_digest_before"] == predicted["dest_digest_before"]
    assert done["blobs"]["copied"] == predicted["blobs"]["copied"]
    assert digest_of(skopeo.inspect_raw(dest)) == new["manifest_digest"]


def _corrupt_first_layer(path, info) -> str:
    layer = info["layer_digests"][0]
    blob = os.path.join(str(path), "blobs", "sha256", layer.split(":")[1])
    with open(blob, "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0xFF
    with open(blob, "wb") as handle:
        handle.write(bytes(data))
    return layer


def test_corrupted_source_blob_fails_naming_digest_and_creates_nothing(registry, layout, tmp_path, skopeo):
    path, info = layout
    layer = _corrupt_first_layer(path, info)
    dest = "docker://%s/copy/corrupt:1" % registry.host
    run = copy("oci:%s:v1" % path, dest)
    assert run.failed
    assert layer in run.result["msg"]
    assert "Traceback" not in run.output
    with pytest.raises(AssertionError):
        skopeo.inspect_raw(dest)
    local = tmp_path / "local-dest"
    run = copy("oci:%s:v1" % path, "oci:%s:x" % local)
    assert run.failed
    assert layer in run.result["msg"]
    assert not local.exists()


def test_keep_going_copies_the_good_ones_and_lists_the_bad_one(registry, layout, tmp_path):
    path, info = layout
    images = [
        {"src": "oci:%s:v1" % path, "dest": "docker://%s/copy/kg-a:1" % registry.host},
        {"src": "oci:%s:missing-ref" % path, "dest": "docker://%s/copy/kg-b:1" % registry.host},
        {"src": "oci:%s:v1" % path, "dest": "docker://%s/copy/kg-c:1" % registry.host},
    ]
    run = run_module("image_copy", {"images": images, "dest_validate_certs": False, "keep_going": True, "parallel_images": 2})
    assert run.failed
    assert "missing-ref" in run.result["msg"]
    assert "1 of 3" in run.result["msg"]
    ok = [r for r in run.result["results"] if not r.get("failed")]
    assert sorted(r["dest"].rsplit("/", 1)[1] for r in ok) == ["kg-a:1", "kg-c:1"]
    assert all(r["dest_digest_after"] == info["manifest_digest"] for r in ok)


@pytest.mark.parametrize("transport", ["dir", "oci", "oci-archive"])
def test_round_trip_registry_local_registry_keeps_digest(registry, multi, tmp_path, skopeo, transport):
    path, info = multi
    src = "docker://%s/copy/rt-src-%s:1" % (registry.host, transport)
    skopeo.copy("oci:%s:multi" % path, src, "--multi-arch", "all")
    local = "%s:%s" % (transport, tmp_path / ("local." + transport)) + (":img" if transport != "dir" else "")
    out = copy(src, local)
    assert not out.failed, out.output
    assert digest_of(skopeo.inspect_raw(local)) == info["index_digest"]
    assert copy(src, local).changed is False
    back = "docker://%s/copy/rt-back-%s:1" % (registry.host, transport)
    again = copy(local, back)
    assert not again.failed, again.output
    assert digest_of(skopeo.inspect_raw(back)) == info["index_digest"]


def test_round_trip_through_docker_archive_keeps_image_id(registry, layout, tmp_path, skopeo):
    path, info = layout
    archive = "docker-archive:%s:example.com/app:1.0" % (tmp_path / "app.tar")
    out = copy("oci:%s:v1" % path, archive)
    assert not out.failed, out.output
    assert out.result["results"][0]["dest_digest_after"] == info["config_digest"]
    assert skopeo.inspect(archive)["Layers"] == info["diff_ids"]
    assert copy("oci:%s:v1" % path, archive).changed is False
    back = "docker://%s/copy/from-archive:1" % registry.host
    again = copy(archive, back)
    assert not again.failed, again.output
    assert json.loads(skopeo.skopeo("inspect", "--config", "--tls-verify=false", back))["rootfs"]["diff_ids"] == info["diff_ids"]


@pytest.mark.parametrize("source", ["oci", "registry"])
def test_docker_archive_is_skopeos_byte_for_byte_with_parallel_layers(registry, tmp_path, skopeo, source):
    # The first layer is by far the largest, so with parallel downloads it ends last.
    info = build_image(str(tmp_path / "src"), ref="v1", layer_sizes=(4000000, 100, 30000, 1, 200000, 5), seed=77)
    src = info["reference"]
    if source == "registry":
        src = "docker://%s/copy/many-layers:1" % registry.host
        skopeo.copy(info["reference"], src)
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    run = copy(src, "docker-archive:%s:localhost/app:1" % ours, parallel=6)
    assert not run.failed, run.output
    skopeo.copy(src, "docker-archive:%s:localhost/app:1" % theirs)
    with tarfile.open(ours) as a, tarfile.open(theirs) as b:
        assert a.getnames() == b.getnames()  # layers in manifest order, then the config, legacy entries, manifest.json
        assert [m.get_info() for m in a.getmembers()] == [m.get_info() for m in b.getmembers()]
    assert subprocess.run(["cmp", str(ours), str(theirs)], check=False).returncode == 0


def test_skopeo_written_local_formats_copy_to_registry(registry, layout, tmp_path, skopeo):
    path, info = layout
    for transport in ("dir", "oci-archive"):
        local = "%s:%s" % (transport, tmp_path / ("sk." + transport))
        skopeo.copy("oci:%s:v1" % path, local)
        dest = "docker://%s/copy/from-skopeo-%s:1" % (registry.host, transport)
        run = copy(local, dest)
        assert not run.failed, run.output
        assert digest_of(skopeo.inspect_raw(dest)) == info["manifest_digest"]


def test_docker_archive_refuses_multi_arch_all(multi, tmp_path):
    path, _unused = multi
    run = copy("oci:%s:multi" % path, "docker-archive:%s" % (tmp_path / "x.tar"), multi_arch="all")
    assert run.failed
    assert "multi_arch" in run.result["msg"]
    assert not (tmp_path / "x.tar").exists()


def test_docker_archive_to_registry_gzips_layers_and_keeps_the_image(registry, layout, tmp_path, skopeo):
    path, info = layout
    archive = "docker-archive:%s:example.com/app:1.0" % (tmp_path / "saved.tar")
    skopeo.copy("oci:%s:v1" % path, archive)
    dest = "docker://%s/copy/from-saved:1" % registry.host
    run = copy(archive, dest)
    assert not run.failed, run.output
    manifest = json.loads(skopeo.inspect_raw(dest))
    config = json.loads(skopeo.skopeo("inspect", "--config", "--tls-verify=false", dest))
    assert config["rootfs"]["diff_ids"] == info["diff_ids"]
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
        with urllib.request.urlopen("%s/v2/copy/from-saved/blobs/%s" % (registry.url, layer["digest"]), timeout=30) as response:
            assert response.read(2) == b"\x1f\x8b"
    assert run.result["digest"] == digest_of(skopeo.inspect_raw(dest))
    again = copy(archive, dest)
    assert again.changed is False
    back = tmp_path / "back.tar"
    assert not copy(dest, "docker-archive:%s:example.com/app:1.0" % back).failed
    assert skopeo.inspect("docker-archive:%s" % back)["Layers"] == info["diff_ids"]


def test_docker_image_into_oci_layout_is_converted_like_skopeo(registry, layout, tmp_path, skopeo):
    path, _unused = layout
    src = "docker://%s/copy/v2s2-src:1" % registry.host
    skopeo.copy("oci:%s:v1" % path, src, "--format", "v2s2")
    ours, theirs = "oci:%s:x" % (tmp_path / "ours"), "oci:%s:x" % (tmp_path / "theirs")
    run = copy(src, ours)
    assert not run.failed, run.output
    skopeo.copy(src, theirs)
    # skopeo rewrites the config into the OCI struct when it converts; so do we: same bytes, same digests.
    assert skopeo.inspect_raw(ours) == skopeo.inspect_raw(theirs)
    assert skopeo.skopeo("inspect", "--config", "--raw", ours) == skopeo.skopeo("inspect", "--config", "--raw", theirs)
    assert json.loads(skopeo.inspect_raw(ours))["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert copy(src, ours).changed is False
    refused = copy(src, "oci:%s:x" % (tmp_path / "kept"), preserve_digests=True)
    assert refused.failed
    assert "preserve_digests" in refused.result["msg"]


def test_group_module_defaults_validate_certs_reaches_both_sides(registry, layout, tmp_path, skopeo):
    path, info = layout
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/oci.images.images:
      validate_certs: false
  tasks:
    - oci.images.image_copy:
        src: oci:%s:v1
        dest: docker://%s/copy/defaults:1
    - oci.images.image_copy:
        src: docker://%s/copy/defaults:1
        dest: docker://%s/copy/defaults-2:1
    - oci.images.image_info:
        image: docker://%s/copy/defaults-2:1
      register: info
    - ansible.builtin.assert:
        that: info.image.digest == "%s"
"""
        % (path, registry.host, registry.host, registry.host, registry.host, info["manifest_digest"])
    )
    proc = run_playbook(str(playbook))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed=0" in proc.stdout


def _docker_dir_image(path, config: dict) -> None:
    """A dir: image with a Docker schema 2 manifest and the given config (one small gzip layer)."""
    import gzip
    import io
    import tarfile

    path.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        member = tarfile.TarInfo("etc/motd")
        member.size = 5
        tar.addfile(member, io.BytesIO(b"hello"))
    layer = gzip.compress(buf.getvalue(), mtime=0)
    config = dict(config, rootfs={"type": "layers", "diff_ids": [digest_of(buf.getvalue())]})
    raw_config = json.dumps(config).encode()
    for blob in (layer, raw_config):
        (path / digest_of(blob).split(":")[1]).write_bytes(blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(raw_config), "digest": digest_of(raw_config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": digest_of(layer)}],
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "version").write_text("Directory Transport Version: 1.1\n")


def test_docker_config_with_every_field_converts_to_the_oci_config_skopeo_writes(tmp_path, skopeo):
    config = {
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "created": "2024-01-02T03:04:05.120000000Z",
        "author": "builder <b@example.com>",
        "docker_version": "20.10.24",
        "container": "abc123",
        "container_config": {"Hostname": "abc", "Cmd": ["/bin/sh"]},
        "config": {
            "Hostname": "",
            "User": "app",
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Env": ["PATH=/usr/bin", "A=<b>&c"],
            "Entrypoint": ["/entry"],
            "Cmd": ["serve", "--port", "8080"],
            "Volumes": {"/data": {}, "/cache": {}},
            "WorkingDir": "/srv",
            "Labels": {"z": "last", "a": "first"},
            "StopSignal": "SIGTERM",
            "Healthcheck": {"Test": ["CMD", "true"]},
            "OnBuild": None,
        },
        "history": [
            {"created": "2024-01-02T03:04:05Z", "created_by": "ADD file", "comment": "base"},
            {"created": "2024-01-02T03:04:06.5+02:00", "created_by": "ENV A=b", "empty_layer": True},
        ],
    }
    _docker_dir_image(tmp_path / "docker-dir", config)
    src = "dir:%s" % (tmp_path / "docker-dir")
    ours, theirs = "oci:%s:x" % (tmp_path / "ours"), "oci:%s:x" % (tmp_path / "theirs")
    run = copy(src, ours)
    assert not run.failed, run.output
    skopeo.copy(src, theirs)
    assert skopeo.skopeo("inspect", "--config", "--raw", ours) == skopeo.skopeo("inspect", "--config", "--raw", theirs)
    assert skopeo.inspect_raw(ours) == skopeo.inspect_raw(theirs)
