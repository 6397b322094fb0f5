"""Benchmarks: the copy engine against skopeo on the same registries in the same run.

    .venv/bin/python tests/bench/run.py [--scale 1.0] [--out FILE]

Each case runs our engine as its own process (tests/bench/copy_cli.py) and skopeo as its
own process, on identical fresh destinations, and reports wall time, the ratio ours/skopeo,
and each process's peak RSS. ``--scale`` shrinks the sizes for a quick look (0.05 = 5%).
Not part of the pass/fail tests: `make bench` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

from counting_proxy import CountingProxy  # noqa: E402
from images import build_image  # noqa: E402
from mirror_bench import run_mirror_cases  # noqa: E402
from registries import start_registry  # noqa: E402

MiB = 1024 * 1024
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


def timed(cmd: list[str]) -> tuple[float, int]:
    """Run a command; return (seconds, peak RSS in MiB of that process)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _unused, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s %s" % (" ".join(cmd), out.decode(errors="replace")[-2000:], err.decode(errors="replace")[-2000:]))
    return elapsed, usage.ru_maxrss // 1024


def ours(src: str, dest: str) -> tuple[float, int]:
    return timed([sys.executable, os.path.join(HERE, "copy_cli.py"), src, dest])


def ours_many(pairs_file: str) -> tuple[float, int]:
    return timed([sys.executable, os.path.join(HERE, "copy_cli.py"), "--images", pairs_file])


def skopeo_copy(src: str, dest: str) -> tuple[float, int]:
    flags = ["--src-tls-verify=false"] if src.startswith("docker://") else []
    flags += ["--dest-tls-verify=false"] if dest.startswith("docker://") else []
    return timed([SKOPEO, "--insecure-policy", "copy", "--quiet", *flags, src, dest])


