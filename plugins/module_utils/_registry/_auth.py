# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry credentials and authentication challenges.

Credentials are found as podman and skopeo find them (containers-auth.json(5)):
explicit options, then auth files, then Docker's config, with credential helpers.
Challenges (``WWW-Authenticate``) are answered with Basic credentials or a Bearer
token fetched from the realm and cached per scope until it expires. One Authenticator
serves every thread of a process, so what a request sent is tracked per request.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from .._commands import run_command
from .._errors import AuthenticationFailed, ConnectionFailure, OCIError, PermissionDenied
from .._options import CommandRunner, ConnectionOptions
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


def _report(sink: SecretSink | None, *secrets: str | None) -> None:
    """Hand each secret read from a file, a helper or a token server to ``sink`` (the module's no_log values)."""
    if sink is None:
        return
    for secret in secrets:
        if secret:
            sink(secret)


def _decode_auth(entry: dict[str, Any], source: str, sink: SecretSink | None = None) -> Credentials | None:
    token = entry.get("identitytoken")
    encoded = entry.get("auth")
    _report(sink, token if isinstance(token, str) else None, encoded if isinstance(encoded, str) else None)
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
    _report(sink, password)
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
    _report(sink, secret)
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


def _scope_key(scopes: list[str]) -> str:
    return " ".join(sorted(scopes))


@dataclass
class _Token:
    value: str
    expires: float


@dataclass
class AuthAttempt:
    """One request's authentication: what its last send carried, so a 401 is judged for this request alone.

    Shared state ("a challenge was seen", "a token is cached") says nothing about what a request that
    started earlier in another thread sent; only this record does.
    """

    repository: str | None
    scopes: list[str]
    sent: str | None = None  # None (nothing), "basic", "bearer" or "registry_token"
    token: str | None = None  # the Bearer token sent
    refreshed: bool = False  # credentials were refused once and tried again
    probing: bool = False  # this request is finding out what the registry asks for; others wait for it


