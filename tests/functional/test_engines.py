"""docker-daemon: and containers-storage: through Ansible, against a private dockerd and a private podman store.

The engines are the oracles here: ``docker image inspect`` and ``podman image inspect`` must
agree with what the collection loaded and what image_info reports, and skopeo must copy out what
we loaded (and we what skopeo loaded).
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_run import run_module
from images import OCI_MANIFEST, add_to_index, build_image, build_index, canonical_json, write_blob

from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions, copy_image
from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._transports._storage import StoreSpec, parse_store

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def pushed(tmp_path, registry, skopeo):
    """A two-layer image (gzip layers, labels, env) in the registry; returns (docker:// reference, build_image info)."""
    info = build_image(str(tmp_path / "src"), ref="v1", layer_sizes=(3000, 5000), seed=61, labels={"team": "engines"}, env=["PATH=/bin", "MODE=test"])
    ref = "docker://%s/engines/app:1.0" % registry.host
    skopeo.copy(info["reference"], ref)
    return ref, info


def copy(src: str, dest: str, **extra):
    args = {"src": src, "dest": dest, "src_validate_certs": False, "dest_validate_certs": False}
    args.update(extra)
    return run_module("image_copy", args)


def config_of(ref: str, skopeo) -> dict:
    return json.loads(skopeo.skopeo("inspect", "--config", "--tls-verify=false", ref))


def agrees_with_engine(image: dict, inspected: dict, diff_ids: list[str]) -> None:
    """image_info's answer and the engine's own inspect name the same image."""
    assert image["config_digest"] == "sha256:" + inspected["Id"].rpartition(":")[2]
    assert [layer["digest"] for layer in image["layers"]] == inspected["RootFS"]["Layers"] == diff_ids
    assert (image["os"], image["architecture"]) == (inspected["Os"], inspected["Architecture"])
    assert image["labels"] == inspected["Config"]["Labels"] == {"team": "engines"}
    assert image["env"] == inspected["Config"]["Env"] == ["PATH=/bin", "MODE=test"]


# --- docker-daemon: ---------------------------------------------------------------------------


def test_registry_to_docker_daemon_and_back_keeps_diff_ids_and_second_copy_changes_nothing(docker_engine, registry, pushed, skopeo):
    src, info = pushed
    dest = "docker-daemon:engines/app:1.0"
    first = copy(src, dest, dest_daemon_host=docker_engine.host)
    assert not first.failed, first.output
    assert first.changed
    assert first.result["results"][0]["dest_digest_after"] == info["config_digest"]  # the engine's image ID

    inspected = docker_engine.inspect("engines/app:1.0")
    assert inspected["Id"] == info["config_digest"]
    assert inspected["RootFS"]["Layers"] == info["diff_ids"]
    assert inspected["RepoTags"] == ["engines/app:1.0"]

    second = copy(src, dest, dest_daemon_host=docker_engine.host)
    assert not second.failed, second.output
    assert second.changed is False
    assert second.result["results"][0]["dest_digest_before"] == info["config_digest"]

    back = "docker://%s/engines/back:1.0" % registry.host
    out = copy(dest, back, src_daemon_host=docker_engine.host)
    assert not out.failed, out.output
    assert out.changed
    config = config_of(back, skopeo)
    assert config["rootfs"]["diff_ids"] == info["diff_ids"]
    # The engine serves layers uncompressed; what lands in the registry is gzip, as its media type says.
    manifest = json.loads(skopeo.inspect_raw(back))
    for layer in manifest["layers"]:
        assert layer["mediaType"].endswith("gzip")
        blob = skopeo_blob(registry, "engines/back", layer["digest"])
        assert blob[:2] == b"\x1f\x8b"
    again = copy(dest, back, src_daemon_host=docker_engine.host)
    assert not again.failed, again.output
    assert again.changed is False  # same image ID at the destination
    # and it goes back into an engine (the gzip layers are unpacked again)
    reloaded = copy(back, "docker-daemon:engines/reloaded:1.0", dest_daemon_host=docker_engine.host)
    assert not reloaded.failed, reloaded.output
    assert docker_engine.inspect("engines/reloaded:1.0")["Id"] == info["config_digest"]


def skopeo_blob(registry, repository: str, digest: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen("%s/v2/%s/blobs/%s" % (registry.url, repository, digest), timeout=30) as response:
        return response.read()


def test_image_info_on_docker_daemon_agrees_with_docker_image_inspect(docker_engine, pushed):
    src, info = pushed
    loaded = copy(src, "docker-daemon:engines/info:1", dest_daemon_host=docker_engine.host)
    assert not loaded.failed, loaded.output
    inspected = docker_engine.inspect("engines/info:1")
    by_name = run_module("image_info", {"image": "docker-daemon:engines/info:1", "daemon_host": docker_engine.host})
    assert not by_name.failed, by_name.output
    agrees_with_engine(by_name.result["image"], inspected, info["diff_ids"])
    # By image ID, through DOCKER_HOST instead of the option.
    by_id = run_module("image_info", {"image": "docker-daemon:" + inspected["Id"]}, env={"DOCKER_HOST": docker_engine.host})
    assert not by_id.failed, by_id.output
    assert by_id.result["image"]["digest"] == by_name.result["image"]["digest"]
    missing = run_module("image_info", {"image": "docker-daemon:engines/nothing:1", "daemon_host": docker_engine.host})
    assert not missing.failed, missing.output
    assert missing.result["exists"] is False


def test_skopeo_copies_out_what_we_loaded_into_docker_and_we_copy_out_what_skopeo_loaded(docker_engine, tmp_path, skopeo):
    info = build_image(str(tmp_path / "ours"), ref="v1", layer_sizes=(2000, 1000), seed=62)
    ours = copy(info["reference"], "docker-daemon:engines/ours:1", dest_daemon_host=docker_engine.host)
    assert not ours.failed, ours.output
    skopeo.copy("docker-daemon:engines/ours:1", "oci:%s:out" % (tmp_path / "skopeo-out"), "--src-daemon-host", docker_engine.host)
    out_config = json.loads(skopeo.skopeo("inspect", "--config", "oci:%s:out" % (tmp_path / "skopeo-out")))
    assert out_config["rootfs"]["diff_ids"] == info["diff_ids"]

    theirs = build_image(str(tmp_path / "theirs"), ref="v1", layer_sizes=(1500,), seed=63)
    skopeo.copy(theirs["reference"], "docker-daemon:engines/theirs:1", "--dest-daemon-host", docker_engine.host)
    described = run_module("image_info", {"image": "docker-daemon:engines/theirs:1", "daemon_host": docker_engine.host})
    assert not described.failed, described.output
    expected = skopeo.inspect("docker-daemon:engines/theirs:1", "--daemon-host", docker_engine.host)
    assert described.result["image"]["digest"] == expected["Digest"]
    assert [layer["digest"] for layer in described.result["image"]["layers"]] == expected["Layers"] == theirs["diff_ids"]
    back = copy("docker-daemon:engines/theirs:1", "oci:%s:back" % (tmp_path / "back"), src_daemon_host=docker_engine.host)
    assert not back.failed, back.output
    # Layers come out of the engine uncompressed and are stored gzip-compressed (as their media type says),
    # so the manifest digest is new; the image (config, diff IDs) is the same one.
    back_ref = "oci:%s:back" % (tmp_path / "back")
    assert json.loads(skopeo.skopeo("inspect", "--config", back_ref))["rootfs"]["diff_ids"] == theirs["diff_ids"]
    assert back.result["results"][0]["dest_digest_after"] == skopeo.inspect(back_ref)["Digest"]


def test_multi_arch_source_loads_one_platform_into_docker(docker_engine, tmp_path):
    index = build_index(str(tmp_path / "multi"), ref="m", platforms=["linux/amd64", "linux/arm64/v8"], layer_sizes=(1000,), seed=64)
    by_platform = {child["platform"]["architecture"]: child for child in index["manifests"]}
    run = copy(index["reference"], "docker-daemon:engines/multi:1", dest_daemon_host=docker_engine.host, platforms=["linux/arm64/v8"])
    assert not run.failed, run.output
    inspected = docker_engine.inspect("engines/multi:1")
    assert inspected["Id"] == by_platform["arm64"]["config_digest"]
    assert inspected["Architecture"] == "arm64"
    refused = copy(index["reference"], "docker-daemon:engines/multi:2", dest_daemon_host=docker_engine.host, multi_arch="all")
    assert refused.failed
    assert "cannot hold a multi-arch index" in refused.result["msg"]


def test_check_mode_into_docker_predicts_the_load_and_loads_nothing(docker_engine, tmp_path):
    info = build_image(str(tmp_path / "check"), ref="v1", layer_sizes=(1000,), seed=69)
    args = {"src": info["reference"], "dest": "docker-daemon:engines/check:1", "dest_daemon_host": docker_engine.host}
    run = run_module("image_copy", args, check=True)
    assert not run.failed, run.output
    assert run.changed
    result = run.result["results"][0]
    assert (result["dest_digest_before"], result["dest_digest_after"]) == (None, info["config_digest"])
    assert docker_engine.docker("image", "inspect", "engines/check:1", check=False).returncode != 0


def test_failed_copy_into_docker_loads_nothing(docker_engine, tmp_path):
    info = build_image(str(tmp_path / "bad"), ref="v1", layer_sizes=(4000, 4000), seed=65)
    blob = os.path.join(info["layout"], "blobs", "sha256", info["layer_digests"][-1].partition(":")[2])
    with open(blob, "r+b") as f:  # same size, other bytes: only the digest check can notice
        data = bytearray(f.read())
        data[-10] ^= 0xFF
        f.seek(0)
        f.write(bytes(data))
    options = ConnectionOptions(daemon_host=docker_engine.host)
    with pytest.raises(OCIError):
        copy_image(parse_reference(info["reference"]), parse_reference("docker-daemon:engines/bad:1"), options, options, CopyOptions(parallel=1))
    assert docker_engine.docker("image", "inspect", "engines/bad:1", check=False).returncode != 0
    images = docker_engine.docker("image", "ls", "--all", "--quiet", "--no-trunc").stdout.split()
    assert info["config_digest"] not in images


def test_missing_docker_engine_fails_cleanly_and_names_the_socket(tmp_path, pushed):
    src = pushed[0]
    host = "unix://%s" % (tmp_path / "no-engine.sock")
    run = copy(src, "docker-daemon:engines/app:1.0", dest_daemon_host=host)
    assert run.failed
    assert run.changed is False
    assert "no Docker engine at %s: is it running? set dest_daemon_host" % host in run.result["msg"]
    info = run_module("image_info", {"image": "docker-daemon:engines/app:1.0", "daemon_host": host})
    assert info.failed
    assert "no Docker engine at %s: is it running? set daemon_host" % host in info.result["msg"]


def test_docker_engine_over_tcp_with_tls_from_environment_or_options(docker_engine, tmp_path):
    info = build_image(str(tmp_path / "tls"), ref="v1", layer_sizes=(1000,), seed=68)
    certs = docker_engine.cert_path
    loaded = copy(
        info["reference"],
        "docker-daemon:engines/tls:1",
        dest_daemon_host=docker_engine.tcp_host,
        dest_ca_cert=os.path.join(certs, "ca.pem"),
        dest_client_cert=os.path.join(certs, "cert.pem"),
        dest_client_key=os.path.join(certs, "key.pem"),
    )
    assert not loaded.failed, loaded.output
    assert docker_engine.inspect("engines/tls:1")["Id"] == info["config_digest"]
    tls_env = {"DOCKER_HOST": docker_engine.tcp_host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": certs}
    described = run_module("image_info", {"image": "docker-daemon:engines/tls:1"}, env=tls_env)
    assert not described.failed, described.output
    assert described.result["image"]["config_digest"] == info["config_digest"]
    # Without a client certificate the engine refuses the handshake; the error says TLS, not "no engine".
    refused = run_module(
        "image_info", {"image": "docker-daemon:engines/tls:1", "daemon_host": docker_engine.tcp_host, "ca_cert": os.path.join(certs, "ca.pem")}
    )
    assert refused.failed
    assert "TLS" in refused.result["msg"] or "certificate" in refused.result["msg"], refused.result["msg"]


def test_docker_engine_errors_carry_the_engines_message(docker_engine, tmp_path):
    run = copy("docker-daemon:engines/never-loaded:1", "oci:%s:x" % (tmp_path / "out"), src_daemon_host=docker_engine.host)
    assert run.failed
    assert "reference does not exist" in run.result["msg"]  # dockerd's own words
    assert not (tmp_path / "out").exists()


# --- containers-storage: ----------------------------------------------------------------------


def test_registry_to_containers_storage_and_back_with_a_private_store(podman_store, registry, pushed, skopeo):
    src, info = pushed
    dest = podman_store.reference("localhost/engines/app:1.0")
    first = copy(src, dest)
    assert not first.failed, first.output
    assert first.changed
    assert first.result["results"][0]["dest_digest_after"] == info["config_digest"]

    inspected = podman_store.inspect("localhost/engines/app:1.0")
    assert "sha256:" + inspected["Id"] == info["config_digest"]
    assert inspected["RepoTags"] == ["localhost/engines/app:1.0"]
    described = run_module("image_info", {"image": dest})
    assert not described.failed, described.output
    agrees_with_engine(described.result["image"], inspected, info["diff_ids"])

    second = copy(src, dest)
    assert not second.failed, second.output
    assert second.changed is False

    back = "docker://%s/engines/from-podman:1.0" % registry.host
    out = copy(dest, back)
    assert not out.failed, out.output
    assert config_of(back, skopeo)["rootfs"]["diff_ids"] == info["diff_ids"]


def test_skopeo_copies_out_what_we_loaded_into_containers_storage_and_we_read_what_skopeo_loaded(podman_store, tmp_path, skopeo):
    info = build_image(str(tmp_path / "ours"), ref="v1", layer_sizes=(2500,), seed=66)
    ours = podman_store.reference("localhost/engines/ours:1")
    loaded = copy(info["reference"], ours)
    assert not loaded.failed, loaded.output
    skopeo.copy(ours, "oci:%s:out" % (tmp_path / "skopeo-out"))
    assert json.loads(skopeo.skopeo("inspect", "--config", "oci:%s:out" % (tmp_path / "skopeo-out")))["rootfs"]["diff_ids"] == info["diff_ids"]

    theirs = build_image(str(tmp_path / "theirs"), ref="v1", layer_sizes=(1200, 800), seed=67)
    theirs_ref = podman_store.reference("localhost/engines/theirs:1")
    skopeo.copy(theirs["reference"], theirs_ref)
    described = run_module("image_info", {"image": theirs_ref})
    assert not described.failed, described.output
    assert described.result["image"]["config_digest"] == theirs["config_digest"]
    assert [layer["digest"] for layer in described.result["image"]["layers"]] == theirs["diff_ids"]
    # The same image through its ID, copied out to a directory skopeo reads (skopeo 1.9 reads no v2s2 in oci:).
    by_id = podman_store.reference("@" + theirs["config_digest"].partition(":")[2])
    out = copy(by_id, "dir:%s" % (tmp_path / "from-id"))
    assert not out.failed, out.output
    assert json.loads(skopeo.skopeo("inspect", "--config", "dir:%s" % (tmp_path / "from-id")))["rootfs"]["diff_ids"] == theirs["diff_ids"]


def test_store_specifier_parts_become_podman_flags():
    spec = parse_store("vfs@/srv/root+/run/x:vfs.ignore_chown_errors=true,other=1", "t")
    assert spec == StoreSpec("vfs", "/srv/root", "/run/x", ["vfs.ignore_chown_errors=true", "other=1"])
    assert spec.podman_flags() == [
        "--storage-driver",
        "vfs",
        "--root",
        "/srv/root",
        "--runroot",
        "/run/x",
        "--storage-opt",
        "vfs.ignore_chown_errors=true",
        "--storage-opt",
        "other=1",
    ]
    assert parse_store("/only/root", "t") == StoreSpec(None, "/only/root", None, [])
    assert parse_store(None) == StoreSpec()


# --- what a docker save tar and the engines cannot hold --------------------------------------


def build_artifact(layout: str) -> str:
    """An OCI artifact (empty config, artifactType, one non-image layer) at ``oci:<layout>:sbom``."""
    config, config_size = write_blob(layout, b"{}")
    layer, layer_size = write_blob(layout, b'{"spdxVersion": "SPDX-2.3"}')
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/spdx+json", "digest": layer, "size": layer_size}],
        }
    )
    digest, size = write_blob(layout, manifest)
    add_to_index(layout, {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}, "sbom")
    return "oci:%s:sbom" % layout


@pytest.mark.parametrize("kind", ["docker-archive", "docker-daemon", "containers-storage"])
def test_an_artifact_is_refused_by_destinations_that_hold_container_images_only(request, tmp_path, kind):
    src = build_artifact(str(tmp_path / "artifact"))
    extra = {}
    if kind == "docker-archive":
        dest = "docker-archive:%s:sbom/app:1" % (tmp_path / "out.tar")
    elif kind == "docker-daemon":
        dest, extra = "docker-daemon:sbom/app:1", {"dest_daemon_host": request.getfixturevalue("docker_engine").host}
    else:
        store = request.getfixturevalue("podman_store")
        dest = store.reference("localhost/sbom/app:1")
    run = copy(src, dest, **extra)
    assert run.failed
    msg = run.result["msg"]
    assert "Traceback" not in run.output and "module_stderr" not in run.result, run.output
    assert "diff ID" not in msg, msg
    for name in (src, kind + ":", "sbom/app:1", "artifact", "application/spdx+json", "application/vnd.oci.empty.v1+json", "container images only"):
        assert name in msg, "msg does not name %r: %s" % (name, msg)
    assert run.result["results"][0]["changed"] is False
    if kind == "docker-archive":
        assert not (tmp_path / "out.tar").exists()
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".oci-images-tmp-")]
    elif kind == "docker-daemon":
        assert request.getfixturevalue("docker_engine").docker("image", "inspect", "sbom/app:1", check=False).returncode != 0
    else:
        assert store.podman("image", "exists", "localhost/sbom/app:1", check=False).returncode != 0
