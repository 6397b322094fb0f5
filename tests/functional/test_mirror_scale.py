"""Repository mode at scale: many tags in one task, bounded threads, compact results (the 1,000-tag run is in tests/bench)."""

from __future__ import annotations

import pytest
from ansible_run import run_module
from many_tags import push_many_tags

pytestmark = pytest.mark.timeout(900)

TAG_COUNT = 120


def test_repository_with_many_tags_is_mirrored_in_one_task_then_a_no_op(registry, tmp_path):
    tags = ["t%04d" % i for i in range(TAG_COUNT)]
    digest = push_many_tags(registry.host, "scale/src", tags, str(tmp_path))
    args = {
        "src": "docker://%s/scale/src" % registry.host,
        "dest": "docker://%s/scale/dest" % registry.host,
        "parallel_images": 8,
        "src_validate_certs": False,
        "dest_validate_certs": False,
    }
    cold = run_module("image_copy", args)
    assert not cold.failed, cold.output[-3000:]
    assert cold.result["copied"] == TAG_COUNT and cold.result["failed_count"] == 0
    assert len(cold.result["results"]) == TAG_COUNT
    assert {r["dest_digest_after"] for r in cold.result["results"]} == {digest}
    assert sorted(r["dest"].rpartition(":")[2] for r in cold.result["results"]) == tags

    noop = run_module("image_copy", args)
    assert not noop.failed, noop.output[-3000:]
    assert noop.changed is False
    assert noop.result["unchanged"] == TAG_COUNT and noop.result["copied"] == 0
    assert len(noop.result["results"]) == TAG_COUNT
