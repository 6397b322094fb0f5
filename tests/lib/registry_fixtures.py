"""pytest fixtures for real registries (loaded from tests/conftest.py as a plugin).

Session-scoped: ``registry`` (plain HTTP), ``basic_registry`` (HTTPS, test CA, htpasswd),
``token_registry`` (HTTPS, token auth; ``token_registry.token_server`` is the token server).
Function-scoped: ``fresh_registry(kind="plain")`` starts a registry only that test uses.
Every registry started here is stopped when its scope ends.
"""

from __future__ import annotations

import pytest
from registries import Registry, start_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Registry:
    """A plain-HTTP registry without authentication."""
    reg = start_registry(str(tmp_path_factory.mktemp("registry-plain")), "plain")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory) -> Registry:
    """An HTTPS registry (CA in ``.ca_cert``) with htpasswd users ``.username``/``.password``."""
    reg = start_registry(str(tmp_path_factory.mktemp("registry-basic")), "basic")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory) -> Registry:
    """An HTTPS registry with token auth; the token server is ``.token_server`` (same CA)."""
    reg = start_registry(str(tmp_path_factory.mktemp("registry-token")), "token")
    yield reg
    reg.stop()


@pytest.fixture
def fresh_registry(tmp_path_factory):
    """Factory: ``fresh_registry(kind="plain", **kw)`` starts a registry for this test only."""
    started = []

    def start(kind: str = "plain", **kwargs) -> Registry:
        reg = start_registry(str(tmp_path_factory.mktemp("registry-" + kind)), kind, **kwargs)
        started.append(reg)
        return reg

    yield start
    for reg in started:
        reg.stop()
