"""Drive the demo: a throwaway registry with sample images, then the demo playbook against it."""

from __future__ import annotations

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))

import skopeo  # noqa: E402
from ansible_run import run_playbook  # noqa: E402
from images import build_image, build_index  # noqa: E402
from registries import start_registry  # noqa: E402


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oci-images-demo-") as work, start_registry(os.path.join(work, "registry"), kind="plain") as registry:
        print("throwaway registry at http://%s" % registry.host)
        layout = os.path.join(work, "layout")
        build_index(layout, ref="app", platforms=["linux/amd64", "linux/arm64/v8"], labels={"org.opencontainers.image.title": "demo app"})
        build_image(layout, ref="single", layer_sizes=(200_000, 50_000), seed=7)
        for tag in ("1.0", "latest"):
            skopeo.copy("oci:%s:app" % layout, "docker://%s/demo/app:%s" % (registry.host, tag), "--multi-arch", "all")
        skopeo.copy("oci:%s:single" % layout, "docker://%s/demo/app:0.9" % registry.host)
        proc = run_playbook(os.path.join(HERE, "playbook.yml"), extra_vars={"demo_registry": registry.host})
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
    print("demo finished in %.1f s" % (time.monotonic() - started))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
