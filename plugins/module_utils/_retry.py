# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one retry layer: how often something is tried again, and how long to wait before it.

``retries: N`` means:

- one request is sent at most N+1 times (a connection error, a timeout, a 5xx or a 429 spends
  one retry; writes that must not be repeated blindly are re-checked with the registry first);
- one blob transfer spends at most N retries in all, whatever request of it failed: reading the
  source (resuming a body that broke off), starting the upload session, sending the bytes, and
  starting the blob over after an upload the registry did not take. The copy engine opens a
  shared budget around each blob (``shared_budget``); every request made for that blob in that
  thread draws on it instead of on its own. So a blob is started at most N+1 times and N faults
  per blob are survived.

Nothing else in the collection loops on failures.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator

DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 10.0


class RetryBudget:
    """Retries left for one unit of work: a request, or a blob transfer with every request it makes."""

    def __init__(self, retries: int):
        self.retries = max(0, int(retries))
        self.spent = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one retry; False when none is left (the caller gives up)."""
        with self._lock:
            if self.spent >= self.retries:
                return False
            self.spent += 1
            return True

    @property
    def attempts(self) -> int:
        """How many times the unit may be tried in all."""
        return self.retries + 1


_local = threading.local()


@contextlib.contextmanager
def shared_budget(retries: int) -> Iterator[RetryBudget]:
    """Within the block, every request this thread makes draws on one budget of ``retries``."""
    outer = getattr(_local, "budget", None)
    budget = outer if outer is not None else RetryBudget(retries)
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = outer


def budget_for(retries: int) -> RetryBudget:
    """The budget a request draws on: the enclosing shared one (a blob transfer), else its own of ``retries``."""
    shared = getattr(_local, "budget", None)
    return shared if shared is not None else RetryBudget(retries)


def backoff_delay(retry: int, base: float = DEFAULT_BACKOFF_BASE, cap: float = DEFAULT_BACKOFF_MAX) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): exponential, capped, with jitter."""
    delay = min(cap, base * (2**retry))
    return delay / 2 + random.uniform(0, delay / 2)


def pause(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)
