"""registry_login through Ansible against real registries (Basic and token auth); skopeo reads what it writes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import textwrap

import pytest
from ansible_run import isolated_auth_env, run_module, run_playbook
from images import build_image

pytestmark = pytest.mark.timeout(600)

WRONG_PASSWORD = "Wr0ng-Passw0rd-9f3a"
REPOSITORY = "login/app"


def _auth(user: str, password: str) -> str:
    return base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


@pytest.fixture
def isolated(tmp_path) -> dict:
    """An environment where only the files a test writes hold credentials (no user's auth.json or docker config)."""
    return isolated_auth_env(tmp_path)


def _cert_dir(reg, directory) -> str:
    """A certs dir for skopeo holding only the test CA (the registry's pki dir also has keys skopeo would take for a client cert)."""
    os.makedirs(directory, exist_ok=True)
    shutil.copy(reg.ca_cert, os.path.join(directory, "ca.crt"))
    return str(directory)


@pytest.fixture(scope="module")
def pushed(basic_registry, token_registry, tmp_path_factory, skopeo) -> dict:
    """A small image pushed with skopeo (with credentials) to both authenticated registries; its digest per registry kind."""
    layout = str(tmp_path_factory.mktemp("login-image"))
    image = build_image(layout, ref="v1", layer_sizes=(2048,), seed=41)
    for reg in (basic_registry, token_registry):
        certs = _cert_dir(reg, tmp_path_factory.mktemp("certs"))
        skopeo.skopeo(
            "copy",
            "--quiet",
            "--dest-cert-dir",
            certs,
            "--dest-creds",
            "%s:%s" % (reg.username, reg.password),
            "oci:%s:v1" % layout,
            "docker://%s/%s:1" % (reg.host, REPOSITORY),
        )
    return image


@pytest.fixture(params=["basic_registry", "token_registry"])
def reg(request):
    return request.getfixturevalue(request.param)


def login(reg, auth_file, password=None, **extra):
    args = {"registry": reg.host, "username": reg.username, "password": password or reg.password, "ca_cert": reg.ca_cert, "retries": 0}
    if auth_file is not None:
        args["auth_file"] = str(auth_file)
    env = extra.pop("env", None)
    return run_module("registry_login", dict(args, **extra.pop("args", {})), env=env, **extra)


def test_login_writes_auth_file_that_skopeo_and_image_info_use(reg, pushed, tmp_path, isolated, skopeo):
    path = tmp_path / "auth" / "auth.json"
    ref = "docker://%s/%s:1" % (reg.host, REPOSITORY)
    before = run_module("image_info", {"image": ref, "auth_file": str(path), "ca_cert": reg.ca_cert}, env=isolated)
    assert before.failed and "no credentials were found" in before.result["msg"]

    run = login(reg, path, env=isolated)
    assert not run.failed, run.output
    assert run.changed
    assert run.result["registry"] == reg.host and run.result["auth_file"] == str(path)
    assert json.loads(path.read_text()) == {"auths": {reg.host: {"auth": _auth(reg.username, reg.password)}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    inspected = skopeo.inspect(ref, "--authfile", str(path), "--cert-dir", _cert_dir(reg, tmp_path / "certs"), tls_verify=True)
    assert inspected["Digest"] == pushed["manifest_digest"]

    info = run_module("image_info", {"image": ref, "auth_file": str(path), "ca_cert": reg.ca_cert}, env=isolated)
    assert not info.failed, info.output
    assert info.result["exists"] and info.result["image"]["digest"] == pushed["manifest_digest"]


def test_second_login_changes_nothing_and_leaves_file_untouched(basic_registry, tmp_path, isolated):
    path = tmp_path / "auth.json"
    assert login(basic_registry, path, env=isolated).changed
    first = path.stat()
    again = login(basic_registry, path, env=isolated)
    assert not again.failed, again.output
    assert again.changed is False
    second = path.stat()
    assert (second.st_ino, second.st_mtime_ns, second.st_size) == (first.st_ino, first.st_mtime_ns, first.st_size)


def test_login_keeps_other_entries_and_keys(basic_registry, tmp_path, isolated):
    path = tmp_path / "auth.json"
    existing = {
        "auths": {"quay.io": {"auth": _auth("q", "r")}, "registry.example.com/team": {"auth": _auth("t", "u")}},
        "credHelpers": {"123456789.dkr.ecr.example.com": "ecr-login"},
        "HttpHeaders": {"User-Agent": "kept"},
    }
    path.write_text(json.dumps(existing))
    run = login(basic_registry, path, env=isolated)
    assert not run.failed, run.output
    written = json.loads(path.read_text())
    assert written["auths"].pop(basic_registry.host) == {"auth": _auth(basic_registry.username, basic_registry.password)}
    assert written == existing


def test_wrong_password_fails_writes_nothing_and_shows_no_secret(reg, tmp_path, isolated):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {"quay.io": {"auth": _auth("q", "r")}}}))
    before = path.read_bytes()
    run = login(reg, path, password=WRONG_PASSWORD, verbosity=4, diff=True, env=isolated)
    assert run.failed
    assert reg.host in run.result["msg"] and "rejected" in run.result["msg"]
    # Ansible masks no_log values it sees, so also look for the encoded form and for the mask itself in the message.
    assert WRONG_PASSWORD not in run.output
    assert _auth(reg.username, WRONG_PASSWORD) not in run.output
    assert "********" not in run.result["msg"]
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["auth.json", "home"]


