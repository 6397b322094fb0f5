"""Blob reuse across repositories and runs, counted at the registry (through a proxy) and in the module's result.

Eight repositories x two tags share a base layer. Within one task the base crosses once: read from
the source once, uploaded into one repository, mounted into the others. With ``blob_cache`` a new
process mirroring the same images into new repositories of that registry uploads nothing. A mount
that fails (refused by a fault-injecting proxy, or stale in the cache) falls back to the upload.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from ansible_run import run_module
from blob_counts import blob_totals as totals
from counting_proxy import CountingProxy
from fault_proxy import FaultProxy
from images import build_image

pytestmark = pytest.mark.timeout(900)

REPOSITORIES = 8
TAGS = 2
BASE = 256 * 1024
OWN = 4096
PARALLEL = 8


@pytest.fixture(scope="module")
def shared_base(registry, skopeo, tmp_path_factory) -> dict:
    """REPOSITORIES x TAGS images in the plain registry, all on one base layer; their blobs by digest."""
    layout = str(tmp_path_factory.mktemp("reuse-src") / "layout")
    prefix = "reuse-%s" % uuid.uuid4().hex[:8]
    images, blobs = [], {}
    for r in range(REPOSITORIES):
        for t in range(TAGS):
            info = build_image(layout, ref="r%d-t%d" % (r, t), layer_sizes=(BASE, OWN), seed=100 * r + t, layer_keys=["base", "own-%d-%d" % (r, t)])
            name = "%s/src%d:t%d" % (prefix, r, t)
            skopeo.copy("oci:%s:r%d-t%d" % (layout, r, t), "docker://%s/%s" % (registry.host, name))
            images.append(name)
            blobs[info["config_digest"]] = info["config_size"]
            for layer in info["layers"]:
                blobs[layer["digest"]] = layer["size"]
    base = next(d for d, size in blobs.items() if size >= BASE)
    return {"images": images, "blobs": blobs, "base": base}


def mirror_args(shared_base: dict, src_host: str, dest_host: str, dest_prefix: str, **extra) -> dict:
    """image_copy of every image into repository ``dest_prefix/dstN`` of ``dest_host``."""
    pairs = [
        {"src": "docker://%s/%s" % (src_host, name), "dest": "docker://%s/%s/dst%s" % (dest_host, dest_prefix, name.split("/src", 1)[1])}
        for name in shared_base["images"]
    ]
    args = {"images": pairs, "parallel_images": PARALLEL, "src_validate_certs": False, "dest_validate_certs": False}
    args.update(extra)
    return args


def test_a_base_shared_by_repositories_is_read_once_uploaded_once_and_mounted_elsewhere(registry, fresh_registry, shared_base, skopeo):
    dest = fresh_registry()
    with CountingProxy(registry.host) as src_proxy, CountingProxy(dest.host) as dest_proxy:
        run = run_module("image_copy", mirror_args(shared_base, src_proxy.host, dest_proxy.host, "mirror"))
        assert not run.failed, run.output
        uploads = dest_proxy.blob_uploads()
        base_reads = [p for m, p in src_proxy.requests if m == "GET" and p.endswith("/blobs/" + shared_base["base"])]
        received = dest_proxy.bytes_received()
    blobs = shared_base["blobs"]
    assert uploads == dict.fromkeys(blobs, 1), uploads  # every blob once: the base too, not once per repository
    assert len(base_reads) == 1
    assert len([m for m in dest_proxy.blob_mounts() if shared_base["base"].replace(":", "%3A") in m or shared_base["base"] in m]) == REPOSITORIES - 1
    unique = sum(blobs.values())
    assert received < unique * 1.1, (received, unique)  # the blobs once, and the manifests
    assert totals(run.result) == {"copied": len(blobs), "skipped": REPOSITORIES, "mounted": REPOSITORIES - 1}
    for r in range(REPOSITORIES):
        for t in range(TAGS):
            skopeo.inspect_raw("docker://%s/mirror/dst%d:t%d" % (dest.host, r, t))


def test_a_refused_mount_falls_back_to_the_upload(registry, fresh_registry, shared_base, skopeo):
    dest = fresh_registry()
    with FaultProxy(dest.host) as proxy:
        refusal = proxy.add("status_500", method="POST", path=r"mount=", nth=None)
        run = run_module("image_copy", mirror_args(shared_base, registry.host, proxy.host, "refused"))
        assert not run.failed, run.output
    assert refusal.fired >= REPOSITORIES - 1
    # Every repository got the base by upload after its mount was refused.
    assert totals(run.result) == {"copied": len(shared_base["blobs"]) + REPOSITORIES - 1, "skipped": REPOSITORIES, "mounted": 0}
    for r in range(REPOSITORIES):
        skopeo.inspect_raw("docker://%s/refused/dst%d:t0" % (dest.host, r))


def cache_rows(path: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT domain, place, digest FROM places").fetchall()


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_the_blob_cache_mounts_into_new_repositories_in_a_new_process(kind, request, registry, shared_base, tmp_path, skopeo):
    reg = request.getfixturevalue(kind + "_registry")
    cache = str(tmp_path / "cache" / "blobs.sqlite")
    prefix = "cache-%s" % uuid.uuid4().hex[:8]
    login = {"dest_username": reg.username, "dest_password": reg.password, "dest_ca_cert": reg.ca_cert, "dest_validate_certs": True}

    def mirror(name: str, **extra) -> dict:
        args = mirror_args(shared_base, registry.host, reg.host, "%s/%s" % (prefix, name), **login, **extra)
        args["dest_validate_certs"] = True
        run = run_module("image_copy", args)
        assert not run.failed, run.output
        return totals(run.result)

    blobs = len(shared_base["blobs"])
    assert mirror("first", blob_cache=True, blob_cache_path=cache) == {"copied": blobs, "skipped": REPOSITORIES, "mounted": REPOSITORIES - 1}
    assert os.stat(cache).st_mode & 0o777 == 0o600
    for again in ("second", "third"):  # new processes, new repositories: every blob mounted from where the cache says
        assert mirror(again, blob_cache=True, blob_cache_path=cache) == {"copied": 0, "skipped": REPOSITORIES, "mounted": blobs + REPOSITORIES - 1}
    # Without the cache the same run uploads every blob once more.
    assert mirror("uncached")["copied"] == blobs
    skopeo.inspect_raw("docker://%s/%s/third/dst3:t1" % (reg.host, prefix), "--tls-verify=false", "--creds", "%s:%s" % (reg.username, reg.password))
    # Names and digests only: no credential and no token in the file.
    rows = cache_rows(cache)
    assert {domain for domain, _place, _digest in rows} >= {"docker://" + reg.host}
    with open(cache, "rb") as handle:
        content = handle.read()
    assert reg.password.encode() not in content and b"Bearer" not in content and b"eyJ" not in content


def test_a_stale_cache_entry_falls_back_to_the_upload_and_is_forgotten(registry, fresh_registry, shared_base, tmp_path, skopeo):
    dest = fresh_registry()
    cache = str(tmp_path / "blobs.sqlite")
    base = shared_base["base"]
    with CountingProxy(dest.host) as proxy:
        first = run_module("image_copy", mirror_args(shared_base, registry.host, proxy.host, "stale", blob_cache=True, blob_cache_path=cache))
        assert not first.failed, first.output
        for r in range(REPOSITORIES):  # the repositories the cache names lose the base behind its back
            request = urllib.request.Request("http://%s/v2/stale/dst%d/blobs/%s" % (dest.host, r, base), method="DELETE")
            with urllib.request.urlopen(request) as answer:
                assert answer.status == 202
        proxy.reset()
        run = run_module("image_copy", mirror_args(shared_base, registry.host, proxy.host, "fresh", blob_cache=True, blob_cache_path=cache))
        assert not run.failed, run.output
        assert proxy.blob_uploads() == {base: 1}  # after the stale mounts failed, once, then mounted from there
    assert totals(run.result)["copied"] == 1
    skopeo.inspect_raw("docker://%s/fresh/dst5:t1" % dest.host)
    stale = {place for _domain, place, digest in cache_rows(cache) if digest == base and place.startswith("stale/")}
    assert len(stale) <= REPOSITORIES - 3  # the places tried and found without it are gone from the file


def test_check_mode_neither_writes_the_cache_nor_mounts(registry, fresh_registry, shared_base, tmp_path):
    dest = fresh_registry()
    cache = str(tmp_path / "blobs.sqlite")
    with CountingProxy(dest.host) as proxy:
        checked = run_module("image_copy", mirror_args(shared_base, registry.host, proxy.host, "check", blob_cache=True, blob_cache_path=cache), check=True)
        assert not checked.failed, checked.output
        assert not os.path.exists(cache)
        assert proxy.writes() == []
        done = run_module("image_copy", mirror_args(shared_base, registry.host, proxy.host, "check", blob_cache=True, blob_cache_path=cache))
        assert not done.failed, done.output
        assert totals(checked.result) == totals(done.result)  # the prediction is the real run's
        with open(cache, "rb") as handle:
            before = handle.read()
        proxy.reset()
        again = run_module("image_copy", mirror_args(shared_base, registry.host, proxy.host, "check-new", blob_cache=True, blob_cache_path=cache), check=True)
        assert not again.failed, again.output
        assert totals(again.result) == {"copied": 0, "skipped": REPOSITORIES, "mounted": len(shared_base["blobs"]) + REPOSITORIES - 1}
        assert proxy.writes() == []
    with open(cache, "rb") as handle:
        assert handle.read() == before


def test_parallel_tasks_share_one_cache_file(registry, token_registry, shared_base, tmp_path):
    """PARALLEL module processes at once, three rounds, one cache file: none fails and every place is recorded."""
    cache = str(tmp_path / "shared.sqlite")
    reg = token_registry
    prefix = "par-%s" % uuid.uuid4().hex[:8]

    def task(name: str):
        args = mirror_args(
            {"images": shared_base["images"][:TAGS]},
            registry.host,
            reg.host,
            "%s/%s" % (prefix, name),
            blob_cache=True,
            blob_cache_path=cache,
            dest_username=reg.username,
            dest_password=reg.password,
            dest_ca_cert=reg.ca_cert,
        )
        args["dest_validate_certs"] = True
        return run_module("image_copy", args)

    for rounds in range(3):
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            runs = list(pool.map(task, ["r%d-%d" % (rounds, i) for i in range(PARALLEL)]))
        for run in runs:
            assert not run.failed, run.output
            assert "warning" not in run.output.lower(), run.output
    places = {place for _domain, place, _digest in cache_rows(cache) if place.startswith(prefix)}
    assert places == {"%s/r%d-%d/dst0" % (prefix, r, i) for r in range(3) for i in range(PARALLEL)}
    assert not [name for name in os.listdir(tmp_path) if name.startswith("shared.sqlite-")]  # no journal left behind
