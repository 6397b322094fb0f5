"""image_delete (and image_info's footprint) through Ansible, against the real registry, with skopeo as the oracle."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
from ansible_run import run_module
from counting_proxy import CountingProxy
from images import build_image, build_index
from registries import REGISTRY_BINARY, Registry

pytestmark = pytest.mark.timeout(300)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def delete(image: str, check: bool = False, diff: bool = False, **extra):
    return run_module("image_delete", dict(image=image, validate_certs=False, **extra), check=check, diff=diff)


def removed_in_diff(run) -> set[str]:
    """Keys Ansible's printed diff shows as removed (Ansible prints the diff and drops it from the result)."""
    printed = run.stdout.split("=>")[0]
    return {line.split('"')[1] for line in printed.splitlines() if line.startswith("-") and '"' in line}


def registry_tags(host: str, repository: str) -> list[str]:
    with urllib.request.urlopen("http://%s/v2/%s/tags/list" % (host, repository), timeout=10) as response:
        return sorted(json.loads(response.read())["tags"] or [])


def manifest_exists(host: str, repository: str, ref: str) -> bool:
    request = urllib.request.Request(
        "http://%s/v2/%s/manifests/%s" % (host, repository, ref),
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"},
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
        return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


def blob_bytes_on_disk(registry: Registry) -> int:
    """What ``du -sb`` would count for the registry's blob store: the sum of file sizes."""
    total = 0
    for root, _dirs, files in os.walk(os.path.join(registry.data_dir, "docker", "registry", "v2", "blobs")):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total


@pytest.fixture(scope="module")
def image_layout(tmp_path_factory):
    """One layout: ``a`` and ``b`` share their layers (different configs), ``c`` has its own."""
    path = str(tmp_path_factory.mktemp("delete-src") / "layout")
    images = {
        "a": build_image(path, ref="a", layer_sizes=(6000, 2000), seed=1, created="2024-01-01T00:00:00Z"),
        "b": build_image(path, ref="b", layer_sizes=(6000, 2000), seed=1, created="2024-01-02T00:00:00Z"),
        "c": build_image(path, ref="c", layer_sizes=(3000,), seed=2, created="2024-01-03T00:00:00Z"),
    }
    return path, images


def push(skopeo, layout: str, ref: str, dest: str) -> None:
    skopeo.copy("oci:%s:%s" % (layout, ref), dest)


def test_delete_keeps_other_tags_on_same_digest(registry, image_layout, skopeo):
    path, images = image_layout
    repo = "delete/siblings"
    for tag in ("one", "two"):
        push(skopeo, path, "a", "docker://%s/%s:%s" % (registry.host, repo, tag))
    digest = images["a"]["manifest_digest"]

    run = delete("docker://%s/%s:one" % (registry.host, repo), diff=True)
    assert not run.failed, run.output
    assert run.changed
    assert run.result["method"] == "placeholder"
    assert run.result["deleted"] == [{"tag": "one", "digest": digest, "method": "placeholder"}]
    assert run.result["kept"] == ["two"]
    assert run.result["freed_bytes"] == 0  # "two" still uses every blob
    assert removed_in_diff(run) == {"one"}
    assert registry_tags(registry.host, repo) == ["two"]
    assert digest_of(skopeo.inspect_raw("docker://%s/%s:two" % (registry.host, repo))) == digest

    again = delete("docker://%s/%s:one" % (registry.host, repo))
    assert not again.failed, again.output
    assert again.changed is False
    assert again.result["deleted"] == []


def test_delete_last_tag_deletes_its_manifest(registry, image_layout, skopeo):
    path, images = image_layout
    repo = "delete/only"
    push(skopeo, path, "c", "docker://%s/%s:solo" % (registry.host, repo))
    push(skopeo, path, "a", "docker://%s/%s:other" % (registry.host, repo))
    digest = images["c"]["manifest_digest"]
    run = delete("docker://%s/%s:solo" % (registry.host, repo))
    assert not run.failed, run.output
    assert run.result["method"] == "manifest"
    assert run.result["deleted_manifests"] == [digest]
    assert run.result["freed_bytes"] == images["c"]["config_size"] + sum(images["c"]["layer_sizes"])
    assert not manifest_exists(registry.host, repo, digest)
    assert registry_tags(registry.host, repo) == ["other"]


def test_digest_delete_reports_every_tag_on_it(registry, image_layout, skopeo):
    path, images = image_layout
    repo = "delete/by-digest"
    for tag in ("x", "y"):
        push(skopeo, path, "b", "docker://%s/%s:%s" % (registry.host, repo, tag))
    push(skopeo, path, "c", "docker://%s/%s:z" % (registry.host, repo))
    digest = images["b"]["manifest_digest"]
    ref = "docker://%s/%s@%s" % (registry.host, repo, digest)
    run = delete(ref)
    assert not run.failed, run.output
    assert sorted((d["tag"], d["digest"]) for d in run.result["deleted"]) == [("x", digest), ("y", digest)]
    assert run.result["kept"] == ["z"]
    assert registry_tags(registry.host, repo) == ["z"]
    assert delete(ref).changed is False


def test_prune_check_mode_predicts_exactly_the_real_run(registry, tmp_path, skopeo):
    layout = str(tmp_path / "many")
    repo = "delete/prune"
    digests = {}
    for n in range(12):
        info = build_image(layout, ref="b%d" % n, layer_sizes=(1500,), seed=100 + n, created="2024-03-%02dT00:00:00Z" % (n + 1))
        digests["b%d" % n] = info["manifest_digest"]
        push(skopeo, layout, "b%d" % n, "docker://%s/%s:build-%d" % (registry.host, repo, n))
    # release-1 sits on build-1's image, so build-1 must survive with it; latest is a name rule too.
    push(skopeo, layout, "b1", "docker://%s/%s:release-1" % (registry.host, repo))
    push(skopeo, layout, "b4", "docker://%s/%s:latest" % (registry.host, repo))
    policy = {"keep_latest": 3, "keep_tags": ["latest", "release-.*"]}

    with CountingProxy(registry.host) as proxy:
        image = "docker://%s/%s" % (proxy.host, repo)
        check = delete(image, check=True, diff=True, prune=policy)
        assert not check.failed, check.output
        # Check mode's one request with a write verb: the probe whether deletes are allowed, a DELETE of a digest no
        # manifest has (the registry answers 404 and changes nothing).
        writes = proxy.writes()
        assert len(writes) == 1 and writes[0][0] == "DELETE", writes
        probed = writes[0][1].rsplit("/", 1)[1]
        assert probed not in digests.values()
        with pytest.raises(skopeo.SkopeoFailed, match="manifest unknown"):
            skopeo.inspect_raw("docker://%s/%s@%s" % (registry.host, repo, probed))
        real = delete(image, prune=policy)
        assert not real.failed, real.output

    expected = sorted("build-%d" % n for n in (0, 2, 3, 5, 6, 7, 8))
    assert sorted(d["tag"] for d in check.result["deleted"]) == expected
    assert check.result["deleted"] == real.result["deleted"]
    assert sorted(check.result["deleted_manifests"]) == sorted(real.result["deleted_manifests"])
    assert check.result["freed_bytes"] == real.result["freed_bytes"] > 0
    assert check.result["kept_reasons"]["build-1"] == "shares digest with kept tag release-1"
    assert removed_in_diff(check) == set(expected)
    assert registry_tags(registry.host, repo) == sorted(real.result["kept"])
    assert sorted(real.result["kept"]) == ["build-1", "build-10", "build-11", "build-4", "build-9", "latest", "release-1"]
    assert all(d["digest"] == digests["b%s" % d["tag"].split("-")[1]] for d in real.result["deleted"])

    second = delete("docker://%s/%s" % (registry.host, repo), prune=policy)
    assert not second.failed, second.output
    assert second.changed is False


@pytest.mark.parametrize(
    "policy",
    [
        {"keep_latest": 0},
        {"keep_newer_than": "0s"},
        {"older_than": "0"},
        {"keep_tags": []},
        {"include": [], "keep_latest": 0},
        {"older_than": "30d"},  # every image here is from 2024: this repository's tags are all older
        {"keep_tags": ["release-.*"]},  # no such tag here
    ],
    ids=["keep_latest-0", "keep_newer_than-0s", "older_than-0", "keep_tags-empty", "include-empty", "all-older", "keep_tags-no-match"],
)
def test_prune_that_would_delete_every_tag_needs_explicit_include(registry, image_layout, skopeo, policy):
    path, _unused = image_layout
    repo = "delete/keepnothing"
    for tag in ("latest", "1.0"):
        push(skopeo, path, "a" if tag == "latest" else "c", "docker://%s/%s:%s" % (registry.host, repo, tag))
    image = "docker://%s/%s" % (registry.host, repo)
    for check in (True, False):
        run = delete(image, check=check, prune=policy)
        assert run.failed, run.output
        assert "would delete every tag" in run.result["msg"] and "prune.include: ['.*']" in run.result["msg"]
        assert "Traceback" not in run.output
    assert registry_tags(registry.host, repo) == ["1.0", "latest"]

    explicit = delete(image, check=True, prune=dict(policy, include=[".*"]))
    assert not explicit.failed, explicit.output
    assert sorted(d["tag"] for d in explicit.result["deleted"]) == ["1.0", "latest"]


def test_freed_bytes_matches_registry_garbage_collection(fresh_registry, tmp_path, skopeo):
    reg = fresh_registry()
    layout = str(tmp_path / "gc")
    repo = "delete/gc"
    # A shared base layer, images of their own, and a two-platform index: enough sharing to get the count wrong.
    for n in range(4):
        seed = "base" if n < 2 else "other%d" % n  # img0 and img1 share their first layer
        build_image(layout, ref="img%d" % n, layer_sizes=(40000, 20000 + 5000 * n), seed=seed, created="2024-05-%02dT00:00:00Z" % (n + 1))
        push(skopeo, layout, "img%d" % n, "docker://%s/%s:img%d" % (reg.host, repo, n))
    build_index(layout, ref="multi", layer_sizes=(30000,), seed=9, created="2024-05-10T00:00:00Z")
    skopeo.copy("oci:%s:multi" % layout, "docker://%s/%s:multi" % (reg.host, repo), "--multi-arch", "all")

    run = delete("docker://%s/%s" % (reg.host, repo), prune={"include": ["img[023]", "multi"]})
    assert not run.failed, run.output
    assert sorted(d["tag"] for d in run.result["deleted"]) == ["img0", "img2", "img3", "multi"]
    assert len(run.result["deleted_manifests"]) == 4 + 2  # three images, the index, and the index's two images
    predicted = run.result["freed_bytes"]
    assert predicted > 100000

    reg.stop()  # garbage-collect wants a registry nobody writes to
    before = blob_bytes_on_disk(reg)
    subprocess.run([REGISTRY_BINARY, "garbage-collect", reg.config_path], check=True, capture_output=True, timeout=120)
    actually_freed = before - blob_bytes_on_disk(reg)
    assert abs(actually_freed - predicted) <= 0.05 * actually_freed, (predicted, actually_freed)
    reg.start()
    assert registry_tags(reg.host, repo) == ["img1"]
    skopeo.copy("docker://%s/%s:img1" % (reg.host, repo), "oci:%s:check" % (tmp_path / "readback"))


def test_footprint_counts_layers_of_two_tags_on_one_digest_once(registry, image_layout, skopeo):
    path, images = image_layout
    repo = "delete/footprint"
    for tag in ("p", "q"):
        push(skopeo, path, "a", "docker://%s/%s:%s" % (registry.host, repo, tag))
    push(skopeo, path, "b", "docker://%s/%s:r" % (registry.host, repo))
    run = run_module("image_info", {"image": "docker://%s/%s" % (registry.host, repo), "footprint": True, "validate_certs": False})
    assert not run.failed, run.output
    footprint = run.result["footprint"]
    a, b = images["a"], images["b"]
    layers = sum(a["layer_sizes"])  # a and b share their layers
    assert footprint["total_bytes"] == layers + a["config_size"] + b["config_size"]
    assert footprint["shared_bytes"] == layers + a["config_size"]
    assert footprint["tags"]["p"] == {"digest": a["manifest_digest"], "size": layers + a["config_size"], "unique_bytes": 0}
    assert footprint["tags"]["r"]["unique_bytes"] == b["config_size"]
    assert {layer["digest"]: layer["tags_using"] for layer in footprint["layers"]}[a["layer_digests"][0]] == 3
    assert run.result["image"] == {}


class NoDeleteRegistry(Registry):
    """A registry started with ``storage.delete.enabled: false``."""

    def _write_config(self) -> None:
        super()._write_config()
        with open(self.config_path) as f:
            text = f.read()
        with open(self.config_path, "w") as f:
            f.write(text.replace("delete: {enabled: true}", "delete: {enabled: false}"))


def test_deletes_disabled_fails_clearly_and_changes_nothing(tmp_path, image_layout, skopeo):
    path, images = image_layout
    with NoDeleteRegistry(str(tmp_path / "nodelete")).start() as reg:
        repo = "delete/disabled"
        for tag in ("kept", "twin"):
            push(skopeo, path, "a", "docker://%s/%s:%s" % (reg.host, repo, tag))
        push(skopeo, path, "c", "docker://%s/%s:alone" % (reg.host, repo))
        for tag in ("kept", "alone"):  # the placeholder path and the manifest path
            predicted = delete("docker://%s/%s:%s" % (reg.host, repo, tag), check=True)
            # Check mode meets the refusal the real run meets, instead of predicting a change.
            assert predicted.failed and "does not allow deletes" in predicted.result["msg"], predicted.output
            run = delete("docker://%s/%s:%s" % (reg.host, repo, tag))
            assert run.failed
            assert "does not allow deletes" in run.result["msg"] and "storage.delete.enabled" in run.result["msg"]
            assert "nothing was changed" in run.result["msg"]
        predicted = delete("docker://%s/%s@%s" % (reg.host, repo, images["c"]["manifest_digest"]), check=True)
        assert predicted.failed and "does not allow deletes" in predicted.result["msg"], predicted.output
        assert registry_tags(reg.host, repo) == ["alone", "kept", "twin"]
        assert digest_of(skopeo.inspect_raw("docker://%s/%s:kept" % (reg.host, repo))) == images["a"]["manifest_digest"]


def test_oci_layout_ref_delete_keeps_other_refs_and_removes_only_unreferenced_blobs(tmp_path, skopeo):
    layout = str(tmp_path / "layout")
    a = build_image(layout, ref="a", layer_sizes=(5000,), seed=7, created="2024-01-01T00:00:00Z")
    b = build_image(layout, ref="b", layer_sizes=(5000,), seed=7, created="2024-01-02T00:00:00Z")
    stray = os.path.join(layout, "blobs", "sha256", "f" * 64)  # not ours to judge: a writer may be mid-way
    with open(stray, "wb") as f:
        f.write(b"in flight")
    blobs = os.path.join(layout, "blobs", "sha256")

    def snapshot():
        with open(os.path.join(layout, "index.json"), "rb") as f:
            return sorted(os.listdir(layout)), sorted(os.listdir(blobs)), f.read()

    before = snapshot()
    check = delete("oci:%s:a" % layout, check=True)
    assert check.changed
    assert snapshot() == before  # check mode wrote nothing, not even a lock file
    run = delete("oci:%s:a" % layout)
    assert not run.failed, run.output
    assert run.result["deleted"] == [{"tag": "a", "digest": a["manifest_digest"], "method": "index"}]
    assert run.result["freed_bytes"] == check.result["freed_bytes"] == a["manifest_size"] + a["config_size"]
    left = set(os.listdir(blobs))
    assert a["manifest_digest"][7:] not in left and a["config_digest"][7:] not in left
    assert a["layer_digests"][0][7:] in left  # b still uses it
    assert "f" * 64 in left
    assert digest_of(skopeo.inspect_raw("oci:%s:b" % layout)) == b["manifest_digest"]
    skopeo.copy("oci:%s:b" % layout, "oci:%s:b" % (tmp_path / "copy"))
    assert delete("oci:%s:a" % layout).changed is False


def test_dir_is_removed_only_when_it_holds_an_image(tmp_path, image_layout, skopeo):
    path, _unused = image_layout
    target = tmp_path / "image-dir"
    skopeo.copy("oci:%s:c" % path, "dir:%s" % target)
    run = delete("dir:%s" % target)
    assert not run.failed, run.output
    assert run.changed and run.result["freed_bytes"] > 3000
    assert not target.exists()
    assert delete("dir:%s" % target).changed is False

    precious = tmp_path / "not-an-image"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    refused = delete("dir:%s" % precious)
    assert refused.failed and "refusing" in refused.result["msg"]
    assert (precious / "notes.txt").exists()


def test_footprint_of_several_references_counts_shared_layers_once(registry, tmp_path, skopeo):
    layout = str(tmp_path / "fp")
    app = build_image(layout, ref="app", layer_sizes=(6000, 3000), layer_keys=["fp-base", "fp-app"], seed=901)
    worker = build_image(layout, ref="worker", layer_sizes=(6000, 2000), layer_keys=["fp-base", "fp-worker"], seed=902)
    assert app["layer_digests"][0] == worker["layer_digests"][0]
    skopeo.copy("oci:%s:app" % layout, "docker://%s/fp/app:1" % registry.host)
    skopeo.copy("oci:%s:worker" % layout, "docker://%s/fp/worker:1" % registry.host)
    refs = ["docker://%s/fp/app:1" % registry.host, "oci:%s:worker" % layout, "docker://%s/fp/absent:1" % registry.host]
    run = run_module("image_info", {"footprint_of": refs, "validate_certs": False})
    assert not run.failed, run.output
    result = run.result["footprint"]
    base = app["layer_sizes"][0]
    app_size = app["config_size"] + sum(app["layer_sizes"])
    worker_size = worker["config_size"] + sum(worker["layer_sizes"])
    assert result["total_bytes"] == app_size + worker_size - base
    assert result["shared_bytes"] == base
    assert result["tags"][refs[0]] == {"digest": app["manifest_digest"], "size": app_size, "unique_bytes": app_size - base}
    assert result["tags"][refs[1]]["unique_bytes"] == worker_size - base
    assert run.result["missing"] == [refs[2]]
    assert run.result["exists"] is False


def test_footprint_of_a_repository_counts_every_tag_once_each_blob(registry, tmp_path, skopeo):
    layout = str(tmp_path / "fprepo")
    one = build_image(layout, ref="one", layer_sizes=(5000, 1000), layer_keys=["fpr-base", "fpr-one"], seed=911)
    two = build_image(layout, ref="two", layer_sizes=(5000, 2000), layer_keys=["fpr-base", "fpr-two"], seed=912)
    single = str(tmp_path / "fpsingle")  # the only image of a layout, without a ref, as `skopeo copy … oci:PATH` writes it
    skopeo.copy("oci:%s:one" % layout, "oci:%s" % single)
    repo = "docker://%s/fprepo/app" % registry.host
    for tag, ref in (("1.0", "one"), ("1.1", "two"), ("stable", "two")):  # no latest
        skopeo.copy("oci:%s:%s" % (layout, ref), "%s:%s" % (repo, tag))
    absent = "docker://%s/fprepo/absent" % registry.host
    run = run_module("image_info", {"footprint_of": [repo, "oci:%s" % layout, "oci:%s" % single, absent], "validate_certs": False})
    assert not run.failed, run.output
    result = run.result["footprint"]
    size = {name: info["config_size"] + sum(info["layer_sizes"]) for name, info in (("one", one), ("two", two))}
    assert result["tags"] == {
        repo + ":1.0": {"digest": one["manifest_digest"], "size": size["one"], "unique_bytes": 0},
        repo + ":1.1": {"digest": two["manifest_digest"], "size": size["two"], "unique_bytes": 0},
        repo + ":stable": {"digest": two["manifest_digest"], "size": size["two"], "unique_bytes": 0},
        "oci:%s:one" % layout: {"digest": one["manifest_digest"], "size": size["one"], "unique_bytes": 0},
        "oci:%s:two" % layout: {"digest": two["manifest_digest"], "size": size["two"], "unique_bytes": 0},
        "oci:%s" % single: {"digest": one["manifest_digest"], "size": size["one"], "unique_bytes": 0},
    }
    # Every blob once across the registry and both layouts: the shared base layer, two own layers, two configs.
    assert result["total_bytes"] == size["one"] + size["two"] - one["layer_sizes"][0]
    assert result["shared_bytes"] == result["total_bytes"]
    assert {layer["digest"]: layer["tags_using"] for layer in result["layers"]}[one["layer_digests"][0]] == 6
    assert run.result["missing"] == [absent]
    assert run.result["exists"] is False


def test_placeholder_deletes_free_nothing_until_garbage_collect_delete_untagged(fresh_registry, tmp_path, skopeo):
    # image_delete's freed_bytes and docs/pruning.md: with method placeholder the image stays, untagged.
    reg = fresh_registry()
    layout = str(tmp_path / "placeholder")
    build_image(layout, ref="solo", layer_sizes=(60000, 30000), seed="placeholder-solo")
    build_image(layout, ref="shared", layer_sizes=(20000,), seed="placeholder-shared")
    push(skopeo, layout, "solo", "docker://%s/delete/ph:solo" % reg.host)
    for tag in ("s1", "s2"):
        push(skopeo, layout, "shared", "docker://%s/delete/ph:%s" % (reg.host, tag))

    # method auto detaches s1 with a placeholder because s2 stays on its image: nothing is freed, and none counted.
    shared = delete("docker://%s/delete/ph:s1" % reg.host)
    assert not shared.failed, shared.output
    assert shared.result["deleted"][0]["method"] == "placeholder" and shared.result["freed_bytes"] == 0

    run = delete("docker://%s/delete/ph:solo" % reg.host, method="placeholder")
    assert not run.failed, run.output
    predicted = run.result["freed_bytes"]
    assert predicted > 90000
    reg.stop()
    before = blob_bytes_on_disk(reg)
    subprocess.run([REGISTRY_BINARY, "garbage-collect", reg.config_path], check=True, capture_output=True, timeout=120)
    after_plain = blob_bytes_on_disk(reg)
    assert before - after_plain < 0.05 * predicted, (before - after_plain, predicted)  # only the placeholders' own few bytes
    subprocess.run([REGISTRY_BINARY, "garbage-collect", "--delete-untagged", reg.config_path], check=True, capture_output=True, timeout=120)
    actually_freed = after_plain - blob_bytes_on_disk(reg)
    assert abs(actually_freed - predicted) <= 0.05 * predicted, (predicted, actually_freed)
    reg.start()
    assert registry_tags(reg.host, "delete/ph") == ["s2"]


def test_footprint_of_keys_are_normalized_references_and_layers_hold_configs(registry, tmp_path, skopeo):
    # image_info's RETURN docs: footprint.tags is keyed by reference; footprint.layers lists configs too.
    image = build_image(str(tmp_path / "fpk"), ref="v1", layer_sizes=(3000,), seed=903)
    skopeo.copy(image["reference"], "docker://%s/fpk/app:1" % registry.host)
    run = run_module("image_info", {"footprint_of": ["%s/fpk/app:1" % registry.host], "validate_certs": False})
    assert not run.failed, run.output
    assert list(run.result["footprint"]["tags"]) == ["docker://%s/fpk/app:1" % registry.host]
    blobs = {entry["digest"]: entry["media_type"] for entry in run.result["footprint"]["layers"]}
    assert blobs == {
        image["config_digest"]: "application/vnd.oci.image.config.v1+json",
        image["layer_digests"][0]: "application/vnd.oci.image.layer.v1.tar+gzip",
    }
