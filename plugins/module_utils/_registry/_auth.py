# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Authentication challenges: answering a registry's ``WWW-Authenticate``.

Challenges are answered with Basic credentials (found by ``_credentials``) or a Bearer token
fetched from the realm and cached per scope until it expires. One Authenticator serves every
thread of a process, so what a request sent is tracked per request.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .._errors import AuthenticationFailed, ConnectionFailure, PermissionDenied
from .._options import ConnectionOptions
from ._credentials import Credentials, auth_file_candidates, find_credentials, report_secrets, run_credential_helper

TOKEN_CLIENT_ID = "oci.images"
# Tokens without expires_in live 60 seconds (distribution token spec).
DEFAULT_TOKEN_LIFETIME = 60
# Refresh a token this long before it expires so it does not lapse mid-request.
TOKEN_EXPIRY_MARGIN = 10

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
        report_secrets(self.options.secret_sink, *(v for v in (body.get("token"), body.get("access_token"), body.get("refresh_token")) if isinstance(v, str)))
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
