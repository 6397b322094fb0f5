"""Tag selection, version ranges and skopeo-sync naming (pure functions; the functional tests run them for real)."""

from __future__ import annotations

import pytest

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._mirror import TagSelection, select_repository_tags, sync_pairs
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._versions import VersionRange, parse_version

TAGS = ["1.0.0", "1.2.0", "v1.3.1", "1.3", "2.0.0", "2.1.0-rc1", "2.1.0", "latest", "1.2.3.4", "3.0.0-alpine", "dev-abc"]


@pytest.mark.parametrize(
    "text,expected",
    [
        (">=1.3.0,<2.1.0", ["v1.3.1", "1.3", "2.0.0"]),
        (">= 1.3.0, < 2.1.0", ["v1.3.1", "1.3", "2.0.0"]),
        (">=1.3.0 <2.1.0", ["v1.3.1", "1.3", "2.0.0"]),
        ("^1.2", ["1.2.0", "v1.3.1", "1.3"]),
        ("~1.2", ["1.2.0"]),
        ("1.x", ["1.0.0", "1.2.0", "v1.3.1", "1.3"]),
        ("^1 || 2.1.x", ["1.0.0", "1.2.0", "v1.3.1", "1.3", "2.1.0"]),
        (">=2.1.0-rc0", ["2.1.0-rc1", "2.1.0"]),
        ("*", ["1.0.0", "1.2.0", "v1.3.1", "1.3", "2.0.0", "2.1.0"]),
        ("1.2 - 1.3", ["1.2.0", "1.3"]),
    ],
)
def test_version_range_picks_versions_like_skopeo_sync(text, expected):
    assert [t for t in TAGS if VersionRange(text).contains(t)] == expected


@pytest.mark.parametrize("tag", ["latest", "1.2.3.4", "dev-abc", "", "v", "1..2"])
def test_tags_that_are_not_versions_are_skipped(tag):
    assert parse_version(tag) is None


@pytest.mark.parametrize("text", [">=", "1.2.3 ||", "abc", ">=1.2.3.4.5"])
def test_bad_range_is_a_clear_error(text):
    with pytest.raises(OCIError):
        VersionRange(text)


@pytest.mark.parametrize(
    "selection,expected",
    [
        ({}, TAGS),
        ({"include": ["1\\..*"]}, ["1.0.0", "1.2.0", "1.3", "1.2.3.4"]),
        ({"include": ["1\\.2"]}, []),  # whole-tag match: 1\.2 does not match 1.2.0
        ({"exclude": ["dev-.*", "latest", ".*-.*"]}, ["1.0.0", "1.2.0", "v1.3.1", "1.3", "2.0.0", "2.1.0", "1.2.3.4"]),
        ({"semver": ">=1.2.0,<3.0.0", "latest": 2}, ["2.0.0", "2.1.0"]),
        ({"latest": 3}, ["2.0.0", "2.1.0-rc1", "2.1.0"]),  # pre-releases are versions too
        ({"exclude": [".*-.*"], "latest": 3}, ["v1.3.1", "2.0.0", "2.1.0"]),
        ({"include": ["dev-.*", "latest"], "latest": 1}, ["latest"]),
    ],
)
def test_tag_selection_picks_exactly_the_expected_tags(selection, expected):
    created = {"dev-abc": "2024-01-01T00:00:00Z", "latest": "2024-06-01T00:00:00Z"}
    assert select_repository_tags(TAGS, TagSelection.from_option(selection), created.get) == expected


def test_tag_selection_rejects_unknown_keys_and_bad_latest():
    with pytest.raises(OCIError, match="unknown"):
        TagSelection.from_option({"inclde": ["x"]})
    with pytest.raises(OCIError, match="positive"):
        TagSelection.from_option({"latest": 0})


def _list_tags(calls):
    def list_tags(reference, options):
        calls.append((reference.name, options.username, options.validate_certs, options.cert_dir))
        return ["1.0", "1.1", "2.0", "latest", "v3.0.0"]

    return list_tags


