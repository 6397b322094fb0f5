"""Air-gapped mirrors: repository mode and sync specs to and from disk, against a real registry and skopeo sync as the oracle."""

from __future__ import annotations

import hashlib
import os

import pytest
import yaml
from ansible_run import run_module
from images import build_image

pytestmark = pytest.mark.timeout(600)

TAGS = ("1.0", "1.1", "2.0")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree_files(root: str) -> dict[str, bytes]:
    """Every file under ``root`` by its path relative to it, with its bytes."""
    found = {}
    for top, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(top, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, registry):
    """Two repositories whose tags share one base layer."""
    from skopeo import copy

    layout = str(tmp_path_factory.mktemp("air-gap-src") / "layout")
    for i, tag in enumerate(TAGS):
        build_image(layout, ref="app-%s" % tag, seed=700 + i, layer_sizes=(4096, 1024), layer_keys=["base", "app-" + tag])
        copy("oci:%s:app-%s" % (layout, tag), "docker://%s/upstream/team/app:%s" % (registry.host, tag))
    build_image(layout, ref="tool", seed=710, layer_sizes=(4096, 512), layer_keys=["base", "tool"])
    copy("oci:%s:tool" % layout, "docker://%s/upstream/tool:1" % registry.host)
    return registry.host + "/upstream"


@pytest.mark.parametrize("scoped", [False, True], ids=["plain", "scoped"])
def test_repository_mode_to_a_dir_tree_writes_what_skopeo_sync_dest_dir_writes(upstream, skopeo, tmp_path, scoped):
    theirs, ours = str(tmp_path / "theirs"), str(tmp_path / "ours")
    skopeo.skopeo("sync", *(["--scoped"] if scoped else []), "--src", "docker", "--dest", "dir", "--src-tls-verify=false", upstream + "/team/app", theirs)
    run = run_module("image_copy", {"src": "docker://%s/team/app" % upstream, "dest": "dir:" + ours, "scoped": scoped, "src_validate_certs": False})
    assert not run.failed, run.output
    assert run.result["copied"] == len(TAGS)
    assert tree_files(ours) == tree_files(theirs)
    again = run_module("image_copy", {"src": "docker://%s/team/app" % upstream, "dest": "dir:" + ours, "scoped": scoped, "src_validate_certs": False})
    assert not again.failed, again.output
    assert (again.changed, again.result["unchanged"]) == (False, len(TAGS))


@pytest.mark.parametrize("scoped", [False, True], ids=["plain", "scoped"])
def test_sync_spec_to_a_dir_tree_writes_what_skopeo_sync_yaml_dest_dir_writes(upstream, skopeo, tmp_path, scoped):
    host, _unused, namespace = upstream.partition("/")
    spec = {host: {"images": {namespace + "/team/app": ["1.0", "2.0"], namespace + "/tool": []}, "tls-verify": False}}
    sync_file = tmp_path / "sync.yaml"
    sync_file.write_text(yaml.safe_dump(spec))
    theirs, ours = str(tmp_path / "theirs"), str(tmp_path / "ours")
    skopeo.skopeo("sync", *(["--scoped"] if scoped else []), "--src", "yaml", "--dest", "dir", str(sync_file), theirs)
    run = run_module("image_copy", {"sync_file": str(sync_file), "dest": "dir:" + ours, "scoped": scoped})
    assert not run.failed, run.output
    assert run.result["copied"] == 3
    assert tree_files(ours) == tree_files(theirs)


