# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repositories a registry lists: ``GET /v2/_catalog``, page after page.

Pages follow the ``Link: <URL>; rel="next"`` header (RFC 8288: absolute or relative URL, ``rel``
quoted or not, among other parameters). A registry that sends the reader back to a page it already
read, or a next page that adds no repository, is an error: the listing would never end.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

from .._errors import AuthenticationFailed, PermissionDenied, RegistryError, Unsupported
from ._client import RegistryClient, registry_errors

CATALOG_PAGE_SIZE = 1000
CATALOG_SCOPE = "registry:catalog:*"
# Error codes registries answer for a catalog they do not have or do not serve.
_NO_CATALOG_CODES = ("UNSUPPORTED", "NOT_FOUND", "NAME_UNKNOWN")
_TOKEN = r"[A-Za-z0-9!#$&+.^_`|~-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# One link-value: <target> and its parameters (RFC 8288, section 3).
_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*%s\s*(?:=\s*(?:%s|[^;,\s]*))?)*)" % (_TOKEN, _QUOTED))
_LINK_PARAM = re.compile(r";\s*(%s)\s*(?:=\s*(%s|[^;,\s]*))?" % (_TOKEN, _QUOTED))


def next_page_url(link_header: str | None, page_url: str) -> str | None:
    """The absolute URL a ``Link`` header names with ``rel="next"`` (resolved against ``page_url``), or None."""
    for value in _LINK_VALUE.finditer(link_header or ""):
        for name, param in _LINK_PARAM.findall(value.group(2)):
            if name.lower() == "rel" and "next" in param.strip('"').lower().split():
                return urljoin(page_url, value.group(1).strip())
    return None


def list_repositories(client: RegistryClient, page_size: int = CATALOG_PAGE_SIZE) -> list[str]:
    """Every repository the registry's catalog lists, in its order, each once."""
    registry = client.registry
    names: list[str] = []
    known: set[str] = set()
    # The first request is a path: the scheme (https, or http without TLS verification) is chosen on it.
    page: str | None = "/v2/_catalog?n=%d" % page_size
    read: set[str] = set()
    while page:
        try:
            found = _catalog_page(client, page)
        except RegistryError as exc:
            if exc.code != "PAGINATION_NUMBER_INVALID" or read:
                raise
            page = "/v2/_catalog"  # a registry with smaller pages: let it choose their size
            continue
        read.add(found["url"])
        fresh = [name for name in found["names"] if name not in known]
        names.extend(fresh)
        known.update(fresh)
        following = found["next"]
        if following is None:
            break
        if following in read:
            raise RegistryError(
                "registry %s sent the catalog back to a page it already sent (%s): its catalog paging loops; name the repositories instead"
                % (registry, following),
                registry,
            )
        if not fresh:
            raise RegistryError(
                "registry %s sent a catalog page with no new repository but a next page (%s): its catalog paging does not advance;"
                " name the repositories instead" % (registry, following),
                registry,
            )
        page = following
    return names


def _catalog_page(client: RegistryClient, page: str) -> dict:
    """One page: its absolute URL, the names it lists and the next page's absolute URL (None on the last)."""
    registry = client.registry
    what = "the repository list (catalog) of %s" % registry
    try:
        response = client._request("GET", page, None, extra_scopes=[CATALOG_SCOPE], what=what)
    except (AuthenticationFailed, PermissionDenied) as exc:
        raise exc.__class__(
            "%s; many registries list their repositories only to an administrator (or a token with the %s scope): name the repositories instead"
            % (exc.msg, CATALOG_SCOPE),
            registry,
        ) from None
    with response:
        if response.status_code != 200:
            code, detail = registry_errors(response)
            if response.status_code in (404, 405) or code in _NO_CATALOG_CODES:
                response.close()
                raise Unsupported(
                    "registry %s does not list its repositories: GET /v2/_catalog answered HTTP %d (%s); it has no catalog or turned it off,"
                    " so name the repositories instead" % (registry, response.status_code, detail),
                    registry,
                )
            raise client._error(response, what, "list the repositories (GET /v2/_catalog) of")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("repositories") or [], list):
            raise RegistryError("registry %s sent a catalog page that is not a repository list (JSON with repositories)" % registry, registry, 200)
        page_url = client.http.url(page)
        names = [name for name in body.get("repositories") or [] if isinstance(name, str)]
        return {"url": page_url, "names": names, "next": next_page_url(response.headers.get("Link"), page_url)}
