"""Drive the demo: two throwaway registries, a sample repository in the first, then the demo playbook.

The playbook (demo/playbook.yml) mirrors the repository into the second registry with a tag
selection, shows its footprint, prunes it in check mode and for real, and prints a summary.
Everything this starts is stopped and every file it writes is removed at the end, also when a
step fails or the run is interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from contextlib import ExitStack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))

import skopeo  # noqa: E402
from ansible_run import run_playbook  # noqa: E402
from images import build_image  # noqa: E402
from registries import start_registry  # noqa: E402

REPOSITORY = "demo/app"

# The sample repository: release tags over two major versions, a release candidate, development
# builds and latest. Every image is a base layer (the same blob in all of them), a runtime layer
# shared by the images of one major version, and an application layer of its own, so mirrored
# and pruned bytes depend on what the tags share, as in a real repository.
BASE_LAYER = ("base", 400_000)
RUNTIME_LAYERS = {"0": ("runtime-0", 150_000), "1": ("runtime-1", 200_000), "2": ("runtime-2", 250_000)}
APP_LAYER_SIZE = 60_000
SAMPLE_TAGS = (
    # tag, runtime (major version), created
    ("0.9.0", "0", "2024-01-10T09:00:00Z"),
    ("1.0.0", "1", "2024-02-01T09:00:00Z"),
    ("1.1.0", "1", "2024-03-01T09:00:00Z"),
    ("1.2.0", "1", "2024-04-01T09:00:00Z"),
    ("1.3.0", "1", "2024-05-01T09:00:00Z"),
    ("2.0.0-rc.1", "2", "2024-05-20T09:00:00Z"),
    ("2.0.0", "2", "2024-06-01T09:00:00Z"),
    ("2.1.0", "2", "2024-07-01T09:00:00Z"),
    ("dev-5c1e0a2", "2", "2024-07-03T09:00:00Z"),
    ("dev-8f3b9d4", "2", "2024-07-04T09:00:00Z"),
)
LATEST = "2.1.0"


def build_sample_repository(layout: str) -> list[str]:
    """Write the sample images into an OCI layout, one ref per tag; return the tags."""
    tags = []
    for tag, runtime, created in SAMPLE_TAGS:
        runtime_key, runtime_size = RUNTIME_LAYERS[runtime]
        build_image(
            layout,
            ref=tag,
            layer_sizes=(BASE_LAYER[1], runtime_size, APP_LAYER_SIZE),
            layer_keys=(BASE_LAYER[0], runtime_key, "app-" + tag),
            created=created,
            labels={"org.opencontainers.image.title": "demo app", "org.opencontainers.image.version": tag},
        )
        tags.append(tag)
    return tags


def push_sample_repository(layout: str, tags: list[str], registry_host: str) -> None:
    """Seed the source registry with skopeo (the collection is what the playbook demonstrates)."""
    for tag in tags:
        skopeo.copy("oci:%s:%s" % (layout, tag), "docker://%s/%s:%s" % (registry_host, REPOSITORY, tag))
    skopeo.copy("oci:%s:%s" % (layout, LATEST), "docker://%s/%s:latest" % (registry_host, REPOSITORY))


def stop_on_sigterm(signum, frame) -> None:
    # Turn SIGTERM into an exception so the with-blocks below stop the registries and remove files.
    raise SystemExit(128 + signum)


def main() -> int:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with ExitStack() as cleanup:
        work = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="oci-images-demo-"))
        source = cleanup.enter_context(start_registry(os.path.join(work, "registry-a"), kind="plain"))
        mirror = cleanup.enter_context(start_registry(os.path.join(work, "registry-b"), kind="plain"))
        print("registry A (source): http://%s" % source.host)
        print("registry B (mirror): http://%s" % mirror.host)

        layout = os.path.join(work, "layout")
        tags = build_sample_repository(layout)
        push_sample_repository(layout, tags, source.host)
        print("pushed %s to registry A: %s, latest" % (REPOSITORY, ", ".join(tags)))
        print("running demo/playbook.yml ...", flush=True)

        proc = run_playbook(
            os.path.join(HERE, "playbook.yml"),
            extra_vars={"demo_source": "%s/%s" % (source.host, REPOSITORY), "demo_mirror": "%s/%s" % (mirror.host, REPOSITORY)},
        )
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
    print("demo %s in %.1f s; registries stopped, temporary files removed" % ("finished" if proc.returncode == 0 else "FAILED", time.monotonic() - started))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
