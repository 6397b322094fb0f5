# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse skopeo-style image references ("transport:rest") into ImageReference.

The grammar of names, tags and digests follows the distribution reference
grammar; Docker Hub normalization follows Docker's (``fedora`` is
``docker.io/library/fedora:latest``). A string without a known transport
prefix is a registry reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ._errors import InvalidReference

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

TRANSPORTS = (
    "docker",
    "dir",
    "oci",
    "oci-archive",
    "docker-archive",
    "docker-daemon",
    "containers-storage",
)
REGISTRY_TRANSPORT = "docker"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = r"(?:" + _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*|" + _IPV6 + r")(?::[0-9]+)?"

PATH_RE = re.compile(r"^" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*$")
DOMAIN_RE = re.compile(r"^" + _DOMAIN + r"$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
# OCI image-layout "org.opencontainers.image.ref.name" grammar.
OCI_REF_RE = re.compile(r"^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$")
_IMAGE_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{64}$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def validate_digest(digest: str, context: str = "") -> str:
    """Return the digest if it is ``algorithm:hex`` with a known algorithm and the right length."""
    where = " in %s" % context if context else ""
    if not DIGEST_RE.match(digest or ""):
        raise InvalidReference("invalid digest %r%s: expected sha256:<64 hex characters>" % (digest, where), context or None)
    algorithm, _unused, encoded = digest.partition(":")
    expected = _DIGEST_HEX.get(algorithm)
    if expected is None:
        raise InvalidReference("unsupported digest algorithm %r%s: use sha256, sha384 or sha512" % (algorithm, where), context or None)
    if len(encoded) != expected or not re.match(r"^[a-f0-9]+$", encoded):
        raise InvalidReference("invalid digest %r%s: %s needs %d lowercase hex characters" % (digest, where, algorithm, expected), context or None)
    return digest


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference. Fields that do not apply to the transport are None."""

    transport: str
    # registry-style name (docker, docker-daemon, containers-storage, docker-archive tag)
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    # local transports
    path: str | None = None
    ref_name: str | None = None  # oci / oci-archive image ref inside the layout
    source_index: int | None = None  # docker-archive "@N"
    store: str | None = None  # containers-storage "[driver@root+runroot:options]"
    image_id: str | None = None  # docker-daemon / containers-storage image ID
    text: str = ""

    @property
    def name(self) -> str | None:
        """``registry/repository`` (e.g. ``docker.io/library/fedora``), or None without a name."""
        if self.repository is None:
            return None
        return "%s/%s" % (self.registry, self.repository)

    @property
    def tag_or_default(self) -> str | None:
        """The tag, or ``latest`` when the reference names neither tag nor digest."""
        if self.tag is None and self.digest is None and self.repository is not None:
            return DEFAULT_TAG
        return self.tag

    @property
    def has_explicit_tag_or_digest(self) -> bool:
        return self.tag is not None or self.digest is not None

    @property
    def is_registry(self) -> bool:
        return self.transport == REGISTRY_TRANSPORT

    @property
    def manifest_reference(self) -> str:
        """What goes after ``/manifests/`` for a registry reference: the digest, else the tag."""
        return self.digest or self.tag_or_default or DEFAULT_TAG

    @property
    def docker_reference(self) -> str | None:
        """The normalized ``registry/repo:tag`` or ``registry/repo@digest`` form."""
        if self.repository is None:
            return None
        if self.digest:
            if self.tag:
                return "%s:%s@%s" % (self.name, self.tag, self.digest)
            return "%s@%s" % (self.name, self.digest)
        return "%s:%s" % (self.name, self.tag_or_default)

    def with_digest(self, digest: str) -> ImageReference:
        """The same repository pinned to a digest (tag dropped)."""
        return replace(self, tag=None, digest=digest)

    def with_tag(self, tag: str) -> ImageReference:
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        t = self.transport
        if t == "docker":
            return "docker://%s" % self.docker_reference
        if t == "dir":
            return "dir:%s" % self.path
        if t in ("oci", "oci-archive"):
            return "%s:%s%s" % (t, self.path, ":" + self.ref_name if self.ref_name else "")
        if t == "docker-archive":
            suffix = ""
            if self.repository is not None:
                suffix = ":" + (self.docker_reference or "")
            elif self.source_index is not None:
                suffix = ":@%d" % self.source_index
            return "docker-archive:%s%s" % (self.path, suffix)
        if t == "docker-daemon":
            return "docker-daemon:%s" % (self.docker_reference or self.image_id)
        if t == "containers-storage":
            store = "[%s]" % self.store if self.store else ""
            return "containers-storage:%s%s" % (store, self.docker_reference or ("@" + (self.image_id or "")))
        return self.text


def parse_docker_name(text: str, context: str | None = None) -> tuple[str, str, str | None, str | None]:
    """Split and normalize ``[host/]path[:tag][@digest]`` into (registry, repository, tag, digest)."""
    ctx = context or text
    if not text:
        raise InvalidReference("empty image name in %r: give a name such as registry.example.com/team/app:1.0" % ctx, ctx)
    name = text
    digest = None
    if "@" in name:
        name, _unused, digest = name.partition("@")
        validate_digest(digest, ctx)
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not TAG_RE.match(tag):
            raise InvalidReference("invalid tag %r in %r: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'" % (tag, ctx), ctx)
    if tag is not None and digest is not None:
        raise InvalidReference("%r has both a tag and a digest: give one of them (name:tag or name@sha256:...)" % ctx, ctx)
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        registry, repository = first, rest
        if not DOMAIN_RE.match(registry):
            raise InvalidReference("invalid registry host %r in %r" % (registry, ctx), ctx)
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = "library/" + repository
    if not repository:
        raise InvalidReference("missing repository name in %r" % ctx, ctx)
    if repository.lower() != repository and PATH_RE.match(repository.lower()):
        raise InvalidReference("repository name %r in %r must be lowercase" % (repository, ctx), ctx)
    if not PATH_RE.match(repository):
        raise InvalidReference(
            "invalid repository name %r in %r: use lowercase letters, digits and separators (., _, __, -) between '/'-separated parts" % (repository, ctx),
            ctx,
        )
    if len(registry) + 1 + len(repository) > NAME_TOTAL_MAX:
        raise InvalidReference("image name in %r is longer than %d characters" % (ctx, NAME_TOTAL_MAX), ctx)
    return registry, repository, tag, digest


def _split_path(rest: str, transport: str, text: str) -> tuple[str, str | None]:
    # Like skopeo on Linux: the path ends at the first ':'.
    path, sep, extra = rest.partition(":")
    if not path:
        raise InvalidReference("%s reference %r has an empty path: give %s:/path/to/it" % (transport, text, transport), text)
    return path, (extra if sep else None)


def _parse_docker(rest: str, text: str) -> ImageReference:
    if not rest.startswith("//"):
        raise InvalidReference("docker reference %r must begin with docker:// (e.g. docker://registry.example.com/app:1.0)" % text, text)
    registry, repository, tag, digest = parse_docker_name(rest[2:], text)
    return ImageReference("docker", registry=registry, repository=repository, tag=tag, digest=digest, text=text)


def _parse_dir(rest: str, text: str) -> ImageReference:
    if not rest:
        raise InvalidReference("dir reference %r has an empty path: give dir:/path/to/directory" % text, text)
    return ImageReference("dir", path=rest, text=text)


def _parse_oci(rest: str, text: str, transport: str) -> ImageReference:
    path, ref = _split_path(rest, transport, text)
    if ref is not None and ref != "" and not OCI_REF_RE.match(ref):
        raise InvalidReference("invalid image reference %r in %r: use letters, digits, '.', '_', '-', ':', '@', '+' and '/'" % (ref, text), text)
    return ImageReference(transport, path=path, ref_name=ref or None, text=text)


def _parse_docker_archive(rest: str, text: str) -> ImageReference:
    path, extra = _split_path(rest, "docker-archive", text)
    if not extra:
        return ImageReference("docker-archive", path=path, text=text)
    if extra.startswith("@"):
        try:
            index = int(extra[1:])
        except ValueError:
            index = -1
        if index < 0:
            raise InvalidReference("invalid source index %r in %r: use @0, @1, ..." % (extra, text), text)
        return ImageReference("docker-archive", path=path, source_index=index, text=text)
    registry, repository, tag, digest = parse_docker_name(extra, text)
    if digest:
        raise InvalidReference("docker-archive reference %r may not use a digest: use name:tag" % text, text)
    return ImageReference("docker-archive", path=path, registry=registry, repository=repository, tag=tag, text=text)


def _parse_docker_daemon(rest: str, text: str) -> ImageReference:
    if not rest:
        raise InvalidReference("docker-daemon reference %r is empty: give docker-daemon:name:tag" % text, text)
    if _IMAGE_ID_RE.match(rest):
        image_id = rest if rest.startswith("sha256:") else "sha256:" + rest
        return ImageReference("docker-daemon", image_id=image_id, text=text)
    if rest.startswith("sha256:"):
        validate_digest(rest, text)
    registry, repository, tag, digest = parse_docker_name(rest, text)
    if digest:
        raise InvalidReference("docker-daemon reference %r may not use a digest: use name:tag or the image ID" % text, text)
    return ImageReference("docker-daemon", registry=registry, repository=repository, tag=tag, text=text)


def _parse_containers_storage(rest: str, text: str) -> ImageReference:
    store = None
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise InvalidReference("store specifier in %r is missing its closing ']'" % text, text)
        store, rest = rest[1:end], rest[end + 1 :]
        if not store:
            raise InvalidReference("empty store specifier in %r: use [driver@root+runroot:options]" % text, text)
    if not rest:
        raise InvalidReference("containers-storage reference %r names no image" % text, text)
    if rest.startswith("@"):
        image_id = rest[1:]
        if not re.match(r"^[a-f0-9]{64}$", image_id):
            raise InvalidReference("invalid image ID %r in %r: need 64 lowercase hex characters" % (image_id, text), text)
        return ImageReference("containers-storage", store=store, image_id="sha256:" + image_id, text=text)
    if _IMAGE_ID_RE.match(rest) and not rest.startswith("sha256:"):
        return ImageReference("containers-storage", store=store, image_id="sha256:" + rest, text=text)
    name, at, id_part = rest.partition("@")
    if at and re.match(r"^[a-f0-9]{64}$", id_part):
        # name@imageid form
        registry, repository, tag, _unused = parse_docker_name(name, text)
        return ImageReference("containers-storage", store=store, registry=registry, repository=repository, tag=tag, image_id="sha256:" + id_part, text=text)
    registry, repository, tag, digest = parse_docker_name(rest, text)
    return ImageReference("containers-storage", store=store, registry=registry, repository=repository, tag=tag, digest=digest, text=text)


def parse_reference(text: str) -> ImageReference:
    """Parse ``transport:rest``; a string with no known transport prefix is a registry (docker://) reference."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("empty image reference: give one such as docker://registry.example.com/app:1.0 or oci:/path:tag", "")
    if text != text.strip():
        raise InvalidReference("image reference %r has leading or trailing white space" % text, text)
    for transport in sorted(TRANSPORTS, key=len, reverse=True):
        if text.startswith(transport + ":"):
            rest = text[len(transport) + 1 :]
            if transport == "docker":
                return _parse_docker(rest, text)
            if transport == "dir":
                return _parse_dir(rest, text)
            if transport in ("oci", "oci-archive"):
                return _parse_oci(rest, text, transport)
            if transport == "docker-archive":
                return _parse_docker_archive(rest, text)
            if transport == "docker-daemon":
                return _parse_docker_daemon(rest, text)
            return _parse_containers_storage(rest, text)
    scheme = _SCHEME_RE.match(text)
    if scheme:
        raise InvalidReference("unknown transport %r in %r: use one of %s" % (scheme.group(1), text, ", ".join(t + ":" for t in TRANSPORTS)), text)
    registry, repository, tag, digest = parse_docker_name(text, text)
    return ImageReference("docker", registry=registry, repository=repository, tag=tag, digest=digest, text=text)
