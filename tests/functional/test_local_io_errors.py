"""Local files that cannot be written (or read): a message, never a traceback, and nothing left behind.

Every local transport is driven as a destination, fed by every local transport as a source, into a
directory that cannot be written (under /proc, where root cannot write either), a missing parent
directory, a full filesystem (a 1 MiB tmpfs) and a read-only filesystem (a tmpfs remounted
read-only). Each copy's ``msg`` names its reference, the path and the cause; nothing half-written
is left (no ``.oci-images-tmp-*``, no partial target, no temporary file); with ``keep_going`` the
image whose destination is fine still copies. Sources that spool to the temporary directory are
run with it full, and deletes on a read-only filesystem fail the same clean way.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import subprocess

import pytest
from ansible_run import run_module
from images import build_image
from skopeo import copy as skopeo_copy
from skopeo import inspect_raw

pytestmark = pytest.mark.timeout(600)

KINDS = ("unwritable", "missing-parent", "full", "read-only")
CAUSES = {
    "unwritable": r"no such file or directory.*takes no new files",
    "missing-parent": r"does not exist",
    "full": r"no space left on device.*filesystem is full",
    "read-only": r"read-only file system.*mounted read-only",
}
TRANSPORTS = ("dir", "oci", "oci-archive", "docker-archive")


@contextlib.contextmanager
def tmpfs(path: str, size: str = "1m", read_only: bool = False):
    """A small tmpfs mounted at ``path`` for the test (read-only after mounting, when asked); unmounted at the end."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path], check=True)
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", path], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One image of about 1.8 MB (too big for the 1 MiB tmpfs) in each local transport, written by skopeo."""
    root = tmp_path_factory.mktemp("io-sources")
    layout = str(root / "layout")
    info = build_image(layout, ref="v1", layer_sizes=(1200000, 600000), seed=7301)
    refs = {"oci": "oci:%s:v1" % layout}
    for transport, ref in (
        ("dir", "dir:%s" % (root / "dir-image")),
        ("oci-archive", "oci-archive:%s:v1" % (root / "image.tar")),
        ("docker-archive", "docker-archive:%s:localhost/src:v1" % (root / "docker.tar")),
    ):
        skopeo_copy(refs["oci"], ref)
        refs[transport] = ref
    info["refs"] = refs
    return info


def destination(transport: str, parent: str) -> tuple[str, str]:
    """(reference, path) of a destination of ``transport`` in ``parent``."""
    path = os.path.join(parent, {"dir": "dir-image", "oci": "layout", "oci-archive": "image.tar", "docker-archive": "docker.tar"}[transport])
    suffix = {"dir": "", "oci": ":v1", "oci-archive": ":v1", "docker-archive": ":localhost/app:v1"}[transport]
    return "%s:%s%s" % (transport, path, suffix), path


