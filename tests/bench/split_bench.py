"""Split archives: the volumes of a bundle, and reading it back from volumes against the unsplit archive.

    .venv/bin/python tests/bench/split_bench.py [--size-mib 1024] [--split-size 300M] [--runs 3] [--out FILE]

One image with one layer of ``--size-mib`` pseudo-random bytes (incompressible) is written as an
unsplit ``oci-archive:`` and as volumes of ``--split-size``; each is then read back into an
``oci:`` layout (every blob read and verified, the volumes checked against their index first).
Each copy is its own process (tests/bench/copy_cli.py); wall time is the median of ``--runs``,
peak RSS that process's. The files stay in the page cache between runs (a warm read).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
sys.path.insert(0, HERE)

from images import build_image  # noqa: E402
from run import timed  # noqa: E402

MiB = 1024 * 1024


def copy(src: str, dest: str, *extra: str) -> tuple[float, int]:
    return timed([sys.executable, os.path.join(HERE, "copy_cli.py"), src, dest, *extra])


def median_copy(runs: int, src: str, dest_dir: str, dest: str, *extra: str) -> tuple[float, int]:
    times, peaks = [], []
    for _unused in range(runs):
        shutil.rmtree(dest_dir, ignore_errors=True)
        seconds, peak = copy(src, dest, *extra)
        times.append(seconds)
        peaks.append(peak)
    return statistics.median(times), max(peaks)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--split-size", default="300M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="split-bench-", dir=os.environ.get("BENCH_DIR"))
    try:
        image = build_image(os.path.join(work, "layout"), ref="x", layer_sizes=(args.size_mib * MiB,), seed=4242)
        src = "oci:%s:x" % image["layout"]
        whole = os.path.join(work, "whole.tar")
        media = os.path.join(work, "media")
        os.mkdir(media)
        split = os.path.join(media, "bundle.tar")
        result = {"image_mib": round(sum(image["layer_sizes"]) / MiB, 1), "split_size": args.split_size}
        result["write_whole_s"], result["write_whole_rss_mib"] = copy(src, "oci-archive:%s:x" % whole)
        result["write_split_s"], result["write_split_rss_mib"] = copy(src, "oci-archive:%s:x" % split, "--split-size", args.split_size)
        with open(split + ".volumes.json") as f:
            index = json.load(f)
        result["archive_bytes"] = os.path.getsize(whole)
        result["volumes"] = [[v["name"], v["size"]] for v in index["volumes"]]
        back = os.path.join(work, "back")
        result["read_whole_s"], result["read_whole_rss_mib"] = median_copy(args.runs, "oci-archive:%s:x" % whole, back, "oci:%s:x" % back)
        result["read_split_s"], result["read_split_rss_mib"] = median_copy(args.runs, "oci-archive:%s:x" % split, back, "oci:%s:x" % back)
        result["read_split_over_whole"] = round(result["read_split_s"] / result["read_whole_s"], 2)
        for key, value in list(result.items()):
            if key.endswith("_s"):
                result[key] = round(value, 2)
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
