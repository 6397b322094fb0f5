# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared test-image builder: deterministic, sized as asked, and readable by skopeo."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

from images import build_image, build_index, layer_bytes


def test_same_seed_gives_identical_images_and_different_seeds_differ(tmp_path):
    a = build_image(str(tmp_path / "a"), seed=7, layer_sizes=(1000, 2000))
    b = build_image(str(tmp_path / "b"), seed=7, layer_sizes=(1000, 2000))
    c = build_image(str(tmp_path / "c"), seed=8, layer_sizes=(1000, 2000))
    assert a["manifest_digest"] == b["manifest_digest"]
    assert a["layer_digests"] == b["layer_digests"]
    assert not set(a["layer_digests"]) & set(c["layer_digests"])
    assert len(set(a["layer_digests"])) == 2


def test_layers_hold_the_requested_payload_and_match_the_config(tmp_path):
    image = build_image(str(tmp_path / "l"), layer_sizes=(12345,))
    blob = layer_bytes(image["layout"], image["layer_digests"][0])
    assert len(blob) == image["layer_sizes"][0]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        (member,) = tar.getmembers()
        assert member.size == 12345
    assert image["config"]["rootfs"]["diff_ids"] == image["diff_ids"]


def test_second_image_is_added_to_an_existing_layout(tmp_path, skopeo):
    layout = str(tmp_path / "layout")
    one = build_image(layout, ref="one", seed=1)
    index = build_index(layout, ref="multi", platforms=["linux/amd64", "linux/arm/v7"])
    with open(tmp_path / "layout" / "index.json") as f:
        refs = [m["annotations"]["org.opencontainers.image.ref.name"] for m in json.load(f)["manifests"]]
    assert refs == ["one", "multi"]
    assert skopeo.inspect(one["reference"])["Digest"] == one["manifest_digest"]
    assert skopeo.inspect(index["reference"], "--override-arch", "arm", "--override-variant", "v7")["Layers"] == index["manifests"][1]["layer_digests"]
