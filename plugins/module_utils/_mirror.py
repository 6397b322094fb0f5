# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn "mirror these repositories" into the list of single-image copies the engine runs.

Two inputs give the same output: a repository with a tag selection (``tags:`` option), and a
skopeo sync YAML structure (registry keys with ``images``, ``images-by-tag-regex``,
``images-by-semver``, ``credentials``, ``tls-verify``, ``cert-dir``).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, replace

from ._errors import OCIError
from ._options import ConnectionOptions
from ._reference import ImageReference, parse_docker_name, validate_digest
from ._select import select_tags
from ._transports._table import find_transport
from ._versions import VersionRange, parse_version

# Until repository mode and sync write local trees, what a user with a local destination is told.
_LOCAL_DEST = "%s into a registry; %s is local: copy one image per task there (src with a tag or digest, dest PATH with its ref)"
SKOPEO_SYNC_KEYS = ("images", "images-by-tag-regex", "images-by-semver", "credentials", "tls-verify", "cert-dir")
# Ours, beside skopeo's: how the registry is paced.
SYNC_KEYS = (*SKOPEO_SYNC_KEYS, "requests-per-second", "max-concurrent-requests", "rate-limit-floor")


@dataclass
class CopyPair:
    """One image to copy, with the connection options of its source."""

    src: ImageReference
    dest: ImageReference
    src_options: ConnectionOptions


@dataclass
class TagSelection:
    include: list[str] | None = None
    exclude: list[str] | None = None
    semver: str | None = None
    latest: int | None = None

    @classmethod
    def from_option(cls, value: dict | None) -> TagSelection:
        value = value or {}
        unknown = set(value) - {"include", "exclude", "semver", "latest"}
        if unknown:
            raise OCIError("tags: unknown key(s) %s; use include, exclude, semver, latest" % ", ".join(sorted(unknown)))
        latest = value.get("latest")
        if latest is not None and (not isinstance(latest, int) or latest < 1):
            raise OCIError("tags.latest must be a positive number, not %r" % (latest,))
        return cls(value.get("include"), value.get("exclude"), value.get("semver"), latest)


def select_repository_tags(tags: list[str], selection: TagSelection, created_of=None) -> list[str]:
    """The tags a selection names, in the source's order.

    ``latest`` keeps the N highest versions; when none of the candidates is a version, the N most
    recently created (``created_of(tag)`` gives a sortable creation time, or None).
    """
    chosen = select_tags(tags, selection.include, selection.exclude)
    if selection.semver:
        wanted = VersionRange(selection.semver)
        chosen = [t for t in chosen if wanted.contains(t)]
    if selection.latest:
        versions = {t: parse_version(t) for t in chosen}
        versioned = [t for t in chosen if versions[t] is not None]
        if versioned:
            keep = set(sorted(versioned, key=lambda t: versions[t], reverse=True)[: selection.latest])
        elif created_of is not None:
            stamps = {t: created_of(t) or "" for t in chosen}
            keep = set(sorted(chosen, key=lambda t: stamps[t], reverse=True)[: selection.latest])
        else:
            keep = set(chosen[: selection.latest])
        chosen = [t for t in chosen if t in keep]
    return chosen


def is_repository(reference: ImageReference) -> bool:
    """A registry reference that names a repository, not an image (no tag, no digest)."""
    return reference.is_registry and not reference.has_explicit_tag_or_digest


def repository_pairs(src: ImageReference, dest: ImageReference, tags: list[str], src_options: ConnectionOptions) -> list[CopyPair]:
    """One pair per tag, carried over by name."""
    if not dest.is_registry:
        raise OCIError(_LOCAL_DEST % ("src %s/%s names a repository (no tag)" % (src.registry, src.repository), dest), str(dest))
    if dest.has_explicit_tag_or_digest:
        raise OCIError(
            "src %s/%s names a repository (no tag), so dest must name a registry repository without a tag, not %s" % (src.registry, src.repository, dest),
            str(dest),
        )
    return [CopyPair(src.with_tag(tag), dest.with_tag(tag), src_options) for tag in tags]


def _dest_for(source: ImageReference, dest_prefix: str, scoped: bool, append_suffix: str | None) -> ImageReference:
    name = "%s/%s" % (source.registry, source.repository) if scoped else posixpath.basename(source.repository or "")
    text = dest_prefix.rstrip("/") + "/" + name
    if source.tag:
        text += ":" + source.tag + (append_suffix or "")
    elif source.digest:
        text += "@" + source.digest
    registry, repository, tag, digest = parse_docker_name(text, text)
    return ImageReference("docker", registry=registry, repository=repository, tag=tag, digest=digest, text=text)


def _repository_reference(registry: str, repository: str, where: str) -> ImageReference:
    text = "%s/%s" % (registry, repository)
    host, repo, tag, digest = parse_docker_name(text, "%s: image %s" % (where, repository))
    if tag or digest:
        raise OCIError("%s: image %r must be a repository; list its tags under it" % (where, repository))
    return ImageReference("docker", registry=host, repository=repo, text=text)


