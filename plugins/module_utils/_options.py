# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module and transport, independent of Ansible."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Optional

# Runs a program: (args, stdin bytes or None) -> (exit status, stdout bytes, stderr bytes).
CommandRunner = Callable[[list, Optional[bytes]], "tuple[int, bytes, bytes]"]

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
    # Archive destinations that can be split (see _transports/_volumes.py): the largest volume in bytes; None writes one file.
    split_size: int | None = None
    # The prefix of the module options these came from ("src_", "dest_" or ""), so messages name the option a user can
    # set for that side. Part of the identity: the two sides of a copy never share a client (nor its messages).
    option_prefix: str = ""
    # Called with each secret read from free-form data (auth files, credential helpers, token servers),
    # so a module can add it to its no_log values. Not part of what makes two option sets equal.
    secret_sink: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    # Blobs the other side of an air gap already holds, by repository name (from its inventory, see _inventory): a
    # bundle destination counts them as present, so a delta export leaves them out. Not part of the identity.
    held_blobs: dict | None = field(default=None, compare=False, repr=False)
    # Runs external programs (credential helpers, podman): a module's run_command, a plugin's or a test's own.
    # Passed down with the options instead of living in a global, so every caller states how programs run.
    runner: CommandRunner | None = field(default=None, compare=False, repr=False)

    def option(self, name: str) -> str:
        """How the user spells option ``name`` (``ca_cert``, ``username``, ...) for this side."""
        return self.option_prefix + name

    def identity(self) -> tuple:
        """The values that make two option sets equal (what a shared client is keyed on); never the callbacks."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.compare)

    def __repr__(self) -> str:
        # Never show secrets, even in a traceback or debug output.
        return "ConnectionOptions(username=%r, password=%s, registry_token=%s, validate_certs=%r)" % (
            self.username,
            "<hidden>" if self.password else None,
            "<hidden>" if self.registry_token else None,
            self.validate_certs,
        )
