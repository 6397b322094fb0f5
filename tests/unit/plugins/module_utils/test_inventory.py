"""The air-gapped side's inventory: versioned JSON, refused clearly when it is not one."""

from __future__ import annotations

import json

import pytest

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._inventory import add_imported, held_blobs, read_inventory, write_inventory

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_an_absent_inventory_holds_nothing(tmp_path):
    inventory = read_inventory(str(tmp_path / "none.json"))
    assert held_blobs(inventory) == {}


def test_imported_images_add_their_blobs_to_their_repository_and_read_back(tmp_path):
    path = str(tmp_path / "inventory.json")
    inventory = read_inventory(path)
    add_imported(inventory, "registry.example.com:5000/team/app:1.0", A, "docker://internal/m/app:1.0", [A, B])
    add_imported(inventory, "registry.example.com:5000/team/app@" + B, B, "docker://internal/m/app@" + B, [B])
    write_inventory(path, inventory)
    again = read_inventory(path)
    assert held_blobs(again) == {"registry.example.com:5000/team/app": frozenset({A, B})}
    assert again["images"]["registry.example.com:5000/team/app:1.0"] == {"digest": A, "dest": "docker://internal/m/app:1.0"}
    assert [p.name for p in tmp_path.iterdir()] == ["inventory.json"]


@pytest.mark.parametrize(
    "content,message",
    [
        ("not json", r"inventory .*inventory.json cannot be read: .*; give the file the import side wrote"),
        (json.dumps({"version": 2, "images": {}, "repositories": {}}), r"has version 2; this collection reads version 1"),
        (json.dumps({"version": 1, "images": []}), r"expected the keys images and repositories, each a mapping"),
        (json.dumps({"version": 1, "images": {}, "repositories": {"r": {"blobs": ["sha256:nope"]}}}), r"invalid digest 'sha256:nope'"),
    ],
)
def test_an_inventory_that_is_not_one_is_refused_clearly(tmp_path, content, message):
    path = tmp_path / "inventory.json"
    path.write_text(content)
    with pytest.raises(OCIError, match=message):
        read_inventory(str(path))