def sync_pairs(
    spec: dict,
    dest: str,
    base_options: ConnectionOptions,
    list_tags,
    scoped: bool = False,
    append_suffix: str | None = None,
    on_error=None,
) -> list[CopyPair]:
    """Every image a skopeo sync YAML structure names, with the destination naming skopeo uses.

    ``list_tags(reference, options)`` lists a source repository's tags (called only for
    "all tags" and the by-regex and by-semver keys). ``dest`` is a registry prefix such as
    ``registry.example.com/mirror``; images land at ``dest/<last path component>:tag``, or at
    ``dest/<registry>/<path>:tag`` with ``scoped``.

    With ``on_error``, a repository whose tags cannot be listed is reported to it as a failed
    result entry and the others go on (``skopeo sync --keep-going``); without, the error is raised.
    """
    if not isinstance(spec, dict) or not spec:
        raise OCIError("sync: expected a mapping of registry names to their images, as skopeo sync's YAML")
    prefix, colon, _unused = dest.partition(":")
    transport = find_transport(prefix) if colon else None
    if transport is not None and not transport.is_registry:
        raise OCIError(_LOCAL_DEST % ("sync copies every image of its spec", dest), dest)
    dest_prefix = dest[len(prefix) + 3 :] if transport is not None else dest
    pairs: list[CopyPair] = []

    def tags_of(source: ImageReference, options: ConnectionOptions) -> list[str]:
        try:
            return list_tags(source, options)
        except OCIError as exc:
            if on_error is None:
                raise
            target = _dest_for(source, dest_prefix, scoped, None)
            on_error({"src": str(source), "dest": str(target), "changed": False, "failed": True, "msg": exc.msg})
            return []

    for registry, entry in spec.items():
        where = "sync: registry %s" % registry
        if not isinstance(entry, dict):
            raise OCIError("%s: expected a mapping with images, images-by-tag-regex, images-by-semver" % where)
        unknown = set(entry) - set(SYNC_KEYS)
        if unknown:
            raise OCIError("%s: unknown key(s) %s; known keys are %s" % (where, ", ".join(sorted(unknown)), ", ".join(SYNC_KEYS)))
        options = replace(base_options)
        credentials = entry.get("credentials") or {}
        if credentials:
            options.username = credentials.get("username")
            options.password = credentials.get("password")
            if options.secret_sink is not None and options.password:
                # A password in a sync YAML is free-form data to Ansible: the module masks it through the sink.
                options.secret_sink(str(options.password))
        if "tls-verify" in entry:
            options.validate_certs = bool(entry["tls-verify"])
        if entry.get("cert-dir"):
            options.cert_dir = entry["cert-dir"]
        _pacing_from_entry(entry, options, where)

        for repository, tags in (entry.get("images") or {}).items():
            source = _repository_reference(registry, repository, where)
            if not tags:
                tags = tags_of(source, options)
            for tag in tags:
                tag = str(tag)
                if tag.startswith("sha256:"):
                    image = source.with_digest(validate_digest(tag, where))
                else:
                    image = source.with_tag(tag)
                pairs.append(CopyPair(image, _dest_for(image, dest_prefix, scoped, append_suffix), options))
        for repository, pattern in (entry.get("images-by-tag-regex") or {}).items():
            source = _repository_reference(registry, repository, where)
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise OCIError("%s: images-by-tag-regex for %s: %r is not a valid regular expression (%s)" % (where, repository, pattern, exc)) from None
            for tag in tags_of(source, options):
                if compiled.search(tag):  # skopeo's meaning: unanchored
                    image = source.with_tag(tag)
                    pairs.append(CopyPair(image, _dest_for(image, dest_prefix, scoped, append_suffix), options))
        for repository, text in (entry.get("images-by-semver") or {}).items():
            source = _repository_reference(registry, repository, where)
            wanted = VersionRange(str(text))
            for tag in tags_of(source, options):
                if wanted.contains(tag):
                    image = source.with_tag(tag)
                    pairs.append(CopyPair(image, _dest_for(image, dest_prefix, scoped, append_suffix), options))
    return pairs


def _pacing_from_entry(entry: dict, options: ConnectionOptions, where: str) -> None:
    """A sync spec registry's own pacing (keys of ours, beside skopeo's): requests per second, concurrency, quota floor."""
    for key, attribute, kind, least in (
        ("requests-per-second", "requests_per_second", float, 0.0),
        ("max-concurrent-requests", "max_concurrent_requests", int, 1),
        ("rate-limit-floor", "rate_limit_floor", int, 0),
    ):
        if key not in entry:
            continue
        value = entry[key]
        try:
            number = kind(value)
        except (TypeError, ValueError):
            number = None
        if number is None or isinstance(value, bool) or number < least or (kind is float and number == 0):
            raise OCIError("%s: %s must be a number%s, not %r" % (where, key, " above 0" if kind is float else " of at least %d" % least, value))
        setattr(options, attribute, number)


def read_sync_file(path: str) -> dict:
    """A skopeo sync YAML file, read as a mapping."""
    import yaml

    try:
        with open(path) as handle:
            spec = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise OCIError("sync_file %s cannot be read as skopeo sync YAML: %s" % (path, exc), path) from None
    return spec


def slice_pairs(pairs: list[CopyPair], index: int, count: int) -> list[CopyPair]:
    """The pairs whose stable hash of "src -> dest" modulo ``count`` is ``index``.

    Every worker of a sliced mirror computes the same hash, so each image falls to exactly one of them.
    """
    if count < 1 or not 0 <= index < count:
        raise OCIError("slice: index must be in 0..count-1 and count at least 1, not index=%r count=%r" % (index, count))
    return [p for p in pairs if int(hashlib.sha256(("%s -> %s" % (p.src, p.dest)).encode("utf-8")).hexdigest(), 16) % count == index]
