# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Air-gapped mirrors: what is checked before images read from a local tree or bundle move any tag.

``verify_images`` reads every manifest and every blob the images of a batch need from their local
source, checking each against its digest and size, before the first copy starts: a damaged or
incomplete bundle fails as a whole, naming what is missing or wrong, and nothing is written at
the destination. A blob the bundle leaves out on purpose (a delta export, see ``_inventory``) must
already be at the destination. See docs/air-gap.md.
"""

from __future__ import annotations

from . import _media
from ._errors import DigestMismatch, LocalFormatError, NotFound, OCIError
from ._options import ConnectionOptions
from ._transports._table import open_destination, open_source

_CHUNK = 1 << 20


def image_needs(source, context: str) -> list[tuple[str, int | None, str]]:
    """(digest, size, what) of every blob the image or index needs, children's included; manifests are read and checked."""
    raw, media_type = source.get_manifest()
    needs: list[tuple[str, int | None, str]] = []
    pending = [(raw, media_type)]
    while pending:
        raw, media_type = pending.pop()
        doc, media_type = _media.parse_manifest(raw, media_type, context)
        if _media.is_index(media_type):
            for child in doc.get("manifests") or []:
                child_raw, child_type = source.get_manifest(child["digest"])
                pending.append((child_raw, child_type))
        else:
            config = doc.get("config") or {}
            if config.get("digest"):
                needs.append((config["digest"], config.get("size"), "config"))
            for layer in doc.get("layers") or []:
                if layer.get("digest") and not layer.get("urls"):
                    needs.append((layer["digest"], layer.get("size"), "layer"))
    return needs


def verify_images(pairs, dest_options: ConnectionOptions) -> tuple[dict, dict[str, list[str]]]:
    """Check every manifest and blob the pairs' local sources hold against its digest and size, each blob once.

    A blob missing from the source is fine when the pair's destination already has it (a delta bundle); otherwise
    every missing or damaged blob is named, with the image that needs it, in one OCIError. Returns the counts, and
    the blobs each source image needs (by its reference).
    """
    checked: dict[str, None] = {}
    missing: dict[str, list[str]] = {}
    damaged: list[str] = []
    held: set[str] = set()
    checked_bytes = 0
    needed: dict[str, list[str]] = {}
    for pair in pairs:
        context = str(pair.src)
        try:
            with open_source(pair.src, pair.src_options) as source:
                needs = image_needs(source, context)
                needed[context] = [digest for digest, _size, _what in needs]
                absent = []
                for digest, size, what in needs:
                    if digest in checked:
                        continue
                    try:
                        with source.open_blob(digest, size) as reader:
                            while reader.read(_CHUNK):
                                pass
                            checked_bytes += reader.bytes_read
                        checked[digest] = None
                    except NotFound:
                        absent.append((digest, size, what))
                    except DigestMismatch as exc:
                        damaged.append(exc.msg)
                        checked[digest] = None
        except (NotFound, DigestMismatch, LocalFormatError) as exc:
            damaged.append(exc.msg)
            continue
        if absent:
            with open_destination(pair.dest, dest_options) as dest:
                for digest, size, what in absent:
                    if dest.has_blob(digest, size):
                        held.add(digest)
                    else:
                        missing.setdefault(digest, []).append("%s of %s" % (what, pair.src))
    problems = ["blob %s is missing (the %s)" % (digest, ", ".join(needed)) for digest, needed in sorted(missing.items())] + damaged
    if problems:
        where = pairs[0].src if pairs else ""
        raise OCIError(
            "%d problem%s in the images to import; nothing was written (no tag moved): %s. Export them again, or bring the "
            "missing files, and run the import again" % (len(problems), "" if len(problems) == 1 else "s", "; ".join(problems)),
            str(where),
        )
    return {"blobs": len(checked), "bytes": checked_bytes, "held_by_destination": len(held)}, needed
