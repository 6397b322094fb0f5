# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batch engine: what a task names (one image, a list, a repository, a sync spec) copied as one batch.

``resolve_batch`` turns the task's selection into copy pairs (listing tags where needed);
``run_batch`` runs them: images in parallel, one blob ledger for the whole batch (a layer
shared by images of the batch crosses once per destination registry, and is mounted into its other
repositories; with ``blob_cache``, places learned in earlier runs too), referrers,
``keep_going``, one result entry per image, the summary, the diff and the failure message.
image_copy, the mirror role (through image_copy) and the benchmarks all run this code.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from ._air_gap import verify_images
from ._blob_reuse import BlobInfoCache, BlobLedger
from ._copy import CopyOptions, copy_image
from ._errors import OCIError, describe_os_error
from ._inventory import add_imported, held_blobs, read_inventory, write_inventory
from ._mirror import (
    CopyPair,
    LocalImages,
    MirrorTarget,
    TagSelection,
    is_repository,
    local_pairs,
    repository_pairs,
    select_repository_tags,
    slice_pairs,
    sync_pairs,
)
from ._options import ConnectionOptions
from ._reference import ImageReference, parse_reference
from ._transports._table import finish_many, images_in, open_source, prepare_many, transport_named, unfinished
from ._trust import Trust


@dataclass
class Selection:
    """What a task names; exactly one of ``src``, ``images``, ``sync`` or ``catalog`` is set."""

    src: str | None = None
    dest: str | None = None
    images: list[dict] | None = None
    tags: dict | None = None
    sync: dict | None = None
    scoped: bool = False
    append_suffix: str | None = None
    slice: tuple[int, int] | None = None  # (index, count)
    #: A registry or a namespace of it (``host[:port][/namespace]``): every repository it holds, selected by ``repositories``.
    catalog: str | None = None
    repositories: dict | None = None


@dataclass
class BatchOptions:
    """How a batch runs, beyond what each copy needs."""

    parallel_images: int = 4
    keep_going: bool = False
    referrers: bool = False
    #: Signature policy and signing (``_trust.Trust``): checked before each copy, signatures carried and made after.
    trust: Trust | None = None
    #: The inventory file of the air-gapped side (``_inventory``): read by an export into a bundle (only what the
    #: other side lacks is written), written by an import from a tree or bundle (what it now holds).
    inventory: str | None = None
    #: The blob cache file (``_blob_reuse.BlobInfoCache``): where blobs were seen in earlier runs; None: this task only.
    blob_cache: str | None = None


@dataclass
class Batch:
    """The copies a selection resolved to, and the failures met while resolving it (a tag list that failed)."""

    pairs: list[CopyPair] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    #: True when the task named one image (src/dest with a tag or digest): the result carries its digest.
    single: bool = False
    #: The local place of many images the copies write to (a dir: tree, a bundle), finished after they all succeed.
    place: ImageReference | None = None
    #: The local tree or bundle the copies read from: every image is verified before the first copy starts.
    source_place: ImageReference | None = None


def resolve_batch(selection: Selection, src_options: ConnectionOptions, keep_going: bool = False, parallel: int = 4) -> Batch:
    """The copy pairs a selection names. A tag list that fails is that repository's failure with ``keep_going``.

    ``parallel`` repositories of a catalog have their tags listed at the same time.
    """
    batch = Batch()

    def list_tags(reference: ImageReference, options: ConnectionOptions) -> list[str]:
        with open_source(reference, options) as source:
            return source.list_tags()

    if selection.sync is not None:
        failed = batch.failures.append if keep_going else None
        local = None
        if selection.src:
            # An import by the same spec as the export: every image read from the tree or bundle the export wrote.
            src = parse_reference(selection.src)
            held = None if src.is_registry else images_in(src, src_options)
            if held is None:
                raise OCIError("with sync, src names the tree or bundle an export of the same spec wrote, not one image: %s" % src, str(src))
            local = LocalImages(src, held, selection.scoped)
            batch.source_place = src
        batch.pairs = sync_pairs(
            selection.sync, selection.dest or "", src_options, list_tags, selection.scoped, selection.append_suffix, on_error=failed, local=local
        )
    elif selection.catalog is not None:
        from ._catalog import catalog_pairs, parse_catalog_scope

        batch.pairs = catalog_pairs(
            parse_catalog_scope(selection.catalog),
            selection.dest or "",
            src_options,
            list_tags,
            TagSelection.from_option(selection.tags),
            selection.repositories,
            selection.scoped,
            parallel,
            on_error=batch.failures.append if keep_going else None,
            created_of=lambda reference: _created_of(reference, src_options),
        )
    elif selection.images is not None:
        batch.pairs = [CopyPair(parse_reference(i["src"]), parse_reference(i["dest"]), src_options) for i in selection.images]
    else:
        src, dest = parse_reference(selection.src or ""), parse_reference(selection.dest or "")
        if is_repository(src):
            tag_selection = TagSelection.from_option(selection.tags)
            created = _created_of(src, src_options) if tag_selection.latest else None
            tags = select_repository_tags(list_tags(src, src_options), tag_selection, created)
            batch.pairs = repository_pairs(src, dest, tags, src_options, selection.scoped, selection.append_suffix)
        else:
            held = None if src.is_registry else images_in(src, src_options)
            if selection.tags:
                why = "%s holds many images (a tree or bundle)" % src if held is not None else "%s names one image" % src
                raise OCIError("tags selects tags of a registry repository: give src without a tag (%s)" % why, str(src))
            if held is not None:
                batch.pairs = local_pairs(held, src, dest, src_options, selection.scoped, selection.append_suffix)
                batch.source_place = src
            else:
                batch.pairs = [CopyPair(src, dest, src_options)]
                batch.single = True
    if selection.slice is not None:
        batch.pairs = slice_pairs(batch.pairs, *selection.slice)
    if not batch.single and selection.dest:
        batch.place = MirrorTarget.parse(selection.dest, "%s copies many images" % ("sync" if selection.sync is not None else selection.src or "catalog")).place
    return batch


