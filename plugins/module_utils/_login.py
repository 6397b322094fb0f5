# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry logins kept in a containers-auth.json file, the way ``podman login`` and ``podman logout`` keep them.

Credentials are checked against the registry first; the file is then changed only when the entry
differs, written atomically with mode 0600, and every other key of the file is kept as it was.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ._errors import AuthenticationFailed, InvalidReference, LocalFormatError
from ._options import ConnectionOptions
from ._registry._credentials import normalize_auth_key, runtime_auth_file

# Fields of an auths entry that carry a credential; a new login replaces all of them.
CREDENTIAL_FIELDS = ("auth", "identitytoken", "registrytoken", "username", "password")
_HOST_PORT = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_PATH_PART = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


@dataclass
class LoginResult:
    """What a login or logout did (or would do in check mode): registry keys only, never a secret."""

    changed: bool
    registry: str
    auth_file: str
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def diff(self) -> dict[str, Any]:
        return {"before": {"registries": self.before}, "after": {"registries": self.after}}


def default_auth_file(env: dict[str, str] | None = None, uid: int | None = None) -> str:
    """The file ``podman login`` writes: REGISTRY_AUTH_FILE, else ``$XDG_RUNTIME_DIR/containers/auth.json``, else (as root) ``/run/containers/0/auth.json``."""
    env = os.environ if env is None else env
    if env.get("REGISTRY_AUTH_FILE"):
        return os.path.expanduser(env["REGISTRY_AUTH_FILE"])
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    uid = os.getuid() if uid is None else uid
    if (runtime_dir and os.path.isdir(runtime_dir)) or (not runtime_dir and uid == 0):
        return runtime_auth_file(env, uid)
    # A runtime directory that does not exist (podman refuses to log in then), or a user without one (podman
    # would make one): the config home's file is the next one podman, skopeo and this collection read.
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(config_home, "containers", "auth.json")


def registry_key(registry: str) -> str:
    """The auth.json key for ``registry`` (``host[:port]`` or ``host/namespace``), from any URL form; raises InvalidReference."""
    key = normalize_auth_key(registry or "")
    host, _slash, path = key.partition("/")
    if not host or not _HOST_PORT.match(host) or (path and not all(_PATH_PART.match(p) for p in path.split("/"))):
        raise InvalidReference(
            "registry %r is not a registry host: give host[:port] (for example registry.example.com:5000 or docker.io), "
            "optionally followed by /namespace" % registry,
            registry,
        )
    return key


def encode_auth(username: str, password: str) -> str:
    """base64 of ``user:password``, the ``auth`` field podman, skopeo and docker write."""
    return base64.b64encode(("%s:%s" % (username, password)).encode("utf-8")).decode("ascii")


