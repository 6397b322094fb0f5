"""No secret ever reaches Ansible's output: every module, right and wrong credentials, Basic and token auth, at -vvvv.

What is searched for: each password (right and wrong), the base64 ``user:password`` of each,
every bearer token the token server issued during the test (whole, and its signature part),
and the registry tokens given to the modules. What is searched: everything Ansible printed
(stdout and stderr) and the returned result. Also: an error body that echoes the request's
Authorization header is scrubbed, and engine commands (podman) never carry a credential.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_run import run_module
from images import build_image

pytestmark = pytest.mark.timeout(600)

WRONG_PASSWORD = "Wr0ng-S3cret-7c1d"
FAKE_TOKEN = "not-a-real-token-5b9e2f0c1a"
REPOSITORY = "secrets/app"


def b64(user: str, password: str) -> str:
    return base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class Secrets:
    """The strings that must never appear, growing as the token server issues tokens."""

    def __init__(self, registries):
        self.fixed = {WRONG_PASSWORD, FAKE_TOKEN}
        for reg in registries:
            self.fixed |= {reg.password, b64(reg.username, reg.password), b64(reg.username, WRONG_PASSWORD)}
        self.issued: list[str] = []

    def all(self) -> set[str]:
        found = set(self.fixed)
        for token in self.issued:
            found |= {token, token.rsplit(".", 1)[-1]}
        return found

    def scan(self, text: str) -> list[str]:
        return sorted(s for s in self.all() if s and s in text)


@pytest.fixture(scope="module")
def secrets(basic_registry, token_registry):
    found = Secrets([basic_registry, token_registry])
    server = token_registry.token_server
    original = server.sign

    def recording_sign(access):
        token = original(access)
        found.issued.append(token)
        return token

    server.sign = recording_sign
    yield found
    server.sign = original


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return build_image(str(tmp_path_factory.mktemp("secrets-image")), ref="1", layer_sizes=(2048,), seed=611)


def _token_for(reg, scope: str, password: str | None = None) -> str:
    """A bearer token from the registry's token server, fetched the way a CI job would."""
    import ssl

    server = reg.token_server
    request = urllib.request.Request(
        "%s?service=%s&scope=%s" % (server.realm, server.service, scope), headers={"Authorization": "Basic " + b64(reg.username, password or reg.password)}
    )
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=server.ca_cert), timeout=10) as response:
        return json.loads(response.read())["token"]


def _creds(reg, wrong: bool, prefix: str = "") -> dict:
    return {prefix + "username": reg.username, prefix + "password": WRONG_PASSWORD if wrong else reg.password, prefix + "ca_cert": reg.ca_cert}


def _runs(reg, kind: str, wrong: bool, image: dict, tmp_path) -> list:
    """Every module, with these credentials, each as it would be used; at -vvvv."""
    ref = "docker://%s/%s" % (reg.host, REPOSITORY)
    tag = "%s-%s" % (kind, "wrong" if wrong else "right")
    common = {"retries": 0}
    runs = []
    # push (image_copy with dest credentials), inspect, pull, log in, delete
    runs.append(run_module("image_copy", dict(common, src="oci:%s:1" % image["layout"], dest="%s:%s" % (ref, tag), **_creds(reg, wrong, "dest_")), verbosity=4))
    if wrong:
        # something to read and delete even with wrong credentials
        run_module("image_copy", dict(common, src="oci:%s:1" % image["layout"], dest="%s:%s" % (ref, tag), **_creds(reg, False, "dest_")))
    runs.append(run_module("image_info", dict(common, image="%s:%s" % (ref, tag), **_creds(reg, wrong)), verbosity=4))
    runs.append(run_module("image_copy", dict(common, src="%s:%s" % (ref, tag), dest="oci:%s:1" % (tmp_path / tag), **_creds(reg, wrong, "src_")), verbosity=4))
    runs.append(
        run_module(
            "registry_login",
            dict(common, registry=reg.host, auth_file=str(tmp_path / ("auth-%s.json" % tag)), **_creds(reg, wrong)),
            verbosity=4,
        )
    )
    # image_info with the auth file registry_login wrote (right credentials only wrote one)
    if not wrong:
        auth_file = str(tmp_path / ("auth-%s.json" % tag))
        runs.append(run_module("image_info", dict(common, image="%s:%s" % (ref, tag), auth_file=auth_file, ca_cert=reg.ca_cert), verbosity=4))
    runs.append(run_module("image_delete", dict(common, image="%s:%s" % (ref, tag), **_creds(reg, wrong)), verbosity=4))
    return runs


