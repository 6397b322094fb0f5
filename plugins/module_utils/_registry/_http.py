# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP transport for registries: pooling, timeouts, pacing, retries with backoff, TLS and scheme choice.

One ``HttpSession`` talks to one registry host. It decides https or (only with
``validate_certs: false``) plain http on the first request, finds per-host CA
bundles and client certificates in certs.d directories like podman and Docker,
and retries idempotent requests on connection errors, 5xx and 429 (the retry layer,
``_retry.py``). Every request it sends first passes the host's pacer (the pacing layer,
``_pacing.py``): rate-limit quotas, ``Retry-After`` holds, requests per second and
concurrent requests.
"""

from __future__ import annotations

import email.utils
import glob
import os
import ssl
import threading
import time
import traceback
from typing import Any
from urllib.parse import urljoin, urlsplit

from .._errors import ConnectionFailure, TLSFailure
from .._options import ConnectionOptions
from .._retry import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, RetryBudget, backoff_delay, budget_for, pause
from .._version import COLLECTION_VERSION
from ._pacing import PacingSettings, Ticket, pacer_for

try:
    import requests
    from requests.adapters import HTTPAdapter

    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

if HAS_REQUESTS:

    class _TrustAdapter(HTTPAdapter):
        """An adapter whose TLS connections use one SSLContext: the system roots plus extra CAs, held in memory."""

        def __init__(self, ssl_context: ssl.SSLContext, **kwargs: Any):
            self._ssl_context = ssl_context
            super().__init__(**kwargs)

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = self._ssl_context
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any):
            proxy_kwargs["ssl_context"] = self._ssl_context
            return super().proxy_manager_for(proxy, **proxy_kwargs)

    class _Session(requests.Session):
        """A Session that sends to some hosts through their own adapter (``host_adapters``, by ``host[:port]``)."""

        def __init__(self) -> None:
            super().__init__()
            self.host_adapters: dict[str, HTTPAdapter] = {}

        def get_adapter(self, url: str):
            # A lookup, not mount(): mounting while other threads iterate the session's adapters is not safe.
            parts = urlsplit(url)
            adapter = self.host_adapters.get(parts.netloc) if parts.scheme.lower() == "https" else None
            return adapter or super().get_adapter(url)

        def close(self) -> None:
            super().close()
            for adapter in list(self.host_adapters.values()):
                adapter.close()
            self.host_adapters.clear()


USER_AGENT = "oci.images/%s" % COLLECTION_VERSION

# Enough connections for the copy engine's parallel blob transfers plus manifest requests.
POOL_MAXSIZE = 10
RETRY_STATUSES = frozenset((500, 502, 503, 504))
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


def certs_d_roots() -> list[str]:
    """The certs.d directories searched for per-registry TLS material, most specific first."""
    return [
        os.path.join(os.path.expanduser("~"), ".config", "containers", "certs.d"),
        "/etc/containers/certs.d",
        "/etc/docker/certs.d",
    ]


def find_certs_d(host: str, roots: list[str] | None = None) -> tuple[list[str], tuple[str, str] | None]:
    """CA files (``*.crt``) and the first client cert/key pair (``*.cert`` + ``*.key``) for ``host[:port]``.

    Like containers/image, only the first certs.d directory that exists for the host is used.
    """
    for root in roots if roots is not None else certs_d_roots():
        directory = os.path.join(root, host)
        if os.path.isdir(directory):
            return read_cert_dir(directory)
    return [], None


def read_cert_dir(directory: str) -> tuple[list[str], tuple[str, str] | None]:
    """CA files (``*.crt``) and the first client cert/key pair (``*.cert`` + ``*.key``) in one directory."""
    cas = sorted(glob.glob(os.path.join(directory, "*.crt")))
    for cert in sorted(glob.glob(os.path.join(directory, "*.cert"))):
        key = cert[: -len(".cert")] + ".key"
        if os.path.isfile(key):
            return cas, (cert, key)
    return cas, None


def _default_ca_bundle() -> str | None:
    try:
        from requests.utils import DEFAULT_CA_BUNDLE_PATH

        return DEFAULT_CA_BUNDLE_PATH
    except ImportError:  # pragma: no cover - very old requests
        return None


def parse_retry_after(value: str | None, cap: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), capped at ``cap`` when given."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    seconds = max(0.0, seconds)
    return seconds if cap is None else min(seconds, cap)


def pacing_settings(options: ConnectionOptions) -> PacingSettings:
    """How requests to a registry are paced, from its connection options."""
    return PacingSettings(
        requests_per_second=options.requests_per_second or None,
        max_concurrent_requests=options.max_concurrent_requests or None,
        floor=max(0, int(options.rate_limit_floor or 0)),
        max_wait=max(0.0, float(options.rate_limit_max_wait)),
    )


class HttpSession:
    """A pooled, retrying requests.Session bound to one registry host (``host[:port]``)."""

    def __init__(
        self,
        host: str,
        options: ConnectionOptions,
        backoff_base: float | None = None,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        certs_d_dirs: list[str] | None = None,
    ):
        if not HAS_REQUESTS:
            raise ImportError("the Python library requests is required to talk to registries")
        self.host = host
        self.options = options
        self.retries = max(0, int(options.retries))
        self.backoff_base = DEFAULT_BACKOFF_BASE if backoff_base is None else backoff_base
        self.backoff_max = backoff_max
        self.pacer = pacer_for(host, pacing_settings(options))
        self._certs_d_dirs = certs_d_dirs
        self.scheme: str | None = None
        self._tls_cache: dict[str, tuple[Any, Any]] = {}
        self._tls_lock = threading.Lock()
        self.session = _Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if not options.validate_certs:
            # The user asked for no verification; the per-request warning would only be noise.
            try:
                import urllib3
                from urllib3.exceptions import InsecureRequestWarning

                urllib3.disable_warnings(InsecureRequestWarning)
            except ImportError:  # pragma: no cover
                pass

    # --- URLs -----------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return "%s://%s" % (self.scheme or "https", self.host)

    def url(self, path_or_url: str) -> str:
        """Absolute URL for a path on this registry (absolute URLs pass through, relative ones are joined)."""
        if "://" in path_or_url:
            return path_or_url
        return urljoin(self.base_url + "/", path_or_url)

    def is_own_url(self, url: str) -> bool:
        """True when ``url`` points at this registry (credentials may be sent there)."""
        return urlsplit(url).netloc == self.host

    # --- TLS ------------------------------------------------------------------------------------
    def _tls_for(self, netloc: str) -> tuple[Any, Any]:
        """(verify, cert) for requests, from the options and the host's certs.d directory."""
        with self._tls_lock:
            if netloc not in self._tls_cache:
                self._tls_cache[netloc] = self._tls_settings(netloc)
            return self._tls_cache[netloc]

    def _tls_settings(self, netloc: str) -> tuple[Any, Any]:
        own = netloc == self.host
        # An explicit cert_dir (skopeo's --cert-dir, sync's cert-dir) replaces the certs.d lookup for the registry.
        cas, pair = read_cert_dir(self.options.cert_dir) if own and self.options.cert_dir else find_certs_d(netloc, self._certs_d_dirs)
        # ca_cert is trusted for every host this registry sends us to (its token realm, its blob storage);
        # a client certificate is only ever shown to the registry itself or to a host whose certs.d names one.
        if own and self.options.client_cert:
            cert: Any = (self.options.client_cert, self.options.client_key) if self.options.client_key else self.options.client_cert
        else:
            cert = pair
        if not self.options.validate_certs:
            return False, cert
        extra = ([self.options.ca_cert] if self.options.ca_cert else []) + cas
        if not extra:
            return True, cert
        # CAs from certs.d and ca_cert are added to the system roots (as containers/image does), in an
        # SSLContext of this host's own adapter: no bundle file is written. The client certificate goes
        # into the same context, so no connection changes it while others use it.
        self.session.host_adapters[netloc] = _TrustAdapter(self._trust_context(extra, cert), pool_connections=1, pool_maxsize=POOL_MAXSIZE, max_retries=0)
        return True, None

    def _trust_context(self, ca_files: list[str], cert: Any) -> ssl.SSLContext:
        default = _default_ca_bundle()
        context = ssl.create_default_context(cafile=default) if default and os.path.isfile(default) else ssl.create_default_context()
        for path in ca_files:
            try:
                context.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise TLSFailure("cannot load the CA certificates in %s for registry %s: %s" % (path, self.host, _describe(exc)), self.host) from None
        if cert:
            certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
            try:
                context.load_cert_chain(certfile, keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise TLSFailure("cannot load the client certificate %s for registry %s: %s" % (certfile, self.host, _describe(exc)), self.host) from None
        return context

    # --- requests -------------------------------------------------------------------------------
    def budget(self) -> RetryBudget:
        """The retry budget a request to this registry draws on (a blob transfer's shared one, or its own)."""
        return budget_for(self.retries)

    @staticmethod
    def retry_after(response: Any) -> float | None:
        """Seconds a 429 or 503 answer asks to wait (``Retry-After``), or None."""
        if response is None or response.status_code not in (429, 503):
            return None
        return parse_retry_after(response.headers.get("Retry-After"))

    def waits_too_long(self, response: Any) -> bool:
        """True when the registry asks to wait longer than ``rate_limit_max_wait``: the request is not retried."""
        asked = self.retry_after(response)
        return asked is not None and asked > self.pacer.settings.max_wait

    def sleep_before_retry(self, budget: RetryBudget, response: Any = None) -> None:
        """Wait before the next try: what a 429 or 503 asks for (``Retry-After``), else exponential backoff."""
        delay = self.retry_after(response)
        if delay is None:
            pause(backoff_delay(budget.spent - 1, self.backoff_base, self.backoff_max))
            return
        self.pacer.sleep("retry_after", delay)

    def _send_once(self, method: str, url: str, **kwargs: Any):
        verify, cert = self._tls_for(urlsplit(url).netloc)
        timeout = (self.options.timeout, self.options.timeout)

        def ask_quota():
            # A HEAD of the same URL: Docker Hub answers it with the quota and does not count it.
            with self.session.request("HEAD", url, headers=kwargs.get("headers"), verify=verify, cert=cert, timeout=timeout) as head:
                return head.headers

        ticket = self.pacer.admit(method, url, ask_quota)
        try:
            response = self.session.request(method, url, verify=verify, cert=cert, timeout=timeout, **kwargs)
        except BaseException:
            ticket.release()
            raise
        self.pacer.observe(response.headers)
        if kwargs.get("stream"):
            _release_on_close(response, ticket)
        else:
            ticket.release()
        return response

    def _send_choosing_scheme(self, method: str, path_or_url: str, **kwargs: Any):
        """Send once; on the first contact pick https, or http when TLS fails and verification is off."""
        url = self.url(path_or_url)
        if self.scheme is not None or not self.is_own_url(url):
            return self._send_once(method, url, **kwargs)
        try:
            response = self._send_once(method, url, **kwargs)
        except requests.exceptions.SSLError:
            if self.options.validate_certs:
                raise
            self.scheme = "http"
            return self._send_once(method, self.url(path_or_url), **kwargs)
        self.scheme = "https"
        return response

    def request(self, method: str, path_or_url: str, idempotent: bool | None = None, **kwargs: Any):
        """Send a request, retrying idempotent ones; returns the final response (any status).

        Raises TLSFailure on a TLS error and ConnectionFailure when the host stays unreachable.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        # Requests that must not be repeated blindly are sent once here; their callers re-check and resend.
        budget = self.budget() if idempotent else RetryBudget(0)
        tries = 0
        while True:
            tries += 1
            try:
                response = self._send_choosing_scheme(method, path_or_url, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise TLSFailure(self._tls_message(path_or_url, exc), self.host) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if budget.take():
                    self.sleep_before_retry(budget)
                    continue
                raise ConnectionFailure(
                    "could not reach registry %s (%s %s) after %d attempt%s: %s"
                    % (self.host, method, self.url(path_or_url).split("?")[0], tries, "" if tries == 1 else "s", _describe(exc)),
                    self.host,
                ) from None
            if response.status_code in RETRY_STATUSES or response.status_code == 429:
                asked = self.retry_after(response)
                if asked is not None:
                    self.pacer.hold(asked)
                if not self.waits_too_long(response) and budget.take():
                    response.close()
                    self.sleep_before_retry(budget, response)
                    continue
            return response

    def _tls_message(self, path_or_url: str, exc: BaseException) -> str:
        netloc = urlsplit(self.url(path_or_url)).netloc
        ca_cert, validate_certs = self.options.option("ca_cert"), self.options.option("validate_certs")
        return (
            "TLS connection to registry %s failed (%s): if it uses a private CA set %s (or put the CA in certs.d/%s), "
            % (
                netloc,
                _describe(exc),
                ca_cert,
                netloc,
            )
            + "or set %s: false for a registry without valid TLS" % validate_certs
        )

    def close(self) -> None:
        self.session.close()
        self._tls_cache = {}


def _release_on_close(response: Any, ticket: Ticket) -> None:
    """A streamed answer keeps its place in the pacer until its body is closed."""
    close = response.close

    def close_and_release() -> None:
        try:
            close()
        finally:
            ticket.release()

    response.close = close_and_release


def _describe(exc: BaseException | None) -> str:
    """The innermost reason of a requests/urllib3 error, without URLs' query strings or headers."""
    if exc is None:
        return "no response"
    reason: BaseException = exc
    seen = 0
    while seen < 5:
        seen += 1
        inner = getattr(reason, "reason", None)
        if isinstance(inner, BaseException):
            reason = inner
            continue
        if reason.args and isinstance(reason.args[0], BaseException):
            reason = reason.args[0]
            continue
        break
    text = str(reason)
    # urllib3 wraps the socket error in "<connection object>: Failed to establish ...": keep the useful tail.
    if "Failed to establish a new connection:" in text:
        text = text.split("Failed to establish a new connection:", 1)[1].strip()
    return text or type(reason).__name__
