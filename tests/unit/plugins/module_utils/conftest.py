"""Fixtures the in-process engine tests share."""

from __future__ import annotations

import pytest
from memory_transport import MemoryStore, MemoryTransport

from ansible_collections.oci.images.plugins.module_utils._transports._table import register, unregister


@pytest.fixture
def memory_store():
    """The in-memory transport (``memory:PLACE:NAME``) registered for one test; its store."""
    transport = MemoryTransport(MemoryStore())
    register(transport)
    yield transport.store
    unregister(transport.name)