def read_auth_file(path: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when the file is missing or empty (as podman treats it)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise LocalFormatError("cannot read auth file %s: %s" % (path, exc.strerror or exc.__class__.__name__), path) from None
    if not raw.strip():
        return {}
    try:
        content = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise LocalFormatError("auth file %s is not valid JSON: fix or remove it; it was left unchanged" % path, path) from None
    if not isinstance(content, dict):
        raise LocalFormatError("auth file %s does not hold a JSON object: fix or remove it; it was left unchanged" % path, path)
    if not isinstance(content.get("auths", {}), dict):
        raise LocalFormatError("auth file %s has an 'auths' that is not an object: fix or remove it; it was left unchanged" % path, path)
    return content


def write_auth_file(path: str, content: dict[str, Any]) -> None:
    """Write ``content`` to ``path`` atomically (temp file + rename), mode 0600; a missing directory is created 0700."""
    directory = os.path.dirname(path) or "."
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700)
            # makedirs' mode is masked by the umask; the directory must not be readable by others.
            os.chmod(directory, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise LocalFormatError("cannot create auth file %s: %s" % (path, exc.strerror or exc.__class__.__name__), path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            # Tab indentation, as podman writes the file.
            f.write((json.dumps(content, indent="\t") + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise LocalFormatError("cannot write auth file %s: %s" % (path, exc.strerror or exc.__class__.__name__), path) from None


def _matching_keys(auths: dict[str, Any], key: str) -> list[str]:
    """Keys of ``auths`` that mean ``key`` (``https://index.docker.io/v1/`` means ``docker.io``), exact spelling first."""
    return sorted((k for k in auths if normalize_auth_key(k) == key), key=lambda k: (k != key, k))


def _helper_warning(content: dict[str, Any], key: str, path: str) -> list[str]:
    helpers = content.get("credHelpers")
    if isinstance(helpers, dict) and any(normalize_auth_key(k) == key for k in helpers):
        return [
            "%s names a credential helper for %s in credHelpers: podman, skopeo and this collection ask that helper "
            "before reading 'auths', so the entry written here is not used while the helper is configured" % (path, key)
        ]
    return []


def verify_login(key: str, username: str, password: str, options: ConnectionOptions) -> None:
    """Log in to the registry of ``key`` with these credentials (Basic or token flow); raises AuthenticationFailed if refused."""
    from ._registry._client import RegistryClient

    host = key.partition("/")[0]
    login = ConnectionOptions(
        username=username,
        password=password,
        validate_certs=options.validate_certs,
        ca_cert=options.ca_cert,
        client_cert=options.client_cert,
        client_key=options.client_key,
        timeout=options.timeout,
        retries=options.retries,
    )
    with RegistryClient(host, login) as client:
        try:
            client.check_login()
        except AuthenticationFailed:
            raise AuthenticationFailed(
                "registry %s rejected the login of user %r: check username and password; the auth file was not changed" % (host, username), key
            ) from None


def ensure_login(
    registry: str,
    username: str,
    password: str,
    auth_file: str | None = None,
    options: ConnectionOptions | None = None,
    verify: bool = True,
    check_mode: bool = False,
    env: dict[str, str] | None = None,
) -> LoginResult:
    """Make ``auth_file`` hold these credentials for ``registry`` (verified first unless ``verify`` is false)."""
    key = registry_key(registry)
    if not username or ":" in username:
        # The auth field is "user:password" split at the first colon, so a colon cannot be in the user name.
        raise AuthenticationFailed("a login to %s needs a username without ':'" % key, key)
    path = os.path.realpath(os.path.expanduser(auth_file or default_auth_file(env)))
    content = read_auth_file(path)
    if verify:
        verify_login(key, username, password, options or ConnectionOptions())
    auths = dict(content.get("auths") or {})
    before = sorted(auths)
    matching = _matching_keys(auths, key)
    target = matching[0] if matching else key
    old = auths.get(target)
    entry = {k: v for k, v in old.items() if k not in CREDENTIAL_FIELDS} if isinstance(old, dict) else {}
    entry["auth"] = encode_auth(username, password)
    result = LoginResult(changed=entry != old, registry=key, auth_file=path, before=before, warnings=_helper_warning(content, key, path))
    auths[target] = entry
    result.after = sorted(auths)
    if result.changed and not check_mode:
        content["auths"] = auths
        write_auth_file(path, content)
    return result


def ensure_logout(registry: str, auth_file: str | None = None, check_mode: bool = False, env: dict[str, str] | None = None) -> LoginResult:
    """Remove every entry for ``registry`` from ``auth_file`` (however its key is spelled); other entries stay."""
    key = registry_key(registry)
    path = os.path.realpath(os.path.expanduser(auth_file or default_auth_file(env)))
    content = read_auth_file(path)
    auths = dict(content.get("auths") or {})
    before = sorted(auths)
    for name in _matching_keys(auths, key):
        del auths[name]
    warnings = _helper_warning(content, key, path)
    result = LoginResult(changed=len(auths) != len(before), registry=key, auth_file=path, before=before, after=sorted(auths), warnings=warnings)
    if result.changed and not check_mode:
        content["auths"] = auths
        write_auth_file(path, content)
    return result
