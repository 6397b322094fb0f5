"""The transport table: a transport registered from outside plugins/ works everywhere without another file naming it."""

from __future__ import annotations

import os

import pytest
from memory_transport import MemoryStore, MemoryTransport, random_image

from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions, copy_image
from ansible_collections.oci.images.plugins.module_utils._delete import DeleteRequest, delete_image
from ansible_collections.oci.images.plugins.module_utils._errors import InvalidReference, Unsupported
from ansible_collections.oci.images.plugins.module_utils._footprint import reference_footprint
from ansible_collections.oci.images.plugins.module_utils._inspect import describe_image
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._prune import PrunePolicy
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._transports import _table
from ansible_collections.oci.images.plugins.module_utils._transports._table import open_source, register, transports, unregister

PLUGINS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins")
BUILTIN = ("docker", "dir", "oci", "oci-archive", "docker-archive", "docker-daemon", "containers-storage")


@pytest.fixture
def memory():
    transport = MemoryTransport(MemoryStore())
    register(transport)
    yield transport
    unregister(transport.name)


def test_the_table_lists_every_builtin_transport():
    assert sorted(t.name for t in transports()) == sorted(BUILTIN)


def test_a_registered_transport_parses_and_formats_its_references(memory):
    reference = parse_reference("memory:shelf:app")
    assert (reference.transport, reference.path, reference.ref_name) == ("memory", "shelf", "app")
    assert str(reference) == "memory:shelf:app"


def test_an_unknown_transport_lists_the_registered_ones(memory):
    with pytest.raises(InvalidReference, match="memory:"):
        parse_reference("nosuch://x")


def test_inspect_through_a_registered_transport(memory):
    image = random_image(memory.store, "shelf", "app", seed=3)
    with open_source(parse_reference("memory:shelf:app")) as source:
        facts = describe_image(source, list_tags=True)
    assert facts["digest"] == image["manifest_digest"]
    assert [layer["digest"] for layer in facts["layers"]] == image["layers"]
    assert facts["tags"] == ["app"]
    assert facts["labels"] == {"seed": "3"}


def test_copy_through_a_registered_transport_in_check_mode_then_for_real(memory):
    image = random_image(memory.store, "shelf", "app", seed=4)
    src, dest = parse_reference("memory:shelf:app"), parse_reference("memory:mirror:app")
    side = ConnectionOptions()
    predicted = copy_image(src, dest, side, side, CopyOptions(), check_mode=True)
    assert predicted["changed"] and predicted["blobs"]["copied"] == 3
    assert memory.store.place("mirror") is None  # check mode wrote nothing
    done = copy_image(src, dest, side, side, CopyOptions())
    assert done["changed"] and done["dest_digest_after"] == image["manifest_digest"]
    assert done["blobs"] == dict(predicted["blobs"])
    assert memory.store.place("mirror").names == {"app": image["manifest_digest"]}
    again = copy_image(src, dest, side, side, CopyOptions())
    assert not again["changed"]


def test_copy_between_a_registered_transport_and_an_oci_layout(memory, tmp_path):
    image = random_image(memory.store, "shelf", "app", seed=5)
    side = ConnectionOptions()
    layout = "oci:%s:app" % (tmp_path / "layout")
    assert copy_image(parse_reference("memory:shelf:app"), parse_reference(layout), side, side, CopyOptions())["changed"]
    back = copy_image(parse_reference(layout), parse_reference("memory:back:app"), side, side, CopyOptions())
    assert back["dest_digest_after"] == image["manifest_digest"]


def test_delete_and_prune_through_a_registered_transport(memory):
    for seed, name in enumerate(("a", "b", "c", "latest")):
        random_image(memory.store, "shelf", name, seed=10 + seed)
    side = ConnectionOptions()
    one = delete_image(parse_reference("memory:shelf:a"), side, check_mode=True)
    assert one["changed"] and [d["tag"] for d in one["deleted"]] == ["a"]
    assert "a" in memory.store.place("shelf").names
    delete_image(parse_reference("memory:shelf:a"), side)
    assert "a" not in memory.store.place("shelf").names
    pruned = delete_image(parse_reference("memory:shelf"), side, DeleteRequest(prune=PrunePolicy(keep_latest=2, keep_tags=["latest"])))
    assert sorted(d["tag"] for d in pruned["deleted"]) == ["b"]
    assert sorted(memory.store.place("shelf").names) == ["c", "latest"]


def test_footprint_through_a_registered_transport(memory):
    base = random_image(memory.store, "shelf", "one", layer_sizes=(4096,), seed=20)
    shared = [memory.store.place("shelf").blobs[base["layers"][0]]]
    random_image(memory.store, "shelf", "two", layer_sizes=(512,), seed=21, shared=shared)
    with open_source(parse_reference("memory:shelf")) as source:
        result, whole = reference_footprint(source)
    assert whole and set(result["tags"]) == {"one", "two"}
    base_layer_size = len(shared[0])
    assert result["shared_bytes"] == base_layer_size
    assert result["total_bytes"] == sum(size for size in (layer["size"] for layer in result["layers"]))


def test_a_transport_without_a_destination_says_which_ones_can_be_written(memory):
    class ReadOnly(MemoryTransport):
        name = "readonly"
        open_destination = _table.Transport.open_destination
        delete_target = _table.Transport.delete_target

    register(ReadOnly(memory.store))
    try:
        reference = parse_reference("readonly:shelf:app")
        with pytest.raises(Unsupported, match=r"cannot be written to.*oci:PATH"):
            _table.open_destination(reference)
        with pytest.raises(Unsupported, match=r"image_delete works on .*memory:"):
            delete_image(reference)
    finally:
        unregister("readonly")


def test_no_file_outside_the_table_compares_transport_names():
    """The house rule: a transport's name appears only in its own module (its registration)."""
    import re

    pattern = re.compile(r"transport\s*(==|!=)|==\s*[\"'](%s)[\"']" % "|".join(re.escape(name) for name in BUILTIN))
    offenders = []
    for root, _dirs, files in os.walk(PLUGINS):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as handle:
                    if pattern.search(handle.read()):
                        offenders.append(os.path.relpath(path, PLUGINS))
    assert offenders == []
