"""Repository mode and skopeo-sync YAML in image_copy, against real registries and skopeo sync."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from ansible_run import run_module
from counting_proxy import CountingProxy
from images import build_image, build_index

pytestmark = pytest.mark.timeout(600)

TAGS = {"1.0.0": 1, "1.2.0": 2, "v1.3.1": 3, "2.0.0": 4, "2.1.0-rc1": 5, "latest": 4, "dev-abc": 6}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def source_repo(tmp_path_factory, registry):
    """A repository with versioned and unversioned tags (latest shares 2.0.0's image)."""
    layout = str(tmp_path_factory.mktemp("mirror-src") / "layout")
    from skopeo import copy

    for tag, seed in TAGS.items():
        build_image(layout, ref="s%d" % seed, seed=300 + seed, layer_sizes=(2048, 1024))
        copy("oci:%s:s%d" % (layout, seed), "docker://%s/upstream/app:%s" % (registry.host, tag))
    build_index(layout, ref="multi", platforms=["linux/amd64", "linux/arm64/v8"], seed=400)
    copy("oci:%s:multi" % layout, "docker://%s/upstream/app:3.0.0" % registry.host, "--multi-arch", "all")
    return "%s/upstream/app" % registry.host


def tags_of(skopeo, repo: str) -> list[str]:
    return sorted(json.loads(skopeo.skopeo("list-tags", "--tls-verify=false", "docker://" + repo))["Tags"])


@pytest.mark.parametrize(
    "selection,expected",
    [
        ({}, sorted([*TAGS, "3.0.0"])),
        ({"include": ["1\\..*", "v1.*"]}, ["1.0.0", "1.2.0", "v1.3.1"]),
        ({"exclude": ["dev-.*", "latest"]}, ["1.0.0", "1.2.0", "2.0.0", "2.1.0-rc1", "3.0.0", "v1.3.1"]),
        ({"semver": ">=1.2.0,<3.0.0"}, ["1.2.0", "2.0.0", "v1.3.1"]),
        ({"semver": ">=1.0.0", "latest": 2}, ["2.0.0", "3.0.0"]),
    ],
)
def test_repository_mode_copies_exactly_the_selected_tags(registry, source_repo, skopeo, selection, expected):
    dest = "%s/sel-%s/app" % (registry.host, hashlib.sha256(json.dumps(selection).encode()).hexdigest()[:8])
    run = run_module(
        "image_copy",
        {"src": "docker://" + source_repo, "dest": "docker://" + dest, "tags": selection, "src_validate_certs": False, "dest_validate_certs": False},
    )
    assert not run.failed, run.output
    assert tags_of(skopeo, dest) == expected
    assert run.result["copied"] == len(expected)
    for tag in expected:
        assert digest_of(skopeo.inspect_raw("docker://%s:%s" % (dest, tag))) == digest_of(skopeo.inspect_raw("docker://%s:%s" % (source_repo, tag)))


def test_repository_second_run_is_one_head_per_side_per_tag_and_no_writes(registry, source_repo, skopeo):
    dest = "%s/noop/app" % registry.host
    args = {"src_validate_certs": False, "dest_validate_certs": False, "tags": {"exclude": ["dev-.*"]}}
    first = run_module("image_copy", dict(args, src="docker://" + source_repo, dest="docker://" + dest))
    assert not first.failed, first.output
    selected = len(first.result["results"])
    with CountingProxy(registry.host) as src_proxy, CountingProxy(registry.host) as dest_proxy:
        src = "docker://%s/upstream/app" % src_proxy.host
        second = run_module("image_copy", dict(args, src=src, dest="docker://%s/noop/app" % dest_proxy.host))
        assert not second.failed, second.output
        assert second.changed is False
        assert second.result["unchanged"] == selected
        assert dest_proxy.writes() == []
        assert sorted(m for m, _unused in dest_proxy.requests) == ["HEAD"] * selected
        manifest_requests = [(m, p) for m, p in src_proxy.requests if "/manifests/" in p]
        assert sorted(m for m, _unused in manifest_requests) == ["HEAD"] * selected
        assert not [p for m, p in src_proxy.requests if "/blobs/" in p]


def test_repository_mode_rejects_tagged_dest(registry, source_repo):
    run = run_module("image_copy", {"src": "docker://" + source_repo, "dest": "docker://%s/x/app:1" % registry.host, "src_validate_certs": False})
    assert run.failed
    assert "without a tag" in run.result["msg"]


def test_sync_yaml_gives_the_same_tags_and_digests_as_skopeo_sync(registry, fresh_registry, source_repo, skopeo, tmp_path):
    host = registry.host
    spec = {
        host: {
            "tls-verify": False,
            "images": {"upstream/app": ["1.0.0", "3.0.0"]},
            "images-by-tag-regex": {"upstream/app": "^v?1\\.[23]"},
        }
    }
    sync_file = tmp_path / "sync.yaml"
    sync_file.write_text(yaml.safe_dump(spec))
    theirs = fresh_registry("plain")
    skopeo.skopeo("sync", "--all", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", str(sync_file), "%s/mirror" % theirs.host)
    run = run_module("image_copy", {"sync_file": str(sync_file), "dest": "%s/mirror" % host, "dest_validate_certs": False})
    assert not run.failed, run.output
    ours_tags = tags_of(skopeo, "%s/mirror/app" % host)
    assert ours_tags == tags_of(skopeo, "%s/mirror/app" % theirs.host) == ["1.0.0", "1.2.0", "3.0.0", "v1.3.1"]
    for tag in ours_tags:
        ours = skopeo.inspect_raw("docker://%s/mirror/app:%s" % (host, tag))
        theirs_raw = skopeo.inspect_raw("docker://%s/mirror/app:%s" % (theirs.host, tag))
        assert digest_of(ours) == digest_of(theirs_raw)
    again = run_module("image_copy", {"sync": spec, "dest": "%s/mirror" % host, "dest_validate_certs": False})
    assert again.changed is False


def test_sync_unknown_key_is_refused(registry):
    run = run_module("image_copy", {"sync": {registry.host: {"imagez": {}}}, "dest": "%s/m" % registry.host})
    assert run.failed
    assert "imagez" in run.result["msg"]


def test_shared_layers_are_uploaded_once_per_destination_repository(registry, fresh_registry, tmp_path, skopeo):
    layout = str(tmp_path / "shared")
    blobs = set()
    for i in range(6):
        info = build_image(layout, ref="t%d" % i, layer_sizes=(4096, 2048), layer_keys=["base", "app-%d" % i], seed=700 + i)
        blobs.update(info["layer_digests"] + [info["config_digest"]])
        skopeo.copy("oci:%s:t%d" % (layout, i), "docker://%s/shared/app:%d.0.0" % (registry.host, i))
    target = fresh_registry("plain")
    with CountingProxy(target.host) as proxy:
        run = run_module(
            "image_copy",
            {
                "src": "docker://%s/shared/app" % registry.host,
                "dest": "docker://%s/shared/app" % proxy.host,
                "parallel_images": 6,
                "src_validate_certs": False,
                "dest_validate_certs": False,
            },
        )
        assert not run.failed, run.output
        uploads = [p for m, p in proxy.requests if m == "POST" and "/blobs/uploads/" in p]
    assert len(uploads) == len(blobs)  # the base layer once, not six times
    assert sum(r["blobs"]["copied"] for r in run.result["results"]) == len(blobs)
