# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest plugin: small test images built fresh per test as OCI layouts (see images.py)."""

from __future__ import annotations

import pytest
from images import build_image, build_index


@pytest.fixture
def oci_image(tmp_path):
    """A single-arch linux/amd64 image with two small layers at ``oci:<layout>:latest``.

    Returns what ``build_image`` returns: ``layout``, ``reference``, ``manifest_digest``,
    ``config_digest``, ``layer_digests``, ``layer_sizes``, ``diff_ids``, ...
    """
    return build_image(
        str(tmp_path / "oci-image"),
        ref="latest",
        layer_sizes=(4096, 1024),
        labels={"org.opencontainers.image.title": "oci-image fixture"},
        env=["PATH=/usr/bin:/bin", "FIXTURE=oci_image"],
    )


@pytest.fixture
def oci_index(tmp_path):
    """A two-platform index (linux/amd64, linux/arm64/v8) at ``oci:<layout>:latest``.

    Returns what ``build_index`` returns: ``index_digest``, ``reference``, and per platform in ``manifests``.
    """
    return build_index(str(tmp_path / "oci-index"), ref="latest", platforms=["linux/amd64", "linux/arm64/v8"], layer_sizes=(2048,))
