"""A paging front for a real registry: tag lists served in pages, as Docker Hub, GHCR, Harbor and Artifactory do.

docker-registry 2.8 ignores ``n=`` on ``/v2/<name>/tags/list`` and answers every tag at once. This
front (a FaultProxy that answers tag lists itself) asks the registry behind it for the whole list
and hands it out in pages of ``page_size`` (or of ``n`` when the client asks for fewer), with the
``Link`` header styles registries send. Everything else passes through to the registry.

``link`` is one of ``LINK_STYLES``; ``misbehave`` makes it a broken registry: ``refuse_n`` answers
400 to any ``n=``, ``loop`` links the last page back to the first, ``repeat`` serves the same page
again under a new URL.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from fault_proxy import FaultProxy, send_json

LINK_STYLES = ("relative", "absolute", "unquoted", "quoted_value", "with_prev")
MISBEHAVIOURS = (None, "refuse_n", "loop", "repeat")


class PagingFront(FaultProxy):
    """``http://127.0.0.1:PORT`` in front of the plain-HTTP registry ``upstream``; tag lists in pages."""

    def __init__(self, upstream: str, page_size: int = 100, link: str = "relative", misbehave: str | None = None, registry=None):
        super().__init__(upstream, registry=registry)
        if link not in LINK_STYLES or misbehave not in MISBEHAVIOURS:
            raise ValueError("link must be one of %s, misbehave one of %s" % (LINK_STYLES, MISBEHAVIOURS))
        self.page_size = page_size
        self.link = link
        self.misbehave = misbehave
        self.pages_served = 0
        self.intercept = self._serve_tags

    def _all_tags(self, name: str) -> list[str] | None:
        try:
            with urllib.request.urlopen("http://%s/v2/%s/tags/list" % (self.upstream, name), timeout=30) as response:
                return sorted(json.loads(response.read()).get("tags") or [])
        except urllib.error.HTTPError:
            return None

    def _link_header(self, name: str, query: dict) -> str:
        path = "/v2/%s/tags/list?%s" % (name, urllib.parse.urlencode(query))
        if self.link == "absolute":
            return '<http://%s%s>; rel="next"' % (self.host, path)
        if self.link == "unquoted":
            return "<%s>;rel=next" % path
        if self.link == "quoted_value":
            return '"<%s>; rel=\\"next\\""' % path
        if self.link == "with_prev":
            return '</v2/%s/tags/list>; rel="first", <%s>; rel="next"' % (name, path)
        return '<%s>; rel="next"' % path

    def _serve_tags(self, h, method: str, path: str) -> int | None:
        parts = urllib.parse.urlsplit(path)
        if method != "GET" or not parts.path.startswith("/v2/") or not parts.path.endswith("/tags/list"):
            return None
        name = parts.path[len("/v2/") : -len("/tags/list")]
        query = dict(urllib.parse.parse_qsl(parts.query))
        if self.misbehave == "refuse_n" and "n" in query:
            return send_json(h, 400, b'{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested"}]}', {})
        tags = self._all_tags(name)
        if tags is None:
            return send_json(h, 404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}', {})
        size = min(self.page_size, int(query["n"])) if query.get("n", "").isdigit() and int(query["n"]) > 0 else self.page_size
        last = query.get("last")
        rest = [t for t in tags if last is None or t > last]
        page = rest[:size]
        headers = {}
        if len(rest) > size:
            following = {"n": str(size), "last": page[-1]}
            if self.misbehave == "refuse_n":
                following = {"last": page[-1]}
            if self.misbehave == "repeat":
                following = {"n": str(size), "last": last or "", "again": str(self.pages_served)}
            headers["Link"] = self._link_header(name, following)
        elif self.misbehave == "loop":
            headers["Link"] = '<%s>; rel="next"' % path  # the last page links to itself
        self.pages_served += 1
        return send_json(h, 200, json.dumps({"name": name, "tags": page}).encode(), headers)
