"""Mirror benchmarks: repository mode with tag selection against ``skopeo sync``, and a 1,000-tag repository.

    .venv/bin/python tests/bench/mirror_bench.py [--tags 1000] [--out FILE]

Also run by tests/bench/run.py (``make bench``) after the copy cases, into the same table.

- 24-tag repository, 15 tags selected, cold and no-op: ours is the batch engine as its own
  process (``copy_cli.py SRC DEST --include RE``: resolve_batch and run_batch, the code
  ``image_copy`` repository mode runs, without Ansible's start-up) against ``skopeo sync --all`` with the equivalent YAML (``images-by-tag-regex``),
  each into its own fresh registry. A row through Ansible (ad-hoc ``image_copy``) shows what
  Ansible adds.
- 1,000 tags (one small image's manifest under every tag) mirrored in one ``image_copy`` task
  through Ansible with ``parallel_images: 8``, then the no-op run: wall time and the peak RSS
  of the largest process of the ``ansible`` process tree (the module's own process), against
  ``skopeo sync`` of the same repository.
"""

from __future__ import annotations

import argparse
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

from collection_tree import ensure_collection_tree  # noqa: E402

sys.path.insert(0, ensure_collection_tree(REPO))

SKOPEO = "/usr/bin/skopeo"
SELECTED = 15
TOTAL = 24


