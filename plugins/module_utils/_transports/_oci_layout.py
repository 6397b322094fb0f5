# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``oci:PATH[:REF]`` — an OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``).

REF is chosen the way containers/image does: the ``index.json`` entry whose
``org.opencontainers.image.ref.name`` annotation equals REF; with no REF, the only entry.
An entry may be an image manifest or an index (then the index is the top-level manifest).

Writing (``OCILayoutDestination``) follows skopeo 1.9: the new entry takes REF from any entry
that had it (that entry stays, unnamed), replaces an unnamed entry of the same digest in place,
or is appended. A new layout is built under a temporary name and renamed into place; into an
existing layout, blobs are staged in a hidden temporary directory inside it and moved in on
commit, and index.json is re-read, updated and atomically replaced under an exclusive lock
(``.oci-images.lock``), so concurrent writers of different refs never lose an entry.

Deleting a ref rewrites index.json first, then removes the blobs nothing else reaches, under
the same lock.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import stat
from dataclasses import replace

from .. import _media
from .._digest import VerifyingReader, verify_bytes
from .._errors import InvalidReference, LocalFormatError, NotFound, OCIError
from .._options import ConnectionOptions
from .._reference import ImageReference, split_name, split_path, validate_digest
from ._base import DeleteTarget, ImageSource
from ._local import DirectoryFiles, LocalDestination, local_io, open_verified_blob, replace_file, sync_directory
from ._oci_index import (
    BUNDLE_ANNOTATION,
    INDEX_FILE,
    LAYOUT_BYTES,
    LAYOUT_FILE,
    REF_NAME_ANNOTATION,
    SUPPORTED_LAYOUT_VERSIONS,
    LayoutLock,
    add_index_entry,
    blob_path,
    entries_named,
    index_entry,
    index_json_bytes,
    reachable_blobs,
    read_index,
    ref_names,
    remove_blobs,
    write_index,
)
from ._table import Transport, register

# OCI image-layout "org.opencontainers.image.ref.name" grammar.
REF_RE = re.compile(r"^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$")


def parse_layout_reference(transport: str, rest: str, text: str) -> ImageReference:
    """``PATH[:REF]`` of an OCI layout or archive."""
    path, ref = split_path(rest, transport, text)
    if ref is not None and ref != "" and not REF_RE.match(ref):
        raise InvalidReference("invalid image reference %r in %r: use letters, digits, '.', '_', '-', ':', '@', '+' and '/'" % (ref, text), text)
    return ImageReference(transport, path=path, ref_name=ref or None, text=text)


def format_layout_reference(reference: ImageReference) -> str:
    return "%s:%s%s" % (reference.transport, reference.path, ":" + reference.ref_name if reference.ref_name else "")


