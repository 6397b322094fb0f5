# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry credentials, found as podman and skopeo find them (containers-auth.json(5)).

Explicit options first, then the auth files in order (the primary file, the per-user file,
Docker's config.json, the legacy ~/.dockercfg), with credential helpers (``credHelpers``,
``credsStore``). Every secret read here is reported to the options' secret sink the moment it
is read.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from .._commands import run_command
from .._errors import AuthenticationFailed, OCIError
from .._options import CommandRunner, ConnectionOptions
from .._reference import DEFAULT_REGISTRY

DOCKER_HUB = DEFAULT_REGISTRY
DOCKER_HUB_API = "registry-1.docker.io"
# The key Docker uses for Docker Hub in config.json and for credential helpers.
DOCKER_HUB_LEGACY_KEY = "https://index.docker.io/v1/"


def api_host(registry: str) -> str:
    """The host to send API requests to (Docker Hub's API lives on registry-1.docker.io)."""
    return DOCKER_HUB_API if registry in (DOCKER_HUB, "index.docker.io") else registry


def normalize_auth_key(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; strip scheme, API path and trailing slashes."""
    key = key.strip()
    key = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", key)
    key = re.sub(r"/v[12]/?$", "", key).rstrip("/")
    host, sep, rest = key.partition("/")
    if host in ("index.docker.io", DOCKER_HUB_API):
        host = DOCKER_HUB
    return host + sep + rest


@dataclass
class Credentials:
    """What to authenticate with, and where it came from (for messages). Secrets never shown."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None
    source: str = "options"

    def __repr__(self) -> str:
        return "Credentials(username=%r, source=%r, password=%s, identity_token=%s, registry_token=%s)" % (
            self.username,
            self.source,
            "<hidden>" if self.password else None,
            "<hidden>" if self.identity_token else None,
            "<hidden>" if self.registry_token else None,
        )

    @property
    def has_basic(self) -> bool:
        return bool(self.username) and self.password is not None

    def basic_header(self) -> str:
        raw = ("%s:%s" % (self.username, self.password or "")).encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")


# Tests set this to a temporary directory that stands in for /run, so they never touch the real one.
RUN_DIR_ENV = "OCI_IMAGES_TEST_RUN_DIR"
# Docker's file from before config.json: registry keys at the top level, no "auths" around them.
LEGACY_DOCKER_FILE = ".dockercfg"

SecretSink = Callable[[str], None]
HelperRunner = Callable[[str, str, str], "Credentials | None"]


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def runtime_auth_file(env: Mapping[str, str] | None = None, uid: int | None = None) -> str:
    """podman's primary (read/write) file: ``${XDG_RUNTIME_DIR}/containers/auth.json``, else ``/run/containers/UID/auth.json``."""
    env = os.environ if env is None else env
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json")
    return os.path.join(env.get(RUN_DIR_ENV) or "/run", "containers", str(os.getuid() if uid is None else uid), "auth.json")


def auth_file_candidates(options: ConnectionOptions, env: Mapping[str, str] | None = None, uid: int | None = None) -> list[str]:
    """The auth files consulted, in order (containers-auth.json(5)).

    The primary file (``auth_file``, else ``REGISTRY_AUTH_FILE``, else podman's runtime file), then
    ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``, Docker's ``config.json`` and the legacy ``~/.dockercfg``.
    """
    env = os.environ if env is None else env
    home = _home(env)
    user_file = options.auth_file or env.get("REGISTRY_AUTH_FILE")
    paths = [os.path.expanduser(user_file) if user_file else runtime_auth_file(env, uid)]
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    paths.append(os.path.join(config_home, "containers", "auth.json"))
    docker_config = env.get("DOCKER_CONFIG")
    paths.append(os.path.join(docker_config, "config.json") if docker_config else os.path.join(home, ".docker", "config.json"))
    paths.append(os.path.join(home, LEGACY_DOCKER_FILE))
    return paths


def _lookup_keys(registry: str, repository: str | None) -> list[str]:
    """``host/ns/repo``, ``host/ns``, ``host``: the most specific key first."""
    keys = []
    if repository:
        parts = repository.split("/")
        for end in range(len(parts), 0, -1):
            keys.append("%s/%s" % (registry, "/".join(parts[:end])))
    keys.append(registry)
    return keys


def report_secrets(sink: SecretSink | None, *secrets: str | None) -> None:
    """Hand each secret read from a file, a helper or a token server to ``sink`` (the module's no_log values)."""
    if sink is None:
        return
    for secret in secrets:
        if secret:
            sink(secret)


def _decode_auth(entry: dict[str, Any], source: str, sink: SecretSink | None = None) -> Credentials | None:
    token = entry.get("identitytoken")
    encoded = entry.get("auth")
    report_secrets(sink, token if isinstance(token, str) else None, encoded if isinstance(encoded, str) else None)
    username = password = None
    if encoded:
        try:
            decoded = base64.b64decode(encoded).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise AuthenticationFailed("the auth entry in %s is not valid base64 of user:password" % source, None) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthenticationFailed("the auth entry in %s does not have the form user:password" % source, None)
    elif entry.get("username"):
        username, password = entry.get("username"), entry.get("password")
    report_secrets(sink, password)
    if token:
        return Credentials(username=username, identity_token=token, source=source)
    if username:
        return Credentials(username=username, password=password, source=source)
    return None


def run_credential_helper(helper: str, server: str, source: str, sink: SecretSink | None = None, runner: CommandRunner | None = None) -> Credentials | None:
    """Ask ``docker-credential-HELPER get`` for ``server`` (sent on stdin, never argv); None if it has none."""
    program = "docker-credential-%s" % helper
    path = shutil.which(program)
    if path is None:
        raise AuthenticationFailed("credential helper %s named in %s is not on PATH: install it or remove it from the file" % (program, source))
    try:
        returncode, stdout, stderr = run_command(runner, [path, "get"], server.encode("utf-8"))
    except OCIError as exc:
        raise AuthenticationFailed("credential helper %s failed for %s: %s" % (program, server, exc.msg)) from None
    if returncode != 0:
        # Helpers say "credentials not found in native keychain" when they have nothing: not an error.
        if b"not found" in (stdout + stderr).lower():
            return None
        raise AuthenticationFailed("credential helper %s failed for %s (exit status %d)" % (program, server, returncode))
    try:
        answer = json.loads(stdout.decode("utf-8"))
    except ValueError:
        raise AuthenticationFailed("credential helper %s returned something that is not JSON for %s" % (program, server)) from None
    username, secret = answer.get("Username"), answer.get("Secret")
    if not secret:
        return None
    report_secrets(sink, secret)
    origin = "credential helper %s" % program
    if username == "<token>":
        return Credentials(identity_token=secret, source=origin)
    return Credentials(username=username, password=secret, source=origin)


def _helper_server(registry: str) -> str:
    return DOCKER_HUB_LEGACY_KEY if registry == DOCKER_HUB else registry


def _credentials_from_file(path: str, registry: str, repository: str | None, sink: SecretSink | None, run_helper: HelperRunner) -> Credentials | None:
    try:
        with open(path, "rb") as f:
            content = json.loads(f.read().decode("utf-8") or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuthenticationFailed("cannot read auth file %s: %s" % (path, exc.__class__.__name__)) from None
    if not isinstance(content, dict):
        raise AuthenticationFailed("auth file %s is not a JSON object" % path)
    legacy = os.path.basename(path) == LEGACY_DOCKER_FILE
    helpers = {} if legacy else content.get("credHelpers") or {}
    for key, helper in helpers.items():
        if normalize_auth_key(key) == registry:
            return run_helper(helper, _helper_server(registry), path)
    entries = content if legacy else content.get("auths") or {}
    auths = {normalize_auth_key(k): v for k, v in entries.items() if isinstance(v, dict)}
    for key in _lookup_keys(registry, repository):
        if key in auths:
            creds = _decode_auth(auths[key], "%s (%s)" % (path, key), sink)
            if creds is not None:
                return creds
    if not legacy and content.get("credsStore"):
        return run_helper(content["credsStore"], _helper_server(registry), path)
    return None


def find_credentials(
    registry: str,
    repository: str | None,
    options: ConnectionOptions,
    env: Mapping[str, str] | None = None,
    run_helper: HelperRunner | None = None,
) -> Credentials | None:
    """Credentials for ``registry``/``repository``: options first, then the auth files in order."""
    if options.registry_token:
        return Credentials(registry_token=options.registry_token, source="registry_token")
    if options.username:
        return Credentials(username=options.username, password=options.password, source="username/password")
    registry = normalize_auth_key(registry)
    if run_helper is None:

        def run_helper(helper: str, server: str, source: str) -> Credentials | None:
            return run_credential_helper(helper, server, source, options.secret_sink, options.runner)

    for path in auth_file_candidates(options, env):
        creds = _credentials_from_file(path, registry, repository, options.secret_sink, run_helper)
        if creds is not None:
            return creds
    return None
