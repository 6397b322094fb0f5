# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pacing layer: when a request to a registry may be sent, so that the registry's limits are not hit.

Separate from the retry layer (``_retry.py``), which decides whether a failed request is sent
again: pacing never sends anything twice, it only delays a request before it is sent. One
``Pacer`` per registry host and settings for the whole process, shared by every session to that
host, so the images copied in parallel are paced together. Before a request it waits for:

1. a ``Retry-After`` another request to the host was answered with (429 or 503): the whole host
   holds off until then, not only the request that got it;
2. for requests that count against a pull limit (``counts_against_pull_limit``), the registry's
   quota: when the ``ratelimit-remaining`` it last reported (less the counted requests sent
   since) is at or below ``rate_limit_floor``, it waits for the quota to come back (until
   ``ratelimit-reset`` when sent, else the time the ``;w=`` window takes to give back what is
   missing), then asks the registry with a ``HEAD`` (not counted) and waits again while the
   quota is still at the floor, each wait up to twice the one before;
3. ``requests_per_second``: requests spaced evenly;
4. ``max_concurrent_requests``: a free slot. A streamed body holds its slot until it is closed;
   a thread that holds one sends its other requests to the same registry in it.

A wait longer than ``rate_limit_max_wait`` (in all, for one request) is not made: the request
fails with a message naming the registry, its quota and the option, and later requests that
would wait as long fail at once rather than each waiting in turn. Every wait is recorded per
host and reported in the module result (``rate_limit_report``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from .._errors import RegistryError

DEFAULT_FLOOR = 0
DEFAULT_MAX_WAIT = 60.0
# The first wait for a quota that does not say when it resets, when its window would give one back sooner.
MIN_QUOTA_WAIT = 0.05
# A task that waited this long in all on one registry is told so in a warning, not only in the result.
LONG_WAIT = 10.0
_VALUE_AND_WINDOW = re.compile(r"^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+(?:\.\d+)?))?")


@dataclass(frozen=True)
class PacingSettings:
    """How one registry is paced (from ConnectionOptions, or a sync spec's registry entry)."""

    requests_per_second: float | None = None
    max_concurrent_requests: int | None = None
    floor: int = DEFAULT_FLOOR
    max_wait: float = DEFAULT_MAX_WAIT


@dataclass
class Quota:
    """What the registry's rate-limit headers said last."""

    limit: int
    remaining: int
    window: float | None
    reset_at: float | None  # time.monotonic() when the registry said the quota resets


def counts_against_pull_limit(method: str, url: str) -> bool:
    """True for the requests Docker Hub counts as pulls: a manifest ``GET``.

    ``HEAD`` requests, blob downloads, tag lists, token requests and every push or delete do not count.
    """
    return method == "GET" and "/manifests/" in urlsplit(url).path


def parse_quota(headers: Any, now: float | None = None) -> Quota | None:
    """The quota from ``ratelimit-limit``/``ratelimit-remaining`` (``N;w=SECONDS``) and ``ratelimit-reset``; None without them."""
    limit = _VALUE_AND_WINDOW.match(headers.get("ratelimit-limit") or "")
    remaining = _VALUE_AND_WINDOW.match(headers.get("ratelimit-remaining") or "")
    if remaining is None:
        return None
    window_text = (limit.group(2) if limit else None) or remaining.group(2)
    reset = headers.get("ratelimit-reset")
    reset_at = None
    if reset and reset.strip().isdigit():
        reset_at = (time.monotonic() if now is None else now) + int(reset.strip())
    return Quota(
        limit=int(limit.group(1)) if limit else int(remaining.group(1)),
        remaining=int(remaining.group(1)),
        window=float(window_text) if window_text else None,
        reset_at=reset_at,
    )


class WaitRecord:
    """The waits one registry made a task make: how many requests waited, why, and for how long.

    ``seconds`` is wall time during which at least one request was waiting (requests waiting
    side by side count once), ``longest`` the longest single wait.
    """

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.longest = 0.0
        self.reasons: dict = {}
        self._waiting = 0
        self._since = 0.0

    def begin(self) -> float:
        now = time.monotonic()
        if self._waiting == 0:
            self._since = now
        self._waiting += 1
        return now

    def end(self, reason: str, started: float) -> None:
        now = time.monotonic()
        self._waiting -= 1
        if self._waiting == 0:
            self.seconds += now - self._since
        self.count += 1
        self.longest = max(self.longest, now - started)
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


class RateLimitExceeded(RegistryError):
    """Waiting for the registry's limit would take longer than ``rate_limit_max_wait``."""


class Ticket:
    """One request's place in the pacer: released once, when its answer is read (or its body closed)."""

    def __init__(self, pacer: Pacer, counted: bool, slot: bool):
        self._pacer = pacer
        self.counted = counted
        self._slot = slot
        self._owner = threading.get_ident()
        self._done = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._pacer._release(self.counted, self._slot, self._owner)


class Pacer:
    """Paces the requests to one registry host (see the module docstring)."""

    def __init__(self, host: str, settings: PacingSettings):
        self.host = host
        self.settings = settings
        self.waits = WaitRecord()
        self.quota: Quota | None = None
        self._lock = threading.Lock()
        self._gate = threading.Lock()  # one request at a time waits for the quota and asks for it again
        self._slots = threading.BoundedSemaphore(settings.max_concurrent_requests) if settings.max_concurrent_requests else None
        self._next_send = 0.0
        self._hold_until = 0.0
        self._exhausted_until = 0.0
        self._estimate: int | None = None  # remaining quota, less counted requests sent since it was reported
        self._counted_in_flight = 0
        self._holders: dict[int, int] = {}  # thread -> slots it holds

    # --- what the registry says ------------------------------------------------------------------
    def observe(self, headers: Any) -> None:
        """Take note of the rate-limit headers of an answer."""
        quota = parse_quota(headers)
        if quota is None:
            return
        with self._lock:
            self.quota = quota
            self._estimate = quota.remaining - self._counted_in_flight

    def hold(self, seconds: float) -> None:
        """The registry asked (Retry-After) to send nothing for ``seconds``: every request to it waits."""
        with self._lock:
            self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    @contextmanager
    def waiting(self, reason: str) -> Iterator[None]:
        """Count what runs inside as a wait for ``reason``."""
        with self._lock:
            started = self.waits.begin()
        try:
            yield
        finally:
            with self._lock:
                self.waits.end(reason, started)

    def sleep(self, reason: str, seconds: float) -> None:
        """Wait ``seconds``, counted as a wait for ``reason``."""
        if seconds > 0:
            with self.waiting(reason):
                time.sleep(seconds)

    # --- before a request ------------------------------------------------------------------------
    def admit(self, method: str, url: str, probe: Callable[[], Any] | None = None) -> Ticket:
        """Wait until the request may be sent; the caller releases the ticket when its answer is read."""
        counted = counts_against_pull_limit(method, url)
        self._wait_for_hold()
        if counted:
            self._wait_for_quota(probe)
        self._wait_for_rate()
        slot = False
        if self._slots is not None and not self._holds_slot():
            if not self._slots.acquire(blocking=False):
                with self.waiting("concurrency"):
                    self._slots.acquire()
            slot = True
            with self._lock:
                self._holders[threading.get_ident()] = self._holders.get(threading.get_ident(), 0) + 1
        return Ticket(self, counted, slot)

    def _holds_slot(self) -> bool:
        # A thread streaming a body from this registry (its slot held until the body is closed) may send
        # another request to it while it streams (the upload of that very blob, within one registry):
        # it uses the slot it holds, or it would wait for itself.
        with self._lock:
            return self._holders.get(threading.get_ident(), 0) > 0

    def _release(self, counted: bool, slot: bool, owner: int) -> None:
        with self._lock:
            if counted:
                self._counted_in_flight = max(0, self._counted_in_flight - 1)
            if slot:
                left = self._holders.get(owner, 0) - 1
                if left > 0:
                    self._holders[owner] = left
                else:
                    self._holders.pop(owner, None)
        if slot and self._slots is not None:
            self._slots.release()

    def _wait_for_hold(self) -> None:
        with self._lock:
            left = self._hold_until - time.monotonic()
        if left <= 0:
            return
        if left > self.settings.max_wait:
            raise self._exceeded("it asked (Retry-After) to send nothing for %.0f s more" % left)
        self.sleep("retry_after", left)

    def _take_quota(self) -> bool:
        """Count one request against the quota when it is above the floor; False when it is not."""
        with self._lock:
            if self._estimate is not None and self._estimate <= self.settings.floor:
                return False
            self._counted_in_flight += 1
            if self._estimate is not None:
                self._estimate -= 1
            return True

    def _wait_for_quota(self, probe: Callable[[], Any] | None) -> None:
        if self._take_quota():
            return
        with self.waiting("rate_limit"), self._gate:
            started = time.monotonic()
            delay = None
            while not self._take_quota():
                with self._lock:
                    if time.monotonic() < self._exhausted_until:
                        raise self._exceeded(self._quota_text())
                    before = self._estimate
                    delay = self._quota_wait(delay)
                if time.monotonic() - started + delay > self.settings.max_wait:
                    with self._lock:
                        self._exhausted_until = time.monotonic() + delay
                    raise self._exceeded(self._quota_text() + "; it would take about %.0f s more to come back" % delay)
                time.sleep(delay)
                if probe is None or not self._ask(probe):
                    # Nothing tells how much came back: count on what the window gave back meanwhile.
                    with self._lock:
                        self._estimate = self.settings.floor + 1
                    continue
                with self._lock:
                    if self._estimate is not None and before is not None and self._estimate > before:
                        delay = None  # it is coming back: start again from the window's pace

    def _quota_wait(self, previous: float | None) -> float:
        """Seconds to wait for the quota to rise above the floor (under ``_lock``)."""
        quota = self.quota
        now = time.monotonic()
        if quota is not None and quota.reset_at is not None and quota.reset_at > now:
            return quota.reset_at - now + MIN_QUOTA_WAIT
        window = quota.window if quota is not None and quota.window else None
        if previous is not None:
            return min(previous * 2, window or previous * 2)
        missing = self.settings.floor - (self._estimate or 0) + 1
        if window and quota is not None and quota.limit > 0:
            return max(MIN_QUOTA_WAIT, missing * window / quota.limit)
        return 1.0

    def _ask(self, probe: Callable[[], Any]) -> bool:
        """Ask the registry for its quota without spending it; True when the answer carried one."""
        try:
            headers = probe()
        except Exception:  # a failed question is no answer; the request itself will tell
            return False
        if headers is None or parse_quota(headers) is None:
            return False
        self.observe(headers)
        return True

    def _wait_for_rate(self) -> None:
        rate = self.settings.requests_per_second
        if not rate or rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_send)
            self._next_send = slot + 1.0 / rate
        self.sleep("requests_per_second", slot - now)

    # --- messages --------------------------------------------------------------------------------
    def _quota_text(self) -> str:
        quota = self.quota
        if quota is None:
            return "its rate limit is reached"
        window = " in a %.0f-second window" % quota.window if quota.window else ""
        return "%d of its %d requests%s are left, at or below rate_limit_floor %d" % (
            max(0, self._estimate if self._estimate is not None else quota.remaining),
            quota.limit,
            window,
            self.settings.floor,
        )

    def _exceeded(self, why: str) -> RateLimitExceeded:
        return RateLimitExceeded(
            "registry %s: %s, and rate_limit_max_wait is %.0f s: raise rate_limit_max_wait%s, or try again later"
            % (self.host, why, self.settings.max_wait, " or lower rate_limit_floor" if self.settings.floor else ""),
            self.host,
            429,
            "TOOMANYREQUESTS",
        )


