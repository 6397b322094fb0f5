# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One exception hierarchy for the collection.

Every message names the reference (or path) it is about and says what to do.
No message ever carries a credential: callers pass only what is safe to show.
"""

from __future__ import annotations

import errno


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


class LocalIOError(OCIError):
    """A local file operation failed: no permission, no space left, a read-only filesystem, an I/O error."""

    @classmethod
    def from_os_error(cls, exc: OSError, context: str, doing: str, place: str | None = None) -> LocalIOError:
        """``context: <doing> failed: <cause> (<path>); <what to do>``; ``place`` stands in when the error names no path."""
        path = exc.filename if exc.filename is not None else place
        where = " (%s)" % path if path else ""
        advice = _ADVICE.get(exc.errno or 0, "check that path")
        return cls("%s: %s failed: %s%s; %s" % (context, doing, exc.strerror or exc, where, advice), context)


_ADVICE = {
    errno.ENOSPC: "the filesystem is full: free space on it or choose a path on another one",
    errno.EDQUOT: "the disk quota is used up: free space or choose a path elsewhere",
    errno.EROFS: "the filesystem is mounted read-only: choose a path on a writable one",
    errno.EACCES: "permission denied: choose a path the task's user may write (and read), or change its permissions",
    errno.EPERM: "the operation is not permitted there: choose another path",
    errno.EFBIG: "the file is larger than the filesystem or the process's file size limit allows: choose another path",
    errno.ENOENT: "a directory on the way does not exist or takes no new files (as under /proc): choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
    errno.EIO: "the device reported an input/output error: check the disk",
    errno.EMFILE: "too many open files: raise the open-file limit or lower parallel",
}


def describe_os_error(exc: OSError) -> str:
    """An OSError as a sentence: what failed, on which path (for a message that names the reference first)."""
    where = " (%s)" % exc.filename if getattr(exc, "filename", None) else ""
    return "%s%s" % (exc.strerror or exc.__class__.__name__, where)
