"""Load: 20 images (1 GiB in all) in one image_copy task, parallel_images 8, through the fault proxy with resets.

    .venv/bin/python tests/bench/load_bench.py [--scale 1.0] [--out FILE]

Not a pass/fail test. The images are pushed with skopeo to a registry; the task copies them
registry to registry through a fault proxy (sources and destinations under two host names, so
every byte is downloaded and uploaded rather than mounted) that resets some blob downloads
mid-body and some uploads mid-body. It reports whether every image landed with its digest
(checked straight at the registry with skopeo), the wall time, the retries the proxy forced,
and the peak RSS: of the whole ansible process tree (wait4) and of the module process alone
(VmHWM sampled from /proc while it runs). The goal is under 150 MiB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

from ansible_run import BIN, ansible_env  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from images import build_image  # noqa: E402
from registries import start_registry  # noqa: E402
from skopeo import copy as skopeo_copy  # noqa: E402
from skopeo import inspect_raw  # noqa: E402

MiB = 1024 * 1024
IMAGES = 20
GOAL_MIB = 150


def _descendants(pid: int) -> list[int]:
    children = []
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return []
    found = list(children)
    for child in children:
        found += _descendants(child)
    return found


def _hwm_kib(pid: int) -> tuple[str, int]:
    try:
        with open("/proc/%d/status" % pid) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        return cmdline, int(fields.get("VmHWM", "0 kB").split()[0])
    except (OSError, ValueError):
        return "", 0


class TreeSampler(threading.Thread):
    """Samples the high-water RSS of every process under ``pid``; the module is the one running AnsiballZ."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.module_kib = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for child in _descendants(self.pid):
                cmdline, kib = _hwm_kib(child)
                if "AnsiballZ" in cmdline or "ansible_collections.oci.images" in cmdline:
                    self.module_kib = max(self.module_kib, kib)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 1 GiB to move (0.05 for a quick look)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="oci-images-load-")
    registry = start_registry(os.path.join(work, "registry"), "plain")
    proxy = FaultProxy(registry.host, registry=registry)
    try:
        per_image = int(1024 * MiB * args.scale / IMAGES)
        sizes = (per_image * 3 // 4, per_image // 4)
        print("building and pushing %d images of %d MiB ..." % (IMAGES, per_image // MiB), flush=True)
        digests = {}
        for i in range(IMAGES):
            layout = os.path.join(work, "img%d" % i)
            image = build_image(layout, ref="1", layer_sizes=sizes, seed=5000 + i)
            skopeo_copy("oci:%s:1" % layout, "docker://%s/load/img%d:1" % (registry.host, i))
            digests[i] = image["manifest_digest"]
            shutil.rmtree(layout)
        # Some downloads and some uploads are cut half way through.
        proxy.add("reset_mid_body", "GET", r"/blobs/sha256:", nth=tuple(range(3, 200, 7)), after_bytes=sizes[0] // 2)
        proxy.add("reset_mid_upload", "PUT", r"/blobs/uploads/", nth=tuple(range(5, 200, 9)), after_bytes=sizes[0] // 3)
        port = proxy.host.split(":")[1]
        pairs = [("docker://127.0.0.1:%s/load/img%d:1" % (port, i), "docker://localhost:%s/mirror/img%d:1" % (port, i)) for i in range(IMAGES)]
        task = {
            "images": [{"src": src, "dest": dest} for src, dest in pairs],
            "parallel_images": 8,
            "src_validate_certs": False,
            "dest_validate_certs": False,
            "retries": 3,
        }
        cmd = [os.path.join(BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", "oci.images.image_copy", "-a", json.dumps(task)]
        print("copying through the fault proxy ...", flush=True)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=ansible_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        output = []
        reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)
        reader.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        sampler.stop.set()
        reader.join()
        proc.stdout.close()
        rc = os.waitstatus_to_exitcode(status)
        landed = sum(
            1 for i in range(IMAGES) if "sha256:" + hashlib.sha256(inspect_raw("docker://%s/mirror/img%d:1" % (registry.host, i))).hexdigest() == digests[i]
        )
        fired = {f.kind: f.fired for f in proxy.faults}
        figures = {
            "images": IMAGES,
            "total_mib": IMAGES * sum(sizes) // MiB,
            "landed": landed,
            "ansible_rc": rc,
            "seconds": round(seconds, 1),
            "faults_fired": fired,
            "peak_rss_tree_mib": usage.ru_maxrss // 1024,
            "peak_rss_module_mib": sampler.module_kib // 1024,
            "goal_mib": GOAL_MIB,
        }
        print(json.dumps(figures, indent=1))
        if rc != 0:
            print(output[0].decode(errors="replace")[-3000:])
        if args.out:
            with open(args.out, "w") as f:
                json.dump(figures, f, indent=1)
        return 0
    finally:
        proxy.stop()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
