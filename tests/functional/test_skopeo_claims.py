"""What the documentation says skopeo does, checked against skopeo itself.

docs/ compares the collection with skopeo in many places. Claims about what the collection writes
(byte for byte what skopeo writes, digests skopeo agrees with) are checked where that code is
tested; this file holds the claims about skopeo's own behaviour, one test each, named after the
page that makes it. A claim that no test here or elsewhere checks does not belong in docs/.

The claims are about the skopeo of Debian 12 (1.9.3), which the tests run; the first test fails
when another version is installed, so the pages get read again.

Claims checked elsewhere: what the collection writes to dir:, oci:, oci-archive: and docker-archive:
against what skopeo writes (tests/unit/plugins/module_utils/transports/test_writers.py,
test_local_transports.py), Docker to OCI conversion (test_image_copy.py), image_info against
skopeo inspect (test_image_info.py), engines and the containers-storage specifier (test_engines.py),
tag sets and digests of a sync spec against skopeo sync --all (test_mirror.py).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request

import pytest
from ansible_run import run_module
from counting_proxy import CountingProxy
from images import build_image, build_index
from registries import REGISTRY_BINARY
from skopeo import SKOPEO, SkopeoFailed

from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference

pytestmark = pytest.mark.timeout(300)


def run_skopeo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """skopeo with the insecure policy; the finished process, whatever its exit status."""
    return subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL, check=False)


def sync(spec: str, dest: str, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / ("sync-%d.yaml" % len(list(tmp_path.glob("sync-*.yaml"))))
    path.write_text(spec)
    return run_skopeo("sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", *extra, str(path), dest)


def tags(skopeo, reference: str) -> list[str]:
    try:
        return sorted(json.loads(skopeo.skopeo("list-tags", "--tls-verify=false", reference))["Tags"])
    except SkopeoFailed as exc:
        if "404 (Not Found)" in str(exc):
            return []
        raise


@pytest.fixture(scope="module")
def upstream(registry, tmp_path_factory, skopeo):
    """claims/app with version-like and other tags, claims/deep/tools:1, claims/multi:1 (a two-platform index)."""
    layout = str(tmp_path_factory.mktemp("claims") / "layout")
    app_tags = ["1.0.0", "1.1.0", "v1.2", "11.0", "latest", "dev-abc"]
    for i, tag in enumerate(app_tags):
        build_image(layout, ref=tag, seed=1400 + i, layer_sizes=(1024,))
        skopeo.copy("oci:%s:%s" % (layout, tag), "docker://%s/claims/app:%s" % (registry.host, tag))
    build_image(layout, ref="tools", seed=1450, layer_sizes=(1024,))
    skopeo.copy("oci:%s:tools" % layout, "docker://%s/claims/deep/tools:1" % registry.host)
    index = build_index(str(tmp_path_factory.mktemp("claims-index")), ref="m", platforms=["linux/amd64", "linux/arm64/v8"], seed=1460)
    skopeo.copy(index["reference"], "docker://%s/claims/multi:1" % registry.host, "--multi-arch", "all")
    return {"host": registry.host, "layout": layout, "app_tags": app_tags, "index": index}


def test_the_claims_are_about_skopeo_1_9(skopeo):
    version = skopeo.skopeo("--version")
    assert re.search(r"version 1\.9\.\d", version), "docs/ describe skopeo 1.9.3; check every claim against %s" % version.strip()


# --- docs/mirroring.md -------------------------------------------------------------------------


def test_mirroring_skopeo_copy_of_a_reference_without_tag_copies_latest(upstream, skopeo):
    host = upstream["host"]
    skopeo.copy("docker://%s/claims/app" % host, "docker://%s/claims-notag/app" % host)
    assert tags(skopeo, "docker://%s/claims-notag/app" % host) == ["latest"]


def test_mirroring_skopeo_sync_tag_regex_is_unanchored(upstream, skopeo, tmp_path):
    host = upstream["host"]
    proc = sync("%s:\n  tls-verify: false\n  images-by-tag-regex:\n    claims/app: '1\\.'\n" % host, "%s/claims-regex" % host, tmp_path)
    assert proc.returncode == 0, proc.stderr
    # '1\.' also matches inside v1.2 and 11.0: nothing anchors it.
    assert tags(skopeo, "docker://%s/claims-regex/app" % host) == ["1.0.0", "1.1.0", "11.0", "v1.2"]


@pytest.fixture
def portless(tmp_path, upstream, skopeo):
    """A plain-HTTP registry on port 80 of a loopback address of its own: a registry name without a port."""
    address = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(1, 254), random.randint(2, 254))
    data = tmp_path / "portless"
    config = tmp_path / "portless.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp: {addr: '%s:80'}\n" % (data, address)
    )
    log = open(tmp_path / "portless.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _attempt in range(200):
            try:
                urllib.request.urlopen("http://%s/v2/" % address, timeout=2).close()
                break
            except OSError:
                time.sleep(0.05)  # polling while the registry binds its port
        else:
            pytest.fail("no registry on %s:80: %s" % (address, (tmp_path / "portless.log").read_text()))
        skopeo.copy("docker://%s/claims/deep/tools:1" % upstream["host"], "docker://%s/claims/deep/tools:1" % address)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_mirroring_skopeo_sync_names_destinations_by_last_component_or_scoped(upstream, portless, skopeo, tmp_path):
    host = upstream["host"]
    spec = "%s:\n  tls-verify: false\n  images:\n    claims/deep/tools: ['1']\n" % portless
    assert sync(spec, "%s/claims-plain" % host, tmp_path).returncode == 0
    assert tags(skopeo, "docker://%s/claims-plain/tools" % host) == ["1"]
    proc = sync(spec, "%s/claims-scoped" % host, tmp_path, "--scoped")
    assert proc.returncode == 0, proc.stderr
    assert tags(skopeo, "docker://%s/claims-scoped/%s/claims/deep/tools" % (host, portless)) == ["1"]


def test_mirroring_skopeo_sync_cannot_scope_a_registry_with_a_port(upstream, tmp_path):
    host = upstream["host"]
    proc = sync("%s:\n  tls-verify: false\n  images:\n    claims/deep/tools: ['1']\n" % host, "%s/claims-scoped" % host, tmp_path, "--scoped")
    assert proc.returncode != 0 and "invalid reference format" in proc.stderr
    ours = run_module("image_copy", {"sync": {host: {"tls-verify": False, "images": {"claims/deep/tools": ["1"]}}}, "dest": "%s/x" % host, "scoped": True})
    assert ours.failed and "invalid repository name" in ours.result["msg"]


def test_mirroring_skopeo_sync_without_all_copies_one_platform_and_changes_the_digest(upstream, skopeo, tmp_path):
    host = upstream["host"]
    spec = "%s:\n  tls-verify: false\n  images:\n    claims/multi: ['1']\n" % host
    assert sync(spec, "%s/claims-noall" % host, tmp_path).returncode == 0
    copied = json.loads(skopeo.inspect_raw("docker://%s/claims-noall/multi:1" % host))
    assert "manifests" not in copied and "layers" in copied  # one image, not the index
    amd64 = next(m for m in upstream["index"]["manifests"] if m["platform"]["architecture"] == "amd64")
    assert skopeo.inspect("docker://%s/claims-noall/multi:1" % host)["Digest"] == amd64["manifest_digest"]
    assert amd64["manifest_digest"] != upstream["index"]["index_digest"]
    assert sync(spec, "%s/claims-all" % host, tmp_path, "--all").returncode == 0
    assert skopeo.inspect("docker://%s/claims-all/multi:1" % host)["Digest"] == upstream["index"]["index_digest"]


def test_mirroring_skopeo_1_9_does_not_know_images_by_semver(upstream, skopeo, tmp_path):
    host = upstream["host"]
    proc = sync("%s:\n  tls-verify: false\n  images-by-semver:\n    claims/app: '>=1.0.0'\n" % host, "%s/claims-semver" % host, tmp_path)
    # Not refused: a warning, exit status 0, and nothing synced.
    assert proc.returncode == 0, proc.stderr
    assert "No images specified for registry" in proc.stderr
    assert "Synced 0 images" in proc.stderr
    assert tags(skopeo, "docker://%s/claims-semver/app" % host) == []


def test_mirroring_skopeo_sync_ignores_unknown_keys(upstream, skopeo, tmp_path):
    host = upstream["host"]
    spec = "%s:\n  tls-verify: false\n  imagez:\n    claims/app: []\n  images:\n    claims/app: ['1.0.0']\n" % host
    proc = sync(spec, "%s/claims-unknown" % host, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "imagez" not in proc.stdout + proc.stderr  # not even a warning
    assert tags(skopeo, "docker://%s/claims-unknown/app" % host) == ["1.0.0"]


def test_mirroring_skopeo_sync_second_run_skips_present_images_and_still_counts_them(upstream, skopeo, tmp_path):
    host = upstream["host"]
    spec = "%s:\n  tls-verify: false\n  images:\n    claims/app: ['1.0.0', '1.1.0']\n" % host
    with CountingProxy(host) as proxy:
        assert sync(spec, "%s/claims-again" % proxy.host, tmp_path).returncode == 0
        proxy.reset()
        again = sync(spec, "%s/claims-again" % proxy.host, tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("Skipping: image already present at destination") == 2
        assert "Synced 2 images" in again.stderr  # skipped images are counted as synced
        assert proxy.writes() == []  # nothing written the second time


def test_mirroring_skopeo_1_9_sync_has_no_append_suffix(skopeo):
    assert "--append-suffix" not in run_skopeo("sync", "--help").stdout


def test_mirroring_skopeo_inspect_digest_of_a_multi_arch_image_is_the_index_digest(upstream, skopeo):
    # docs/mirroring.md (the lookup) and docs/getting-started.md (image_info's digest) say so.
    reference = "docker://%s/claims/multi:1" % upstream["host"]
    assert skopeo.inspect(reference)["Digest"] == upstream["index"]["index_digest"]
    ours = run_module("image_info", {"image": reference, "validate_certs": False})
    assert ours.result["image"]["digest"] == upstream["index"]["index_digest"]


# --- docs/pruning.md ---------------------------------------------------------------------------


def test_pruning_skopeo_delete_of_a_tag_takes_every_tag_on_the_image_along(upstream, skopeo):
    host = upstream["host"]
    for tag in ("a", "b"):
        skopeo.copy("docker://%s/claims/app:1.0.0" % host, "docker://%s/claims-delete/app:%s" % (host, tag))
    skopeo.copy("docker://%s/claims/app:1.1.0" % host, "docker://%s/claims-delete/app:other" % host)
    skopeo.skopeo("delete", "--tls-verify=false", "docker://%s/claims-delete/app:a" % host)
    assert tags(skopeo, "docker://%s/claims-delete/app" % host) == ["other"]  # b went with a


# --- docs/authentication.md (and docs/awx-ee.md) -----------------------------------------------


def _auth_json(user: str, password: str, host: str) -> str:
    return json.dumps({"auths": {host: {"auth": base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}}})


def _places(tmp_path) -> dict:
    """An environment whose credential files all live under tmp_path: the places, by name."""
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG")}
    env.update({"XDG_RUNTIME_DIR": str(tmp_path / "runtime"), "XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path / "home")})
    os.makedirs(env["XDG_RUNTIME_DIR"], exist_ok=True)
    os.makedirs(env["HOME"], exist_ok=True)
    return {
        "env": env,
        "REGISTRY_AUTH_FILE": str(tmp_path / "registry-auth-file.json"),
        "runtime": os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"),
        "config": os.path.join(env["XDG_CONFIG_HOME"], "containers", "auth.json"),
        "DOCKER_CONFIG": str(tmp_path / "docker-config" / "config.json"),
        "home-docker": os.path.join(env["HOME"], ".docker", "config.json"),
    }


def _write(path: str, text: str | None) -> None:
    if text is None:
        if os.path.exists(path):
            os.remove(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _certs(reg, tmp_path) -> str:
    directory = tmp_path / "certs"
    directory.mkdir(exist_ok=True)
    shutil.copy(reg.ca_cert, str(directory / "ca.crt"))
    return str(directory)


@pytest.fixture(scope="module")
def private(basic_registry, tmp_path_factory, skopeo):
    """An image in the Basic-auth registry."""
    layout = str(tmp_path_factory.mktemp("claims-private"))
    build_image(layout, ref="v1", layer_sizes=(1024,), seed=1470)
    creds = "%s:%s" % (basic_registry.username, basic_registry.password)
    skopeo.copy("oci:%s:v1" % layout, "docker://%s/claims/private:1" % basic_registry.host, "--dest-creds", creds)
    return "docker://%s/claims/private:1" % basic_registry.host


@pytest.fixture
def credential_places(basic_registry, private, tmp_path):
    """``works(files, with_env)``: whether skopeo and the module find working credentials with these files written."""
    good = _auth_json(basic_registry.username, basic_registry.password, basic_registry.host)
    bad = _auth_json(basic_registry.username, "wrong-" + basic_registry.password, basic_registry.host)
    places = _places(tmp_path)
    certs = _certs(basic_registry, tmp_path)

    def works(files: dict[str, str], with_env: tuple[str, ...] = (), tool: str = "skopeo") -> bool:
        for name in ("REGISTRY_AUTH_FILE", "runtime", "config", "DOCKER_CONFIG", "home-docker"):
            _write(places[name], {"good": good, "bad": bad, "empty": "{}"}.get(files.get(name, "")))
        env = dict(places["env"])
        if "REGISTRY_AUTH_FILE" in with_env:
            env["REGISTRY_AUTH_FILE"] = places["REGISTRY_AUTH_FILE"]
        if "DOCKER_CONFIG" in with_env:
            env["DOCKER_CONFIG"] = os.path.dirname(places["DOCKER_CONFIG"])
        if tool == "skopeo":
            return run_skopeo("inspect", "--cert-dir", certs, private, env=env).returncode == 0
        module_env = {k: env.get(k, "") for k in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "HOME", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG")}
        return not run_module("image_info", {"image": private, "ca_cert": basic_registry.ca_cert, "retries": 0}, env=module_env).failed

    return works


@pytest.mark.parametrize("tool", ["skopeo", "module"])
def test_authentication_per_user_files_are_searched_in_the_documented_order(credential_places, tool):
    # runtime, then config home, then Docker's file: DOCKER_CONFIG/config.json when DOCKER_CONFIG is set, else ~/.docker/config.json.
    for with_env, docker in (((), "home-docker"), (("DOCKER_CONFIG",), "DOCKER_CONFIG")):
        order = ["runtime", "config", docker]
        for i, place in enumerate(order):
            assert credential_places({place: "good", **dict.fromkeys(order[i + 1 :], "bad")}, with_env, tool), (place, with_env)
            if i:
                assert not credential_places({order[i - 1]: "bad", place: "good"}, with_env, tool), "%s is read before %s" % (place, order[i - 1])
    assert not credential_places({"home-docker": "good"}, ("DOCKER_CONFIG",), tool)  # DOCKER_CONFIG replaces ~/.docker


def test_authentication_registry_auth_file_takes_the_place_of_the_runtime_file(credential_places):
    for tool in ("skopeo", "module"):
        assert credential_places({"REGISTRY_AUTH_FILE": "good", "config": "bad", "home-docker": "bad"}, ("REGISTRY_AUTH_FILE",), tool), tool
        assert not credential_places({"REGISTRY_AUTH_FILE": "empty", "runtime": "good"}, ("REGISTRY_AUTH_FILE",), tool), tool
        assert credential_places({"REGISTRY_AUTH_FILE": "empty", "home-docker": "good"}, ("REGISTRY_AUTH_FILE",), tool), tool
        # An explicit file replaces only the first one: the config-home file is still read after it (containers-auth.json(5)).
        assert credential_places({"REGISTRY_AUTH_FILE": "empty", "config": "good"}, ("REGISTRY_AUTH_FILE",), tool), tool


def test_authentication_a_skopeo_login_is_used_by_the_modules(basic_registry, private, tmp_path):
    places = _places(tmp_path)
    login = ["login", "--cert-dir", _certs(basic_registry, tmp_path), "-u", basic_registry.username, "-p", basic_registry.password, basic_registry.host]
    proc = run_skopeo(*login, env=places["env"])
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(places["runtime"])  # ${XDG_RUNTIME_DIR}/containers/auth.json
    module_env = {k: places["env"][k] for k in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "HOME")}
    module_env.update(REGISTRY_AUTH_FILE="", DOCKER_CONFIG="")
    run = run_module("image_info", {"image": private, "ca_cert": basic_registry.ca_cert}, env=module_env)
    assert not run.failed, run.output
    # With DOCKER_CONFIG set, skopeo login writes there instead; the modules find it there too.
    os.remove(places["runtime"])
    docker_config = str(tmp_path / "docker-config")
    proc = run_skopeo(*login, env=dict(places["env"], DOCKER_CONFIG=docker_config))
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(places["runtime"]) and os.path.isfile(os.path.join(docker_config, "config.json"))
    run = run_module("image_info", {"image": private, "ca_cert": basic_registry.ca_cert}, env=dict(module_env, DOCKER_CONFIG=docker_config))
    assert not run.failed, run.output


def test_authentication_skopeo_reads_certs_d_in_the_home_directory(basic_registry, private, tmp_path):
    env = _places(tmp_path)["env"]
    creds = "--creds=%s:%s" % (basic_registry.username, basic_registry.password)
    assert run_skopeo("inspect", creds, private, env=env).returncode != 0  # the CA is not trusted yet
    directory = tmp_path / "home" / ".config" / "containers" / "certs.d" / basic_registry.host
    directory.mkdir(parents=True)
    shutil.copy(basic_registry.ca_cert, str(directory / "ca.crt"))
    proc = run_skopeo("inspect", creds, private, env=env)
    assert proc.returncode == 0, proc.stderr


def test_authentication_localhost_is_not_plain_http_to_skopeo_or_the_modules(upstream):
    port = upstream["host"].split(":")[1]
    reference = "docker://localhost:%s/claims/app:1.0.0" % port
    proc = run_skopeo("inspect", reference)
    assert proc.returncode != 0 and "server gave HTTP response to HTTPS client" in proc.stderr
    assert run_skopeo("inspect", "--tls-verify=false", reference).returncode == 0
    assert run_module("image_info", {"image": reference, "retries": 0}).failed
    assert not run_module("image_info", {"image": reference, "validate_certs": False}).failed


# --- docs/transports.md ------------------------------------------------------------------------


def test_transports_skopeo_ends_oci_paths_at_the_first_colon_but_not_dir_paths(upstream, tmp_path):
    source = "oci:%s:1.0.0" % upstream["layout"]
    assert run_skopeo("copy", source, "oci:%s/layout:ref:with-colon" % tmp_path).returncode == 0
    with open(tmp_path / "layout" / "index.json") as f:
        assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in json.load(f)["manifests"]] == ["ref:with-colon"]
    assert run_skopeo("copy", source, "dir:%s/with:colon" % tmp_path).returncode == 0
    assert os.path.isfile(tmp_path / "with:colon" / "manifest.json")
    # The collection splits both the same way, and reads what skopeo wrote there.
    assert (parse_reference("oci:/a/b:c:d").path, parse_reference("oci:/a/b:c:d").ref_name) == ("/a/b", "c:d")
    assert parse_reference("dir:/a/b:c").path == "/a/b:c"
    for reference in ("oci:%s/layout:ref:with-colon" % tmp_path, "dir:%s/with:colon" % tmp_path):
        run = run_module("image_info", {"image": reference})
        assert not run.failed, run.output


def test_transports_skopeo_refuses_to_write_dir_into_an_unrelated_directory(upstream, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    proc = run_skopeo("copy", "oci:%s:1.0.0" % upstream["layout"], "dir:%s/mine" % tmp_path)
    assert proc.returncode != 0 and "not a containers image directory" in proc.stderr
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


def test_transports_skopeo_replaces_an_oci_archive_keeping_no_other_ref(upstream, tmp_path):
    archive = tmp_path / "a.tar"
    assert run_skopeo("copy", "oci:%s:1.0.0" % upstream["layout"], "oci-archive:%s:one" % archive).returncode == 0
    assert run_skopeo("copy", "oci:%s:1.1.0" % upstream["layout"], "oci-archive:%s:two" % archive).returncode == 0
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["two"]


def test_transports_skopeo_refuses_to_write_into_an_existing_docker_archive(upstream, tmp_path):
    archive = tmp_path / "a.tar"
    assert run_skopeo("copy", "oci:%s:1.0.0" % upstream["layout"], "docker-archive:%s:example.com/a:1" % archive).returncode == 0
    before = archive.read_bytes()
    proc = run_skopeo("copy", "oci:%s:1.1.0" % upstream["layout"], "docker-archive:%s:example.com/a:2" % archive)
    assert proc.returncode != 0 and "doesn't support modifying existing images" in proc.stderr
    assert archive.read_bytes() == before


@pytest.mark.parametrize(
    "name, normalized",
    [
        ("fedora", "docker.io/library/fedora:latest"),
        ("team/app", "docker.io/team/app:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        ("registry.example.com/team/app:1.2", "registry.example.com/team/app:1.2"),
        ("index.docker.io/library/x:1", "docker.io/library/x:1"),
        ("Foo/bar:1", None),  # skopeo 1.9.3: "repository name must be lowercase"; the collection takes Foo as a host
    ],
)
def test_transports_skopeo_normalizes_names_as_documented(upstream, tmp_path, name, normalized):
    archive = tmp_path / "n.tar"
    proc = run_skopeo("copy", "oci:%s:1.0.0" % upstream["layout"], "docker-archive:%s:%s" % (archive, name))
    if normalized is None:
        assert proc.returncode != 0 and "must be lowercase" in proc.stderr
        assert str(parse_reference(name)) == "docker://" + name
        return
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == [normalized]
    assert str(parse_reference(name)) == "docker://" + normalized
