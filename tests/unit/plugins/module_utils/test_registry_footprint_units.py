# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry-wide footprint's arithmetic, its report, and the distribution storage it can read untagged manifests from."""

from __future__ import annotations

import os

import pytest

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._footprint import ManifestFacts
from ansible_collections.oci.images.plugins.module_utils._footprint_report import human_bytes, render_html, shared_blobs, summary_lines
from ansible_collections.oci.images.plugins.module_utils._registry._distribution_storage import DistributionStorage
from ansible_collections.oci.images.plugins.module_utils._registry_footprint import RegistryScan, RepositoryContents, registry_footprint


def digest(name: str) -> str:
    return "sha256:" + (name.encode().hex() * 64)[:64]


def image(name: str, blobs: dict[str, int], size: int = 100) -> ManifestFacts:
    return ManifestFacts(digest(name), "application/vnd.oci.image.manifest.v1+json", size, {digest(b): s for b, s in blobs.items()})


def index(name: str, children: list[str], size: int = 50) -> ManifestFacts:
    return ManifestFacts(digest(name), "application/vnd.oci.image.index.v1+json", size, children=tuple(digest(c) for c in children))


@pytest.fixture
def scan() -> RegistryScan:
    """base shares its layer with app; app and copy hold one image in common; app has an index; tool keeps an old image untagged."""
    facts = [
        image("base", {"base-layer": 1000, "base-config": 10}),
        image("app1", {"base-layer": 1000, "app1-layer": 300, "app1-config": 10}),
        image("app2", {"base-layer": 1000, "app2-layer": 400, "app2-config": 10}),
        image("arm", {"arm-layer": 200, "arm-config": 10}),
        image("amd", {"amd-layer": 250, "amd-config": 10}),
        index("multi", ["arm", "amd"]),
        image("tool-new", {"tool-new-layer": 500, "tool-config": 10}),
        image("tool-old", {"tool-old-layer": 700, "tool-config": 10}),
    ]
    result = RegistryScan("registry.example.com", manifests={f.digest: f for f in facts})
    result.repositories = {
        "base": RepositoryContents({"1": digest("base"), "latest": digest("base")}, []),
        "app": RepositoryContents({"v1": digest("app1"), "v2": digest("app2"), "latest": digest("app2"), "multi": digest("multi")}, []),
        "copy": RepositoryContents({"v1": digest("app1")}, []),
        "tool": RepositoryContents({"latest": digest("tool-new")}, [digest("tool-old")]),
    }
    return result


def test_every_blob_and_manifest_counts_once_across_repositories(scan):
    footprint = registry_footprint(scan)
    blobs = 1000 + 10 + 300 + 10 + 400 + 10 + 200 + 10 + 250 + 10 + 500 + 10 + 700
    manifests = 100 * 7 + 50
    assert footprint["total_bytes"] == blobs + manifests and footprint["manifest_bytes"] == manifests
    # base-layer (3 repositories), app1's manifest, layer and config (app and copy).
    assert footprint["shared_bytes"] == 1000 + 100 + 300 + 10
    layer = next(b for b in footprint["blobs"] if b["digest"] == digest("base-layer"))
    assert layer["repositories"] == ["app", "base", "copy"] and footprint["blobs"][0] == layer  # largest first
    assert all(b["digest"] != digest("app1") for b in footprint["blobs"])  # manifests are not listed as blobs


def test_per_repository_size_shared_and_what_deleting_it_frees(scan):
    repositories = registry_footprint(scan)["repositories"]
    app = repositories["app"]
    assert (app["tags"], app["manifests"]) == (4, 5)
    assert app["size"] == 100 * 2 + 1000 + 310 + 410 + 50 + 100 * 2 + 210 + 260
    assert app["shared_bytes"] == 1000 + 100 + 310
    assert app["freed_bytes"] == app["unique_bytes"] == app["size"] - app["shared_bytes"]
    assert repositories["copy"]["freed_bytes"] == 0 and repositories["base"]["freed_bytes"] == 100 + 10


def test_untagged_manifests_keep_what_they_hold_and_are_counted_apart(scan):
    footprint = registry_footprint(scan)
    tool = footprint["repositories"]["tool"]
    # The config both tool images share stays with the old one: deleting the tags does not free it.
    assert tool["freed_bytes"] == 100 + 500 and tool["size"] == 100 + 500 + 10
    assert (tool["untagged_manifests"], tool["untagged_bytes"]) == (1, 100 + 700)
    assert tool["unique_bytes"] == 100 + 500 + 10 + 100 + 700
    assert footprint["untagged"] == {"visible": True, "manifests": 1, "bytes": 100 + 700}


def test_without_the_storage_untagged_manifests_are_unknown_not_zero(scan):
    for contents in scan.repositories.values():
        contents.untagged = None
    footprint = registry_footprint(scan)
    assert footprint["untagged"] == {"visible": False, "manifests": None, "bytes": None}
    assert footprint["repositories"]["tool"]["untagged_bytes"] is None
    assert footprint["repositories"]["tool"]["freed_bytes"] == 100 + 500 + 10


def test_summary_and_page_say_the_same_and_escape_what_they_show(scan):
    footprint = registry_footprint(scan)
    lines = summary_lines(footprint)
    assert lines[0] == "Registry registry.example.com: 4 repositories, 8 tags, %s stored (750 bytes of it manifests), %s held by 2 repositories or more" % (
        human_bytes(footprint["total_bytes"]),
        human_bytes(footprint["shared_bytes"]),
    )
    assert [line.split()[0] for line in lines[3:7]] == ["app", "copy", "base", "tool"]  # by size: 3290, 1410, 1110, 610
    assert [b["digest"] for b in shared_blobs(footprint)] == [digest("base-layer"), digest("app1-layer"), digest("app1-config")]
    page = render_html(footprint, title="<script>alert(1)</script> & co")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert page == render_html(footprint, title="<script>alert(1)</script> & co")  # the same footprint, the same bytes
    with pytest.raises(OCIError) as err:
        summary_lines({"total_bytes": 1, "tags": {}, "layers": []})
    assert "catalog and footprint" in err.value.msg


@pytest.mark.parametrize("count, text", [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")])
def test_human_bytes(count, text):
    assert human_bytes(count) == text


def _link(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def test_distribution_storage_lists_revisions_and_tags_and_refuses_what_is_not_it(tmp_path):
    with pytest.raises(OCIError) as err:
        DistributionStorage(str(tmp_path))
    assert "storage.filesystem.rootdirectory" in err.value.msg
    manifests = tmp_path / "docker" / "registry" / "v2" / "repositories" / "team" / "app" / "_manifests"
    one, two = digest("one"), digest("two")
    for value in (one, two):
        _link(str(manifests / "revisions" / "sha256" / value[7:] / "link"), value)
    os.makedirs(manifests / "revisions" / "sha256" / ("0" * 64))  # a revision a delete left empty
    _link(str(manifests / "tags" / "1.0" / "current" / "link"), one)
    _link(str(manifests / "tags" / "latest" / "current" / "link"), two + "\n")
    storage = DistributionStorage(str(tmp_path))
    assert storage.manifest_revisions("team/app") == sorted([one, two])
    assert storage.tags("team/app") == {"1.0": one, "latest": two}
    with pytest.raises(OCIError) as err:
        storage.tags("team/other")
    assert "is it this registry's storage" in err.value.msg
    _link(str(manifests / "tags" / "bad" / "current" / "link"), "not a digest")
    with pytest.raises(OCIError):
        storage.tags("team/app")
