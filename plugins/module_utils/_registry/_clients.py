# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One RegistryClient per registry and option set for the whole process.

Sharing a client across the images of a task keeps pooled connections, the chosen scheme and
the token cache, instead of paying for a new handshake and token per image. ``close_clients``
ends them all (their connections and any file they made) when the task is done.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .._options import ConnectionOptions
from .._reference import DEFAULT_REGISTRY

if TYPE_CHECKING:  # pragma: no cover
    from ._client import RegistryClient

_clients: dict = {}
_lock = threading.Lock()


def _key(registry: str, options: ConnectionOptions) -> tuple:
    # Fields that do not change how the registry is reached (callbacks) are left out.
    return (registry, options.identity())


def registry_client(registry: str | None, options: ConnectionOptions) -> RegistryClient:
    """The process's client for ``registry`` (Docker Hub when None) with ``options``."""
    registry = registry or DEFAULT_REGISTRY
    key = _key(registry, options)
    with _lock:
        client = _clients.get(key)
        if client is None:
            from ._client import RegistryClient  # requests is imported with the first client, not by close_clients

            client = _clients[key] = RegistryClient(registry, options)
        return client


def close_clients() -> None:
    """Close every shared client (the next ``registry_client`` call makes a new one)."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
