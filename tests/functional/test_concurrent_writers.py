"""Writers that share a repository: a blob unlinked behind our back before the manifest lands is put back.

Sliced mirrors push into shared repositories by design, and distribution 2.8 then now and then
refuses a manifest with MANIFEST_BLOB_UNKNOWN or DIGEST_INVALID while another writer re-uploads a
shared layer (distribution issues 4489 and 2077). The real registry is made to refuse for real:
the fault proxy deletes the layer's link in the repository right before it forwards our manifest.
"""

from __future__ import annotations

import urllib.request

import pytest
from ansible_run import run_module
from fault_proxy import FaultProxy
from images import build_image
from registries import start_registry
from skopeo import copy as skopeo_copy
from skopeo import inspect_raw

pytestmark = pytest.mark.timeout(180)


def _request(url: str, method: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_layer_unlinked_before_the_manifest_lands_is_uploaded_again_and_the_manifest_retried(tmp_path):
    registry = start_registry(str(tmp_path / "registry"), "plain")
    proxy = FaultProxy(registry.host, registry=registry)
    try:
        image = build_image(str(tmp_path / "image"), ref="1", layer_sizes=(64 * 1024, 8 * 1024), seed=451)
        skopeo_copy("oci:%s:1" % image["layout"], "docker://%s/src/app:1" % registry.host)
        port = proxy.host.split(":")[1]
        common = {"src_validate_certs": False, "dest_validate_certs": False, "parallel": 1}
        first = run_module("image_copy", dict(common, src="docker://127.0.0.1:%s/src/app:1" % port, dest="docker://localhost:%s/shared/app:1" % port))
        assert not first.failed, first.output
        layer = image["layer_digests"][0]
        blob_url = "%s/v2/shared/app/blobs/%s" % (registry.url, layer)

        def unlink_layer():
            assert _request(blob_url, "DELETE") == 202

        proxy.clear()
        proxy.add("before_forward", "PUT", r"/v2/shared/app/manifests/2$", nth=(1,), action=unlink_layer)
        second = run_module("image_copy", dict(common, src="docker://127.0.0.1:%s/src/app:1" % port, dest="docker://localhost:%s/shared/app:2" % port))
        assert not second.failed, second.output
        puts = proxy.exchanges("PUT", r"/manifests/2$")
        assert [e.status for e in puts] == [400, 201], [(e.path, e.status) for e in puts]
        assert _request(blob_url, "HEAD") == 200
        uploads = [e for e in proxy.exchanges("PUT", r"/blobs/uploads/") if layer.split(":")[1] in e.path]
        assert len(uploads) == 1
        assert inspect_raw("docker://%s/shared/app:2" % registry.host) == inspect_raw("docker://%s/src/app:1" % registry.host)
    finally:
        proxy.stop()
        registry.stop()
