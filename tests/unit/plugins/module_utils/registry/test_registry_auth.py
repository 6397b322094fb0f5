"""Credentials and challenges against real registries (htpasswd Basic, token auth) and auth files."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
import requests
from collection_tree import subprocess_runner
from conftest import build_layout, make_client, skopeo_push

from ansible_collections.oci.images.plugins.module_utils._errors import AuthenticationFailed
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._auth import parse_www_authenticate
from ansible_collections.oci.images.plugins.module_utils._registry._credentials import (
    Credentials,
    auth_file_candidates,
    find_credentials,
    normalize_auth_key,
)


def _auth_entry(user: str, password: str) -> dict:
    return {"auth": base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def _write_json(path, content) -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w") as f:
        json.dump(content, f)
    return str(path)


@pytest.fixture(scope="module")
def basic_image(basic_registry, tmp_path_factory):
    image = build_layout(str(tmp_path_factory.mktemp("layout-basic")), "basic")
    skopeo_push(image, basic_registry, "auth/app:1", creds=True)
    return image


@pytest.fixture(scope="module")
def token_image(token_registry, tmp_path_factory):
    image = build_layout(str(tmp_path_factory.mktemp("layout-token")), "token")
    skopeo_push(image, token_registry, "auth/app:1", creds=True)
    skopeo_push(image, token_registry, "auth/other:1", creds=True)
    return image


# --- Basic ---------------------------------------------------------------------------------------


def test_basic_auth_with_right_password_reads_manifest(basic_registry, basic_image):
    with make_client(basic_registry, username=basic_registry.username, password=basic_registry.password) as client:
        assert client.get_manifest("auth/app", "1")[2] == basic_image.manifest_digest


def test_basic_auth_wrong_password_is_rejected_without_showing_it(basic_registry, basic_image):
    with make_client(basic_registry, username=basic_registry.username, password="Wr0ng-Passw0rd") as client, pytest.raises(AuthenticationFailed) as err:
        client.get_manifest("auth/app", "1")
    message = str(err.value)
    assert "rejected the credentials" in message and "auth/app" in message
    assert "Wr0ng-Passw0rd" not in message and "Wr0ng-Passw0rd" not in repr(err.value)
    assert base64.b64encode(b"tester:Wr0ng-Passw0rd").decode() not in message


def test_no_credentials_error_says_where_it_looked(basic_registry, basic_image, isolated_credentials):
    with make_client(basic_registry) as client, pytest.raises(AuthenticationFailed) as err:
        client.get_manifest("auth/app", "1")
    assert "no credentials were found" in str(err.value)
    assert os.path.join(str(isolated_credentials), ".docker", "config.json") in str(err.value)


def test_credentials_from_xdg_runtime_auth_json(basic_registry, basic_image, tmp_path, monkeypatch):
    runtime = tmp_path / "run"
    _write_json(runtime / "containers" / "auth.json", {"auths": {basic_registry.host: _auth_entry(basic_registry.username, basic_registry.password)}})
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with make_client(basic_registry) as client:
        assert client.get_manifest("auth/app", "1")[2] == basic_image.manifest_digest


def test_credential_helper_gets_server_on_stdin(basic_registry, basic_image, tmp_path, monkeypatch, isolated_credentials):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    helper = bin_dir / "docker-credential-test"
    helper.write_text(
        "#!/bin/sh\n"
        "server=$(cat)\n"
        'printf "%%s\\n%%s\\n" "$*" "$server" > %s\n'
        'printf \'{"ServerURL": "%%s", "Username": "%s", "Secret": "%s"}\' "$server"\n' % (log, basic_registry.username, basic_registry.password)
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    _write_json(isolated_credentials / ".docker" / "config.json", {"credHelpers": {basic_registry.host: "test"}})
    with make_client(basic_registry) as client:
        assert client.get_manifest("auth/app", "1")[2] == basic_image.manifest_digest
    argv, stdin = log.read_text().splitlines()
    assert argv == "get"
    assert stdin == basic_registry.host


# --- token ---------------------------------------------------------------------------------------


def test_token_is_cached_per_scope(token_registry, token_image):
    ts = token_registry.token_server
    scope = "repository:auth/app:pull"
    before = len(ts.token_requests(scope))
    with make_client(token_registry, username=token_registry.username, password=token_registry.password) as client:
        assert client.get_manifest("auth/app", "1")[2] == token_image.manifest_digest
        assert client.head_manifest("auth/app", "1").digest == token_image.manifest_digest
        with client.get_blob("auth/app", token_image.layer_digest, len(token_image.layer)) as blob:
            assert blob.read() == token_image.layer
        assert len(ts.token_requests(scope)) == before + 1
        other_before = len(ts.token_requests("repository:auth/other:pull"))
        client.get_manifest("auth/other", "1")
        assert len(ts.token_requests("repository:auth/other:pull")) == other_before + 1
        assert len(ts.token_requests(scope)) == before + 1
    assert ts.requests[-1].username == token_registry.username


def test_token_auth_wrong_password_is_rejected(token_registry, token_image):
    with make_client(token_registry, username=token_registry.username, password="n0t-the-one") as client, pytest.raises(AuthenticationFailed) as err:
        client.get_manifest("auth/app", "1")
    assert "rejected the credentials" in str(err.value)
    assert "n0t-the-one" not in str(err.value)


def test_anonymous_token_without_access_is_an_authentication_error(token_registry, token_image):
    with make_client(token_registry) as client, pytest.raises(AuthenticationFailed) as err:
        client.get_manifest("auth/app", "1")
    assert "no credentials were found" in str(err.value)


def test_push_scope_token_is_fetched_for_writes(token_registry, token_image):
    ts = token_registry.token_server
    with make_client(token_registry, username=token_registry.username, password=token_registry.password) as client:
        assert client.mount_blob("auth/mounted", token_image.layer_digest, "auth/app") is True
        assert client.head_blob("auth/mounted", token_image.layer_digest) == len(token_image.layer)
    mount = ts.requests[-2] if "repository:auth/mounted:pull" in ts.requests[-1].scopes else ts.requests[-1]
    assert "repository:auth/mounted:pull,push" in mount.scopes and "repository:auth/app:pull" in mount.scopes


def test_identity_token_from_auth_file_uses_refresh_grant(token_registry, token_image, isolated_credentials):
    ts = token_registry.token_server
    ts.identity_tokens["refresh-abc"] = token_registry.username
    _write_json(isolated_credentials / ".docker" / "config.json", {"auths": {token_registry.host: {"identitytoken": "refresh-abc"}}})
    with make_client(token_registry) as client:
        assert client.get_manifest("auth/app", "1")[2] == token_image.manifest_digest
    last = ts.requests[-1]
    assert (last.method, last.grant_type, last.username) == ("POST", "refresh_token", token_registry.username)


def test_registry_token_is_sent_as_bearer(token_registry, token_image):
    ts = token_registry.token_server
    token = requests.get(
        ts.realm,
        params={"service": ts.service, "scope": "repository:auth/app:pull"},
        auth=(token_registry.username, token_registry.password),
        verify=token_registry.ca_cert,
        timeout=10,
    ).json()["token"]
    count = len(ts.requests)
    with make_client(token_registry, registry_token=token) as client:
        assert client.get_manifest("auth/app", "1")[2] == token_image.manifest_digest
    assert len(ts.requests) == count


# --- discovery (files only) --------------------------------------------------------------------


def test_auth_file_order_follows_containers_auth_json(tmp_path, monkeypatch, isolated_credentials):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    home = str(isolated_credentials)
    fallbacks = [
        os.path.join(home, ".config", "containers", "auth.json"),
        os.path.join(home, ".docker", "config.json"),
        os.path.join(home, ".dockercfg"),
    ]
    assert auth_file_candidates(ConnectionOptions()) == [str(tmp_path / "run" / "containers" / "auth.json"), *fallbacks]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dock"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "env-auth.json"))
    # REGISTRY_AUTH_FILE (or auth_file) replaces the primary file; the others are still read after it.
    after_primary = [str(tmp_path / "cfg" / "containers" / "auth.json"), str(tmp_path / "dock" / "config.json"), os.path.join(home, ".dockercfg")]
    assert auth_file_candidates(ConnectionOptions()) == [str(tmp_path / "env-auth.json"), *after_primary]
    assert auth_file_candidates(ConnectionOptions(auth_file=str(tmp_path / "opt.json"))) == [str(tmp_path / "opt.json"), *after_primary]


def test_without_xdg_runtime_dir_the_primary_file_is_run_containers_uid(tmp_path):
    env = {"HOME": str(tmp_path / "home"), "OCI_IMAGES_TEST_RUN_DIR": str(tmp_path / "run")}
    assert auth_file_candidates(ConnectionOptions(), env, uid=0)[0] == str(tmp_path / "run" / "containers" / "0" / "auth.json")
    assert auth_file_candidates(ConnectionOptions(), env, uid=1000)[0] == str(tmp_path / "run" / "containers" / "1000" / "auth.json")
    assert auth_file_candidates(ConnectionOptions(), {"HOME": str(tmp_path)}, uid=0)[0] == "/run/containers/0/auth.json"


def test_credentials_podman_wrote_as_root_are_found(tmp_path):
    env = {"HOME": str(tmp_path / "home"), "OCI_IMAGES_TEST_RUN_DIR": str(tmp_path / "run")}
    _write_json(tmp_path / "run" / "containers" / str(os.getuid()) / "auth.json", {"auths": {"reg.example": _auth_entry("podman", "p")}})
    _write_json(tmp_path / "home" / ".config" / "containers" / "auth.json", {"auths": {"reg.example": _auth_entry("config", "c")}})
    creds = find_credentials("reg.example", "team/app", ConnectionOptions(), env)
    assert (creds.username, creds.password) == ("podman", "p")


def test_legacy_dockercfg_is_read_last(tmp_path):
    env = {"HOME": str(tmp_path), "OCI_IMAGES_TEST_RUN_DIR": str(tmp_path / "run")}
    # ~/.dockercfg has the registry keys at the top level, as Docker wrote it before config.json.
    _write_json(tmp_path / ".dockercfg", {"https://reg.example/v1/": _auth_entry("legacy", "l"), "other.example": _auth_entry("o", "o")})
    creds = find_credentials("reg.example", "team/app", ConnectionOptions(), env)
    assert (creds.username, creds.password) == ("legacy", "l")
    _write_json(tmp_path / ".docker" / "config.json", {"auths": {"reg.example": _auth_entry("docker", "d")}})
    assert find_credentials("reg.example", "team/app", ConnectionOptions(), env).username == "docker"


def test_auth_file_option_falls_back_to_the_other_files(tmp_path):
    env = {"HOME": str(tmp_path), "OCI_IMAGES_TEST_RUN_DIR": str(tmp_path / "run")}
    option_file = _write_json(tmp_path / "opt.json", {"auths": {"other.example": _auth_entry("o", "o")}})
    _write_json(tmp_path / ".docker" / "config.json", {"auths": {"reg.example": _auth_entry("docker", "d")}})
    assert find_credentials("reg.example", None, ConnectionOptions(auth_file=option_file), env).username == "docker"


def test_earlier_auth_file_wins(tmp_path, monkeypatch, isolated_credentials):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    _write_json(tmp_path / "run" / "containers" / "auth.json", {"auths": {"reg.example": _auth_entry("runtime", "a")}})
    _write_json(isolated_credentials / ".config" / "containers" / "auth.json", {"auths": {"reg.example": _auth_entry("config", "b")}})
    _write_json(isolated_credentials / ".docker" / "config.json", {"auths": {"reg.example": _auth_entry("docker", "c")}})
    assert find_credentials("reg.example", "team/app", ConnectionOptions()).username == "runtime"
    option_file = _write_json(tmp_path / "opt.json", {"auths": {"reg.example": _auth_entry("option", "d")}})
    assert find_credentials("reg.example", "team/app", ConnectionOptions(auth_file=option_file)).username == "option"
    explicit = find_credentials("reg.example", "team/app", ConnectionOptions(auth_file=option_file, username="explicit", password="e"))
    assert (explicit.username, explicit.source) == ("explicit", "username/password")


def test_most_specific_auth_key_wins(tmp_path):
    path = _write_json(
        tmp_path / "auth.json",
        {
            "auths": {
                "reg.example": _auth_entry("host", "1"),
                "reg.example/team": _auth_entry("team", "2"),
                "reg.example/team/app": _auth_entry("app", "3"),
            }
        },
    )
    options = ConnectionOptions(auth_file=path)
    assert find_credentials("reg.example", "team/app", options).username == "app"
    assert find_credentials("reg.example", "team/other", options).username == "team"
    assert find_credentials("reg.example", "elsewhere/app", options).username == "host"
    assert find_credentials("other.example", "team/app", options) is None


def test_docker_hub_url_key_matches_docker_io(tmp_path):
    path = _write_json(tmp_path / "config.json", {"auths": {"https://index.docker.io/v1/": _auth_entry("hubuser", "x")}})
    creds = find_credentials("docker.io", "library/alpine", ConnectionOptions(auth_file=path))
    assert creds.username == "hubuser"
    assert normalize_auth_key("https://registry.example:5000/v2/") == "registry.example:5000"


def test_credentials_repr_hides_secrets():
    creds = Credentials(username="u", password="pa55word", identity_token="idt0ken")
    assert "pa55word" not in repr(creds) and "idt0ken" not in repr(creds)
    assert "pa55word" not in repr(ConnectionOptions(username="u", password="pa55word"))


def test_www_authenticate_parsing_handles_quoted_commas():
    [challenge] = parse_www_authenticate('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
    }
    basic, bearer = parse_www_authenticate('Basic realm="x", Bearer realm="y"')
    assert (basic.scheme, basic.params, bearer.scheme, bearer.params) == ("basic", {"realm": "x"}, "bearer", {"realm": "y"})


# --- secrets read from free-form data go to the sink -------------------------------------------


def test_secret_sink_gets_the_password_and_auth_value_from_an_auth_file(tmp_path):
    seen: list[str] = []
    entry = _auth_entry("robot", "file-Pa55word")
    path = _write_json(tmp_path / "auth.json", {"auths": {"reg.example": entry}})
    creds = find_credentials("reg.example", "team/app", ConnectionOptions(auth_file=path, secret_sink=seen.append))
    assert creds.password == "file-Pa55word"
    assert "file-Pa55word" in seen and entry["auth"] in seen
    assert "robot" not in seen


def test_secret_sink_gets_the_credential_helpers_secret(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-sinktest"
    helper.write_text('#!/bin/sh\ncat >/dev/null\nprintf \'{"Username": "robot", "Secret": "helper-S3cret"}\'\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    path = _write_json(tmp_path / "config.json", {"credHelpers": {"reg.example": "sinktest"}})
    seen: list[str] = []
    creds = find_credentials("reg.example", None, ConnectionOptions(auth_file=path, secret_sink=seen.append, runner=subprocess_runner))
    assert creds.password == "helper-S3cret"
    assert seen == ["helper-S3cret"]


def issued_tokens(monkeypatch, token_server) -> list[str]:
    """Every token the token server signs from now on."""
    issued: list[str] = []
    sign = token_server.sign

    def recording(access):
        issued.append(sign(access))
        return issued[-1]

    monkeypatch.setattr(token_server, "sign", recording)
    return issued


def test_secret_sink_gets_the_identity_token_and_the_bearer_token_from_the_token_server(token_registry, token_image, tmp_path, monkeypatch):
    ts = token_registry.token_server
    ts.identity_tokens["refresh-sink-7"] = token_registry.username
    path = _write_json(tmp_path / "auth.json", {"auths": {token_registry.host: {"identitytoken": "refresh-sink-7"}}})
    issued = issued_tokens(monkeypatch, ts)
    seen: list[str] = []
    with make_client(token_registry, auth_file=path, secret_sink=seen.append) as client:
        assert client.get_manifest("auth/app", "1")[2] == token_image.manifest_digest
    assert "refresh-sink-7" in seen
    assert issued and all(token in seen for token in issued)


def test_secret_sink_gets_the_bearer_token_fetched_with_a_password(token_registry, token_image, monkeypatch):
    issued = issued_tokens(monkeypatch, token_registry.token_server)
    seen: list[str] = []
    with make_client(token_registry, username=token_registry.username, password=token_registry.password, secret_sink=seen.append) as client:
        assert client.get_manifest("auth/app", "1")[2] == token_image.manifest_digest
    assert issued and seen == issued


def test_secret_sink_is_not_part_of_the_options_identity():
    from ansible_collections.oci.images.plugins.module_utils._registry._clients import registry_client

    first = ConnectionOptions(username="u", password="p", secret_sink=[].append)
    second = ConnectionOptions(username="u", password="p", secret_sink=[].append)
    assert first == second and first.identity() == second.identity()
    assert registry_client("reg.example", first) is registry_client("reg.example", second)
    assert "secret_sink" not in repr(first)
