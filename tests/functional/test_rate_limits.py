"""Rate limits as registries keep them: Docker Hub's quota headers, 429/503 with Retry-After, caps per registry.

A fault proxy in front of a real registry keeps a pull limit the way Docker Hub does (manifest GETs
counted in a sliding window, ``ratelimit-limit``/``ratelimit-remaining`` with ``;w=`` on manifest
answers, 429 with ``Retry-After`` past the limit). Sources are read through the proxy, destinations
written straight to the registry. The tests count what the proxy saw (requests counted, refused,
at once) and what the module reported; durations only get generous lower bounds.
"""

from __future__ import annotations

import time

import pytest
from ansible_run import run_module
from fault_proxy import FaultProxy
from many_tags import push_many_tags
from registries import start_registry

pytestmark = pytest.mark.timeout(600)

MIRROR_TAGS = 1000
LIMIT = 100
WINDOW = 8
SMALL = 40


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    work = tmp_path_factory.mktemp("rate-limits")
    registry = start_registry(str(work / "registry"), "plain")
    proxy = FaultProxy(registry.host, registry=registry)
    try:
        tags = ["r%04d" % i for i in range(MIRROR_TAGS)]
        digests = push_many_tags(registry.host, "hub/many", tags, str(work), distinct=True)
        small = push_many_tags(registry.host, "hub/small", ["s%02d" % i for i in range(SMALL)], str(work), seed=901, distinct=True)
        yield {"registry": registry, "proxy": proxy, "digests": digests, "small": small}
    finally:
        proxy.stop()
        registry.stop()


def _mirror(rig, repository: str, dest: str, **extra):
    args = {
        "src": "docker://%s/%s" % (rig["proxy"].host, repository),
        "dest": "docker://%s/%s" % (rig["registry"].host, dest),
        "validate_certs": False,
        "parallel_images": 4,
        "keep_going": True,
    }
    args.update(extra)
    started = time.monotonic()
    run = run_module("image_copy", args, timeout=560)
    return run, time.monotonic() - started


def test_a_1000_tag_mirror_under_a_pull_limit_completes_without_a_refused_request(rig):
    proxy = rig["proxy"]
    proxy.clear()
    limiter = proxy.rate_limit(LIMIT, WINDOW)
    run, seconds = _mirror(rig, "hub/many", "mirror/many")
    assert not run.failed, run.output[-3000:]
    assert run.result["failed_count"] == 0 and run.result["copied"] == MIRROR_TAGS
    assert {r["dest"].rpartition(":")[2]: r["dest_digest_after"] for r in run.result["results"]} == rig["digests"]
    # Paced below the limit: the registry never had to refuse a request.
    assert limiter.refused == 0
    assert limiter.allowed >= MIRROR_TAGS
    waits = run.result["rate_limit_waits"][proxy.host]
    assert waits["waits"] > 0 and waits["reasons"].get("rate_limit", 0) > 0
    assert waits["quota"]["limit"] == LIMIT and waits["quota"]["window"] == WINDOW
    # 1000 counted requests at 100 per 2 s cannot take less than (1000 - 100) / 50 s.
    assert seconds >= (MIRROR_TAGS - LIMIT) * WINDOW / LIMIT
    assert waits["seconds"] >= 5
    assert "made this task wait" in run.output  # a long wait is a warning too, not only a number in the result
    print(
        "\n1000-tag mirror under %d pulls per %d s: %.1f s, %d waits (%.1f s in all, longest %.2f s), %d failed tags, %d refused"
        % (LIMIT, WINDOW, seconds, waits["waits"], waits["seconds"], waits["longest"], run.result["failed_count"], limiter.refused)
    )


def test_a_mirror_up_to_date_sends_no_counted_request_even_with_the_quota_spent(rig):
    proxy = rig["proxy"]
    proxy.clear()
    first, _seconds = _mirror(rig, "hub/small", "mirror/uptodate")
    assert not first.failed and first.result["copied"] == SMALL, first.output[-3000:]
    proxy.clear()
    limiter = proxy.rate_limit(LIMIT, 3600)
    limiter.sent.extend([time.monotonic()] * LIMIT)  # nothing left for an hour
    again, _seconds = _mirror(rig, "hub/small", "mirror/uptodate", rate_limit_max_wait=5)
    assert not again.failed, again.output[-3000:]
    assert again.result["unchanged"] == SMALL
    # HEADs answer "up to date" and are not counted: no manifest GET, nothing refused, no wait.
    assert proxy.exchanges("GET", r"/manifests/") == [] and limiter.refused == 0
    assert again.result["rate_limit_waits"][proxy.host]["waits"] == 0
    assert again.result["rate_limit_waits"][proxy.host]["quota"]["remaining"] == 0


