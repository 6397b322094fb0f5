# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reference parsing: Docker Hub normalization, every transport's syntax, and what is refused."""

from __future__ import annotations

import pytest

from ansible_collections.oci.images.plugins.module_utils._errors import InvalidReference
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient
from ansible_collections.oci.images.plugins.module_utils._registry._credentials import api_host

DIGEST = "sha256:" + "a" * 64
IMAGE_ID = "b" * 64


@pytest.mark.parametrize(
    "text, registry, repository, tag, digest, canonical",
    [
        ("fedora", "docker.io", "library/fedora", None, None, "docker://docker.io/library/fedora:latest"),
        ("fedora:39", "docker.io", "library/fedora", "39", None, "docker://docker.io/library/fedora:39"),
        ("docker://fedora", "docker.io", "library/fedora", None, None, "docker://docker.io/library/fedora:latest"),
        ("library/fedora", "docker.io", "library/fedora", None, None, "docker://docker.io/library/fedora:latest"),
        ("team/app", "docker.io", "team/app", None, None, "docker://docker.io/team/app:latest"),
        ("index.docker.io/x", "docker.io", "library/x", None, None, "docker://docker.io/library/x:latest"),
        ("docker.io/x/y:1", "docker.io", "x/y", "1", None, "docker://docker.io/x/y:1"),
        ("localhost/x", "localhost", "x", None, None, "docker://localhost/x:latest"),
        ("localhost:5000/x", "localhost:5000", "x", None, None, "docker://localhost:5000/x:latest"),
        ("host:5000/a/b:t", "host:5000", "a/b", "t", None, "docker://host:5000/a/b:t"),
        ("docker://registry.example.com/team/app:1.0", "registry.example.com", "team/app", "1.0", None, "docker://registry.example.com/team/app:1.0"),
        ("[::1]:5000/a:b", "[::1]:5000", "a", "b", None, "docker://[::1]:5000/a:b"),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", None, None, "docker://127.0.0.1:5000/a/b/c:latest"),
        ("docker://fedora@" + DIGEST, "docker.io", "library/fedora", None, DIGEST, "docker://docker.io/library/fedora@" + DIGEST),
        ("quay.io/a/b-c__d.e:v1.2_3", "quay.io", "a/b-c__d.e", "v1.2_3", None, "docker://quay.io/a/b-c__d.e:v1.2_3"),
    ],
)
def test_registry_names_are_normalized_like_docker(text, registry, repository, tag, digest, canonical):
    ref = parse_reference(text)
    assert (ref.transport, ref.registry, ref.repository, ref.tag, ref.digest) == ("docker", registry, repository, tag, digest)
    assert str(ref) == canonical
    assert ref.is_registry
    # The canonical form parses back to the same reference.
    again = parse_reference(canonical)
    assert (again.registry, again.repository, again.tag_or_default, again.digest) == (registry, repository, ref.tag_or_default, digest)


def test_manifest_reference_prefers_digest_then_tag_then_latest():
    assert parse_reference("x").manifest_reference == "latest"
    assert parse_reference("x:1").manifest_reference == "1"
    assert parse_reference("x@" + DIGEST).manifest_reference == DIGEST
    assert parse_reference("x:1").with_digest(DIGEST).docker_reference == "docker.io/library/x@" + DIGEST


