# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Distribution API cannot list: every manifest a repository keeps, tagged or not.

CNCF distribution (``docker-registry``, ``registry:2``) keeps, per repository, a link file for
each manifest it holds under ``_manifests/revisions``; a manifest stays there when its tag moves
on or when it was pushed by digest, and ``garbage-collect`` keeps its blobs until it is deleted
(or ``--delete-untagged`` removes it). Read-only, from the filesystem storage driver's root
directory (``storage.filesystem.rootdirectory``), on the host that has it.
"""

from __future__ import annotations

import os

from .._errors import LocalIOError, OCIError
from .._reference import DIGEST_RE, validate_digest

# Where the filesystem driver keeps the registry's data below its root directory.
_DATA = os.path.join("docker", "registry", "v2")


class DistributionStorage:
    """The storage root directory of a distribution registry (filesystem driver)."""

    def __init__(self, root: str):
        self.root = root
        self.repositories = os.path.join(root, _DATA, "repositories")
        if not os.path.isdir(self.repositories):
            raise OCIError(
                "registry_storage %s is not the root directory of a distribution registry's filesystem storage (it has no %s): give the"
                " directory its configuration names in storage.filesystem.rootdirectory" % (root, os.path.join(_DATA, "repositories")),
                root,
            )

    def manifest_revisions(self, repository: str) -> list[str]:
        """Digests of every manifest ``repository`` keeps (tagged, untagged, index children), sorted."""
        directory = os.path.join(self.repositories, *repository.split("/"))
        if not os.path.isdir(os.path.join(directory, "_manifests")):
            raise OCIError(
                "registry_storage %s has no repository %s, which the registry lists: is it this registry's storage?" % (self.root, repository), self.root
            )
        revisions = os.path.join(directory, "_manifests", "revisions")
        digests = []
        try:
            algorithms = sorted(os.listdir(revisions)) if os.path.isdir(revisions) else []
            for algorithm in algorithms:
                for encoded in sorted(os.listdir(os.path.join(revisions, algorithm))):
                    link = os.path.join(revisions, algorithm, encoded, "link")
                    if not os.path.isfile(link):
                        continue  # a revision being deleted, or an empty directory a delete left
                    with open(link, encoding="ascii", errors="replace") as handle:
                        digest = handle.read().strip()
                    if not DIGEST_RE.match(digest) or digest != "%s:%s" % (algorithm, encoded):
                        raise OCIError("registry_storage: %s does not hold the digest of its directory (%r)" % (link, digest[:80]), self.root)
                    digests.append(validate_digest(digest, link))
        except OSError as exc:
            raise LocalIOError.from_os_error(exc, "registry_storage %s" % self.root, "reading the manifests of %s" % repository) from None
        return digests
