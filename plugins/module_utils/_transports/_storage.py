# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``containers-storage:[driver@root+runroot:options]name[:tag|@digest]`` — podman's image store, through podman.

The store belongs to podman (and buildah, CRI-O); only their library may write it safely, so
every access goes through the ``podman`` command: ``image exists``/``image inspect`` for the
image ID, ``image save --format docker-archive`` to read, ``image load`` to write. The CLI needs
no service running and acts as the user the module runs as, on that user's store; the REST API
would need ``podman system service`` started (with the same store flags) first.

Both directions go through a docker-archive in a temporary file: podman writes a save to a
file, and ``podman load`` copies standard input to a file before reading it anyway.
The store specifier becomes ``--storage-driver``, ``--root``, ``--runroot`` and
``--storage-opt`` flags, so a private store works as it does with skopeo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field

from .._commands import run_command
from .._errors import EngineError, InvalidReference, NotFound, OCIError
from .._options import ConnectionOptions
from .._reference import IMAGE_ID_RE, ImageReference, parse_docker_name
from ._daemon import engine_name
from ._docker_save import DockerSaveDestination, DockerSaveSource, ExportedArchive, SaveSink
from ._local import Staging
from ._table import Transport, register
from ._tar import ARCHIVE_FILE, TarStreamWriter


@dataclass(frozen=True)
class StoreSpec:
    """The parts of a ``[driver@root+runroot:opt,opt]`` store specifier; None where not given."""

    driver: str | None = None
    root: str | None = None
    runroot: str | None = None
    options: list[str] = field(default_factory=list)

    def podman_flags(self) -> list[str]:
        """The podman global flags that select this store."""
        flags = []
        if self.driver:
            flags += ["--storage-driver", self.driver]
        if self.root:
            flags += ["--root", self.root]
        if self.runroot:
            flags += ["--runroot", self.runroot]
        for option in self.options:
            flags += ["--storage-opt", option]
        return flags


def parse_store(spec: str | None, context: str = "") -> StoreSpec:
    """Split a store specifier the way containers/image does: ``driver@`` first, ``:options`` last, then ``root+runroot``."""
    if not spec:
        return StoreSpec()
    driver = None
    if "@" in spec:
        driver, _unused, spec = spec.partition("@")
        if not driver or not spec:
            raise InvalidReference("store specifier in %r: give [driver@root+runroot:options] with a driver and a root" % context, context)
    spec, colon, options = spec.partition(":")
    root, plus, runroot = spec.partition("+")
    for path in (root, runroot):
        if path and not os.path.isabs(path):
            raise InvalidReference("store specifier in %r: %r is not an absolute path" % (context, path), context)
    return StoreSpec(driver, root or None, runroot if plus and runroot else None, options.split(",") if colon and options else [])


@dataclass
class PodmanResult:
    returncode: int
    stdout: str
    stderr: str


class Podman:
    """Runs podman on one store. Arguments go as a list (no shell); no credential is ever passed."""

    def __init__(self, reference: ImageReference, options: ConnectionOptions):
        self.context = str(reference)
        self.store = parse_store(reference.store, self.context)
        self.binary = shutil.which("podman")
        self.runner = options.runner

    def run(self, args: list[str]) -> PodmanResult:
        """Run ``podman <store flags> ARGS`` through the process's command runner; output decoded as text."""
        if self.binary is None:
            raise EngineError(
                "%s: podman is not installed (or not on PATH); containers-storage: goes through podman: install it" % self.context,
                self.context,
            )
        cmd = [self.binary, *self.store.podman_flags(), *args]
        try:
            returncode, stdout, stderr = run_command(self.runner, cmd)
        except OCIError as e:
            raise EngineError("%s: cannot run podman: %s" % (self.context, e.msg), self.context) from None
        return PodmanResult(returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))

    def failed(self, what: str, proc: PodmanResult) -> EngineError:
        message = proc.stderr.strip() or proc.stdout.strip() or "exit status %d" % proc.returncode
        return EngineError("%s: %s failed: podman said: %s" % (self.context, what, message), self.context)

    def exists(self, name: str) -> bool:
        proc = self.run(["image", "exists", name])
        if proc.returncode in (0, 1):
            return proc.returncode == 0
        raise self.failed("looking up %s" % name, proc)

    def image_id(self, name: str) -> str | None:
        """``sha256:<ID>`` of the image ``name`` names in the store, or None when there is none."""
        if not self.exists(name):
            return None
        proc = self.run(["image", "inspect", name])
        if proc.returncode != 0:
            raise self.failed("inspecting %s" % name, proc)
        try:
            image_id = json.loads(proc.stdout)[0]["Id"]
        except (ValueError, LookupError, TypeError):
            raise EngineError("%s: podman image inspect %s printed no image ID" % (self.context, name), self.context) from None
        return image_id if image_id.startswith("sha256:") else "sha256:" + image_id

    def save(self, name: str, path: str) -> None:
        """Write the image as a docker-archive to ``path`` (a file podman may replace)."""
        if not self.exists(name):
            raise NotFound("%s: no image %s in the store" % (self.context, name), self.context)
        proc = self.run(["image", "save", "--format", "docker-archive", "--output", path, name])
        if proc.returncode != 0:
            raise self.failed("saving %s" % name, proc)

    def load(self, path: str) -> None:
        proc = self.run(["image", "load", "--input", path])
        if proc.returncode != 0:
            raise self.failed("loading the image", proc)


