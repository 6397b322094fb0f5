# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn "mirror these repositories" into the list of single-image copies the engine runs.

Three inputs give the same output: a repository with a tag selection (``tags:`` option), a
skopeo sync YAML structure (registry keys with ``images``, ``images-by-tag-regex``,
``images-by-semver``, ``credentials``, ``tls-verify``, ``cert-dir``), and a local place holding
many images (a ``dir:`` tree as ``skopeo sync --dest dir`` writes it, a bundle).

Where each image lands (``MirrorTarget``): under a registry prefix, in a ``dir:`` tree (one
directory per image, named as skopeo sync names it), or in a bundle (one layout, each image
named by its full reference); see docs/air-gap.md.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, replace

from ._errors import OCIError
from ._options import ConnectionOptions
from ._reference import ImageReference, parse_docker_name, split_name, validate_digest
from ._select import select_tags
from ._transports._table import find_transport, registry_transport, transport_named
from ._versions import VersionRange, parse_version

SKOPEO_SYNC_KEYS = ("images", "images-by-tag-regex", "images-by-semver", "credentials", "tls-verify", "cert-dir")
# Ours, beside skopeo's: how the registry is paced.
SYNC_KEYS = (*SKOPEO_SYNC_KEYS, "requests-per-second", "max-concurrent-requests", "rate-limit-floor")


@dataclass
class CopyPair:
    """One image to copy, with the connection options of its source."""

    src: ImageReference
    dest: ImageReference
    src_options: ConnectionOptions
    #: The image's name in the local tree or bundle it is read from (what an inventory records).
    name: str | None = None


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


@dataclass
class MirrorTarget:
    """Where the images of a repository mode or sync task land: under a registry prefix, or in a local place of many
    images (a ``dir:`` tree, a bundle), as the transport's ``holds_many`` says."""

    text: str
    prefix: str = ""  # registry prefix, when ``place`` is None
    place: ImageReference | None = None

    @classmethod
    def parse(cls, dest: str, why: str) -> MirrorTarget:
        """A sync destination as given: ``registry/prefix``, ``docker://registry/prefix``, ``dir:PATH``, ``oci:PATH``."""
        transport_name, colon, _unused = dest.partition(":")
        transport = find_transport(transport_name) if colon else None
        if transport is None or transport.is_registry:
            return cls(dest, prefix=dest[len(transport_name) + 3 :] if transport is not None else dest)
        from ._reference import parse_reference

        return cls.local(parse_reference(dest), why)

    @classmethod
    def local(cls, reference: ImageReference, why: str) -> MirrorTarget:
        transport = transport_named(reference.transport)
        if not transport.holds_many:
            transport.image_in(reference, "")  # raises: says which transports hold many images
        if reference.ref_name or reference.tag or reference.digest:
            raise OCIError("%s, so dest must name a whole %s without an image name: %s" % (why, transport.holds_many, reference), str(reference))
        return cls(str(reference), place=reference)

    @property
    def is_bundle(self) -> bool:
        return self.place is not None and transport_named(self.place.transport).holds_many == "bundle"

    def image(self, base: str, ending: str, scoped: bool, append_suffix: str | None = None) -> ImageReference:
        """Where the image ``base`` + ``ending`` lands (``base`` is ``registry/repository`` or a tree's relative path,
        ``ending`` is ``:tag`` or ``@digest``): the last path component of ``base`` (all of it with ``scoped``) under the
        prefix or tree, like skopeo sync; in a bundle always the full name."""
        name = base if scoped or self.is_bundle else posixpath.basename(base)
        if ending.startswith(":"):
            ending += append_suffix or ""
        if self.place is not None:
            return transport_named(self.place.transport).image_in(self.place, name + ending)
        text = self.prefix.rstrip("/") + "/" + name + ending
        registry, repository, tag, digest = parse_docker_name(text, text)
        return ImageReference(registry_transport().name, registry=registry, repository=repository, tag=tag, digest=digest, text=text)


def repository_pairs(
    src: ImageReference, dest: ImageReference, tags: list[str], src_options: ConnectionOptions, scoped: bool = False, append_suffix: str | None = None
) -> list[CopyPair]:
    """One pair per tag: into a registry repository under the same names, or into a local tree or bundle as skopeo sync names them."""
    why = "src %s/%s names a repository (no tag)" % (src.registry, src.repository)
    if not dest.is_registry:
        target = MirrorTarget.local(dest, why)
        return [CopyPair(src.with_tag(tag), target.image(src.name or "", ":" + tag, scoped, append_suffix), src_options) for tag in tags]
    if dest.has_explicit_tag_or_digest:
        raise OCIError("%s, so dest must name a registry repository without a tag, not %s" % (why, dest), str(dest))
    return [CopyPair(src.with_tag(tag), dest.with_tag(tag), src_options) for tag in tags]


