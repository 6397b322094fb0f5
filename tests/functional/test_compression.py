"""zstd and zstd:chunked layers, and compression conversion, against the real tools.

skopeo 1.9.3 makes the zstd and zstd:chunked sources (it is the oracle for the format) and reads
back everything we write; podman 4.3.1 pulls what we wrote (it decompresses every layer and checks
its diff ID) and the program in a converted image runs from podman's own copy of it; docker and
podman load what we decompress for them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import urllib.request

import pytest
import zstandard
from ansible_run import run_module
from images import build_image, build_image_of_tars, host_program_tar, tar_of

pytestmark = pytest.mark.timeout(600)

ZSTD_TYPE = "application/vnd.oci.image.layer.v1.tar+zstd"
GZIP_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNKED_KEYS = {"io.containers.zstd-chunked.manifest-checksum", "io.containers.zstd-chunked.manifest-position"}
KINDS = ("gzip", "zstd", "zstd:chunked")


def copy(src: str, dest: str, check: bool = False, diff: bool = False, env: dict | None = None, **extra):
    args = {"src": src, "dest": dest, "src_validate_certs": False, "dest_validate_certs": False}
    args.update(extra)
    return run_module("image_copy", args, check=check, diff=diff, env=env)


def kind_of(layer: dict) -> str:
    if layer["mediaType"].endswith("+gzip"):
        return "gzip"
    if layer["mediaType"].endswith("+zstd"):
        return "zstd:chunked" if set(layer.get("annotations") or {}) >= CHUNKED_KEYS else "zstd"
    return "none"


def manifest_of(ref: str, skopeo) -> dict:
    return json.loads(skopeo.inspect_raw(ref))


@pytest.fixture(scope="module")
def sources(tmp_path_factory, registry):
    """The same image (two layers, gzip) in the registry as gzip, and as zstd and zstd:chunked made by skopeo."""
    import skopeo

    root = tmp_path_factory.mktemp("compression-sources")
    files = {"etc/app.conf": b"mode=test\n" * 40, "usr/share/app/data.bin": os.urandom(3000), "empty": b""}
    info = build_image_of_tars(str(root / "gzip"), "v1", [tar_of(files), tar_of({"var/log/app.log": os.urandom(700)})], config={"Env": ["A=1"]})
    refs = {}
    for kind in KINDS:
        name = kind.replace(":", "-")
        layout = "oci:%s/%s:v1" % (root, name)
        skopeo.copy(info["reference"], layout, *(() if kind == "gzip" else ("--dest-compress", "--dest-compress-format", kind)))
        ref = "docker://%s/compression/src-%s:1" % (registry.host, name)
        # --preserve-digests: skopeo would otherwise reuse a gzip blob it knows the registry has for the same content.
        skopeo.copy(layout, ref, "--preserve-digests")
        refs[kind] = ref
    assert {kind: [kind_of(layer) for layer in manifest_of(ref, skopeo)["layers"]] for kind, ref in refs.items()} == {k: [k, k] for k in KINDS}
    return refs, info


@pytest.mark.parametrize("to_kind", KINDS)
@pytest.mark.parametrize("from_kind", KINDS)
def test_compression_matrix_to_a_registry_read_back_by_skopeo_and_podman(sources, registry, skopeo, podman_store, from_kind, to_kind):
    refs, info = sources
    dest = "docker://%s/compression/%s-to-%s:1" % (registry.host, from_kind.replace(":", "-"), to_kind.replace(":", "-"))
    first = copy(refs[from_kind], dest, compression=to_kind)
    assert not first.failed, first.output
    assert first.changed
    written = manifest_of(dest, skopeo)
    source = manifest_of(refs[from_kind], skopeo)
    kept = from_kind == to_kind or (from_kind, to_kind) == ("zstd:chunked", "zstd")
    for layer, original in zip(written["layers"], source["layers"]):
        assert kind_of(layer) == (from_kind if kept else to_kind)
        assert (layer["digest"] == original["digest"]) is kept
    assert written["config"]["digest"] == info["config_digest"]
    # skopeo reads every blob (and checks its digest); podman decompresses every layer and checks its diff ID.
    skopeo.copy(dest, "oci:%s/back:1" % podman_store.root.rsplit("/", 1)[0])
    podman_store.podman("pull", "-q", "--tls-verify=false", dest)
    assert podman_store.inspect(dest.replace("docker://", ""))["RootFS"]["Layers"] == info["diff_ids"]
    # up to date: the same content in the asked compression
    second = copy(refs[from_kind], dest, compression=to_kind)
    assert not second.failed, second.output
    assert second.changed is False
    assert second.result["results"][0]["dest_digest_after"] == first.result["digest"]


@pytest.mark.parametrize("transport", ["oci", "dir", "oci-archive"])
def test_conversion_into_local_transports_both_ways(sources, tmp_path, skopeo, transport):
    refs, info = sources
    suffix = ":v1" if transport != "dir" else ""
    for from_kind, to_kind in (("zstd:chunked", "gzip"), ("gzip", "zstd:chunked"), ("gzip", "zstd")):
        dest = "%s:%s/%s%s" % (transport, tmp_path, ("%s-%s" % (from_kind, to_kind)).replace(":", "-"), suffix)
        first = copy(refs[from_kind], dest, compression=to_kind)
        assert not first.failed, first.output
        layers = manifest_of(dest, skopeo)["layers"]
        assert [kind_of(layer) for layer in layers] == [to_kind, to_kind]
        skopeo.copy(dest, "oci:%s/check-%s-%s:1" % (tmp_path, transport, to_kind.replace(":", "-")))  # every blob read and verified
        assert json.loads(skopeo.skopeo("inspect", "--config", dest))["rootfs"]["diff_ids"] == info["diff_ids"]
        again = copy(refs[from_kind], dest, compression=to_kind)
        assert not again.failed, again.output
        assert again.changed is False


def test_zstd_layers_are_decompressed_for_docker_archive_docker_daemon_and_containers_storage(sources, tmp_path, skopeo, docker_engine, podman_store):
    refs, info = sources
    for kind in ("zstd", "zstd:chunked"):
        archive = "docker-archive:%s/%s.tar:app:%s" % (tmp_path, kind.replace(":", "-"), "1")
        run = copy(refs[kind], archive)
        assert not run.failed, run.output
        assert json.loads(skopeo.skopeo("inspect", "--config", archive))["rootfs"]["diff_ids"] == info["diff_ids"]
        skopeo.copy(archive, "oci:%s/from-archive:%s" % (tmp_path, kind.replace(":", "-")))  # skopeo checks the layers against the diff IDs
    daemon = copy(refs["zstd:chunked"], "docker-daemon:compression/app:1", dest_daemon_host=docker_engine.host)
    assert not daemon.failed, daemon.output
    assert docker_engine.inspect("compression/app:1")["RootFS"]["Layers"] == info["diff_ids"]
    stored = copy(refs["zstd"], podman_store.reference("localhost/compression/app:1"))
    assert not stored.failed, stored.output
    assert podman_store.inspect("localhost/compression/app:1")["RootFS"]["Layers"] == info["diff_ids"]
    # and back out of the engine into a registry as zstd:chunked
    back = "docker://%s/compression/from-daemon:1" % registry_host(refs)
    out = copy("docker-daemon:compression/app:1", back, src_daemon_host=docker_engine.host, compression="zstd:chunked")
    assert not out.failed, out.output
    assert [kind_of(layer) for layer in manifest_of(back, skopeo)["layers"]] == ["zstd:chunked", "zstd:chunked"]
    again = copy("docker-daemon:compression/app:1", back, src_daemon_host=docker_engine.host, compression="zstd:chunked")
    assert not again.failed, again.output
    assert again.changed is False


def registry_host(refs: dict) -> str:
    return refs["gzip"].split("/")[2]


def test_compression_applies_to_every_image_of_a_sync_spec(sources, registry, skopeo):
    spec = {registry.host: {"tls-verify": False, "images": {"compression/src-gzip": ["1"], "compression/src-zstd": ["1"]}}}
    prefix = "%s/synced" % registry.host
    run = run_module("image_copy", {"sync": spec, "dest": prefix, "dest_validate_certs": False, "compression": "zstd:chunked"})
    assert not run.failed, run.output
    for name in ("src-gzip", "src-zstd"):
        layers = manifest_of("docker://%s/%s:1" % (prefix, name), skopeo)["layers"]
        assert [kind_of(layer) for layer in layers] == ["zstd:chunked", "zstd:chunked"]
    again = run_module("image_copy", {"sync": spec, "dest": prefix, "dest_validate_certs": False, "compression": "zstd:chunked"})
    assert not again.failed, again.output
    assert again.changed is False and again.result["unchanged"] == 2


def test_check_mode_and_diff_of_a_conversion_agree_with_the_real_run(sources, registry, skopeo):
    refs, _info = sources
    dest = "docker://%s/compression/checked:1" % registry.host
    predicted = copy(refs["gzip"], dest, check=True, diff=True, compression="zstd")
    assert not predicted.failed, predicted.output
    assert predicted.changed
    entry = predicted.result["results"][0]
    assert entry["dest_digest_after"] is None and "compressed during the copy" in entry["note"]
    assert entry["blobs"] == {"copied": 2, "skipped": 0, "mounted": 1}  # the config is mounted within the registry
    with pytest.raises(skopeo.SkopeoFailed):
        skopeo.inspect_raw(dest)  # nothing written
    done = copy(refs["gzip"], dest, compression="zstd")
    assert not done.failed, done.output
    assert done.result["results"][0]["blobs"] == entry["blobs"]
    after = copy(refs["gzip"], dest, check=True, diff=True, compression="zstd")
    assert after.changed is False
    entry = after.result["results"][0]
    assert entry["dest_digest_before"] == entry["dest_digest_after"] == done.result["digest"]


def test_a_destination_skopeo_converted_is_up_to_date_and_another_compression_is_not(sources, registry, skopeo, tmp_path):
    refs, _info = sources
    dest = "docker://%s/compression/by-skopeo:1" % registry.host
    layout = "oci:%s/by-skopeo:1" % tmp_path
    skopeo.copy(refs["gzip"], layout, "--dest-compress", "--dest-compress-format", "zstd")
    skopeo.copy(layout, dest, "--preserve-digests")
    assert [kind_of(layer) for layer in manifest_of(dest, skopeo)["layers"]] == ["zstd", "zstd"]
    same = copy(refs["gzip"], dest, compression="zstd")
    assert not same.failed, same.output
    assert same.changed is False  # skopeo's zstd bytes differ from ours, but it is the same content in zstd
    other = copy(refs["gzip"], dest, compression="zstd:chunked")
    assert not other.failed, other.output
    assert other.changed
    plain = copy(refs["gzip"], dest)  # no compression asked: the source's gzip manifest is written as it is
    assert plain.changed and plain.result["digest"] == json.loads(skopeo.skopeo("inspect", "--tls-verify=false", refs["gzip"]))["Digest"]


def test_docker_schema2_images_become_oci_for_zstd_and_format_v2s2_is_refused(tmp_path, registry, skopeo):
    info = build_image(str(tmp_path / "docker"), ref="v1", layer_sizes=(2000,), seed=71, media="docker")
    src = "docker://%s/compression/docker:1" % registry.host
    run = copy(info["reference"], src)
    assert not run.failed, run.output
    dest = "docker://%s/compression/docker-zstd:1" % registry.host
    converted = copy(src, dest, compression="zstd")
    assert not converted.failed, converted.output
    written = manifest_of(dest, skopeo)
    assert written["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [layer["mediaType"] for layer in written["layers"]] == [ZSTD_TYPE]
    assert copy(src, dest, compression="zstd").changed is False
    refused = copy(src, "docker://%s/compression/never:1" % registry.host, compression="zstd", format="v2s2")
    assert refused.failed
    assert "Docker schema 2 has no zstd layer type" in refused.result["msg"]
    with pytest.raises(skopeo.SkopeoFailed):
        skopeo.inspect_raw("docker://%s/compression/never:1" % registry.host)


def test_our_zstd_chunked_toc_describes_the_tar_as_skopeo_does(tmp_path, skopeo):
    def extra(tar):
        for name, kind, link in (("dir/", tarfile.DIRTYPE, ""), ("link", tarfile.SYMTYPE, "dir/file"), ("hard", tarfile.LNKTYPE, "dir/file")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime, info.uid, info.gid = kind, link, 1700000000, 7, 8
            tar.addfile(info)
        info = tarfile.TarInfo("x" * 120 + "/long-name")
        info.size, info.pax_headers = 5, {"SCHILY.xattr.user.note": "hello"}
        tar.addfile(info, io.BytesIO(b"12345"))

    layer = tar_of({"dir/file": b"content " * 100, "empty": b"", "bin/tool": bytes(range(256)) * 3}, extra=extra)
    info = build_image_of_tars(str(tmp_path / "src"), "v1", [layer])
    ours = "oci:%s/ours:1" % tmp_path
    theirs = "oci:%s/theirs:1" % tmp_path
    assert not copy(info["reference"], ours, compression="zstd:chunked").failed
    skopeo.copy(info["reference"], theirs, "--dest-compress", "--dest-compress-format", "zstd:chunked")
    tocs = []
    for ref in (ours, theirs):
        layout = ref.split(":")[1]
        descriptor = manifest_of(ref, skopeo)["layers"][0]
        offset, length, size, kind = (int(p) for p in descriptor["annotations"]["io.containers.zstd-chunked.manifest-position"].split(":"))
        with open(os.path.join(layout, "blobs", "sha256", descriptor["digest"][7:]), "rb") as f:
            blob = f.read()
        assert kind == 1 and blob[-8:] == b"GnUlInUx" and struct.unpack("<QQQQ", blob[-40:-8]) == (offset, length, size, 1)
        toc = json.loads(zstandard.ZstdDecompressor().decompress(blob[offset : offset + length], max_output_size=size))
        assert len(json.dumps(toc, separators=(",", ":"))) == size
        for entry in toc["entries"]:
            entry.pop("offset", None), entry.pop("endOffset", None)  # where the compressed bytes are differs
        tocs.append(toc)
    assert tocs[0] == tocs[1]


def test_a_converted_image_runs_from_podmans_copy_of_it(tmp_path, registry, podman_store):
    info = build_image_of_tars(str(tmp_path / "run"), "v1", [host_program_tar()], config={"Cmd": ["/usr/bin/echo", "hello"]})
    dest = "docker://%s/compression/runs:1" % registry.host
    run = copy(info["reference"], dest, compression="zstd:chunked")
    assert not run.failed, run.output
    podman_store.podman("pull", "-q", "--tls-verify=false", dest)
    name = dest.replace("docker://", "")
    attempt = podman_store.podman("run", "--rm", "--network", "none", name, check=False)
    if attempt.returncode == 0:
        assert attempt.stdout.strip() == "hello"
    else:
        # This sandbox refuses the runtime's setrlimit ("setrlimit `RLIMIT_NOFILE`: Operation not permitted") to crun and
        # runc alike; run the program from podman's own unpacked copy of the image instead.
        assert "setrlimit" in attempt.stderr or "cgroup" in attempt.stderr, attempt.stderr
        root = podman_store.podman("image", "mount", name).stdout.strip()
        try:
            out = subprocess.run(["chroot", root, "/usr/bin/echo", "hello"], capture_output=True, text=True, check=True)
            assert out.stdout.strip() == "hello"
        finally:
            podman_store.podman("image", "unmount", name)


def test_podman_pulls_our_zstd_chunked_layers_partially_by_their_toc(tmp_path, registry):
    # podman 4.3 with partial pulls on (overlay storage) reads the TOC, fetches each file by the offsets it gives with
    # HTTP range requests and checks each file's digest: a TOC with one wrong offset or digest fails this pull.
    info = build_image_of_tars(
        str(tmp_path / "src"), "v1", [host_program_tar(), tar_of({"a/b.txt": os.urandom(70000), "c.txt": b"hello" * 1000})], config={"Cmd": ["/bin/x"]}
    )
    dest = "docker://%s/compression/partial:1" % registry.host
    assert not copy(info["reference"], dest, compression="zstd:chunked").failed
    runroot = tempfile.mkdtemp(prefix="oci-p-", dir="/tmp")  # podman wants a short runroot
    conf = tmp_path / "storage.conf"
    conf.write_text(
        '[storage]\ndriver = "overlay"\nrunroot = "%s"\ngraphroot = "%s"\n[storage.options]\n'
        'pull_options = {enable_partial_images = "true", use_hard_links = "false", ostree_repos = ""}\n' % (runroot, tmp_path / "graph")
    )
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=str(conf))
    name = dest.replace("docker://", "")
    try:
        pull = subprocess.run(
            ["podman", "--log-level=debug", "pull", "--tls-verify=false", name], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert pull.returncode == 0, pull.stderr[-3000:]
        assert pull.stderr.count("Retrieved partial blob") == 2, pull.stderr[-3000:]
        root = subprocess.run(["podman", "image", "mount", name], capture_output=True, text=True, env=env, check=True).stdout.strip()
        try:
            out = subprocess.run(["chroot", root, "/usr/bin/echo", "partial"], capture_output=True, text=True, check=True)
            assert out.stdout.strip() == "partial"
            with open(os.path.join(root, "c.txt"), "rb") as f:
                assert f.read() == b"hello" * 1000
        finally:
            subprocess.run(["podman", "image", "unmount", name], capture_output=True, env=env, check=False)
    finally:
        subprocess.run(["podman", "rmi", "-a", "-f"], capture_output=True, env=env, check=False)
        shutil.rmtree(runroot, ignore_errors=True)


def test_image_info_reports_each_layers_compression_as_skopeo_inspect_does(sources, skopeo):
    refs, _info = sources
    for kind in KINDS:
        info = run_module("image_info", {"image": refs[kind], "validate_certs": False})
        assert not info.failed, info.output
        layers = info.result["image"]["layers"]
        assert [layer["compression"] for layer in layers] == [kind, kind]
        assert [layer["digest"] for layer in layers] == skopeo.inspect(refs[kind])["Layers"]  # skopeo 1.9 has no LayersData
        assert [(layer["media_type"], layer["annotations"]) for layer in layers] == [
            (entry["mediaType"], entry.get("annotations")) for entry in manifest_of(refs[kind], skopeo)["layers"]
        ]


def test_without_zstandard_the_message_says_what_is_missing(sources, tmp_path):
    refs, _info = sources
    blocker = tmp_path / "no-zstandard" / "zstandard"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('zstandard is blocked for this test')\n")
    dest = "docker-archive:%s/out.tar:app:1" % tmp_path
    run = copy(refs["zstd"], dest, env={"PYTHONPATH": str(blocker.parent)})
    assert run.failed
    assert "zstd layers need the Python library zstandard (pip install zstandard)" in run.result["msg"]
    assert not os.path.exists(str(tmp_path / "out.tar"))
    gzip_only = copy(refs["gzip"], "oci:%s/plain:1" % tmp_path, env={"PYTHONPATH": str(blocker.parent)})
    assert not gzip_only.failed, gzip_only.output  # gzip images never need it


def fetch_blob(registry, repository: str, digest: str) -> bytes:
    with urllib.request.urlopen("%s/v2/%s/blobs/%s" % (registry.url, repository, digest), timeout=30) as response:
        return response.read()