def test_skopeo_sync_src_dir_reads_the_tree_we_write(upstream, registry, skopeo, tmp_path):
    ours = str(tmp_path / "ours")
    run = run_module("image_copy", {"src": "docker://%s/team/app" % upstream, "dest": "dir:" + ours, "src_validate_certs": False})
    assert not run.failed, run.output
    skopeo.skopeo("sync", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false", ours, registry.host + "/from-ours")
    for tag in TAGS:
        pushed = skopeo.inspect_raw("docker://%s/from-ours/app:%s" % (registry.host, tag))
        assert digest_of(pushed) == digest_of(skopeo.inspect_raw("docker://%s/team/app:%s" % (upstream, tag)))


@pytest.mark.parametrize("scoped", [False, True], ids=["plain", "scoped"])
def test_a_tree_skopeo_wrote_goes_back_to_a_registry_as_skopeo_sync_src_dir_puts_it(upstream, registry, skopeo, tmp_path, scoped):
    theirs = str(tmp_path / "theirs")
    skopeo.skopeo("sync", *(["--scoped"] if scoped else []), "--src", "docker", "--dest", "dir", "--src-tls-verify=false", upstream + "/team/app", theirs)
    prefix = "%s/back-%s" % (registry.host, "scoped" if scoped else "plain")
    if scoped:
        # skopeo refuses too: the scoped tree starts with the source's host:port, which is no repository path component.
        run = run_module("image_copy", {"src": "dir:" + theirs, "dest": "docker://" + prefix, "scoped": True, "dest_validate_certs": False})
        assert run.failed
        assert "invalid repository name" in run.result["msg"] and upstream.partition("/")[0] in run.result["msg"], run.result["msg"]
        run = run_module("image_copy", {"src": "dir:" + theirs, "dest": "docker://" + prefix, "dest_validate_certs": False})
    else:
        run = run_module("image_copy", {"src": "dir:" + theirs, "dest": "docker://" + prefix, "dest_validate_certs": False})
    assert not run.failed, run.output
    assert sorted(r["dest"] for r in run.result["results"]) == ["docker://%s/app:%s" % (prefix, tag) for tag in TAGS]
    for tag in TAGS:
        assert digest_of(skopeo.inspect_raw("docker://%s/app:%s" % (prefix, tag))) == digest_of(skopeo.inspect_raw("docker://%s/team/app:%s" % (upstream, tag)))
    again = run_module("image_copy", {"src": "dir:" + theirs, "dest": "docker://" + prefix, "dest_validate_certs": False})
    assert (again.failed, again.changed) == (False, False), again.output


# --- bundles: one OCI layout (or oci-archive) holding many repositories, each blob once ---------------------------------


def bundle_spec(upstream: str) -> dict:
    host, _unused, namespace = upstream.partition("/")
    return {host: {"images": {namespace + "/team/app": [], namespace + "/tool": []}, "tls-verify": False}}


def layout_blobs(layout: str) -> list[str]:
    return sorted(os.listdir(os.path.join(layout, "blobs", "sha256")))


def test_a_bundle_names_each_image_by_its_full_reference_and_stores_each_blob_once(upstream, skopeo, tmp_path):
    bundle = str(tmp_path / "bundle")
    run = run_module("image_copy", {"sync": bundle_spec(upstream), "dest": "oci:" + bundle})
    assert not run.failed, run.output
    names = ["%s/team/app:%s" % (upstream, tag) for tag in TAGS] + ["%s/tool:1" % upstream]
    with open(os.path.join(bundle, "index.json")) as handle:
        index = yaml.safe_load(handle)
    assert sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]) == sorted(names)
    # 4 manifests, 4 configs, 4 top layers and the one base layer all of them share.
    assert len(layout_blobs(bundle)) == 4 + 4 + 4 + 1
    for name in names:
        # skopeo addresses each image by its full reference (oci:PATH:REF splits at the first colon).
        assert digest_of(skopeo.inspect_raw("oci:%s:%s" % (bundle, name))) == digest_of(skopeo.inspect_raw("docker://" + name))
    again = run_module("image_copy", {"sync": bundle_spec(upstream), "dest": "oci:" + bundle})
    assert (again.failed, again.changed, again.result["unchanged"]) == (False, False, 4), again.output


@pytest.mark.parametrize("form", ["oci", "oci-archive"])
def test_registry_to_bundle_to_another_registry_keeps_every_manifest_byte_for_byte(upstream, fresh_registry, skopeo, tmp_path, form):
    bundle = str(tmp_path / ("bundle.tar" if form == "oci-archive" else "bundle"))
    run = run_module("image_copy", {"sync": bundle_spec(upstream), "dest": "%s:%s" % (form, bundle)})
    assert not run.failed, run.output
    if form == "oci-archive":
        assert os.path.isfile(bundle)
        assert sorted(os.listdir(str(tmp_path))) == ["bundle.tar"], "the staging layout is removed once the archive is written"
        assert sorted(r["dest"] for r in run.result["results"])[0] == "oci-archive:%s:%s/team/app:%s" % (bundle, upstream, TAGS[0])
        name = "%s/team/app:%s" % (upstream, TAGS[0])
        assert skopeo.inspect_raw("oci-archive:%s:%s" % (bundle, name)) == skopeo.inspect_raw("docker://" + name)
    other = fresh_registry()
    imported = run_module("image_copy", {"src": "%s:%s" % (form, bundle), "dest": "docker://%s/mirror" % other.host, "dest_validate_certs": False})
    assert not imported.failed, imported.output
    assert imported.result["copied"] == 4
    for repository, tag in [("team/app", t) for t in TAGS] + [("tool", "1")]:
        name = repository.rpartition("/")[2]
        theirs = skopeo.inspect_raw("docker://%s/mirror/%s:%s" % (other.host, name, tag))
        assert theirs == skopeo.inspect_raw("docker://%s/%s:%s" % (upstream, repository, tag))


