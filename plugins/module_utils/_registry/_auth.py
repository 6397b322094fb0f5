# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry credentials and authentication challenges.

Credentials are found as podman and skopeo find them (containers-auth.json(5)):
explicit options, then auth files, then Docker's config, with credential helpers.
Challenges (``WWW-Authenticate``) are answered with Basic credentials or a Bearer
token fetched from the realm and cached per scope until it expires.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .._commands import run_command
from .._errors import AuthenticationFailed, ConnectionFailure, OCIError, PermissionDenied
from .._options import ConnectionOptions
from .._reference import DEFAULT_REGISTRY

DOCKER_HUB = DEFAULT_REGISTRY
DOCKER_HUB_API = "registry-1.docker.io"
# The key Docker uses for Docker Hub in config.json and for credential helpers.
DOCKER_HUB_LEGACY_KEY = "https://index.docker.io/v1/"
TOKEN_CLIENT_ID = "oci.images"
# Tokens without expires_in live 60 seconds (distribution token spec).
DEFAULT_TOKEN_LIFETIME = 60
# Refresh a token this long before it expires so it does not lapse mid-request.
TOKEN_EXPIRY_MARGIN = 10


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


def auth_file_candidates(options: ConnectionOptions, env: dict[str, str] | None = None) -> list[str]:
    """The auth files consulted, in order (containers-auth.json(5))."""
    env = os.environ if env is None else env
    home = env.get("HOME") or os.path.expanduser("~")
    paths = []
    user_file = options.auth_file or env.get("REGISTRY_AUTH_FILE")
    if user_file:
        paths.append(os.path.expanduser(user_file))
    elif env.get("XDG_RUNTIME_DIR"):
        paths.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    if not user_file:
        config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        paths.append(os.path.join(config_home, "containers", "auth.json"))
    docker_config = env.get("DOCKER_CONFIG")
    paths.append(os.path.join(docker_config, "config.json") if docker_config else os.path.join(home, ".docker", "config.json"))
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


def _decode_auth(entry: dict[str, Any], source: str) -> Credentials | None:
    token = entry.get("identitytoken")
    encoded = entry.get("auth")
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
    if token:
        return Credentials(username=username, identity_token=token, source=source)
    if username:
        return Credentials(username=username, password=password, source=source)
    return None


def run_credential_helper(helper: str, server: str, source: str) -> Credentials | None:
    """Ask ``docker-credential-HELPER get`` for ``server`` (sent on stdin, never argv); None if it has none."""
    program = "docker-credential-%s" % helper
    path = shutil.which(program)
    if path is None:
        raise AuthenticationFailed("credential helper %s named in %s is not on PATH: install it or remove it from the file" % (program, source))
    try:
        returncode, stdout, stderr = run_command([path, "get"], server.encode("utf-8"))
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
    origin = "credential helper %s" % program
    if username == "<token>":
        return Credentials(identity_token=secret, source=origin)
    return Credentials(username=username, password=secret, source=origin)


def _helper_server(registry: str) -> str:
    return DOCKER_HUB_LEGACY_KEY if registry == DOCKER_HUB else registry


