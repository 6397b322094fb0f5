# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module argument specs for connection options, and turning module params into ConnectionOptions.

Kept here (not in each module) because every module takes the same options, for one
side (``image_info``) or for two prefixed sides (``src_``/``dest_`` in ``image_copy``).
"""

from __future__ import annotations

from ._options import DEFAULT_RATE_LIMIT_MAX_WAIT, DEFAULT_RETRIES, DEFAULT_TIMEOUT, ConnectionOptions

_PER_SIDE = {
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "registry_token": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "default": True},
    "ca_cert": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path"},
}
_SHARED = {
    "auth_file": {"type": "path"},
    "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
    "retries": {"type": "int", "default": DEFAULT_RETRIES},
    "requests_per_second": {"type": "float"},
    "max_concurrent_requests": {"type": "int"},
    "rate_limit_floor": {"type": "int", "default": 0},
    "rate_limit_max_wait": {"type": "float", "default": DEFAULT_RATE_LIMIT_MAX_WAIT},
    "registries_conf": {"type": "raw"},
}


def connection_argument_spec(prefixes: tuple[str, ...] = ("",)) -> dict:
    """Argument spec entries for each side prefix (``""`` or ``"src_"``, ``"dest_"``) plus the shared ones."""
    spec: dict = {}
    for prefix in prefixes:
        for name, entry in _PER_SIDE.items():
            spec[prefix + name] = dict(entry)
        if prefix:
            # A side's validate_certs falls back to the unprefixed one, so module_defaults for the
            # whole action group (group/oci.images.images: validate_certs: false) reach both sides.
            spec[prefix + "validate_certs"] = {"type": "bool"}
            # Each side may read its own auth file (skopeo's --src-authfile/--dest-authfile); auth_file is the fallback.
            spec[prefix + "auth_file"] = {"type": "path"}
    if any(prefixes):
        spec["validate_certs"] = dict(_PER_SIDE["validate_certs"])
    for name, entry in _SHARED.items():
        spec[name] = dict(entry)
    return spec


def daemon_argument_spec(prefixes: tuple[str, ...] = ("",)) -> dict:
    """The ``daemon_host`` option for each side prefix, for modules that reach a Docker engine (docker-daemon:)."""
    return {prefix + "daemon_host": {"type": "str"} for prefix in prefixes}


def check_connection_params(params: dict) -> str | None:
    """What is wrong with the shared connection options, as a message; None when nothing is."""
    if params.get("requests_per_second") is not None and params["requests_per_second"] <= 0:
        return "requests_per_second must be above 0"
    if params.get("max_concurrent_requests") is not None and params["max_concurrent_requests"] < 1:
        return "max_concurrent_requests must be at least 1"
    if (params.get("rate_limit_floor") or 0) < 0 or (params.get("rate_limit_max_wait") or 0) < 0:
        return "rate_limit_floor and rate_limit_max_wait must not be negative"
    value = params.get("registries_conf")
    if value is not None and not isinstance(value, (str, bool)):
        return "registries_conf must be the path of a registries.conf file, or false to ignore registries.conf"
    return None


def connection_constraints(prefixes: tuple[str, ...] = ("",)) -> dict:
    """mutually_exclusive / required_together lists matching connection_argument_spec."""
    return {
        "mutually_exclusive": [[p + "registry_token", p + "username"] for p in prefixes] + [[p + "registry_token", p + "password"] for p in prefixes],
        "required_together": [[p + "username", p + "password"] for p in prefixes] + [[p + "client_cert", p + "client_key"] for p in prefixes],
    }


def connection_options(params: dict, prefix: str = "") -> ConnectionOptions:
    """ConnectionOptions for one side from module params."""
    timeout = params.get("timeout")
    retries = params.get("retries")
    max_wait = params.get("rate_limit_max_wait")
    return ConnectionOptions(
        username=params.get(prefix + "username"),
        password=params.get(prefix + "password"),
        registry_token=params.get(prefix + "registry_token"),
        auth_file=params.get(prefix + "auth_file") or params.get("auth_file"),
        validate_certs=_validate_certs(params, prefix),
        ca_cert=params.get(prefix + "ca_cert"),
        client_cert=params.get(prefix + "client_cert"),
        client_key=params.get(prefix + "client_key"),
        timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
        retries=DEFAULT_RETRIES if retries is None else int(retries),
        daemon_host=params.get(prefix + "daemon_host"),
        requests_per_second=params.get("requests_per_second"),
        max_concurrent_requests=params.get("max_concurrent_requests"),
        rate_limit_floor=params.get("rate_limit_floor") or 0,
        rate_limit_max_wait=DEFAULT_RATE_LIMIT_MAX_WAIT if max_wait is None else float(max_wait),
        registries_conf=registries_conf_setting(params.get("registries_conf")),
        option_prefix=prefix,
    )


def registries_conf_setting(value) -> str | bool | None:
    """The ``registries_conf`` option as ConnectionOptions holds it: None (find it), False (ignore it) or a path."""
    if value is None or value is True:
        return None
    if isinstance(value, bool):
        return False
    text = str(value).strip()
    if text.lower() in ("false", "no", "off", "0", ""):
        return False
    if text.lower() in ("true", "yes", "on", "1"):
        return None
    return text


def _validate_certs(params: dict, prefix: str) -> bool:
    value = params.get(prefix + "validate_certs")
    if value is None:
        value = params.get("validate_certs")
    return value is not False
