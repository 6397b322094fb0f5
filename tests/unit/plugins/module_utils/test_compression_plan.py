"""The compression decision in plan_copy, in-process against the in-memory transport: what is converted, what is
kept, when a converted copy is up to date, and that check mode predicts the real run."""

from __future__ import annotations

import json

import pytest
from memory_transport import MemoryStore, random_image

from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions, copy_image, plan_copy
from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._transports._table import open_destination, open_source

SIDE = ConnectionOptions()


@pytest.fixture
def store(memory_store):
    return memory_store


def copy(src: str, dest: str, check: bool = False, **options) -> dict:
    return copy_image(parse_reference(src), parse_reference(dest), SIDE, SIDE, CopyOptions(**options), check_mode=check)


def layers_at(store: MemoryStore, place: str, name: str) -> list[dict]:
    target = store.place(place)
    return json.loads(target.blobs[target.names[name]])["layers"]


@pytest.mark.parametrize("compression, media_type", [("gzip", "+gzip"), ("zstd", "+zstd"), ("zstd:chunked", "+zstd")])
def test_plain_tar_layers_are_compressed_and_a_second_copy_changes_nothing(store, compression, media_type):
    random_image(store, "src", "v1", layer_sizes=(3000, 1000))
    first = copy("memory:src:v1", "memory:dest:v1", compression=compression)
    assert first["changed"] and first["dest_digest_after"]
    layers = layers_at(store, "dest", "v1")
    assert all(layer["mediaType"].endswith(media_type) for layer in layers)
    assert all(bool(layer.get("annotations")) is (compression == "zstd:chunked") for layer in layers)
    again = copy("memory:src:v1", "memory:dest:v1", compression=compression)
    assert again["changed"] is False and again["dest_digest_after"] == first["dest_digest_after"]
    assert "put_blob" in store.calls


def test_another_compression_is_not_up_to_date_and_check_mode_says_so(store):
    random_image(store, "src", "v1")
    copy("memory:src:v1", "memory:dest:v1", compression="zstd")
    puts = store.calls["put_blob"]
    predicted = copy("memory:src:v1", "memory:dest:v1", check=True, compression="gzip")
    assert predicted["changed"] and predicted["dest_digest_after"] is None and "compressed during the copy" in predicted["note"]
    assert store.calls["put_blob"] == puts  # check mode wrote nothing
    done = copy("memory:src:v1", "memory:dest:v1", compression="gzip")
    assert done["changed"] and done["blobs"] == predicted["blobs"]


def test_layers_already_in_the_asked_compression_are_kept(store):
    random_image(store, "src", "v1")
    copy("memory:src:v1", "memory:mid:v1", compression="zstd:chunked")
    mid = layers_at(store, "mid", "v1")
    copy("memory:mid:v1", "memory:dest:v1", compression="zstd")  # zstd:chunked is zstd
    assert layers_at(store, "dest", "v1") == mid
    with open_source(parse_reference("memory:mid:v1")) as source, open_destination(parse_reference("memory:dest2:v1")) as dest:
        plan = plan_copy(source, dest, CopyOptions(compression="zstd:chunked"))
    assert not any(blob.compress for blob in plan.blobs)  # nothing to convert: the manifest is written as it is
    assert plan.dest_digest_after == plan.src_digest


def test_compression_level_is_checked_before_anything_is_read(store):
    random_image(store, "src", "v1")
    with pytest.raises(OCIError, match="compression_level 23 is not a zstd level"):
        copy("memory:src:v1", "memory:dest:v1", compression="zstd", compression_level=23)
    with pytest.raises(OCIError, match="set compression too"):
        copy("memory:src:v1", "memory:dest:v1", compression_level=3)
    assert "get_manifest" not in store.calls
    with pytest.raises(OCIError, match="changes digests; unset preserve_digests"):
        copy("memory:src:v1", "memory:dest:v1", compression="gzip", preserve_digests=True)


def test_a_multi_arch_index_is_converted_child_by_child_and_then_up_to_date(store):
    from memory_transport import OCI_INDEX, digest_of

    children = [random_image(store, "src", "c%d" % n, seed=10 + n) for n in range(2)]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": c["manifest_digest"], "size": len(c["raw"]), "platform": p}
                for c, p in zip(children, ({"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux", "variant": "v8"}))
            ],
        }
    ).encode()
    place = store.place("src")
    place.blobs[digest_of(index)] = index
    place.media_types[digest_of(index)] = OCI_INDEX
    place.names["multi"] = digest_of(index)
    predicted = copy("memory:src:multi", "memory:dest:multi", check=True, compression="zstd")
    assert predicted["changed"] and predicted["dest_digest_after"] is None
    done = copy("memory:src:multi", "memory:dest:multi", compression="zstd")
    assert done["changed"] and done["blobs"] == predicted["blobs"]
    written = json.loads(store.place("dest").blobs[done["dest_digest_after"]])
    assert [m["platform"]["architecture"] for m in written["manifests"]] == ["amd64", "arm64"]
    for entry in written["manifests"]:
        child = json.loads(store.place("dest").blobs[entry["digest"]])
        assert entry["size"] == len(store.place("dest").blobs[entry["digest"]])
        assert all(layer["mediaType"].endswith("+zstd") for layer in child["layers"])
    again = copy("memory:src:multi", "memory:dest:multi", compression="zstd")
    assert again["changed"] is False and again["dest_digest_after"] == done["dest_digest_after"]
    assert copy("memory:src:multi", "memory:dest:multi", compression="gzip")["changed"]
