"""Benchmark: converting a layer's compression, ours against skopeo in the same run.

    .venv/bin/python tests/bench/compression_bench.py [--size-mib 256] [--runs 3] [--out FILE]

One image with one layer of ``--size-mib`` MiB (a tar of one file of compressible text and random
bytes, about 3:1 for gzip), in an OCI layout as gzip and as zstd. Each case converts it into a fresh
OCI layout (local to local, so compression is what is timed): our engine as its own process
(copy_cli.py --compression) and ``skopeo copy --dest-compress --dest-compress-format``, alternating,
``--runs`` times each. Reported: median and minimum wall time, throughput in MiB/s of the uncompressed
layer, the ratio of the medians ours/skopeo, and each process's peak RSS (the largest of the runs).
Not part of the pass/fail tests.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from images import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, add_to_index, canonical_json, write_blob  # noqa: E402
from run import OWN_ENV, SKOPEO, machine, timed  # noqa: E402

MiB = 1024 * 1024


class _TextReader:
    """``size`` bytes that compress like real files: words from a small vocabulary, with runs of random bytes."""

    def __init__(self, size: int, seed: int):
        self._left = size
        self._random = random.Random(seed)
        self._vocabulary = [
            bytes(self._random.choice(b"abcdefghijklmnopqrstuvwxyz_/.") for _unused in range(self._random.randint(2, 12))) for _unused in range(8192)
        ]
        self._pending = b""

    def _chunk(self) -> bytes:
        words = b" ".join(self._random.choices(self._vocabulary, k=40000))
        return words + b"\n" + self._random.randbytes(96 * 1024)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        while len(self._pending) < min(n, self._left):
            self._pending += self._chunk()
        n = min(n, self._left)
        data, self._pending = self._pending[:n], self._pending[n:]
        self._left -= n
        return data


class _Hashing:
    def __init__(self, target):
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        pass


def build_layout(layout: str, size: int) -> None:
    """The image with one gzip layer (level 6, as containers/image writes gzip) of a ``size``-byte file."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    tmp = os.path.join(layout, "layer.tmp")
    with open(tmp, "wb") as out:
        packed = _Hashing(out)
        with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=6, mtime=0) as gz:
            plain = _Hashing(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo("data/payload.txt")
                info.size = size
                tar.addfile(info, _TextReader(size, 7))
    digest = "sha256:" + packed.sha256.hexdigest()
    os.replace(tmp, os.path.join(layout, "blobs", "sha256", digest[7:]))
    config = canonical_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + plain.sha256.hexdigest()]}})
    config_digest, config_size = write_blob(layout, config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": packed.size}],
        }
    )
    manifest_digest, manifest_size = write_blob(layout, manifest)
    add_to_index(layout, {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size}, "gzip")
    print("layer: %d MiB uncompressed, %.1f MiB gzip" % (plain.size // MiB, packed.size / MiB), flush=True)


def check_converted(layout: str, target: str, who: str) -> None:
    """The run really converted: the layer in ``layout`` has the media type (and zstd:chunked annotations) asked for."""
    with open(os.path.join(layout, "index.json")) as handle:
        entry = json.load(handle)["manifests"][0]
    with open(os.path.join(layout, "blobs", "sha256", entry["digest"][7:])) as handle:
        layer = json.load(handle)["layers"][0]
    chunked = any(key.endswith("zstd-chunked.manifest-position") for key in layer.get("annotations") or {})
    got = "gzip" if layer["mediaType"].endswith("+gzip") else ("zstd:chunked" if chunked else "zstd")
    if got != target:
        raise RuntimeError("%s wrote a %s layer, not %s" % (who, got, target))


def ours(src: str, dest: str, compression: str) -> tuple[float, int]:
    return timed([sys.executable, os.path.join(HERE, "copy_cli.py"), "--compression", compression, src, dest], OWN_ENV)


def theirs(src: str, dest: str, compression: str) -> tuple[float, int]:
    return timed([SKOPEO, "--insecure-policy", "copy", "--quiet", "--dest-compress", "--dest-compress-format", compression, src, dest])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "compression.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="oci-images-bench-")
    rows = []
    try:
        layout = os.path.join(work, "src")
        build_layout(layout, args.size_mib * MiB)
        # The zstd source is skopeo's own conversion, so the zstd -> gzip case reads what containers/image writes. In a
        # layout of its own: in the gzip one, skopeo would reuse the gzip layer it finds there instead of converting.
        zstd_layout = os.path.join(work, "src-zstd")
        theirs("oci:%s:gzip" % layout, "oci:%s:zstd" % zstd_layout, "zstd")
        check_converted(zstd_layout, "zstd", "skopeo (the zstd source)")
        sources = {"gzip": "oci:%s:gzip" % layout, "zstd": "oci:%s:zstd" % zstd_layout}
        cases = (("gzip", "zstd"), ("gzip", "zstd:chunked"), ("zstd", "gzip"))
        for source, target in cases:
            samples: dict[str, list] = {"ours": [], "skopeo": []}
            for run in range(args.runs):
                order = (("ours", ours), ("skopeo", theirs)) if run % 2 == 0 else (("skopeo", theirs), ("ours", ours))
                for name, tool in order:
                    dest = os.path.join(work, "dest-%s-%d" % (name, run))
                    samples[name].append(tool(sources[source], "oci:%s:out" % dest, target))
                    check_converted(dest, target, name)
                    shutil.rmtree(dest, ignore_errors=True)
            row = {"case": "%s -> %s, %d MiB layer" % (source, target, args.size_mib)}
            for name in ("ours", "skopeo"):
                seconds = [s for s, _unused in samples[name]]
                row[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds), "rss_mib": max(r for _unused, r in samples[name]), "runs": seconds}
            row["ratio"] = row["ours"]["median_s"] / row["skopeo"]["median_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "Machine: %s; %d alternating runs each" % (machine(), args.runs),
        "",
        "| case | ours median (s) | ours min (s) | ours MiB/s | skopeo median (s) | skopeo min (s) | skopeo MiB/s | ratio ours/skopeo (median) |"
        " ours peak RSS (MiB) | skopeo peak RSS (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        o, s = row["ours"], row["skopeo"]
        lines.append(
            "| %s | %.2f | %.2f | %.0f | %.2f | %.2f | %.0f | %.2f | %d | %d |"
            % (
                row["case"],
                o["median_s"],
                o["min_s"],
                args.size_mib / o["median_s"],
                s["median_s"],
                s["min_s"],
                args.size_mib / s["median_s"],
                row["ratio"],
                o["rss_mib"],
                s["rss_mib"],
            )
        )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
