"""Air-gap benchmark: exporting a mirror to disk and importing it, ours beside ``skopeo sync`` in the same run.

    .venv/bin/python tests/bench/air_gap_bench.py [--scale 1.0] [--out FILE]

- 10 repositories x 5 tags, every image on one shared base layer (8 MiB at scale 1) with its own top layer
  (256 KiB): bytes written to disk and wall time, our bundle (``oci:``, and the ``oci-archive:`` file) against
  ``skopeo sync --src yaml --dest dir`` (a directory per tag, each with its own copy of the base layer).
- The import of what was exported into an empty registry: ours (verified first) against ``skopeo sync --src dir``.
- A second export after one new tag, with the inventory the import wrote: bytes of the delta bundle against the new
  tag's own bytes (manifest, config, top layer); skopeo has no delta, so its second export is a whole new tree.
- Peak RSS of the export at two bundle sizes (base layer 8 and 64 MiB at scale 1): flat in the bundle size.

Ours is the batch engine as its own process (``copy_cli.py``, the code ``image_copy`` runs, without Ansible's start-up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from mirror_bench import SKOPEO, measured_tree  # noqa: E402

MiB = 1024 * 1024
REPOS, TAGS = 10, 5


def bytes_on_disk(path: str) -> int:
    """Apparent size of every file under ``path`` (or of the file itself)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(top, name)) for top, _dirs, files in os.walk(path) for name in files)


def ours(*args: str) -> tuple[float, int, dict]:
    seconds, rss, out = measured_tree([sys.executable, os.path.join(HERE, "copy_cli.py"), *args])
    return seconds, rss, json.loads(out)


def skopeo_sync(*args: str) -> tuple[float, int]:
    seconds, rss, _unused = measured_tree([SKOPEO, "--insecure-policy", "sync", *args])
    return seconds, rss


def push_repositories(bench, host: str, namespace: str, base: int, top: int, repos: int, tags: int, seed: int) -> dict:
    from images import build_image
    from skopeo import copy as skopeo_copy

    layout = os.path.join(bench.work, namespace + "-layout")
    for r in range(repos):
        for t in range(tags):
            key = "%s-r%dt%d" % (namespace, r, t)
            build_image(layout, ref=key, layer_sizes=(base, top), layer_keys=[namespace + "-base", key], seed=seed + r * 10 + t)
            skopeo_copy("oci:%s:%s" % (layout, key), "docker://%s/%s/repo%d:%d" % (host, namespace, r, t))
    spec = os.path.join(bench.work, namespace + "-sync.yaml")
    with open(spec, "w") as handle:
        json.dump({host: {"tls-verify": False, "images": {"%s/repo%d" % (namespace, r): [] for r in range(repos)}}}, handle)  # JSON is YAML
    return {"layout": layout, "spec": spec}