class OCILayoutSource(ImageSource):
    """The image or index one REF of an OCI layout names."""

    can_list_tags = True
    #: how messages name what is missing
    kind = "OCI layout"

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference, options)
        self.context = str(reference)
        self._files = None
        self._index: dict | None = None
        self._descriptor: dict | None = None

    # Storage: a directory here; the archive transport swaps in the members of a tar.
    def open_files(self):
        return DirectoryFiles(self.reference.path or "", self.context)

    @property
    def files(self):
        if self._files is None:
            self._files = self.open_files()
        return self._files

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None

    def _location(self) -> str:
        return self.reference.path or ""

    def index(self) -> dict:
        """The layout's parsed index.json."""
        if self._index is not None:
            return self._index
        files = self.files
        if not files.exists():
            raise NotFound("%s: %s %s does not exist" % (self.context, self.kind, self._location()), self.context)
        raw_index = files.read(INDEX_FILE, _media.MAX_MANIFEST_BYTES, self.context)
        layout = files.read(LAYOUT_FILE, 4096, self.context)
        if raw_index is None and layout is None:
            raise NotFound("%s: %s holds no OCI image layout (no index.json, no oci-layout)" % (self.context, self._location()), self.context)
        if raw_index is None:
            raise LocalFormatError("%s: %s is not a valid OCI image layout: index.json is missing" % (self.context, self._location()), self.context)
        if layout is None:
            raise LocalFormatError("%s: %s is not a valid OCI image layout: the oci-layout file is missing" % (self.context, self._location()), self.context)
        try:
            version = json.loads(layout.decode("utf-8")).get("imageLayoutVersion")
        except (ValueError, UnicodeDecodeError, AttributeError):
            version = None
        if version not in SUPPORTED_LAYOUT_VERSIONS:
            raise LocalFormatError(
                "%s: %s/oci-layout declares imageLayoutVersion %r; supported: %s"
                % (self.context, self._location(), version, ", ".join(SUPPORTED_LAYOUT_VERSIONS)),
                self.context,
            )
        self._index, _unused = _media.parse_manifest(raw_index, _media.OCI_INDEX, "%s (index.json)" % self.context)
        return self._index

    def descriptor(self) -> dict:
        """The index.json entry the reference names."""
        if self._descriptor is not None:
            return self._descriptor
        index = self.index()
        entries = index.get("manifests") or []
        wanted = self.reference.ref_name
        names = ref_names(index)
        listing = ", ".join(names) if names else "no named images"
        if wanted is not None:
            matches = [d for d in entries if (d.get("annotations") or {}).get(REF_NAME_ANNOTATION) == wanted]
            if not matches:
                raise NotFound("%s: no image named %r in %s; it has: %s" % (self.context, wanted, self._location(), listing), self.context)
            if len(matches) > 1:
                raise LocalFormatError("%s: more than one entry in index.json is named %r" % (self.context, wanted), self.context)
            self._descriptor = matches[0]
        elif len(entries) == 1:
            self._descriptor = entries[0]
        elif not entries:
            raise NotFound("%s: %s %s holds no images" % (self.context, self.kind, self._location()), self.context)
        else:
            raise InvalidReference(
                "%s: %s %s holds %d images; name one with %s:%s:REF (refs: %s)"
                % (self.context, self.kind, self._location(), len(entries), self.reference.transport, self._location(), listing),
                self.context,
            )
        return self._descriptor

    @local_io("reading the image")
    def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        declared = None
        size = None
        if digest is None:
            descriptor = self.descriptor()
            digest, declared, size = descriptor["digest"], descriptor.get("mediaType"), descriptor.get("size")
        else:
            validate_digest(digest, self.context)
            self.index()
        raw = self.files.read(blob_path(digest), _media.MAX_MANIFEST_BYTES, self.context)
        if raw is None:
            raise NotFound("%s: manifest %s is missing (no %s in %s)" % (self.context, digest, blob_path(digest), self._location()), self.context)
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        if size is not None and size != len(raw):
            raise LocalFormatError(
                "%s: manifest %s is %d bytes but index.json says %d" % (self.context, digest, len(raw), size),
                self.context,
            )
        _unused, media_type = _media.parse_manifest(raw, declared, self.context)
        return raw, media_type

    @local_io("reading the image")
    def open_blob(self, digest: str, size: int | None = None) -> VerifyingReader:
        validate_digest(digest, self.context)
        self.index()
        return open_verified_blob(self.files, blob_path(digest), digest, size, self.context)

    @local_io("reading the image")
    def list_tags(self) -> list[str]:
        return ref_names(self.index())

    @local_io("reading the image")
    def read_tag(self, tag: str) -> tuple[bytes, str, str]:
        for descriptor in entries_named(self.index(), tag):
            raw, media_type = self.get_manifest(descriptor["digest"])
            return raw, media_type, descriptor["digest"]
        raise NotFound("%s: no image named %r" % (self.context, tag), self.context)


# --- writing ----------------------------------------------------------------------------------


def named_entry_digest(source: OCILayoutSource) -> str | None:
    """Digest of the entry the reference names in a layout (closing ``source``); None when absent or ambiguous.

    REF absent, or no REF and several entries: a write then adds an entry.
    """
    try:
        return source.descriptor()["digest"]
    except (NotFound, InvalidReference):
        return None
    finally:
        source.close()