def _credentials_from_file(path: str, registry: str, repository: str | None) -> Credentials | None:
    try:
        with open(path, "rb") as f:
            content = json.loads(f.read().decode("utf-8") or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuthenticationFailed("cannot read auth file %s: %s" % (path, exc.__class__.__name__)) from None
    if not isinstance(content, dict):
        raise AuthenticationFailed("auth file %s is not a JSON object" % path)
    helpers = content.get("credHelpers") or {}
    for key, helper in helpers.items():
        if normalize_auth_key(key) == registry:
            return run_credential_helper(helper, _helper_server(registry), path)
    auths = {normalize_auth_key(k): v for k, v in (content.get("auths") or {}).items() if isinstance(v, dict)}
    for key in _lookup_keys(registry, repository):
        if key in auths:
            creds = _decode_auth(auths[key], "%s (%s)" % (path, key))
            if creds is not None:
                return creds
    if content.get("credsStore"):
        return run_credential_helper(content["credsStore"], _helper_server(registry), path)
    return None


def find_credentials(registry: str, repository: str | None, options: ConnectionOptions, env: dict[str, str] | None = None) -> Credentials | None:
    """Credentials for ``registry``/``repository``: options first, then the auth files in order."""
    if options.registry_token:
        return Credentials(registry_token=options.registry_token, source="registry_token")
    if options.username:
        return Credentials(username=options.username, password=options.password, source="username/password")
    registry = normalize_auth_key(registry)
    for path in auth_file_candidates(options, env):
        creds = _credentials_from_file(path, registry, repository)
        if creds is not None:
            return creds
    return None


# --- challenges -------------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


@dataclass
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_www_authenticate(header: str | None) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` into challenges (quoted values may hold commas)."""
    challenges: list[Challenge] = []
    text = (header or "").strip()
    while text:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)", text)
        if not m:
            break
        current = Challenge(m.group(1).lower())
        challenges.append(current)
        text = text[m.end() :]
        while text:
            p = _CHALLENGE_PARAM.match(text)
            if not p:
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            current.params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            text = text[p.end() :]
        text = text.lstrip(", ")
    return challenges


def repository_scope(repository: str, actions: str) -> str:
    return "repository:%s:%s" % (repository, actions)


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Answers a registry's challenges for one registry host and caches Bearer tokens per scope."""

    def __init__(self, registry: str, http: Any, options: ConnectionOptions, env: dict[str, str] | None = None):
        self.registry = registry
        self.http = http
        self.options = options
        self._env = env
        self._credentials: dict[str | None, Credentials | None] = {}
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    # --- credentials -------------------------------------------------------------------------
    def credentials(self, repository: str | None) -> Credentials | None:
        if repository not in self._credentials:
            self._credentials[repository] = find_credentials(self.registry, repository, self.options, self._env)
        return self._credentials[repository]

    def looked_in(self) -> str:
        return ", ".join(auth_file_candidates(self.options, self._env))

    # --- headers -----------------------------------------------------------------------------
    def headers(self, repository: str | None, scopes: list[str]) -> dict[str, str]:
        """Authorization headers for a request, using what the registry asked for last time."""
        creds = self.credentials(repository)
        if creds is not None and creds.registry_token:
            return {"Authorization": "Bearer " + creds.registry_token}
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            return {"Authorization": creds.basic_header()} if creds is not None and creds.has_basic else {}
        if challenge.scheme == "bearer":
            token = self._cached_token(scopes)
            if token is None:
                token = self._fetch_token(repository, scopes, challenge)
            return {"Authorization": "Bearer " + token}
        return {}

    def _cached_token(self, scopes: list[str]) -> str | None:
        key = " ".join(sorted(scopes))
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.expires > time.time():
                return token.value
        return None

    def answer(self, response: Any, repository: str | None, scopes: list[str]) -> list[str] | None:
        """Take a 401: remember the challenge, fetch what it needs. Returns the scopes to retry with, or None to give up."""
        challenges = parse_www_authenticate(response.headers.get("WWW-Authenticate"))
        supported = [c for c in challenges if c.scheme in ("bearer", "basic")]
        if not supported:
            return None
        challenge = supported[0]
        creds = self.credentials(repository)
        if creds is not None and creds.registry_token:
            return None
        if challenge.scheme == "basic":
            had = self._challenge is not None and self._challenge.scheme == "basic"
            self._challenge = challenge
            if creds is None or not creds.has_basic or had:
                return None
            return scopes
        previous = self._challenge
        self._challenge = challenge
        asked = challenge.params.get("scope")
        if challenge.params.get("error") == "insufficient_scope" and asked:
            new_scopes = sorted(set(scopes) | set(asked.split(" ")))
            if new_scopes == sorted(scopes) and previous is not None and previous.scheme == "bearer":
                return None
            self._forget(scopes)
            self._fetch_token(repository, new_scopes, challenge)
            return new_scopes
        if previous is not None and previous.scheme == "bearer" and self._cached_token(scopes) is not None:
            # We already sent a fresh token for this scope and it was refused.
            self._forget(scopes)
            return None
        self._fetch_token(repository, scopes, challenge)
        return scopes

    def _forget(self, scopes: list[str]) -> None:
        with self._lock:
            self._tokens.pop(" ".join(sorted(scopes)), None)

    def _fetch_token(self, repository: str | None, scopes: list[str], challenge: Challenge) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthenticationFailed("registry %s sent a Bearer challenge without a realm" % self.registry, self.registry)
        service = challenge.params.get("service")
        creds = self.credentials(repository)
        headers = {}
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": TOKEN_CLIENT_ID}
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            response = self.http.request("POST", realm, idempotent=True, data=form)
        else:
            params: list[tuple[str, str]] = []
            if service:
                params.append(("service", service))
            params.extend(("scope", s) for s in scopes)
            if creds is not None and creds.has_basic:
                headers["Authorization"] = creds.basic_header()
                params.append(("account", creds.username or ""))
            response = self.http.request("GET", realm, params=params, headers=headers)
        with response:
            if response.status_code in (401, 403):
                raise self.rejected(repository)
            if response.status_code != 200:
                raise ConnectionFailure("token server %s for registry %s answered HTTP %d" % (realm, self.registry, response.status_code), self.registry)
            try:
                body = response.json()
            except ValueError:
                raise AuthenticationFailed("token server %s for registry %s did not answer with JSON" % (realm, self.registry), self.registry) from None
        value = body.get("token") or body.get("access_token")
        if not value:
            raise AuthenticationFailed("token server %s for registry %s returned no token" % (realm, self.registry), self.registry)
        try:
            lifetime = int(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        lifetime = max(lifetime - TOKEN_EXPIRY_MARGIN, 1) if lifetime > TOKEN_EXPIRY_MARGIN else lifetime
        with self._lock:
            self._tokens[" ".join(sorted(scopes))] = _Token(value, time.time() + lifetime)
        return value

    # --- errors ------------------------------------------------------------------------------
    def rejected(self, repository: str | None, what: str | None = None) -> Exception:
        """The error for a final 401: rejected credentials, or none found (naming where we looked)."""
        target = what or repository or "the registry"
        creds = self.credentials(repository)
        if creds is None:
            return AuthenticationFailed(
                "registry %s requires authentication for %s and no credentials were found: set username/password, "
                "registry_token or auth_file (looked in: %s)" % (self.registry, target, self.looked_in()),
                self.registry,
            )
        return AuthenticationFailed(
            "registry %s rejected the credentials for %s (from %s): check username/password or auth_file" % (self.registry, target, creds.source),
            self.registry,
        )

    def denied(self, repository: str | None, what: str | None = None, detail: str = "") -> Exception:
        target = what or repository or "the registry"
        return PermissionDenied(
            "registry %s denied access to %s%s: the account lacks permission for this operation" % (self.registry, target, detail), self.registry
        )