def test_a_docker_schema_2_image_keeps_its_digest_through_a_bundle(registry, fresh_registry, skopeo, tmp_path):
    from skopeo import copy

    layout = str(tmp_path / "layout")
    build_image(layout, ref="v2s2", seed=720, layer_sizes=(2048,))
    copy("oci:%s:v2s2" % layout, "docker://%s/v2s2/app:1" % registry.host, "--format", "v2s2")
    source_raw = skopeo.inspect_raw("docker://%s/v2s2/app:1" % registry.host)
    assert b"application/vnd.docker.distribution.manifest.v2+json" in source_raw
    bundle = str(tmp_path / "bundle")
    run = run_module("image_copy", {"src": "docker://%s/v2s2/app" % registry.host, "dest": "oci:" + bundle, "src_validate_certs": False})
    assert not run.failed, run.output
    other = fresh_registry()
    imported = run_module("image_copy", {"src": "oci:" + bundle, "dest": "docker://%s/m" % other.host, "dest_validate_certs": False})
    assert not imported.failed, imported.output
    assert skopeo.inspect_raw("docker://%s/m/app:1" % other.host) == source_raw


# --- safe import: verified before any tag moves, resumed when run again -----------------------------------------------


def exported_bundle(upstream: str, tmp_path) -> str:
    bundle = str(tmp_path / "bundle")
    run = run_module("image_copy", {"sync": bundle_spec(upstream), "dest": "oci:" + bundle})
    assert not run.failed, run.output
    return bundle


def blob_of(bundle: str, name: str, what: str) -> str:
    """The blob file of ``what`` ("config" or "layer N") of the image ``name`` in a bundle."""
    with open(os.path.join(bundle, "index.json")) as handle:
        index = yaml.safe_load(handle)
    (entry,) = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == name]
    with open(os.path.join(bundle, "blobs", "sha256", entry["digest"].partition(":")[2])) as handle:
        manifest = yaml.safe_load(handle)
    descriptor = manifest["config"] if what == "config" else manifest["layers"][int(what.split()[1])]
    return descriptor["digest"]


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_damaged_bundle_fails_before_anything_is_written_naming_what_is_wrong(upstream, fresh_registry, skopeo, tmp_path, damage):
    bundle = exported_bundle(upstream, tmp_path)
    # The top layer of the last image in the listing order: every other image would copy before it.
    digest = blob_of(bundle, "%s/tool:1" % upstream, "layer 1")
    path = os.path.join(bundle, "blobs", "sha256", digest.partition(":")[2])
    if damage == "missing":
        os.unlink(path)
    else:
        with open(path, "r+b") as handle:
            handle.write(b"X")
    other = fresh_registry()
    run = run_module("image_copy", {"src": "oci:" + bundle, "dest": "docker://%s/mirror" % other.host, "dest_validate_certs": False})
    assert run.failed
    assert "nothing was written (no tag moved)" in run.result["msg"]
    assert digest in run.result["msg"]
    if damage == "missing":
        assert "blob %s is missing (the layer of oci:%s:%s/tool:1)" % (digest, bundle, upstream) in run.result["msg"]
    else:
        assert "digest mismatch" in run.result["msg"], run.result["msg"]
    assert "Traceback" not in run.output
    catalog = __import__("requests").get("http://%s/v2/_catalog" % other.host, timeout=10).json()
    assert catalog["repositories"] == []


