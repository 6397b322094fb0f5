# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Distribution API client every module shares: manifests, blobs, tags, referrers, uploads."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable
from urllib.parse import quote, urljoin, urlsplit

from .._digest import VerifyingReader, sha256_digest, verify_bytes
from .._errors import ConnectionFailure, DigestMismatch, InvalidManifest, NotFound, OCIError, RegistryError, Unsupported
from .._media import DOCKER_V2S1_SIGNED, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, OCI_INDEX, decode_object, sniff_media_type
from .._options import ConnectionOptions
from .._reference import DIGEST_RE, TAG_RE, validate_digest
from .._retry import RetryBudget
from ._auth import Authenticator, repository_scope
from ._credentials import api_host
from ._http import RETRY_STATUSES, HttpSession

try:
    import requests

    HAS_REQUESTS = True
except ImportError:
    HAS_REQUESTS = False

MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
TAGS_PAGE_SIZE = 1000
# Monolithic upload is tried first; registries that refuse it get chunks of this size.
UPLOAD_CHUNK_SIZE = 16 * 1024 * 1024
READ_CHUNK = 1024 * 1024
_NOT_FOUND_CODES = ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "NOT_FOUND")
# One link-value of a Link header: <target> and its ;-separated parameters (which may hold quoted commas).
_LINK_VALUE = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,"=]+(?:=(?:"[^"]*"|[^;,]*))?)*)')
# Registries and proxies sometimes quote request headers in their error text: never pass credentials on.
_CREDENTIAL_IN_TEXT = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]+|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", re.I)

if HAS_REQUESTS:
    import urllib3.exceptions

    _BODY_READ_ERRORS: tuple = (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        urllib3.exceptions.ProtocolError,
        urllib3.exceptions.ReadTimeoutError,
        ConnectionError,
        TimeoutError,
    )
else:  # pragma: no cover
    _BODY_READ_ERRORS = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class ManifestHead:
    """What a HEAD on a manifest tells: digest, media type and size (any may be missing)."""

    digest: str | None
    media_type: str | None
    size: int | None


def scrub_credentials(text: str) -> str:
    """``text`` with Basic/Bearer credentials and JWTs replaced by ``<redacted>``."""
    return _CREDENTIAL_IN_TEXT.sub(lambda m: (m.group(1) + " <redacted>") if m.group(1) else "<redacted>", text)


def link_next(header: str | None) -> str | None:
    """Path and query of the ``rel="next"`` target in a ``Link`` header (RFC 8288), or None.

    Targets may be relative or absolute, ``rel`` quoted or not, several links comma-separated, the
    whole value wrapped in quotes by a proxy. Only the path and query are kept, as skopeo does: the
    next page is always asked of the registry the listing started on.
    """
    if not header:
        return None
    text = header.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].replace('\\"', '"')
    for match in _LINK_VALUE.finditer(text):
        target, params = match.group(1).strip().strip("\"'"), match.group(2) or ""
        for param in params.split(";"):
            name, sep, value = param.partition("=")
            if sep and name.strip().lower() == "rel" and "next" in value.strip().strip("\"'").lower().split():
                parts = urlsplit(target)
                return parts.path + ("?" + parts.query if parts.query else "") if parts.path else None
    return None


def _tags_of_page(body: Any, registry: str, what: str) -> list[str]:
    """The tags of one tag-list page; ``null`` and empty entries (Nexus) and digests (Artifactory) are skipped, as skopeo does."""
    page = body.get("tags") if isinstance(body, dict) else None
    if page is None:
        return []
    if not isinstance(page, list):
        raise RegistryError("registry %s sent a tag list for %s whose tags are not a list" % (registry, what), what, 200)
    tags = []
    for tag in page:
        if tag is None or tag == "" or (isinstance(tag, str) and DIGEST_RE.match(tag) and ":" in tag):
            continue
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise RegistryError("registry %s listed an invalid tag %r for %s" % (registry, tag, what), what, 200)
        tags.append(tag)
    return tags


