"""The whole-registry footprint at scale: a 50-repository registry, its catalog and footprint, time and requests.

    .venv/bin/python tests/bench/registry_footprint_bench.py [--repositories 50] [--tags 60] [--out FILE] [--report DIR]

Builds a registry of REPOSITORIES repositories with TAGS tags each (a few thousand tags), whose images share base layers
across repositories (five bases, each used by a fifth of the repositories) and each have a small layer of their own; three
tags name each image, and every tenth repository holds a two-platform index. The images are pushed directly (each blob
uploaded once, mounted into the other repositories, manifests PUT under every tag), as tests/lib/many_tags.py does.

Then, against the registry and through a counting proxy (tests/lib/counting_proxy.py) in front of it:
- catalog + registry-wide footprint in one process (the code image_info runs, without Ansible's start-up): wall time and
  peak RSS straight to the registry, and every request by kind through the proxy (which opens a connection per request,
  so it is slower);
- the same through Ansible (ad-hoc image_info with catalog and footprint): wall time;
- the same with registry_storage (the registry's storage directory): what each tag names is read from there, so the
  requests are one per catalog page and one per distinct manifest;
- a second registry with the same tags and images but four times the layers per image: the request counts must not change,
  since no layer is read. Through the API alone the requests are one per catalog page, one per repository (its tag list),
  one per tag (the API says what a tag names only by its manifest) and one per distinct manifest not read through a tag
  (an index's images).

With --report DIR, also builds a small registry whose repositories differ (sizes, sharing, two untagged images) and writes
DIR/registry.html with footprint_report's renderer and DIR/registry.png, a headless-Chromium screenshot of it (the one
docs/footprint.md shows). Not a timed test: `make bench` does not run it; run it by hand.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

from collection_tree import ensure_collection_tree  # noqa: E402

sys.path.insert(0, ensure_collection_tree(REPO))

TEAMS = ("payments", "search", "web", "data", "platform")
APPS = ("api", "worker", "frontend", "scheduler", "gateway", "migrations", "cache", "indexer", "auth", "notifier")
BASES = ("debian", "alpine", "python", "node", "golang")
TAGS_PER_IMAGE = 3

# Runs in its own process: catalog and footprint of the registry behind the proxy, as image_info's catalog path does.
_MEASURE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
from ansible_collections.oci.images.plugins.module_utils._catalog import catalog_repositories, parse_catalog_scope
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient
from ansible_collections.oci.images.plugins.module_utils._registry._distribution_storage import DistributionStorage
from ansible_collections.oci.images.plugins.module_utils._registry_footprint import registry_footprint, scan_registry
started = time.monotonic()
scope = parse_catalog_scope(sys.argv[1])
with RegistryClient(scope.registry, ConnectionOptions(validate_certs=False)) as client:
    repositories = catalog_repositories(client, scope)
    listed = time.monotonic()
    scan = scan_registry(client, repositories, DistributionStorage(sys.argv[3]) if len(sys.argv) > 3 else None)
    footprint = registry_footprint(scan)
finished = time.monotonic()
json.dump({"catalog_seconds": listed - started, "seconds": finished - started, "manifests": len(scan.manifests), "footprint": footprint}, sys.stdout)
"""


