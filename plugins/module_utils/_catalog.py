# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which repositories of a registry a task means, and the copies a registry-wide mirror makes of them.

The repositories come from the registry's catalog (``_registry/_catalog.py``) or, for a registry
without one, from a list the task gives; a namespace keeps those below it, ``include``/``exclude``
match whole repository names as tag selection matches whole tags.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ._errors import InvalidReference, OCIError
from ._mirror import CopyPair, MirrorTarget, TagSelection, select_repository_tags
from ._options import ConnectionOptions
from ._reference import DOMAIN_RE, PATH_RE, ImageReference, parse_reference
from ._registry._catalog import list_repositories
from ._registry._client import RegistryClient
from ._registry._clients import registry_client
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


def catalog_pairs(
    scope: CatalogScope,
    dest: str,
    src_options: ConnectionOptions,
    list_tags,
    tags: TagSelection,
    repositories: dict | None = None,
    scoped: bool = False,
    parallel: int = 4,
    on_error=None,
    created_of=None,
) -> list[CopyPair]:
    """Every image of the repositories a registry (or namespace) holds, each with its place under ``dest``.

    A repository keeps its whole path under ``dest`` (``src.example.com/team/app:1`` lands at
    ``DEST/team/app:1``; with ``scoped``, at ``DEST/src.example.com/team/app:1``), so repositories
    of different namespaces never collide and a registry mirrored to a bare host keeps its names.
    Tags are listed for several repositories at once (``parallel``). ``list_tags(reference, options)``
    lists one repository's tags; with ``on_error``, a repository whose tags cannot be listed is reported
    to it as a failed entry and the others go on; without, the error is raised.
    ``created_of(reference)`` gives ``created(tag)`` for ``tags.latest`` on tags that are not versions.
    """
    target = MirrorTarget.parse(dest, "catalog copies every image of %s" % scope.reference())
    if target.place is None:
        target = MirrorTarget(dest, prefix=_catalog_dest(dest))
    selection = repositories or {}
    unknown = set(selection) - {"include", "exclude", "names"}
    if unknown:
        raise OCIError("repositories: unknown key(s) %s; use include, exclude, names" % ", ".join(sorted(unknown)), scope.reference())
    client = registry_client(scope.registry, src_options)
    names = catalog_repositories(client, scope, selection.get("include"), selection.get("exclude"), selection.get("names"))

    def base(repository: str) -> str:
        # A bundle names every image by its full reference; a prefix or a tree keeps the repository path (and the host with scoped).
        return scope.registry + "/" + repository if (scoped or target.is_bundle) else repository

    def place(repository: str, tag: str) -> ImageReference:
        return target.image(base(repository), ":" + tag, scoped=True)

    def dest_repository(repository: str) -> str:
        if target.place is not None:
            return str(target.place)
        return "%s://%s/%s" % (registry_transport().name, target.prefix.rstrip("/"), base(repository))

    def pairs_of(repository: str) -> list[CopyPair]:
        source = parse_reference(scope.reference(repository))
        try:
            listed = list_tags(source, src_options)
            chosen = select_repository_tags(listed, tags, created_of(source) if (created_of and tags.latest) else None)
        except OCIError as exc:
            if on_error is None:
                raise
            on_error(
                {
                    "src": scope.reference(repository),
                    "dest": dest_repository(repository),
                    "changed": False,
                    "failed": True,
                    "msg": exc.msg,
                }
            )
            return []
        return [CopyPair(source.with_tag(tag), place(repository, tag), src_options) for tag in chosen]

    if not names:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names)))) as pool:
        found = list(pool.map(pairs_of, names))
    return [pair for pairs in found for pair in pairs]


def _catalog_dest(dest: str) -> str:
    """The registry prefix a registry-wide mirror lands under (``host[:port][/namespace]``), checked to name a registry."""
    try:
        scope = parse_catalog_scope(dest)
    except InvalidReference:
        raise OCIError(
            "with catalog, dest must name a registry or a namespace of one (registry.example.com/mirror, 127.0.0.1:5000),"
            " or a local dir: tree or bundle (oci:PATH, oci-archive:PATH), not %r" % dest,
            dest,
        ) from None
    return scope.registry + ("/" + scope.namespace if scope.namespace else "")
