"""pytest plugin: skopeo must be present for the tests that use it as the oracle."""

from __future__ import annotations

import os

import pytest
import skopeo as skopeo_lib


@pytest.fixture(scope="session")
def skopeo():
    """The skopeo helpers module; fails (not skips) when skopeo is missing, since the tests need the oracle."""
    if not os.path.exists(skopeo_lib.SKOPEO):
        pytest.fail("skopeo is not installed: run tests/setup/system.sh (make deps)")
    return skopeo_lib
