# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Timeouts and retries for registry requests.
    DOCUMENTATION = r"""
options:
  timeout:
    description:
      - Seconds to wait for a connection to a registry and for each read from it.
    type: float
    default: 30
  retries:
    description:
      - How many times a request is retried after a connection error, a timeout, or an answer of
        HTTP 429, 500, 502, 503 or 504, with exponential backoff and jitter; a C(Retry-After) on a 429 or 503
        (seconds or a date) is waited for instead, up to C(rate_limit_max_wait) where the module has that option (60 seconds otherwise).
        A request is sent at most O(retries)+1 times.
      - One blob transfer spends at most O(retries) retries in all, shared by every request made for it
        (reading and resuming the source, the upload session, the upload, starting the blob over), so a blob
        is started at most O(retries)+1 times.
      - V(0) disables retries.
    type: int
    default: 3
"""