def leftovers(directory: str) -> list[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def assert_no_traceback(run) -> None:
    assert "Traceback" not in run.output, run.output
    assert "module_stderr" not in run.result and "exception" not in run.result, run.result


@pytest.mark.parametrize("kind", KINDS)
def test_every_local_destination_fails_cleanly_and_keep_going_copies_the_rest(tmp_path, sources, kind):
    temp = tmp_path / "tmp"
    temp.mkdir()
    with contextlib.ExitStack() as stack:
        if kind == "unwritable":
            parent = "/proc"  # takes no new files, not even from root
        elif kind == "missing-parent":
            parent = str(tmp_path / "no-such-directory")
        else:
            parent = stack.enter_context(tmpfs(str(tmp_path / kind), read_only=kind == "read-only"))
        images = []
        for position, transport in enumerate(TRANSPORTS):
            # Each destination transport gets another source transport for each kind of failure.
            src = sources["refs"][TRANSPORTS[(position + KINDS.index(kind)) % len(TRANSPORTS)]]
            dest, _unused = destination(transport, parent)
            images.append({"src": src, "dest": dest})
        good = "oci:%s:v1" % (tmp_path / "good")
        images.append({"src": sources["refs"]["oci"], "dest": good})
        run = run_module("image_copy", {"images": images, "keep_going": True}, env={"TMPDIR": str(temp)})
        assert_no_traceback(run)
        assert run.failed
        results = run.result["results"]  # in the order of images
        assert run.result["failed_count"] == len(TRANSPORTS), run.result
        for image, entry in zip(images[: len(TRANSPORTS)], results):
            assert entry["dest"] == image["dest"] and entry["failed"], entry
            msg = entry["msg"]
            assert msg.startswith(image["dest"] + ": "), "msg does not name the reference first: %s" % msg
            assert parent in msg, "msg does not name the path: %s" % msg
            assert re.search(CAUSES[kind], msg, re.I | re.S), "msg does not give the cause: %s" % msg
            assert entry["changed"] is False
        if kind in ("full", "read-only"):
            assert leftovers(parent) == [], "left behind in %s: %s" % (parent, leftovers(parent))
        else:
            assert not any(os.path.lexists(destination(t, parent)[1]) for t in TRANSPORTS)
            assert not [p for p in os.listdir(os.path.dirname(parent) if kind != "unwritable" else parent) if p.startswith(".oci-images-")]
        # The image whose destination is fine was copied.
        assert results[-1]["dest"] == good and results[-1]["changed"] and not results[-1].get("failed")
        assert run.result["copied"] == 1
        assert results[-1]["dest_digest_after"] == sources["manifest_digest"]
        assert inspect_raw(good)
    assert leftovers(str(temp)) == []


def test_a_destination_under_proc_names_the_reference_and_the_cause(tmp_path, sources):
    dest = "oci:/proc/oci-test:v1"
    run = run_module("image_copy", {"src": sources["refs"]["oci"], "dest": dest}, env={"TMPDIR": str(tmp_path)})
    assert_no_traceback(run)
    assert run.failed
    msg = run.result["msg"]
    assert msg.startswith(dest + ": "), msg
    assert "/proc/" in msg and re.search(CAUSES["unwritable"], msg, re.I), msg
    assert leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("compressed", [False, True], ids=["docker-archive", "gzipped-docker-archive"])
def test_a_source_that_spools_to_a_full_temporary_directory_fails_cleanly(tmp_path, sources, compressed):
    archive = sources["refs"]["docker-archive"].split(":")[1]
    if compressed:
        gzipped = str(tmp_path / "docker.tar.gz")
        with open(archive, "rb") as raw, gzip.open(gzipped, "wb", compresslevel=1) as out:
            shutil.copyfileobj(raw, out)
        archive = gzipped
    src = "docker-archive:%s" % archive
    dest = tmp_path / "dest"
    with tmpfs(str(tmp_path / "full-tmp")) as temp:
        run = run_module("image_copy", {"src": src, "dest": "oci:%s:v1" % dest}, env={"TMPDIR": temp})
        assert_no_traceback(run)
        assert run.failed
        msg = run.result["msg"]
        assert src in msg and temp in msg and "temporary file" in msg, msg
        assert re.search(CAUSES["full"], msg, re.I), msg
        assert leftovers(temp) == []
    assert not dest.exists()
    assert [p for p in leftovers(str(tmp_path)) if p.startswith(".oci-images-")] == []


@pytest.mark.parametrize("transport", ["oci", "dir"])
def test_a_delete_on_a_read_only_filesystem_fails_cleanly(tmp_path, sources, transport):
    staged = tmp_path / "staged"
    staged.mkdir()
    ref, path = destination(transport, str(staged))
    skopeo_copy(sources["refs"]["oci"], ref)
    with tmpfs(str(tmp_path / "ro"), size="8m") as mounted:
        shutil.copytree(path, os.path.join(mounted, os.path.basename(path)))
        subprocess.run(["mount", "-o", "remount,ro", mounted], check=True)
        ref, path = destination(transport, mounted)
        run = run_module("image_delete", {"image": ref})
        assert_no_traceback(run)
        assert run.failed
        msg = run.result["msg"]
        assert ref in msg and mounted in msg and re.search(CAUSES["read-only"], msg, re.I), msg
        assert inspect_raw(ref)  # still there, whole
