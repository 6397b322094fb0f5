# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``oci-archive:PATH[:REF]`` — an OCI image layout packed in a tar: the layout's code over the tar's members.

Reading is the OCI layout source with the members of the tar in place of a directory's files.
Writing streams one new tar holding a layout with this one image (or index) and replaces PATH
with it on commit, as skopeo 1.9 does; a file that is not an OCI archive is never replaced.
With ``split_size`` the tar is written as volumes ``PATH.000``, ``PATH.001``, … and an index
(``_volumes``); a source reads PATH, or its volumes when PATH is absent.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import threading
import time
from dataclasses import replace

from .._digest import verify_bytes
from .._errors import NotFound, OCIError
from .._media import MAX_MANIFEST_BYTES
from .._options import ConnectionOptions
from .._reference import ImageReference, validate_digest
from ._base import ImageDestination
from ._local import DirectoryFiles, local_io, open_verified_blob
from ._oci_index import INDEX_FILE, LAYOUT_BYTES, LAYOUT_FILE, blob_path, index_entry, index_json_bytes, reachable_blobs, read_index
from ._oci_layout import OCILayoutSource, OCILayoutTransport, bundle_images, format_layout_reference, named_entry_digest, parse_layout_reference
from ._table import Transport, register
from ._tar import ArchiveFile, ArchiveFiles, TarBuilder, archive_has, drain, new_member
from ._volumes import SplitArchiveFile, has_volumes, remove_volumes


def _is_oci_archive(path: str) -> bool:
    return archive_has(path, INDEX_FILE)


class OCIArchiveSource(OCILayoutSource):
    """An OCI layout packed in a tar (``oci-archive:``), read in place."""

    kind = "OCI archive"
    #: "any": PATH, or its volumes when PATH is absent; a destination comparing asks for the form it writes
    form = "any"

    def open_files(self):
        return ArchiveFiles(self.reference.path or "", self.context, self.form)