class Authenticator:
    """Answers one registry's challenges for every thread of a process; caches credentials and Bearer tokens.

    The first request goes out alone: others wait until its answer tells whether and how the registry
    wants credentials, so one challenge is answered once. A token per scope is fetched by one thread
    while the others wait for it. A request whose credentials were refused is retried once with a fresh
    challenge (and a fresh token) before the refusal is final.
    """

    def __init__(self, registry: str, http: Any, options: ConnectionOptions, env: dict[str, str] | None = None):
        self.registry = registry
        self.http = http
        self.options = options
        self._env = env
        self._lock = threading.Lock()
        self._credentials: dict[str | None, Credentials | None] = {}
        self._helper_answers: dict[tuple[str, str], Credentials | None] = {}
        # One lock per credential lookup, helper call and token scope: the work is done once, the others wait.
        self._once_locks: dict[tuple, threading.Lock] = {}
        self._challenge: Challenge | None = None
        self._probe_started = False
        self._probe_done = threading.Event()
        self._tokens: dict[str, _Token] = {}

    def _once(self, kind: str, item: Any, cache: dict, compute: Callable[[], Any]) -> Any:
        """``cache[item]``, computed by one thread while any other thread asking for it waits."""
        with self._lock:
            if item in cache:
                return cache[item]
            lock = self._once_locks.setdefault((kind, item), threading.Lock())
        with lock:
            with self._lock:
                if item in cache:
                    return cache[item]
            value = compute()
            with self._lock:
                cache[item] = value
            return value

    # --- credentials -------------------------------------------------------------------------
    def credentials(self, repository: str | None) -> Credentials | None:
        """The credentials for ``repository``, looked up once however many threads ask."""
        return self._once(
            "credentials",
            repository,
            self._credentials,
            lambda: find_credentials(self.registry, repository, self.options, self._env, self._run_helper),
        )

    def _run_helper(self, helper: str, server: str, source: str) -> Credentials | None:
        # Every repository of a registry gets the same answer from a helper: ask it once.
        return self._once(
            "helper",
            (helper, server),
            self._helper_answers,
            lambda: run_credential_helper(helper, server, source, self.options.secret_sink, self.options.runner),
        )

    def looked_in(self) -> str:
        return ", ".join(auth_file_candidates(self.options, self._env))

    # --- one request -------------------------------------------------------------------------
    def attempt(self, repository: str | None, scopes: list[str]) -> AuthAttempt:
        return AuthAttempt(repository, list(scopes))

    def authorize(self, attempt: AuthAttempt) -> dict[str, str]:
        """Authorization headers for the next send of ``attempt``, as the registry asked; records what they carry."""
        creds = self.credentials(attempt.repository)
        attempt.sent, attempt.token = None, None
        if creds is not None and creds.registry_token:
            attempt.sent = "registry_token"
            return {"Authorization": "Bearer " + creds.registry_token}
        challenge = self._known_challenge(attempt)
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            if creds is None or not creds.has_basic:
                return {}
            attempt.sent = "basic"
            return {"Authorization": creds.basic_header()}
        attempt.sent = "bearer"
        attempt.token = self._token(attempt.repository, attempt.scopes, challenge)
        return {"Authorization": "Bearer " + attempt.token}

    def _known_challenge(self, attempt: AuthAttempt) -> Challenge | None:
        """The registry's challenge; None while unknown. Only the first request goes out without knowing."""
        with self._lock:
            if self._challenge is not None or self._probe_done.is_set():
                return self._challenge
            if not self._probe_started:
                self._probe_started = True
                attempt.probing = True
                return None
        # Bounded: if the first request hangs, the others go out without credentials and answer their own 401.
        self._probe_done.wait(max(float(self.options.timeout), 1.0))
        with self._lock:
            return self._challenge

    def settle(self, attempt: AuthAttempt) -> None:
        """The first request has its answer (or failed): let the waiting requests go."""
        if attempt.probing:
            attempt.probing = False
            self._probe_done.set()

    def answer(self, response: Any, attempt: AuthAttempt) -> bool:
        """Take a 401 for ``attempt``: remember the challenge and say whether to send again (``attempt`` says with what)."""
        challenges = parse_www_authenticate(response.headers.get("WWW-Authenticate"))
        supported = [c for c in challenges if c.scheme in ("bearer", "basic")]
        if not supported or attempt.sent == "registry_token":
            return False
        challenge = supported[0]
        with self._lock:
            self._challenge = challenge
        if challenge.scheme == "basic":
            creds = self.credentials(attempt.repository)
            if creds is None or not creds.has_basic:
                return False
            return attempt.sent != "basic" or self._once_more(attempt)
        asked = challenge.params.get("scope")
        if challenge.params.get("error") == "insufficient_scope" and asked:
            wider = sorted(set(attempt.scopes) | set(asked.split(" ")))
            if wider != sorted(attempt.scopes):
                attempt.scopes = wider
                return True
        return attempt.sent != "bearer" or self._once_more(attempt)

    def _once_more(self, attempt: AuthAttempt) -> bool:
        """Credentials this request sent were refused: try once more with a fresh token, then it is a rejection."""
        if attempt.refreshed:
            return False
        attempt.refreshed = True
        if attempt.token is not None:
            key = _scope_key(attempt.scopes)
            with self._lock:
                # Another thread may have replaced the token already: drop only the one that was refused.
                cached = self._tokens.get(key)
                if cached is not None and cached.value == attempt.token:
                    del self._tokens[key]
        return True

    # --- tokens ------------------------------------------------------------------------------
    def _token(self, repository: str | None, scopes: list[str], challenge: Challenge) -> str:
        """A valid token for ``scopes``: cached, or fetched by one thread while the others wait."""
        key = _scope_key(scopes)
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires > time.time():
                return cached.value
            lock = self._once_locks.setdefault(("token", key), threading.Lock())
        with lock:
            with self._lock:
                cached = self._tokens.get(key)
                if cached is not None and cached.expires > time.time():
                    return cached.value
            return self._fetch_token(repository, scopes, challenge)

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
        if not isinstance(body, dict):
            raise AuthenticationFailed("token server %s for registry %s did not answer with a JSON object" % (realm, self.registry), self.registry)
        value = body.get("token") or body.get("access_token")
        _report(self.options.secret_sink, *(v for v in (body.get("token"), body.get("access_token"), body.get("refresh_token")) if isinstance(v, str)))
        if not value or not isinstance(value, str):
            raise AuthenticationFailed("token server %s for registry %s returned no token" % (realm, self.registry), self.registry)
        try:
            lifetime = int(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        lifetime = max(lifetime - TOKEN_EXPIRY_MARGIN, 1) if lifetime > TOKEN_EXPIRY_MARGIN else lifetime
        with self._lock:
            self._tokens[_scope_key(scopes)] = _Token(value, time.time() + lifetime)
        return value

    # --- errors ------------------------------------------------------------------------------
    def rejected(self, repository: str | None, what: str | None = None) -> Exception:
        """The error for a final 401: rejected credentials, or none found (naming where we looked)."""
        target = what or repository or "the registry"
        creds = self.credentials(repository)
        if creds is None:
            return AuthenticationFailed(
                "registry %s requires authentication for %s and no credentials were found: set %s, %s or %s (looked in: %s)"
                % (self.registry, target, self._spell("username/password"), self._spell("registry_token"), self._spell("auth_file"), self.looked_in()),
                self.registry,
            )
        return AuthenticationFailed(
            "registry %s rejected the credentials for %s (from %s): check %s or %s"
            % (self.registry, target, self._spell(creds.source), self._spell("username/password"), self._spell("auth_file")),
            self.registry,
        )

    def _spell(self, names: str) -> str:
        """Option names as the user writes them for this side (``username/password`` -> ``dest_username/dest_password``)."""
        if names not in ("username/password", "registry_token", "auth_file"):
            return names  # a file or a helper, named as it is
        return "/".join(self.options.option(name) for name in names.split("/"))

    def denied(self, repository: str | None, what: str | None = None, detail: str = "") -> Exception:
        target = what or repository or "the registry"
        return PermissionDenied(
            "registry %s denied access to %s%s: the account lacks permission for this operation" % (self.registry, target, detail), self.registry
        )
