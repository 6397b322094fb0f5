"""Where the collection is importable as ansible_collections.oci.images during tests."""

from __future__ import annotations

import hashlib
import os


def collections_root(repo: str) -> str:
    """A per-checkout directory outside the checkout (so no tool walks into a loop)."""
    base = os.environ.get("OCI_IMAGES_BUILD_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "oci-images", hashlib.sha256(os.path.realpath(repo).encode()).hexdigest()[:12]
    )
    return os.path.join(base, "collections")


def ensure_collection_tree(repo: str) -> str:
    """Create (once) ``<root>/ansible_collections/oci/images`` -> repo and return ``<root>``."""
    root = collections_root(repo)
    parent = os.path.join(root, "ansible_collections", "oci")
    os.makedirs(parent, exist_ok=True)
    link = os.path.join(parent, "images")
    target = os.path.realpath(repo)
    if os.path.islink(link) and os.readlink(link) == target:
        return root
    tmp = link + ".%d" % os.getpid()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return root


def subprocess_runner(args: list, data: bytes | None = None) -> tuple[int, bytes, bytes]:
    """The command runner tests and benchmarks install where a module would install module.run_command."""
    import subprocess

    proc = subprocess.run(args, input=data, capture_output=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr
