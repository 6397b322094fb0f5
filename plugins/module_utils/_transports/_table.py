# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transport table: the one place that knows which transports exist.

Each transport is one module that registers one ``Transport`` object here. The object owns
its reference syntax (``parse``, ``format``), opens sources and destinations, opens what a
delete works on, and declares what it can do. Everything else asks the table; nothing else
names a transport.

The built-in transports are imported on the first lookup (they import ``_reference``, which
asks this table, so they cannot be imported when this module is).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .._errors import InvalidReference, Unsupported
from .._options import ConnectionOptions

if TYPE_CHECKING:  # pragma: no cover
    from .._reference import ImageReference
    from .._signature_stores import SignatureStore
    from ._base import DeleteTarget, ImageDestination, ImageSource


class Transport:
    """One transport: its name, its reference syntax, its sides and its capabilities."""

    #: The prefix before the first ':' in a reference (``docker``, ``oci``, ...).
    name = ""
    #: The reference syntax, for messages and docs (``oci:PATH[:REF]``).
    syntax = ""
    #: References name images in registry repositories: repository mode, mounts, referrers, the catalog.
    is_registry = False
    #: References name a place that holds many named images (tags or refs), so tags can be listed without one.
    holds_names = False
    #: How containers-policy.json scopes name this transport's images (see ``_policy``): "name"
    #: (registry/repository:tag and its namespaces), "path" (the absolute path and its parents), or ""
    #: (only the transport's default scope).
    policy_scopes = ""
    #: Destinations can be written as numbered volumes of at most ``ConnectionOptions.split_size`` bytes.
    writes_volumes = False

    #: How a reference without an image name holds many images (repository mode and sync, both directions):
    #: "" (it cannot, or it is a registry prefix), "tree" (a directory per image under PATH, named as
    #: ``skopeo sync --dest dir`` names them), "bundle" (one store, each image named by its full reference).
    holds_many = ""

    def parse(self, rest: str, text: str) -> ImageReference:
        """The reference ``text`` (``rest`` is what follows ``name:``)."""
        raise NotImplementedError

    def format(self, reference: ImageReference) -> str:
        """The reference as a user writes it."""
        raise NotImplementedError

    def open_source(self, reference: ImageReference, options: ConnectionOptions) -> ImageSource:
        """The read side; the caller closes it."""
        raise NotImplementedError

    def open_destination(self, reference: ImageReference, options: ConnectionOptions) -> ImageDestination:
        """The write side; opening it writes nothing, the caller closes it."""
        raise Unsupported(
            "%s: %s: cannot be written to; destinations are %s" % (reference, self.name, ", ".join(t.syntax for t in transports() if t.can_write())),
            str(reference),
        )

    def delete_target(self, reference: ImageReference, options: ConnectionOptions) -> DeleteTarget:
        """What image_delete works on for ``reference``."""
        raise Unsupported(
            "%s: deleting from %s: is not supported; image_delete works on %s"
            % (reference, self.name, ", ".join(t.name + ":" for t in transports() if t.can_delete())),
            str(reference),
        )

    def image_in(self, reference: ImageReference, name: str) -> ImageReference:
        """The image called ``name`` (a relative path, or a full reference such as ``registry/team/app:1.0``) in the
        place ``reference`` names, for transports that hold many images."""
        raise Unsupported(
            "%s: %s: holds one image; repository mode and sync write many images to a registry prefix, or to %s"
            % (reference, self.name, ", ".join(sorted(t.syntax.partition("[")[0] for t in transports() if t.holds_many))),
            str(reference),
        )

    def images_in(self, reference: ImageReference, options: ConnectionOptions) -> list[tuple[str, ImageReference]] | None:
        """Every image held in the place ``reference`` names, as (name, reference), in a stable order; None when the
        reference names one image."""
        return None

    def prepare_many(self, reference: ImageReference, options: ConnectionOptions, check_mode: bool):
        """Before many images are written to the place ``reference`` names: make what it already holds visible to the
        copies (a bundle archive is unpacked into its staging layout). Returns None, or in check mode a function giving,
        for each destination the copies name, where to compare instead (check mode writes nothing, so nothing is staged)."""
        return None

    def finish_many(self, reference: ImageReference, options: ConnectionOptions, changed: bool = True) -> None:
        """After every image of a repository mode or sync task was written to the place ``reference`` names (none
        failed, not in check mode): what is left to do, such as packing a staged bundle into its archive.
        ``changed``: whether any image was written (an archive holding the same images is left as it is)."""

    def unfinished(self, reference: ImageReference) -> str | None:
        """What a user is told when ``finish_many`` did not run because a copy failed; None when nothing waits."""
        return None

    def open_signatures(self, reference: ImageReference, options: ConnectionOptions, settings) -> SignatureStore | None:
        """Where images named by ``reference`` keep their signatures (``settings``: registries.d); None when nowhere."""
        return None

    def can_write(self) -> bool:
        return type(self).open_destination is not Transport.open_destination

    def can_delete(self) -> bool:
        return type(self).delete_target is not Transport.delete_target


