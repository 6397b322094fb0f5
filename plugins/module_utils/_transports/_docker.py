# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker:// — images in a registry repository, through the process's shared RegistryClient.

Reads follow registries.conf (``_registries_conf``): a short name written without registry and
transport is resolved through aliases and search registries, and each name is read from its
mirrors, then its location, whichever first has the image (a ``HEAD`` tells, so trying a mirror
costs no pull). The source keeps the logical name as its ``reference`` and says where the image
was read in ``location``. Writes, deletes and tag lists use the name as written, as skopeo does;
``blocked`` and ``insecure`` apply to them too.

Deleting works through ``image_delete``'s tag-safe method (a manifest delete takes every tag on
it along): the delete target hands over the client and repository.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import BinaryIO

from .._digest import VerifyingReader
from .._errors import BlobsMissing, DigestMismatch, InvalidReference, NotFound, OCIError, RegistryError
from .._options import ConnectionOptions
from .._reference import DEFAULT_REGISTRY, ImageReference, parse_docker_name, short_name_of
from .._registries_conf import RegistriesConf, RegistriesConfError, registries_conf_for
from .._registry._client import RegistryClient
from .._registry._clients import registry_client
from ._base import DeleteTarget, ImageDestination, ImageSource
from ._table import Transport, register

# What distribution answers to a manifest whose blobs are not linked in the repository, also when a concurrent
# upload of the same blob was rewriting its link at that moment (distribution issues 4489 and 2077).
_BLOBS_MISSING_CODES = ("MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "DIGEST_INVALID")


@dataclass(frozen=True)
class PullAttempt:
    """One place a source may be read from: the name meant (``logical``), its name there (``physical``), how to reach it."""

    logical: ImageReference
    physical: ImageReference
    options: ConnectionOptions
    mirror: bool = False
    blocked: str | None = None  # why registries.conf refuses this place


def _blob_domain(registry: str | None) -> str:
    """Blobs mount between the repositories of one registry: its name is the domain (the blob cache's key too)."""
    return "docker://%s" % (registry or DEFAULT_REGISTRY)


def _same_place(one: ImageReference, other: ImageReference) -> bool:
    return (one.registry, one.repository, one.tag, one.digest) == (other.registry, other.repository, other.tag, other.digest)


def _endpoint_options(options: ConnectionOptions, logical: ImageReference, physical: ImageReference, insecure: bool) -> ConnectionOptions:
    if insecure:
        options = replace(options, validate_certs=False)
    if physical.registry != logical.registry:
        # Credentials given for the registry named are not sent to another one (containers/image does the same);
        # the mirror's own come from the auth files.
        options = replace(options, username=None, password=None, registry_token=None)
    return options


def _written_options(conf: RegistriesConf | None, reference: ImageReference, options: ConnectionOptions, doing: str) -> ConnectionOptions:
    """Options to write, delete or list at the name as written: blocked refused, insecure honoured, short names spelled out."""
    if conf is None:
        return options
    if reference.short_name and conf.resolves_short_name(reference):
        meant = conf.short_name_candidates(reference)
        if [c.name for c in meant] != [reference.name]:
            raise RegistriesConfError(
                "%r: registries.conf (%s) resolves short names for reads only; for %s give the full name (it would read %s)"
                % (reference.text or reference.short_name, conf.described, doing, ", ".join("docker://%s" % c.name for c in meant)),
                reference.text,
            )
    conf.check_not_blocked(reference, doing)
    return replace(options, validate_certs=False) if conf.insecure(reference) else options


def pull_attempts(reference: ImageReference, options: ConnectionOptions) -> list[PullAttempt]:
    """Where to read ``reference`` from, in order, as registries.conf says (just the name itself without one)."""
    conf = registries_conf_for(options.registries_conf)
    if conf is None:
        return [PullAttempt(reference, reference, options)]
    logicals = conf.resolve_short_name(reference)[0] if conf.resolves_short_name(reference) else [reference]
    attempts = []
    for logical in logicals:
        for source in conf.pull_sources(logical):
            blocked = None
            if source.blocked_by is not None:
                blocked = "registry %s is blocked in %s (prefix %s)" % (source.physical.registry, conf.described, source.blocked_by)
            attempts.append(
                PullAttempt(logical, source.physical, _endpoint_options(options, logical, source.physical, source.insecure), source.mirror, blocked)
            )
    return attempts


class _RegistryRepository:
    """What both sides of docker:// share: a client (the process's shared one, or an own one) and the repository."""

    reference: ImageReference

    def _connect(self, client: RegistryClient | None) -> None:
        self.client = client or RegistryClient(self.reference.registry or DEFAULT_REGISTRY, self.options)
        self._owns_client = client is None
        self.repository = self.reference.repository or ""

    def _head_digest(self) -> str | None:
        """Digest of what the tag (or digest) names now, from one HEAD; None when absent."""
        head = self.client.head_manifest(self.repository, self.reference.manifest_reference)
        return head.digest if head else None

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


class RegistrySource(_RegistryRepository, ImageSource):
    """An image (or index) in a registry repository, named by tag or digest, read from the first place that has it."""

    can_list_tags = True

    def __init__(
        self,
        reference: ImageReference,
        options: ConnectionOptions | None = None,
        client: RegistryClient | None = None,
        attempts: list[PullAttempt] | None = None,
    ):
        super().__init__(reference, options)
        self._attempts = attempts or [PullAttempt(reference, reference, self.options)]
        self._owns_client = False
        self._chosen: PullAttempt | None = None
        self._head_answer: str | None = None
        # Digests the registry reported for manifests we fetched, keyed by the raw bytes' identity.
        self._registry_digests: dict[bytes, str] = {}
        only = self._attempts[0]
        if len(self._attempts) == 1 and not only.blocked and _same_place(only.physical, reference):
            self._connect(client)
            self._chosen = only
            self.location = reference.docker_reference

    # --- where the image is read from ---------------------------------------------------------------
    def _choose(self) -> None:
        """Use the first place that has the image (asked with a HEAD); raise when none has it."""
        if self._chosen is not None:
            return
        failures: list[tuple[PullAttempt, OCIError]] = []
        for attempt in self._attempts:
            if attempt.blocked:
                failures.append((attempt, RegistriesConfError("%s: %s" % (attempt.physical, attempt.blocked), str(attempt.physical))))
                continue
            client = registry_client(attempt.physical.registry, attempt.options)
            try:
                head = client.head_manifest(attempt.physical.repository or "", attempt.physical.manifest_reference)
            except OCIError as exc:
                failures.append((attempt, exc))
                continue
            if head is None:
                failures.append((attempt, NotFound("not found", str(attempt.physical))))
                continue
            self.client, self.repository, self._chosen = client, attempt.physical.repository or "", attempt
            self.reference, self.location, self._head_answer = attempt.logical, attempt.physical.docker_reference, head.digest
            return
        if len(failures) == 1 and not isinstance(failures[0][1], NotFound):
            raise failures[0][1]
        everywhere_absent = all(isinstance(exc, NotFound) for _attempt, exc in failures)
        tried = "; ".join("%s%s: %s" % (a.physical.docker_reference, " (mirror)" if a.mirror else "", exc.msg) for a, exc in failures)
        kind = NotFound if everywhere_absent else type(failures[-1][1])
        raise kind(
            "%s: not found (tried %s)" % (self.reference, tried) if everywhere_absent else "%s: could not be read (tried %s)" % (self.reference, tried),
            str(self.reference),
        )

    @property
    def physical(self) -> ImageReference:
        """The name the image is read under (a mirror's, or the remapped location's)."""
        self._choose()
        return self._chosen.physical  # type: ignore[union-attr]

    # --- ImageSource ------------------------------------------------------------------------------
    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        """The manifest the reference names (``digest`` None), or a child manifest by digest."""
        self._choose()
        ref = digest or self.physical.manifest_reference
        raw, media_type, registry_digest = self.client.get_manifest(self.repository, ref)
        self._registry_digests[raw] = registry_digest
        return raw, media_type

    def head_digest(self) -> str | None:
        self._choose()
        digest, self._head_answer = self._head_answer, None
        if digest is None:
            head = self.client.head_manifest(self.repository, self.physical.manifest_reference)
            digest = head.digest if head else None
        if self.reference.digest and digest != self.reference.digest:
            return None  # let the full read report the mismatch
        return digest

    def manifest_digest(self, raw: bytes) -> str:
        """The registry's digest for a manifest we fetched (differs from sha256(raw) for signed v2s1)."""
        return self._registry_digests.get(raw) or super().manifest_digest(raw)

    def open_blob(self, digest: str, size: int | None = None) -> VerifyingReader:
        self._choose()
        return self.client.get_blob(self.repository, digest, size)

    def blob_scope(self) -> tuple[str, str]:
        origin = self.physical  # where the source is really read, a mirror's name included
        return (_blob_domain(origin.registry), origin.repository or "")

    def list_tags(self) -> list[str]:
        """The tags of the repository named (not of a mirror), as skopeo lists them; a short name's first that has it."""
        if self._chosen is not None and _same_place(self._chosen.physical, self._chosen.logical):
            return self.client.list_tags(self.repository)
        logicals: list[ImageReference] = []
        for attempt in self._attempts:
            if attempt.logical not in logicals:
                logicals.append(attempt.logical)
        conf = registries_conf_for(self.options.registries_conf)
        last: OCIError | None = None
        for logical in logicals:
            options = _written_options(conf, logical, self.options, "listing tags")
            try:
                return registry_client(logical.registry, options).list_tags(logical.repository or "")
            except NotFound as exc:
                last = exc
        raise last or NotFound("%s: repository not found" % self.reference, str(self.reference))

    def read_tag(self, tag: str) -> tuple[bytes, str, str]:
        self._choose()
        return self.client.get_manifest(self.repository, tag)


class RegistryDestination(_RegistryRepository, ImageDestination):
    """A tag (or digest) in a registry repository. Writes blobs, then manifests; a tag moves last."""

    can_hold_index = True

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None, client: RegistryClient | None = None):
        super().__init__(reference, options)
        self._connect(client)

    def current_digest(self) -> str | None:
        return self._head_digest()

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        # Existence is per repository in distribution: a blob elsewhere on the registry is mounted, not assumed.
        return self.client.head_blob(self.repository, digest) is not None

    def blob_scope(self) -> tuple[str, str]:
        return (_blob_domain(self.reference.registry), self.repository)

    def mount_from(self, digest: str, place: str) -> bool:
        return self.client.mount_blob(self.repository, digest, place)

    def put_blob(self, stream: BinaryIO, digest: str, size: int | None, media_type: str | None = None) -> None:
        if size is None:
            raise OCIError("%s: blob %s has no known size; a registry upload needs one" % (self.reference, digest), str(self.reference))
        self.client.upload_blob(self.repository, digest, stream, size)

    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        if top and self.reference.digest and self.reference.digest != digest:
            raise DigestMismatch(
                "%s: the image to write has digest %s, not the one the destination names; drop the digest from dest or copy with preserve_digests"
                % (self.reference, digest),
                str(self.reference),
            )
        ref = (self.reference.tag_or_default or digest) if top and not self.reference.digest else digest
        try:
            self.client.put_manifest(self.repository, ref, raw, media_type)
        except RegistryError as exc:
            if exc.code not in _BLOBS_MISSING_CODES:
                raise
            raise BlobsMissing(
                "%s: the registry refused manifest %s because blobs it references are missing (%s)" % (self.reference, digest, exc.msg), str(self.reference)
            ) from None


