# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Size accounting over the tags of a repository: each blob counted once, shared versus unique.

``scan_tags`` reads every tag's manifest (and, for an index, its children) once; ``footprint``
and ``freed_bytes`` are then pure arithmetic over that scan. The blobs counted are configs and
layers; manifests themselves (a few hundred bytes each) are not.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable

from . import _media
from ._errors import NotFound, Unsupported
from ._inspect import names_repository, repository_reference
from ._prune import parse_created
from ._reference import ImageReference
from ._transports._base import ImageSource

# Manifest reads run this many at a time against a registry; enough to hide round trips, few enough to be polite.
SCAN_PARALLEL = 4

# (raw, media type, digest) of the manifest a tag names.
TagReader = Callable[[str], "tuple[bytes, str, str]"]
# (raw, media type) of a manifest by digest.
DigestReader = Callable[[str], "tuple[bytes, str]"]


@dataclass
class ManifestFacts:
    """One manifest: its own blobs (config and layers) or, for an index, its children."""

    digest: str
    media_type: str
    size: int
    blobs: dict[str, int] = field(default_factory=dict)
    blob_types: dict[str, str] = field(default_factory=dict)
    children: tuple[str, ...] = ()
    config_digest: str | None = None
    config_size: int | None = None
    created: str | None = None


@dataclass
class RepositoryScan:
    """Tags (tag -> manifest digest) and every manifest reachable from them, by digest."""

    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, ManifestFacts] = field(default_factory=dict)

    def blobs_of(self, digest: str) -> dict[str, int]:
        """Every config and layer blob (digest -> size) a manifest uses, through an index's children too."""
        found: dict[str, int] = {}
        pending, seen = [digest], set()
        while pending:
            current = pending.pop()
            if current in seen or current not in self.manifests:
                continue
            seen.add(current)
            facts = self.manifests[current]
            found.update(facts.blobs)
            pending.extend(facts.children)
        return found

    def descendants(self, digest: str) -> set[str]:
        """Manifest digests inside an index (recursively), not counting the index itself."""
        found: set[str] = set()
        pending = list(self.manifests[digest].children) if digest in self.manifests else []
        while pending:
            current = pending.pop()
            if current in found:
                continue
            found.add(current)
            if current in self.manifests:
                pending.extend(self.manifests[current].children)
        return found

    def blob_type(self, digest: str) -> str | None:
        for facts in self.manifests.values():
            if digest in facts.blob_types:
                return facts.blob_types[digest]
        return None

    def created_of(self, digest: str) -> str | None:
        """Creation time of an image; for an index, the newest of its images'."""
        facts = self.manifests.get(digest)
        if facts is None:
            return None
        if not facts.children:
            return facts.created
        times = [self.manifests[c].created for c in self.descendants(digest) if c in self.manifests and self.manifests[c].created]
        return max(times, key=_sortable_time) if times else None


def _sortable_time(text: str):
    parsed = parse_created(text)
    return parsed.timestamp() if parsed else float("-inf")


def manifest_facts(raw: bytes, media_type: str, digest: str, context: str) -> ManifestFacts:
    """What one manifest uses, from its bytes."""
    doc, media_type = _media.parse_manifest(raw, media_type, context)
    facts = ManifestFacts(digest=digest, media_type=media_type, size=len(raw))
    if _media.is_index(media_type):
        facts.children = tuple(d["digest"] for d in doc.get("manifests") or [] if isinstance(d, dict) and d.get("digest"))
        return facts
    if media_type in (_media.DOCKER_V2S1, _media.DOCKER_V2S1_SIGNED):
        # Schema 1 records no sizes: its layers count as 0 bytes.
        for layer in _media.v2s1_image(doc)["layers"]:
            facts.blobs[layer["digest"]] = 0
        return facts
    config = doc.get("config") or {}
    if config.get("digest"):
        facts.config_digest = config["digest"]
        facts.config_size = int(config.get("size") or 0)
        facts.blobs[config["digest"]] = facts.config_size
        facts.blob_types[config["digest"]] = config.get("mediaType") or ""
    for layer in doc.get("layers") or []:
        if isinstance(layer, dict) and layer.get("digest"):
            facts.blobs[layer["digest"]] = int(layer.get("size") or 0)
            facts.blob_types[layer["digest"]] = layer.get("mediaType") or ""
    if config.get("mediaType") not in (_media.OCI_CONFIG, _media.DOCKER_CONFIG):
        # An artifact: its creation time, when it has one, is an annotation.
        facts.created = (doc.get("annotations") or {}).get("org.opencontainers.image.created")
    return facts