def local_pairs(
    images: list[tuple[str, ImageReference]],
    src: ImageReference,
    dest: ImageReference,
    src_options: ConnectionOptions,
    scoped: bool = False,
    append_suffix: str | None = None,
) -> list[CopyPair]:
    """The images of a local tree or bundle (``images``: name, reference), each to where skopeo sync --src dir would put it."""
    why = "src %s holds many images" % src
    if dest.is_registry:
        if dest.has_explicit_tag_or_digest:
            raise OCIError("%s, so dest must name a registry prefix without a tag, not %s" % (why, dest), str(dest))
        target = MirrorTarget(str(dest), prefix=dest.name or "")
    else:
        target = MirrorTarget.local(dest, why)
    return [CopyPair(reference, target.image(*split_name(name), scoped, append_suffix), src_options, name) for name, reference in images]


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
    local: LocalImages | None = None,
) -> list[CopyPair]:
    """Every image a skopeo sync YAML structure names, with the destination naming skopeo uses.

    With ``local`` (the images of a tree or bundle an export of the same spec wrote), each image is read from there
    instead of its registry, and tags are listed from there.

    ``list_tags(reference, options)`` lists a source repository's tags (called only for
    "all tags" and the by-regex and by-semver keys). ``dest`` is a registry prefix such as
    ``registry.example.com/mirror``; images land at ``dest/<last path component>:tag``, or at
    ``dest/<registry>/<path>:tag`` with ``scoped``.

    With ``on_error``, a repository whose tags cannot be listed is reported to it as a failed
    result entry and the others go on (``skopeo sync --keep-going``); without, the error is raised.
    """
    if not isinstance(spec, dict) or not spec:
        raise OCIError("sync: expected a mapping of registry names to their images, as skopeo sync's YAML")
    target = MirrorTarget.parse(dest, "sync copies every image of its spec")
    pairs: list[CopyPair] = []

    def _dest_for(image: ImageReference, append_suffix: str | None) -> ImageReference:
        ending = "@" + image.digest if image.digest else (":" + image.tag if image.tag else "")
        return target.image(image.name or "", ending, scoped, append_suffix)

    def tags_of(source: ImageReference, options: ConnectionOptions) -> list[str]:
        try:
            if local is not None:
                return local.tags(source)
            return list_tags(source, options)
        except OCIError as exc:
            if on_error is None:
                raise
            target = _dest_for(source, None)
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
                pairs.append(_pair(image, _dest_for(image, append_suffix), options, local))
        for repository, pattern in (entry.get("images-by-tag-regex") or {}).items():
            source = _repository_reference(registry, repository, where)
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise OCIError("%s: images-by-tag-regex for %s: %r is not a valid regular expression (%s)" % (where, repository, pattern, exc)) from None
            for tag in tags_of(source, options):
                if compiled.search(tag):  # skopeo's meaning: unanchored
                    image = source.with_tag(tag)
                    pairs.append(_pair(image, _dest_for(image, append_suffix), options, local))
        for repository, text in (entry.get("images-by-semver") or {}).items():
            source = _repository_reference(registry, repository, where)
            wanted = VersionRange(str(text))
            for tag in tags_of(source, options):
                if wanted.contains(tag):
                    image = source.with_tag(tag)
                    pairs.append(_pair(image, _dest_for(image, append_suffix), options, local))
    return pairs


class LocalImages:
    """The images of a local tree or bundle, found by the names an export of a sync spec gave them."""

    def __init__(self, place: ImageReference, images: list[tuple[str, ImageReference]], scoped: bool):
        self.place = place
        self.images = dict(images)
        self.full = scoped or MirrorTarget.local(place, "src %s" % place).is_bundle

    def name_of(self, image: ImageReference) -> str:
        """The name the export gave ``image``: its full name in a bundle (or scoped tree), else the last path component."""
        base = (image.name or "") if self.full else posixpath.basename(image.name or "")
        return base + ("@" + image.digest if image.digest else ":" + (image.tag or ""))

    def tags(self, repository: ImageReference) -> list[str]:
        base = split_name(self.name_of(repository.with_tag("x")))[0]
        return [ending[1:] for base_name, ending in (split_name(n) for n in self.images) if base_name == base and ending.startswith(":")]

    def reference(self, image: ImageReference) -> ImageReference:
        name = self.name_of(image)
        if name not in self.images:
            raise OCIError(
                "%s is not in %s (it holds %d images); export it again with this spec, or leave it out" % (name, self.place, len(self.images)),
                str(self.place),
            )
        return self.images[name]


def _pair(image: ImageReference, dest: ImageReference, options: ConnectionOptions, local: LocalImages | None) -> CopyPair:
    if local is None:
        return CopyPair(image, dest, options)
    return CopyPair(local.reference(image), dest, options, local.name_of(image))


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