def registry_errors(response: Any) -> tuple[str | None, str]:
    """(first error code, "CODE: message; ...") from a registry's JSON error body, or (None, "HTTP n")."""
    try:
        body = json.loads(response.content.decode("utf-8")) if response.content else None
    except (ValueError, UnicodeDecodeError):
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors or not isinstance(errors, list):
        return None, "HTTP %d" % response.status_code
    parts = []
    first = None
    for err in errors:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code") or "")
        first = first or code or None
        message = scrub_credentials(str(err.get("message") or ""))
        parts.append("%s: %s" % (code, message) if code and message else code or message)
    return first, "; ".join(parts) or "HTTP %d" % response.status_code


class ResumingBody:
    """A raw response body that reopens with ``Range: bytes=N-`` when the connection drops mid-read.

    The caller wraps it in a VerifyingReader, so the hash simply continues over the resumed bytes.
    """

    def __init__(self, client: RegistryClient, repository: str, digest: str, response: Any, budget: RetryBudget):
        self._client = client
        self._repository = repository
        self._digest = digest
        self._response = response
        self._budget = budget
        self.position = 0
        self._total = self._content_length(response)

    @staticmethod
    def _content_length(response: Any) -> int | None:
        try:
            return int(response.headers["Content-Length"])
        except (KeyError, TypeError, ValueError):
            return None

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left when ``n`` < 0); fewer only at the end of the blob."""
        wanted = None if n is None or n < 0 else n
        parts = []
        got = 0
        while wanted is None or got < wanted:
            chunk = self._read_some(READ_CHUNK if wanted is None else wanted - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _read_some(self, n: int) -> bytes:
        # read1 hands over what has arrived, so bytes received before a drop are kept and the
        # resume starts at the last byte received (a plain read would lose its partial buffer).
        raw_read = getattr(self._response.raw, "read1", None)
        while True:
            try:
                if raw_read is not None:
                    chunk = raw_read(n, decode_content=False)
                else:
                    chunk = self._response.raw.read(min(n, 64 * 1024), decode_content=False)
            except _BODY_READ_ERRORS:
                chunk = None
            if chunk:
                self.position += len(chunk)
                return chunk
            if chunk == b"" and (self._total is None or self.position >= self._total):
                return b""
            # The body ended early or the connection failed: continue where it stopped.
            self._reopen()
            raw_read = getattr(self._response.raw, "read1", None)

    def _reopen(self) -> None:
        if not self._budget.take():
            raise DigestMismatch(
                "%s/%s: blob %s ended after %d bytes and could not be resumed" % (self._client.registry, self._repository, self._digest, self.position),
                self._repository,
            )
        self._response.close()
        start = self.position
        response = self._client._blob_response(self._repository, self._digest, start)
        if response.status_code == 200 and start:
            # The registry ignored Range: skip what we already have.
            skipped = 0
            while skipped < start:
                data = response.raw.read(min(READ_CHUNK, start - skipped), decode_content=False)
                if not data:
                    break
                skipped += len(data)
        self._response = response

    def close(self) -> None:
        self._response.close()


class _LengthReader:
    """Up to ``length`` bytes of a stream, with ``__len__`` so requests sends Content-Length."""

    def __init__(self, stream: BinaryIO, length: int):
        self._stream = stream
        self._left = length
        self._length = length
        #: What the stream raised (a DigestMismatch of the source), whatever requests made of it.
        self.error: OCIError | None = None

    def __len__(self) -> int:
        return self._length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        try:
            data = self._stream.read(n)
        except OCIError as exc:
            self.error = exc
            raise
        self._left -= len(data)
        return data


class RegistryClient:
    """Distribution API client for one registry host (``registry`` as in a reference, e.g. ``docker.io``)."""

    def __init__(self, registry: str, options: ConnectionOptions | None = None, backoff_base: float | None = None, env: dict[str, str] | None = None):
        self.registry = registry
        self.options = options or ConnectionOptions()
        self.http = HttpSession(api_host(registry), self.options, backoff_base=backoff_base)
        self.auth = Authenticator(registry, self.http, self.options, env=env)

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- plumbing ------------------------------------------------------------------------------
    def _where(self, repository: str | None, ref: str | None = None) -> str:
        if repository is None:
            return self.registry
        if ref is None:
            return "%s/%s" % (self.registry, repository)
        return "%s/%s%s%s" % (self.registry, repository, "@" if DIGEST_RE.match(ref) and ":" in ref else ":", ref)

    def _request(self, method: str, path: str, repository: str | None, actions: str = "pull", extra_scopes: list[str] | None = None, **kwargs: Any):
        """Send with authentication, answering 401 challenges; 403 and a final 401 raise."""
        scopes = ([repository_scope(repository, actions)] if repository else []) + list(extra_scopes or [])
        extra_headers = kwargs.pop("headers", None) or {}
        what = kwargs.pop("what", None)
        body = kwargs.get("data")
        replayable = body is None or isinstance(body, (bytes, str, dict, list))
        own = self.http.is_own_url(self.http.url(path)) or "://" not in path
        attempt = self.auth.attempt(repository, scopes)
        try:
            # Sends: without credentials (challenge unknown), with them, with a wider scope, once more after a refusal.
            for _round in range(4):
                headers = dict(extra_headers)
                if own:
                    headers.update(self.auth.authorize(attempt))
                response = self.http.request(method, path, headers=headers, **kwargs)
                if response.status_code == 403:
                    _code, detail = registry_errors(response)
                    response.close()
                    raise self.auth.denied(repository, what, " (%s)" % detail)
                if response.status_code != 401:
                    return response
                response.close()
                retry = own and replayable and self.auth.answer(response, attempt)
                self.auth.settle(attempt)  # the challenge is known now: requests waiting for it may go
                if not retry:
                    challenge = response.headers.get("WWW-Authenticate") or ""
                    if "insufficient_scope" in challenge and self.auth.credentials(repository) is not None:
                        raise self.auth.denied(repository, what, " (insufficient_scope)")
                    raise self.auth.rejected(repository, what)
            raise self.auth.rejected(repository, what)
        finally:
            self.auth.settle(attempt)

    def _error(self, response: Any, what: str, action: str) -> Exception:
        code, detail = registry_errors(response)
        response.close()
        if response.status_code == 404 or code in _NOT_FOUND_CODES:
            return NotFound("%s: not found in %s (%s)" % (what, self.registry, detail), what)
        if code == "UNSUPPORTED" or response.status_code == 405:
            return Unsupported("registry %s does not support %s for %s (%s)" % (self.registry, action, what, detail), what)
        asked = self.http.retry_after(response)
        if asked is not None and asked > self.http.pacer.settings.max_wait:
            detail += "; it asked to wait %.0f s (Retry-After), more than rate_limit_max_wait (%.0f s): raise it or try again later" % (
                asked,
                self.http.pacer.settings.max_wait,
            )
        return RegistryError(
            "registry %s failed to %s %s: HTTP %d (%s)" % (self.registry, action, what, response.status_code, detail), what, response.status_code, code
        )

    # --- read side -----------------------------------------------------------------------------
    def ping(self) -> bool:
        """Check that the registry answers the v2 API (401 counts: it is there and wants credentials)."""
        response = self.http.request("GET", "/v2/")
        with response:
            if response.status_code in (200, 401):
                return True
            raise self._error(response, self.registry, "answer the v2 API at")

    def check_login(self) -> None:
        """GET ``/v2/`` answering the registry's challenge with the configured credentials; raises AuthenticationFailed if refused."""
        response = self._request("GET", "/v2/", None, what="its API")
        with response:
            if response.status_code != 200:
                raise self._error(response, self.registry, "answer the v2 API at")

    def head_manifest(self, repository: str, ref: str) -> ManifestHead | None:
        """Digest, media type and size of a manifest without fetching it; None when absent."""
        what = self._where(repository, ref)
        response = self._request("HEAD", "/v2/%s/manifests/%s" % (repository, quote(ref, safe=":")), repository, headers={"Accept": MANIFEST_ACCEPT}, what=what)
        with response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._error(response, what, "look up manifest")
            size = response.headers.get("Content-Length")
            return ManifestHead(
                digest=response.headers.get("Docker-Content-Digest"),
                media_type=(response.headers.get("Content-Type") or "").split(";")[0].strip() or None,
                size=int(size) if size and size.isdigit() else None,
            )

    def get_manifest(self, repository: str, ref: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of a manifest by tag or digest, verified and size-limited."""
        what = self._where(repository, ref)
        response = self._request(
            "GET", "/v2/%s/manifests/%s" % (repository, quote(ref, safe=":")), repository, headers={"Accept": MANIFEST_ACCEPT}, stream=True, what=what
        )
        with response:
            if response.status_code == 404:
                raise NotFound("%s: not found in %s (tag or repository does not exist)" % (what, self.registry), what)
            if response.status_code != 200:
                raise self._error(response, what, "fetch manifest")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
                raise InvalidManifest("%s: manifest is %s bytes, over the %d-byte limit" % (what, length, MAX_MANIFEST_BYTES), what)
            raw = response.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
            if len(raw) > MAX_MANIFEST_BYTES:
                raise InvalidManifest("%s: manifest is over the %d-byte limit" % (what, MAX_MANIFEST_BYTES), what)
            media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
            header_digest = response.headers.get("Docker-Content-Digest")
        media_type = sniff_media_type(raw, media_type)
        signed_v1 = media_type == DOCKER_V2S1_SIGNED
        if DIGEST_RE.match(ref) and ":" in ref:
            validate_digest(ref, what)
            if not (signed_v1 and header_digest == ref):
                verify_bytes(raw, ref, what)
            return raw, media_type, ref
        if header_digest:
            validate_digest(header_digest, what)
            if not signed_v1:
                # Signed v2s1 manifests are digested without their signatures: trust the header for those.
                verify_bytes(raw, header_digest, what)
            return raw, media_type, header_digest
        return raw, media_type, sha256_digest(raw)

    def _blob_response(self, repository: str, digest: str, start: int = 0):
        what = "%s blob %s" % (self._where(repository), digest)
        headers = {"Range": "bytes=%d-" % start} if start else {}
        response = self._request("GET", "/v2/%s/blobs/%s" % (repository, digest), repository, headers=headers, stream=True, what=what)
        if response.status_code not in (200, 206):
            raise self._error(response, what, "fetch")
        return response

    def get_blob(self, repository: str, digest: str, size: int | None = None) -> VerifyingReader:
        """A streaming reader of a blob, verified against ``digest`` and ``size`` as it is read; resumes on drops."""
        validate_digest(digest, self._where(repository))
        response = self._blob_response(repository, digest)
        body = ResumingBody(self, repository, digest, response, self.http.budget())
        return VerifyingReader(body, digest, size, "%s blob" % self._where(repository))

    def head_blob(self, repository: str, digest: str) -> int | None:
        """Size of a blob in this repository, or None when it is not there."""
        what = "%s blob %s" % (self._where(repository), digest)
        response = self._request("HEAD", "/v2/%s/blobs/%s" % (repository, digest), repository, what=what)
        with response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._error(response, what, "look up")
            length = response.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else 0

    def list_tags(self, repository: str, page_size: int = TAGS_PAGE_SIZE) -> list[str]:
        """Every tag of a repository, following ``Link`` pagination.

        A registry that refuses ``n=`` is asked again without it (it then picks its own page size).
        Like skopeo, only the path and query of a ``Link`` are followed, on this registry. A link back
        to a page already read, or a page that brings no tag not seen before, is an error, not a hang.
        """
        what = self._where(repository)
        first = "/v2/%s/tags/list" % repository
        tags: list[str] = []
        listed: set[str] = set()
        seen_urls: set[str] = set()
        next_url: str | None = "%s?n=%d" % (first, page_size) if page_size else first
        page_number = 0
        while next_url is not None:
            seen_urls.add(next_url)
            page_number += 1
            response = self._request("GET", next_url, repository, what=what)
            with response:
                if response.status_code == 400 and page_number == 1 and next_url != first:
                    # Some registries refuse a page size they do not support (PAGINATION_NUMBER_INVALID).
                    next_url = first
                    page_number = 0
                    continue
                if response.status_code != 200:
                    if response.status_code == 404:
                        raise NotFound("%s: repository not found in %s" % (what, self.registry), what)
                    raise self._error(response, what, "list tags of")
                try:
                    body = response.json()
                except ValueError:
                    raise RegistryError("registry %s sent a tag list for %s that is not JSON" % (self.registry, what), what, 200) from None
                link = response.headers.get("Link")
            page = _tags_of_page(body, self.registry, what)
            new = [t for t in page if t not in listed]
            tags.extend(new)
            listed.update(new)
            following = link_next(link)
            if following is None:
                break
            if not new:
                raise RegistryError(
                    "registry %s sent page %d of the tags of %s with no tag not already listed, and a Link to another page "
                    "(%s): its pagination repeats itself; stopped after %d tags" % (self.registry, page_number, what, following, len(tags)),
                    what,
                    200,
                )
            if following in seen_urls:
                raise RegistryError(
                    "registry %s sent a Link from page %d of the tags of %s back to a page already read (%s): its pagination loops; "
                    "stopped after %d tags" % (self.registry, page_number, what, following, len(tags)),
                    what,
                    200,
                )
            next_url = following
        return tags

    def get_referrers(self, repository: str, digest: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
        """Descriptors of manifests that refer to ``digest`` (referrers API, else the ``sha256-HEX`` tag)."""
        validate_digest(digest, self._where(repository))
        what = "%s referrers of %s" % (self._where(repository), digest)
        params = {"artifactType": artifact_type} if artifact_type else None
        response = self._request("GET", "/v2/%s/referrers/%s" % (repository, digest), repository, params=params, headers={"Accept": OCI_INDEX}, what=what)
        with response:
            if response.status_code == 200:
                index = decode_object(response.content, MAX_MANIFEST_BYTES, "referrers list", what)
                filtered = bool(response.headers.get("OCI-Filters-Applied"))
                descriptors = index.get("manifests") or []
            elif response.status_code == 404:
                filtered = False
                descriptors = None
            else:
                raise self._error(response, what, "list referrers")
        if descriptors is None:
            fallback = digest.replace(":", "-")
            if self.head_manifest(repository, fallback) is None:
                return []  # asked with a HEAD: no manifest GET (a pull, on Docker Hub) for the usual absent tag
            try:
                raw, _media_type, _digest = self.get_manifest(repository, fallback)
            except NotFound:
                return []
            descriptors = decode_object(raw, MAX_MANIFEST_BYTES, "referrers fallback index", what).get("manifests") or []
        descriptors = [d for d in descriptors if isinstance(d, dict)]
        if artifact_type and not filtered:
            descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
        return descriptors

    # --- write side ----------------------------------------------------------------------------
    def _write_rechecking(self, method: str, path: str, repository: str, settled: Callable[[], bool], **kwargs: Any):
        """Send a write that must not be repeated blindly; None when a re-check shows it already took effect.

        After a lost answer (connection dropped, timeout, 5xx, 429) the write may or may not have
        happened: ask the registry (``settled``) before sending it again.
        """
        budget = self.http.budget()
        while True:
            try:
                response = self._request(method, path, repository, idempotent=False, **kwargs)
            except ConnectionFailure:
                if not budget.take():
                    raise
                response = None
            if response is not None:
                if response.status_code not in RETRY_STATUSES and response.status_code != 429:
                    return response
                if self.http.waits_too_long(response) or not budget.take():
                    return response
                response.close()
            try:
                if settled():
                    return None
            except OCIError:
                pass  # could not tell: send again
            self.http.sleep_before_retry(budget, response)

    def put_manifest(self, repository: str, ref: str, raw: bytes, media_type: str) -> str:
        """Store a manifest under a tag or digest; returns its digest."""
        what = self._where(repository, ref)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise InvalidManifest("%s: manifest is over the %d-byte limit" % (what, MAX_MANIFEST_BYTES), what)
        digest = sha256_digest(raw)
        if DIGEST_RE.match(ref) and ":" in ref:
            verify_bytes(raw, ref, what)
            digest = ref
        response = self._write_rechecking(
            "PUT",
            "/v2/%s/manifests/%s" % (repository, quote(ref, safe=":")),
            repository,
            lambda: (self.head_manifest(repository, ref) or ManifestHead(None, None, None)).digest == digest,
            actions="pull,push",
            headers={"Content-Type": media_type},
            data=raw,
            what=what,
        )
        if response is None:
            return digest
        with response:
            if response.status_code not in (200, 201, 202):
                raise self._error(response, what, "store manifest")
            returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise DigestMismatch("%s: registry stored the manifest as %s, expected %s" % (what, returned, digest), what)
        return digest

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Ask the registry to link a blob from another repository; True when it did (201)."""
        what = "%s blob %s" % (self._where(repository), digest)
        response = self._request(
            "POST",
            "/v2/%s/blobs/uploads/" % repository,
            repository,
            actions="pull,push",
            extra_scopes=[repository_scope(from_repository, "pull")],
            params={"mount": digest, "from": from_repository},
            what=what,
        )
        with response:
            if response.status_code == 201:
                return True
            if response.status_code == 202:
                # The registry started an upload instead; cancel it so it does not linger.
                self._cancel_upload(repository, response.headers.get("Location"))
                return False
            raise self._error(response, what, "mount")

    def _cancel_upload(self, repository: str, location: str | None) -> None:
        if not location:
            return
        try:
            self._request("DELETE", urljoin(self.http.url("/v2/"), location), repository, actions="pull,push").close()
        except Exception:
            pass

    def _start_upload(self, repository: str, what: str) -> str:
        # Safe to repeat: a session we never use is dropped by the registry.
        response = self._request("POST", "/v2/%s/blobs/uploads/" % repository, repository, actions="pull,push", idempotent=True, what=what)
        with response:
            if response.status_code != 202 or not response.headers.get("Location"):
                raise self._error(response, what, "start upload of")
            return urljoin(self.http.url("/v2/"), response.headers["Location"])

    def upload_blob(self, repository: str, digest: str, stream: BinaryIO, size: int) -> None:
        """Upload a blob: POST, then one PUT with Content-Length; chunked PATCHes when the registry refuses that."""
        validate_digest(digest, self._where(repository))
        what = "%s blob %s" % (self._where(repository), digest)
        location = self._start_upload(repository, what)
        body = _LengthReader(stream, size)
        try:
            response = self._request("PUT", location, repository, actions="pull,push", params={"digest": digest}, data=body, what=what)
        except Exception:
            if body.error is not None:
                raise body.error from None  # the source's own failure, not the upload's
            raise
        if body.error is not None:
            response.close()
            raise body.error
        with response:
            if response.status_code in (200, 201, 204):
                return
            if response.status_code in RETRY_STATUSES or response.status_code == 429:
                # The body is spent and cannot be replayed here: the copy engine starts the blob again.
                raise ConnectionFailure("registry %s failed to store %s: HTTP %d" % (self.registry, what, response.status_code), what)
            seekable = getattr(stream, "seekable", lambda: False)()
            if response.status_code not in (400, 405, 416) or not seekable:
                code, _detail = registry_errors(response)
                if code in ("DIGEST_INVALID", "SIZE_INVALID"):
                    raise DigestMismatch("%s: registry refused the upload (%s)" % (what, _detail), what)
                raise self._error(response, what, "upload")
        stream.seek(0)
        self._upload_chunked(repository, what, stream, size, digest)

    def _upload_chunked(self, repository: str, what: str, stream: BinaryIO, size: int, digest: str) -> None:
        location = self._start_upload(repository, what)
        offset = 0
        while offset < size:
            length = min(UPLOAD_CHUNK_SIZE, size - offset)
            response = self._request(
                "PATCH",
                location,
                repository,
                actions="pull,push",
                headers={"Content-Type": "application/octet-stream", "Content-Range": "%d-%d" % (offset, offset + length - 1)},
                data=_LengthReader(stream, length),
                what=what,
            )
            with response:
                if response.status_code != 202:
                    raise self._error(response, what, "upload a chunk of")
                location = urljoin(location, response.headers.get("Location") or location)
            offset += length
        response = self._request("PUT", location, repository, actions="pull,push", params={"digest": digest}, what=what)
        with response:
            if response.status_code not in (200, 201, 204):
                raise self._error(response, what, "finish upload of")

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest (removes every tag pointing at it)."""
        what = self._where(repository, digest)
        validate_digest(digest, what)
        response = self._write_rechecking(
            "DELETE",
            "/v2/%s/manifests/%s" % (repository, digest),
            repository,
            lambda: self.head_manifest(repository, digest) is None,
            actions="delete",
            what=what,
        )
        if response is None:
            return
        with response:
            if response.status_code in (200, 202, 204):
                return
            if response.status_code == 405:
                raise RegistryError(
                    "registry %s does not allow deleting %s (HTTP 405): enable deletes on the registry (storage.delete.enabled)" % (self.registry, what),
                    what,
                    405,
                    "UNSUPPORTED",
                )
            raise self._error(response, what, "delete")