def test_sync_names_destinations_like_skopeo():
    calls: list = []
    spec = {
        "quay.example.com": {
            "images": {"team/app": ["1.0", "sha256:" + "a" * 64], "tools/busybox": []},
            "images-by-tag-regex": {"team/web": "^1\\."},
            "images-by-semver": {"team/api": ">=2.0.0"},
            "credentials": {"username": "robot", "password": "secret"},
            "tls-verify": False,
            "cert-dir": "/etc/certs/quay",
        }
    }
    pairs = sync_pairs(spec, "docker://mirror.example.com/m", ConnectionOptions(), _list_tags(calls))
    dests = [str(p.dest) for p in pairs]
    assert dests == [
        "docker://mirror.example.com/m/app:1.0",
        "docker://mirror.example.com/m/app@sha256:" + "a" * 64,
        "docker://mirror.example.com/m/busybox:1.0",
        "docker://mirror.example.com/m/busybox:1.1",
        "docker://mirror.example.com/m/busybox:2.0",
        "docker://mirror.example.com/m/busybox:latest",
        "docker://mirror.example.com/m/busybox:v3.0.0",
        "docker://mirror.example.com/m/web:1.0",
        "docker://mirror.example.com/m/web:1.1",
        "docker://mirror.example.com/m/api:2.0",
        "docker://mirror.example.com/m/api:v3.0.0",
    ]
    assert str(pairs[0].src) == "docker://quay.example.com/team/app:1.0"
    assert {(p.src_options.username, p.src_options.validate_certs, p.src_options.cert_dir) for p in pairs} == {("robot", False, "/etc/certs/quay")}
    assert calls[0] == ("quay.example.com/tools/busybox", "robot", False, "/etc/certs/quay")


def test_sync_credentials_password_goes_to_the_secret_sink():
    spec = {"quay.example.com": {"images": {"team/app": ["1.0"]}, "credentials": {"username": "robot", "password": "sync-S3cret"}}}
    seen: list[str] = []
    (pair,) = sync_pairs(spec, "mirror.example.com/m", ConnectionOptions(secret_sink=seen.append), _list_tags([]))
    assert seen == ["sync-S3cret"]
    assert pair.src_options.secret_sink == seen.append


def test_sync_scoped_and_append_suffix():
    spec = {"quay.example.com": {"images": {"team/app": ["1.0"]}}}
    (pair,) = sync_pairs(spec, "mirror.example.com/m", ConnectionOptions(), _list_tags([]), scoped=True, append_suffix="-mirror")
    assert str(pair.dest) == "docker://mirror.example.com/m/quay.example.com/team/app:1.0-mirror"


@pytest.mark.parametrize(
    "spec,message",
    [
        ({}, "mapping"),
        ({"quay.example.com": {"imagez": {}}}, "imagez"),
        ({"quay.example.com": {"images": {"team/app:1.0": ["1.0"]}}}, "must be a repository"),
        ({"quay.example.com": {"images-by-tag-regex": {"team/app": "("}}}, "regular expression"),
        ({"quay.example.com": {"images": {}, "requests-per-second": 0}}, "requests-per-second must be a number above 0"),
        ({"quay.example.com": {"images": {}, "max-concurrent-requests": "many"}}, "max-concurrent-requests must be a number of at least 1"),
        ({"quay.example.com": {"images": {}, "rate-limit-floor": -1}}, "rate-limit-floor must be a number of at least 0"),
    ],
)
def test_sync_bad_specs_fail_clearly(spec, message):
    with pytest.raises(OCIError, match=message):
        sync_pairs(spec, "mirror.example.com/m", ConnectionOptions(), _list_tags([]))


@pytest.mark.parametrize(
    "scoped,expected",
    [
        (False, ["dir:/srv/mirror/app:1", "dir:/srv/mirror/app@sha256:" + "a" * 64]),
        (True, ["dir:/srv/mirror/registry.example.com/team/app:1", "dir:/srv/mirror/registry.example.com/team/app@sha256:" + "a" * 64]),
    ],
)
def test_sync_to_a_dir_tree_names_directories_like_skopeo_sync_dest_dir(scoped, expected):
    spec = {"registry.example.com": {"images": {"team/app": ["1", "sha256:" + "a" * 64]}}}
    pairs = sync_pairs(spec, "dir:/srv/mirror", ConnectionOptions(), lambda ref, opts: [], scoped=scoped)
    assert [str(p.dest) for p in pairs] == expected
    assert [p.dest.path for p in pairs] == [e[len("dir:") :] for e in expected]