class OCILayoutDestination(LocalDestination):
    """Writes one image or index into ``oci:PATH[:REF]``, keeping every other entry of an existing layout."""

    can_hold_index = True

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference, options)
        self._entry: dict | None = None
        # An OCI layout holds OCI manifests (skopeo converts Docker ones too); a bundle keeps every manifest as it is,
        # so digests survive the trip from registry to registry.
        self.required_format = None if reference.member else "oci"

    def _exists(self) -> bool:
        if not os.path.lexists(self.path):
            self.check_parent()
            return False
        if not os.path.isdir(self.path):
            raise LocalFormatError("%s: %s exists and is not a directory; remove it or choose another path" % (self.context, self.path), self.context)
        return True

    def temp_parent(self) -> str:
        # Inside an existing layout, so staged blobs are renamed into blobs/ on the same filesystem.
        return self.path if self._exists() else self.parent

    @local_io("reading what the destination holds now")
    def current_digest(self) -> str | None:
        if not self._exists():
            return None
        if not os.path.exists(os.path.join(self.path, INDEX_FILE)) and not os.path.exists(os.path.join(self.path, LAYOUT_FILE)):
            return None  # an empty (or foreign) directory: the layout is created in it, as skopeo does
        return named_entry_digest(OCILayoutSource(self.reference))

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        validate_digest(digest, self.context)
        if digest in self.written:
            return True
        held = self.options.held_blobs if self.options is not None else None
        if held and self.reference.member and digest in held.get(split_name(self.reference.ref_name or "")[0], ()):
            return True  # the other side of the air gap has it (its inventory): a delta bundle leaves it out
        return self._holds(blob_path(digest), size)

    def _holds(self, relative: str, size: int | None) -> bool:
        """Whether the layout holds this file itself (a regular file, not a link), of ``size`` when given."""
        try:
            info = os.lstat(os.path.join(self.path, *relative.split("/")))
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and (size is None or info.st_size == size)

    @local_io("writing the image")
    def put_blob(self, stream, digest: str, size: int | None, media_type: str | None = None) -> None:
        validate_digest(digest, self.context)
        self.written[digest] = self.stage_file(blob_path(digest), stream)

    @local_io("writing the image")
    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        validate_digest(digest, self.context)
        verify_bytes(raw, digest, "%s manifest %s" % (self.context, digest))
        self.written[digest] = self.stage_file(blob_path(digest), io.BytesIO(raw))
        if top:
            self._entry = index_entry(self.reference, raw, media_type, digest)

    @local_io("putting the image in place")
    def commit(self) -> None:
        if self._entry is None or self._temp is None:
            raise OCIError("%s: nothing to commit: no top-level manifest was written" % self.context, self.context)
        temp = self._temp
        if not self._exists() or not os.listdir(self.path):
            with open(os.path.join(temp, LAYOUT_FILE), "wb") as f:
                f.write(LAYOUT_BYTES)
            replace_file(os.path.join(temp, INDEX_FILE), index_json_bytes(self._add_entry({"schemaVersion": 2, "manifests": []})))
            try:
                os.rename(temp, self.path)  # the whole new layout appears at once
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # Another writer created the layout meanwhile: add to it like to any existing layout.
            else:
                self.release_temp()
                sync_directory(self.parent)
                return
        self._merge(temp)
        self.abort()  # what is left of the staging directory

    def _add_entry(self, index: dict) -> dict:
        """``index`` with this image's entry; a bundle's index.json says it is one."""
        index = add_index_entry(index, self._entry or {})
        if self.reference.member:
            index["annotations"] = dict(index.get("annotations") or {}, **{BUNDLE_ANNOTATION: "1"})
        return index

    def _merge(self, temp: str) -> None:
        layout = DirectoryFiles(self.path, self.context)
        with LayoutLock(self.path, self.context):
            for digest, size in self.written.items():
                relative = blob_path(digest).split("/")
                target = os.path.join(self.path, *relative)
                staged = os.path.join(temp, *relative)
                if self._holds(blob_path(digest), size):
                    continue  # blobs are immutable: the one there is the same (a link there is replaced)
                # Never into a directory a link takes out of the layout.
                layout.resolve(os.path.dirname(blob_path(digest)))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(staged, target)
            if not os.path.exists(os.path.join(self.path, LAYOUT_FILE)):
                replace_file(os.path.join(self.path, LAYOUT_FILE), LAYOUT_BYTES)
            index = {"schemaVersion": 2, "manifests": []}
            raw = DirectoryFiles(self.path, self.context).read(INDEX_FILE, _media.MAX_MANIFEST_BYTES, self.context)
            if raw is not None:
                # Re-read under the lock: another writer may have added an entry since current_digest().
                index, _unused = _media.parse_manifest(raw, _media.OCI_INDEX, "%s (index.json)" % self.context)
            replace_file(os.path.join(self.path, INDEX_FILE), index_json_bytes(self._add_entry(index)))
            sync_directory(self.path)


