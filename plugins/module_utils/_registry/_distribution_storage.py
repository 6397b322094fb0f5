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

    def _manifests(self, repository: str) -> str:
        directory = os.path.join(self.repositories, *repository.split("/"), "_manifests")
        if not os.path.isdir(directory):
            raise OCIError(
                "registry_storage %s has no repository %s, which the registry lists: is it this registry's storage?" % (self.root, repository), self.root
            )
        return directory

    def manifest_revisions(self, repository: str) -> list[str]:
        """Digests of every manifest ``repository`` keeps (tagged, untagged, index children), sorted."""
        revisions = os.path.join(self._manifests(repository), "revisions")
        digests = []
        try:
            for algorithm in sorted(os.listdir(revisions)) if os.path.isdir(revisions) else []:
                for encoded in sorted(os.listdir(os.path.join(revisions, algorithm))):
                    digest = self._link(os.path.join(revisions, algorithm, encoded, "link"))
                    if digest is None:
                        continue
                    if digest != "%s:%s" % (algorithm, encoded):
                        raise OCIError("registry_storage: %s does not name the digest of its directory (%s)" % (revisions, digest), self.root)
                    digests.append(digest)
        except OSError as exc:
            raise LocalIOError.from_os_error(exc, "registry_storage %s" % self.root, "reading the manifests of %s" % repository) from None
        return digests

    def tags(self, repository: str) -> dict[str, str]:
        """Tag -> manifest digest, every tag of ``repository``, as the registry answers a manifest request by tag."""
        directory = os.path.join(self._manifests(repository), "tags")
        found = {}
        try:
            for tag in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
                digest = self._link(os.path.join(directory, tag, "current", "link"))
                if digest is not None:
                    found[tag] = digest
        except OSError as exc:
            raise LocalIOError.from_os_error(exc, "registry_storage %s" % self.root, "reading the tags of %s" % repository) from None
        return found

    def _link(self, path: str) -> str | None:
        """The digest a link file holds; None when it is not there (a tag or revision being deleted, an empty directory a delete left)."""
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                digest = handle.read().strip()
        except FileNotFoundError:
            return None
        if not DIGEST_RE.match(digest):
            raise OCIError("registry_storage: %s does not hold a digest (%r)" % (path, digest[:80]), self.root)
        return validate_digest(digest, path)
