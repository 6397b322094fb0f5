"""pytest fixtures for real container engines (loaded from tests/conftest.py as a plugin).

``docker_engine`` (session): a private dockerd, stopped (with its containerd) at the end.
When dockerd cannot start here the tests that need it are skipped with the reason and the
engine's log, so the summary (``-ra``) says exactly why.
``podman_store`` (function): a private vfs containers-storage for one test, removed after it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from engines import PODMAN, EngineUnavailable, PodmanStore, start_dockerd


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A running private Docker engine (``.host`` is its unix:// address, ``.docker(...)`` its CLI)."""
    try:
        engine = start_dockerd(str(tmp_path_factory.mktemp("dockerd")))
    except EngineUnavailable as e:
        pytest.skip("no Docker engine for the docker-daemon: tests: %s" % e)
    yield engine
    engine.stop()


@pytest.fixture
def podman_store(tmp_path):
    """A private containers-storage; ``.reference(name)`` gives ``containers-storage:[vfs@ROOT+RUNROOT]name``."""
    if not os.path.exists(PODMAN) and not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman; tests/setup/system.sh does it)")
    # podman refuses a runroot longer than 50 characters: keep it short, under /tmp.
    store = PodmanStore(str(tmp_path / "storage-root"), tempfile.mkdtemp(prefix="oci-r-", dir="/tmp"))
    yield store
    store.remove()
