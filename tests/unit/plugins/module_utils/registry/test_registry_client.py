"""RegistryClient against a real distribution registry (plain HTTP), with skopeo as the oracle."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests
from conftest import SKOPEO, blob_file, build_layout, make_client, skopeo_push

from ansible_collections.oci.images.plugins.module_utils._digest import sha256_digest
from ansible_collections.oci.images.plugins.module_utils._errors import DigestMismatch, InvalidManifest, NotFound, RegistryError
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._transports._table import open_source

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def client(registry):
    c = make_client(registry)
    yield c
    c.close()


def _push_image_with_client(client, image, repo: str, tag: str) -> str:
    for digest, data in ((image.layer_digest, image.layer), (image.config_digest, image.config)):
        if client.head_blob(repo, digest) is None:
            client.upload_blob(repo, digest, _BytesStream(data), len(data))
    return client.put_manifest(repo, tag, image.manifest, OCI_MANIFEST)


class _BytesStream:
    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n is None or n < 0 else self._pos + n
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


def test_ping_answers_for_running_registry(client):
    assert client.ping() is True
    assert client.http.scheme == "http"


def test_head_manifest_reports_digest_type_and_size(client, pushed_image):
    head = client.head_manifest("unit/app", "1.0")
    assert head.digest == pushed_image.manifest_digest
    assert head.media_type == OCI_MANIFEST
    assert head.size == len(pushed_image.manifest)


def test_head_manifest_of_missing_tag_is_none(client, pushed_image):
    assert client.head_manifest("unit/app", "no-such-tag") is None


def test_manifest_read_verifies_digest(client, pushed_image):
    raw, media_type, digest = client.get_manifest("unit/app", "1.0")
    assert raw == pushed_image.manifest
    assert media_type == OCI_MANIFEST
    assert digest == pushed_image.manifest_digest == sha256_digest(raw)
    by_digest = client.get_manifest("unit/app", digest)
    assert by_digest == (raw, media_type, digest)


def test_manifest_digest_matches_skopeo(client, pushed_image, registry):
    out = subprocess.run(
        [SKOPEO, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://%s/unit/app:1.0" % registry.host],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert client.get_manifest("unit/app", "1.0")[2] == out


def test_missing_tag_raises_not_found_naming_reference(client, pushed_image, registry):
    with pytest.raises(NotFound) as err:
        client.get_manifest("unit/app", "nope")
    assert "%s/unit/app:nope" % registry.host in str(err.value)
    assert "tag or repository does not exist" in str(err.value)
    with pytest.raises(NotFound):
        client.get_manifest("unit/no-such-repo", "1.0")


def test_blob_streams_and_verifies(client, pushed_image):
    assert client.head_blob("unit/app", pushed_image.layer_digest) == len(pushed_image.layer)
    with client.get_blob("unit/app", pushed_image.layer_digest, len(pushed_image.layer)) as reader:
        chunks = []
        while True:
            chunk = reader.read(1000)
            if not chunk:
                break
            chunks.append(chunk)
    assert b"".join(chunks) == pushed_image.layer
    assert len(chunks) > 1


def test_blob_in_other_repository_is_absent(client, pushed_image):
    assert client.head_blob("unit/other", pushed_image.layer_digest) is None


def test_corrupt_blob_in_storage_raises_digest_mismatch(client, registry, tmp_path):
    image = build_layout(str(tmp_path / "layout"), "corrupt-me")
    skopeo_push(image, registry, "unit/corrupt:1")
    path = blob_file(registry, image.layer_digest)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    reader = client.get_blob("unit/corrupt", image.layer_digest, len(image.layer))
    with pytest.raises(DigestMismatch) as err:
        while reader.read(65536):
            pass
    reader.close()
    assert image.layer_digest in str(err.value)


def test_tag_listing_matches_skopeo(client, registry, tmp_path):
    # registry 2.8 ignores ?n= (no Link header); pagination itself is tested against a scripted server.
    image = build_layout(str(tmp_path / "layout"), "paged")
    tags = ["t%02d" % i for i in range(7)]
    for tag in tags:
        _push_image_with_client(client, image, "unit/paged", tag)
    assert sorted(client.list_tags("unit/paged", page_size=3)) == tags
    skopeo_tags = json.loads(
        subprocess.run([SKOPEO, "list-tags", "--tls-verify=false", "docker://%s/unit/paged" % registry.host], check=True, capture_output=True).stdout
    )["Tags"]
    assert sorted(skopeo_tags) == tags


def test_tags_null_from_registry_is_an_empty_list(client, registry, tmp_path):
    image = build_layout(str(tmp_path / "layout"), "untagged")
    digest = _push_image_with_client(client, image, "unit/untagged", "only")
    client.delete_manifest("unit/untagged", digest)
    body = requests.get("%s/v2/unit/untagged/tags/list" % registry.url, timeout=10).json()
    assert body["tags"] is None  # the registry really says null here
    assert client.list_tags("unit/untagged") == []


def test_deleted_manifest_is_gone(client, tmp_path):
    image = build_layout(str(tmp_path / "layout"), "deleted")
    digest = _push_image_with_client(client, image, "unit/deleted", "v1")
    assert client.head_manifest("unit/deleted", "v1").digest == digest
    client.delete_manifest("unit/deleted", digest)
    assert client.head_manifest("unit/deleted", "v1") is None


def test_uploaded_image_reads_back_with_skopeo(client, registry, tmp_path):
    image = build_layout(str(tmp_path / "layout"), "uploaded", size=200000)
    digest = _push_image_with_client(client, image, "unit/uploaded", "v1")
    assert digest == image.manifest_digest
    raw = subprocess.run(
        [SKOPEO, "inspect", "--raw", "--tls-verify=false", "docker://%s/unit/uploaded:v1" % registry.host], check=True, capture_output=True
    ).stdout
    assert raw == image.manifest
    out = tmp_path / "copied"
    subprocess.run(
        [SKOPEO, "--insecure-policy", "copy", "--src-tls-verify=false", "docker://%s/unit/uploaded:v1" % registry.host, "dir:%s" % out],
        check=True,
        capture_output=True,
    )
    assert (out / image.layer_digest.split(":")[1]).read_bytes() == image.layer


def test_blob_mount_links_blob_into_other_repository(client, pushed_image):
    assert client.head_blob("unit/mounted", pushed_image.layer_digest) is None
    assert client.mount_blob("unit/mounted", pushed_image.layer_digest, "unit/app") is True
    assert client.head_blob("unit/mounted", pushed_image.layer_digest) == len(pushed_image.layer)


def test_mount_of_unknown_blob_returns_false(client, pushed_image):
    missing = "sha256:" + "0" * 64
    assert client.mount_blob("unit/mounted2", missing, "unit/app") is False


def test_upload_with_wrong_digest_is_refused(client):
    data = b"some bytes"
    wrong = sha256_digest(b"other bytes")
    with pytest.raises((DigestMismatch, RegistryError)) as err:
        client.upload_blob("unit/wrong", wrong, _BytesStream(data), len(data))
    assert "DIGEST_INVALID" in str(err.value)


def test_registry_error_code_and_message_in_error(client, pushed_image):
    bad = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "x", "digest": "sha256:" + "1" * 64, "size": 1}, "layers": []}
    ).encode()
    with pytest.raises(RegistryError) as err:
        client.put_manifest("unit/app", "broken", bad, OCI_MANIFEST)
    assert "MANIFEST_BLOB_UNKNOWN" in str(err.value) or "MANIFEST_INVALID" in str(err.value)


def test_oversized_manifest_is_refused(client):
    with pytest.raises(InvalidManifest):
        client.put_manifest("unit/huge", "v1", b"{" + b" " * (4 * 1024 * 1024) + b"}", OCI_MANIFEST)


def test_referrers_fall_back_to_digest_tag(client, pushed_image):
    empty = b"{}"
    client.upload_blob("unit/app", sha256_digest(empty), _BytesStream(empty), len(empty))
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(empty), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(empty), "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": pushed_image.manifest_digest, "size": len(pushed_image.manifest)},
        }
    ).encode()
    artifact_digest = client.put_manifest("unit/app", sha256_digest(artifact), artifact, OCI_MANIFEST)
    descriptor = {"mediaType": OCI_MANIFEST, "digest": artifact_digest, "size": len(artifact), "artifactType": "application/vnd.example.sbom"}
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}).encode()
    client.put_manifest("unit/app", pushed_image.manifest_digest.replace(":", "-"), index, OCI_INDEX)

    assert client.get_referrers("unit/app", pushed_image.manifest_digest) == [descriptor]
    assert client.get_referrers("unit/app", pushed_image.manifest_digest, "application/vnd.example.sbom") == [descriptor]
    assert client.get_referrers("unit/app", pushed_image.manifest_digest, "application/vnd.example.other") == []
    assert client.get_referrers("unit/app", artifact_digest) == []


def test_registry_source_reads_image_and_tags(registry, pushed_image):
    ref = parse_reference("docker://%s/unit/app:1.0" % registry.host)
    with open_source(ref, ConnectionOptions(validate_certs=False)) as source:
        raw, media_type = source.get_manifest()
        assert (raw, media_type) == (pushed_image.manifest, OCI_MANIFEST)
        assert source.manifest_digest(raw) == pushed_image.manifest_digest
        assert source.get_blob_bytes(pushed_image.config_digest) == pushed_image.config
        with source.open_blob(pushed_image.layer_digest, len(pushed_image.layer)) as blob:
            assert blob.read() == pushed_image.layer
        assert "1.0" in source.list_tags()
        assert source.can_list_tags
        assert source.get_manifest(pushed_image.manifest_digest)[0] == raw
