"""Functional tests: nothing the collection creates outlives the task that created it.

Other test runs on the same machine may have ``oci-images-*`` files in the shared temporary
directory at any moment, so this session (and every module and program it runs, through
``TMPDIR``) gets a temporary directory of its own; pytest's own ``tmp_path`` stays where it was.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

PREFIX = "oci-images"

os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
_SESSION_TMP = tempfile.mkdtemp(prefix="oci-tests-tmp-")
os.environ["TMPDIR"] = _SESSION_TMP
tempfile.tempdir = _SESSION_TMP
atexit.register(shutil.rmtree, _SESSION_TMP, True)


def _collection_temp_entries() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith(PREFIX)}


@pytest.fixture(scope="module", autouse=True)
def nothing_left_in_the_temporary_directory():
    """Fail the test module when an ``oci-images*`` entry it made in the temporary directory is still there after it."""
    before = _collection_temp_entries()
    yield
    left = sorted(_collection_temp_entries() - before)
    for name in left:
        # Removed so the next module is judged on its own leftovers only.
        path = os.path.join(tempfile.gettempdir(), name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    if left:
        pytest.fail("left in %s after the tests of this module: %s" % (tempfile.gettempdir(), ", ".join(left)))
