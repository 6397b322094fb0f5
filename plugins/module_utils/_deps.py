# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which third-party libraries are importable, so a module can say which one is missing."""

from __future__ import annotations

import importlib
import traceback

# Import name -> package name on PyPI.
REQUIRED = {"requests": "requests", "jsonschema": "jsonschema"}
# Needed only by some options or images (sigstore private keys, zstd layers); checked when those are met.
OPTIONAL = {"nacl": "PyNaCl", "zstandard": "zstandard"}


def missing_libraries(names: tuple[str, ...] = tuple(REQUIRED)) -> list[tuple[str, str]]:
    """(PyPI name, import traceback) for each library in ``names`` that cannot be imported."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append((REQUIRED.get(name) or OPTIONAL.get(name, name), traceback.format_exc()))
    return missing
