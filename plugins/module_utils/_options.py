# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module and transport, independent of Ansible."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_RATE_LIMIT_MAX_WAIT = 60.0


@dataclass
class ConnectionOptions:
    """How to reach one side (source or destination): credentials, TLS, timeouts, engine socket."""

    username: str | None = None
    password: str | None = None
    registry_token: str | None = None
    auth_file: str | None = None
    validate_certs: bool = True
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    cert_dir: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    daemon_host: str | None = None
    # Pacing (see _registry/_pacing.py): per registry host, for every request sent to it.
    requests_per_second: float | None = None
    max_concurrent_requests: int | None = None
    rate_limit_floor: int = 0
    rate_limit_max_wait: float = DEFAULT_RATE_LIMIT_MAX_WAIT
    # registries.conf: None finds it as podman does, False ignores it, a path reads that file.
    registries_conf: str | bool | None = None

    def __repr__(self) -> str:
        # Never show secrets, even in a traceback or debug output.
        return "ConnectionOptions(username=%r, password=%s, registry_token=%s, validate_certs=%r)" % (
            self.username,
            "<hidden>" if self.password else None,
            "<hidden>" if self.registry_token else None,
            self.validate_certs,
        )
