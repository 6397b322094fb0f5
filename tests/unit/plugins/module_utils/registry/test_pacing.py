"""The pacing layer on its own: quota headers, which requests count, waits, holds and caps (no network)."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.oci.images.plugins.module_utils._registry._pacing import (
    Pacer,
    PacingSettings,
    RateLimitExceeded,
    counts_against_pull_limit,
    forget_pacers,
    long_wait_warnings,
    pacer_for,
    parse_quota,
    rate_limit_report,
)

MANIFEST = "https://registry-1.docker.io/v2/library/fedora/manifests/39"


def _headers(remaining: int, limit: int = 10, window: str = "1", **extra) -> dict:
    return dict({"ratelimit-limit": "%d;w=%s" % (limit, window), "ratelimit-remaining": "%d;w=%s" % (remaining, window)}, **extra)


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"}, (100, 76, 21600.0, False)),
        ({"ratelimit-limit": "100", "ratelimit-remaining": "5", "ratelimit-reset": "30"}, (100, 5, None, True)),
        ({"ratelimit-remaining": "7;w=60"}, (7, 7, 60.0, False)),
        ({"ratelimit-limit": "100;w=21600"}, None),
        ({"ratelimit-remaining": "lots"}, None),
        ({}, None),
    ],
)
def test_quota_headers_are_read_as_docker_hub_and_the_ietf_draft_send_them(headers, expected):
    quota = parse_quota(headers, now=1000.0)
    if expected is None:
        assert quota is None
    else:
        assert (quota.limit, quota.remaining, quota.window, quota.reset_at is not None) == expected


@pytest.mark.parametrize(
    "method,url,counted",
    [
        ("GET", MANIFEST, True),
        ("HEAD", MANIFEST, False),
        ("GET", "https://h/v2/library/fedora/blobs/sha256:" + "a" * 64, False),
        ("GET", "https://h/v2/library/fedora/tags/list", False),
        ("PUT", "https://h/v2/x/manifests/1", False),
        ("GET", "https://auth.docker.io/token?scope=repository:library/fedora:pull", False),
    ],
)
def test_only_manifest_gets_count_against_a_pull_limit(method, url, counted):
    assert counts_against_pull_limit(method, url) is counted


def test_a_request_at_the_floor_waits_then_asks_with_a_head_before_it_is_sent():
    pacer = Pacer("hub", PacingSettings(floor=2, max_wait=10))
    pacer.observe(_headers(2, limit=20, window="1"))
    asked = []

    def probe():
        asked.append(time.monotonic())
        return _headers(3 if len(asked) == 1 else 8, limit=20, window="1")

    started = time.monotonic()
    pacer.admit("GET", MANIFEST, probe).release()
    assert len(asked) == 1 and time.monotonic() - started >= 0.05  # one request's share of the window
    assert pacer.waits.count == 1 and pacer.waits.reasons == {"rate_limit": 1}
    # HEADs do not count and never wait for the quota.
    pacer.observe(_headers(0, limit=20, window="1"))
    started = time.monotonic()
    pacer.admit("HEAD", MANIFEST, probe).release()
    assert time.monotonic() - started < 0.05


def test_a_quota_that_would_take_longer_than_the_max_wait_fails_and_later_requests_fail_at_once():
    pacer = Pacer("hub", PacingSettings(max_wait=1))
    pacer.observe(_headers(0, limit=100, window="21600"))
    with pytest.raises(RateLimitExceeded, match=r"0 of its 100 requests in a 21600-second window are left.*rate_limit_max_wait is 1 s"):
        pacer.admit("GET", MANIFEST, lambda: None)
    started = time.monotonic()
    with pytest.raises(RateLimitExceeded):
        pacer.admit("GET", MANIFEST, lambda: None)
    assert time.monotonic() - started < 0.5


def test_a_retry_after_holds_every_request_to_the_registry_and_a_long_one_fails():
    pacer = Pacer("hub", PacingSettings(max_wait=5))
    pacer.hold(0.2)
    started = time.monotonic()
    pacer.admit("HEAD", MANIFEST).release()
    assert time.monotonic() - started >= 0.15 and pacer.waits.reasons == {"retry_after": 1}
    pacer.hold(60)
    with pytest.raises(RateLimitExceeded, match="Retry-After"):
        pacer.admit("HEAD", MANIFEST)


def test_requests_per_second_spaces_requests_evenly():
    pacer = Pacer("hub", PacingSettings(requests_per_second=50))
    started = time.monotonic()
    for _unused in range(6):
        pacer.admit("HEAD", MANIFEST).release()
    assert time.monotonic() - started >= 5 / 50 - 0.01
    assert pacer.waits.reasons["requests_per_second"] == 5


def test_concurrent_requests_are_capped_and_a_thread_holding_a_slot_is_not_blocked_by_itself():
    pacer = Pacer("hub", PacingSettings(max_concurrent_requests=1))
    held = pacer.admit("GET", "https://h/v2/x/blobs/sha256:" + "b" * 64)
    nested = pacer.admit("PUT", "https://h/v2/y/blobs/uploads/1")  # the same thread, streaming: no deadlock
    nested.release()
    other_started = threading.Event()
    other_done = threading.Event()

    def other():
        other_started.set()
        pacer.admit("HEAD", MANIFEST).release()
        other_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    other_started.wait(5)
    assert not other_done.wait(0.2)  # waits for the slot
    held.release()
    assert other_done.wait(5)
    thread.join(5)
    assert pacer.waits.reasons == {"concurrency": 1}


def test_the_report_gives_waits_per_registry_and_long_ones_warn():
    forget_pacers()
    try:
        pacer = pacer_for("registry-1.docker.io", PacingSettings())
        pacer.observe(_headers(5, limit=100, window="21600"))
        pacer.sleep("rate_limit", 0.01)
        report = rate_limit_report()
        entry = report["registry-1.docker.io"]
        assert entry["waits"] == 1 and entry["reasons"] == {"rate_limit": 1} and entry["seconds"] >= 0.01
        assert entry["quota"] == {"limit": 100, "remaining": 5, "window": 21600.0}
        assert long_wait_warnings(report) == []
        entry["seconds"] = 12.5
        assert "registry-1.docker.io made this task wait 1 times, 12.5 s in all" in long_wait_warnings(report)[0]
    finally:
        forget_pacers()