@pytest.mark.parametrize("scoped", [False, True])
def test_sync_to_a_bundle_names_each_image_by_its_full_reference(scoped):
    spec = {"registry.example.com:5000": {"images": {"team/app": ["1"]}}}
    (pair,) = sync_pairs(spec, "oci:/srv/bundle", ConnectionOptions(), lambda ref, opts: [], scoped=scoped)
    assert (pair.dest.path, pair.dest.ref_name, pair.dest.member) == ("/srv/bundle", "registry.example.com:5000/team/app:1", True)


@pytest.mark.parametrize(
    "dest,message",
    [
        (
            "docker-archive:/srv/m.tar",
            r"docker-archive:/srv/m.tar: docker-archive: holds one image; repository mode and sync write many images to a registry prefix, or to dir:PATH",
        ),
        ("oci:/srv/bundle:app", r"sync copies every image of its spec, so dest must name a whole bundle without an image name: oci:/srv/bundle:app"),
    ],
)
def test_sync_to_a_place_that_holds_one_image_says_where_many_can_go(dest, message):
    with pytest.raises(OCIError, match=message):
        sync_pairs({"registry.example.com": {"images": {"app": ["1"]}}}, dest, ConnectionOptions(), lambda ref, opts: [])


def test_sync_accepts_a_destination_with_the_docker_transport_prefix():
    pairs = sync_pairs({"registry.example.com": {"images": {"app": ["1"]}}}, "docker://mirror.example.com/m", ConnectionOptions(), lambda ref, opts: [])
    assert [str(p.dest) for p in pairs] == ["docker://mirror.example.com/m/app:1"]


def test_repository_mode_to_a_dir_tree_writes_a_directory_per_tag():
    from ansible_collections.oci.images.plugins.module_utils._mirror import repository_pairs
    from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference

    src = parse_reference("docker://registry.example.com/team/app")
    plain = repository_pairs(src, parse_reference("dir:/srv/mirror"), ["1", "2"], ConnectionOptions())
    assert [str(p.dest) for p in plain] == ["dir:/srv/mirror/app:1", "dir:/srv/mirror/app:2"]
    scoped = repository_pairs(src, parse_reference("dir:/srv/mirror"), ["1"], ConnectionOptions(), scoped=True)
    assert [str(p.dest) for p in scoped] == ["dir:/srv/mirror/registry.example.com/team/app:1"]


def test_local_images_land_under_a_registry_prefix_by_their_last_path_component():
    from ansible_collections.oci.images.plugins.module_utils._mirror import local_pairs
    from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference

    held = [
        ("registry.example.com/team/app:1", parse_reference("dir:/t/registry.example.com/team/app:1")),
        ("base@sha256:" + "b" * 64, parse_reference("dir:/t/x")),
    ]
    pairs = local_pairs(held, parse_reference("dir:/t"), parse_reference("docker://mirror.example.com/m"), ConnectionOptions())
    assert [str(p.dest) for p in pairs] == ["docker://mirror.example.com/m/app:1", "docker://mirror.example.com/m/base@sha256:" + "b" * 64]
    scoped = local_pairs(held[:1], parse_reference("dir:/t"), parse_reference("docker://mirror.example.com/m"), ConnectionOptions(), scoped=True)
    assert [str(p.dest) for p in scoped] == ["docker://mirror.example.com/m/registry.example.com/team/app:1"]
    with pytest.raises(OCIError, match=r"src dir:/t holds many images, so dest must name a registry prefix without a tag, not docker://mirror.example.com/m:1"):
        local_pairs(held, parse_reference("dir:/t"), parse_reference("docker://mirror.example.com/m:1"), ConnectionOptions())


def test_sync_paces_each_registry_with_its_own_keys():
    spec = {
        "docker.io": {"images": {"library/busybox": ["1.0"]}, "requests-per-second": 2.5, "max-concurrent-requests": 2, "rate-limit-floor": 10},
        "quay.example.com": {"images": {"team/app": ["1.0"]}},
    }
    hub, quay = sync_pairs(spec, "mirror.example.com/m", ConnectionOptions(requests_per_second=50), _list_tags([]))
    assert (hub.src_options.requests_per_second, hub.src_options.max_concurrent_requests, hub.src_options.rate_limit_floor) == (2.5, 2, 10)
    assert (quay.src_options.requests_per_second, quay.src_options.max_concurrent_requests, quay.src_options.rate_limit_floor) == (50, None, 0)
