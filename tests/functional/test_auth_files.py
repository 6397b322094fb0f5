"""Where credentials are read and written: podman's files, containers-auth.json(5)'s order, one auth file per side of a copy.

``OCI_IMAGES_TEST_RUN_DIR`` stands in for ``/run``, so podman's root login file
(``/run/containers/0/auth.json``) is a file in the test's directory and the real /run is never touched.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from ansible_run import isolated_auth_env, run_module
from images import build_image

pytestmark = pytest.mark.timeout(600)

REPOSITORY = "authfiles/app"


def b64(user: str, password: str) -> str:
    return base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


@pytest.fixture
def isolated(tmp_path) -> dict:
    return isolated_auth_env(tmp_path)


@pytest.fixture(scope="module")
def pushed(basic_registry, token_registry, tmp_path_factory, skopeo) -> dict:
    layout = str(tmp_path_factory.mktemp("authfiles-image"))
    image = build_image(layout, ref="v1", layer_sizes=(2048,), seed=77)
    for reg in (basic_registry, token_registry):
        skopeo.copy("oci:%s:v1" % layout, "docker://%s/%s:1" % (reg.host, REPOSITORY), "--dest-creds", "%s:%s" % (reg.username, reg.password))
    return image


def root_login_file(tmp_path):
    return tmp_path / "run" / "containers" / str(os.getuid()) / "auth.json"


def test_credentials_podman_logged_in_with_as_root_are_found(basic_registry, pushed, podman_store, tmp_path, isolated):
    path = root_login_file(tmp_path)
    user, password = basic_registry.username, basic_registry.password
    podman_store.podman("login", "--authfile", str(path), "--tls-verify=false", "--username", user, "--password", password, basic_registry.host)
    assert basic_registry.host in json.loads(path.read_text())["auths"]
    run = run_module("image_info", {"image": "docker://%s/%s:1" % (basic_registry.host, REPOSITORY), "ca_cert": basic_registry.ca_cert}, env=isolated)
    assert not run.failed, run.output
    assert run.result["image"]["digest"] == pushed["manifest_digest"]


@pytest.mark.skipif(os.getuid() != 0, reason="podman writes /run/containers/0/auth.json only as root")
def test_login_as_root_without_runtime_dir_writes_podmans_file(basic_registry, pushed, podman_store, tmp_path, isolated):
    args = {"registry": basic_registry.host, "username": basic_registry.username, "password": basic_registry.password, "ca_cert": basic_registry.ca_cert}
    run = run_module("registry_login", args, env=isolated)
    assert not run.failed, run.output
    path = root_login_file(tmp_path)
    assert run.result["auth_file"] == str(path)
    assert json.loads(path.read_text()) == {"auths": {basic_registry.host: {"auth": b64(basic_registry.username, basic_registry.password)}}}
    # podman reads it as its own login.
    proc = podman_store.podman("login", "--get-login", "--authfile", str(path), basic_registry.host)
    assert proc.stdout.strip() == basic_registry.username


def test_each_side_of_a_copy_reads_its_own_auth_file(basic_registry, token_registry, pushed, tmp_path, isolated):
    src_file = tmp_path / "src-auth.json"
    src_file.write_text(json.dumps({"auths": {basic_registry.host: {"auth": b64(basic_registry.username, basic_registry.password)}}}))
    dest_file = tmp_path / "dest-auth.json"
    dest_file.write_text(json.dumps({"auths": {token_registry.host: {"auth": b64(token_registry.username, token_registry.password)}}}))
    # auth_file is the fallback for a side without its own file: here it holds wrong passwords for both registries.
    wrong = tmp_path / "wrong-auth.json"
    wrong.write_text(json.dumps({"auths": {reg.host: {"auth": b64(reg.username, "not-the-password")} for reg in (basic_registry, token_registry)}}))
    args = {
        "src": "docker://%s/%s:1" % (basic_registry.host, REPOSITORY),
        "dest": "docker://%s/authfiles/copied:1" % token_registry.host,
        "src_ca_cert": basic_registry.ca_cert,
        "dest_ca_cert": token_registry.ca_cert,
        "src_auth_file": str(src_file),
        "dest_auth_file": str(dest_file),
        "auth_file": str(wrong),
    }
    run = run_module("image_copy", args, env=isolated)
    assert not run.failed, run.output
    assert run.result["digest"] == pushed["manifest_digest"]

    # Without the side's own file, auth_file applies to that side.
    refused = run_module("image_copy", dict(args, dest_auth_file=None, dest="docker://%s/authfiles/refused:1" % token_registry.host), env=isolated)
    assert refused.failed
    assert "rejected the credentials" in refused.result["msg"] and str(wrong) in refused.result["msg"]