def test_an_interrupted_export_run_again_continues_where_it_stopped(upstream, registry, tmp_path):
    host, _unused, namespace = upstream.partition("/")
    bundle = str(tmp_path / "bundle")
    # One image at a time, in the spec's order: tool:1 is exported, tool:missing stops the run, app is not started.
    spec = {host: {"images": {namespace + "/tool": ["1", "missing"], namespace + "/team/app": list(TAGS)}, "tls-verify": False}}
    first = run_module("image_copy", {"sync": spec, "dest": "oci:" + bundle, "parallel_images": 1})
    assert first.failed
    assert (first.result["copied"], first.result["failed_count"], first.result["not_attempted"]) == (1, 1, 3)
    spec[host]["images"][namespace + "/tool"] = ["1"]
    second = run_module("image_copy", {"sync": spec, "dest": "oci:" + bundle, "parallel_images": 1})
    assert not second.failed, second.output
    assert (second.result["copied"], second.result["unchanged"]) == (3, 1)
    # The base layer tool:1 brought in the first run is not fetched again.
    assert sum(r["blobs"]["skipped"] for r in second.result["results"]) >= 1
    assert sorted(set(os.listdir(bundle)) - {".oci-images.lock"}) == ["blobs", "index.json", "oci-layout"], "no staging directory is left behind"


# --- incremental transfers: the import side's inventory, delta bundles ------------------------------------------------


def test_a_delta_export_carries_only_what_the_inventory_lacks_and_imports_cleanly(registry, fresh_registry, skopeo, tmp_path):
    from skopeo import copy

    layout = str(tmp_path / "layout")
    source = registry.host + "/delta-src"
    for tag, key in (("1", "one"), ("2", "two"), ("3", "three")):
        build_image(layout, ref=tag, seed=800 + len(key), layer_sizes=(8192, 2048 + len(key)), layer_keys=["base", key])
    for tag in ("1", "2"):
        copy("oci:%s:%s" % (layout, tag), "docker://%s/app:%s" % (source, tag))
    spec = {registry.host: {"images": {"delta-src/app": []}, "tls-verify": False}}
    inventory = str(tmp_path / "inventory.json")
    other = fresh_registry()
    dest = {"dest": "docker://%s/mirror" % other.host, "dest_validate_certs": False, "inventory": inventory}

    full = str(tmp_path / "full")
    assert not run_module("image_copy", {"sync": spec, "dest": "oci:" + full}).failed
    first = run_module("image_copy", dict(dest, src="oci:" + full))
    assert not first.failed, first.output
    with open(inventory) as handle:
        listed = yaml.safe_load(handle)
    assert listed["version"] == 1
    assert sorted(listed["images"]) == ["%s/app:1" % source, "%s/app:2" % source]
    assert len(listed["repositories"]["%s/app" % source]["blobs"]) == 2 + 2 + 1  # two configs, two top layers, the base

    # Nothing new: the delta holds the manifests only.
    nothing = str(tmp_path / "nothing-new")
    run = run_module("image_copy", {"sync": spec, "dest": "oci:" + nothing, "inventory": inventory})
    assert not run.failed, run.output
    manifests = {digest_of(skopeo.inspect_raw("docker://%s/app:%s" % (source, tag))) for tag in ("1", "2")}
    assert {"sha256:" + name for name in layout_blobs(nothing)} == manifests

    # One new tag: its manifest, config and own layer travel; the base layer the other side has does not.
    copy("oci:%s:3" % layout, "docker://%s/app:3" % source)
    delta = str(tmp_path / "delta")
    run = run_module("image_copy", {"sync": spec, "dest": "oci:" + delta, "inventory": inventory})
    assert not run.failed, run.output
    new_raw = skopeo.inspect_raw("docker://%s/app:3" % source)
    new_manifest = yaml.safe_load(new_raw)
    expected = manifests | {digest_of(new_raw), new_manifest["config"]["digest"], new_manifest["layers"][1]["digest"]}
    assert {"sha256:" + name for name in layout_blobs(delta)} == expected
    assert new_manifest["layers"][0]["digest"] not in expected

    second = run_module("image_copy", dict(dest, src="oci:" + delta))
    assert not second.failed, second.output
    assert (second.result["copied"], second.result["unchanged"]) == (1, 2)
    # Left out of the delta and found at the destination: the configs and layers of 1 and 2, and the base layer.
    assert second.result["verified"]["held_by_destination"] == 5
    assert skopeo.inspect_raw("docker://%s/mirror/app:3" % other.host) == new_raw
    with open(inventory) as handle:
        assert sorted(yaml.safe_load(handle)["images"]) == ["%s/app:%s" % (source, tag) for tag in ("1", "2", "3")]


