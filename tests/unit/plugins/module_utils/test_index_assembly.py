"""image_index's logic in-process against the in-memory transport: platforms, merge, replace, remove, idempotency."""

from __future__ import annotations

import json

import pytest
from memory_transport import MemoryStore, random_image

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._index import IndexImage, IndexRequest, assemble_index
from ansible_collections.oci.images.plugins.module_utils._media import parse_platform
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference

SIDE = ConnectionOptions()


@pytest.fixture
def store(memory_store):
    for n in range(3):
        random_image(memory_store, "builds", "b%d" % n, layer_sizes=(500 + n,), seed=n)
    return memory_store


def assemble(images, check: bool = False, **request) -> dict:
    wanted = [IndexImage(parse_reference("memory:builds:%s" % name), parse_platform(platform) if platform else None) for name, platform in images]
    return assemble_index(IndexRequest(dest=parse_reference("memory:dest:multi"), images=wanted, **request), SIDE, SIDE, check_mode=check)


def index_at(store: MemoryStore) -> dict:
    place = store.place("dest")
    return json.loads(place.blobs[place.names["multi"]])


def test_the_platform_comes_from_the_config_and_the_same_images_write_nothing_again(store):
    first = assemble([("b0", None)])
    assert first["changed"] and [m["platform"] for m in first["manifests"]] == ["linux/amd64"]  # the config says amd64
    puts = store.calls["put_manifest"]
    again = assemble([("b0", None)])
    assert again["changed"] is False and again["digest"] == first["digest"]
    assert store.calls["put_manifest"] == puts


def test_merge_replaces_in_place_and_appends_and_remove_takes_out(store):
    assemble([("b0", "linux/amd64"), ("b1", "linux/arm64")])
    merged = assemble([("b2", "linux/arm64/v8"), ("b0", "linux/s390x")], merge=True)  # arm64/v8 is arm64
    entries = index_at(store)["manifests"]
    assert [(m["platform"]["architecture"], m["digest"]) for m in entries] == [
        ("amd64", merged["manifests"][0]["digest"]),
        ("arm64", store.place("builds").names["b2"]),
        ("s390x", store.place("builds").names["b0"]),
    ]
    removed = assemble([], remove=[parse_platform("linux/s390x")])
    assert [m["platform"] for m in removed["manifests"]] == ["linux/amd64", "linux/arm64/v8"]
    assert assemble([], remove=[parse_platform("linux/s390x")])["changed"] is False


def test_check_mode_gives_the_digest_and_writes_nothing(store):
    predicted = assemble([("b0", "linux/amd64"), ("b1", "linux/arm/v7")], check=True)
    assert predicted["changed"] and store.place("dest") is None
    done = assemble([("b0", "linux/amd64"), ("b1", "linux/arm/v7")])
    assert done["digest"] == predicted["digest"] and done["blobs"] == predicted["blobs"]


def test_two_images_for_one_platform_and_an_empty_index_are_refused(store):
    with pytest.raises(OCIError, match="two images for platform linux/amd64"):
        assemble([("b0", None), ("b1", None)])
    assemble([("b0", None)])
    with pytest.raises(OCIError, match="the index would hold no image"):
        assemble([], remove=[parse_platform("linux/amd64")])
