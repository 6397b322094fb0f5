"""Registries with many repositories, made cheaply: images built into an OCI layout, pushed with the collection's client.

A blob goes up once per registry; every other repository that needs it gets it by a cross-repository
mount (no bytes sent), and a manifest is PUT under each of its tags. What ``skopeo copy`` would do
image by image, in a fraction of the time.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from images import build_image, build_index

from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient


class RegistryFiller:
    """Pushes images of OCI layouts into repositories of one registry, each blob uploaded once."""

    def __init__(self, client: RegistryClient):
        self.client = client
        self._homes: dict[str, str] = {}  # blob digest -> a repository that has it
        self._lock = threading.Lock()

    def _blob(self, layout: str, repository: str, digest: str) -> None:
        with self._lock:
            home = self._homes.get(digest)
        if home == repository:
            return
        if home is not None and self.client.mount_blob(repository, digest, home):
            return
        path = os.path.join(layout, "blobs", "sha256", digest.partition(":")[2])
        with open(path, "rb") as handle:
            self.client.upload_blob(repository, digest, handle, os.path.getsize(path))
        with self._lock:
            self._homes.setdefault(digest, repository)

    def push(self, repository: str, image: dict, tags: list[str]) -> None:
        """Push ``image`` (what tests/lib/images.py build_image or build_index returns) to ``repository`` under ``tags``."""
        layout = image["layout"]
        children = image.get("manifests") or []
        for single in children or [image]:
            for digest in [single["config_digest"], *single["layer_digests"]]:
                self._blob(layout, repository, digest)
        for child in children:
            self.client.put_manifest(repository, child["manifest_digest"], child["manifest"], child["manifest_media_type"])
        media_type = image.get("manifest_media_type") or json.loads(image["manifest"])["mediaType"]
        if not tags:
            self.client.put_manifest(repository, image["manifest_digest"], image["manifest"], media_type)
        for tag in tags:
            self.client.put_manifest(repository, tag, image["manifest"], media_type)

    def push_all(self, plan: list[tuple[str, dict, list[str]]], parallel: int = 8) -> None:
        """Push every (repository, image, tags) of ``plan``; one repository's images in order, repositories in parallel."""
        by_repository: dict[str, list[tuple[dict, list[str]]]] = {}
        for repository, image, tags in plan:
            by_repository.setdefault(repository, []).append((image, tags))

        def fill(repository: str) -> None:
            for image, tags in by_repository[repository]:
                self.push(repository, image, tags)

        # The first repository's blobs go up before the others mount them.
        first = next(iter(by_repository), None)
        if first is not None:
            fill(first)
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(fill, [r for r in by_repository if r != first]))


def own_bytes(image: dict) -> int:
    """What a registry stores for one image: its manifest, config and layers."""
    return image["manifest_size"] + image["config_size"] + sum(image["layer_sizes"])


def fill_sharing_repositories(host: str, layout: str) -> dict:
    """Four repositories on the plain registry ``host``; returns the images by name.

    gc/app shares a base layer with gc/base and one whole image (app1) with gc/dup, and holds an index (multi);
    gc/tool's tag moved from one image (tool-old) to another (tool-new), so the first stays there untagged.
    """
    images = {
        "base": build_image(layout, ref="base", layer_sizes=(50000,), layer_keys=["base-layer"], seed="base"),
        "app1": build_image(layout, ref="app1", layer_sizes=(50000, 30000), layer_keys=["base-layer", "app1-layer"], seed="app1"),
        "app2": build_image(layout, ref="app2", layer_sizes=(50000, 35000), layer_keys=["base-layer", "app2-layer"], seed="app2"),
        "multi": build_index(layout, ref="multi", layer_sizes=(20000,), seed="multi"),
        "tool-old": build_image(layout, ref="tool-old", layer_sizes=(40000,), seed="tool-old"),
        "tool-new": build_image(layout, ref="tool-new", layer_sizes=(45000,), seed="tool-new"),
    }
    with RegistryClient(host, ConnectionOptions(validate_certs=False)) as client:
        RegistryFiller(client).push_all(
            [
                ("gc/base", images["base"], ["1", "latest"]),
                ("gc/app", images["app1"], ["v1"]),
                ("gc/app", images["app2"], ["v2", "latest"]),
                ("gc/app", images["multi"], ["multi"]),
                ("gc/dup", images["app1"], ["v1"]),
                ("gc/tool", images["tool-old"], ["latest"]),
                ("gc/tool", images["tool-new"], ["latest"]),
            ],
            parallel=1,
        )
    return images