class OCIArchiveDestination(ImageDestination):
    """Writes ``oci-archive:PATH[:REF]``: a tar of an OCI layout holding this one image (or index)."""

    can_hold_index = True
    required_format = "oci"  # a tar of an OCI layout holds OCI manifests

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference, options)
        self.context = str(reference)
        split_size = options.split_size if options is not None else None
        self.file: ArchiveFile | SplitArchiveFile
        if split_size:
            self.file = SplitArchiveFile(reference.path or "", split_size, "OCI archive", _is_oci_archive, self.context)
        else:
            self.file = ArchiveFile(reference.path or "", "OCI archive", _is_oci_archive, self.context)
        self.written: dict[str, int] = {}
        self._tar: TarBuilder | None = None
        self._lock = threading.Lock()
        self._entry: dict | None = None
        self._dirs: set[str] = set()
        self._mtime = int(time.time())

    def _member(self, name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        # Like skopeo, which tars a directory it wrote: the writer's ids, the current time, 0644/0755.
        info = new_member(name, size, kind)
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.mtime = self._mtime
        info.uid = os.getuid() if hasattr(os, "getuid") else 0
        info.gid = os.getgid() if hasattr(os, "getgid") else 0
        return info

    def _builder(self) -> TarBuilder:
        with self._lock:
            if self._tar is None:
                writer, spool_dir = self.file.open_tar()
                self._tar = TarBuilder(writer, spool_dir, self._member, self.context)
            return self._tar

    def _current_source(self) -> OCIArchiveSource | None:
        """A source reading the archive in the form this destination writes; None when it is not there in that form
        (an unsplit archive where volumes are asked for, or the other way round, is written again)."""
        if not self.file.exists():
            return None
        split = isinstance(self.file, SplitArchiveFile)
        if not split and has_volumes(self.file.path):
            return None
        source = OCIArchiveSource(self.reference, self.options)
        source.form = "split" if split else "whole"
        return source

    @local_io("reading what the destination holds now")
    def current_digest(self) -> str | None:
        source = self._current_source()
        return named_entry_digest(source) if source is not None else None

    @local_io("reading what the destination holds now")
    def open_current(self) -> OCIArchiveSource:
        source = self._current_source()
        if source is None:
            raise NotFound("%s: no archive in the form asked for" % self.context, self.context)
        return source

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        validate_digest(digest, self.context)
        return digest in self.written

    def _blob_member(self, tar: TarBuilder, digest: str) -> str:
        algorithm = digest.partition(":")[0]
        with self._lock:
            missing = [d for d in ("blobs", "blobs/" + algorithm) if d not in self._dirs]
            self._dirs.update(missing)
        for directory in missing:
            tar.add_special(directory, tarfile.DIRTYPE)
        return blob_path(digest)

    @local_io("writing the image")
    def put_blob(self, stream, digest: str, size: int | None, media_type: str | None = None) -> None:
        validate_digest(digest, self.context)
        if digest in self.written:
            drain(stream)
            return
        tar = self._builder()
        self.written[digest] = tar.add_member(self._blob_member(tar, digest), stream, size)

    @local_io("writing the image")
    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        validate_digest(digest, self.context)
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        tar = self._builder()
        if digest not in self.written:
            tar.add_member(self._blob_member(tar, digest), io.BytesIO(raw), len(raw))
            self.written[digest] = len(raw)
        if top:
            self._entry = index_entry(self.reference, raw, media_type, digest)

    @local_io("writing the bundle")
    def pack_layout(self, layout: str) -> None:
        """Write the OCI layout directory ``layout`` (a bundle staged beside the archive) as this archive, and commit.

        Every blob is checked against its digest on the way into the tar; a blob the layout does not hold (a delta
        bundle leaves out what the other side has) is left out.
        """
        files = DirectoryFiles(layout, self.context)
        raw_index = files.read(INDEX_FILE, MAX_MANIFEST_BYTES, self.context)
        index = read_index(layout, self.context)
        tar = self._builder()
        for digest in sorted(reachable_blobs(layout, index.get("manifests") or [], self.context)):
            if not files.has(blob_path(digest)):
                continue
            with open_verified_blob(files, blob_path(digest), digest, None, self.context) as stream:
                self.written[digest] = tar.add_member(self._blob_member(tar, digest), stream, stream.size)
        tar.add_bytes(INDEX_FILE, raw_index or b"")
        tar.add_bytes(LAYOUT_FILE, LAYOUT_BYTES)
        tar.finish()
        self.file.commit()

    @local_io("putting the image in place")
    def commit(self) -> None:
        if self._entry is None or self._tar is None:
            raise OCIError("%s: nothing to commit: no top-level manifest was written" % self.context, self.context)
        self._tar.add_bytes(INDEX_FILE, index_json_bytes({"schemaVersion": 2, "manifests": [self._entry]}))
        self._tar.add_bytes(LAYOUT_FILE, LAYOUT_BYTES)
        self._tar.finish()
        self.file.commit()
        if not isinstance(self.file, SplitArchiveFile):
            remove_volumes(self.file.path)  # volumes of an earlier write, now out of date

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
        self.file.abort()

    def close(self) -> None:
        self.abort()


class OCIArchiveTransport(Transport):
    name = "oci-archive"
    syntax = "oci-archive:PATH[:REF]"
    policy_scopes = "path"
    holds_names = True
    writes_volumes = True

    def parse(self, rest: str, text: str) -> ImageReference:
        return parse_layout_reference(self.name, rest, text)

    def format(self, reference: ImageReference) -> str:
        return format_layout_reference(reference)

    holds_many = "bundle"

    def __init__(self):
        #: Staging layouts unpacked from their archive by this process (prepare_many), packed again only when something changed.
        self.unpacked: set[str] = set()

    def images_in(self, reference: ImageReference, options: ConnectionOptions) -> list[tuple[str, ImageReference]] | None:
        return bundle_images(self.name, reference, OCIArchiveSource(reference, options))

    @staticmethod
    def staging_layout(reference: ImageReference) -> str:
        """Where a bundle is built before it is packed into the archive: a hidden OCI layout beside it, kept after a
        failed run so the next one continues (blobs already there are not fetched again)."""
        path = os.path.abspath(reference.path or "")
        return os.path.join(os.path.dirname(path), ".%s.oci-images-bundle" % os.path.basename(path))

    def image_in(self, reference: ImageReference, name: str) -> ImageReference:
        layout = replace(reference, transport=OCILayoutTransport.name, path=self.staging_layout(reference), ref_name=None, text="")
        return OCILayoutTransport().image_in(layout, name)

    def prepare_many(self, reference: ImageReference, options: ConnectionOptions, check_mode: bool):
        """An archive already there holds images the task may name again: they must stay up to date, not be written again.

        The archive (or its volumes) is unpacked into the staging layout, unless a staging layout is there already (a
        failed run's, which holds it); the copies then find what it holds, and the packing keeps every image of it. In
        check mode nothing is unpacked: each copy compares with the archive's image of the same name instead. An export
        with an inventory (a delta bundle) starts from an empty layout, so it holds only what the other side lacks.
        """
        files = ArchiveFiles(reference.path or "", "oci-archive:%s" % reference.path, "any")
        try:
            if not files.exists():
                return None
            if check_mode:
                return lambda dest: replace(reference, ref_name=dest.ref_name, text="")
            layout = self.staging_layout(reference)
            if options.held_blobs is not None or os.path.isdir(layout):
                return None
            _unpack(files, layout)
            self.unpacked.add(layout)
        finally:
            files.close()
        return None

    def unfinished(self, reference: ImageReference) -> str | None:
        layout = self.staging_layout(reference)
        if not os.path.isdir(layout):
            return None
        return "%s was not written; the images copied so far wait in %s, and the next run continues from them" % (reference.path, layout)

    def finish_many(self, reference: ImageReference, options: ConnectionOptions, changed: bool = True) -> None:
        layout = self.staging_layout(reference)
        if not os.path.isdir(layout):
            return
        if not changed and layout in self.unpacked:
            # Unpacked from the archive by this task and nothing written since: the archive already holds every image.
            self.unpacked.discard(layout)
            shutil.rmtree(layout)
            return
        destination = OCIArchiveDestination(reference, options)
        try:
            destination.pack_layout(layout)
        finally:
            destination.close()
        shutil.rmtree(layout)

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> OCIArchiveSource:
        return OCIArchiveSource(reference, options)

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> OCIArchiveDestination:
        return OCIArchiveDestination(reference, options)


@local_io("unpacking the bundle to add to it")
def _unpack(files: ArchiveFiles, layout: str) -> None:
    """The archive's layout (index, oci-layout and blobs, each blob checked against its name) as the directory ``layout``.

    Written under a temporary name beside it and renamed into place, so a half-unpacked layout is never taken for a staging one.
    """
    temp = layout + ".unpacking"
    shutil.rmtree(temp, ignore_errors=True)
    os.makedirs(os.path.join(temp, "blobs", "sha256"))
    try:
        for name in (INDEX_FILE, LAYOUT_FILE):
            raw = files.read(name, MAX_MANIFEST_BYTES, files.context)
            if raw is None:
                why = "%s: %s has no %s: it is not an OCI archive; move it away or choose another path" % (files.context, files.root, name)
                raise OCIError(why, files.context)
            with open(os.path.join(temp, name), "wb") as handle:
                handle.write(raw)
        index = read_index(temp, files.context)
        for digest in sorted(reachable_blobs(files.root, index.get("manifests") or [], files.context, files)):
            if not files.has(blob_path(digest)):
                continue  # a delta bundle leaves out what the other side holds; packing leaves it out again
            with open_verified_blob(files, blob_path(digest), digest, None, files.context) as stream, open(os.path.join(temp, blob_path(digest)), "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        os.rename(temp, layout)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


register(OCIArchiveTransport())