_table: dict[str, Transport] = {}
_lock = threading.Lock()
_loaded = False


def register(transport: Transport) -> None:
    """Add a transport (a later one with the same name replaces the earlier)."""
    if not transport.name or ":" in transport.name:
        raise ValueError("a transport needs a name without ':', not %r" % transport.name)
    with _lock:
        _table[transport.name] = transport


def unregister(name: str) -> None:
    """Remove a transport (tests that registered one of their own)."""
    with _lock:
        _table.pop(name, None)


def _load_docker() -> None:
    from . import _docker  # noqa: F401  pylint: disable=unused-import


def _load_dir() -> None:
    from . import _directory  # noqa: F401  pylint: disable=unused-import


def _load_oci() -> None:
    from . import _oci_layout  # noqa: F401  pylint: disable=unused-import


def _load_oci_archive() -> None:
    from . import _oci_archive  # noqa: F401  pylint: disable=unused-import


def _load_docker_archive() -> None:
    from . import _docker_archive  # noqa: F401  pylint: disable=unused-import


def _load_daemon() -> None:
    from . import _daemon  # noqa: F401  pylint: disable=unused-import


def _load_storage() -> None:
    from . import _storage  # noqa: F401  pylint: disable=unused-import


# The built-in transports, each imported when first named (a task on docker:// never imports the archive or engine
# code, one on oci: never imports requests). Each loader is a static import, so Ansible's module packer ships it.
_BUILTIN = {
    "docker": _load_docker,
    "dir": _load_dir,
    "oci": _load_oci,
    "oci-archive": _load_oci_archive,
    "docker-archive": _load_docker_archive,
    "docker-daemon": _load_daemon,
    "containers-storage": _load_storage,
}
_REGISTRY_BUILTIN = "docker"


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    for load in _BUILTIN.values():
        load()
    _loaded = True


def transports() -> list[Transport]:
    """Every registered transport, in registration order."""
    _load_builtin()
    with _lock:
        return list(_table.values())


def find_transport(name: str) -> Transport | None:
    """The transport called ``name``, or None."""
    with _lock:
        found = _table.get(name)
    if found is None and name in _BUILTIN and not _loaded:
        _BUILTIN[name]()  # registers it
        with _lock:
            found = _table.get(name)
    return found


def transport_named(name: str) -> Transport:
    """The transport called ``name``; InvalidReference naming the known ones when there is none."""
    transport = find_transport(name)
    if transport is None:
        raise InvalidReference("unknown transport %r: use one of %s" % (name, ", ".join(t.name + ":" for t in transports())), name)
    return transport


def registry_transport() -> Transport:
    """The transport of references written without a transport (``fedora`` is ``docker://docker.io/library/fedora``)."""
    builtin = find_transport(_REGISTRY_BUILTIN)
    if builtin is not None and builtin.is_registry:
        return builtin
    for transport in transports():
        if transport.is_registry:
            return transport
    raise Unsupported("no registry transport is registered")


def images_in(reference: ImageReference, options: ConnectionOptions | None = None) -> list[tuple[str, ImageReference]] | None:
    """The images a local place of many images holds (a dir: tree, a bundle), as (name, reference); None for one image."""
    return transport_named(reference.transport).images_in(reference, options or ConnectionOptions())


def prepare_many(reference: ImageReference, options: ConnectionOptions, check_mode: bool):
    """Get the place ``reference`` names ready for many images (see ``Transport.prepare_many``)."""
    return transport_named(reference.transport).prepare_many(reference, options, check_mode)


def finish_many(reference: ImageReference, options: ConnectionOptions | None = None, changed: bool = True) -> None:
    """Finish writing many images to the place ``reference`` names (see ``Transport.finish_many``)."""
    transport_named(reference.transport).finish_many(reference, options or ConnectionOptions(), changed)


def unfinished(reference: ImageReference) -> str | None:
    """What waits in the place ``reference`` names when its batch failed (see ``Transport.unfinished``)."""
    return transport_named(reference.transport).unfinished(reference)


def open_source(reference: ImageReference, options: ConnectionOptions | None = None) -> ImageSource:
    """An ImageSource for ``reference`` from its transport; the caller closes it (it is a context manager)."""
    return transport_named(reference.transport).open_source(reference, options or ConnectionOptions())


def open_destination(reference: ImageReference, options: ConnectionOptions | None = None) -> ImageDestination:
    """An ImageDestination for ``reference`` from its transport. Opening it writes nothing; the caller closes it."""
    transport = transport_named(reference.transport)
    if options is not None and options.split_size and not transport.writes_volumes:
        raise Unsupported(
            "%s: split_size applies to %s destinations only; unset it for this one"
            % (reference, ", ".join(t.syntax for t in transports() if t.writes_volumes)),
            str(reference),
        )
    return transport.open_destination(reference, options or ConnectionOptions())


def delete_target(reference: ImageReference, options: ConnectionOptions | None = None) -> DeleteTarget:
    """What image_delete works on for ``reference``, from its transport."""
    return transport_named(reference.transport).delete_target(reference, options or ConnectionOptions())
