"""image_copy referrers: true — attached artifacts and cosign-style tags travel with the image."""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible_run import run_module
from counting_proxy import CountingProxy
from images import build_image, build_index

from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient

pytestmark = pytest.mark.timeout(600)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SBOM_TYPE = "application/spdx+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client: RegistryClient, repo: str, data: bytes) -> dict:
    import io

    digest = digest_of(data)
    if client.head_blob(repo, digest) is None:
        client.upload_blob(repo, digest, io.BytesIO(data), len(data))
    return {"digest": digest, "size": len(data)}


def attach_artifact(client: RegistryClient, repo: str, subject: dict, payload: bytes) -> dict:
    """Push an SBOM-like artifact whose ``subject`` is the image, and list it in the fallback tag (registry 2.8 has no referrers API)."""
    config = push_blob(client, repo, b"{}")
    layer = push_blob(client, repo, payload)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM_TYPE,
        "config": {"mediaType": EMPTY, **config},
        "layers": [{"mediaType": SBOM_TYPE, **layer}],
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
    }
    raw = json.dumps(manifest).encode()
    digest = client.put_manifest(repo, digest_of(raw), raw, OCI_MANIFEST)
    descriptor = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw), "artifactType": SBOM_TYPE, "annotations": manifest["annotations"]}
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}).encode()
    client.put_manifest(repo, subject["digest"].replace(":", "-"), index, OCI_INDEX)
    return descriptor


def push_signature(client: RegistryClient, repo: str, subject_digest: str) -> str:
    """A cosign-style signature: an image manifest under the tag sha256-<hex>.sig."""
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": subject_digest}, "type": "cosign container image signature"}}).encode()
    config = push_blob(client, repo, json.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers", "diff_ids": [digest_of(payload)]}}).encode())
    layer = push_blob(client, repo, payload)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [
            {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", **layer, "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}}
        ],
    }
    raw = json.dumps(manifest).encode()
    return client.put_manifest(repo, subject_digest.replace(":", "-") + ".sig", raw, OCI_MANIFEST)


@pytest.fixture
def client(registry):
    with RegistryClient(registry.host, ConnectionOptions(validate_certs=False)) as c:
        yield c


def copy_with_referrers(src: str, dest: str, **extra):
    args = {"src": src, "dest": dest, "src_validate_certs": False, "dest_validate_certs": False, "referrers": True}
    args.update(extra)
    return run_module("image_copy", args)


def test_referrers_and_cosign_signature_arrive_attached(registry, client, skopeo, tmp_path):
    image = build_image(str(tmp_path / "img"), ref="v1", layer_sizes=(2048,), seed=71)
    skopeo.copy(image["reference"], "docker://%s/ref-src/app:1" % registry.host)
    subject = {"mediaType": OCI_MANIFEST, "digest": image["manifest_digest"], "size": image["manifest_size"]}
    artifact = attach_artifact(client, "ref-src/app", subject, b'{"spdxVersion":"SPDX-2.3"}')
    signature = push_signature(client, "ref-src/app", image["manifest_digest"])

    with CountingProxy(registry.host) as dest_proxy:
        first = copy_with_referrers("docker://%s/ref-src/app:1" % registry.host, "docker://%s/ref-dest/app:1" % dest_proxy.host)
        assert not first.failed, first.output
        assert first.changed
        assert first.result["results"][0]["referrers"] == 2
        fallback = client.get_referrers("ref-dest/app", image["manifest_digest"])
        assert [d["digest"] for d in fallback] == [artifact["digest"]]
        assert fallback[0]["artifactType"] == SBOM_TYPE
        copied = json.loads(skopeo.inspect_raw("docker://%s/ref-dest/app@%s" % (registry.host, artifact["digest"])))
        assert copied["subject"]["digest"] == image["manifest_digest"]
        sig_tag = "docker://%s/ref-dest/app:%s.sig" % (registry.host, image["manifest_digest"].replace(":", "-"))
        assert digest_of(skopeo.inspect_raw(sig_tag)) == signature

        dest_proxy.reset()
        second = copy_with_referrers("docker://%s/ref-src/app:1" % registry.host, "docker://%s/ref-dest/app:1" % dest_proxy.host)
        assert not second.failed, second.output
        assert second.changed is False
        assert second.result["results"][0]["referrers"] == 2
        assert dest_proxy.writes() == []


def test_referrers_of_each_index_child_are_copied_and_merged_into_an_existing_fallback_tag(registry, client, skopeo, tmp_path):
    index = build_index(str(tmp_path / "multi"), ref="m", platforms=["linux/amd64", "linux/arm64/v8"], seed=72)
    skopeo.copy(index["reference"], "docker://%s/ref-src/multi:1" % registry.host, "--multi-arch", "all")
    child = index["manifests"][1]
    subject = {"mediaType": OCI_MANIFEST, "digest": child["manifest_digest"], "size": child["manifest_size"]}
    ours = attach_artifact(client, "ref-src/multi", subject, b"sbom of arm64")
    # The destination already lists another referrer of that child: it must be kept, not replaced.
    other = attach_artifact(client, "ref-dest/multi", subject, b"sbom written at the destination")

    run = copy_with_referrers("docker://%s/ref-src/multi:1" % registry.host, "docker://%s/ref-dest/multi:1" % registry.host)
    assert not run.failed, run.output
    assert run.result["results"][0]["referrers"] == 1
    listed = sorted(d["digest"] for d in client.get_referrers("ref-dest/multi", child["manifest_digest"]))
    assert listed == sorted([ours["digest"], other["digest"]])
    assert copy_with_referrers("docker://%s/ref-src/multi:1" % registry.host, "docker://%s/ref-dest/multi:1" % registry.host).changed is False


def test_referrers_refused_when_the_digest_would_change(registry, client, skopeo, tmp_path):
    image = build_image(str(tmp_path / "img"), ref="v1", layer_sizes=(1024,), seed=73)
    skopeo.copy(image["reference"], "docker://%s/ref-src/conv:1" % registry.host)
    run = copy_with_referrers("docker://%s/ref-src/conv:1" % registry.host, "docker://%s/ref-dest/conv:1" % registry.host, format="v2s2")
    assert run.failed
    assert "cannot stay attached" in run.result["msg"]
    assert run.result.get("results") is None  # refused before anything was copied


@pytest.mark.parametrize("direction", ["to_layout", "from_layout"])
def test_referrers_with_a_local_side_are_refused_before_anything_is_written(registry, skopeo, tmp_path, direction):
    image = build_image(str(tmp_path / "img"), ref="v1", layer_sizes=(1024,), seed=74)
    skopeo.copy(image["reference"], "docker://%s/ref-src/local:1" % registry.host)
    layout = tmp_path / "out"
    if direction == "to_layout":
        run = copy_with_referrers("docker://%s/ref-src/local:1" % registry.host, "oci:%s:1" % layout)
    else:
        run = copy_with_referrers(image["reference"], "docker://%s/ref-dest/local:1" % registry.host)
    assert run.failed and "registries only" in run.result["msg"] and "referrers: false" in run.result["msg"]
    assert not run.changed and run.result.get("results") is None
    assert not layout.exists()
    if direction == "from_layout":
        with pytest.raises(Exception, match=r"manifest unknown|not found"):
            skopeo.inspect_raw("docker://%s/ref-dest/local:1" % registry.host)
