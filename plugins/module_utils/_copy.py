# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy engine: a plan (``_plan.plan_copy``) carried out -> blobs -> manifests (children before index) -> commit.

Blobs move in parallel through one retry budget each; a ledger shared by the images of a batch
(``_blob_reuse.BlobLedger``) makes a blob cross once per domain (a registry): other places of the
domain (repositories) mount it from where it landed, or from where the source or an earlier run
(the blob cache) says it is; ``predict_blobs`` counts the same way for check mode. The engine never
asks which transport it holds: what differs is expressed by attributes of the destination
(blob_scope, mount_from, identity) and of the source (blob_scope).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from functools import partial

from ._blob_reuse import BlobLedger
from ._compression import check_layer_bytes, compressing_reader, decompressing_reader
from ._digest import VerifyingReader
from ._errors import BlobsMissing, ConnectionFailure, LocalIOError, OCIError
from ._options import ConnectionOptions
from ._plan import BlobTransfer, CopyOptions, CopyPlan, finish_manifest, plan_copy
from ._reference import ImageReference
from ._retry import backoff_delay, pause, shared_budget
from ._transports._base import ImageDestination, ImageSource
from ._transports._table import open_destination, open_source

_SPOOL_CHUNK = 1024 * 1024


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


def _layer_reader(source: ImageSource, blob: BlobTransfer, context: str):
    """The source's blob as the destination needs it: as stored (its declared compression and any zstd:chunked TOC
    checked as it passes), or decompressed (its uncompressed digest checked too when known)."""
    stream = source.open_blob(blob.digest, blob.size)
    try:
        if blob.decompress:
            checked = check_layer_bytes(stream, blob.media_type, blob.digest, blob.size, context)
            reader = decompressing_reader(checked, blob.decompress, context, _toc_check(blob, context))
            expected = blob.diff_id if blob.compress else blob.dest_digest
            if not expected:
                return reader, stream
            # The uncompressed form must be what the config's diff ID says.
            return VerifyingReader(reader, expected, None, context, "the uncompressed content of layer %s" % blob.digest), stream  # type: ignore[arg-type]
        if blob.data is not None or source.layers_stored_uncompressed:
            return stream, stream  # a blob the copy made, or a tar served under a gzip type (as skopeo presents it)
        return check_layer_bytes(stream, blob.media_type, blob.digest, blob.size, context, _toc_check(blob, context)), stream
    except BaseException:
        stream.close()
        raise


def _toc_check(blob: BlobTransfer, context: str):
    """A zstd:chunked layer's TOC check (``_zstd_chunked.TocCheck``), or None for other layers."""
    if not blob.toc:
        return None
    from ._zstd_chunked import TocCheck

    return TocCheck(context, blob.digest, blob.toc)


