# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Editing an OCI layout in place: its lock, index.json rewrites, and which blobs entries still reach.

Whoever changes ``index.json`` or removes blobs holds ``locked_layout`` for the whole
read-modify-write: an exclusive ``flock`` on the layout directory itself, so no lock file is
left in the layout and a killed process releases it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

from .. import _media
from .._errors import LocalFormatError
from .._reference import validate_digest
from ._directory import TEMP_PREFIX
from ._oci_layout import INDEX_FILE, REF_NAME_ANNOTATION, blob_path

try:
    import fcntl

    HAS_FCNTL = True
except ImportError:  # pragma: no cover - not POSIX
    HAS_FCNTL = False


@contextlib.contextmanager
def locked_layout(path: str) -> Iterator[None]:
    """Hold the layout's exclusive lock (blocks until the holder lets go)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if HAS_FCNTL:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def read_index(path: str, context: str) -> dict:
    """The layout's index.json, parsed and validated."""
    try:
        with open(os.path.join(path, INDEX_FILE), "rb") as f:
            raw = f.read(_media.MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise LocalFormatError("%s: %s is not an OCI image layout (no index.json)" % (context, path), context) from None
    doc, _ = _media.parse_manifest(raw, _media.OCI_INDEX, "%s (index.json)" % context)
    return doc


def write_index(path: str, index: dict) -> None:
    """Replace index.json atomically (a temp file in the layout, fsynced, renamed over it)."""
    target = os.path.join(path, INDEX_FILE)
    tmp = os.path.join(path, "%sindex-%d.json" % (TEMP_PREFIX, os.getpid()))
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(index, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


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