_pacers: dict[tuple[str, PacingSettings], Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(host: str, settings: PacingSettings) -> Pacer:
    """The process's pacer for ``host`` with ``settings``."""
    key = (host, settings)
    with _pacers_lock:
        pacer = _pacers.get(key)
        if pacer is None:
            pacer = _pacers[key] = Pacer(host, settings)
        return pacer


def forget_pacers() -> None:
    """Start over: the next request to any host gets a new pacer (and the waits are forgotten)."""
    with _pacers_lock:
        _pacers.clear()


def rate_limit_report() -> dict:
    """Per registry host that made the task wait or reported a quota: the waits (count, seconds, longest, why) and the last quota."""
    report: dict = {}
    with _pacers_lock:
        pacers = list(_pacers.values())
    for pacer in pacers:
        with pacer._lock:
            waits = pacer.waits
            quota = pacer.quota
            if not waits.count and quota is None:
                continue
            entry = report.setdefault(pacer.host, {"waits": 0, "seconds": 0.0, "longest": 0.0, "reasons": {}})
            entry["waits"] += waits.count
            entry["seconds"] = round(entry["seconds"] + waits.seconds, 3)
            entry["longest"] = round(max(entry["longest"], waits.longest), 3)
            for reason, count in waits.reasons.items():
                entry["reasons"][reason] = entry["reasons"].get(reason, 0) + count
            if quota is not None:
                entry["quota"] = {"limit": quota.limit, "remaining": quota.remaining, "window": quota.window}
    return report


def long_wait_warnings(report: dict) -> list[str]:
    """One sentence per registry that made the task wait ``LONG_WAIT`` seconds or more in all."""
    return [
        "registry %s made this task wait %d times, %.1f s in all (longest %.1f s: %s); see rate_limit_waits in the result"
        % (host, entry["waits"], entry["seconds"], entry["longest"], ", ".join("%s %d" % item for item in sorted(entry["reasons"].items())))
        for host, entry in sorted(report.items())
        if entry["seconds"] >= LONG_WAIT
    ]
