# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizes across the repositories of a registry: what it stores, what each repository shares, what deleting one frees.

``scan_registry`` reads each repository's tags and every manifest once (a manifest several tags or
repositories name is parsed once; an index's images are read once, from the first repository that
needs them); no layer is read. ``registry_footprint`` is then arithmetic over that scan.

A registry stores each blob once, whichever repositories use it, and keeps a manifest as a blob
too: the totals here count configs, layers and manifests, each once. The API lists tags only; the
manifests a repository keeps without a tag (an old image its tag moved away from, an image pushed by
digest) are seen only through the registry's storage (``_registry/_distribution_storage.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ._errors import NotFound
from ._footprint import SCAN_PARALLEL, ManifestFacts, manifest_facts
from ._registry._client import RegistryClient
from ._registry._distribution_storage import DistributionStorage


@dataclass
class RepositoryContents:
    """One repository: tag -> manifest digest, and the manifests it keeps that no tag reaches (None: not seen)."""

    tags: dict[str, str] = field(default_factory=dict)
    untagged: list[str] | None = None


@dataclass
class RegistryScan:
    """Every repository scanned, and every manifest any of them holds, by digest."""

    registry: str
    repositories: dict[str, RepositoryContents] = field(default_factory=dict)
    manifests: dict[str, ManifestFacts] = field(default_factory=dict)

    def reachable(self, roots: Iterable[str]) -> set[str]:
        """The manifests ``roots`` name and, through indexes, every manifest below them."""
        found: set[str] = set()
        pending = list(roots)
        while pending:
            digest = pending.pop()
            if digest in found or digest not in self.manifests:
                continue
            found.add(digest)
            pending.extend(self.manifests[digest].children)
        return found

    def holdings(self, roots: Iterable[str]) -> dict[str, int]:
        """Everything the registry stores for ``roots``: each manifest and each config and layer they use (digest -> bytes)."""
        held: dict[str, int] = {}
        for digest in self.reachable(roots):
            facts = self.manifests[digest]
            held[digest] = facts.size
            held.update(facts.blobs)
        return held


def scan_registry(
    client: RegistryClient, repositories: Iterable[str], storage: DistributionStorage | None = None, parallel: int = SCAN_PARALLEL
) -> RegistryScan:
    """Read the tags of ``repositories`` and every manifest they reach; with ``storage``, also the manifests they keep untagged.

    Through the API that is a request per repository (its tags) and per tag (its manifest), then one per manifest not read
    yet (an index's images). With ``storage``, the tags come from the storage, and each distinct manifest is read once.
    """
    scan = RegistryScan(client.registry)
    names = list(repositories)
    lock = threading.Lock()

    def tags_of(repository: str) -> list[str]:
        try:
            return client.list_tags(repository)
        except NotFound:
            return []  # listed by the catalog, but nothing in it any more

    def read(item: tuple[str, str]) -> str | None:
        """Read one manifest (by tag or digest) of a repository unless known; its digest, or None when it is gone."""
        repository, ref = item
        with lock:
            if ref in scan.manifests:
                return ref
        try:
            raw, media_type, digest = client.get_manifest(repository, ref)
        except NotFound:
            return None  # a tag deleted, or a manifest removed, while we read
        facts = manifest_facts(raw, media_type, digest, "%s/%s:%s" % (client.registry, repository, ref))
        with lock:
            scan.manifests.setdefault(digest, facts)
        return digest

    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="oci-images-scan") as pool:
        for repository in names:
            scan.repositories[repository] = RepositoryContents()
        if storage is None:
            # The API says what a tag names only by its manifest: one read per tag.
            tag_lists = list(pool.map(tags_of, names))
            wanted = [(repository, tag) for repository, tags in zip(names, tag_lists) for tag in tags]
            for (repository, tag), digest in zip(wanted, pool.map(read, wanted)):
                if digest is not None:
                    scan.repositories[repository].tags[tag] = digest
        else:
            # The storage says what each tag names: one read per distinct manifest, from a repository that holds it.
            tag_maps = list(pool.map(storage.tags, names))
            first = {}
            for repository, tags in zip(names, tag_maps):
                for digest in tags.values():
                    first.setdefault(digest, repository)
            list(pool.map(read, [(repository, digest) for digest, repository in first.items()]))
            for repository, tags in zip(names, tag_maps):
                scan.repositories[repository].tags = {tag: digest for tag, digest in tags.items() if digest in scan.manifests}
        _read_below(pool, read, scan, [(repository, digest) for repository, contents in scan.repositories.items() for digest in contents.tags.values()])
        if storage is not None:
            for repository, revisions in zip(names, pool.map(storage.manifest_revisions, names)):
                reached = scan.reachable(scan.repositories[repository].tags.values())
                scan.repositories[repository].untagged = [digest for digest in revisions if digest not in reached]
            _read_below(pool, read, scan, [(repository, digest) for repository, contents in scan.repositories.items() for digest in contents.untagged or []])
            for contents in scan.repositories.values():
                contents.untagged = [digest for digest in contents.untagged or [] if digest in scan.manifests]
    return scan


