"""retries: N bounds what is sent: a request at most N+1 times, a blob started at most N+1 times (counted at the fault proxy)."""

from __future__ import annotations

import pytest
from ansible_run import run_module
from fault_proxy import FaultProxy
from images import build_image
from registries import start_registry
from skopeo import copy as skopeo_copy

pytestmark = pytest.mark.timeout(180)

UPLOAD_START = r"/v2/.*/blobs/uploads/$"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    work = tmp_path_factory.mktemp("retry-bound")
    registry = start_registry(str(work / "registry"), "plain")
    proxy = FaultProxy(registry.host, registry=registry)
    try:
        image = build_image(str(work / "image"), ref="1", layer_sizes=(200 * 1024,), seed=931)
        skopeo_copy("oci:%s:1" % image["layout"], "docker://%s/src/app:1" % registry.host)
        yield {"registry": registry, "proxy": proxy, "image": image, "port": proxy.host.split(":")[1]}
    finally:
        proxy.stop()
        registry.stop()


def _copy(rig, dest_repository: str, retries: int):
    port = rig["port"]
    return run_module(
        "image_copy",
        {
            # Two names for the proxy, so the copy moves bytes instead of mounting within one registry.
            "src": "docker://127.0.0.1:%s/src/app:1" % port,
            "dest": "docker://localhost:%s/%s:1" % (port, dest_repository),
            "validate_certs": False,
            "retries": retries,
            "timeout": 5,
        },
    )


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_a_blob_upload_that_always_fails_is_started_at_most_retries_plus_one_times(rig, retries):
    proxy = rig["proxy"]
    proxy.clear()
    layer = rig["image"]["layer_digests"][0]
    proxy.add("status_500", "PUT", r"/blobs/uploads/.*digest=sha256(:|%%3A)%s" % layer.split(":")[1], nth=None)
    run = _copy(rig, "bound-upload-%d" % retries, retries)
    assert run.failed
    puts = [e for e in proxy.exchanges("PUT", r"/blobs/uploads/") if layer.split(":")[1] in e.path]
    assert len(puts) == retries + 1, [e.path for e in puts]
    # Each start of the blob opens one upload session, none more (the POST itself did not fail).
    assert len(proxy.exchanges("POST", UPLOAD_START)) <= (retries + 1) + 1  # the layer's sessions, and the config's


@pytest.mark.parametrize("retries", [0, 2])
def test_a_blob_read_that_always_breaks_off_is_tried_at_most_retries_plus_one_times_in_all(rig, retries):
    proxy = rig["proxy"]
    proxy.clear()
    layer = rig["image"]["layer_digests"][0]
    proxy.add("reset_mid_body", "GET", "/blobs/" + layer, nth=None, after_bytes=1000)
    run = _copy(rig, "bound-read-%d" % retries, retries)
    assert run.failed
    gets = proxy.exchanges("GET", "/blobs/" + layer)
    # The resumes and the starts over of the blob share one budget: retries + 1 reads of it in all.
    assert len(gets) == retries + 1, [(e.path, e.range) for e in gets]


def test_a_manifest_request_that_keeps_failing_is_sent_retries_plus_one_times(rig):
    proxy = rig["proxy"]
    proxy.clear()
    proxy.add("status_503", "GET", r"/v2/src/app/manifests/1$", nth=None)
    proxy.add("status_503", "HEAD", r"/v2/src/app/manifests/1$", nth=None)
    run = run_module("image_info", {"image": "docker://127.0.0.1:%s/src/app:1" % rig["port"], "validate_certs": False, "retries": 2, "timeout": 5})
    assert run.failed
    sent = proxy.exchanges(path=r"/v2/src/app/manifests/1$")
    assert len(sent) == 3, [(e.method, e.path) for e in sent]


def test_one_fault_per_request_is_survived_with_one_retry(rig):
    proxy = rig["proxy"]
    proxy.clear()
    layer = rig["image"]["layer_digests"][0]
    proxy.add("status_502", "GET", "/blobs/" + layer, nth=(1,))
    run = _copy(rig, "bound-survive", 1)
    assert not run.failed, run.output
    assert len(proxy.exchanges("GET", "/blobs/" + layer)) == 2


@pytest.mark.parametrize("retries", [1, 2])
def test_an_upload_session_that_cannot_be_opened_is_asked_for_at_most_retries_plus_one_times(rig, retries):
    proxy = rig["proxy"]
    proxy.clear()
    proxy.add("status_503", "POST", UPLOAD_START, nth=None)
    run = _copy(rig, "bound-session-%d" % retries, retries)
    assert run.failed
    # Two blobs (config and layer) run in parallel, each with its own budget.
    assert len(proxy.exchanges("POST", UPLOAD_START)) == 2 * (retries + 1)


@pytest.mark.parametrize("retries", [1, 2])
def test_an_upload_session_whose_connection_drops_is_asked_for_at_most_retries_plus_one_times(rig, retries):
    proxy = rig["proxy"]
    proxy.clear()
    proxy.add("reset_on_request", "POST", UPLOAD_START, nth=None)
    run = _copy(rig, "bound-drop-%d" % retries, retries)
    assert run.failed
    # Before one retry layer, the request's own retries ran inside the engine's: (retries + 1) squared per blob.
    assert len(proxy.exchanges("POST", UPLOAD_START)) == 2 * (retries + 1)
