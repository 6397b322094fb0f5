"""The copy and batch engines in-process, against the in-memory transport (fake sources and destinations).

These run in milliseconds beside the real-registry tests: the ledger, check mode's predictions,
keep_going, retries and the failure message, with every call counted at the fake.
"""

from __future__ import annotations

import pytest
from blob_counts import blob_totals as totals
from memory_transport import MemoryStore, MemoryTransport, random_image, random_layer

from ansible_collections.oci.images.plugins.module_utils._batch import Batch, BatchOptions, failure_message, run_batch
from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions, plan_copy
from ansible_collections.oci.images.plugins.module_utils._errors import ConnectionFailure, OCIError
from ansible_collections.oci.images.plugins.module_utils._mirror import CopyPair
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._transports._table import open_destination, open_source, register, unregister

SIDE = ConnectionOptions()


@pytest.fixture
def store():
    transport = MemoryTransport(MemoryStore())
    register(transport)
    yield transport.store
    unregister(transport.name)


def shared_images(store: MemoryStore, count: int = 4) -> list[dict]:
    """``count`` images in place "src", each with two shared base layers and one of its own."""
    import random

    rng = random.Random(7)
    base = [random_layer(3000, rng), random_layer(2000, rng)]
    return [random_image(store, "src", "v%d" % i, layer_sizes=(500 + i,), seed=100 + i, shared=base) for i in range(count)]


def batch_of(names, dest_place="dest") -> Batch:
    return Batch(pairs=[CopyPair(parse_reference("memory:src:%s" % n), parse_reference("memory:%s:%s" % (dest_place, n)), SIDE) for n in names])


def test_a_layer_shared_by_images_of_a_batch_crosses_once(store):
    images = shared_images(store)
    summary = run_batch(batch_of(["v0", "v1", "v2", "v3"]), SIDE, CopyOptions(), BatchOptions(parallel_images=4))
    unique = {d for image in images for d in [image["config_digest"], *image["layers"]]}
    assert summary["copied"] == 4 and summary["failed_count"] == 0
    assert store.calls["put_blob"] == len(unique)
    assert totals(summary)["copied"] == len(unique)


def test_check_mode_predicts_the_blob_counts_of_the_real_run(store):
    shared_images(store)
    predicted = run_batch(batch_of(["v0", "v1", "v2", "v3"]), SIDE, CopyOptions(), BatchOptions(parallel_images=4), check_mode=True)
    assert "put_blob" not in store.calls and store.place("dest") is None
    done = run_batch(batch_of(["v0", "v1", "v2", "v3"]), SIDE, CopyOptions(), BatchOptions(parallel_images=4))
    assert totals(predicted) == totals(done)
    assert predicted["diff"] == done["diff"]


def test_a_second_run_changes_nothing_and_sends_nothing(store):
    shared_images(store, 2)
    run_batch(batch_of(["v0", "v1"]), SIDE, CopyOptions(), BatchOptions())
    before = dict(store.calls)
    again = run_batch(batch_of(["v0", "v1"]), SIDE, CopyOptions(), BatchOptions())
    assert not again["changed"] and again["unchanged"] == 2
    assert store.calls.get("put_blob") == before.get("put_blob") and store.calls.get("commit") == before.get("commit")


def test_without_keep_going_the_rest_is_not_attempted(store):
    shared_images(store, 3)
    batch = batch_of(["v0", "missing", "v1", "v2"])
    summary = run_batch(batch, SIDE, CopyOptions(), BatchOptions(parallel_images=1))
    assert summary["failed_count"] == 1 and summary["copied"] == 1 and summary["not_attempted"] == 2
    msg = failure_message(summary, single=False)
    assert "1 of 4 copies failed (2 not attempted" in msg and "memory:src:missing" in msg


def test_with_keep_going_the_others_are_copied(store):
    shared_images(store, 3)
    summary = run_batch(batch_of(["v0", "missing", "v1", "v2"]), SIDE, CopyOptions(), BatchOptions(parallel_images=2, keep_going=True))
    assert summary["failed_count"] == 1 and summary["copied"] == 3 and summary["not_attempted"] == 0
    assert sorted(store.place("dest").names) == ["v0", "v1", "v2"]


def test_identical_causes_are_grouped_in_the_message(store):
    shared_images(store, 3)
    store.faults["commit"] = [OCIError("destination refuses writes: set dest_something")] * 3
    summary = run_batch(batch_of(["v0", "v1", "v2"]), SIDE, CopyOptions(), BatchOptions(keep_going=True))
    assert failure_message(summary, single=False) == "3 of 3 copies failed: 3 images: destination refuses writes: set dest_something"
    assert all(r["msg"] == "destination refuses writes: set dest_something" for r in summary["results"])


def test_a_blob_that_fails_once_is_sent_again_within_its_budget(store):
    shared_images(store, 1)
    store.faults["put_blob"] = [ConnectionFailure("upload dropped")]
    summary = run_batch(batch_of(["v0"]), SIDE, CopyOptions(retries=1), BatchOptions())
    assert summary["failed_count"] == 0


def test_with_no_retries_a_failed_blob_fails_the_image_and_nothing_is_named(store):
    shared_images(store, 1)
    store.faults["put_blob"] = [ConnectionFailure("upload dropped")]
    summary = run_batch(batch_of(["v0"]), SIDE, CopyOptions(retries=0), BatchOptions())
    assert summary["failed_count"] == 1 and "upload dropped" in summary["results"][0]["msg"]
    assert "v0" not in (store.place("dest").names if store.place("dest") else {})


def test_plan_says_up_to_date_when_the_destination_holds_the_digest(store):
    image = shared_images(store, 1)[0]
    run_batch(batch_of(["v0"]), SIDE, CopyOptions(), BatchOptions())
    with open_source(parse_reference("memory:src:v0")) as source, open_destination(parse_reference("memory:dest:v0")) as dest:
        plan = plan_copy(source, dest, CopyOptions())
    assert not plan.changed and plan.dest_digest_before == image["manifest_digest"]


def test_plan_with_preserve_digests_refuses_a_conversion_before_anything_is_written(store):
    shared_images(store, 1)
    with open_source(parse_reference("memory:src:v0")) as source, open_destination(parse_reference("memory:dest:v0")) as dest:
        with pytest.raises(OCIError, match="preserve_digests"):
            plan_copy(source, dest, CopyOptions(format="v2s2", preserve_digests=True))
    assert store.place("dest") is None