def test_a_quota_at_the_floor_longer_than_the_max_wait_fails_at_once_without_spending_it(rig):
    proxy = rig["proxy"]
    proxy.clear()
    limiter = proxy.rate_limit(LIMIT, 3600)
    limiter.sent.extend([time.monotonic()] * (LIMIT - 10))  # 10 left, and the floor keeps 10 in reserve
    started = time.monotonic()
    run, _seconds = _mirror(rig, "hub/small", "mirror/floor", rate_limit_floor=10, rate_limit_max_wait=5)
    assert run.failed
    assert run.result["failed_count"] == SMALL
    assert "10 of its 100 requests in a 3600-second window are left, at or below rate_limit_floor 10" in run.result["msg"]
    assert "rate_limit_max_wait" in run.result["msg"]
    # The reserve is kept: not one counted request went out, and the 40 tags failed without waiting in turn.
    assert limiter.allowed == 0 and limiter.refused == 0
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("status,date", [(429, False), (503, True)])
def test_retry_after_on_429_and_503_is_honoured_in_seconds_and_as_a_date(rig, status, date):
    proxy = rig["proxy"]
    proxy.clear()
    # No quota headers: nothing tells the limit in advance, so the registry refuses and says when to come back.
    limiter = proxy.rate_limit(10, 5, headers=False, status=status, retry_after_date=date)
    run, seconds = _mirror(rig, "hub/small", "mirror/retry-after-%d" % status, parallel_images=2, retries=3)
    assert not run.failed, run.output[-3000:]
    assert run.result["copied"] == SMALL and run.result["failed_count"] == 0
    assert limiter.refused > 0
    waits = run.result["rate_limit_waits"][proxy.host]
    assert waits["reasons"].get("retry_after", 0) > 0
    # 40 counted requests at 10 per 5 s: at least three windows went by.
    assert seconds >= 15


def test_retry_after_beyond_the_max_wait_fails_at_once_with_the_wait_named(rig):
    proxy = rig["proxy"]
    proxy.clear()
    limiter = proxy.rate_limit(LIMIT, 3600, headers=False)
    limiter.sent.extend([time.monotonic()] * LIMIT)
    started = time.monotonic()
    run, _seconds = _mirror(rig, "hub/small", "mirror/too-long", rate_limit_max_wait=30, retries=3)
    assert run.failed and run.result["failed_count"] == SMALL
    assert "Retry-After" in run.result["msg"] and "rate_limit_max_wait" in run.result["msg"]
    # Not retried (the wait is too long), and the other tags did not each wait: the registry was asked once or so per tag.
    assert limiter.refused <= SMALL
    assert time.monotonic() - started < 60


def test_requests_per_second_and_concurrency_caps_are_kept(rig):
    proxy = rig["proxy"]
    proxy.clear()
    run, seconds = _mirror(rig, "hub/small", "mirror/capped", parallel_images=8, requests_per_second=40, max_concurrent_requests=2)
    assert not run.failed, run.output[-3000:]
    sent = len(proxy.log)
    assert proxy.max_in_flight <= 2
    assert seconds >= (sent - 1) / 40
    assert run.result["rate_limit_waits"][proxy.host]["reasons"].get("requests_per_second", 0) > 0


def test_a_sync_spec_caps_one_registry_and_not_the_other(rig):
    proxy = rig["proxy"]
    proxy.clear()
    spec = {proxy.host: {"images": {"hub/small": []}, "tls-verify": False, "max-concurrent-requests": 1, "requests-per-second": 200}}
    run = run_module(
        "image_copy",
        {"sync": spec, "dest": "%s/synced" % rig["registry"].host, "dest_validate_certs": False, "parallel_images": 8},
        timeout=300,
    )
    assert not run.failed, run.output[-3000:]
    assert run.result["copied"] == SMALL
    assert proxy.max_in_flight == 1
    waits = run.result["rate_limit_waits"]
    assert waits[proxy.host]["reasons"].get("concurrency", 0) > 0
    assert rig["registry"].host not in waits  # the destination was not capped
