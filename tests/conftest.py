"""Test setup shared by unit, functional and benchmark tests.

Makes the collection importable as ``ansible_collections.oci.images`` (a symlink
tree outside the checkout, so nothing walks into itself) and loads the fixture
modules from tests/lib.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))

from collection_tree import ensure_collection_tree  # noqa: E402

COLLECTIONS_ROOT = ensure_collection_tree(REPO)
if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)

pytest_plugins = [
    "registry_fixtures",
    "image_fixtures",
    "skopeo_fixtures",
    "engine_fixtures",
]
