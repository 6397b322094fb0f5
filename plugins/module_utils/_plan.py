# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy plan: what a copy would write, decided before anything is written.

``plan_copy`` is the one function that decides whether the destination is up to date; check
mode, diff and the real run all use its answer (``_copy`` carries a plan out). It never asks
which transport it holds: what differs is expressed by attributes of the destination
(can_hold_index, wants_uncompressed_layers, identity, required_format) and of the source
(layers_stored_uncompressed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import _media
from ._convert import convert_manifest, go_json, oci_config_from_docker, rewrite_index, uncompressed_manifest
from ._digest import sha256_digest
from ._errors import OCIError, Unsupported
from ._transports._base import ImageDestination, ImageSource

if TYPE_CHECKING:  # pragma: no cover
    from ._copy import BlobLedger

_GZIP_LAYER_TYPES = (_media.OCI_LAYER_GZIP, _media.DOCKER_LAYER_GZIP, _media.DOCKER_LAYER_FOREIGN_GZIP, _media.OCI_LAYER_NONDISTRIBUTABLE_GZIP)
_UNCOMPRESSED_LAYER_TYPES = (_media.OCI_LAYER_TAR, _media.OCI_LAYER_NONDISTRIBUTABLE_TAR, _media.DOCKER_LAYER_TAR)


@dataclass
class CopyOptions:
    """What to copy and how; the same for every image of a task."""

    multi_arch: str | None = None  # None: "all" where the destination can hold an index, else "system"
    platforms: list[dict] | None = None
    format: str | None = None
    preserve_digests: bool = False
    force: bool = False
    parallel: int = 6
    retries: int = 3
    #: Shared by the copies of one task, so images copied in parallel upload a common layer once.
    ledger: BlobLedger | None = None


@dataclass
class BlobTransfer:
    """One blob to make present at the destination."""

    digest: str  # as the source stores it
    size: int | None
    media_type: str | None
    dest_digest: str | None  # as the destination stores it (the diff ID when stored uncompressed; None until compressed)
    dest_size: int | None
    decompress: bool = False
    compress: bool = False  # the source serves this layer uncompressed; gzip it on the way (digest known afterwards)
    data: bytes | None = None  # content made by the copy itself (a converted config), not read from the source


@dataclass
class ManifestWrite:
    raw: bytes
    media_type: str
    digest: str
    top: bool
    # Set when layers are compressed during the copy: the manifest is finished (digests, sizes) after the blobs.
    pending_doc: dict | None = None


@dataclass
class CopyPlan:
    """Everything a copy would do, decided before anything is written."""

    src: str
    dest: str
    src_digest: str
    dest_digest_before: str | None
    dest_digest_after: str
    changed: bool
    manifests: list[ManifestWrite] = field(default_factory=list)
    blobs: list[BlobTransfer] = field(default_factory=list)


def effective_multi_arch(dest: ImageDestination, options: CopyOptions) -> str:
    mode = options.multi_arch or ("all" if dest.can_hold_index else "system")
    if not dest.can_hold_index:
        if mode == "all" and options.multi_arch == "all":
            raise Unsupported("%s cannot hold a multi-arch index: use multi_arch: system, or platforms with one entry" % dest.reference, str(dest.reference))
        if mode == "index_only":
            raise Unsupported("%s cannot hold an index: multi_arch: index_only is not possible there" % dest.reference, str(dest.reference))
        if options.platforms and len(options.platforms) > 1:
            raise Unsupported("%s holds one image: give platforms with one entry" % dest.reference, str(dest.reference))
        return "system"
    if options.platforms and mode == "all":
        return "subset"
    return mode


def selected_instances(top_doc: dict, mode: str, options: CopyOptions, context: str) -> list[dict]:
    """The entries of an index that a copy in ``mode`` (see ``effective_multi_arch``) copies: none for index_only."""
    if mode == "system":
        return [_media.select_manifest(top_doc, options.platforms[0] if options.platforms else _media.host_platform(), context)]
    if mode == "subset":
        entries: list[dict] = []
        for platform in options.platforms or []:
            entry = _media.select_manifest(top_doc, platform, context)
            if entry not in entries:
                entries.append(entry)
        return entries
    if mode == "index_only":
        return []
    return list(top_doc.get("manifests") or [])


def _convert(source: ImageSource, doc: dict, media_type: str, target: str, context: str, blobs: list[BlobTransfer]) -> tuple[dict, str]:
    """Convert an image manifest to ``target``; Docker -> OCI also rewrites the config as skopeo does (a new blob)."""
    new_doc, new_type = convert_manifest(doc, media_type, target, context)
    if new_doc is doc or media_type != _media.DOCKER_MANIFEST or new_type != _media.OCI_MANIFEST:
        return new_doc, new_type
    config = doc["config"]
    data = oci_config_from_docker(source.get_blob_bytes(config["digest"], config.get("size")), context)
    digest = sha256_digest(data)
    new_doc["config"] = dict(new_doc["config"], digest=digest, size=len(data))
    for position, blob in enumerate(blobs):
        if blob.digest == config["digest"]:
            blobs[position] = BlobTransfer(config["digest"], config.get("size"), _media.OCI_CONFIG, digest, len(data), data=data)
    return new_doc, new_type


def _plan_image(
    source: ImageSource, dest: ImageDestination, raw: bytes, media_type: str | None, options: CopyOptions, context: str
) -> tuple[ManifestWrite, list[BlobTransfer], str]:
    """Plan one image manifest: the bytes to write, the blobs it needs, and its config digest."""
    doc, media_type = _media.parse_manifest(raw, media_type, context)
    if _media.is_index(media_type):
        raise Unsupported("%s: an index nested in an index is not supported" % context, context)
    if media_type in (_media.DOCKER_V2S1, _media.DOCKER_V2S1_SIGNED):
        raise Unsupported("%s: Docker schema 1 images can be inspected but not copied; push it again with a current client" % context, context)
    config = doc.get("config") or {}
    layers = [d for d in doc.get("layers") or [] if not d.get("urls")]  # foreign layers stay where their URLs point
    blobs = [BlobTransfer(config["digest"], config.get("size"), config.get("mediaType"), config["digest"], config.get("size"))]
    if dest.wants_uncompressed_layers:
        if config.get("mediaType") not in _media.IMAGE_CONFIG_TYPES:
            # Decided here, before anything is written: a docker save tar (and an engine) holds container images only.
            kind = (
                "artifact type %s, config type %s" % (doc.get("artifactType"), config.get("mediaType"))
                if doc.get("artifactType")
                else "config type %s" % config.get("mediaType")
            )
            raise Unsupported(
                "%s is an artifact (%s), not a container image; %s holds container images only: "
                "copy it to a registry, oci:, oci-archive: or dir:" % (context, kind, dest.reference),
                context,
            )
        config_doc = _media.parse_config(source.get_blob_bytes(config["digest"], config.get("size")), context)
        new_doc = uncompressed_manifest(doc, config_doc, context)
        for layer, target in zip(doc.get("layers") or [], new_doc["layers"]):
            layer_type = layer.get("mediaType")
            if layer_type in _GZIP_LAYER_TYPES:
                decompress = True
            elif layer_type in _UNCOMPRESSED_LAYER_TYPES:
                decompress = False
            else:
                raise Unsupported("%s: layer %s is %s; %s needs gzip or uncompressed layers" % (context, layer["digest"], layer_type, dest.reference), context)
            blobs.append(BlobTransfer(layer["digest"], layer.get("size"), layer_type, target["digest"], None, decompress))
        new_raw = go_json(new_doc)
        return ManifestWrite(new_raw, _media.DOCKER_MANIFEST, sha256_digest(new_raw), False), blobs, config["digest"]
    if source.layers_stored_uncompressed:
        # docker-archive and the engines hand out uncompressed tars under a gzip media type (as skopeo presents
        # them): compress them, so what lands is what the manifest says. Digests are known only afterwards.
        for layer in layers:
            blobs.append(BlobTransfer(layer["digest"], layer.get("size"), layer.get("mediaType"), None, None, compress=True))
        if options.format:
            doc, media_type = _convert(source, doc, media_type, options.format, context, blobs)
        return ManifestWrite(b"", media_type, "", False, pending_doc=doc), blobs, config["digest"]
    for layer in layers:
        blobs.append(BlobTransfer(layer["digest"], layer.get("size"), layer.get("mediaType"), layer["digest"], layer.get("size")))
    if options.format:
        new_doc, new_type = _convert(source, doc, media_type, options.format, context, blobs)
        if new_doc is not doc:
            new_raw = go_json(new_doc)
            return ManifestWrite(new_raw, new_type, sha256_digest(new_raw), False), blobs, config["digest"]
    return ManifestWrite(raw, media_type, sha256_digest(raw), False), blobs, config["digest"]


def plan_copy(source: ImageSource, dest: ImageDestination, options: CopyOptions) -> CopyPlan:
    """Decide what the copy would write, and whether the destination already holds it. Reads only."""
    context = str(source.reference)
    if options.format and options.preserve_digests:
        raise OCIError("format conversion changes digests: do not combine format with preserve_digests", context)
    if dest.required_format and not options.format:
        options = replace(options, format=dest.required_format)  # converts only manifests not already in that format
    top_raw, top_type = source.get_manifest()
    top_doc, top_type = _media.parse_manifest(top_raw, top_type, context)
    src_digest = source.manifest_digest(top_raw)
    manifests: list[ManifestWrite] = []
    blobs: list[BlobTransfer] = []
    config_digest = None
    if _media.is_index(top_type):
        mode = effective_multi_arch(dest, options)
        if mode == "system":
            chosen = selected_instances(top_doc, mode, options, context)[0]
            child_raw, child_type = source.get_manifest(chosen["digest"])
            write, blobs, config_digest = _plan_image(source, dest, child_raw, child_type or chosen.get("mediaType"), options, context)
            write.top = True
            manifests.append(write)
        else:
            entries = list(top_doc.get("manifests") or []) if mode == "index_only" else selected_instances(top_doc, mode, options, context)
            new_entries = []
            seen_blobs: set[str] = set()
            for entry in entries:
                if mode == "index_only":
                    new_entries.append(entry)
                    continue
                child_raw, child_type = source.get_manifest(entry["digest"])
                write, child_blobs, _unused = _plan_image(source, dest, child_raw, child_type or entry.get("mediaType"), options, context)
                manifests.append(write)
                for blob in child_blobs:
                    if blob.dest_digest not in seen_blobs:
                        seen_blobs.add(blob.dest_digest)
                        blobs.append(blob)
                new_entries.append(dict(entry, mediaType=write.media_type, digest=write.digest, size=len(write.raw)))
            converts_index = bool(options.format) and top_type != _convert_index_type(options.format or "")
            if mode in ("all", "index_only") and new_entries == entries and not converts_index:
                top_write = ManifestWrite(top_raw, top_type, src_digest, True)
            else:
                new_doc, new_type = rewrite_index(top_doc, top_type, new_entries, options.format)
                new_raw = go_json(new_doc)
                top_write = ManifestWrite(new_raw, new_type, sha256_digest(new_raw), True)
            manifests.append(top_write)
    else:
        write, blobs, config_digest = _plan_image(source, dest, top_raw, top_type, options, context)
        if write.raw is top_raw:
            write.digest = src_digest
        write.top = True
        manifests.append(write)
    top = manifests[-1]
    if top.pending_doc is not None and dest.identity == "manifest":
        # Layers get compressed on the way, so the new manifest digest is known only after the copy;
        # up to date means: the destination names an image with the same config (image ID).
        if options.preserve_digests:
            raise OCIError(
                "%s: its layers are stored uncompressed and get compressed for %s, which changes digests; unset preserve_digests" % (context, dest.reference),
                context,
            )
        before = dest.current_digest()
        same = before is not None and dest.current_config_digest() == config_digest
        return CopyPlan(context, str(dest.reference), src_digest, before, before if same else None, options.force or not same, manifests, blobs)
    after = config_digest if dest.identity == "config" else top.digest
    if options.preserve_digests and top.digest != src_digest and dest.identity != "config":
        raise OCIError(
            "%s: copying to %s would change the digest (%s -> %s), and preserve_digests is set" % (context, dest.reference, src_digest, top.digest), context
        )
    before = dest.current_digest()
    return CopyPlan(
        src=context,
        dest=str(dest.reference),
        src_digest=src_digest,
        dest_digest_before=before,
        dest_digest_after=after or top.digest,
        changed=options.force or before != (after or top.digest),
        manifests=manifests,
        blobs=blobs,
    )


def _convert_index_type(target: str) -> str:
    return _media.DOCKER_LIST if target == "v2s2" else _media.OCI_INDEX
