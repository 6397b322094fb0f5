"""A repository with many tags, made cheaply: one small image's blobs uploaded once, its manifest PUT under every tag."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

from images import build_image

from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient


def push_many_tags(host: str, repository: str, tags: list[str], workdir: str, seed: int = 900) -> str:
    """Push one image to ``host/repository`` under every tag in ``tags``; return its manifest digest."""
    image = build_image(os.path.join(workdir, "many-tags-%d" % seed), ref="one", layer_sizes=(1024,), seed=seed)
    blobs = os.path.join(image["layout"], "blobs", "sha256")
    with RegistryClient(host, ConnectionOptions(validate_certs=False)) as client:
        for digest in [image["config_digest"], *image["layer_digests"]]:
            path = os.path.join(blobs, digest.partition(":")[2])
            with open(path, "rb") as handle:
                client.upload_blob(repository, digest, handle, os.path.getsize(path))
        raw, media_type = image["manifest"], json.loads(image["manifest"])["mediaType"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda tag: client.put_manifest(repository, tag, raw, media_type), tags))
    return image["manifest_digest"]
