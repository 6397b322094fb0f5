"""registry_login's logic: where the file goes, what changes in it, and the check against real registries."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from ansible_collections.oci.images.plugins.module_utils._errors import AuthenticationFailed, InvalidReference, LocalFormatError
from ansible_collections.oci.images.plugins.module_utils._login import (
    default_auth_file,
    ensure_login,
    ensure_logout,
    registry_key,
)
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._credentials import find_credentials

pytestmark = pytest.mark.timeout(120)


def _auth(user: str, password: str) -> str:
    return base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def _write(path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def _read(path) -> dict:
    return json.loads(path.read_text())


# --- where the file is ------------------------------------------------------------------------


def test_default_auth_file_prefers_registry_auth_file(tmp_path):
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "mine.json"), "XDG_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path / "home")}
    assert default_auth_file(env) == str(tmp_path / "mine.json")


def test_default_auth_file_is_in_xdg_runtime_dir_when_it_exists(tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path / "home")}
    assert default_auth_file(env) == str(tmp_path / "containers" / "auth.json")


def test_default_auth_file_falls_back_to_config_home_when_runtime_dir_is_missing(tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "gone"), "HOME": str(tmp_path / "home")}
    assert default_auth_file(env) == str(tmp_path / "home" / ".config" / "containers" / "auth.json")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    assert default_auth_file(env) == str(tmp_path / "cfg" / "containers" / "auth.json")


def test_default_auth_file_as_root_without_runtime_dir_is_podmans(tmp_path):
    env = {"HOME": str(tmp_path / "home"), "OCI_IMAGES_TEST_RUN_DIR": str(tmp_path / "run")}
    assert default_auth_file(env, uid=0) == str(tmp_path / "run" / "containers" / "0" / "auth.json")
    assert default_auth_file({"HOME": str(tmp_path / "home")}, uid=0) == "/run/containers/0/auth.json"
    # Another user without a runtime directory: the config home's file, which every reader reads next.
    assert default_auth_file(env, uid=1000) == str(tmp_path / "home" / ".config" / "containers" / "auth.json")


def test_login_without_auth_file_writes_where_the_collection_reads(tmp_path):
    env = {"HOME": str(tmp_path / "home"), "OCI_IMAGES_TEST_RUN_DIR": str(tmp_path / "run")}
    result = ensure_login("registry.example.com", "robot", "pw", verify=False, env=env)
    if os.getuid() == 0:
        assert result.auth_file == str(tmp_path / "run" / "containers" / "0" / "auth.json")
    else:
        assert result.auth_file == str(tmp_path / "home" / ".config" / "containers" / "auth.json")
    creds = find_credentials("registry.example.com", "team/app", ConnectionOptions(), env=env)
    assert (creds.username, creds.password) == ("robot", "pw")


# --- registry keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, key",
    [
        ("registry.example.com", "registry.example.com"),
        ("https://registry.example.com/", "registry.example.com"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry.example.com/team", "registry.example.com/team"),
        ("[::1]:5000", "[::1]:5000"),
    ],
)
def test_registry_key_is_what_podman_login_writes(given, key):
    assert registry_key(given) == key


@pytest.mark.parametrize("given", ["", "https://", "host name", "user@host", "registry.example.com/Team", "-bad.example.com"])
def test_registry_key_rejects_what_is_not_a_registry(given):
    with pytest.raises(InvalidReference):
        registry_key(given)


# --- the file ---------------------------------------------------------------------------------


def test_login_writes_auth_entry_with_private_modes(tmp_path):
    path = tmp_path / "new" / "auth.json"
    result = ensure_login("registry.example.com:5000", "robot", "s3cret", auth_file=str(path), verify=False)
    assert result.changed and result.registry == "registry.example.com:5000" and result.auth_file == str(path)
    assert _read(path) == {"auths": {"registry.example.com:5000": {"auth": _auth("robot", "s3cret")}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["auth.json"]


def test_login_keeps_other_entries_and_unknown_keys(tmp_path):
    path = tmp_path / "auth.json"
    other = {
        "auths": {"other.example.com": {"auth": _auth("a", "b"), "email": "a@example.com"}},
        "credHelpers": {"ecr.example.com": "ecr-login"},
        "credsStore": "pass",
        "experimental": "enabled",
    }
    _write(path, other)
    result = ensure_login("registry.example.com", "robot", "pw", auth_file=str(path), verify=False)
    assert result.changed
    expected = json.loads(json.dumps(other))
    expected["auths"]["registry.example.com"] = {"auth": _auth("robot", "pw")}
    assert _read(path) == expected
    assert result.diff == {"before": {"registries": ["other.example.com"]}, "after": {"registries": ["other.example.com", "registry.example.com"]}}


def test_same_login_again_changes_nothing_and_does_not_rewrite(tmp_path):
    path = tmp_path / "auth.json"
    ensure_login("registry.example.com", "robot", "pw", auth_file=str(path), verify=False)
    before = path.stat()
    result = ensure_login("registry.example.com", "robot", "pw", auth_file=str(path), verify=False)
    after = path.stat()
    assert not result.changed
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_new_password_replaces_the_entry(tmp_path):
    path = tmp_path / "auth.json"
    _write(path, {"auths": {"registry.example.com": {"auth": _auth("robot", "old"), "identitytoken": "refresh-me"}}})
    assert ensure_login("registry.example.com", "robot", "new", auth_file=str(path), verify=False).changed
    # The identity token would win over the new password for every reader, so it goes.
    assert _read(path)["auths"] == {"registry.example.com": {"auth": _auth("robot", "new")}}


def test_login_updates_an_entry_under_docker_hub_legacy_key_in_place(tmp_path):
    path = tmp_path / "config.json"
    _write(path, {"auths": {"https://index.docker.io/v1/": {"auth": _auth("robot", "old")}}})
    result = ensure_login("docker.io", "robot", "new", auth_file=str(path), verify=False)
    assert result.changed and result.registry == "docker.io"
    assert _read(path)["auths"] == {"https://index.docker.io/v1/": {"auth": _auth("robot", "new")}}


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "auth.json"
    result = ensure_login("registry.example.com", "robot", "pw", auth_file=str(path), verify=False, check_mode=True)
    assert result.changed and result.after == ["registry.example.com"]
    assert not path.exists() and os.listdir(tmp_path) == []
    _write(path, {"auths": {"registry.example.com": {"auth": _auth("robot", "pw")}}})
    assert ensure_logout("registry.example.com", auth_file=str(path), check_mode=True).changed
    assert "registry.example.com" in _read(path)["auths"]


def test_logout_removes_every_spelling_of_the_registry_and_keeps_others(tmp_path):
    path = tmp_path / "auth.json"
    _write(
        path,
        {
            "auths": {"docker.io": {"auth": _auth("a", "b")}, "https://index.docker.io/v1/": {"auth": _auth("a", "c")}, "quay.io": {"auth": _auth("q", "r")}},
            "credsStore": "pass",
        },
    )
    result = ensure_logout("docker.io", auth_file=str(path))
    assert result.changed and result.after == ["quay.io"]
    assert _read(path) == {"auths": {"quay.io": {"auth": _auth("q", "r")}}, "credsStore": "pass"}
    mtime = path.stat().st_mtime_ns
    assert not ensure_logout("docker.io", auth_file=str(path)).changed
    assert path.stat().st_mtime_ns == mtime


def test_logout_from_missing_file_changes_nothing(tmp_path):
    result = ensure_logout("registry.example.com", auth_file=str(tmp_path / "none.json"))
    assert not result.changed and not (tmp_path / "none.json").exists()


def test_invalid_auth_file_is_left_alone(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text("{not json")
    with pytest.raises(LocalFormatError, match="not valid JSON"):
        ensure_login("registry.example.com", "robot", "pw", auth_file=str(path), verify=False)
    assert path.read_text() == "{not json"


def test_empty_auth_file_counts_as_no_logins(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text("")
    assert ensure_login("registry.example.com", "robot", "pw", auth_file=str(path), verify=False).changed
    assert list(_read(path)["auths"]) == ["registry.example.com"]


def test_symlinked_auth_file_is_written_through_the_link(tmp_path):
    target = tmp_path / "real.json"
    _write(target, {"auths": {}})
    link = tmp_path / "auth.json"
    link.symlink_to(target)
    result = ensure_login("registry.example.com", "robot", "pw", auth_file=str(link), verify=False)
    assert link.is_symlink() and result.auth_file == str(target)
    assert "registry.example.com" in _read(target)["auths"]


def test_credential_helper_for_the_registry_is_warned_about(tmp_path):
    path = tmp_path / "auth.json"
    _write(path, {"credHelpers": {"registry.example.com": "secretservice"}})
    result = ensure_login("registry.example.com", "robot", "pw", auth_file=str(path), verify=False)
    assert result.warnings and "credHelpers" in result.warnings[0]


def test_username_with_colon_is_refused(tmp_path):
    with pytest.raises(AuthenticationFailed):
        ensure_login("registry.example.com", "ro:bot", "pw", auth_file=str(tmp_path / "a.json"), verify=False)


# --- verification against real registries -----------------------------------------------------


def _tls(reg) -> ConnectionOptions:
    return ConnectionOptions(ca_cert=reg.ca_cert, retries=0, timeout=10)


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry"])
def test_verified_login_with_right_password_writes(kind, request, tmp_path):
    reg = request.getfixturevalue(kind)
    path = tmp_path / "auth.json"
    result = ensure_login(reg.host, reg.username, reg.password, auth_file=str(path), options=_tls(reg))
    assert result.changed
    assert _read(path)["auths"][reg.host] == {"auth": _auth(reg.username, reg.password)}


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry"])
def test_verified_login_with_wrong_password_fails_and_writes_nothing(kind, request, tmp_path):
    reg = request.getfixturevalue(kind)
    path = tmp_path / "auth.json"
    _write(path, {"auths": {reg.host: {"auth": _auth(reg.username, reg.password)}}})
    before = path.read_bytes()
    with pytest.raises(AuthenticationFailed) as err:
        ensure_login(reg.host, reg.username, "Wr0ng-Passw0rd", auth_file=str(path), options=_tls(reg))
    assert reg.host in err.value.msg
    assert "Wr0ng-Passw0rd" not in err.value.msg and _auth(reg.username, "Wr0ng-Passw0rd") not in err.value.msg
    assert path.read_bytes() == before


def test_check_mode_still_verifies(basic_registry, tmp_path):
    with pytest.raises(AuthenticationFailed):
        ensure_login(basic_registry.host, basic_registry.username, "nope", auth_file=str(tmp_path / "a.json"), options=_tls(basic_registry), check_mode=True)