def run_air_gap_cases(bench) -> None:
    """Add the air-gap rows to a run.py Bench (which owns the registries and the table)."""
    from images import build_image
    from skopeo import copy as skopeo_copy

    a, b, c = bench.registry("gap-a"), bench.registry("gap-b"), bench.registry("gap-c")
    base, top = bench.size(8 * MiB), bench.size(256 * 1024)
    print("pushing %d repositories x %d tags (base %d KiB shared, top %d KiB each) ..." % (REPOS, TAGS, base // 1024, top // 1024), flush=True)
    pushed = push_repositories(bench, a.host, "gap", base, top, REPOS, TAGS, 5000)
    work = bench.work

    bundle, archive, tree = os.path.join(work, "bundle"), os.path.join(work, "bundle.tar"), os.path.join(work, "skopeo-tree")
    export = ours("--sync", pushed["spec"], "oci:" + bundle)
    assert export[2]["changed"] == REPOS * TAGS, export[2]
    theirs = skopeo_sync("--src", "yaml", "--dest", "dir", pushed["spec"], tree)
    ours_bytes, their_bytes = bytes_on_disk(bundle), bytes_on_disk(tree)
    bench.record(
        "air gap: export 10 repos x 5 tags to disk (oci: bundle vs skopeo sync --dest dir)",
        "time <= 0.75, bytes <= 0.3",
        export[:2],
        theirs,
        "bytes on disk %.1f MiB vs %.1f MiB, ratio %.3f" % (ours_bytes / MiB, their_bytes / MiB, ours_bytes / their_bytes),
    )
    packed = ours("--sync", pushed["spec"], "oci-archive:" + archive)
    archive_bytes = bytes_on_disk(archive)
    bench.record(
        "air gap: export 10 repos x 5 tags to one oci-archive file",
        "time <= 0.75, bytes <= 0.3",
        packed[:2],
        theirs,
        "bytes on disk %.1f MiB vs %.1f MiB, ratio %.3f" % (archive_bytes / MiB, their_bytes / MiB, archive_bytes / their_bytes),
    )

    inventory = os.path.join(work, "inventory.json")
    imported = ours("oci-archive:" + archive, "docker://%s/mirror" % b.host, "--inventory", inventory)
    assert imported[2]["changed"] == REPOS * TAGS, imported[2]
    bench.record(
        "air gap: import the export into an empty registry (ours verified first)",
        "-",
        imported[:2],
        skopeo_sync("--src", "dir", "--dest", "docker", "--dest-tls-verify=false", tree, "%s/mirror" % c.host),
    )

    # One new tag; the second export, with the inventory the import wrote, carries only what is new.
    build_image(pushed["layout"], ref="new", layer_sizes=(base, top), layer_keys=["gap-base", "gap-new"], seed=5999)
    skopeo_copy("oci:%s:new" % pushed["layout"], "docker://%s/gap/repo0:new" % a.host)
    from skopeo import inspect_raw

    raw = inspect_raw("docker://%s/gap/repo0:new" % a.host)
    manifest = json.loads(raw)
    new_bytes = len(raw) + manifest["config"]["size"] + manifest["layers"][1]["size"]
    delta, tree2 = os.path.join(work, "delta"), os.path.join(work, "skopeo-tree-2")
    second = ours("--sync", pushed["spec"], "oci:" + delta, "--inventory", inventory)
    delta_bytes = bytes_on_disk(delta)
    their_second = skopeo_sync("--src", "yaml", "--dest", "dir", pushed["spec"], tree2)
    bench.record(
        "air gap: second export after one new tag (delta bundle with the inventory vs a new skopeo tree)",
        "bytes = new tag + metadata",
        second[:2],
        their_second,
        "delta %d bytes = new tag's own %d bytes + %d bytes of manifests and index; skopeo %.1f MiB"
        % (delta_bytes, new_bytes, delta_bytes - new_bytes, bytes_on_disk(tree2) / MiB),
    )

    # Peak RSS against the bundle size: the same export with a base layer 8 times larger.
    print("pushing the larger set for the RSS case ...", flush=True)
    large = push_repositories(bench, a.host, "gapbig", base * 8, top, 2, TAGS, 7000)
    small = push_repositories(bench, a.host, "gapsmall", base, top, 2, TAGS, 8000)
    small_run = ours("--sync", small["spec"], "oci:" + os.path.join(work, "rss-small"))
    large_run = ours("--sync", large["spec"], "oci:" + os.path.join(work, "rss-large"))
    bench.record(
        "air gap: export peak RSS, bundle %.0f MiB vs %.0f MiB (ours small, ours large)"
        % (bytes_on_disk(os.path.join(work, "rss-small")) / MiB, bytes_on_disk(os.path.join(work, "rss-large")) / MiB),
        "RSS flat",
        small_run[:2],
        large_run[:2],
        "columns: small bundle | large bundle (both ours)",
    )


def main() -> int:
    from run import Bench, write_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "air-gap.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="oci-images-air-gap-bench-")
    bench = Bench(work, args.scale)
    try:
        run_air_gap_cases(bench)
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_table(bench, args.scale, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