def test_a_delta_bundle_imported_where_the_left_out_blobs_are_not_fails_before_writing(registry, fresh_registry, tmp_path):
    from skopeo import copy

    layout = str(tmp_path / "layout")
    build_image(layout, ref="1", seed=900, layer_sizes=(4096,))
    copy("oci:%s:1" % layout, "docker://%s/delta-gone/app:1" % registry.host)
    spec = {registry.host: {"images": {"delta-gone/app": []}, "tls-verify": False}}
    inventory = str(tmp_path / "inventory.json")
    full, delta = str(tmp_path / "full"), str(tmp_path / "delta")
    assert not run_module("image_copy", {"sync": spec, "dest": "oci:" + full}).failed
    assert not run_module(
        "image_copy", {"src": "oci:" + full, "dest": "docker://%s/seen" % fresh_registry().host, "dest_validate_certs": False, "inventory": inventory}
    ).failed
    assert not run_module("image_copy", {"sync": spec, "dest": "oci:" + delta, "inventory": inventory}).failed
    elsewhere = fresh_registry()
    run = run_module("image_copy", {"src": "oci:" + delta, "dest": "docker://%s/mirror" % elsewhere.host, "dest_validate_certs": False})
    assert run.failed
    assert "2 problems in the images to import; nothing was written (no tag moved)" in run.result["msg"], run.result["msg"]
    assert __import__("requests").get("http://%s/v2/_catalog" % elsewhere.host, timeout=10).json()["repositories"] == []


# --- parallel paths against registries that need a login --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry"])
def test_export_and_import_of_a_bundle_at_parallelism_8_with_a_login(upstream, request, skopeo, tmp_path, kind):
    reg = request.getfixturevalue(kind)
    login = {"username": reg.username, "password": reg.password, "ca_cert": reg.ca_cert}
    src_login = {"src_" + k: v for k, v in login.items()}
    dest_login = {"dest_" + k: v for k, v in login.items()}
    seeded = run_module(
        "image_copy",
        dict(dest_login, src="docker://%s/team/app" % upstream, dest="docker://%s/air/app" % reg.host, src_validate_certs=False, parallel_images=8),
    )
    assert not seeded.failed, seeded.output
    for i in range(5):  # eight images in all: the three tags above and five more repositories
        extra = run_module(
            "image_copy", dict(dest_login, src="docker://%s/tool:1" % upstream, dest="docker://%s/air/tool%d:1" % (reg.host, i), src_validate_certs=False)
        )
        assert not extra.failed, extra.output
    spec = {reg.host: {"images": {"air/app": [], **{"air/tool%d" % i: ["1"] for i in range(5)}}}}
    bundle = str(tmp_path / "bundle")
    exported = run_module("image_copy", dict(src_login, sync=spec, dest="oci:" + bundle, parallel_images=8))
    assert not exported.failed, exported.output
    assert exported.result["copied"] == 8
    with open(os.path.join(bundle, "index.json")) as handle:
        assert len(yaml.safe_load(handle)["manifests"]) == 8, "every parallel writer's entry is in index.json"
    imported = run_module("image_copy", dict(dest_login, src="oci:" + bundle, dest="docker://%s/back" % reg.host, parallel_images=8))
    assert not imported.failed, imported.output
    assert imported.result["copied"] == 8
    expected = {"docker://%s/back/app:%s" % (reg.host, t): digest_of(skopeo.inspect_raw("docker://%s/team/app:%s" % (upstream, t))) for t in TAGS}
    tool = digest_of(skopeo.inspect_raw("docker://%s/tool:1" % upstream))
    expected.update({"docker://%s/back/tool%d:1" % (reg.host, i): tool for i in range(5)})
    assert {r["dest"]: r["dest_digest_after"] for r in imported.result["results"]} == expected
    again = run_module("image_copy", dict(dest_login, src="oci:" + bundle, dest="docker://%s/back" % reg.host, parallel_images=8))
    assert (again.failed, again.changed, again.result["unchanged"]) == (False, False, 8), again.output


def test_an_interrupted_archive_export_says_where_its_images_wait_and_the_next_run_finishes_it(upstream, tmp_path):
    host, _unused, namespace = upstream.partition("/")
    archive = str(tmp_path / "bundle.tar")
    spec = {host: {"images": {namespace + "/tool": ["1", "missing"], namespace + "/team/app": list(TAGS)}, "tls-verify": False}}
    first = run_module("image_copy", {"sync": spec, "dest": "oci-archive:" + archive, "keep_going": True})
    assert first.failed
    staging = str(tmp_path / ".bundle.tar.oci-images-bundle")
    assert "%s was not written; the images copied so far wait in %s, and the next run continues from them" % (archive, staging) in first.result["msg"]
    assert not os.path.exists(archive) and os.path.isdir(staging)
    spec[host]["images"][namespace + "/tool"] = ["1"]
    second = run_module("image_copy", {"sync": spec, "dest": "oci-archive:" + archive})
    assert not second.failed, second.output
    assert (second.result["copied"], second.result["unchanged"]) == (0, 4)
    assert sorted(os.listdir(str(tmp_path))) == ["bundle.tar"]