def measured_tree(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run a command; (seconds, peak RSS in MiB of the largest process of its tree, from wait4, stdout)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    # Read output in threads so a chatty child never blocks on a full pipe while we wait for it.
    chunks: dict[str, bytes] = {}

    def drain(name, stream):
        chunks[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for reader in readers:
        reader.start()
    _unused, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    for reader in readers:
        reader.join()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = chunks.get("out", b"").decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s %s" % (" ".join(cmd[:6]), out[-2000:], chunks.get("err", b"").decode(errors="replace")[-2000:]))
    return elapsed, usage.ru_maxrss // 1024, out


def _ours(src: str, dest: str, include: str) -> tuple[float, int, str]:
    # Repository mode through the batch engine image_copy runs (copy_cli.py), as its own process.
    from run import OWN_ENV

    return measured_tree([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "copy_cli.py"), src, dest, "--include", include], OWN_ENV)


def _ansible(args: dict) -> tuple[float, int, dict]:
    from ansible_run import BIN, ansible_env

    cmd = [os.path.join(BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", "oci.images.image_copy", "-a", json.dumps(args)]
    seconds, rss, out = measured_tree(cmd, env=ansible_env())
    body = out[out.index("{") :]
    result, _unused = json.JSONDecoder().raw_decode(body)
    return seconds, rss, result


def _sync(yaml_file: str, dest: str) -> tuple[float, int]:
    cmd = [SKOPEO, "--insecure-policy", "sync", "--all", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", yaml_file, dest]
    seconds, rss, _unused = measured_tree(cmd)
    return seconds, rss


def run_mirror_cases(bench, tag_count: int = 1000) -> None:
    """Add the mirror rows to a run.py Bench (which owns the registries and the table)."""
    from images import build_image
    from many_tags import push_many_tags
    from skopeo import copy as skopeo_copy

    a, b, c = bench.registry("mirror-a"), bench.registry("mirror-b"), bench.registry("mirror-c")
    layout = os.path.join(bench.work, "mirror-layout")
    tags = ["1.%d.0" % i for i in range(SELECTED)] + ["dev-%d" % i for i in range(TOTAL - SELECTED)]
    print("pushing a %d-tag repository (%d tags selected) ..." % (TOTAL, SELECTED), flush=True)
    for i, tag in enumerate(tags):
        build_image(layout, ref=tag, layer_sizes=(bench.size(1024 * 1024), bench.size(256 * 1024)), seed=3000 + i)
        skopeo_copy("oci:%s:%s" % (layout, tag), "docker://%s/up/app:%s" % (a.host, tag))
    include = r"1\.[0-9]+\.0"
    yaml_file = os.path.join(bench.work, "mirror-sync.yaml")
    with open(yaml_file, "w") as handle:
        json.dump({a.host: {"tls-verify": False, "images-by-tag-regex": {"up/app": "^%s$" % include}}}, handle)  # JSON is YAML
    src = "docker://%s/up/app" % a.host

    def cold_ours(_i):
        with bench.fresh("mirror") as reg:
            run = _ours(src, "docker://%s/mirror/app" % reg.host, include)
        assert json.loads(run[2])["changed"] == SELECTED, run[2]
        return run

    def cold_sync(_i):
        with bench.fresh("mirror") as reg:
            return _sync(yaml_file, "%s/mirror" % reg.host)

    bench.compare("24-tag repo, 15 selected, vs skopeo sync --all, cold", "<= 0.6", cold_ours, cold_sync)
    _ours(src, "docker://%s/mirror/app" % b.host, include)
    _sync(yaml_file, "%s/mirror" % c.host)

    def noop_ours(_i):
        run = _ours(src, "docker://%s/mirror/app" % b.host, include)
        assert json.loads(run[2])["unchanged"] == SELECTED, run[2]
        return run

    bench.compare("24-tag repo, 15 selected, vs skopeo sync --all, no-op", "<= 2.0", noop_ours, lambda _i: _sync(yaml_file, "%s/mirror" % c.host))
    ansible_args = {"src": src, "dest": "docker://%s/mirror/app" % b.host, "tags": {"include": [include]}}
    ansible_args.update(src_validate_certs=False, dest_validate_certs=False)
    bench.compare(
        "24-tag repo, 15 selected, no-op, through Ansible (ad-hoc image_copy)",
        "-",
        lambda _i: _ansible(ansible_args),
        lambda _i: _sync(yaml_file, "%s/mirror" % c.host),
        "includes Ansible start-up",
    )

    print("pushing a %d-tag repository ..." % tag_count, flush=True)
    many = ["t%04d" % i for i in range(tag_count)]
    push_many_tags(a.host, "up/many", many, bench.work)

    def many_args(host: str) -> dict:
        return {
            "src": "docker://%s/up/many" % a.host,
            "dest": "docker://%s/mirror/many" % host,
            "parallel_images": 8,
            "src_validate_certs": False,
            "dest_validate_certs": False,
        }

    many_yaml = os.path.join(bench.work, "many-sync.yaml")
    with open(many_yaml, "w") as handle:
        json.dump({a.host: {"tls-verify": False, "images": {"up/many": []}}}, handle)

    def many_cold(_i):
        with bench.fresh("many") as reg:
            run = _ansible(many_args(reg.host))
        assert run[2]["copied"] == tag_count and len(run[2]["results"]) == tag_count, run[2].get("msg")
        return run

    def many_sync_cold(_i):
        with bench.fresh("many") as reg:
            return _sync(many_yaml, "%s/mirror" % reg.host)

    bench.compare("%d tags, one task, parallel_images 8, cold (Ansible)" % tag_count, "<= 0.3", many_cold, many_sync_cold)
    _ansible(many_args(b.host))
    _sync(many_yaml, "%s/mirror" % c.host)

    def many_noop(_i):
        run = _ansible(many_args(b.host))
        assert run[2]["unchanged"] == tag_count and not run[2]["changed"], run[2].get("msg")
        return run

    bench.compare(
        "%d tags, one task, parallel_images 8, no-op (Ansible)" % tag_count,
        "<= 0.35",
        many_noop,
        lambda _i: _sync(many_yaml, "%s/mirror" % c.host),
        "%d results, all unchanged" % tag_count,
    )


def main() -> int:
    from run import Bench, write_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "mirror.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="oci-images-mirror-bench-")
    bench = Bench(work, args.scale)
    try:
        run_mirror_cases(bench, args.tags)
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_table(bench, args.scale, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