def storage_name(reference: ImageReference) -> str:
    """How podman names the image: ``registry/repo:tag``, ``registry/repo@digest`` or the image ID (hex)."""
    if reference.image_id:  # also for name@ID: the ID alone names the image exactly
        return reference.image_id.partition(":")[2]
    return engine_name(reference)


class PodmanLoadSink(SaveSink):
    """A tar file in the temporary directory, handed to ``podman image load`` on commit and removed."""

    def __init__(self, reference: ImageReference, podman: Podman):
        self.reference = reference
        self.podman = podman
        self.staging = Staging(tempfile.gettempdir)

    def open(self) -> tuple[TarStreamWriter, str]:
        temp = self.staging.path()
        return TarStreamWriter.create(os.path.join(temp, ARCHIVE_FILE)), temp

    def current_image_id(self) -> str | None:
        return self.podman.image_id(storage_name(self.reference))

    def commit(self, image_id: str) -> None:
        temp = self.staging.current
        if temp is None:
            raise OCIError("%s: nothing to commit: no image was written" % self.reference, str(self.reference))
        try:
            self.podman.load(os.path.join(temp, ARCHIVE_FILE))
        finally:
            self.staging.abort()

    def abort(self) -> None:
        self.staging.abort()


_HEX_ID = re.compile(r"^[a-f0-9]{64}$")


class StorageTransport(Transport):
    name = "containers-storage"
    syntax = "containers-storage:[STORE]name:tag"

    def parse(self, rest: str, text: str) -> ImageReference:
        store = None
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise InvalidReference("store specifier in %r is missing its closing ']'" % text, text)
            store, rest = rest[1:end], rest[end + 1 :]
            if not store:
                raise InvalidReference("empty store specifier in %r: use [driver@root+runroot:options]" % text, text)
        if not rest:
            raise InvalidReference("containers-storage reference %r names no image" % text, text)
        if rest.startswith("@"):
            image_id = rest[1:]
            if not _HEX_ID.match(image_id):
                raise InvalidReference("invalid image ID %r in %r: need 64 lowercase hex characters" % (image_id, text), text)
            return ImageReference(self.name, store=store, image_id="sha256:" + image_id, text=text)
        if IMAGE_ID_RE.match(rest) and not rest.startswith("sha256:"):
            return ImageReference(self.name, store=store, image_id="sha256:" + rest, text=text)
        name, at, id_part = rest.partition("@")
        if at and _HEX_ID.match(id_part):
            # name@imageid form
            registry, repository, tag, _unused = parse_docker_name(name, text)
            return ImageReference(self.name, store=store, registry=registry, repository=repository, tag=tag, image_id="sha256:" + id_part, text=text)
        registry, repository, tag, digest = parse_docker_name(rest, text)
        return ImageReference(self.name, store=store, registry=registry, repository=repository, tag=tag, digest=digest, text=text)

    def format(self, reference: ImageReference) -> str:
        store = "[%s]" % reference.store if reference.store else ""
        return "containers-storage:%s%s" % (store, reference.docker_reference or ("@" + (reference.image_id or "")))

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> DockerSaveSource:
        podman = Podman(reference, options)
        return DockerSaveSource(reference, options, ExportedArchive(str(reference), lambda path: podman.save(storage_name(reference), path)))

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> DockerSaveDestination:
        if reference.repository is None or reference.digest is not None:
            raise InvalidReference(
                "%s: a containers-storage destination needs name:tag (not an image ID or a digest)" % reference,
                str(reference),
            )
        return DockerSaveDestination(reference, options, PodmanLoadSink(reference, Podman(reference, options)))


register(StorageTransport())
