# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker:// — images in a registry repository, through the process's shared RegistryClient.

Deleting works through ``image_delete``'s tag-safe method (a manifest delete takes every tag on
it along): the delete target hands over the client and repository.
"""

from __future__ import annotations

from typing import BinaryIO

from .._digest import VerifyingReader
from .._errors import BlobsMissing, DigestMismatch, InvalidReference, OCIError, RegistryError
from .._options import ConnectionOptions
from .._reference import DEFAULT_REGISTRY, ImageReference, parse_docker_name
from .._registry._client import RegistryClient
from .._registry._clients import registry_client
from ._base import DeleteTarget, ImageDestination, ImageSource
from ._table import Transport, register

# What distribution answers to a manifest whose blobs are not linked in the repository, also when a concurrent
# upload of the same blob was rewriting its link at that moment (distribution issues 4489 and 2077).
_BLOBS_MISSING_CODES = ("MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "DIGEST_INVALID")


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
    """An image (or index) in a registry repository, named by tag or digest."""

    can_list_tags = True

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None, client: RegistryClient | None = None):
        super().__init__(reference, options)
        self._connect(client)
        # Digests the registry reported for manifests we fetched, keyed by the raw bytes' identity.
        self._registry_digests: dict[bytes, str] = {}

    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        """The manifest the reference names (``digest`` None), or a child manifest by digest."""
        ref = digest or self.reference.manifest_reference
        raw, media_type, registry_digest = self.client.get_manifest(self.repository, ref)
        self._registry_digests[raw] = registry_digest
        return raw, media_type

    def head_digest(self) -> str | None:
        digest = self._head_digest()
        if self.reference.digest and digest != self.reference.digest:
            return None  # let the full read report the mismatch
        return digest

    def manifest_digest(self, raw: bytes) -> str:
        """The registry's digest for a manifest we fetched (differs from sha256(raw) for signed v2s1)."""
        return self._registry_digests.get(raw) or super().manifest_digest(raw)

    def open_blob(self, digest: str, size: int | None = None) -> VerifyingReader:
        return self.client.get_blob(self.repository, digest, size)

    def list_tags(self) -> list[str]:
        return self.client.list_tags(self.repository)

    def read_tag(self, tag: str) -> tuple[bytes, str, str]:
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

    def blob_scope(self):
        return ("registry", self.reference.registry, self.repository)

    def can_mount_from(self, source: ImageSource) -> bool:
        origin = source.reference
        return isinstance(source, RegistrySource) and origin.registry == self.reference.registry and origin.repository != self.repository

    def mount_blob(self, digest: str, source: ImageSource) -> bool:
        if not self.can_mount_from(source):
            return False
        return self.client.mount_blob(self.repository, digest, source.reference.repository or "")

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
        return ImageReference(self.name, registry=registry, repository=repository, tag=tag, digest=digest, text=text)

    def format(self, reference: ImageReference) -> str:
        return "docker://%s" % reference.docker_reference

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> RegistrySource:
        return RegistrySource(reference, options, client=registry_client(reference.registry, options))

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> RegistryDestination:
        return RegistryDestination(reference, options, client=registry_client(reference.registry, options))

    def delete_target(self, reference: ImageReference, options: ConnectionOptions) -> RegistryDeleteTarget:
        return RegistryDeleteTarget(reference, options)

    def open_signatures(self, reference: ImageReference, options: ConnectionOptions, settings):
        from .._signature_stores import RegistrySignatureStore

        return RegistrySignatureStore(reference, options, settings)


register(RegistryTransport())