def scan_tags(
    tags: Iterable[str],
    read_tag: TagReader,
    read_digest: DigestReader,
    read_config: Callable[[str, int | None], bytes] | None = None,
    extra_digests: Iterable[str] = (),
    context: str = "",
    parallel: int = SCAN_PARALLEL,
) -> RepositoryScan:
    """Read every tag's manifest (a tag that vanished meanwhile is skipped), every index child, and with ``read_config`` the creation times."""
    scan = RepositoryScan()
    tags = list(tags)

    def one_tag(tag: str):
        try:
            return tag, read_tag(tag)
        except NotFound:
            return tag, None

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(tags) or 1))) as pool:
        for tag, found in pool.map(one_tag, tags):
            if found is None:
                continue
            raw, media_type, digest = found
            scan.tags[tag] = digest
            if digest not in scan.manifests:
                scan.manifests[digest] = manifest_facts(raw, media_type, digest, "%s:%s" % (context, tag))

    pending = [c for facts in list(scan.manifests.values()) for c in facts.children] + list(extra_digests)
    while pending:
        digest = pending.pop()
        if digest in scan.manifests:
            continue
        try:
            raw, media_type = read_digest(digest)
        except NotFound:
            continue
        facts = manifest_facts(raw, media_type, digest, "%s@%s" % (context, digest))
        scan.manifests[digest] = facts
        pending.extend(facts.children)

    if read_config is not None:
        with_config = [f for f in scan.manifests.values() if f.config_digest and f.created is None]
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(with_config) or 1))) as pool:
            for facts, created in zip(with_config, pool.map(lambda f: _created(read_config, f, context), with_config)):
                facts.created = created
    return scan


def _created(read_config: Callable[[str, int | None], bytes], facts: ManifestFacts, context: str) -> str | None:
    if facts.blob_types.get(facts.config_digest or "") not in (_media.OCI_CONFIG, _media.DOCKER_CONFIG):
        return None
    try:
        config = _media.parse_config(read_config(facts.config_digest or "", facts.config_size), context)
    except NotFound:
        return None
    created = config.get("created")
    return created if isinstance(created, str) else None


def scan_source(source: ImageSource, tags: Iterable[str] | None = None, with_created: bool = False, extra_digests: Iterable[str] = ()) -> RepositoryScan:
    """Scan the tags of the repository (or OCI layout) ``source`` belongs to; all tags when ``tags`` is None."""
    if not source.can_list_tags:
        raise Unsupported("%s: sizes across tags need a registry repository or an OCI layout" % source.reference, str(source.reference))
    tag_list = source.list_tags() if tags is None else list(tags)
    read_config = source.get_blob_bytes if with_created else None
    return scan_tags(
        tag_list,
        source.read_tag,
        source.get_manifest,
        read_config=read_config,
        extra_digests=extra_digests,
        context=str(source.reference),
    )


def reference_footprint(source: ImageSource) -> tuple[dict, bool]:
    """(footprint, whole repository?) for what ``source`` names: every tag when its reference has no tag, digest or ref."""
    reference = source.reference
    if names_repository(source):
        try:
            tags = source.list_tags()
        except NotFound:
            tags = []
        return footprint(scan_source(source, tags)), True
    if reference.digest:
        scan = scan_source(source, [], extra_digests=[reference.digest])
        if reference.digest in scan.manifests:
            scan.tags[reference.digest] = reference.digest
        return footprint(scan), False
    return footprint(scan_source(source, [reference.tag or reference.ref_name or ""])), False