def _compress_to_spool(source: ImageSource, blob: BlobTransfer, context: str) -> tuple[str, str, int]:
    """Compress a layer (decompressed first when the source compressed it) into a temporary file; (path, digest, size)."""
    reader, _unused = _layer_reader(source, blob, context)
    doing = "compressing layer %s into a temporary file" % blob.digest
    try:
        fd, path = tempfile.mkstemp(prefix="oci-images-layer-", suffix=".blob")
    except OSError as exc:
        reader.close()
        raise LocalIOError.from_os_error(exc, str(source.reference), doing, tempfile.gettempdir()) from None
    hasher = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            compressor = compressing_reader(reader, blob.compress or "", blob.level, context)
            while True:
                chunk = compressor.read(_SPOOL_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                hasher.update(chunk)
                size += len(chunk)
        blob.annotations = getattr(compressor, "annotations", None)
    except OSError as exc:
        os.unlink(path)
        if exc.errno is None:
            raise
        raise LocalIOError.from_os_error(exc, str(source.reference), doing, path) from None
    except BaseException:
        os.unlink(path)
        raise
    finally:
        reader.close()
    return path, "sha256:" + hasher.hexdigest(), size


def _put_compressed(source: ImageSource, dest: ImageDestination, blob: BlobTransfer, counters: _Counters, context: str) -> None:
    path, digest, size = _compress_to_spool(source, blob, context)
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
    if ledger is None or scope is None:
        _transfer_blob_once(source, dest, blob, counters, options.retries, cancelled)
        return
    domain, place = scope
    digest = blob.dest_digest or ""
    while True:
        waiting = ledger.claim((domain, digest))
        if waiting is None:
            work = partial(_transfer_blob_once, source, dest, blob, counters, options.retries, cancelled, ledger)
            _claimed(ledger, (domain, digest), domain, place, digest, work, cancelled)
            return
        if not waiting.is_set():
            waiting.wait()
            continue  # claimed again: landed (the event stays set) or not (the claim is free)
        # Another copy of the task put it in this domain: here already, or mounted from there (once per place).
        if ledger.known_here(domain, place, digest):
            counters.add("skipped")
            return
        waiting = ledger.claim((domain, digest, place))
        if waiting is None:
            work = partial(_reuse_in_domain, source, dest, blob, counters, options.retries, cancelled, ledger)
            _claimed(ledger, (domain, digest, place), domain, place, digest, work, cancelled)
            return
        waiting.wait()


def _claimed(ledger: BlobLedger, key: tuple, domain: str, place: str, digest: str, work, cancelled: threading.Event) -> None:
    """Do the work for a claim; the blob is then known in ``place`` and the claim's waiters go on."""
    landed = False
    try:
        work()
        landed = not cancelled.is_set()
        if landed:
            ledger.record(domain, place, [digest])
    finally:
        ledger.done(key, landed)


def _reuse_in_domain(
    source: ImageSource, dest: ImageDestination, blob: BlobTransfer, counters: _Counters, retries: int, cancelled: threading.Event, ledger: BlobLedger
) -> None:
    """The blob landed in another place of the domain: mount it from there, else make it present as usual."""
    domain, place = dest.blob_scope()  # type: ignore[misc]
    digest = blob.dest_digest or ""
    for other in ledger.candidates(domain, place, digest):
        if _mount(dest, digest, other):
            counters.add("mounted")
            return
        ledger.forget(domain, other, digest)
    _transfer_blob_once(source, dest, blob, counters, retries, cancelled, ledger)


def _source_place(source: ImageSource, dest: ImageDestination, blob: BlobTransfer) -> str | None:
    """The source's place when the destination's domain holds it and the blob passes as stored (mountable from it)."""
    scope, origin = dest.blob_scope(), source.blob_scope()
    if scope is None or origin is None or origin[0] != scope[0] or origin[1] == scope[1]:
        return None
    return origin[1] if blob.data is None and not blob.decompress and not blob.compress else None


def _mount(dest: ImageDestination, digest: str, place: str) -> bool:
    """One mount; a refusal or an error falls back to the next way (the upload), silently."""
    try:
        return dest.mount_from(digest, place)
    except OCIError:
        return False


def _transfer_blob_once(
    source: ImageSource,
    dest: ImageDestination,
    blob: BlobTransfer,
    counters: _Counters,
    retries: int,
    cancelled: threading.Event,
    ledger: BlobLedger | None = None,
) -> None:
    """Make one blob present; every request made for it draws on one retry budget (see ``_retry``).

    In order: a mount from the source's repository (within one registry a mount is one request whether or
    not the blob is already there, so it goes first); what the destination has; a mount from a place the
    ledger knows (this task's other repositories, then the blob cache's); the upload.
    """
    context = "%s -> %s" % (source.reference, dest.reference)
    with shared_budget(retries) as budget:
        if not blob.compress:
            digest = blob.dest_digest or ""
            origin = _source_place(source, dest, blob)
            if origin is not None and _mount(dest, digest, origin):
                counters.add("mounted")
                return
            if dest.has_blob(digest, blob.dest_size):
                counters.add("skipped")
                return
            scope = dest.blob_scope()
            if ledger is not None and scope is not None:
                for place in ledger.candidates(scope[0], scope[1], digest):
                    if place != origin and _mount(dest, digest, place):
                        counters.add("mounted")
                        return
                    ledger.forget(scope[0], place, digest)
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
    reader, stream = _layer_reader(source, blob, context)
    try:
        dest.put_blob(reader, blob.dest_digest or "", blob.dest_size, blob.media_type)
    finally:
        reader.close()
    counters.add("copied", stream.bytes_read or (blob.size or 0))


def execute_plan(plan: CopyPlan, source: ImageSource, dest: ImageDestination, options: CopyOptions) -> dict:
    """Carry out a plan: blobs in parallel, then manifests children first, then commit."""
    counters = _Counters()
    cancelled = threading.Event()
    workers = max(1, min(options.parallel, len(plan.blobs)))
    dest.expect_blobs([(blob.dest_digest, blob.media_type) for blob in plan.blobs if blob.dest_digest])
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
        finish_manifest(write, plan.blobs)
        try:
            dest.put_manifest(write.raw, write.media_type, write.digest, write.top)
        except BlobsMissing:
            # Another writer into the same repository (a sliced mirror's other worker, pushing a shared layer) can
            # unlink a blob between our check and the manifest: put back what is missing, then ask once more.
            for blob in plan.blobs:
                if not dest.has_blob(blob.dest_digest or "", blob.dest_size):
                    _transfer_blob_once(source, dest, blob, counters, options.retries, cancelled)
            dest.put_manifest(write.raw, write.media_type, write.digest, write.top)
    dest.commit()
    _remember_places(plan, source, dest, options.ledger)
    top = plan.manifests[-1].digest if dest.identity == "manifest" else plan.dest_digest_after
    return {"copied": counters.copied, "skipped": counters.skipped, "mounted": counters.mounted, "bytes": counters.bytes, "digest": top}


def _remember_places(plan: CopyPlan, source: ImageSource, dest: ImageDestination, ledger: BlobLedger | None) -> None:
    """After a copy: every blob of the image is in the destination's place, the source's blobs in the source's."""
    if ledger is None:
        return
    scope, origin = dest.blob_scope(), source.blob_scope()
    if scope is not None:
        ledger.record(scope[0], scope[1], [b.dest_digest for b in plan.blobs if b.dest_digest])
    if origin is not None:
        ledger.record(origin[0], origin[1], [b.digest for b in plan.blobs if b.data is None])


def predict_blobs(plan: CopyPlan, dest: ImageDestination, source: ImageSource, ledger: BlobLedger | None = None) -> dict:
    """What a real run would do with each blob, asked read-only (check mode).

    It follows ``_transfer_blob``: a blob another copy of the batch already moves into the same domain counts
    as skipped (same place) or mounted (the ledger), then a mount from the source's repository, then what the
    destination has, then a mount from a place the ledger or the blob cache knows.
    """
    counts = {"copied": 0, "skipped": 0, "mounted": 0}
    scope = dest.blob_scope()
    for blob in plan.blobs:
        digest = blob.dest_digest or ""
        if blob.compress or scope is None:
            counts["copied" if blob.compress or not digest or not dest.has_blob(digest, blob.dest_size) else "skipped"] += 1
            continue
        answer = ledger.reserve(scope[0], scope[1], digest) if ledger is not None else None
        if answer is None and _source_place(source, dest, blob) is not None:
            answer = "mounted"
        if answer is None and dest.has_blob(digest, blob.dest_size):
            answer = "skipped"
        if answer is None and ledger is not None and ledger.candidates(scope[0], scope[1], digest):
            answer = "mounted"
        counts[answer or "copied"] += 1
    return counts


def _unchanged_by_head(source: ImageSource, dest: ImageDestination, options: CopyOptions) -> str | None:
    """The shared digest when one HEAD per side proves the destination up to date, else None.

    Only when the copy would write the source's top manifest unchanged (no conversion, no subset,
    a destination that holds an index and is judged by manifest digest), so the answer is the one
    ``plan_copy`` would give, without reading the source manifest (friendly to pull rate limits).
    """
    if options.force or options.format or options.compression or options.platforms or options.multi_arch == "system":
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
                result["blobs"] = predict_blobs(plan, destination, source, options.ledger)
                if plan.dest_digest_after is None:
                    result["note"] = "the layers are compressed during the copy, so the destination digest is known only after it"
            else:
                stats = execute_plan(plan, source, destination, options)
                result["bytes_copied"] = stats.pop("bytes")
                result["dest_digest_after"] = stats.pop("digest")
                result["blobs"] = stats
        if source.location:
            result["src_location"] = source.location
    result["seconds"] = round(time.monotonic() - started, 3)
    return result