def _created_of(src: ImageReference, options: ConnectionOptions):
    """For ``tags.latest`` on tags that are not versions: each tag's creation time from its config."""
    from ._inspect import describe_image

    def created(tag: str) -> str | None:
        with open_source(src.with_tag(tag), options) as source:
            return describe_image(source).get("created")

    return created


def _shown(place: ImageReference | None, dest: ImageReference) -> str:
    """How results name a destination: an image of an oci-archive bundle is written through a staging layout beside the
    archive, and named in the archive."""
    if place is not None and dest.ref_name and dest.path != place.path:
        return str(replace(place, ref_name=dest.ref_name))
    return str(dest)


def _failure(pair: CopyPair, msg: str, result: dict | None = None, place: ImageReference | None = None) -> dict:
    entry = dict(result or {"src": str(pair.src), "dest": _shown(place, pair.dest), "changed": False})
    entry.update(failed=True, msg=msg)
    return entry


def run_batch(
    batch: Batch,
    dest_options: ConnectionOptions,
    options: CopyOptions,
    batch_options: BatchOptions,
    check_mode: bool = False,
) -> dict:
    """Run every copy of the batch; returns the module result (without ``failed``/``msg``, see ``failure_message``)."""
    cache = None
    if options.ledger is None:
        cache = BlobInfoCache(batch_options.blob_cache, read_only=check_mode) if batch_options.blob_cache else None
        options = replace(options, ledger=BlobLedger(cache, read_only=check_mode))
    try:
        summary = _run_pairs(batch, dest_options, options, batch_options, check_mode)
        options.ledger.flush()  # type: ignore[union-attr]
    finally:
        if cache is not None:
            cache.close()
    if cache is not None and cache.problem:
        summary["warnings"] = [cache.problem]
    return summary


