"""Benchmarks: the copy engine against skopeo on the same registries in the same run.

    .venv/bin/python tests/bench/run.py [--scale 1.0] [--out FILE]

Each case runs our engine as its own process (tests/bench/copy_cli.py: the batch engine image_copy
runs) and skopeo as its own process, alternately, ``--runs`` times (3 by default), on identical
destinations (cold cases: a fresh registry per run), and reports the median and the min wall
time of each, their ratios ours/skopeo, and each process's peak RSS. ``--scale`` shrinks the sizes for a quick look (0.05 = 5%).
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
#: The timing fields of a row, in table order.
_TIMES = ("ours_median", "ours_min", "skopeo_median", "skopeo_min", "ratio", "ratio_min")
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, int]:
    """Run a command; return (seconds, peak RSS in MiB of that process)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    _unused, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s %s" % (" ".join(cmd), out.decode(errors="replace")[-2000:], err.decode(errors="replace")[-2000:]))
    return elapsed, usage.ru_maxrss // 1024


#: Our process as an installed program runs: with its bytecode cached (PYTHONDONTWRITEBYTECODE, set in some shells and
#: CI images, would make every run compile the collection again: 0.5 s of a no-op on a loaded 2-core machine).
OWN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def ours(src: str, dest: str, *extra: str) -> tuple[float, int]:
    return timed([sys.executable, os.path.join(HERE, "copy_cli.py"), src, dest, *extra], OWN_ENV)


def ours_many(pairs_file: str, *extra: str) -> tuple[float, int]:
    return timed([sys.executable, os.path.join(HERE, "copy_cli.py"), "--images", pairs_file, *extra], OWN_ENV)


def skopeo_copy(src: str, dest: str) -> tuple[float, int]:
    flags = ["--src-tls-verify=false"] if src.startswith("docker://") else []
    flags += ["--dest-tls-verify=false"] if dest.startswith("docker://") else []
    return timed([SKOPEO, "--insecure-policy", "copy", "--quiet", *flags, src, dest])


def skopeo_sync(yaml_file: str, dest: str, *extra: str) -> tuple[float, int]:
    return timed([SKOPEO, "--insecure-policy", "sync", *extra, "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", yaml_file, dest])


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def write_json(path: str, data) -> str:
    with open(path, "w") as handle:
        json.dump(data, handle)  # JSON is YAML too (sync specs)
    return path