class RegistryDeleteTarget(DeleteTarget):
    """A registry repository: image_delete's tag-safe method works on it through ``client`` and ``repository``."""

    deleting_a_manifest_takes_its_tags = True
    holds_names = True

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference, options)
        self.client = registry_client(reference.registry, self.options)
        self.repository = reference.repository or ""

    def exists(self) -> bool:
        return True

    def open_source(self) -> RegistrySource:
        return RegistrySource(self.reference, self.options, client=self.client)

    def names(self) -> dict[str, str]:
        raise NotImplementedError("registry deletes go through the tag-safe method")

    def remove(self, names: list[str], check_mode: bool) -> tuple[dict[str, str], int]:
        raise NotImplementedError("registry deletes go through the tag-safe method")


class RegistryTransport(Transport):
    name = "docker"
    syntax = "docker://HOST/REPOSITORY[:TAG|@DIGEST]"
    policy_scopes = "name"
    is_registry = True
    holds_names = True

    def parse(self, rest: str, text: str) -> ImageReference:
        if not rest.startswith("//"):
            raise InvalidReference("docker reference %r must begin with docker:// (e.g. docker://registry.example.com/app:1.0)" % text, text)
        registry, repository, tag, digest = parse_docker_name(rest[2:], text)
        # Only a name written without transport is a short name; docker://fedora is Docker Hub, as with skopeo.
        short = short_name_of(rest[2:]) if not text.startswith(self.name + ":") else None
        return ImageReference(self.name, registry=registry, repository=repository, tag=tag, digest=digest, text=text, short_name=short)

    def format(self, reference: ImageReference) -> str:
        return "docker://%s" % reference.docker_reference

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> RegistrySource:
        attempts = pull_attempts(reference, options)
        only = attempts[0]
        if len(attempts) == 1 and not only.blocked and _same_place(only.physical, reference):
            return RegistrySource(reference, options, client=registry_client(reference.registry, only.options), attempts=attempts)
        return RegistrySource(reference, options, attempts=attempts)

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> RegistryDestination:
        options = _written_options(registries_conf_for(options.registries_conf), reference, options, "writing")
        return RegistryDestination(reference, options, client=registry_client(reference.registry, options))

    def delete_target(self, reference: ImageReference, options: ConnectionOptions) -> RegistryDeleteTarget:
        options = _written_options(registries_conf_for(options.registries_conf), reference, options, "deleting")
        return RegistryDeleteTarget(reference, options)

    def open_signatures(self, reference: ImageReference, options: ConnectionOptions, settings):
        from .._signature_stores import RegistrySignatureStore

        return RegistrySignatureStore(reference, options, settings)


register(RegistryTransport())