def repository_names(count: int) -> list[str]:
    return ["%s/%s" % (TEAMS[n % len(TEAMS)], APPS[(n // len(TEAMS)) % len(APPS)] + ("" if n < 50 else "-%d" % (n // 50))) for n in range(count)]


def build_plan(layout: str, repositories: list[str], tags: int, layers: int) -> list[tuple[str, dict, list[str]]]:
    """(repository, image, tags) for every repository; ``layers`` layers of the base (shared) plus one of the image's own."""
    from images import build_image, build_index

    plan = []
    images = tags // TAGS_PER_IMAGE
    for number, repository in enumerate(repositories):
        base = BASES[number % len(BASES)]
        for index in range(images):
            image = build_image(
                layout,
                ref=None,
                layer_sizes=tuple([24 * 1024] * layers + [2 * 1024]),
                layer_keys=["%s-%d" % (base, n) for n in range(layers)] + ["%s-%d-own" % (repository, index)],
                seed="%s-%d" % (repository, index),
                labels={"repository": repository, "build": str(index)},
            )
            names = ["1.%d.%d" % (index, n) for n in range(TAGS_PER_IMAGE)]
            if index == images - 1:
                names.append("latest")
            plan.append((repository, image, names))
        if number % 10 == 0:
            plan.append((repository, build_index(layout, ref=None, layer_sizes=(8 * 1024,), seed="%s-multi" % repository), ["multi"]))
    return plan


def fill(host: str, plan) -> float:
    from many_repositories import RegistryFiller

    from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
    from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient

    started = time.monotonic()
    with RegistryClient(host, ConnectionOptions(validate_certs=False)) as client:
        RegistryFiller(client).push_all(plan, parallel=8)
    return time.monotonic() - started


def request_kinds(requests: list[tuple[str, str]]) -> dict[str, int]:
    kinds: collections.Counter = collections.Counter()
    for method, path in requests:
        if path.startswith("/v2/_catalog"):
            kinds["catalog pages"] += 1
        elif "/tags/list" in path:
            kinds["tag lists"] += 1
        elif "/manifests/sha256:" in path:
            kinds["manifests by digest"] += 1
        elif "/manifests/" in path:
            kinds["manifests by tag"] += 1
        elif "/blobs/" in path:
            kinds["blobs"] += 1
        else:
            kinds["other (%s %s)" % (method, path.split("?")[0])] += 1
    return dict(sorted(kinds.items()))


def measure(host: str, proxy=None, storage: str | None = None) -> dict:
    """Catalog and footprint of ``host`` (through ``proxy``, with the registry's ``storage`` when given), in a process of its own:
    result, wall time, peak RSS, requests."""
    if proxy is not None:
        proxy.reset()
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", _MEASURE, proxy.host if proxy else host, ensure_collection_tree(REPO), *([storage] if storage else [])],
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
        )
        out = proc.stdout.read()
        proc.stdout.close()
        _unused, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            raise RuntimeError("measuring failed: %s" % errors.read().decode(errors="replace")[-3000:])
    result = json.loads(out)
    result["wall_seconds"] = time.monotonic() - started
    result["rss"] = usage.ru_maxrss // 1024
    if proxy is not None:
        result["requests"] = len(proxy.requests)
        result["kinds"] = request_kinds(proxy.requests)
    return result


def through_ansible(host: str) -> tuple[float, dict]:
    from ansible_run import run_module

    started = time.monotonic()
    run = run_module("image_info", {"catalog": host, "footprint": True, "validate_certs": False}, timeout=1800)
    if run.failed:
        raise RuntimeError(run.output[-3000:])
    return time.monotonic() - started, run.result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--repositories", type=int, default=50)
    parser.add_argument("--tags", type=int, default=60, help="tags per repository (three per image)")
    parser.add_argument("--out", help="also write the results as JSON here")
    parser.add_argument("--report", help="write registry.html and registry.png (a Chromium screenshot) into this directory")
    args = parser.parse_args()

    from counting_proxy import CountingProxy
    from registries import start_registry

    work = tempfile.mkdtemp(prefix="oci-bench-registry-")
    registries = []
    rows = {}
    try:
        repositories = repository_names(args.repositories)
        for name, layers in (("base", 2), ("layers x4", 8)):
            registry = start_registry(os.path.join(work, name.replace(" ", "-")), "plain")
            registries.append(registry)
            print("building and pushing %d repositories x %d tags (%d shared base layers per image) ..." % (len(repositories), args.tags, layers), flush=True)
            plan = build_plan(os.path.join(work, "layout-%d" % layers), repositories, args.tags, layers)
            pushed = fill(registry.host, plan)
            direct = measure(registry.host)
            direct_storage = measure(registry.host, storage=registry.data_dir)
            with CountingProxy(registry.host) as proxy:
                result = measure(registry.host, proxy)
                with_storage = measure(registry.host, proxy, registry.data_dir)
            footprint = result.pop("footprint")
            rows[name] = {
                "repositories": len(footprint["repositories"]),
                "tags": sum(r["tags"] for r in footprint["repositories"].values()),
                "distinct manifests": result["manifests"],
                "blobs": len(footprint["blobs"]),
                "stored": footprint["total_bytes"],
                "sum of repository sizes": sum(r["size"] for r in footprint["repositories"].values()),
                "push seconds": round(pushed, 1),
                "catalog seconds": round(direct["catalog_seconds"], 3),
                "catalog + footprint seconds": round(direct["seconds"], 2),
                "peak RSS MiB": direct["rss"],
                "catalog + footprint seconds through the counting proxy": round(result["seconds"], 2),
                "requests": result["requests"],
                "requests by kind": result["kinds"],
                "with registry_storage: requests": with_storage["requests"],
                "with registry_storage: requests by kind": with_storage["kinds"],
                "with registry_storage: catalog + footprint seconds": round(direct_storage["seconds"], 2),
                "with registry_storage: peak RSS MiB": direct_storage["rss"],
                "with registry_storage: seconds through the counting proxy": round(with_storage["seconds"], 2),
            }
            assert with_storage["footprint"]["total_bytes"] == footprint["total_bytes"]
            if name == "base":
                seconds, via_ansible = through_ansible(registry.host)
                assert via_ansible["footprint"]["total_bytes"] == footprint["total_bytes"]
                rows[name]["through Ansible seconds"] = round(seconds, 2)
        print(json.dumps(rows, indent=2))
        if args.report:
            write_report(work, args.report)
        base, more = rows["base"], rows["layers x4"]
        expected = base["requests by kind"].get("catalog pages", 0) + base["repositories"] + base["tags"]
        print(
            "requests: %d = catalog pages + %d tag lists + %d tags + %d manifests by digest (index images); with 4x the layers: %d"
            % (base["requests"], base["repositories"], base["tags"], base["requests by kind"].get("manifests by digest", 0), more["requests"])
        )
        print(
            "with registry_storage: %d = catalog pages + %d distinct manifests; with 4x the layers: %d"
            % (base["with registry_storage: requests"], base["distinct manifests"], more["with registry_storage: requests"])
        )
        assert base["requests"] == more["requests"] and base["with registry_storage: requests"] == more["with registry_storage: requests"]
        assert base["requests by kind"].get("blobs", 0) == 0 and base["requests"] >= expected
        assert base["with registry_storage: requests"] == base["requests by kind"]["catalog pages"] + base["distinct manifests"]
        if args.out:
            with open(args.out, "w") as handle:
                json.dump(rows, handle, indent=2)
    finally:
        for registry in registries:
            registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def write_report(work: str, directory: str) -> None:
    """The report of a small registry whose repositories differ, with untagged images, as docs/footprint.md shows it."""
    from browser import screenshot
    from images import build_image
    from registries import start_registry

    from ansible_collections.oci.images.plugins.module_utils._footprint_report import render_html, summary_lines

    registry = start_registry(os.path.join(work, "showcase"), "plain")
    try:
        layout = os.path.join(work, "showcase-layout")
        bases = {"debian": (900, 300), "alpine": (120,), "python": (900, 300, 700)}
        repositories = {
            "payments/api": ("python", 260, 6),
            "payments/worker": ("python", 180, 4),
            "search/indexer": ("debian", 1400, 3),
            "search/api": ("debian", 90, 5),
            "web/frontend": ("alpine", 640, 8),
            "web/edge": ("alpine", 40, 2),
            "data/etl": ("python", 2100, 2),
            "platform/base-debian": ("debian", 0, 1),
        }
        plan = []
        for repository, (base, own, images) in repositories.items():
            for index in range(images):
                sizes = [kib * 1024 for kib in bases[base]] + ([own * 1024 // (1 + index % 3)] if own else [])
                keys = ["%s-%d" % (base, n) for n in range(len(bases[base]))] + (["%s-%d" % (repository, index)] if own else [])
                image = build_image(layout, ref=None, layer_sizes=tuple(sizes), layer_keys=keys, seed="%s-%d" % (repository, index))
                plan.append((repository, image, ["1.%d" % index] + (["latest"] if index == images - 1 else [])))
        # A nightly tag that moved on to a new image: the old nightly stays, untagged.
        for repository in ("search/indexer", "data/etl"):
            base, own, images = repositories[repository]
            keys = ["%s-%d" % (base, n) for n in range(len(bases[base]))]
            sizes = [kib * 1024 for kib in bases[base]] + [own * 1024]
            for night in ("monday", "tuesday"):
                image = build_image(layout, ref=None, layer_sizes=tuple(sizes), layer_keys=[*keys, "%s-%s" % (repository, night)], seed=repository + night)
                plan.append((repository, image, ["nightly"]))
        fill(registry.host, plan)
        result = measure(registry.host, storage=registry.data_dir)
    finally:
        registry.stop()
    os.makedirs(directory, exist_ok=True)
    page = os.path.join(directory, "registry.html")
    with open(page, "w") as handle:
        handle.write(render_html(result["footprint"], "Storage of registry.example.com", top=6).replace(registry.host, "registry.example.com"))
    print("\n".join(summary_lines(result["footprint"], top=6)).replace(registry.host, "registry.example.com"))
    width, height = screenshot("file://" + page, os.path.join(directory, "registry.png"), 1100, 1260)
    print("report: %s, screenshot: %s (%dx%d)" % (page, os.path.join(directory, "registry.png"), width, height))


if __name__ == "__main__":
    sys.exit(main())
