"""A whole registry through image_info: its catalog, and the footprint of its repositories checked against garbage-collect."""

from __future__ import annotations

import os
import subprocess

import pytest
from ansible_run import run_module
from counting_proxy import CountingProxy
from many_repositories import fill_sharing_repositories, own_bytes
from registries import REGISTRY_BINARY, Registry

pytestmark = pytest.mark.timeout(300)


def info(**args):
    return run_module("image_info", dict(validate_certs=False, **args))


def blob_bytes_on_disk(registry: Registry) -> int:
    """What ``du -sb`` would count for the registry's blob store (layers, configs and manifests): the sum of file sizes."""
    total = 0
    for root, _dirs, files in os.walk(os.path.join(registry.data_dir, "docker", "registry", "v2", "blobs")):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total


def garbage_collect(registry: Registry, *flags: str) -> int:
    """Run ``docker-registry garbage-collect`` on the stopped registry's storage; the bytes it freed."""
    before = blob_bytes_on_disk(registry)
    subprocess.run([REGISTRY_BINARY, "garbage-collect", *flags, registry.config_path], check=True, capture_output=True, timeout=120)
    return before - blob_bytes_on_disk(registry)


@pytest.fixture
def shared_registry(fresh_registry, tmp_path):
    """The registry of many_repositories.fill_sharing_repositories: gc/app, gc/base, gc/dup, gc/tool."""
    registry = fresh_registry()
    return registry, fill_sharing_repositories(registry.host, str(tmp_path / "layout"))


def test_catalog_lists_the_repositories_of_a_namespace_selected_by_whole_name(shared_registry):
    registry, _images = shared_registry
    every = info(catalog=registry.host)
    assert not every.failed, every.output
    assert every.result["repositories"] == ["gc/app", "gc/base", "gc/dup", "gc/tool"]
    assert every.result["catalog"] == "docker://%s" % registry.host and every.result["exists"] is True

    chosen = info(catalog="docker://%s/gc/" % registry.host, repositories={"include": ["gc/.*p.*"], "exclude": ["gc/dup"]})
    assert not chosen.failed, chosen.output
    assert chosen.result["repositories"] == ["gc/app"]  # "p" anywhere, as a whole-name match: gc/dup excluded, gc/base and gc/tool not included
    assert chosen.result["catalog"] == "docker://%s/gc" % registry.host

    outside = info(catalog="%s/g" % registry.host)  # a namespace is a whole path component: "g" holds nothing of "gc/..."
    assert not outside.failed, outside.output
    assert outside.result["repositories"] == [] and outside.result["exists"] is False


def test_registry_footprint_sees_everything_the_blob_store_holds_and_predicts_garbage_collect(shared_registry):
    registry, images = shared_registry
    run = info(catalog=registry.host, footprint=True, registry_storage=registry.data_dir)
    assert not run.failed, run.output
    footprint = run.result["footprint"]
    # Every blob and manifest once: exactly the bytes of the blob store.
    assert footprint["total_bytes"] == blob_bytes_on_disk(registry)
    # The image gc/tool's tag moved away from is kept, untagged; only the storage shows it.
    assert footprint["untagged"] == {"visible": True, "manifests": 1, "bytes": own_bytes(images["tool-old"])}
    tool = footprint["repositories"]["gc/tool"]
    assert (tool["untagged_manifests"], tool["untagged_bytes"]) == (1, own_bytes(images["tool-old"]))
    assert tool["freed_bytes"] == own_bytes(images["tool-new"]) and tool["unique_bytes"] == own_bytes(images["tool-new"]) + own_bytes(images["tool-old"])

    app = footprint["repositories"]["gc/app"]
    base_layer = images["base"]["layer_sizes"][0]
    assert app["tags"] == 4 and app["manifests"] == 2 + 1 + len(images["multi"]["manifests"])
    assert app["shared_bytes"] == base_layer + own_bytes(images["app1"]) - base_layer  # the base layer, and all of app1 (in gc/dup too)
    assert app["freed_bytes"] == app["size"] - app["shared_bytes"]
    shared_layer = next(b for b in footprint["blobs"] if b["digest"] == images["base"]["layer_digests"][0])
    assert shared_layer["repositories"] == ["gc/app", "gc/base", "gc/dup"]

    # Delete every tag of gc/app (image_delete takes the index's images along), then garbage-collect.
    deleted = run_module("image_delete", dict(image="docker://%s/gc/app" % registry.host, prune={"include": [".*"]}, validate_certs=False))
    assert not deleted.failed, deleted.output
    registry.stop()
    try:
        freed = garbage_collect(registry)
        assert abs(freed - app["freed_bytes"]) <= 0.02 * freed, (app["freed_bytes"], freed)
        print("gc/app: predicted %d bytes freed, garbage-collect freed %d" % (app["freed_bytes"], freed))
        # What only untagged manifests hold goes with --delete-untagged (no index is left whose images it would take).
        assert garbage_collect(registry, "--delete-untagged") == footprint["untagged"]["bytes"]
    finally:
        registry.start()


