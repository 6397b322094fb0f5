# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references: ``transport:rest`` split here, the rest parsed by the transport the table names.

ImageReference holds the parts every transport may use. The grammar of names, tags and
digests shared by the registry-style transports follows the distribution reference grammar;
Docker Hub normalization follows Docker's (``fedora`` is ``docker.io/library/fedora:latest``).
A string without a known transport prefix is a registry reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ._errors import InvalidReference
from ._transports._table import find_transport, registry_transport, transport_named, transports

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255


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
# An image ID as engines print it, with or without the algorithm.
IMAGE_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{64}$")
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
    # One image of a local place of many images (a dir: tree, a bundle; see docs/air-gap.md), written by repository
    # mode or sync: a tree creates its directories, a bundle keeps manifests byte for byte.
    member: bool = False
    text: str = ""
    # A registry name written without registry and without transport (``fedora``, ``team/app``), as written
    # (no tag, no digest): registries.conf may resolve it through aliases and search registries.
    short_name: str | None = None

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
        """True when the reference names an image in a registry repository."""
        return transport_named(self.transport).is_registry

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
        return transport_named(self.transport).format(self)


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


def split_name(name: str) -> tuple[str, str]:
    """``team/app:1.0`` -> (``team/app``, ``:1.0``); ``app@sha256:..`` -> (``app``, ``@sha256:..``); no ending -> (name, "")."""
    at = name.find("@")
    if at >= 0:
        return name[:at], name[at:]
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon:]
    return name, ""


def short_name_of(name: str) -> str | None:
    """``name`` without tag or digest when it names no registry (podman's short names), else None."""
    bare = name.partition("@")[0]
    slash, colon = bare.rfind("/"), bare.rfind(":")
    if colon > slash:
        bare = bare[:colon]
    first, sep, _rest = bare.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return None
    return bare


def split_path(rest: str, transport: str, text: str) -> tuple[str, str | None]:
    """``PATH[:EXTRA]`` -> (PATH, EXTRA or None); like skopeo on Linux, the path ends at the first ':'."""
    path, sep, extra = rest.partition(":")
    if not path:
        raise InvalidReference("%s reference %r has an empty path: give %s:/path/to/it" % (transport, text, transport), text)
    return path, (extra if sep else None)


def parse_reference(text: str) -> ImageReference:
    """Parse ``transport:rest``; a string with no known transport prefix is a registry reference."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("empty image reference: give one such as docker://registry.example.com/app:1.0 or oci:/path:tag", "")
    if text != text.strip():
        raise InvalidReference("image reference %r has leading or trailing white space" % text, text)
    prefix, sep, rest = text.partition(":")
    transport = find_transport(prefix) if sep else None
    if transport is not None:
        return transport.parse(rest, text)
    scheme = _SCHEME_RE.match(text)
    if scheme:
        raise InvalidReference("unknown transport %r in %r: use one of %s" % (scheme.group(1), text, ", ".join(t.name + ":" for t in transports())), text)
    return registry_transport().parse("//" + text, text)
