# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy engine: plan (what would change) -> blobs -> manifests (children before index) -> commit.

``plan_copy`` is the one function that decides whether the destination is up to date; check
mode, diff and the real run all use its answer. The engine never asks which transport it
holds: what differs is expressed by attributes of the destination (can_hold_index,
wants_uncompressed_layers, can_mount_from, identity, required_format).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from . import _media
from ._compression import GunzipReader, GzipCompressReader
from ._convert import convert_manifest, go_json, oci_config_from_docker, rewrite_index, uncompressed_manifest
from ._digest import VerifyingReader, sha256_digest
from ._errors import ConnectionFailure, OCIError, Unsupported
from ._options import ConnectionOptions
from ._reference import ImageReference
from ._retry import backoff_delay, pause, shared_budget
from ._transports._base import ImageDestination, ImageSource
from ._transports._table import open_destination, open_source

_SPOOL_CHUNK = 1024 * 1024
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


class BlobLedger:
    """Which blobs are landing, or have landed, where — across the images of one task.

    Only for destinations whose blobs become visible on upload (``dest.blob_scope()`` not None):
    the first copy that needs a blob uploads it, others needing the same blob there wait for it
    and count it as skipped instead of uploading it again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict = {}
        self._landed: set = set()

    def claim(self, key) -> threading.Event | None:
        """None when the caller must transfer the blob (and then call ``done``); else an event to wait on."""
        with self._lock:
            event = self._events.get(key)
            if event is None:
                self._events[key] = threading.Event()
                return None
            return event

    def done(self, key, landed: bool) -> None:
        with self._lock:
            event = self._events.pop(key) if not landed else self._events[key]
            if landed:
                self._landed.add(key)
        event.set()

    def landed(self, key) -> bool:
        with self._lock:
            return key in self._landed


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


def _effective_multi_arch(dest: ImageDestination, options: CopyOptions) -> str:
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
    if getattr(source, "layers_stored_uncompressed", False):
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
        mode = _effective_multi_arch(dest, options)
        if mode == "system":
            wanted = options.platforms[0] if options.platforms else _media.host_platform()
            chosen = _media.select_manifest(top_doc, wanted, context)
            child_raw, child_type = source.get_manifest(chosen["digest"])
            write, blobs, config_digest = _plan_image(source, dest, child_raw, child_type or chosen.get("mediaType"), options, context)
            write.top = True
            manifests.append(write)
        else:
            if mode == "subset":
                entries = []
                for platform in options.platforms or []:
                    entry = _media.select_manifest(top_doc, platform, context)
                    if entry not in entries:
                        entries.append(entry)
            else:
                entries = list(top_doc.get("manifests") or [])
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


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.copied = 0
        self.skipped = 0
        self.mounted = 0
        self.bytes = 0

    def add(self, kind: str, nbytes: int = 0) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            self.bytes += nbytes


def _compress_to_spool(source: ImageSource, blob: BlobTransfer) -> tuple[str, str, int]:
    """Gzip a layer the source serves uncompressed into a temporary file; (path, digest, size)."""
    stream = source.open_blob(blob.digest, blob.size)
    fd, path = tempfile.mkstemp(prefix="oci-images-layer-", suffix=".tar.gz")
    hasher = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            reader = GzipCompressReader(stream)
            while True:
                chunk = reader.read(_SPOOL_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                hasher.update(chunk)
                size += len(chunk)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        stream.close()
    return path, "sha256:" + hasher.hexdigest(), size


def _put_compressed(source: ImageSource, dest: ImageDestination, blob: BlobTransfer, counters: _Counters, context: str) -> None:
    path, digest, size = _compress_to_spool(source, blob)
    try:
        blob.dest_digest, blob.dest_size = digest, size
        if dest.has_blob(digest, size):
            counters.add("skipped")
            return
        with open(path, "rb") as spooled:
            dest.put_blob(VerifyingReader(spooled, digest, size, context), digest, size, blob.media_type)
        counters.add("copied", blob.size or size)
    finally:
        os.unlink(path)


def _transfer_blob(
    source: ImageSource, dest: ImageDestination, blob: BlobTransfer, counters: _Counters, options: CopyOptions, cancelled: threading.Event
) -> None:
    if cancelled.is_set():
        return
    scope = dest.blob_scope()
    ledger = options.ledger if scope is not None and not blob.compress else None
    if ledger is None:
        _transfer_blob_once(source, dest, blob, counters, options.retries, cancelled)
        return
    key = (scope, blob.dest_digest)
    while True:
        waiting = ledger.claim(key)
        if waiting is None:
            break
        waiting.wait()
        if ledger.landed(key):
            counters.add("skipped")
            return
    landed = False
    try:
        _transfer_blob_once(source, dest, blob, counters, options.retries, cancelled)
        landed = not cancelled.is_set()
    finally:
        ledger.done(key, landed)


def _transfer_blob_once(source: ImageSource, dest: ImageDestination, blob: BlobTransfer, counters: _Counters, retries: int, cancelled: threading.Event) -> None:
    """Make one blob present; every request made for it draws on one retry budget (see ``_retry``)."""
    context = "%s -> %s" % (source.reference, dest.reference)
    with shared_budget(retries) as budget:
        if not blob.compress:
            # Within one registry a mount is one request whether or not the blob is already there, so it goes first.
            if dest.can_mount_from(source) and dest.mount_blob(blob.dest_digest or "", source):
                counters.add("mounted")
                return
            if dest.has_blob(blob.dest_digest or "", blob.dest_size):
                counters.add("skipped")
                return
        while True:
            try:
                _send_blob(source, dest, blob, counters, context)
                return
            except ConnectionFailure:
                # The registry did not take the upload (its body is spent): start the blob over while retries last.
                if cancelled.is_set() or not budget.take():
                    raise
                pause(backoff_delay(budget.spent - 1))


def _send_blob(source: ImageSource, dest: ImageDestination, blob: BlobTransfer, counters: _Counters, context: str) -> None:
    if blob.compress:
        _put_compressed(source, dest, blob, counters, context)
        return
    if blob.data is not None:
        dest.put_blob(
            VerifyingReader(io.BytesIO(blob.data), blob.dest_digest or "", len(blob.data), context),
            blob.dest_digest or "",
            len(blob.data),
            blob.media_type,
        )
        counters.add("copied", len(blob.data))
        return
    stream = source.open_blob(blob.digest, blob.size)
    reader: VerifyingReader = stream
    if blob.decompress:
        reader = VerifyingReader(GunzipReader(stream, context), blob.dest_digest or "", None, context)  # type: ignore[arg-type]
    try:
        dest.put_blob(reader, blob.dest_digest or "", blob.dest_size, blob.media_type)
    finally:
        reader.close()
    counters.add("copied", stream.bytes_read or (blob.size or 0))


def _finish_manifest(write: ManifestWrite, blobs: list[BlobTransfer]) -> None:
    """Put the digests and sizes of layers compressed during the copy into a pending manifest."""
    if write.pending_doc is None:
        return
    compressed = {b.digest: b for b in blobs if b.compress and b.dest_digest}
    doc = json.loads(json.dumps(write.pending_doc))
    for layer in doc.get("layers") or []:
        done = compressed.get(layer.get("digest"))
        if done is not None:
            layer["digest"], layer["size"] = done.dest_digest, done.dest_size
    write.raw = go_json(doc)
    write.digest = sha256_digest(write.raw)
    write.pending_doc = None


def execute_plan(plan: CopyPlan, source: ImageSource, dest: ImageDestination, options: CopyOptions) -> dict:
    """Carry out a plan: blobs in parallel, then manifests children first, then commit."""
    counters = _Counters()
    cancelled = threading.Event()
    workers = max(1, min(options.parallel, len(plan.blobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oci-images-blob") as pool:
        futures = [pool.submit(_transfer_blob, source, dest, blob, counters, options, cancelled) for blob in plan.blobs]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failure = next((f.exception() for f in done if f.exception() is not None), None)
        if failure is not None:
            cancelled.set()
            for future in pending:
                future.cancel()
            wait(pending)
            raise failure
    for write in plan.manifests:
        _finish_manifest(write, plan.blobs)
        dest.put_manifest(write.raw, write.media_type, write.digest, write.top)
    dest.commit()
    top = plan.manifests[-1].digest if dest.identity == "manifest" else plan.dest_digest_after
    return {"copied": counters.copied, "skipped": counters.skipped, "mounted": counters.mounted, "bytes": counters.bytes, "digest": top}


def predict_blobs(plan: CopyPlan, dest: ImageDestination, source: ImageSource) -> dict:
    """What a real run would do with each blob, asked read-only (check mode)."""
    if dest.can_mount_from(source):
        return {"copied": 0, "skipped": 0, "mounted": len(plan.blobs)}
    skipped = sum(1 for blob in plan.blobs if blob.dest_digest and dest.has_blob(blob.dest_digest, blob.dest_size))
    return {"copied": len(plan.blobs) - skipped, "skipped": skipped, "mounted": 0}


def _unchanged_by_head(source: ImageSource, dest: ImageDestination, options: CopyOptions) -> str | None:
    """The shared digest when one HEAD per side proves the destination up to date, else None.

    Only when the copy would write the source's top manifest unchanged (no conversion, no subset,
    a destination that holds an index and is judged by manifest digest), so the answer is the one
    ``plan_copy`` would give, without reading the source manifest (friendly to pull rate limits).
    """
    if options.force or options.format or options.platforms or options.multi_arch == "system":
        return None
    if not dest.can_hold_index or dest.identity != "manifest":
        return None
    src_digest = source.head_digest()
    if src_digest is None or dest.current_digest() != src_digest:
        return None
    return src_digest


def copy_image(
    src: ImageReference,
    dest: ImageReference,
    src_options: ConnectionOptions,
    dest_options: ConnectionOptions,
    options: CopyOptions,
    check_mode: bool = False,
) -> dict:
    """Copy one image (or index) and return its result entry; in check mode, only the prediction."""
    started = time.monotonic()
    with open_source(src, src_options) as source, open_destination(dest, dest_options) as destination:
        same = _unchanged_by_head(source, destination, options)
        if same is not None:
            result = {
                "src": str(source.reference),
                "dest": str(dest),
                "src_digest": same,
                "dest_digest_before": same,
                "dest_digest_after": same,
                "changed": False,
                "blobs": {"copied": 0, "skipped": 0, "mounted": 0},
                "bytes_copied": 0,
                "seconds": round(time.monotonic() - started, 3),
            }
            if source.location:
                result["src_location"] = source.location
            return result
        plan = plan_copy(source, destination, options)
        result = {
            "src": plan.src,
            "dest": plan.dest,
            "src_digest": plan.src_digest,
            "dest_digest_before": plan.dest_digest_before,
            "dest_digest_after": plan.dest_digest_after if plan.changed else plan.dest_digest_before,
            "changed": plan.changed,
            "blobs": {"copied": 0, "skipped": 0, "mounted": 0},
            "bytes_copied": 0,
        }
        if plan.changed:
            if check_mode:
                result["blobs"] = predict_blobs(plan, destination, source)
            else:
                stats = execute_plan(plan, source, destination, options)
                result["bytes_copied"] = stats.pop("bytes")
                result["dest_digest_after"] = stats.pop("digest")
                result["blobs"] = stats
        if source.location:
            result["src_location"] = source.location
    result["seconds"] = round(time.monotonic() - started, 3)
    return result
