# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Editing an OCI layout in place for deletes: index.json rewrites, and which blobs entries still reach.

Whoever changes ``index.json`` or removes blobs holds the writer's ``LayoutLock`` (an exclusive
``flock`` on ``<layout>/.oci-images.lock``) for the whole read-modify-write, so a delete and a
concurrent ``image_copy`` into the same layout never lose each other's changes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .. import _media
from .._errors import LocalFormatError
from .._reference import validate_digest
from ._directory import replace_file, sync_directory
from ._oci_layout import INDEX_FILE, REF_NAME_ANNOTATION, LayoutLock, blob_path, index_json_bytes


@contextlib.contextmanager
def locked_layout(path: str) -> Iterator[None]:
    """Hold the layout's exclusive lock, the one OCILayoutDestination takes (blocks until the holder lets go)."""
    with LayoutLock(path):
        yield


def read_index(path: str, context: str) -> dict:
    """The layout's index.json, parsed and validated."""
    try:
        with open(os.path.join(path, INDEX_FILE), "rb") as f:
            raw = f.read(_media.MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise LocalFormatError("%s: %s is not an OCI image layout (no index.json)" % (context, path), context) from None
    return _media.parse_manifest(raw, _media.OCI_INDEX, "%s (index.json)" % context)[0]


def write_index(path: str, index: dict) -> None:
    """Replace index.json atomically, in the byte form skopeo writes."""
    replace_file(os.path.join(path, INDEX_FILE), index_json_bytes(index))
    sync_directory(path)


def entries_named(index: dict, ref: str) -> list[dict]:
    """The index.json entries whose ref name is ``ref``."""
    return [d for d in index.get("manifests") or [] if (d.get("annotations") or {}).get(REF_NAME_ANNOTATION) == ref]


def reachable_blobs(path: str, descriptors: list[dict], context: str) -> set[str]:
    """Digests of every blob the descriptors reach: the manifests, an index's children, configs, layers."""
    found: set[str] = set()
    pending = [d for d in descriptors if isinstance(d, dict) and d.get("digest")]
    while pending:
        descriptor = pending.pop()
        digest = descriptor["digest"]
        if digest in found:
            continue
        validate_digest(digest, context)
        found.add(digest)
        media_type = descriptor.get("mediaType") or ""
        if media_type not in _media.MANIFEST_MEDIA_TYPES:
            continue
        try:
            with open(os.path.join(path, *blob_path(digest).split("/")), "rb") as f:
                raw = f.read(_media.MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            continue
        doc, media_type = _media.parse_manifest(raw, media_type, "%s manifest %s" % (context, digest))
        if _media.is_index(media_type):
            pending.extend(d for d in doc.get("manifests") or [] if isinstance(d, dict))
        elif media_type in _media.IMAGE_MEDIA_TYPES:
            pending.extend(d for d in [doc.get("config") or {}, *(doc.get("layers") or [])] if isinstance(d, dict))
    return found


def remove_blobs(path: str, digests: set[str]) -> int:
    """Delete these blob files; returns the bytes removed (files already gone count 0)."""
    freed = 0
    for digest in sorted(digests):
        file_path = os.path.join(path, *blob_path(digest).split("/"))
        try:
            size = os.stat(file_path).st_size
            os.unlink(file_path)
        except FileNotFoundError:
            continue
        freed += size
    return freed