def _assert_no_secret(runs, secrets: Secrets) -> None:
    for run in runs:
        text = run.output + json.dumps(run.result)
        assert secrets.scan(text) == [], "secret in the output of %s:\n%s" % (run.args, text[-3000:])


@pytest.mark.parametrize("wrong", [False, True], ids=["right-credentials", "wrong-credentials"])
@pytest.mark.parametrize("kind", ["basic", "token"])
def test_no_module_prints_or_returns_a_secret(kind, wrong, basic_registry, token_registry, secrets, image, tmp_path):
    reg = basic_registry if kind == "basic" else token_registry
    runs = _runs(reg, kind, wrong, image, tmp_path)
    outcomes = [run.failed for run in runs]
    if wrong:
        assert all(outcomes), [run.result.get("msg") for run in runs]
        assert all("Traceback" not in run.output for run in runs)
    else:
        assert not any(outcomes), [run.result.get("msg") for run in runs]
    if kind == "token":
        assert secrets.issued, "the token server issued no token: the test would prove nothing"
    _assert_no_secret(runs, secrets)


def test_registry_token_is_never_printed(token_registry, basic_registry, secrets, image, tmp_path):
    reg = token_registry
    ref = "docker://%s/%s:regtoken" % (reg.host, REPOSITORY)
    run_module("image_copy", {"src": "oci:%s:1" % image["layout"], "dest": ref, **_creds(reg, False, "dest_")})
    token = _token_for(reg, "repository:%s:pull,push,delete" % REPOSITORY)
    secrets.issued.append(token)
    pulled = "oci:%s:1" % (tmp_path / "pulled")
    runs = [
        run_module("image_info", {"image": ref, "registry_token": token, "ca_cert": reg.ca_cert, "retries": 0}, verbosity=4),
        run_module("image_copy", {"src": ref, "dest": pulled, "src_registry_token": token, "src_ca_cert": reg.ca_cert}, verbosity=4),
        run_module("image_info", {"image": ref, "registry_token": FAKE_TOKEN, "ca_cert": reg.ca_cert, "retries": 0}, verbosity=4),
        run_module(
            "image_info",
            {"image": "docker://%s/%s:1" % (basic_registry.host, REPOSITORY), "registry_token": FAKE_TOKEN, "ca_cert": basic_registry.ca_cert, "retries": 0},
            verbosity=4,
        ),
        run_module("image_delete", {"image": ref, "registry_token": token, "ca_cert": reg.ca_cert, "retries": 0}, verbosity=4),
    ]
    assert [run.failed for run in runs] == [False, False, True, True, False], [run.result.get("msg") for run in runs]
    _assert_no_secret(runs, secrets)