def _run_pairs(batch: Batch, dest_options: ConnectionOptions, options: CopyOptions, batch_options: BatchOptions, check_mode: bool) -> dict:
    if batch_options.referrers:
        local = next((p for p in batch.pairs if not (p.src.is_registry and p.dest.is_registry)), None)
        if local is not None:
            # Decided before anything is written: referrers name their subject in a registry repository.
            raise OCIError(
                "%s -> %s: referrers are copied between registries only (docker:// on both sides); set referrers: false for this copy"
                % (local.src, local.dest),
                str(local.src),
            )
    inventory_path = batch_options.inventory
    if inventory_path and batch.place is None and batch.source_place is None:
        raise OCIError(
            "inventory %s: an inventory is read by an export into a bundle (dest oci:PATH or oci-archive:PATH with many images) "
            "and written by an import from one (src a bundle or dir: tree); this task does neither" % inventory_path,
            inventory_path,
        )
    if inventory_path and batch.place is not None:
        dest_options = replace(dest_options, held_blobs=held_blobs(read_inventory(inventory_path)))
    verified, needed = verify_images(batch.pairs, dest_options) if batch.source_place is not None else (None, {})
    place_options = dest_options
    if batch.place is not None and dest_options.split_size and transport_named(batch.place.transport).writes_volumes:
        # A bundle archive in volumes: the images go into its staging layout whole, the volumes are cut when it is packed.
        dest_options = replace(dest_options, split_size=None)
    # What the place already holds is seen by the copies (in check mode, through where compare_at points them).
    compare_at = prepare_many(batch.place, place_options, check_mode) if batch.place is not None else None
    stop = threading.Event()

    def one(pair: CopyPair) -> dict | None:
        if stop.is_set():
            return None
        result: dict | None = None
        trust, admission = batch_options.trust, None
        try:
            if trust is not None:
                admission = trust.admit(pair.src, pair.dest, pair.src_options, dest_options, options, batch_options.referrers)
            dest = compare_at(pair.dest) if compare_at is not None else pair.dest
            result = copy_image(admission.source if admission else pair.src, dest, pair.src_options, dest_options, options, check_mode=check_mode)
            result["src"] = str(pair.src)
            result["dest"] = _shown(batch.place, pair.dest)
            if batch_options.referrers:
                from ._referrers import COSIGN_SUFFIXES, copy_referrers  # registries only: requests is imported then

                attached = copy_referrers(
                    pair.src,
                    pair.dest,
                    result,
                    pair.src_options,
                    dest_options,
                    lambda src, dest: copy_image(src, dest, pair.src_options, dest_options, options, check_mode=check_mode),
                    check_mode=check_mode,
                    # Signing with a sigstore key merges into the .sig tag (trust.finish) instead of replacing it.
                    suffixes=tuple(s for s in COSIGN_SUFFIXES if s != "sig") if trust is not None and trust.signs_sigstore else COSIGN_SUFFIXES,
                )
                result["referrers"] = attached["referrers"]
                result["changed"] = result["changed"] or attached["changed"]
            if admission is not None:
                trust.finish(admission, result, pair.dest, dest_options, check_mode)  # type: ignore[union-attr]
            return result
        except (OCIError, OSError) as exc:
            if not batch_options.keep_going:
                stop.set()
            msg = exc.msg if isinstance(exc, OCIError) else "%s -> %s: %s" % (pair.src, pair.dest, describe_os_error(exc))
            # The image itself may have been written before a referrer failed: the entry still says so.
            return _failure(pair, msg, result, batch.place)

    results: list = []
    if batch.pairs:
        with ThreadPoolExecutor(max_workers=max(1, min(batch_options.parallel_images, len(batch.pairs))), thread_name_prefix="oci-images-image") as pool:
            results = list(pool.map(one, batch.pairs))
    done = list(batch.failures) + [r for r in results if r is not None]
    failures = [r for r in done if r.get("failed")]
    waiting = None
    if batch.place is not None and not check_mode:
        if not failures and len(results) == len(batch.pairs):
            finish_many(batch.place, place_options, changed=any(r.get("changed") for r in done))
        else:
            waiting = unfinished(batch.place)
    if inventory_path and batch.source_place is not None and not check_mode:
        inventory = read_inventory(inventory_path)
        for pair, result in zip(batch.pairs, results):
            if result is not None and not result.get("failed") and pair.name:
                add_imported(inventory, pair.name, result["dest_digest_after"], result["dest"], needed.get(str(pair.src), []))
        write_inventory(inventory_path, inventory)
    ok = [r for r in done if not r.get("failed")]
    summary = {
        "changed": any(r.get("changed") for r in done),
        "results": done,
        "copied": sum(1 for r in ok if r.get("changed")),
        "unchanged": sum(1 for r in ok if not r.get("changed")),
        "failed_count": len(failures),
        "not_attempted": len(batch.pairs) - len(results) + sum(1 for r in results if r is None),
        "diff": {
            "before": {r["dest"]: r.get("dest_digest_before") for r in ok},
            "after": {r["dest"]: r.get("dest_digest_after") for r in ok},
        },
    }
    if verified is not None:
        summary["verified"] = verified
    if waiting:
        summary["unfinished"] = waiting
    if batch.single and ok:
        summary["digest"] = ok[0]["dest_digest_after"]
    return summary


def failure_message(summary: dict, single: bool) -> str | None:
    """The task's ``msg`` when copies failed: identical causes grouped ("3 images: ..."); None when none failed."""
    failures = [r for r in summary["results"] if r.get("failed")]
    if not failures:
        return None
    if single:
        return failures[0]["msg"]
    groups: dict[str, list[dict]] = {}
    for entry in failures:
        groups.setdefault(entry["msg"], []).append(entry)
    parts = []
    for msg, entries in groups.items():
        if len(entries) == 1:
            parts.append("%s -> %s: %s" % (entries[0]["src"], entries[0]["dest"], msg))
        else:
            parts.append("%d images: %s" % (len(entries), msg))
    total = len(failures) + summary["copied"] + summary["unchanged"] + summary["not_attempted"]
    skipped = summary["not_attempted"]
    tail = " (%d not attempted after the first failure; set keep_going to copy the rest)" % skipped if skipped else ""
    waiting = "; %s" % summary["unfinished"] if summary.get("unfinished") else ""
    return "%d of %d copies failed%s: %s%s" % (len(failures), total, tail, "; ".join(parts), waiting)
