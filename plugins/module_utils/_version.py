# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's version, as galaxy.yml gives it (a test keeps the two equal)."""

from __future__ import annotations

COLLECTION_VERSION = "0.1.0"