@pytest.mark.parametrize(
    "text, expected",
    [
        ("dir:/tmp/img", {"transport": "dir", "path": "/tmp/img"}),
        ("dir:relative/dir", {"transport": "dir", "path": "relative/dir"}),
        ("oci:/tmp/layout", {"transport": "oci", "path": "/tmp/layout", "ref_name": None}),
        ("oci:/tmp/layout:v1.0", {"transport": "oci", "path": "/tmp/layout", "ref_name": "v1.0"}),
        ("oci:/tmp/layout:", {"transport": "oci", "path": "/tmp/layout", "ref_name": None}),
        ("oci:/tmp/layout:team/app:1", {"transport": "oci", "path": "/tmp/layout", "ref_name": "team/app:1"}),
        ("oci-archive:/tmp/a.tar", {"transport": "oci-archive", "path": "/tmp/a.tar", "ref_name": None}),
        ("oci-archive:/tmp/a.tar:latest", {"transport": "oci-archive", "path": "/tmp/a.tar", "ref_name": "latest"}),
        ("docker-archive:/tmp/d.tar", {"transport": "docker-archive", "path": "/tmp/d.tar", "repository": None, "source_index": None}),
        (
            "docker-archive:/tmp/d.tar:app:1",
            {"transport": "docker-archive", "path": "/tmp/d.tar", "registry": "docker.io", "repository": "library/app", "tag": "1"},
        ),
        (
            "docker-archive:/tmp/d.tar:example.com/app",
            {"transport": "docker-archive", "path": "/tmp/d.tar", "registry": "example.com", "repository": "app", "tag": None},
        ),
        ("docker-archive:/tmp/d.tar:@2", {"transport": "docker-archive", "path": "/tmp/d.tar", "source_index": 2}),
        ("docker-daemon:app:1", {"transport": "docker-daemon", "registry": "docker.io", "repository": "library/app", "tag": "1"}),
        ("docker-daemon:" + IMAGE_ID, {"transport": "docker-daemon", "image_id": "sha256:" + IMAGE_ID, "repository": None}),
        ("docker-daemon:sha256:" + IMAGE_ID, {"transport": "docker-daemon", "image_id": "sha256:" + IMAGE_ID}),
        ("containers-storage:localhost/x:y", {"transport": "containers-storage", "registry": "localhost", "repository": "x", "tag": "y", "store": None}),
        (
            "containers-storage:[vfs@/r+/rr]localhost/x:y",
            {"transport": "containers-storage", "store": "vfs@/r+/rr", "registry": "localhost", "repository": "x", "tag": "y"},
        ),
        ("containers-storage:@" + IMAGE_ID, {"transport": "containers-storage", "image_id": "sha256:" + IMAGE_ID}),
    ],
)
def test_each_transport_syntax_parses(text, expected):
    ref = parse_reference(text)
    for field, value in expected.items():
        assert getattr(ref, field) == value, field


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("dir:/tmp/img", "dir:/tmp/img"),
        ("oci:/tmp/layout:v1", "oci:/tmp/layout:v1"),
        ("oci-archive:/tmp/a.tar", "oci-archive:/tmp/a.tar"),
        ("docker-archive:/tmp/d.tar:app:1", "docker-archive:/tmp/d.tar:docker.io/library/app:1"),
        ("docker-archive:/tmp/d.tar:@0", "docker-archive:/tmp/d.tar:@0"),
        ("docker-daemon:app", "docker-daemon:docker.io/library/app:latest"),
        ("containers-storage:[vfs@/r+/rr]localhost/x:y", "containers-storage:[vfs@/r+/rr]localhost/x:y"),
    ],
)
def test_local_references_print_in_skopeo_syntax(text, canonical):
    assert str(parse_reference(text)) == canonical


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "empty image reference"),
        ("   ", "empty image reference"),
        (" fedora", "white space"),
        ("FEDORA", "must be lowercase"),
        ("docker.io/Team/app", "must be lowercase"),
        ("x:t@" + DIGEST, "both a tag and a digest"),
        ("x@sha256:abc", "64 lowercase hex"),
        ("x@sha256:" + "A" * 64, "lowercase hex"),
        ("x@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("x:-bad", "invalid tag"),
        ("x:.bad", "invalid tag"),
        ("x:b@d", "invalid digest"),
        ("x:" + "t" * 129, "invalid tag"),
        ("a//b", "invalid repository name"),
        ("a/b-/c", "invalid repository name"),
        ("registry.example.com/", "missing repository name"),
        ("ftp://x", "unknown transport 'ftp'"),
        ("https://registry.example.com/x", "unknown transport 'https'"),
        ("docker:x", "must begin with docker://"),
        ("docker://", "empty image name"),
        ("dir:", "empty path"),
        ("oci:", "empty path"),
        ("oci::ref", "empty path"),
        ("oci-archive:", "empty path"),
        ("docker-archive:", "empty path"),
        ("docker-archive:/d.tar:@x", "invalid source index"),
        ("docker-archive:/d.tar:@-1", "invalid source index"),
        ("docker-archive:/d.tar:app@" + DIGEST, "may not use a digest"),
        ("oci:/p:bad ref", "invalid image reference"),
        ("docker-daemon:", "is empty"),
        ("docker-daemon:app@" + DIGEST, "may not use a digest"),
        ("containers-storage:", "names no image"),
        ("containers-storage:[vfs@/r", "closing ']'"),
        ("containers-storage:@abc", "invalid image ID"),
        ("r.example.com/" + "a" * 255, "longer than 255"),
    ],
)
def test_invalid_references_are_refused_with_a_reason(text, says):
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert says in str(caught.value)


DOCKER_HUB_FORMS = [
    "fedora",
    "fedora:latest",
    "library/fedora",
    "docker.io/fedora",
    "docker.io/library/fedora",
    "index.docker.io/fedora",
    "index.docker.io/library/fedora",
    "docker://fedora",
    "docker://library/fedora",
    "docker://docker.io/fedora",
    "docker://docker.io/library/fedora:latest",
    "docker://index.docker.io/fedora",
    "docker://index.docker.io/library/fedora",
]


@pytest.mark.parametrize("text", DOCKER_HUB_FORMS)
def test_docker_hub_names_all_mean_one_repository_reached_on_registry_1(text):
    # As skopeo normalizes them (docker/distribution's reference package): one name, one API host.
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag_or_default) == ("docker.io", "library/fedora", "latest")
    assert str(ref) == "docker://docker.io/library/fedora:latest"
    assert api_host(ref.registry) == "registry-1.docker.io"
    with RegistryClient(ref.registry, ConnectionOptions()) as client:
        assert client.http.host == "registry-1.docker.io"
        assert client.http.url("/v2/") == "https://registry-1.docker.io/v2/"


@pytest.mark.parametrize(
    "text,registry,repository",
    [
        # Docker normalizes only docker.io and index.docker.io; these name other registries (skopeo agrees).
        ("registry-1.docker.io/fedora", "registry-1.docker.io", "fedora"),
        ("docker.io.example.com/fedora", "docker.io.example.com", "fedora"),
        ("localhost/fedora", "localhost", "fedora"),
        ("localhost:5000/fedora", "localhost:5000", "fedora"),
        ("Docker.io/fedora", "Docker.io", "fedora"),
        ("docker.io/team/fedora", "docker.io", "team/fedora"),
    ],
)
def test_names_that_look_like_docker_hub_but_are_not_stay_as_written(text, registry, repository):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository) == (registry, repository)