class Bench:
    def __init__(self, work: str, scale: float, runs: int = 3):
        self.work = work
        self.scale = scale
        self.runs = runs
        self.rows: list[dict] = []
        self.registries = []

    def registry(self, name: str):
        reg = start_registry(tempfile.mkdtemp(prefix=name + "-", dir=self.work), kind="plain")
        self.registries.append(reg)
        return reg

    def fresh(self, name: str):
        """A registry for one run (cold cases: nothing in it, and no blob cache of skopeo's knows it); stopped after."""
        return _OneRun(self, name)

    def compare(self, case: str, goal: str, our_run, their_run, note="", runs: int | None = None) -> dict:
        """Run ours and skopeo alternately ``runs`` times (``our_run(i)``, ``their_run(i)`` give (seconds, RSS MiB));
        record the median and the min of each, their ratios and the peak RSS. ``note`` may be a callable of the row."""
        ours_s, theirs_s, ours_rss, theirs_rss = [], [], [], []
        for i in range(runs or self.runs):
            seconds, rss = our_run(i)[:2]
            ours_s.append(seconds)
            ours_rss.append(rss)
            seconds, rss = their_run(i)[:2]
            theirs_s.append(seconds)
            theirs_rss.append(rss)
        row = {
            "case": case,
            "runs": len(ours_s),
            "ours_median": median(ours_s),
            "ours_min": min(ours_s),
            "skopeo_median": median(theirs_s),
            "skopeo_min": min(theirs_s),
            "ours_rss": max(ours_rss),
            "skopeo_rss": max(theirs_rss),
            "goal": goal,
        }
        row["ratio"] = row["ours_median"] / row["skopeo_median"] if row["skopeo_median"] else float("inf")
        row["ratio_min"] = row["ours_min"] / row["skopeo_min"] if row["skopeo_min"] else float("inf")
        row["note"] = note(row) if callable(note) else note
        self.rows.append(row)
        print(
            "%-60s ours %6.2f/%6.2fs  skopeo %6.2f/%6.2fs  ratio %5.2f (min %5.2f)  RSS %4d / %4d MiB  goal %s %s"
            % tuple(row[k] for k in ("case", *_TIMES, "ours_rss", "skopeo_rss", "goal", "note")),
            flush=True,
        )
        return row

    def size(self, nbytes: int) -> int:
        return max(4096, int(nbytes * self.scale))

    def run(self) -> None:
        a, b, c = self.registry("a"), self.registry("b"), self.registry("c")
        layout = os.path.join(self.work, "layout")
        layer = self.size(32 * MiB)
        print("building test images (8 x %d MiB gzip layers, 1 x %d MiB layer) ..." % (layer // MiB, self.size(512 * MiB) // MiB), flush=True)
        build_image(layout, ref="big", layer_sizes=(layer,) * 8, seed=100)
        build_image(layout, ref="huge", layer_sizes=(self.size(512 * MiB),), seed=200)
        big = "oci:%s:big" % layout

        # 1. cold oci: -> registry (a fresh registry each run); 2. the same again; 3. same registry, other repository (mount)
        def cold(copy):
            def one(_i):
                with self.fresh("cold") as reg:
                    return copy(big, "docker://%s/cold/big:1" % reg.host)

            return one

        self.compare("cold copy oci: -> registry, 8 gzip layers", "<= 0.75", cold(ours), cold(skopeo_copy))
        ours(big, "docker://%s/ours/big:1" % b.host)
        skopeo_copy(big, "docker://%s/skopeo/big:1" % c.host)
        with CountingProxy(b.host) as proxy:
            ours(big, "docker://%s/ours/big:1" % proxy.host)
            requests = len(proxy.requests)
        self.compare(
            "same copy again (no-op)",
            "<= 2.0",
            lambda _i: ours(big, "docker://%s/ours/big:1" % b.host),
            lambda _i: skopeo_copy(big, "docker://%s/skopeo/big:1" % c.host),
            "ours: %d request(s) per run" % requests,
        )
        self.compare(
            "same registry, other repository (mount)",
            "<= 2.0",
            lambda i: ours("docker://%s/ours/big:1" % b.host, "docker://%s/ours/big-mounted%d:1" % (b.host, i)),
            lambda i: skopeo_copy("docker://%s/skopeo/big:1" % c.host, "docker://%s/skopeo/big-mounted%d:1" % (c.host, i)),
        )
        # 4. registry -> a fresh registry, one big layer
        skopeo_copy("oci:%s:huge" % layout, "docker://%s/src/huge:1" % a.host)

        def huge(copy):
            def one(_i):
                with self.fresh("huge") as reg:
                    return copy("docker://%s/src/huge:1" % a.host, "docker://%s/dest/huge:1" % reg.host)

            return one

        self.compare("registry -> other registry, one %d MiB layer" % (self.size(512 * MiB) // MiB), "<= 0.8, RSS <= 64", huge(ours), huge(skopeo_copy))
        # 5. 30 images x 3 layers: images: list vs skopeo sync, cold (fresh registries) and no-op
        small = os.path.join(self.work, "small")
        sync_yaml = {a.host: {"tls-verify": False, "images": {}}}
        for i in range(30):
            build_image(small, ref="img%d" % i, layer_sizes=(self.size(2 * MiB), self.size(1 * MiB), self.size(512 * 1024)), seed=1000 + i)
            skopeo_copy("oci:%s:img%d" % (small, i), "docker://%s/many/img%d:1" % (a.host, i))
            sync_yaml[a.host]["images"]["many/img%d" % i] = ["1"]
        yaml_file = write_json(os.path.join(self.work, "sync.yaml"), sync_yaml)

        def pairs_into(host: str) -> str:
            pairs = [{"src": "docker://%s/many/img%d:1" % (a.host, i), "dest": "docker://%s/synced/many/img%d:1" % (host, i)} for i in range(30)]
            return write_json(os.path.join(self.work, "pairs-%s.json" % host.replace(":", "-")), pairs)

        def thirty_ours(_i):
            with self.fresh("thirty") as reg:
                return ours_many(pairs_into(reg.host))

        def thirty_skopeo(_i):
            with self.fresh("thirty") as reg:
                return skopeo_sync(yaml_file, "%s/synced" % reg.host)

        self.compare("30 images x 3 layers, images: vs skopeo sync, cold", "<= 0.5", thirty_ours, thirty_skopeo)
        warm = pairs_into(b.host)
        ours_many(warm)
        skopeo_sync(yaml_file, "%s/synced" % c.host)
        self.compare(
            "30 images x 3 layers, images: vs skopeo sync, no-op",
            "<= 2.0",
            lambda _i: ours_many(warm),
            lambda _i: skopeo_sync(yaml_file, "%s/synced" % c.host),
        )
        self.shared_base(a)
        self.start_up(b)

    def start_up(self, reg) -> None:
        """What a module run costs beyond Ansible's own: image_info of one image against ansible.builtin.ping, 5 runs."""
        from ansible_run import BIN, ansible_env

        def adhoc(module: str, args: dict):
            cmd = [os.path.join(BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", module] + (["-a", json.dumps(args)] if args else [])
            return lambda _i: timed(cmd, ansible_env())

        image = {"image": "docker://%s/ours/big:1" % reg.host, "validate_certs": False}
        self.compare(
            "image_info of one image through Ansible, vs ansible.builtin.ping (not skopeo)",
            "within 0.1 s",
            adhoc("oci.images.image_info", image),
            adhoc("ansible.builtin.ping", {}),
            lambda row: "median difference %.2f s" % (row["ours_median"] - row["skopeo_median"]),
            runs=max(5, self.runs),
        )

    def shared_base(self, a) -> None:
        """8 repositories x 2 tags on one shared base: bytes the destination receives against the unique bytes, cold;
        then the same images into new repositories of that registry in a new process (ours with the blob cache)."""
        layout = os.path.join(self.work, "shared")
        base = self.size(16 * MiB)
        unique: dict[str, int] = {}
        sync_yaml = {a.host: {"tls-verify": False, "images": {}}}
        for r in range(8):
            for t in range(2):
                keys = ["base", "own-%d-%d" % (r, t)]
                info = build_image(layout, ref="r%d-t%d" % (r, t), layer_sizes=(base, self.size(MiB)), seed=5000 + 10 * r + t, layer_keys=keys)
                skopeo_copy("oci:%s:r%d-t%d" % (layout, r, t), "docker://%s/shared/app%d:t%d" % (a.host, r, t))
                sync_yaml[a.host]["images"].setdefault("shared/app%d" % r, []).append("t%d" % t)
                unique[info["config_digest"]] = info["config_size"]
                for layer in info["layers"]:
                    unique[layer["digest"]] = layer["size"]
        unique_bytes = sum(unique.values())
        yaml_file = write_json(os.path.join(self.work, "shared-sync.yaml"), sync_yaml)

        def pairs_into(host: str, prefix: str) -> str:
            pairs = [
                {"src": "docker://%s/shared/app%d:t%d" % (a.host, r, t), "dest": "docker://%s/%s/shared/app%d:t%d" % (host, prefix, r, t)}
                for r in range(8)
                for t in range(2)
            ]
            return write_json(os.path.join(self.work, "shared-%s-%s.json" % (host.replace(":", "-"), prefix.replace("/", "-"))), pairs)

        received: dict[str, list] = {"ours": [], "skopeo": []}

        def counted(who: str, run):
            def one(_i):
                with self.fresh("shared") as reg, CountingProxy(reg.host) as proxy:
                    measured = run(proxy.host)
                    received[who].append(proxy.bytes_received() / unique_bytes)
                return measured

            return one

        self.compare(
            "8 repositories x 2 tags sharing a %.1f MiB base, cold (via a counting proxy)" % (base / MiB),
            "1.0x unique bytes, <= 0.3",
            counted("ours", lambda host: ours_many(pairs_into(host, "m"))),
            counted("skopeo", lambda host: skopeo_sync(yaml_file, "%s/m" % host)),
            lambda _row: "bytes received / unique: ours %.2fx, skopeo %.2fx" % (max(received["ours"]), max(received["skopeo"])),
        )
        # A new process mirrors the same images into new repositories of a registry that has them.
        ours_reg, their_reg = self.registry("again-ours"), self.registry("again-skopeo")
        cache = os.path.join(self.work, "blob-cache.sqlite")
        ours_proxy, their_proxy = CountingProxy(ours_reg.host), CountingProxy(their_reg.host)
        try:
            ours_many(pairs_into(ours_proxy.host, "first"), "--blob-cache", cache)
            skopeo_sync(yaml_file, "%s/first" % their_proxy.host)
            moved: dict[str, list] = {"ours": [], "skopeo": []}

            def again(who: str, proxy, run):
                def one(i):
                    proxy.reset()
                    measured = run(i)
                    moved[who].append((sum(proxy.blob_uploads().values()), len(proxy.blob_mounts())))
                    return measured

                return one

            self.compare(
                "the same into new repositories, new process (ours: blob cache)",
                "0 uploads, <= 0.5",
                again("ours", ours_proxy, lambda i: ours_many(pairs_into(ours_proxy.host, "again%d" % i), "--blob-cache", cache)),
                again("skopeo", their_proxy, lambda i: skopeo_sync(yaml_file, "%s/again%d" % (their_proxy.host, i))),
                lambda _row: "uploaded/mounted: ours %d/%d, skopeo %d/%d" % (moved["ours"][-1] + moved["skopeo"][-1]),
            )
        finally:
            ours_proxy.stop()
            their_proxy.stop()

    def stop(self) -> None:
        for reg in self.registries:
            reg.stop()


class _OneRun:
    def __init__(self, bench: Bench, name: str):
        self.bench, self.name = bench, name

    def __enter__(self):
        self.reg = start_registry(tempfile.mkdtemp(prefix=self.name + "-", dir=self.bench.work), kind="plain")
        return self.reg

    def __exit__(self, *exc):
        self.reg.stop()
        shutil.rmtree(self.reg.workdir, ignore_errors=True)
        return False


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
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of ours and skopeo per case (median and min reported)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="oci-images-bench-")
    bench = Bench(work, args.scale, args.runs)
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
        "Machine: %s; scale %.2f; %d alternating runs per case" % (machine(), scale, bench.runs),
        "",
        "| case | ours median (s) | ours min (s) | skopeo median (s) | skopeo min (s) | ratio (medians) | ratio (mins)"
        " | ours peak RSS (MiB) | skopeo peak RSS (MiB) | goal | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in bench.rows:
        cells = tuple(r[k] for k in ("case", *_TIMES, "ours_rss", "skopeo_rss", "goal", "note"))
        lines.append("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %d | %s | %s |" % cells)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
