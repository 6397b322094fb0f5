# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one interface every transport implements: ImageSource, ImageDestination, DeleteTarget.

The copy engine, image_info, image_delete and the footprint talk only to these classes; they
never ask which transport they hold. What differs between transports is declared here as
attributes and methods with a default, and each transport overrides what applies to it.
"""

from __future__ import annotations

from typing import BinaryIO

from .._digest import VerifyingReader, sha256_digest, verify_bytes
from .._errors import InvalidManifest, LocalFormatError, NotFound, Unsupported
from .._media import MAX_CONFIG_BYTES, is_index, parse_manifest
from .._options import ConnectionOptions
from .._reference import ImageReference
from ._table import transport_named


class ImageSource:
    """Read side of a transport: one image (or index) named by a reference."""

    #: True when ``list_tags`` and ``read_tag`` work (a registry repository, an OCI layout's refs).
    can_list_tags = False
    #: True when layers are served uncompressed under a gzip media type (``docker save`` archives, engines),
    #: as skopeo presents them: the engine gzips them for destinations that keep layers compressed.
    layers_stored_uncompressed = False
    #: Where the image is really read, when that is not the reference itself to say (a registry mirror's
    #: or remapped location's ``host/repository:tag``); reported as ``src_location``.
    location: str | None = None

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        self.reference = reference
        self.options = options or ConnectionOptions()

    # --- to implement -------------------------------------------------------------------------
    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        """Raw bytes and media type of the manifest the reference names (``digest`` None) or of a child.

        A digest given is verified against the bytes. Raise NotFound when absent.
        """
        raise NotImplementedError

    def open_blob(self, digest: str, size: int | None = None) -> VerifyingReader:
        """A stream of the blob's bytes, verified against ``digest`` (and ``size``) as it is read.

        Its ``bytes_read`` counts what crossed from the source (the engine's progress counter).
        """
        raise NotImplementedError

    def blob_scope(self) -> tuple[str, str] | None:
        """``(domain, place)`` where this source's blobs are known to be (a registry repository), so a destination of
        the same domain can mount them; None for sources that are no such place."""
        return None

    def list_tags(self) -> list[str]:
        """The names (tags, refs) in the place the reference belongs to."""
        raise Unsupported("%s cannot list tags" % self.reference, str(self.reference))

    def read_tag(self, tag: str) -> tuple[bytes, str, str]:
        """(raw, media type, digest) of the manifest one name of ``list_tags`` points at, in one read."""
        raise Unsupported("%s cannot read images by tag" % self.reference, str(self.reference))

    def close(self) -> None:
        """Release connections, temp files and locks."""

    def head_digest(self) -> str | None:
        """The top-level digest when it can be had without reading the manifest (a registry HEAD), else None."""
        return None

    # --- shared -------------------------------------------------------------------------------
    def manifest_digest(self, raw: bytes) -> str:
        """Digest of the top-level manifest; a transport that knows better (v2s1) overrides this."""
        return sha256_digest(raw)

    def get_blob_bytes(self, digest: str, size: int | None = None, limit: int = MAX_CONFIG_BYTES) -> bytes:
        """A small blob (a config) read whole, refused past ``limit`` bytes, verified."""
        if size is not None and size > limit:
            raise InvalidManifest(
                "%s: blob %s is %d bytes, over the %d-byte limit for configs" % (self.reference, digest, size, limit),
                str(self.reference),
            )
        stream = self.open_blob(digest, size)
        try:
            data = stream.read(limit + 1)
            if len(data) > limit:
                raise InvalidManifest("%s: blob %s is over the %d-byte limit for configs" % (self.reference, digest, limit), str(self.reference))
            while True:  # drain so a VerifyingReader checks the digest
                if not stream.read(65536):
                    break
        finally:
            stream.close()
        return verify_bytes(data, digest, str(self.reference))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def verified_stream(stream: BinaryIO, digest: str, size: int | None, context: str, location: str | None = None) -> VerifyingReader:
    """Wrap a raw stream so it is hashed and checked as it is read; ``location`` (a file) is named in messages."""
    return VerifyingReader(stream, digest, size, context, location)


class ImageDestination:
    """Write side of a transport. The copy engine drives it in this order, and only this order:

    1. ``current_digest()`` — what the reference names now (None when absent); decides idempotency.
    2. ``expect_blobs()`` once, then per blob (in parallel): ``mount_from()`` the source's place when it is in
       the same domain (``blob_scope()``); else ``has_blob()``; else ``mount_from()`` a place where the blob is
       known to be (the task's ledger, the blob cache); else ``put_blob()``.
    3. ``put_manifest(top=False)`` for each child of an index, then ``put_manifest(top=True)`` once.
    4. ``commit()`` — local destinations move their temporary tree into place here.
    On any failure the engine calls ``abort()``, which must leave the destination as it was.
    """

    #: False for destinations that can store only one image (docker-archive, engines).
    can_hold_index = True
    #: True when layers must be stored uncompressed, named by their diff ID (docker-archive, docker-daemon).
    wants_uncompressed_layers = False
    #: How up-to-date is judged: "manifest" (digest of the top manifest) or "config" (image ID).
    identity = "manifest"
    #: A manifest format ("oci", "v2s2") the destination can only hold; None when it holds any.
    required_format: str | None = None

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        self.reference = reference
        self.options = options or ConnectionOptions()

    def current_digest(self) -> str | None:
        """Digest the reference names now (manifest digest, or config digest when identity is "config")."""
        raise NotImplementedError

    def current_config_digest(self) -> str | None:
        """Config digest (image ID) of the single image the reference names now; None when absent or an index."""
        if self.identity == "config":
            return self.current_digest()
        try:
            with self.open_current() as source:
                raw, media_type = source.get_manifest()
                doc, media_type = parse_manifest(raw, media_type, str(self.reference))
        except (NotFound, LocalFormatError):
            return None
        if is_index(media_type):
            return None
        return (doc.get("config") or {}).get("digest")

    def open_current(self) -> ImageSource:
        """A source reading what the reference names now (NotFound when nothing), to compare with what a copy writes."""
        return transport_named(self.reference.transport).open_source(self.reference, self.options)

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        raise NotImplementedError

    def expect_blobs(self, blobs: list[tuple[str, str | None]]) -> None:
        """Told before the blobs: (digest, media type) of each one the copy puts, in the manifests' order.

        Blobs then arrive in any order (in parallel); a destination that stores them in order (a tar) uses this.
        """

    def blob_scope(self) -> tuple[str, str] | None:
        """``(domain, place)`` where this destination's blobs become visible as soon as they are uploaded (shared
        by copies into the same place; ``mount_from`` links blobs between places of one domain), or None when each
        copy stages its own (local destinations commit at the end). Names only: never a credential."""
        return None

    def mount_from(self, digest: str, place: str) -> bool:
        """Link a blob known to be in ``place`` (of this destination's domain) without moving bytes; False when not
        done (the engine then uploads it)."""
        return False

    def put_blob(self, stream: BinaryIO, digest: str, size: int | None, media_type: str | None = None) -> None:
        """Store a blob from a verifying stream; nothing is visible under the digest unless it verified."""
        raise NotImplementedError

    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        """Store a manifest; ``top`` is the one the reference (tag/ref) names."""
        raise NotImplementedError

    def commit(self) -> None:
        """Make the written image visible under the reference."""

    def abort(self) -> None:
        """Undo everything not yet committed."""

    def close(self) -> None:
        """Release connections, temp files and locks."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        self.close()
        return False


class DeleteTarget:
    """What image_delete works on: one place (a repository, a layout, a directory) and the names in it."""

    #: Deleting a manifest takes every name on it along (a registry): image_delete uses its tag-safe method,
    #: through ``client`` and ``repository``, instead of ``remove``.
    deleting_a_manifest_takes_its_tags = False
    #: The place holds many named images, so a prune policy can apply to it.
    holds_names = False
    #: How results name the way images were deleted.
    method = "none"

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        self.reference = reference
        self.options = options or ConnectionOptions()
        self.context = str(reference)

    def exists(self) -> bool:
        """Whether the place is there at all (nothing to delete otherwise)."""
        raise NotImplementedError

    def open_source(self) -> ImageSource:
        """A source on the place, for scanning its names (a prune reads every image)."""
        return transport_named(self.reference.transport).open_source(self.reference, self.options)

    def names(self) -> dict[str, str]:
        """Name -> digest of every named image there now."""
        raise NotImplementedError

    def remove(self, names: list[str], check_mode: bool) -> tuple[dict[str, str], int]:
        """Remove the named images (the one image with ``[]`` where the place holds one); ({name: digest}, bytes freed)."""
        raise NotImplementedError
