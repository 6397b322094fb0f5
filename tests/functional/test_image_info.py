"""image_info through Ansible, against the real registry, with skopeo as the oracle."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import socket
import tarfile

import pytest
from ansible_run import run_module
from images import build_image, build_index

pytestmark = pytest.mark.timeout(600)


def _our_layers(image: dict) -> list[dict]:
    return [{"digest": layer["digest"], "size": layer["size"], "media_type": layer["media_type"]} for layer in image["layers"]]


def _manifest_layers(manifest: dict) -> list[dict]:
    return [{"digest": layer["digest"], "size": layer["size"], "media_type": layer["mediaType"]} for layer in manifest["layers"]]


def assert_agrees_with_skopeo(image: dict, skopeo, ref: str, *global_args: str) -> None:
    """The facts skopeo inspect prints, compared one by one; sizes and media types from the manifest skopeo reads."""
    tls = ["--tls-verify=false"] if ref.startswith("docker://") else []
    oracle = json.loads(skopeo.skopeo(*global_args, "inspect", *tls, ref))
    assert image["digest"] == oracle["Digest"]
    assert [layer["digest"] for layer in image["layers"]] == oracle["Layers"]
    assert image["created"] == oracle["Created"]
    assert image["architecture"] == oracle["Architecture"]
    assert image["os"] == oracle["Os"]
    assert (image["labels"] or None) == (oracle.get("Labels") or None)
    assert (image["env"] or None) == (oracle.get("Env") or None)
    top = json.loads(skopeo.inspect_raw(ref))
    if "manifests" in top:
        chosen = image["manifest_digest"]
        assert chosen in [m["digest"] for m in top["manifests"]]
        manifest_ref = ref.rsplit(":", 1)[0] + "@" + chosen if ref.startswith("docker://") else None
        manifest = json.loads(skopeo.inspect_raw(manifest_ref)) if manifest_ref else None
    else:
        manifest = top
    if manifest is not None:
        assert _our_layers(image) == _manifest_layers(manifest)
        assert image["config_digest"] == manifest["config"]["digest"]
    config = json.loads(skopeo.skopeo(*global_args, "inspect", "--config", *tls, ref))
    assert image["created"] == config.get("created")


@pytest.fixture
def labelled_layout(tmp_path):
    layout = tmp_path / "src"
    info = build_image(
        str(layout),
        ref="v1",
        layer_sizes=(3000, 5000),
        seed=11,
        labels={"org.opencontainers.image.version": "1.0", "team": "platform"},
        env=["PATH=/usr/bin:/bin", "APP_MODE=test"],
        created="2024-05-06T07:08:09Z",
    )
    return layout, info


def test_info_matches_skopeo_inspect_on_oci_image_in_registry(registry, labelled_layout, skopeo):
    layout, info = labelled_layout
    ref = "docker://%s/info/oci:1.0" % registry.host
    skopeo.copy("oci:%s:v1" % layout, ref)
    run = run_module("image_info", {"image": ref, "validate_certs": False})
    assert not run.failed, run.output
    assert run.result["exists"] is True
    assert run.changed is False
    image = run.result["image"]
    assert_agrees_with_skopeo(image, skopeo, ref)
    assert image["digest"] == info["manifest_digest"]
    assert image["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    assert image["name"] == "%s/info/oci" % registry.host
    assert image["config_digest"] == info["config_digest"]
    assert image["size"] == info["config_size"] + sum(info["layer_sizes"])
    assert image["platforms"] is None


def test_info_matches_skopeo_inspect_on_docker_v2s2_image(registry, labelled_layout, skopeo):
    layout, _unused = labelled_layout
    ref = "docker://%s/info/v2s2:1.0" % registry.host
    skopeo.copy("oci:%s:v1" % layout, ref, "--format", "v2s2")
    run = run_module("image_info", {"image": ref, "validate_certs": False})
    assert not run.failed, run.output
    image = run.result["image"]
    assert image["media_type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert image["config_media_type"] == "application/vnd.docker.container.image.v1+json"
    assert_agrees_with_skopeo(image, skopeo, ref)


@pytest.mark.parametrize(
    "platform,override",
    [
        ("linux/amd64", ["--override-arch", "amd64"]),
        ("linux/arm64/v8", ["--override-arch", "arm64", "--override-variant", "v8"]),
    ],
)
def test_info_on_index_describes_each_platform_like_skopeo(registry, tmp_path, skopeo, platform, override):
    layout = tmp_path / "multi"
    info = build_index(str(layout), ref="multi", platforms=["linux/amd64", "linux/arm64/v8"])
    ref = "docker://%s/info/multi:1" % registry.host
    skopeo.copy("oci:%s:multi" % layout, ref, "--multi-arch", "all")
    run = run_module("image_info", {"image": ref, "validate_certs": False, "platform": platform})
    assert not run.failed, run.output
    image = run.result["image"]
    assert_agrees_with_skopeo(image, skopeo, ref, *override)
    assert image["digest"] == info["index_digest"]
    assert image["media_type"] == "application/vnd.oci.image.index.v1+json"
    wanted = dict(zip(("os", "architecture", "variant"), platform.split("/")))
    assert image["architecture"] == wanted["architecture"]
    platforms = {(p["os"], p["architecture"], p["variant"]): p["digest"] for p in image["platforms"]}
    assert set(platforms) == {("linux", "amd64", None), ("linux", "arm64", "v8")}
    assert image["manifest_digest"] == platforms[(wanted["os"], wanted["architecture"], wanted.get("variant"))]


def test_info_on_index_names_available_platforms_when_platform_missing(registry, tmp_path, skopeo):
    layout = tmp_path / "multi"
    build_index(str(layout), ref="multi", platforms=["linux/amd64", "linux/arm64/v8"])
    ref = "docker://%s/info/multi-missing:1" % registry.host
    skopeo.copy("oci:%s:multi" % layout, ref, "--multi-arch", "all")
    run = run_module("image_info", {"image": ref, "validate_certs": False, "platform": "linux/s390x"})
    assert run.failed
    assert "linux/s390x" in run.result["msg"]
    assert "linux/arm64" in run.result["msg"]
    assert "Traceback" not in run.output


@pytest.mark.parametrize("transport", ["dir", "oci", "oci-archive", "docker-archive"])
def test_info_reads_local_formats_written_by_skopeo(tmp_path, labelled_layout, skopeo, transport):
    layout, _unused = labelled_layout
    target = tmp_path / ("out." + transport)
    ref = "%s:%s" % (transport, target)
    if transport == "docker-archive":
        ref += ":example.com/app:1.0"
    elif transport in ("oci", "oci-archive"):
        ref += ":app"
    skopeo.copy("oci:%s:v1" % layout, ref)
    run = run_module("image_info", {"image": ref})
    assert not run.failed, run.output
    image = run.result["image"]
    assert_agrees_with_skopeo(image, skopeo, ref)
    if transport == "docker-archive":
        assert image["name"] == "example.com/app"


def test_info_lists_tags_like_skopeo(registry, labelled_layout, skopeo):
    layout, _unused = labelled_layout
    repo = "docker://%s/info/tagged" % registry.host
    for tag in ("1.0", "1.1", "latest", "2.0-rc1"):
        skopeo.copy("oci:%s:v1" % layout, "%s:%s" % (repo, tag))
    run = run_module("image_info", {"image": repo + ":1.0", "validate_certs": False, "list_tags": True})
    assert not run.failed, run.output
    assert sorted(run.result["image"]["tags"]) == sorted(skopeo.inspect(repo + ":1.0")["RepoTags"])
    assert sorted(run.result["image"]["tags"]) == ["1.0", "1.1", "2.0-rc1", "latest"]


def test_info_lists_tags_of_repository_without_latest_like_skopeo_list_tags(registry, labelled_layout, skopeo):
    layout, _unused = labelled_layout
    repo = "docker://%s/info/nolatest" % registry.host
    for tag in ("1.0", "2.0-rc1", "build-7"):
        skopeo.copy("oci:%s:v1" % layout, "%s:%s" % (repo, tag))
    run = run_module("image_info", {"image": repo, "validate_certs": False, "list_tags": True})
    assert not run.failed, run.output
    assert run.result["exists"] is True
    oracle = skopeo.list_tags(repo)
    assert sorted(run.result["image"]["tags"]) == sorted(oracle["Tags"]) == ["1.0", "2.0-rc1", "build-7"]
    assert run.result["image"]["name"] == oracle["Repository"] == "%s/info/nolatest" % registry.host
    assert run.result["image"]["reference"] == repo
    assert "digest" not in run.result["image"]  # a repository: no image is described, not even latest

    both = run_module("image_info", {"image": repo, "validate_certs": False, "list_tags": True, "footprint": True})
    assert not both.failed, both.output
    assert both.result["image"] == run.result["image"]
    assert sorted(both.result["footprint"]["tags"]) == ["1.0", "2.0-rc1", "build-7"]


def test_info_lists_refs_of_layout_holding_several_images(tmp_path):
    layout = str(tmp_path / "several")
    for n, ref in enumerate(("app-1.0", "app-1.1", "worker")):
        build_image(layout, ref=ref, layer_sizes=(1000,), seed=300 + n)
    run = run_module("image_info", {"image": "oci:%s" % layout, "list_tags": True})
    assert not run.failed, run.output
    assert run.result["exists"] is True
    with open("%s/index.json" % layout) as f:
        refs = [m["annotations"]["org.opencontainers.image.ref.name"] for m in json.load(f)["manifests"]]
    assert run.result["image"]["tags"] == refs == ["app-1.0", "app-1.1", "worker"]
    assert run.result["image"]["reference"] == "oci:%s" % layout


@pytest.mark.parametrize("kind", ["repository", "layout"])
def test_info_lists_tags_of_missing_repository_as_not_existing(registry, tmp_path, kind):
    image = "docker://%s/info/never-pushed" % registry.host if kind == "repository" else "oci:%s" % (tmp_path / "no-layout")
    run = run_module("image_info", {"image": image, "validate_certs": False, "list_tags": True})
    assert not run.failed, run.output
    assert run.result["exists"] is False
    assert run.result["image"] == {}


def test_info_raw_returns_manifest_and_config(registry, labelled_layout, skopeo):
    layout, _unused = labelled_layout
    ref = "docker://%s/info/raw:1" % registry.host
    skopeo.copy("oci:%s:v1" % layout, ref)
    run = run_module("image_info", {"image": ref, "validate_certs": False, "raw": True})
    assert not run.failed, run.output
    image = run.result["image"]
    assert image["manifest"] == json.loads(skopeo.inspect_raw(ref))
    assert image["config"] == json.loads(skopeo.skopeo("inspect", "--config", "--tls-verify=false", ref))


@pytest.mark.parametrize("missing", ["tag", "repository"])
def test_info_reports_missing_image_as_not_existing(registry, labelled_layout, skopeo, missing):
    layout, _unused = labelled_layout
    skopeo.copy("oci:%s:v1" % layout, "docker://%s/info/present:1" % registry.host)
    ref = "docker://%s/info/present:nope" % registry.host if missing == "tag" else "docker://%s/info/absent:1" % registry.host
    run = run_module("image_info", {"image": ref, "validate_certs": False})
    assert not run.failed, run.output
    assert run.result["exists"] is False
    assert run.result["image"] == {}


def test_info_runs_in_check_mode(registry, labelled_layout, skopeo):
    layout, info = labelled_layout
    ref = "docker://%s/info/check:1" % registry.host
    skopeo.copy("oci:%s:v1" % layout, ref)
    run = run_module("image_info", {"image": ref, "validate_certs": False}, check=True)
    assert not run.failed, run.output
    assert run.result["image"]["digest"] == info["manifest_digest"]


def test_info_with_basic_auth_and_test_ca(basic_registry, labelled_layout, skopeo):
    layout, info = labelled_layout
    ref = "docker://%s/info/private:1" % basic_registry.host
    skopeo.copy("oci:%s:v1" % layout, ref, "--dest-creds", "%s:%s" % (basic_registry.username, basic_registry.password))
    run = run_module(
        "image_info",
        {"image": ref, "username": basic_registry.username, "password": basic_registry.password, "ca_cert": basic_registry.ca_cert},
    )
    assert not run.failed, run.output
    assert run.result["image"]["digest"] == info["manifest_digest"]


def test_info_finds_credentials_in_podman_auth_file(basic_registry, labelled_layout, skopeo, tmp_path):
    layout, info = labelled_layout
    ref = "docker://%s/info/authfile:1" % basic_registry.host
    creds = "%s:%s" % (basic_registry.username, basic_registry.password)
    skopeo.copy("oci:%s:v1" % layout, ref, "--dest-creds", creds)
    runtime = tmp_path / "runtime"
    (runtime / "containers").mkdir(parents=True)
    auth = {"auths": {basic_registry.host: {"auth": base64.b64encode(creds.encode()).decode()}}}
    (runtime / "containers" / "auth.json").write_text(json.dumps(auth))
    env = {"XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path / "home"), "REGISTRY_AUTH_FILE": ""}
    run = run_module("image_info", {"image": ref, "ca_cert": basic_registry.ca_cert}, env=env)
    assert not run.failed, run.output
    assert run.result["image"]["digest"] == info["manifest_digest"]


def test_info_wrong_password_fails_without_showing_it(basic_registry, labelled_layout, skopeo):
    layout, _unused = labelled_layout
    ref = "docker://%s/info/secret:1" % basic_registry.host
    skopeo.copy("oci:%s:v1" % layout, ref, "--dest-creds", "%s:%s" % (basic_registry.username, basic_registry.password))
    wrong = "Wr0ng-Pa55word-zz9"
    run = run_module("image_info", {"image": ref, "username": basic_registry.username, "password": wrong, "ca_cert": basic_registry.ca_cert}, verbosity=4)
    assert run.failed
    assert "credentials" in run.result["msg"] or "unauthorized" in run.result["msg"].lower()
    assert "Traceback" not in run.output
    leaked = [wrong, base64.b64encode(("%s:%s" % (basic_registry.username, wrong)).encode()).decode()]
    for secret in leaked:
        assert secret not in run.output


def test_info_with_token_auth(token_registry, labelled_layout, skopeo):
    layout, info = labelled_layout
    ref = "docker://%s/info/token:1" % token_registry.host
    creds = "%s:%s" % (token_registry.username, token_registry.password)
    skopeo.copy("oci:%s:v1" % layout, ref, "--dest-creds", creds)
    run = run_module(
        "image_info",
        {"image": ref, "username": token_registry.username, "password": token_registry.password, "ca_cert": token_registry.ca_cert, "list_tags": True},
    )
    assert not run.failed, run.output
    assert run.result["image"]["digest"] == info["manifest_digest"]
    assert run.result["image"]["tags"] == ["1"]


def test_info_unknown_ca_names_the_options(basic_registry):
    run = run_module("image_info", {"image": "docker://%s/info/x:1" % basic_registry.host, "retries": 0})
    assert run.failed
    assert "ca_cert" in run.result["msg"] and "validate_certs" in run.result["msg"]
    assert "Traceback" not in run.output


@pytest.mark.parametrize(
    "image,expected",
    [
        ("docker://Registry.example.com/UPPER/app:1", "lowercase"),
        ("docker://example.com/app:1@sha256:" + "a" * 64, "tag and a digest"),
        ("docker://example.com/app@sha256:abc", "sha256"),
        ("ftp://example.com/app", "unknown transport"),
        ("oci:", "empty path"),
    ],
)
def test_info_malformed_reference_fails_clearly(image, expected):
    run = run_module("image_info", {"image": image})
    assert run.failed
    assert expected in run.result["msg"]
    assert "Traceback" not in run.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_info_registry_down_fails_after_retries():
    port = _free_port()
    run = run_module("image_info", {"image": "docker://127.0.0.1:%d/app:1" % port, "validate_certs": False, "retries": 1, "timeout": 5})
    assert run.failed
    assert "127.0.0.1:%d" % port in run.result["msg"]
    assert "Traceback" not in run.output


def _helm_chart_layout(path) -> str:
    """An OCI layout holding a Helm-chart-like artifact (not an image)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        (blobs / hexd).write_bytes(data)
        return "sha256:" + hexd

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        body = b"apiVersion: v2\nname: demo\nversion: 0.1.0\n"
        member = tarfile.TarInfo("demo/Chart.yaml")
        member.size = len(body)
        tar.addfile(member, io.BytesIO(body))
    chart = gzip.compress(buf.getvalue(), mtime=0)
    config = json.dumps({"name": "demo", "version": "0.1.0", "apiVersion": "v2"}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": put(chart), "size": len(chart)}],
        "annotations": {"org.opencontainers.image.created": "2024-02-03T04:05:06Z"},
    }
    raw = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": manifest["mediaType"], "digest": put(raw), "size": len(raw), "annotations": {"org.opencontainers.image.ref.name": "0.1.0"}}
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_info_describes_artifact_that_is_not_an_image(tmp_path):
    digest = _helm_chart_layout(tmp_path / "chart")
    run = run_module("image_info", {"image": "oci:%s:0.1.0" % (tmp_path / "chart"), "raw": True})
    assert not run.failed, run.output
    image = run.result["image"]
    assert image["digest"] == digest
    assert image["config_media_type"] == "application/vnd.cncf.helm.config.v1+json"
    assert image["created"] == "2024-02-03T04:05:06Z"
    assert image["layers"][0]["media_type"] == "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    assert image["architecture"] is None
    assert image["config"]["name"] == "demo"
