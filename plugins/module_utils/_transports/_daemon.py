# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``docker-daemon:name:tag`` (and ``docker-daemon:sha256:ID`` as a source) — images in a Docker engine.

The engine speaks docker-archive: ``GET /images/{name}/get`` exports one, ``POST /images/load``
imports one. So reading and writing reuse the docker save code.

Reading spools the export to a temporary file first, as skopeo does: the manifest
(which needs the config and every layer's size) comes before any blob, the copy engine reads
blobs in any order and in parallel, and the tar puts its ``manifest.json`` last. A sequential
pass cannot serve that; re-exporting per blob would cost a whole export each time.

Writing streams the archive into the load request as it is built (chunked transfer encoding),
so the whole image is never on disk or in memory here. Each layer is still spooled alone
before it goes in, because a tar header needs the uncompressed size first. A failed copy drops
the connection mid-archive; the engine then loads nothing.

The format is ``_docker_save``'s; this module gives it the engine as source and sink.
"""

from __future__ import annotations

import tempfile

from .._engine_api import EngineClient, ImageLoad
from .._errors import EngineError, InvalidReference, OCIError
from .._options import ConnectionOptions
from .._reference import IMAGE_ID_RE, ImageReference, parse_docker_name, validate_digest
from ._docker_save import DockerSaveDestination, DockerSaveSource, ExportedArchive, SaveSink
from ._local import Staging
from ._table import Transport, register
from ._tar import TarStreamWriter


def engine_name(reference: ImageReference) -> str:
    """How the engine names the image: ``registry/repo:tag``, or the image ID."""
    return reference.docker_reference or reference.image_id or ""


def parse_engine_name(transport: str, rest: str, text: str) -> ImageReference:
    """``name:tag`` or an image ID (``sha256:HEX`` or ``HEX``), as docker-daemon: takes them."""
    if not rest:
        raise InvalidReference("%s reference %r is empty: give %s:name:tag" % (transport, text, transport), text)
    if IMAGE_ID_RE.match(rest):
        image_id = rest if rest.startswith("sha256:") else "sha256:" + rest
        return ImageReference(transport, image_id=image_id, text=text)
    if rest.startswith("sha256:"):
        validate_digest(rest, text)
    registry, repository, tag, digest = parse_docker_name(rest, text)
    if digest:
        raise InvalidReference("%s reference %r may not use a digest: use name:tag or the image ID" % (transport, text), text)
    return ImageReference(transport, registry=registry, repository=repository, tag=tag, text=text)


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

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Nothing: the sink finishes or aborts the load (closing the tar must not end the request)."""


class EngineLoadSink(SaveSink):
    """The body of a ``POST /images/load`` request, opened with the first blob; on commit the name must have the new image ID."""

    def __init__(self, reference: ImageReference, client: EngineClient):
        self.reference = reference
        self.context = str(reference)
        self.client = client
        self._load: ImageLoad | None = None
        # Only spooled layers use the temporary directory; it goes where temporary files go.
        self.staging = Staging(tempfile.gettempdir)

    def open(self) -> tuple[TarStreamWriter, str]:
        self._load = self.client.start_load()
        return TarStreamWriter(_LoadFile(self._load, self.context)), self.staging.path()

    def current_image_id(self) -> str | None:
        return self.client.image_id(engine_name(self.reference))

    def commit(self, image_id: str) -> None:
        if self._load is None:
            raise OCIError("%s: nothing to commit: no image was written" % self.context, self.context)
        self._load.finish()
        self.staging.abort()
        now = self.current_image_id()
        if now != image_id:
            raise EngineError(
                "%s: the engine loaded the image, but %s names %s instead of %s" % (self.context, engine_name(self.reference), now, image_id),
                self.context,
            )

    def abort(self) -> None:
        if self._load is not None and not self._load.done:
            self._load.abort()
        self.staging.abort()


class DaemonTransport(Transport):
    name = "docker-daemon"
    syntax = "docker-daemon:name:tag"
    policy_scopes = "name"

    def parse(self, rest: str, text: str) -> ImageReference:
        return parse_engine_name(self.name, rest, text)

    def format(self, reference: ImageReference) -> str:
        return "docker-daemon:%s" % engine_name(reference)

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> DockerSaveSource:
        client = EngineClient(options, str(reference))

        def export(path: str) -> None:
            with open(path, "wb") as out:
                client.save_image(engine_name(reference), out)

        return DockerSaveSource(reference, options, ExportedArchive(str(reference), export))

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> DockerSaveDestination:
        if reference.repository is None:
            raise InvalidReference(
                "%s: a docker-daemon destination needs a name: give docker-daemon:name:tag, not an image ID" % reference,
                str(reference),
            )
        return DockerSaveDestination(reference, options, EngineLoadSink(reference, EngineClient(options, str(reference))))


register(DaemonTransport())
