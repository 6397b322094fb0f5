# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which third-party libraries are importable, so a module can say which one is missing."""

from __future__ import annotations

import importlib.util

# Import name -> package name on PyPI.
REQUIRED = {"requests": "requests"}
# Needed only by some options or images (sigstore private keys, zstd layers); checked when those are met.
OPTIONAL = {"nacl": "PyNaCl", "zstandard": "zstandard"}


def missing_libraries(names: tuple[str, ...] = tuple(REQUIRED)) -> list[tuple[str, str]]:
    """(PyPI name, why) for each library in ``names`` that is not installed."""
    missing = []
    for name in names:
        # Found, not imported: a task that never talks to a registry never pays for importing requests.
        if importlib.util.find_spec(name) is None:
            missing.append((REQUIRED.get(name) or OPTIONAL.get(name, name), "No module named %r" % name))
    return missing
