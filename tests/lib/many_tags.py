"""A repository with many tags, made cheaply: one small image's blobs uploaded once, its manifest PUT under every tag.

With ``distinct``, each tag gets its own manifest (the same blobs, an annotation naming the tag), so
every tag has its own digest and a mirror has to read each one.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

from images import build_image

from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient


def distinct_manifest(raw: bytes, tag: str) -> bytes:
    """The manifest ``raw`` with an annotation naming ``tag``: same blobs, a digest of its own."""
    doc = json.loads(raw)
    doc["annotations"] = dict(doc.get("annotations") or {}, **{"org.example.tag": tag})
    return json.dumps(doc, separators=(",", ":")).encode()


def push_many_tags(host: str, repository: str, tags: list[str], workdir: str, seed: int = 900, distinct: bool = False) -> str | dict:
    """Push one image to ``host/repository`` under every tag in ``tags``; return its manifest digest.

    With ``distinct``, return each tag's own digest (tag -> digest).
    """
    image = build_image(os.path.join(workdir, "many-tags-%d" % seed), ref="one", layer_sizes=(1024,), seed=seed)
    blobs = os.path.join(image["layout"], "blobs", "sha256")
    with RegistryClient(host, ConnectionOptions(validate_certs=False)) as client:
        for digest in [image["config_digest"], *image["layer_digests"]]:
            path = os.path.join(blobs, digest.partition(":")[2])
            with open(path, "rb") as handle:
                client.upload_blob(repository, digest, handle, os.path.getsize(path))
        raw, media_type = image["manifest"], json.loads(image["manifest"])["mediaType"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            if distinct:
                digests = list(pool.map(lambda tag: client.put_manifest(repository, tag, distinct_manifest(raw, tag), media_type), tags))
                return dict(zip(tags, digests))
            list(pool.map(lambda tag: client.put_manifest(repository, tag, raw, media_type), tags))
    return image["manifest_digest"]