class LayoutDeleteTarget(DeleteTarget):
    """Refs of an OCI layout: index.json loses their entries, then the blobs nothing else reaches go."""

    holds_names = True
    method = "index"

    def exists(self) -> bool:
        return os.path.isdir(self.reference.path or "")

    @local_io("reading the layout")
    def names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for descriptor in read_index(self.reference.path or "", str(self.reference)).get("manifests") or []:
            name = (descriptor.get("annotations") or {}).get(REF_NAME_ANNOTATION) if isinstance(descriptor, dict) else None
            if name:
                names.setdefault(name, descriptor.get("digest"))
        return names

    @local_io("deleting")
    def remove(self, names: list[str], check_mode: bool) -> tuple[dict[str, str], int]:
        path, where = self.reference.path or "", str(self.reference)
        # Check mode reads without the lock: taking it creates the lock file, and check mode writes nothing.
        with contextlib.nullcontext() if check_mode else LayoutLock(path, where):
            index = read_index(path, where)
            entries = [d for d in index.get("manifests") or [] if isinstance(d, dict)]
            going = [d for d in entries if (d.get("annotations") or {}).get(REF_NAME_ANNOTATION) in names]
            staying = [d for d in entries if d not in going]
            removed = {}
            for descriptor in going:
                removed.setdefault(descriptor["annotations"][REF_NAME_ANNOTATION], descriptor.get("digest"))
            if not going:
                return {}, 0
            doomed = reachable_blobs(path, going, where) - reachable_blobs(path, staying, where)
            if check_mode:
                freed = 0
                for digest in doomed:
                    try:
                        freed += os.lstat(os.path.join(path, *blob_path(digest).split("/"))).st_size
                    except FileNotFoundError:
                        pass
                return removed, freed
            # index.json first: a crash in between leaves unreferenced blobs, never an entry without its blobs.
            write_index(path, dict(index, manifests=staying))
            return removed, remove_blobs(path, doomed)


def bundle_images(transport: str, reference: ImageReference, source: OCILayoutSource) -> list[tuple[str, ImageReference]] | None:
    """The named images of a layout read as a bundle (closing ``source``); None when it names one image."""
    if reference.ref_name:
        source.close()
        return None
    try:
        index = source.index()
    except NotFound:
        return None
    finally:
        source.close()
    if len(index.get("manifests") or []) < 2 and (index.get("annotations") or {}).get(BUNDLE_ANNOTATION) != "1":
        return None
    return [(name, replace(reference, ref_name=name, member=True, text="")) for name in ref_names(index)]


class OCILayoutTransport(Transport):
    name = "oci"
    syntax = "oci:PATH[:REF]"
    policy_scopes = "path"
    holds_names = True
    holds_many = "bundle"

    def image_in(self, reference: ImageReference, name: str) -> ImageReference:
        return replace(reference, ref_name=name, member=True, text="")

    def images_in(self, reference: ImageReference, options: ConnectionOptions) -> list[tuple[str, ImageReference]] | None:
        return bundle_images(self.name, reference, OCILayoutSource(reference, options))

    def parse(self, rest: str, text: str) -> ImageReference:
        return parse_layout_reference(self.name, rest, text)

    def format(self, reference: ImageReference) -> str:
        return format_layout_reference(reference)

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> OCILayoutSource:
        return OCILayoutSource(reference, options)

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> OCILayoutDestination:
        return OCILayoutDestination(reference, options)

    def delete_target(self, reference: ImageReference, options: ConnectionOptions) -> LayoutDeleteTarget:
        return LayoutDeleteTarget(reference, options)


register(OCILayoutTransport())
