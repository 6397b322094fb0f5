# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_index: a multi-arch index assembled from separate images, written to any destination that holds an index.

``assemble_index`` reads the images (each one's platform from its config, or as given), merges them with
the index the destination names now (add or replace a platform, remove one) or replaces it, and writes the
result through the copy engine: an ``AssembledIndex`` source presents the new index and hands each child
manifest and blob over from where it lives, and ``plan_copy`` decides as for any copy, so check mode, diff
and the real run agree, and an unchanged index (same bytes, so the same digest) writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import _media
from ._blob_reuse import BlobLedger
from ._convert import go_json, rewrite_index
from ._copy import CopyOptions, execute_plan, plan_copy, predict_blobs
from ._errors import LocalFormatError, NotFound, OCIError, Unsupported
from ._options import ConnectionOptions
from ._reference import ImageReference
from ._transports._base import ImageDestination, ImageSource
from ._transports._table import open_destination, open_source

if TYPE_CHECKING:  # pragma: no cover
    from ._digest import VerifyingReader

#: Platform fields an index entry copies from an image config, in the order image-spec's Go struct has them.
_PLATFORM_FIELDS = ("architecture", "os", "os.version", "os.features", "variant")


@dataclass
class IndexImage:
    """One image to put in the index: its reference and, optionally, the platform to file it under."""

    src: ImageReference
    platform: dict | None = None


@dataclass
class IndexRequest:
    """What the index should hold: ``images``; with ``merge``, also the entries it holds now (replaced per platform),
    less the platforms in ``remove``."""

    dest: ImageReference
    images: list[IndexImage] = field(default_factory=list)
    merge: bool = False
    remove: list[dict] = field(default_factory=list)
    format: str | None = None  # "oci" or "v2s2"; None: Docker manifest list when every image is Docker schema 2, else OCI
    annotations: dict | None = None


def platform_of(config: dict, context: str) -> dict:
    """The index platform of an image, from its config (os, architecture, variant, os.version, os.features)."""
    platform = {key: config[key] for key in _PLATFORM_FIELDS if config.get(key)}
    if not platform.get("os") or not platform.get("architecture"):
        raise OCIError("%s: its config names no os and architecture; give the image's platform" % context, context)
    return platform


def _platform_key(platform: dict) -> tuple:
    normal = _media.parse_platform(_media.platform_string(platform))
    variant = normal.get("variant", "")
    if normal["architecture"] == "arm64" and variant == "v8":
        variant = ""  # arm64 is v8 unless it says otherwise
    return normal["os"], normal["architecture"], variant, platform.get("os.version") or ""


def _same_platform(a: dict, b: dict) -> bool:
    return _platform_key(a) == _platform_key(b)


class AssembledIndex(ImageSource):
    """The new index as a source: its own bytes as the top manifest; children and blobs from their own sources."""

    def __init__(self, reference: ImageReference, raw: bytes, media_type: str):
        super().__init__(reference)
        self._raw = raw
        self._media_type = media_type
        self._children: dict[str, ImageSource] = {}
        self._blobs: dict[str, ImageSource] = {}

    def add(self, source: ImageSource, manifest_digest: str, manifest: dict) -> None:
        self._children[manifest_digest] = source
        for descriptor in [manifest.get("config") or {}, *(manifest.get("layers") or [])]:
            if descriptor.get("digest"):
                self._blobs.setdefault(descriptor["digest"], source)

    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        if digest is None:
            return self._raw, self._media_type
        source = self._children.get(digest)
        if source is None:
            raise NotFound("%s: manifest %s is not one of the index's images" % (self.reference, digest), str(self.reference))
        return source.get_manifest(digest)

    def open_blob(self, digest: str, size: int | None = None) -> VerifyingReader:
        source = self._blobs.get(digest)
        if source is None:
            raise NotFound("%s: blob %s belongs to none of the index's images" % (self.reference, digest), str(self.reference))
        return source.open_blob(digest, size)


def _read_image(source: ImageSource, wanted: dict | None, context: str) -> tuple[dict, dict, str]:
    """(descriptor for the index, the image manifest, its digest) of one image; a platform picks it out of an index."""
    raw, media_type = source.get_manifest()
    doc, media_type = _media.parse_manifest(raw, media_type, context)
    digest = source.manifest_digest(raw)
    if _media.is_index(media_type):
        if wanted is None:
            raise OCIError("%s is an index: give the platform to take from it" % context, context)
        entry = _media.select_manifest(doc, wanted, context)
        digest = entry["digest"]
        raw, media_type = source.get_manifest(digest)
        doc, media_type = _media.parse_manifest(raw, media_type or entry.get("mediaType"), context)
    if media_type not in _media.IMAGE_MEDIA_TYPES:
        raise Unsupported("%s is a %s manifest; an index holds OCI or Docker schema 2 images" % (context, media_type), context)
    config = doc.get("config") or {}
    if wanted is not None:
        platform = dict(wanted)
    elif config.get("mediaType") in _media.IMAGE_CONFIG_TYPES:
        platform = platform_of(_media.parse_config(source.get_blob_bytes(config["digest"], config.get("size")), context), context)
    else:
        raise OCIError("%s is an artifact (config type %s): give its platform" % (context, config.get("mediaType")), context)
    descriptor = {"mediaType": media_type, "digest": digest, "size": len(raw), "platform": platform}
    return descriptor, doc, digest


def _current_index(dest: ImageDestination, context: str):
    """(source on what the destination names now, its index document, media type), or (None, None, None) when nothing."""
    try:
        current = dest.open_current()
    except (NotFound, LocalFormatError):
        return None, None, None
    try:
        raw, media_type = current.get_manifest()
    except (NotFound, LocalFormatError):
        current.close()
        return None, None, None
    doc, media_type = _media.parse_manifest(raw, media_type, context)
    return current, doc, media_type


def assemble_index(
    request: IndexRequest, src_options: ConnectionOptions, dest_options: ConnectionOptions, check_mode: bool = False, parallel: int = 6, retries: int = 3
) -> dict:
    """Make ``request.dest`` name the requested index; the module result (changed, digest, manifests, diff)."""
    context = str(request.dest)
    sources: list[ImageSource] = []
    try:
        with open_destination(request.dest, dest_options) as dest:
            if not dest.can_hold_index:
                raise Unsupported("%s cannot hold an index; write it to a registry, oci:, oci-archive: or dir:" % context, context)
            current, current_doc, current_type = _current_index(dest, context)
            if current is not None:
                sources.append(current)
            if current_doc is not None and not _media.is_index(current_type) and (request.merge or request.remove):
                raise OCIError("%s names a single image, not an index: there is nothing to merge into (set merge: false to replace it)" % context, context)
            before = [] if current_doc is None or not _media.is_index(current_type) else list(current_doc.get("manifests") or [])
            entries = list(before) if request.merge or request.remove else []
            assembled_children = []
            for image in request.images:
                source = open_source(image.src, src_options)
                sources.append(source)
                if source.layers_stored_uncompressed:
                    raise Unsupported(
                        "%s serves its layers uncompressed; copy it to a registry or oci: first, then put it in the index" % image.src, str(image.src)
                    )
                descriptor, manifest, _unused = _read_image(source, image.platform, str(image.src))
                for other, _unused in assembled_children:
                    if _same_platform(other["platform"], descriptor["platform"]):
                        raise OCIError(
                            "%s: two images for platform %s (%s and %s)" % (context, _media.platform_string(descriptor["platform"]), other["src"], image.src),
                            context,
                        )
                assembled_children.append((dict(descriptor, src=str(image.src)), (source, manifest)))
                replaced = [n for n, entry in enumerate(entries) if _same_platform(entry.get("platform") or {}, descriptor["platform"])]
                if replaced:
                    entries[replaced[0]] = descriptor
                    for n in reversed(replaced[1:]):
                        del entries[n]
                else:
                    entries.append(descriptor)
            for platform in request.remove:
                entries = [e for e in entries if not _same_platform(e.get("platform") or {}, platform)]
            if not entries:
                raise OCIError("%s: the index would hold no image; delete it with oci.images.image_delete instead" % context, context)
            media_types = {e.get("mediaType") for e in entries}
            target = request.format or ("v2s2" if media_types == {_media.DOCKER_MANIFEST} else "oci")
            if target == "v2s2" and media_types != {_media.DOCKER_MANIFEST}:
                raise OCIError(
                    "%s: a Docker manifest list holds Docker schema 2 images only; convert the others with oci.images.image_copy format: v2s2,"
                    " or use format: oci" % context,
                    context,
                )
            base = {"annotations": request.annotations} if request.annotations and target != "v2s2" else {}
            base_type = _media.DOCKER_LIST if target == "v2s2" else _media.OCI_INDEX
            doc, media_type = rewrite_index(dict(base, mediaType=base_type), base_type, entries, target)
            raw = go_json(doc)
            assembled = AssembledIndex(request.dest, raw, media_type)
            by_digest = {entry["digest"]: child for entry, child in assembled_children}
            for entry in entries:
                if entry["digest"] in by_digest:
                    source, manifest = by_digest[entry["digest"]]
                    assembled.add(source, entry["digest"], manifest)
                elif current is not None:
                    child_raw, child_type = current.get_manifest(entry["digest"])
                    child_doc, _unused = _media.parse_manifest(child_raw, child_type or entry.get("mediaType"), context)
                    assembled.add(current, entry["digest"], child_doc)
            options = CopyOptions(multi_arch="all", parallel=parallel, retries=retries, ledger=BlobLedger())
            plan = plan_copy(assembled, dest, options)
            result = {
                "changed": plan.changed,
                "digest": plan.dest_digest_after,
                "media_type": plan.manifests[-1].media_type,
                "manifests": [_entry_view(e, assembled_children) for e in _written_entries(plan)],
                "blobs": {"copied": 0, "skipped": 0, "mounted": 0},
                "diff": {"before": _platform_map(before), "after": _platform_map(_written_entries(plan))},
            }
            if plan.changed:
                if check_mode:
                    result["blobs"] = predict_blobs(plan, dest, assembled, options.ledger)
                else:
                    stats = execute_plan(plan, assembled, dest, options)
                    result["digest"] = stats.pop("digest")
                    stats.pop("bytes")
                    result["blobs"] = stats
            elif plan.dest_digest_before is not None:
                result["digest"] = plan.dest_digest_before
            return result
    finally:
        for source in sources:
            source.close()


def _written_entries(plan) -> list[dict]:
    doc, _unused = _media.parse_manifest(plan.manifests[-1].raw, plan.manifests[-1].media_type, plan.dest)
    return list(doc.get("manifests") or [])


def _platform_map(entries: list[dict]) -> dict:
    """``{"linux/arm64/v8": digest}`` for the diff (``@os.version`` added where an entry names one)."""
    out = {}
    for entry in entries:
        platform = entry.get("platform") or {}
        out[_media.platform_string(platform) + ("@" + platform["os.version"] if platform.get("os.version") else "")] = entry.get("digest")
    return out


def _entry_view(entry: dict, assembled: list) -> dict:
    src = next((descriptor["src"] for descriptor, _unused in assembled if descriptor["digest"] == entry["digest"]), None)
    return {"platform": _media.platform_string(entry.get("platform") or {}), "digest": entry.get("digest"), "media_type": entry.get("mediaType"), "src": src}
