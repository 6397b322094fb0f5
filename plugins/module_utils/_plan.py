# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy plan: what a copy would write, decided before anything is written.

``plan_copy`` is the one function that decides whether the destination is up to date; check
mode, diff and the real run all use its answer (``_copy`` carries a plan out). It never asks
which transport it holds: what differs is expressed by attributes of the destination
(can_hold_index, wants_uncompressed_layers, identity, required_format) and of the source
(layers_stored_uncompressed).

When layers are (re)compressed on the way, their digests are known only after the copy, so "up to date"
cannot be a digest comparison: ``_holds_expected`` decides it from what the destination names now (same
manifest format, same config — so the same diff IDs in the same order —, each converted layer in the asked
compression, each other layer the same blob; for an index, the same platforms in the same order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import _media
from ._compression import GZIP, ZSTD, ZSTD_CHUNKED, check_level
from ._convert import convert_manifest, go_json, layer_type_for, oci_config_from_docker, rewrite_index, uncompressed_manifest
from ._digest import sha256_digest
from ._errors import LocalFormatError, NotFound, OCIError, Unsupported
from ._transports._base import ImageDestination, ImageSource

if TYPE_CHECKING:  # pragma: no cover
    from ._blob_reuse import BlobLedger

# A layer already compressed so needs no conversion: zstd:chunked is zstd too (as containers/image judges it).
_SATISFIES = {GZIP: (GZIP,), ZSTD: (ZSTD, ZSTD_CHUNKED), ZSTD_CHUNKED: (ZSTD_CHUNKED,)}


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
    #: Compress every image layer so ("gzip", "zstd", "zstd:chunked"); None keeps each as the source has it.
    compression: str | None = None
    compression_level: int | None = None
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
    decompress: str | None = None  # "gzip" or "zstd": how the source compressed it; undone on the way
    compress: str | None = None  # compress on the way so ("gzip", "zstd", "zstd:chunked"); digest known afterwards
    data: bytes | None = None  # content made by the copy itself (a converted config), not read from the source
    level: int | None = None  # the compression level, for compress
    diff_id: str | None = None  # the uncompressed digest, checked as a layer is decompressed to be compressed again
    dest_media_type: str | None = None  # with compress: the layer's media type in the new manifest
    #: A zstd:chunked source layer's annotations: its TOC is checked against its content as it passes.
    toc: dict | None = None
    annotations: dict | None = None  # set by the copy: the zstd:chunked TOC annotations of what it wrote

    @property
    def key(self):
        """What makes two transfers the same work: the destination digest, or the source blob and its treatment."""
        return self.dest_digest if self.dest_digest and not self.compress else (self.digest, self.compress, self.level)


@dataclass
class ManifestWrite:
    raw: bytes
    media_type: str
    digest: str
    top: bool
    # Set when layers are compressed during the copy: the manifest is finished (digests, sizes) after the blobs.
    pending_doc: dict | None = None
    #: What the destination must hold for this image to be up to date when its digest is not known beforehand:
    #: (media type, config digest, per layer ("digest", d) or ("compression", algorithm)); None for an index.
    expected: tuple | None = None
    #: For an index written with pending children: (platform, the child's write) per entry.
    children: list | None = None
    index_entries: list | None = None


def finish_manifest(write: ManifestWrite, blobs: list[BlobTransfer]) -> None:
    """Finish a pending manifest once its blobs are written: compressed layers' digests, sizes, media types and
    annotations into an image manifest; the finished children's digests into an index (children come first)."""
    if write.pending_doc is None:
        return
    if write.children is not None:
        entries = [
            dict(entry, mediaType=child.media_type, digest=child.digest, size=len(child.raw))
            for entry, (_platform, child) in zip(write.index_entries or [], write.children)
        ]
        target = "oci" if write.media_type == _media.OCI_INDEX else "v2s2"
        doc, write.media_type = rewrite_index(write.pending_doc, write.pending_doc.get("mediaType") or write.media_type, entries, target)
    else:
        compressed = {b.digest: b for b in blobs if b.compress and b.dest_digest}
        doc = json.loads(json.dumps(write.pending_doc))
        for layer in doc.get("layers") or []:
            done = compressed.get(layer.get("digest"))
            if done is None:
                continue
            layer["digest"], layer["size"] = done.dest_digest, done.dest_size
            if done.dest_media_type:
                layer["mediaType"] = done.dest_media_type
            annotations = {k: v for k, v in (layer.get("annotations") or {}).items() if k not in _media.ZSTD_CHUNKED_ANNOTATION_KEYS}
            annotations.update(done.annotations or {})
            if annotations:
                layer["annotations"] = annotations
            else:
                layer.pop("annotations", None)
    write.raw = go_json(doc)
    write.digest = sha256_digest(write.raw)
    write.pending_doc = None


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


def _diff_ids(source: ImageSource, config: dict, count: int, context: str) -> list[str]:
    """The config's diff IDs, one per layer of the manifest (they check each layer's uncompressed form)."""
    config_doc = _media.parse_config(source.get_blob_bytes(config["digest"], config.get("size")), context)
    diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != count or not all(isinstance(d, str) for d in diff_ids):
        raise OCIError("%s: the config lists %d diff IDs for %d layers" % (context, len(diff_ids), count), context)
    return diff_ids


def _source_compression(layer: dict, dest: ImageDestination, context: str) -> str | None:
    """How a layer to be decompressed is compressed ("gzip", "zstd", None for a plain tar); Unsupported for others."""
    kind = _media.layer_compression(layer)
    if kind is None:
        raise Unsupported(
            "%s: layer %s is %s; %s needs image layers (tar, gzip or zstd)" % (context, layer["digest"], layer.get("mediaType"), dest.reference), context
        )
    return None if kind == "none" else (GZIP if kind == GZIP else ZSTD)


def _toc(layer: dict) -> dict | None:
    return layer.get("annotations") if _media.layer_compression(layer) == ZSTD_CHUNKED else None


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
            decompress = None if source.layers_stored_uncompressed else _source_compression(layer, dest, context)
            blobs.append(BlobTransfer(layer["digest"], layer.get("size"), layer.get("mediaType"), target["digest"], None, decompress, toc=_toc(layer)))
        new_raw = go_json(new_doc)
        return ManifestWrite(new_raw, _media.DOCKER_MANIFEST, sha256_digest(new_raw), False), blobs, config["digest"]
    algorithm = options.compression
    target_format = options.format
    if algorithm in (ZSTD, ZSTD_CHUNKED) and config.get("mediaType") in _media.IMAGE_CONFIG_TYPES:
        if target_format == "v2s2":
            raise OCIError("%s: Docker schema 2 has no zstd layer type: use format oci (or no format) with compression %s" % (context, algorithm), context)
        if media_type == _media.DOCKER_MANIFEST and any(_converts(layer, algorithm, source) for layer in doc.get("layers") or []):
            target_format = "oci"  # zstd layers exist only in OCI manifests (the config is rewritten as skopeo does)
    if target_format:
        new_doc, new_type = _convert(source, doc, media_type, target_format, context, blobs)
    else:
        new_doc, new_type = doc, media_type
    layers = new_doc.get("layers") or []
    converting = [_converts(layer, algorithm, source) and not layer.get("urls") for layer in layers]
    if not any(converting):
        for layer in layers:
            if not layer.get("urls"):  # foreign layers stay where their URLs point
                blobs.append(BlobTransfer(layer["digest"], layer.get("size"), layer.get("mediaType"), layer["digest"], layer.get("size"), toc=_toc(layer)))
        if new_doc is not doc:
            new_raw = go_json(new_doc)
            return ManifestWrite(new_raw, new_type, sha256_digest(new_raw), False), blobs, new_doc["config"]["digest"]
        return ManifestWrite(raw, media_type, sha256_digest(raw), False), blobs, config["digest"]
    # Layers compressed on the way: their digests, so the manifest's, are known only after the copy.
    diff_ids = None if source.layers_stored_uncompressed else _diff_ids(source, config, len(layers), context)
    expected_layers = []
    for position, (layer, convert) in enumerate(zip(layers, converting)):
        if not convert:
            expected_layers.append(("digest", layer["digest"]))
            if not layer.get("urls"):
                blobs.append(BlobTransfer(layer["digest"], layer.get("size"), layer.get("mediaType"), layer["digest"], layer.get("size"), toc=_toc(layer)))
            continue
        target = algorithm or GZIP
        expected_layers.append(("compression", target))
        blobs.append(
            BlobTransfer(
                layer["digest"],
                layer.get("size"),
                layer.get("mediaType"),
                None,
                None,
                decompress=None if source.layers_stored_uncompressed else _source_compression(layer, dest, context),
                compress=target,
                level=options.compression_level,
                diff_id=diff_ids[position] if diff_ids else None,
                dest_media_type=layer_type_for(layer.get("mediaType") or "", target, context),
                toc=_toc(layer),
            )
        )
    write = ManifestWrite(b"", new_type, "", False, pending_doc=new_doc, expected=(new_type, new_doc["config"]["digest"], expected_layers))
    return write, blobs, new_doc["config"]["digest"]


def _converts(layer: dict, algorithm: str | None, source: ImageSource) -> bool:
    """Whether this layer is compressed on the way: every layer a source serves uncompressed, else image layers
    not already in the asked compression (blobs that are not image layers stay as they are)."""
    if source.layers_stored_uncompressed:
        return True
    kind = _media.layer_compression(layer)
    return algorithm is not None and kind is not None and kind not in _SATISFIES[algorithm]


def _image_matches(doc: dict, media_type: str, expected: tuple) -> bool:
    want_type, want_config, want_layers = expected
    layers = doc.get("layers") or []
    if media_type != want_type or (doc.get("config") or {}).get("digest") != want_config or len(layers) != len(want_layers):
        return False
    for layer, (how, value) in zip(layers, want_layers):
        if how == "digest" and layer.get("digest") != value:
            return False
        if how == "compression" and _media.layer_compression(layer) != value:
            return False
    return True


def _holds_expected(dest: ImageDestination, top: ManifestWrite, context: str) -> bool:
    """Whether the destination already holds what a copy with layers compressed on the way would write."""
    try:
        with dest.open_current() as current:
            raw, media_type = current.get_manifest()
            doc, media_type = _media.parse_manifest(raw, media_type, str(dest.reference))
            if top.children is None:
                return not _media.is_index(media_type) and _image_matches(doc, media_type, top.expected)
            entries = doc.get("manifests") or [] if media_type == top.media_type else []
            if len(entries) != len(top.children):
                return False
            for entry, (platform, child) in zip(entries, top.children):
                if _media.platform_string(entry.get("platform") or {}) != _media.platform_string(platform or {}):
                    return False
                if child.expected is None:
                    if entry.get("digest") != child.digest:
                        return False
                    continue
                child_raw, child_type = current.get_manifest(entry["digest"])
                child_doc, child_type = _media.parse_manifest(child_raw, child_type or entry.get("mediaType"), str(dest.reference))
                if not _image_matches(child_doc, child_type, child.expected):
                    return False
            return True
    except (NotFound, LocalFormatError):
        return False


def plan_copy(source: ImageSource, dest: ImageDestination, options: CopyOptions) -> CopyPlan:
    """Decide what the copy would write, and whether the destination already holds it. Reads only."""
    context = str(source.reference)
    if options.format and options.preserve_digests:
        raise OCIError("format conversion changes digests: do not combine format with preserve_digests", context)
    if options.compression_level is not None and not options.compression:
        raise OCIError("compression_level applies to the compression it names: set compression too", context)
    if options.compression:
        check_level(options.compression, options.compression_level)
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
            children = []
            seen_blobs: set = set()
            for entry in entries:
                if mode == "index_only":
                    new_entries.append(entry)
                    continue
                child_raw, child_type = source.get_manifest(entry["digest"])
                write, child_blobs, _unused = _plan_image(source, dest, child_raw, child_type or entry.get("mediaType"), options, context)
                manifests.append(write)
                children.append((entry.get("platform"), write))
                for blob in child_blobs:
                    if blob.key not in seen_blobs:
                        seen_blobs.add(blob.key)
                        blobs.append(blob)
                new_entries.append(dict(entry, mediaType=write.media_type, digest=write.digest, size=len(write.raw)))
            converts_index = bool(options.format) and top_type != _convert_index_type(options.format or "")
            pending = any(write.pending_doc is not None for _platform, write in children)
            if pending:
                # The children's digests are known after their layers are compressed; the index is finished then.
                index_type = _convert_index_type(options.format) if options.format else top_type
                if index_type == _media.DOCKER_LIST and any(write.media_type == _media.OCI_MANIFEST for _platform, write in children):
                    index_type = _media.OCI_INDEX  # a Docker list does not hold OCI manifests
                top_write = ManifestWrite(b"", index_type, "", True, pending_doc=top_doc, children=children, index_entries=entries)
            elif mode in ("all", "index_only") and new_entries == entries and not converts_index:
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
        # up to date means: the destination holds the same content in that compression (see _holds_expected).
        if options.preserve_digests:
            raise OCIError(
                "%s: its layers get compressed for %s, which changes digests; unset preserve_digests" % (context, dest.reference),
                context,
            )
        before = dest.current_digest()
        same = before is not None and _holds_expected(dest, top, context)
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
