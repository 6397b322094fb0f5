# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One exception hierarchy for the collection.

Every message names the reference (or path) it is about and says what to do.
No message ever carries a credential: callers pass only what is safe to show.
"""

from __future__ import annotations


class OCIError(Exception):
    """Base of every error the collection raises on purpose."""

    def __init__(self, msg: str, reference: str | None = None):
        super().__init__(msg)
        self.msg = msg
        self.reference = reference

    def __str__(self) -> str:
        return self.msg


class InvalidReference(OCIError):
    """A reference string that does not parse."""


class NotFound(OCIError):
    """The repository, tag, manifest or blob does not exist (not always a failure)."""


class AuthenticationFailed(OCIError):
    """The registry refused the credentials, or none were found and it needs some."""


class PermissionDenied(OCIError):
    """Authenticated, but not allowed to do this (403 or insufficient scope)."""


class TLSFailure(OCIError):
    """The TLS handshake failed: unknown CA, wrong host name, bad client certificate."""


class ConnectionFailure(OCIError):
    """The peer could not be reached, or kept failing after every retry."""


class RegistryError(OCIError):
    """The registry answered with an error that fits no narrower class."""

    def __init__(self, msg: str, reference: str | None = None, status: int | None = None, code: str | None = None):
        super().__init__(msg, reference)
        self.status = status
        self.code = code


class Unsupported(OCIError):
    """The peer or the transport cannot do what was asked (e.g. deletes disabled, tags on a local layout)."""


class InvalidManifest(OCIError):
    """A manifest, index or config that is not valid JSON, too large, or not of the declared type."""


class DigestMismatch(OCIError):
    """Content whose sha256 does not match the digest it was fetched by."""


class BlobsMissing(OCIError):
    """A destination refused a manifest because blobs it references are not there (any more)."""


class LocalFormatError(OCIError):
    """A local directory, layout or archive that is missing, malformed or unsafe."""


class EngineError(OCIError):
    """A container engine (Docker, podman) is absent or answered with an error."""