@pytest.mark.parametrize("form", ["oci", "dir"])
def test_an_import_by_the_same_sync_spec_reads_every_image_from_what_the_export_wrote(upstream, fresh_registry, skopeo, tmp_path, form):
    carried = "%s:%s" % (form, tmp_path / "carried")
    spec = bundle_spec(upstream)
    assert not run_module("image_copy", {"sync": spec, "dest": carried}).failed
    other = fresh_registry()
    # The upstream registry is not asked: the spec's images, and its "all tags", come from what was carried.
    imported = run_module("image_copy", {"sync": spec, "src": carried, "dest": "%s/mirror" % other.host, "dest_validate_certs": False})
    assert not imported.failed, imported.output
    assert imported.result["copied"] == 4 and imported.result["verified"]["blobs"] == 4 + 4 + 1  # configs, top layers, the base once
    for name, source in [("app:%s" % t, "team/app:%s" % t) for t in TAGS] + [("tool:1", "tool:1")]:
        assert skopeo.inspect_raw("docker://%s/mirror/%s" % (other.host, name)) == skopeo.inspect_raw("docker://%s/%s" % (upstream, source))
    host, _unused, namespace = upstream.partition("/")
    missing = {host: {"images": {namespace + "/team/app": ["1.0", "9.9"]}, "tls-verify": False}}
    elsewhere = fresh_registry()
    run = run_module("image_copy", {"sync": missing, "src": carried, "dest": "%s/mirror" % elsewhere.host, "dest_validate_certs": False})
    assert run.failed
    name = "%s/team/app:9.9" % upstream if form == "oci" else "app:9.9"
    assert "%s is not in %s (it holds 4 images); export it again with this spec, or leave it out" % (name, carried) in run.result["msg"], run.result["msg"]
    assert __import__("requests").get("http://%s/v2/_catalog" % elsewhere.host, timeout=10).json()["repositories"] == []


def test_skopeo_sync_dest_dir_refuses_the_tree_it_wrote_where_a_second_run_of_ours_updates_it(upstream, skopeo, tmp_path):
    # docs/mirroring.md and docs/air-gap.md say so; this checks the claim about skopeo 1.9.3.
    from skopeo import SkopeoFailed

    theirs, ours = str(tmp_path / "theirs"), str(tmp_path / "ours")
    args = ("sync", "--src", "docker", "--dest", "dir", "--src-tls-verify=false", upstream + "/tool", theirs)
    skopeo.skopeo(*args)
    with pytest.raises(SkopeoFailed, match="Refusing to overwrite destination directory"):
        skopeo.skopeo(*args)
    task = {"src": "docker://%s/tool" % upstream, "dest": "dir:" + ours, "src_validate_certs": False}
    assert run_module("image_copy", task).result["copied"] == 1
    again = run_module("image_copy", task)
    assert (again.failed, again.changed, again.result["unchanged"]) == (False, False, 1)


def test_a_bundle_archive_in_volumes_is_written_from_its_staging_layout_and_imported_back(upstream, fresh_registry, skopeo, tmp_path):
    archive = str(tmp_path / "bundle.tar")
    run = run_module("image_copy", {"sync": bundle_spec(upstream), "dest": "oci-archive:" + archive, "split_size": "8K"})
    assert not run.failed, run.output
    files = sorted(os.listdir(str(tmp_path)))
    assert "bundle.tar.volumes.json" in files and "bundle.tar.000" in files and "bundle.tar" not in files, files
    assert not [f for f in files if f.startswith(".")], "the staging layout is removed"
    other = fresh_registry()
    imported = run_module("image_copy", {"src": "oci-archive:" + archive, "dest": "docker://%s/mirror" % other.host, "dest_validate_certs": False})
    assert not imported.failed, imported.output
    assert imported.result["copied"] == 4
    assert skopeo.inspect_raw("docker://%s/mirror/tool:1" % other.host) == skopeo.inspect_raw("docker://%s/tool:1" % upstream)