def references_footprint(sources: Iterable[ImageSource]) -> tuple[dict, list[str]]:
    """The footprint of several references (any repositories, registries or layouts), keyed by image reference, and those that name nothing.

    A reference to a repository or layout as a whole (no tag, digest or ref) stands for every tag of it, each
    keyed by its own reference (``docker://host/repo:TAG``, ``oci:/path:REF``). A blob counts once however many
    of the images use it, wherever they are stored: this is the space the set takes, not what each place stores.
    """
    scan = RepositoryScan()
    missing: list[str] = []
    for source in sources:
        if names_repository(source):
            found = _add_repository(scan, source)
            if not found:
                missing.append(repository_reference(source.reference))
        elif not _add_image(scan, source, str(source.reference)):
            missing.append(str(source.reference))
    return footprint(scan), missing


def _add_repository(scan: RepositoryScan, source: ImageSource) -> bool:
    """Add every tag of the repository or layout ``source`` names to ``scan``; False when it has none."""
    try:
        tags = source.list_tags()
    except NotFound:
        return False
    if not tags:
        # No tags, but a layout may hold one unnamed image, which oci:PATH names (as skopeo reads it).
        return _add_image(scan, source, str(source.reference))
    found = scan_source(source, tags)
    for tag, digest in found.tags.items():
        scan.tags[_tagged(source.reference, tag)] = digest
    scan.manifests.update(found.manifests)
    return bool(found.tags)


def _tagged(reference: ImageReference, tag: str) -> str:
    """The reference to one tag of a repository (``docker://host/repo:TAG``) or ref of a layout (``oci:/path:REF``)."""
    if reference.is_registry:
        return str(reference.with_tag(tag))
    return str(replace(reference, ref_name=tag))


def _add_image(scan: RepositoryScan, source: ImageSource, name: str) -> bool:
    """Add the one image (or index, with its images) ``source`` names to ``scan`` under ``name``; False when it is not there."""
    try:
        raw, media_type = source.get_manifest()
    except NotFound:
        return False
    digest = source.manifest_digest(raw)
    scan.tags[name] = digest
    pending = [(digest, raw, media_type)]
    while pending:
        current, current_raw, current_type = pending.pop()
        if current in scan.manifests:
            continue
        facts = manifest_facts(current_raw, current_type, current, name)
        scan.manifests[current] = facts
        for child in facts.children:
            if child not in scan.manifests:
                child_raw, child_type = source.get_manifest(child)
                pending.append((child, child_raw, child_type))
    return True


def footprint(scan: RepositoryScan) -> dict:
    """``total_bytes`` (each blob once), ``shared_bytes`` (blobs used by 2+ tags), per tag ``size``/``unique_bytes``, per blob ``tags_using``."""
    per_tag = {tag: scan.blobs_of(digest) for tag, digest in scan.tags.items()}
    users: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for blobs in per_tag.values():
        for digest, size in blobs.items():
            users[digest] = users.get(digest, 0) + 1
            sizes[digest] = size
    tags = {
        tag: {
            "digest": scan.tags[tag],
            "size": sum(blobs.values()),
            "unique_bytes": sum(size for digest, size in blobs.items() if users[digest] == 1),
        }
        for tag, blobs in sorted(per_tag.items())
    }
    layers = [
        {"digest": digest, "size": sizes[digest], "media_type": scan.blob_type(digest), "tags_using": users[digest]}
        for digest in sorted(sizes, key=lambda d: (-sizes[d], d))
    ]
    return {
        "total_bytes": sum(sizes.values()),
        "shared_bytes": sum(size for digest, size in sizes.items() if users[digest] > 1),
        "tags": tags,
        "layers": layers,
    }


def freed_bytes(scan: RepositoryScan, deleted_tags: Iterable[str], deleted_digests: Iterable[str] = ()) -> int:
    """Bytes of blobs used by the deleted tags (and manifests) and by nothing that stays: what garbage collection reclaims."""
    deleted_tags = set(deleted_tags)
    deleted_digests = set(deleted_digests)
    gone_manifests = {scan.tags[t] for t in deleted_tags if t in scan.tags} | set(deleted_digests)
    staying: dict[str, int] = {}
    for tag, digest in scan.tags.items():
        if tag not in deleted_tags and digest not in deleted_digests:
            staying.update(scan.blobs_of(digest))
    gone: dict[str, int] = {}
    for digest in gone_manifests:
        gone.update(scan.blobs_of(digest))
    return sum(size for digest, size in gone.items() if digest not in staying)