def test_check_mode_verifies_writes_nothing_and_diff_shows_only_keys(basic_registry, tmp_path, isolated):
    path = tmp_path / "auth.json"
    # Ad-hoc output drops the diff below -vvv; -vvvv also prints the module arguments.
    run = login(basic_registry, path, check=True, diff=True, verbosity=4, env=isolated)
    assert not run.failed, run.output
    assert run.changed
    assert not path.exists()
    assert run.result["diff"] == {"before": {"registries": []}, "after": {"registries": [basic_registry.host]}}
    assert _auth(basic_registry.username, basic_registry.password) not in run.output
    assert basic_registry.password not in run.output

    refused = login(basic_registry, path, password=WRONG_PASSWORD, check=True, env=isolated)
    assert refused.failed and "rejected" in refused.result["msg"]


def test_absent_removes_entry_and_keeps_others(basic_registry, tmp_path, isolated):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {"quay.io": {"auth": _auth("q", "r")}}}))
    assert login(basic_registry, path, env=isolated).changed
    logout = {"registry": "https://%s/" % basic_registry.host, "auth_file": str(path), "state": "absent"}
    gone = run_module("registry_login", logout, diff=True, verbosity=3, env=isolated)
    assert not gone.failed, gone.output
    assert gone.changed and gone.result["registry"] == basic_registry.host
    assert gone.result["diff"]["after"] == {"registries": ["quay.io"]}
    assert json.loads(path.read_text()) == {"auths": {"quay.io": {"auth": _auth("q", "r")}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = run_module("registry_login", {"registry": basic_registry.host, "auth_file": str(path), "state": "absent"}, env=isolated)
    assert not again.failed and again.changed is False


def test_default_auth_file_is_the_one_skopeo_reads(token_registry, pushed, tmp_path, isolated):
    runtime_dir = tmp_path / "run"
    runtime_dir.mkdir(mode=0o700)
    env = dict(isolated, XDG_RUNTIME_DIR=str(runtime_dir))
    run = login(token_registry, None, env=env)
    assert not run.failed, run.output
    assert run.result["auth_file"] == str(runtime_dir / "containers" / "auth.json")
    # skopeo with no --authfile, in the same environment, finds the login.
    proc = subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "inspect",
            "--cert-dir",
            _cert_dir(token_registry, tmp_path / "certs"),
            "docker://%s/%s:1" % (token_registry.host, REPOSITORY),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Digest"] == pushed["manifest_digest"]


def test_module_defaults_group_reaches_registry_login_and_image_info(basic_registry, pushed, tmp_path, isolated):
    path = tmp_path / "auth.json"
    playbook = tmp_path / "login.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - hosts: localhost
              gather_facts: false
              module_defaults:
                group/oci.images.images:
                  auth_file: {auth_file}
                  ca_cert: {ca_cert}
              tasks:
                - oci.images.registry_login:
                    registry: {host}
                    username: {user}
                    password: "{{{{ registry_password }}}}"
                - oci.images.image_info:
                    image: docker://{host}/{repo}:1
                  register: info
                - ansible.builtin.assert:
                    that: info.image.digest == "{digest}"
            """
        ).format(
            auth_file=path,
            ca_cert=basic_registry.ca_cert,
            host=basic_registry.host,
            user=basic_registry.username,
            repo=REPOSITORY,
            digest=pushed["manifest_digest"],
        )
    )
    proc = run_playbook(str(playbook), extra_vars={"registry_password": basic_registry.password}, env=isolated)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert basic_registry.host in json.loads(path.read_text())["auths"]
