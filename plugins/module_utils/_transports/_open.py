# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that maps a transport name to its implementation."""

from __future__ import annotations

import threading

from .._errors import Unsupported
from .._options import ConnectionOptions
from .._reference import ImageReference
from ._base import ImageDestination, ImageSource

_clients: dict = {}
_clients_lock = threading.Lock()


def registry_client(registry: str, options: ConnectionOptions):
    """One RegistryClient per registry and option set for the whole process.

    Sharing it across the images of a task keeps pooled connections, the chosen scheme and the
    token cache, instead of paying for a new handshake and token per image.
    """
    from .._registry._client import RegistryClient

    key = (registry, options.identity())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = RegistryClient(registry, options)
        return client


def open_source(reference: ImageReference, options: ConnectionOptions | None = None) -> ImageSource:
    """An ImageSource for ``reference``; the caller closes it (it is a context manager)."""
    options = options or ConnectionOptions()
    transport = reference.transport
    if transport == "docker":
        from ._docker import RegistrySource

        return RegistrySource(reference, options, client=registry_client(reference.registry or "docker.io", options))
    if transport == "dir":
        from ._directory import DirectorySource

        return DirectorySource(reference)
    if transport == "oci":
        from ._oci_layout import OCILayoutSource

        return OCILayoutSource(reference)
    if transport == "oci-archive":
        from ._archive import OCIArchiveSource

        return OCIArchiveSource(reference)
    if transport == "docker-archive":
        from ._archive import DockerArchiveSource

        return DockerArchiveSource(reference)
    if transport == "docker-daemon":
        from ._daemon import DaemonSource

        return DaemonSource(reference, options)
    if transport == "containers-storage":
        from ._storage import StorageSource

        return StorageSource(reference, options)
    raise Unsupported(
        "%s: the %s transport is not available yet in this version of oci.images; "
        "use docker://, dir:, oci:, oci-archive: or docker-archive:" % (reference, transport),
        str(reference),
    )


def open_destination(reference: ImageReference, options: ConnectionOptions | None = None) -> ImageDestination:
    """An ImageDestination for ``reference``. Opening it writes nothing; the caller closes it."""
    options = options or ConnectionOptions()
    transport = reference.transport
    if transport == "docker":
        from ._docker import RegistryDestination

        return RegistryDestination(reference, options, client=registry_client(reference.registry or "docker.io", options))
    if transport == "dir":
        from ._directory import DirectoryDestination

        return DirectoryDestination(reference)
    if transport == "oci":
        from ._oci_layout import OCILayoutDestination

        return OCILayoutDestination(reference)
    if transport == "oci-archive":
        from ._archive import OCIArchiveDestination

        return OCIArchiveDestination(reference)
    if transport == "docker-archive":
        from ._archive import DockerArchiveDestination

        return DockerArchiveDestination(reference)
    if transport == "docker-daemon":
        from ._daemon import DaemonDestination

        return DaemonDestination(reference, options)
    if transport == "containers-storage":
        from ._storage import StorageDestination

        return StorageDestination(reference, options)
    raise Unsupported(
        "%s: writing to the %s transport is not available yet in this version of oci.images; "
        "use docker://, dir:, oci:, oci-archive: or docker-archive:" % (reference, transport),
        str(reference),
    )
