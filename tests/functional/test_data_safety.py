"""Data safety under concurrency and under a killed module.

- image_delete never removes a tag it was not asked to, while image_copy writes the same digests into the same repository;
- parallel image_copy runs into one OCI layout lose no index.json entry;
- a module killed with SIGKILL mid-copy leaves the destination as it was (or complete): no tag on a partial image,
  no partial local layout (at most a ``.oci-images-tmp-*`` staging directory).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from ansible_run import BIN, ansible_env, run_module
from fault_proxy import FaultProxy
from images import build_image
from skopeo import copy as skopeo_copy
from skopeo import inspect_raw

pytestmark = pytest.mark.timeout(300)

ACCEPT = "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tag_digest(registry, repository: str, tag: str) -> str | None:
    """The digest a tag names, straight at the registry, after checking every blob of it is there; None when absent."""
    request = urllib.request.Request("%s/v2/%s/manifests/%s" % (registry.url, repository, tag), headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    doc = json.loads(raw)
    for blob in [doc["config"], *doc["layers"]]:
        head = urllib.request.Request("%s/v2/%s/blobs/%s" % (registry.url, repository, blob["digest"]), method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as response:
            assert response.status == 200
    return digest_of(raw)


@pytest.fixture
def images(tmp_path):
    """Two small images in one layout: ``a`` (the shared digest) and ``b``."""
    layout = str(tmp_path / "src")
    return {
        "layout": layout,
        "a": build_image(layout, ref="a", layer_sizes=(4096,), seed=1201)["manifest_digest"],
        "b": build_image(layout, ref="b", layer_sizes=(4096,), seed=1202)["manifest_digest"],
    }


def _push(registry, images, name: str, tag: str) -> None:
    skopeo_copy("oci:%s:%s" % (images["layout"], name), "docker://%s/safe/app:%s" % (registry.host, tag))


@pytest.mark.parametrize("method", ["auto", "placeholder"])
def test_delete_keeps_every_other_tag_while_a_copy_writes_the_same_digest(fresh_registry, images, method):
    registry = fresh_registry()
    _push(registry, images, "a", "keep")
    for round_ in range(3):
        doomed = "doomed-%d" % round_
        # auto: the doomed tag shares its digest with "keep", so it must be detached, never deleted by digest.
        # placeholder: the doomed tag may be the digest's only tag while the copy adds another one.
        _push(registry, images, "a" if method == "auto" else "b", doomed)

        def delete(doomed=doomed):
            return run_module("image_delete", {"image": "docker://%s/safe/app:%s" % (registry.host, doomed), "method": method, "validate_certs": False})

        def copy(tag, name):
            src = "oci:%s:%s" % (images["layout"], name)
            return run_module("image_copy", {"src": src, "dest": "docker://%s/safe/app:%s" % (registry.host, tag), "dest_validate_certs": False})

        with ThreadPoolExecutor(3) as pool:
            deleting = pool.submit(delete)
            copies = [pool.submit(copy, "new-a-%d" % round_, "a"), pool.submit(copy, "new-b-%d" % round_, "b")]
            runs = [deleting.result()] + [c.result() for c in copies]
        assert not any(run.failed for run in runs), [run.result.get("msg") for run in runs]
        assert tag_digest(registry, "safe/app", doomed) is None
        assert tag_digest(registry, "safe/app", "keep") == images["a"]
        for r in range(round_ + 1):
            assert tag_digest(registry, "safe/app", "new-a-%d" % r) == images["a"], "a tag the delete was not asked for is gone"
            assert tag_digest(registry, "safe/app", "new-b-%d" % r) == images["b"]


def test_parallel_copies_into_one_layout_lose_no_index_entry(tmp_path, images):
    layout = tmp_path / "shared-layout"

    def copy(i):
        name = "a" if i % 2 else "b"
        return run_module("image_copy", {"src": "oci:%s:%s" % (images["layout"], name), "dest": "oci:%s:tag-%d" % (layout, i)})

    for round_ in range(2):
        # round 0 races to create the layout, round 1 to add to it
        numbers = range(round_ * 4, round_ * 4 + 4)
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(copy, numbers))
        assert not any(run.failed for run in runs), [run.result.get("msg") for run in runs]
    with open(layout / "index.json") as f:
        names = sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in json.load(f)["manifests"])
    assert names == sorted("tag-%d" % i for i in range(8))
    for i in range(8):
        assert digest_of(inspect_raw("oci:%s:tag-%d" % (layout, i))) == images["a" if i % 2 else "b"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".oci-images-tmp")]


# --- SIGKILL mid-copy --------------------------------------------------------------------------


@pytest.fixture
def big_source(fresh_registry, tmp_path):
    """A registry holding an image with a 24 MiB layer, and a fault proxy in front that stalls that layer half way."""
    registry = fresh_registry()
    image = build_image(str(tmp_path / "big"), ref="1", layer_sizes=(24 * 1024 * 1024, 4096), seed=1203)
    skopeo_copy("oci:%s:1" % image["layout"], "docker://%s/big/app:1" % registry.host)
    with FaultProxy(registry.host) as proxy:
        proxy.add("stall_mid_body", "GET", "/blobs/" + image["layer_digests"][0], after_bytes=8 * 1024 * 1024, seconds=120)
        yield registry, proxy, image


def _kill_mid_copy(proxy, args: dict) -> None:
    """Start the module with ansible in its own process group, wait until the proxy holds the stalled blob, SIGKILL the group."""
    cmd = [os.path.join(BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", "oci.images.image_copy", "-a", json.dumps(args)]
    proc = subprocess.Popen(cmd, env=ansible_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not [e for e in proxy.exchanges("GET") if e.fault == "stall_mid_body" and e.body_bytes]:
            assert proc.poll() is None, "the module ended before it reached the stalled blob"
            assert time.monotonic() < deadline, "the copy never reached the stalled blob"
            time.sleep(0.05)  # polling the proxy's record, not waiting for a guess
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_module_killed_mid_copy_leaves_no_tag_on_a_partial_image(big_source):
    registry, proxy, image = big_source
    _kill_mid_copy(
        proxy,
        {
            "src": "docker://%s/big/app:1" % proxy.host,
            "dest": "docker://localhost:%s/killed/app:1" % registry.port,
            "src_validate_certs": False,
            "dest_validate_certs": False,
            "parallel": 1,
        },
    )
    assert tag_digest(registry, "killed/app", "1") is None
    # and a second run afterwards completes the copy
    proxy.clear()
    run = run_module(
        "image_copy",
        {
            "src": "docker://%s/big/app:1" % registry.host,
            "dest": "docker://%s/killed/app:1" % registry.host,
            "src_validate_certs": False,
            "dest_validate_certs": False,
        },
    )
    assert not run.failed, run.result.get("msg")
    assert tag_digest(registry, "killed/app", "1") == image["manifest_digest"]


def test_module_killed_mid_copy_leaves_no_partial_local_destination(big_source, tmp_path):
    _registry, proxy, image = big_source
    out = tmp_path / "out"
    out.mkdir()
    existing = tmp_path / "out" / "existing"
    other = build_image(str(tmp_path / "other"), ref="1", layer_sizes=(2048,), seed=1204)
    run = run_module("image_copy", {"src": "oci:%s:1" % other["layout"], "dest": "oci:%s:old" % existing})
    assert not run.failed, run.result.get("msg")
    with open(existing / "index.json", "rb") as f:
        index_before = f.read()
    fresh = out / "fresh"
    for dest in ("oci:%s:1" % fresh, "oci:%s:new" % existing):
        proxy.clear()
        proxy.add("stall_mid_body", "GET", "/blobs/" + image["layer_digests"][0], after_bytes=8 * 1024 * 1024, seconds=120)
        _kill_mid_copy(proxy, {"src": "docker://%s/big/app:1" % proxy.host, "dest": dest, "src_validate_certs": False})
    assert not fresh.exists(), "a killed copy left a partial layout at %s" % fresh
    with open(existing / "index.json", "rb") as f:
        assert f.read() == index_before, "a killed copy changed the existing layout's index.json"
    assert digest_of(inspect_raw("oci:%s:old" % existing)) == other["manifest_digest"]
    leftovers = sorted(set(os.listdir(out)) - {"existing"}) + sorted(set(os.listdir(existing)) - {"blobs", "index.json", "oci-layout", ".oci-images.lock"})
    assert all(name.startswith(".oci-images-tmp") for name in leftovers), leftovers