def test_without_the_storage_untagged_manifests_are_not_seen_and_said_so(shared_registry):
    registry, images = shared_registry
    run = info(catalog=registry.host, footprint=True, repositories={"include": ["gc/tool"]})
    assert not run.failed, run.output
    footprint = run.result["footprint"]
    assert footprint["untagged"] == {"visible": False, "manifests": None, "bytes": None}
    tool = footprint["repositories"]["gc/tool"]
    assert tool["untagged_manifests"] is None and tool["untagged_bytes"] is None
    assert footprint["total_bytes"] == tool["size"] == own_bytes(images["tool-new"])


def test_repositories_named_instead_of_the_catalog(shared_registry):
    registry, _images = shared_registry
    run = info(catalog=registry.host, footprint=True, repositories={"names": ["gc/base", "gc/dup", "gc/base"]})
    assert not run.failed, run.output
    assert run.result["repositories"] == ["gc/base", "gc/dup"]
    repositories = run.result["footprint"]["repositories"]
    assert repositories["gc/base"]["shared_bytes"] == repositories["gc/dup"]["shared_bytes"] > 0

    wrong = info(catalog=registry.host, repositories={"names": ["Not/Valid"]})
    assert wrong.failed and "repositories.names" in wrong.result["msg"] and "'Not/Valid'" in wrong.result["msg"]


def test_a_catalog_the_account_may_not_read_fails_saying_what_to_do(fresh_registry, tmp_path):
    registry = fresh_registry("token")
    run = run_module("image_info", dict(catalog=registry.host, ca_cert=registry.ca_cert), env={"HOME": str(tmp_path)})
    assert run.failed
    assert "registry:catalog:*" in run.result["msg"] and "name the repositories instead" in run.result["msg"], run.result["msg"]
    assert "Traceback" not in run.output


def test_catalog_needs_a_registry_host(registry):
    run = info(catalog="fedora")
    assert run.failed and "does not name a registry" in run.result["msg"]
    both = run_module("image_info", dict(catalog=registry.host, image="docker://%s/x:1" % registry.host))
    assert both.failed and "mutually exclusive" in both.result["msg"]


def test_requests_grow_with_tags_through_the_api_and_with_distinct_manifests_through_the_storage(shared_registry):
    registry, images = shared_registry
    tags, children = 2 + 4 + 1 + 1, len(images["multi"]["manifests"])
    with CountingProxy(registry.host) as proxy:
        api = info(catalog=proxy.host, footprint=True)
        assert not api.failed, api.output
        through_api = list(proxy.requests)
        proxy.reset()
        storage = info(catalog=proxy.host, footprint=True, registry_storage=registry.data_dir)
        assert not storage.failed, storage.output
        through_storage = list(proxy.requests)
    # One catalog page, one tag list per repository, one manifest per tag, then the index's images; no blob.
    assert len(through_api) == 1 + 4 + tags + children, through_api
    # One catalog page, then each distinct manifest once: base, app1 (in gc/app and gc/dup), app2, the index and its images,
    # tool-new, and tool-old that no tag names any more.
    digests = [path.rpartition("/")[2] for _method, path in through_storage if "/manifests/" in path]
    assert len(digests) == len(set(digests)) and all(d.startswith("sha256:") for d in digests)
    assert len(through_storage) == 1 + 5 + children + 1, through_storage
    assert not [path for _method, path in through_api + through_storage if "/blobs/" in path]
    # The same tags and the same figures either way, but for what only the storage shows.
    for name, facts in api.result["footprint"]["repositories"].items():
        seen = storage.result["footprint"]["repositories"][name]
        assert {k: facts[k] for k in ("tags", "manifests", "size", "shared_bytes")} == {k: seen[k] for k in ("tags", "manifests", "size", "shared_bytes")}
