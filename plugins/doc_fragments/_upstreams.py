# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Rate limits and registries.conf: how upstream registries are reached and paced.
    DOCUMENTATION = r"""
options:
  requests_per_second:
    description:
      - At most this many requests per second to each registry, spaced evenly. Not set means no cap.
      - A C(sync) spec sets it for one registry with its C(requests-per-second) key.
    type: float
  max_concurrent_requests:
    description:
      - At most this many requests to each registry at once (a blob being downloaded holds its place until it is read).
        Not set means no cap beyond O(ignore:parallel) and O(ignore:parallel_images).
      - A C(sync) spec sets it for one registry with its C(max-concurrent-requests) key.
    type: int
  rate_limit_floor:
    description:
      - When a registry reports its quota (the C(ratelimit-limit) and C(ratelimit-remaining) headers Docker Hub sends),
        requests that count against it wait while no more than this many are left, until the quota comes back;
        then the copy goes on. V(0) waits only where the next request would be refused.
      - Docker Hub counts manifest C(GET) requests (pulls); C(HEAD) requests, blob downloads, tag lists and pushes do not count.
        Whether a copy is needed is always asked with a C(HEAD).
      - A C(sync) spec sets it for one registry with its C(rate-limit-floor) key.
    type: int
    default: 0
  rate_limit_max_wait:
    description:
      - The longest a request waits for a registry's rate limit, in seconds - for its quota to come back, or as
        C(Retry-After) asks on an answer of HTTP 429 or 503 (seconds or a date).
      - A registry that asks for a longer wait is not waited for - the request fails with a message saying how long the
        registry asked for; the other requests to that registry then fail at once instead of each waiting in turn.
      - Every wait is reported in RV(rate_limit_waits); a registry that made the task wait 10 seconds or more in all also gives a warning.
    type: float
    default: 60
  registries_conf:
    description:
      - The C(registries.conf) file (containers-registries.conf(5), version 2) that says where images are read from,
        as podman and skopeo read it - V(false) ignores C(registries.conf) altogether.
      - When not set, it is found as podman finds it - C(CONTAINERS_REGISTRIES_CONF), else C(~/.config/containers/registries.conf)
        when it exists, else C(/etc/containers/registries.conf); drop-in files from C(registries.conf.d) directories are read too.
      - Reads of an image go to the C([[registry]]) C(location) its name's C(prefix) maps to, trying its C(mirror) entries first
        (honouring C(pull-from-mirror) and C(mirror-by-digest-only)); RV(ignore:results[].src_location) says which one served it.
        C(blocked) registries are refused, C(insecure) ones reached without TLS verification.
      - A name written without registry and without transport (V(fedora:39)) is resolved through the short-name C([aliases])
        and C(unqualified-search-registries), as podman does; with C(short-name-mode) V(enforcing), a name more than one
        search registry could serve is an error listing them. V(docker://fedora) always means Docker Hub, as with skopeo.
      - Writes, deletes and tag lists use the name as written, as skopeo does (C(blocked) and C(insecure) still apply).
    type: raw
"""
