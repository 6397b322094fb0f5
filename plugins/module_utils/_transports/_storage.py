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
import shutil
import tempfile
from dataclasses import dataclass, field, replace

from .._commands import run_command
from .._errors import EngineError, InvalidReference, NotFound, OCIError
from .._options import ConnectionOptions
from .._reference import ImageReference
from ._archive import DockerArchiveDestination
from ._daemon import SpooledArchiveSource, engine_name


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

    def run(self, args: list[str]) -> PodmanResult:
        """Run ``podman <store flags> ARGS`` through the process's command runner; output decoded as text."""
        if self.binary is None:
            raise EngineError(
                "%s: podman is not installed (or not on PATH); containers-storage: goes through podman: install it" % self.context,
                self.context,
            )
        cmd = [self.binary, *self.store.podman_flags(), *args]
        try:
            returncode, stdout, stderr = run_command(cmd)
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


class StorageSource(SpooledArchiveSource):
    """An image in containers-storage, read from ``podman image save``'s docker-archive."""

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        super().__init__(reference)
        self.podman = Podman(reference, options or ConnectionOptions())

    def export(self, path: str) -> None:
        self.podman.save(storage_name(self.reference), path)


class StorageDestination(DockerArchiveDestination):
    """Loads one image into containers-storage under ``name:tag``; up to date when that name has the same image ID.

    The archive is built by the docker-archive writer as a file in the temporary directory,
    then handed to ``podman image load`` and removed.
    """

    kind = "containers-storage image"

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None):
        if reference.repository is None or reference.digest is not None:
            raise InvalidReference(
                "%s: a containers-storage destination needs name:tag (not an image ID or a digest)" % reference,
                str(reference),
            )
        self._archive_dir = tempfile.gettempdir()
        archive = os.path.join(self._archive_dir, "oci-images-load-%s.tar" % os.urandom(8).hex())
        super().__init__(replace(reference, path=archive))
        self.podman = Podman(reference, options or ConnectionOptions())

    def current_digest(self) -> str | None:
        return self.podman.image_id(storage_name(self.reference))

    def commit(self) -> None:
        super().commit()  # the archive is now complete at self.path
        try:
            self.podman.load(self.path)
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