def _read_below(pool: ThreadPoolExecutor, read, scan: RegistryScan, roots: list[tuple[str, str]]) -> None:
    """Read the manifests ``roots`` (repository, digest) name and every manifest below them that is not known yet, level by level."""
    seen: set[str] = set()
    level = roots
    while level:
        unknown, below = [], []
        for repository, digest in level:
            if digest in seen:
                continue
            seen.add(digest)
            if digest in scan.manifests:
                below.extend((repository, child) for child in scan.manifests[digest].children)
            else:
                unknown.append((repository, digest))
        for (repository, _asked), digest in zip(unknown, pool.map(read, unknown)):
            if digest is not None:
                below.extend((repository, child) for child in scan.manifests[digest].children)
        level = below


def registry_footprint(scan: RegistryScan) -> dict:
    """Totals (each manifest, config and layer once), per repository what it holds, shares and frees, per blob who holds it."""
    tagged = {name: scan.holdings(contents.tags.values()) for name, contents in scan.repositories.items()}
    untagged = {name: scan.holdings(contents.untagged) for name, contents in scan.repositories.items() if contents.untagged is not None}
    holders: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    for holdings in (tagged, untagged):
        for name, held in holdings.items():
            for digest, size in held.items():
                holders.setdefault(digest, set()).add(name)
                sizes[digest] = size
    in_a_tag = {digest for held in tagged.values() for digest in held}
    visible = len(untagged) == len(scan.repositories)

    repositories = {}
    for name in sorted(scan.repositories):
        contents, held, kept = scan.repositories[name], tagged[name], untagged.get(name)
        own = {digest for digest in (held.keys() | (kept or {}).keys()) if len(holders[digest]) == 1}
        repositories[name] = {
            "tags": len(contents.tags),
            "manifests": len(scan.reachable(contents.tags.values())),
            "size": sum(held.values()),
            "shared_bytes": sum(size for digest, size in held.items() if digest not in own),
            "freed_bytes": sum(size for digest, size in held.items() if digest in own and digest not in (kept or {})),
            "unique_bytes": sum(sizes[digest] for digest in own),
            "untagged_manifests": None if kept is None else len(scan.reachable(contents.untagged or [])),
            "untagged_bytes": None if kept is None else sum(size for digest, size in kept.items() if digest in own and digest not in held),
        }
    types = {digest: media_type for facts in scan.manifests.values() for digest, media_type in facts.blob_types.items()}
    blobs = [
        {"digest": digest, "size": sizes[digest], "media_type": types.get(digest), "repositories": sorted(holders[digest])}
        for digest in sorted((d for d in sizes if d not in scan.manifests), key=lambda d: (-sizes[d], d))
    ]
    return {
        "registry": scan.registry,
        "total_bytes": sum(sizes.values()),
        "manifest_bytes": sum(size for digest, size in sizes.items() if digest in scan.manifests),
        "shared_bytes": sum(size for digest, size in sizes.items() if len(holders[digest]) > 1),
        "untagged": {
            "visible": visible,
            "manifests": len({digest for held in untagged.values() for digest in held if digest in scan.manifests and digest not in in_a_tag})
            if visible
            else None,
            "bytes": sum(size for digest, size in sizes.items() if digest not in in_a_tag) if visible else None,
        },
        "repositories": repositories,
        "blobs": blobs,
    }
