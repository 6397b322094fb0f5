# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory of an air-gapped side: what it holds, so the connected side exports only what is new.

Written by an import (a bundle or tree copied into registries) and read by the next export into a
bundle, whose blobs it then leaves out when the inventory says the other side holds them in that
repository. Plain JSON, versioned (docs/air-gap.md)::

    {"version": 1,
     "images": {"<name in the bundle>": {"digest": "sha256:...", "dest": "docker://..."}},
     "repositories": {"<repository in the bundle>": {"blobs": ["sha256:...", ...]}}}
"""

from __future__ import annotations

import json
import os

from ._errors import OCIError
from ._reference import split_name, validate_digest

VERSION = 1
MAX_INVENTORY_BYTES = 64 << 20


def read_inventory(path: str) -> dict:
    """The inventory at ``path``; an empty one when the file does not exist."""
    if not os.path.exists(path):
        return {"version": VERSION, "images": {}, "repositories": {}}
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_INVENTORY_BYTES + 1)
        if len(raw) > MAX_INVENTORY_BYTES:
            raise ValueError("larger than %d bytes" % MAX_INVENTORY_BYTES)
        inventory = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise OCIError("inventory %s cannot be read: %s; give the file the import side wrote" % (path, exc), path) from None
    if not isinstance(inventory, dict) or inventory.get("version") != VERSION:
        version = inventory.get("version") if isinstance(inventory, dict) else None
        raise OCIError("inventory %s has version %r; this collection reads version %d" % (path, version, VERSION), path)
    images, repositories = inventory.get("images"), inventory.get("repositories")
    if not isinstance(images, dict) or not isinstance(repositories, dict):
        raise OCIError("inventory %s: expected the keys images and repositories, each a mapping" % path, path)
    for name, entry in repositories.items():
        blobs = entry.get("blobs") if isinstance(entry, dict) else None
        if not isinstance(blobs, list):
            raise OCIError("inventory %s: repository %s has no list of blobs" % (path, name), path)
        for digest in blobs:
            validate_digest(str(digest), "inventory %s" % path)
    return inventory


def held_blobs(inventory: dict) -> dict[str, frozenset]:
    """Per repository, the blobs the inventory's side holds."""
    return {name: frozenset(entry["blobs"]) for name, entry in inventory["repositories"].items()}


def add_imported(inventory: dict, name: str, digest: str, dest: str, blobs: list[str]) -> None:
    """Record that the image ``name`` (as the bundle names it) is now at ``dest`` with ``digest``, and holds ``blobs``."""
    inventory["images"][name] = {"digest": digest, "dest": dest}
    repository = inventory["repositories"].setdefault(split_name(name)[0], {"blobs": []})
    repository["blobs"] = sorted(set(repository["blobs"]) | set(blobs))


def write_inventory(path: str, inventory: dict) -> None:
    """Replace the inventory file as a whole (a new file renamed over the old one)."""
    data = json.dumps(inventory, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    temp = "%s.oci-images-%s" % (path, os.urandom(6).hex())
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        if os.path.exists(temp):
            os.unlink(temp)
        raise OCIError("inventory %s cannot be written: %s" % (path, exc), path) from None