class EchoingRegistry:
    """Asks for Basic credentials, then fails with an error body that quotes the Authorization header it got."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                auth = self.headers.get("Authorization")
                if not auth:
                    body, status, headers = b"", 401, {"WWW-Authenticate": 'Basic realm="echo"'}
                else:
                    message = "malformed header: Authorization: %s (password %s)" % (auth, base64.b64decode(auth.split()[-1]).decode().split(":", 1)[1])
                    body = json.dumps({"errors": [{"code": "DENIED_BAD_HEADER", "message": message}]}).encode()
                    status, headers = 400, {"Content-Type": "application/json"}
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_registry_error_that_echoes_authorization_is_scrubbed():
    echo = EchoingRegistry()
    try:
        password = "Ech0ed-Passw0rd-31"
        run = run_module(
            "image_info",
            {"image": "docker://%s/echo/app:1" % echo.host, "username": "robot", "password": password, "validate_certs": False, "retries": 0},
            verbosity=4,
        )
    finally:
        echo.stop()
    assert run.failed
    assert "DENIED_BAD_HEADER" in run.result["msg"], run.result  # the registry's own error still shows
    text = run.output + json.dumps(run.result)
    assert b64("robot", password) not in text, run.result["msg"]
    assert password not in text


def test_engine_commands_never_carry_credentials(basic_registry, image, tmp_path):
    """containers-storage: runs podman; a recording podman on PATH sees every argument it is given."""
    record = tmp_path / "podman-argv"
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "podman"
    wrapper.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> %s\nenv >> %s\ncat > /dev/null\nexit 125\n' % (record, record))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    reg = basic_registry
    ref = "docker://%s/%s:engine" % (reg.host, REPOSITORY)
    run_module("image_copy", {"src": "oci:%s:1" % image["layout"], "dest": ref, **_creds(reg, False, "dest_")})
    path = str(wrapper_dir) + os.pathsep + os.environ.get("PATH", "")
    run = run_module(
        "image_copy",
        {"src": ref, "dest": "containers-storage:localhost/secrets/app:engine", **_creds(reg, False, "src_")},
        env={"PATH": path},
        verbosity=4,
    )
    assert run.failed and "podman" in run.result["msg"], run.result
    seen = record.read_text()
    assert seen, "podman was never run: the test would prove nothing"
    assert reg.password not in seen and b64(reg.username, reg.password) not in seen
    assert reg.password not in run.output + json.dumps(run.result)
    assert shutil.which("podman", path=path) == str(wrapper)


# --- secrets inside free-form data: sync specs, sync files, role variables, helpers' answers ----------------------------


def _sync_spec(reg, password: str) -> dict:
    return {reg.host: {"images": {REPOSITORY: ["sync"]}, "credentials": {"username": reg.username, "password": password}}}


@pytest.mark.parametrize("wrong", [False, True], ids=["right-credentials", "wrong-credentials"])
@pytest.mark.parametrize("kind", ["basic", "token"])
def test_a_password_inside_a_sync_spec_or_sync_file_is_never_printed(kind, wrong, basic_registry, token_registry, registry, secrets, image, tmp_path):
    reg = basic_registry if kind == "basic" else token_registry
    run_module("image_copy", {"src": "oci:%s:1" % image["layout"], "dest": "docker://%s/%s:sync" % (reg.host, REPOSITORY), **_creds(reg, False, "dest_")})
    spec = _sync_spec(reg, WRONG_PASSWORD if wrong else reg.password)
    sync_file = tmp_path / "sync.yaml"
    sync_file.write_text(json.dumps(spec))  # JSON is YAML
    # src_ca_cert reaches the spec's registry (and its token server); the credentials come from the spec.
    common = {"dest": "%s/secret-sync-%s" % (registry.host, kind), "dest_validate_certs": False, "src_ca_cert": reg.ca_cert, "retries": 0}
    runs = [
        run_module("image_copy", dict(common, sync=spec), verbosity=4),
        run_module("image_copy", dict(common, sync_file=str(sync_file)), verbosity=4, check=True),
        run_module("image_copy", dict(common, sync_file=str(sync_file)), verbosity=4),
    ]
    assert [run.failed for run in runs] == [wrong] * 3, [run.result.get("msg") for run in runs]
    _assert_no_secret(runs, secrets)
    if not wrong:
        # The spec was really passed and used: the password is hidden, the rest of the spec is shown.
        assert reg.username in runs[0].output and "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in runs[0].output


def test_role_variables_and_a_credential_helpers_answer_are_never_printed(basic_registry, registry, secrets, image, tmp_path):
    from ansible_run import run_playbook

    reg = basic_registry
    run_module("image_copy", {"src": "oci:%s:1" % image["layout"], "dest": "docker://%s/%s:role" % (reg.host, REPOSITORY), **_creds(reg, False, "dest_")})
    spec = {reg.host: {"images": {REPOSITORY: ["role"]}}}
    role_vars = {
        "mirror_sync": spec,
        "mirror_dest": "%s/secret-role" % registry.host,
        "mirror_dest_validate_certs": False,
        "mirror_src_username": reg.username,
        "mirror_src_password": reg.password,
        "mirror_src_ca_cert": reg.ca_cert,
    }
    # In the play, as a vault would give them (Ansible itself echoes -e on its command line at -vvvv).
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "vars": role_vars, "roles": [{"role": "oci.images.mirror"}]}]))
    role_run = run_playbook(str(play), verbosity=4)
    assert role_run.returncode == 0, role_run.stdout[-3000:]
    text = role_run.stdout + role_run.stderr
    leaks = [line for line in text.splitlines() if secrets.scan(line)]
    assert leaks == []

    # A credential helper's answer: the secret comes from a program, never from the task's arguments.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-secrettest"
    helper.write_text('#!/bin/sh\ncat >/dev/null\nprintf \'{"Username": "%s", "Secret": "%s"}\'\n' % (reg.username, reg.password))
    helper.chmod(0o755)
    auth = tmp_path / "helper-auth.json"
    auth.write_text(json.dumps({"credHelpers": {reg.host: "secrettest"}}))
    env = {"PATH": "%s:%s" % (bin_dir, os.environ.get("PATH", ""))}
    args = {"image": "docker://%s/%s:role" % (reg.host, REPOSITORY), "auth_file": str(auth), "ca_cert": reg.ca_cert, "retries": 0}
    helped = run_module("image_info", args, verbosity=4, env=env)
    assert not helped.failed, helped.output
    _assert_no_secret([helped], secrets)
