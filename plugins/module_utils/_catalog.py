# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which repositories of a registry a task means: a registry or a namespace of it, a selection by regular expressions.

The repositories come from the registry's catalog (``_registry/_catalog.py``) or, for a registry
without one, from a list the task gives; a namespace keeps those below it, ``include``/``exclude``
match whole repository names as tag selection matches whole tags.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import InvalidReference
from ._reference import DOMAIN_RE, PATH_RE
from ._registry._catalog import list_repositories
from ._registry._client import RegistryClient
from ._select import select_tags
from ._transports._table import registry_transport


@dataclass(frozen=True)
class CatalogScope:
    """A registry host, and optionally a namespace (``team`` keeps ``team/app``, ``team/db/x``, not ``teamwork``)."""

    registry: str
    namespace: str | None = None

    def holds(self, repository: str) -> bool:
        return self.namespace is None or repository.startswith(self.namespace + "/")

    def reference(self, repository: str | None = None) -> str:
        """How results name the registry, the namespace or one of its repositories: ``docker://host/path``."""
        path = repository or self.namespace
        return "%s://%s%s" % (registry_transport().name, self.registry, "/" + path if path else "")


def parse_catalog_scope(text: str) -> CatalogScope:
    """``host[:port][/namespace]``, with or without the registry transport's ``docker://`` in front."""
    prefix = registry_transport().name + "://"
    rest = text[len(prefix) :] if text.startswith(prefix) else text
    host, _slash, namespace = rest.strip().rstrip("/").partition("/")
    if not host or not DOMAIN_RE.match(host) or not ("." in host or ":" in host or host == "localhost"):
        raise InvalidReference(
            "catalog: %r does not name a registry: give its host, such as registry.example.com or 127.0.0.1:5000, optionally with a namespace"
            " (registry.example.com/team)" % text,
            text,
        )
    if namespace and not PATH_RE.match(namespace):
        raise InvalidReference("catalog: %r has an invalid namespace %r: use a repository path prefix such as team or team/apps" % (text, namespace), text)
    return CatalogScope(host, namespace or None)


def select_repositories(names: list[str], scope: CatalogScope, include: list[str] | None = None, exclude: list[str] | None = None) -> list[str]:
    """The repositories of ``names`` inside ``scope`` that match an ``include`` regex (all when none) and no ``exclude`` regex."""
    inside = [name for name in names if scope.holds(name)]
    return select_tags(inside, include, exclude, option="repositories.")


def catalog_repositories(
    client: RegistryClient, scope: CatalogScope, include: list[str] | None = None, exclude: list[str] | None = None, names: list[str] | None = None
) -> list[str]:
    """The repositories a task means: from the catalog (or ``names`` when given), inside ``scope``, selected."""
    if names is None:
        listed = list_repositories(client)
    else:
        listed = list(dict.fromkeys(names))
        wrong = [name for name in listed if not PATH_RE.match(name)]
        if wrong:
            raise InvalidReference("repositories.names: not repository paths (such as team/app): %s" % ", ".join(repr(n) for n in wrong), scope.reference())
    return select_repositories(listed, scope, include, exclude)
