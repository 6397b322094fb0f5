# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``docker-daemon:name:tag`` (and ``docker-daemon:sha256:ID`` as a source) — images in a Docker engine.

The engine speaks docker-archive: ``GET /images/{name}/get`` exports one, ``POST /images/load``
imports one. So reading and writing reuse the docker-archive code.

Reading spools the export to a temporary file first, as skopeo does: the manifest
(which needs the config and every layer's size) comes before any blob, the copy engine reads
blobs in any order and in parallel, and the tar puts its ``manifest.json`` last. A sequential
pass cannot serve that; re-exporting per blob would cost a whole export each time.

Writing streams the archive into the load request as it is built (chunked transfer encoding),
so the whole image is never on disk or in memory here. Each layer is still spooled alone
before it goes in, because a tar header needs the uncompressed size first. A failed copy drops
the connection mid-archive; the engine then loads nothing.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile

from .._engine_api import EngineClient, ImageLoad
from .._errors import EngineError, InvalidReference, OCIError
from .._options import ConnectionOptions
from .._reference import ImageReference
from ._archive import ArchiveFiles, DockerArchiveDestination, DockerArchiveSource, TarStreamWriter


def engine_name(reference: ImageReference) -> str:
    """How the engine names the image: ``registry/repo:tag``, or the image ID."""
    return reference.docker_reference or reference.image_id or ""


class SpooledArchiveSource(DockerArchiveSource):
    """A docker-archive an engine exports, spooled to a temporary file that ``close()`` removes."""

    def __init__(self, reference: ImageReference):
        super().__init__(reference)
        self._spool: str | None = None

    def export(self, path: str) -> None:
        """Write the engine's docker-archive of this image to the (empty) file ``path``."""
        raise NotImplementedError

    @property
    def files(self) -> ArchiveFiles:
        if self._files is None:
            fd, self._spool = tempfile.mkstemp(prefix="oci-images-engine-", suffix=".tar")
            os.close(fd)
            self.export(self._spool)
            self._files = ArchiveFiles(self._spool, self.context)
        return self._files

    def _choose(self, items: list[dict]) -> dict:
        # The engine exported exactly the image asked for, whatever its RepoTags say.
        if len(items) != 1:
            raise EngineError("%s: the engine exported %d images where one was asked for" % (self.context, len(items)), self.context)
        return items[0]

    def close(self) -> None:
        super().close()
        if self._spool is not None:
            try:
                os.unlink(self._spool)
            except FileNotFoundError:
                pass
            self._spool = None


class DaemonSource(SpooledArchiveSource):
    """An image in a Docker engine, by name:tag or image ID, read from its docker-archive export."""

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference)
        self.client = EngineClient(options or ConnectionOptions(), self.context)

    def export(self, path: str) -> None:
        with open(path, "wb") as out:
            self.client.save_image(engine_name(self.reference), out)


class _LoadFile:
    """What the tar writer writes to: the body of the load request.

    Bytes sent cannot be taken back: when the writer seeks back to cut off a failed member,
    the load is marked broken and only abort is left.
    """

    def __init__(self, load: ImageLoad, context: str):
        self.load = load
        self.context = context
        self.broken = False
        self._pos = 0

    def write(self, data: bytes) -> int:
        if self.broken:
            raise OCIError("%s: the load was cut off by an earlier failure" % self.context, self.context)
        self.load.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if pos != self._pos:
            self.broken = True
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        return self._pos

    def close(self) -> None:
        if not self.load.done:
            self.load.abort()


class _LoadTarWriter(TarStreamWriter):
    """TarStreamWriter whose tar goes into a load request instead of a file."""

    def __init__(self, load: ImageLoad, context: str):  # pylint: disable=super-init-not-called
        self._file = _LoadFile(load, context)

    def finish(self) -> None:
        self._file.write(b"\0" * (2 * tarfile.BLOCKSIZE))


class DaemonDestination(DockerArchiveDestination):
    """Loads one image into a Docker engine under ``name:tag``; up to date when that name has the same image ID."""

    kind = "Docker engine image"

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        if reference.repository is None:
            raise InvalidReference(
                "%s: a docker-daemon destination needs a name: give docker-daemon:name:tag, not an image ID" % reference,
                str(reference),
            )
        super().__init__(reference)
        self.client = EngineClient(options or ConnectionOptions(), self.context)
        self._load: ImageLoad | None = None
        self._config_digest: str | None = None

    # Only spooled layers use the temporary directory; it goes where temporary files go.
    def temp_parent(self) -> str:
        return tempfile.gettempdir()

    def check_parent(self) -> None:
        pass

    def target_exists(self) -> bool:
        return self.current_digest() is not None

    def recognize(self) -> bool:
        return True

    def current_digest(self) -> str | None:
        return self.client.image_id(engine_name(self.reference))

    def prepare_temp(self, temp: str) -> None:
        # The first blob opens the load; the tar then grows inside the request body.
        self._load = self.client.start_load()
        self._tar = _LoadTarWriter(self._load, self.context)

    def put_manifest(self, raw: bytes, media_type: str, digest: str, top: bool) -> None:
        super().put_manifest(raw, media_type, digest, top)
        self._config_digest = json.loads(raw.decode("utf-8"))["config"]["digest"]

    def commit(self) -> None:
        if not self._top_written or self._tar is None or self._load is None:
            raise OCIError("%s: nothing to commit: no top-level manifest was written" % self.context, self.context)
        tar, self._tar = self._tar, None
        tar.finish()
        self._load.finish()
        self.abort()  # the emptied temporary directory
        now = self.current_digest()
        if now != self._config_digest:
            raise EngineError(
                "%s: the engine loaded the image, but %s names %s instead of %s" % (self.context, engine_name(self.reference), now, self._config_digest),
                self.context,
            )
