# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``docker-archive:PATH[:name:tag|:@N]`` — a ``docker save`` tar file.

The format is ``_docker_save``'s; this module says where the tar is (a file, replaced as a whole
on commit, as skopeo 1.9 does for oci-archive — for docker-archive skopeo refuses any non-empty
file, which would break re-copies) and which of its images a reference names.
"""

from __future__ import annotations

from .._digest import sha256_digest
from .._errors import InvalidReference, NotFound
from .._options import ConnectionOptions
from .._reference import ImageReference, parse_docker_name, split_path
from ._docker_save import MANIFEST_FILE, DockerSaveDestination, DockerSaveSource, SavedArchive, SavedImages, SaveSink
from ._table import Transport, register
from ._tar import ArchiveFile, ArchiveFiles, TarStreamWriter, archive_has


class FileArchive(SavedArchive):
    """The tar at the reference's path; the image its name:tag, @N, or its only image."""

    def __init__(self, reference: ImageReference):
        self.reference = reference
        self._files: ArchiveFiles | None = None

    def files(self) -> ArchiveFiles:
        if self._files is None:
            self._files = ArchiveFiles(self.reference.path or "", str(self.reference))
        return self._files

    def choose(self, images: SavedImages) -> dict:
        return images.by_reference(self.reference)

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None


class ArchiveFileSink(SaveSink):
    """A docker-archive file: the tar is written next to PATH and replaces it on commit."""

    def __init__(self, reference: ImageReference):
        self.reference = reference
        self.file = ArchiveFile(reference.path or "", "docker archive", lambda path: archive_has(path, MANIFEST_FILE), str(reference))

    def open(self) -> tuple[TarStreamWriter, str]:
        return self.file.open_tar()

    def current_image_id(self) -> str | None:
        if not self.file.exists():
            return None
        archive = FileArchive(self.reference)
        try:
            images = SavedImages(archive.files(), str(self.reference))
            try:
                item = images.by_reference(self.reference)
            except (NotFound, InvalidReference):
                return None
            return sha256_digest(images.config(item))
        except NotFound:
            return None
        finally:
            archive.close()

    def commit(self, image_id: str) -> None:
        self.file.commit()

    def abort(self) -> None:
        self.file.abort()


class DockerArchiveTransport(Transport):
    name = "docker-archive"
    syntax = "docker-archive:PATH[:name:tag|:@N]"

    def parse(self, rest: str, text: str) -> ImageReference:
        path, extra = split_path(rest, self.name, text)
        if not extra:
            return ImageReference(self.name, path=path, text=text)
        if extra.startswith("@"):
            try:
                index = int(extra[1:])
            except ValueError:
                index = -1
            if index < 0:
                raise InvalidReference("invalid source index %r in %r: use @0, @1, ..." % (extra, text), text)
            return ImageReference(self.name, path=path, source_index=index, text=text)
        registry, repository, tag, digest = parse_docker_name(extra, text)
        if digest:
            raise InvalidReference("docker-archive reference %r may not use a digest: use name:tag" % text, text)
        return ImageReference(self.name, path=path, registry=registry, repository=repository, tag=tag, text=text)

    def format(self, reference: ImageReference) -> str:
        suffix = ""
        if reference.repository is not None:
            suffix = ":" + (reference.docker_reference or "")
        elif reference.source_index is not None:
            suffix = ":@%d" % reference.source_index
        return "docker-archive:%s%s" % (reference.path, suffix)

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> DockerSaveSource:
        return DockerSaveSource(reference, options, FileArchive(reference))

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> DockerSaveDestination:
        if reference.source_index is not None:
            raise InvalidReference(
                "%s: @N selects an image to read; to write, give docker-archive:PATH or docker-archive:PATH:name:tag" % reference,
                str(reference),
            )
        return DockerSaveDestination(reference, options, ArchiveFileSink(reference))


register(DockerArchiveTransport())