def median_of(n: int, run) -> tuple[float, int]:
    samples = sorted(run() for _unused in range(n))
    return samples[len(samples) // 2]


class Bench:
    def __init__(self, work: str, scale: float):
        self.work = work
        self.scale = scale
        self.rows: list[dict] = []
        self.registries = []

    def registry(self, name: str):
        reg = start_registry(os.path.join(self.work, name), kind="plain")
        self.registries.append(reg)
        return reg

    def record(self, case: str, goal: str, our: tuple[float, int], their: tuple[float, int], note: str = "") -> None:
        ratio = our[0] / their[0] if their[0] else float("inf")
        row = {"case": case, "ours_s": our[0], "skopeo_s": their[0], "ratio": ratio, "ours_rss": our[1], "skopeo_rss": their[1], "goal": goal, "note": note}
        self.rows.append(row)
        fields = (case, our[0], their[0], ratio, our[1], their[1], goal, note)
        print("%-58s ours %7.2fs  skopeo %7.2fs  ratio %5.2f  RSS %4d / %4d MiB  goal %s %s" % fields, flush=True)

    def size(self, nbytes: int) -> int:
        return max(4096, int(nbytes * self.scale))

    def run(self) -> None:
        a, b, c = self.registry("a"), self.registry("b"), self.registry("c")
        layout = os.path.join(self.work, "layout")
        layer = self.size(32 * MiB)
        print("building test images (8 x %d MiB gzip layers, 1 x %d MiB layer) ..." % (layer // MiB, self.size(512 * MiB) // MiB), flush=True)
        build_image(layout, ref="big", layer_sizes=(layer,) * 8, seed=100)
        build_image(layout, ref="huge", layer_sizes=(self.size(512 * MiB),), seed=200)

        # 1. cold oci: -> registry; 2. the same again; 3. same registry, other repository (mount)
        self.record(
            "cold copy oci: -> registry, 8 gzip layers",
            "<= 1.0",
            ours("oci:%s:big" % layout, "docker://%s/ours/big:1" % b.host),
            skopeo_copy("oci:%s:big" % layout, "docker://%s/skopeo/big:1" % c.host),
        )
        with CountingProxy(b.host) as proxy:
            noop_ours = median_of(3, lambda: ours("oci:%s:big" % layout, "docker://%s/ours/big:1" % proxy.host))
            requests = len(proxy.requests) // 3
        self.record(
            "same copy again (no-op)",
            "<= 0.5",
            noop_ours,
            median_of(3, lambda: skopeo_copy("oci:%s:big" % layout, "docker://%s/skopeo/big:1" % c.host)),
            "(ours: %d request(s) per run)" % requests,
        )
        self.record(
            "same registry, other repository (mount)",
            "<= 1.0",
            ours("docker://%s/ours/big:1" % b.host, "docker://%s/ours/big-mounted:1" % b.host),
            skopeo_copy("docker://%s/skopeo/big:1" % c.host, "docker://%s/skopeo/big-mounted:1" % c.host),
        )
        # 4. registry -> second registry, one big layer
        skopeo_copy("oci:%s:huge" % layout, "docker://%s/src/huge:1" % a.host)
        self.record(
            "registry -> other registry, one %d MiB layer" % (self.size(512 * MiB) // MiB),
            "<= 1.0, RSS <= 64",
            ours("docker://%s/src/huge:1" % a.host, "docker://%s/ours/huge:1" % b.host),
            skopeo_copy("docker://%s/src/huge:1" % a.host, "docker://%s/skopeo/huge:1" % c.host),
        )
        # 5. 30 images x 3 layers: images: list vs skopeo sync, cold and no-op
        small = os.path.join(self.work, "small")
        sync_yaml = {a.host: {"tls-verify": False, "images": {}}}
        pairs = []
        for i in range(30):
            build_image(small, ref="img%d" % i, layer_sizes=(self.size(2 * MiB), self.size(1 * MiB), self.size(512 * 1024)), seed=1000 + i)
            skopeo_copy("oci:%s:img%d" % (small, i), "docker://%s/many/img%d:1" % (a.host, i))
            sync_yaml[a.host]["images"]["many/img%d" % i] = ["1"]
            pairs.append({"src": "docker://%s/many/img%d:1" % (a.host, i), "dest": "docker://%s/synced/img%d:1" % (b.host, i)})
        pairs_file = os.path.join(self.work, "pairs.json")
        with open(pairs_file, "w") as handle:
            json.dump(pairs, handle)
        yaml_file = os.path.join(self.work, "sync.yaml")
        with open(yaml_file, "w") as handle:
            json.dump(sync_yaml, handle)  # JSON is YAML
        sync = [SKOPEO, "--insecure-policy", "sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", yaml_file, "%s/synced" % c.host]
        self.record("30 images x 3 layers, images: vs skopeo sync, cold", "<= 0.5", ours_many(pairs_file), timed(sync))
        noop = median_of(3, lambda: ours_many(pairs_file))
        self.record("30 images x 3 layers, images: vs skopeo sync, no-op", "<= 0.5", noop, median_of(3, lambda: timed(sync)))

    def stop(self) -> None:
        for reg in self.registries:
            reg.stop()


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    skopeo_version = subprocess.run([SKOPEO, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return "%s, %d cores, Python %s, %s" % (cpu or platform.machine(), os.cpu_count() or 0, platform.python_version(), skopeo_version)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "latest.md"))
    parser.add_argument("--mirror-tags", type=int, default=1000, help="tags of the repository in the large mirror case (mirror_bench.py)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="oci-images-bench-")
    bench = Bench(work, args.scale)
    try:
        bench.run()
        run_mirror_cases(bench, args.mirror_tags)
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_table(bench, args.scale, args.out)
    return 0


def write_table(bench: Bench, scale: float, out: str) -> None:
    """Print the markdown table of every row and write it to ``out``."""
    lines = [
        "Machine: %s; scale %.2f" % (machine(), scale),
        "",
        "| case | ours (s) | skopeo (s) | ratio | ours peak RSS (MiB) | skopeo peak RSS (MiB) | goal | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in bench.rows:
        cells = (r["case"], r["ours_s"], r["skopeo_s"], r["ratio"], r["ours_rss"], r["skopeo_rss"], r["goal"], r["note"])
        lines.append("| %s | %.2f | %.2f | %.2f | %d | %d | %s | %s |" % cells)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
