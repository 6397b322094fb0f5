"""The mirror role in batches: a line per batch while it runs, and batches that add up to what one task does."""

from __future__ import annotations

import json
import re
import sys

import pytest
from ansible_run import run_playbook
from counting_proxy import CountingProxy
from images import build_image
from many_repositories import RegistryFiller

from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient

pytestmark = pytest.mark.timeout(900)

APP_TAGS = ["1.%d.0" % n for n in range(8)]
TOOLS_TAGS = ["a", "b", "c"]
PLAYBOOK = """
- hosts: all
  gather_facts: false
  roles:
    - role: oci.images.mirror
  post_tasks:
    - name: Keep what the role registered
      ansible.builtin.copy:
        content: "{{ {'copied': mirror_copy.copied, 'unchanged': mirror_copy.unchanged, 'failed_count': mirror_copy.failed_count,
                      'not_attempted': mirror_copy.not_attempted, 'msg': mirror_copy.msg | default(None),
                      'results': mirror_copy.results | map(attribute='dest') | map('regex_replace', '^docker://[^/]+/[^/]+/', '') | sort}
                     | to_json }}"
        dest: "{{ summary_dir }}/{{ inventory_hostname }}.json"
      check_mode: false
      delegate_to: localhost
"""
_LINE = re.compile(
    r"batch (\d+)/(\d+): (\d+)/(\d+) images done \((\d+) (copied|to copy), (\d+) up to date, (\d+) failed\), "
    r"([\d.]+ (?:Bytes|KB|MB|GB)) in [\d.]+ s, [\d.]+ (?:Bytes|KB|MB|GB)/s"
)


@pytest.fixture(scope="module")
def source(tmp_path_factory, registry):
    """Two repositories upstream: app with eight tags (eight images), tools with three."""
    layout = str(tmp_path_factory.mktemp("batches-src") / "layout")
    with RegistryClient(registry.host, ConnectionOptions(validate_certs=False)) as client:
        filler = RegistryFiller(client)
        for n, tag in enumerate(APP_TAGS):
            filler.push("batches-src/app", build_image(layout, ref=tag, layer_sizes=(3000, 2000), seed="app-%d" % n), [tag])
        for tag in TOOLS_TAGS:
            filler.push("batches-src/tools", build_image(layout, ref="tools-" + tag, layer_sizes=(1500,), seed="tools-" + tag), [tag])
    return {registry.host: {"tls-verify": False, "images": {"batches-src/app": [], "batches-src/tools": []}}}


def mirror(tmp_path, source, dest: str, hosts=("worker-a",), check: bool = False, **variables):
    """Run the role on ``hosts``; (the process, each host's registered mirror_copy in short)."""
    playbook = tmp_path / "mirror.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[workers]\n" + "".join("%s ansible_connection=local ansible_python_interpreter=%s\n" % (h, sys.executable) for h in hosts))
    summaries = tmp_path / "summaries"
    summaries.mkdir(exist_ok=True)
    for old in summaries.iterdir():
        old.unlink()
    extra = {"mirror_sync": source, "mirror_dest": dest, "mirror_dest_validate_certs": False, "summary_dir": str(summaries), **variables}
    proc = run_playbook(str(playbook), extra, inventory=str(inventory), check=check)
    registered = {path.stem: json.loads(path.read_text()) for path in summaries.iterdir()}
    return proc, registered


def lines(proc) -> list[tuple]:
    return [m.groups() for m in _LINE.finditer(proc.stdout)]


def test_batches_print_progress_and_add_up_to_one_task(registry, source, tmp_path):
    total = len(APP_TAGS) + len(TOOLS_TAGS)
    whole, whole_result = mirror(tmp_path, source, "%s/whole" % registry.host)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert not lines(whole)  # one task, no batches

    with CountingProxy(registry.host) as proxy:
        batched, batched_result = mirror(tmp_path, source, "%s/batched" % proxy.host, mirror_batch_size=3)
        assert batched.returncode == 0, batched.stdout + batched.stderr
        puts = sorted(path for method, path in proxy.writes() if method == "PUT" and "/manifests/" in path)
    # Every image exactly once, as one task copies them.
    assert puts == sorted(["/v2/batched/app/manifests/%s" % t for t in APP_TAGS] + ["/v2/batched/tools/manifests/%s" % t for t in TOOLS_TAGS])
    assert batched_result["worker-a"] == whole_result["worker-a"]
    assert whole_result["worker-a"]["copied"] == total and whole_result["worker-a"]["not_attempted"] == 0

    progress = lines(batched)
    count = (total + 2) // 3
    assert [(int(p[0]), int(p[1])) for p in progress] == [(n, count) for n in range(1, count + 1)], batched.stdout
    done = [int(p[2]) for p in progress]
    assert done == sorted(done) and done[-1] == total and all(int(p[3]) == total for p in progress)
    # Uploaded, not mounted: the copies go to another registry host (the proxy).
    assert progress[-1][4:8] == (str(total), "copied", "0", "0") and not progress[-1][8].startswith("0.00 ")
    assert "%d images, %d to copy, in %d batches of about 3" % (total, total, count) in batched.stdout

    again, again_result = mirror(tmp_path, source, "%s/batched" % registry.host, mirror_batch_size=3)
    assert again.returncode == 0, again.stdout
    assert lines(again)[-1][2:8] == (str(total), str(total), "0", "copied", str(total), "0")
    assert again_result["worker-a"]["unchanged"] == total and again_result["worker-a"]["copied"] == 0


def test_check_mode_shows_the_same_plan_in_batches_and_writes_nothing(registry, source, tmp_path):
    total = len(APP_TAGS) + len(TOOLS_TAGS)
    whole, whole_result = mirror(tmp_path, source, "%s/planned-whole" % registry.host, check=True)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    with CountingProxy(registry.host) as proxy:
        batched, batched_result = mirror(tmp_path, source, "%s/planned" % proxy.host, check=True, mirror_batch_size=4)
        assert batched.returncode == 0, batched.stdout + batched.stderr
        assert proxy.writes() == []
    assert batched_result["worker-a"] == whole_result["worker-a"]
    assert batched_result["worker-a"]["copied"] == total
    progress = lines(batched)
    assert len(progress) == 3 and progress[-1][2:6] == (str(total), str(total), str(total), "to copy")


def test_batches_of_sliced_workers_copy_each_image_once(registry, source, tmp_path):
    with CountingProxy(registry.host) as proxy:
        proc, registered = mirror(tmp_path, source, "%s/sliced-batches" % proxy.host, hosts=("worker-b", "worker-a"), mirror_slice=True, mirror_batch_size=2)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        puts = sorted(path for method, path in proxy.writes() if method == "PUT" and "/manifests/" in path)
    expected = sorted(["/v2/sliced-batches/app/manifests/%s" % t for t in APP_TAGS] + ["/v2/sliced-batches/tools/manifests/%s" % t for t in TOOLS_TAGS])
    assert puts == expected
    copied = sorted(registered["worker-a"]["results"] + registered["worker-b"]["results"])
    assert copied == sorted(p.replace("/v2/sliced-batches/", "").replace("/manifests/", ":") for p in expected)
    assert registered["worker-a"]["copied"] + registered["worker-b"]["copied"] == len(expected)


def test_a_failed_image_fails_its_batch_and_the_role_with_keep_going_after_the_others(registry, source, tmp_path):
    broken = {registry.host: {"tls-verify": False, "images": {"batches-src/app": [], "batches-src/gone": ["1"]}}}
    with CountingProxy(registry.host) as proxy:
        going, _registered = mirror(tmp_path, broken, "%s/going" % proxy.host, mirror_batch_size=3, mirror_keep_going=True)
        puts = sorted(path for method, path in proxy.writes() if method == "PUT" and "/manifests/" in path)
    assert going.returncode != 0
    assert puts == sorted("/v2/going/app/manifests/%s" % t for t in APP_TAGS)
    assert re.search(r"batch \d of 3: 1 of \d copies failed: \S*batches-src/gone:1", going.stdout), going.stdout
    assert lines(going)[-1][2:8] == ("9", "9", str(len(APP_TAGS)), "copied", "0", "1")

    # Without mirror_keep_going the plan already fails, and nothing is written.
    with CountingProxy(registry.host) as proxy:
        stopped, _registered = mirror(tmp_path, broken, "%s/stopped" % proxy.host, mirror_batch_size=3)
        assert proxy.writes() == []
    assert stopped.returncode != 0 and "batches-src/gone:1" in stopped.stdout
    assert not lines(stopped)


def early_tag(registry_host: str, dest_host: str, batches: int) -> tuple[int, str]:
    """(batch, tag): an app tag of the earliest batch that some later batch follows, by the slice hash the role uses."""
    from ansible_collections.oci.images.plugins.module_utils._mirror import CopyPair, slice_pairs
    from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
    from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference

    pairs = [
        CopyPair(
            parse_reference("docker://%s/batches-src/%s:%s" % (registry_host, repo, tag)),
            parse_reference("docker://%s/stopping/%s:%s" % (dest_host, repo, tag)),
            ConnectionOptions(),
        )
        for repo, tags in (("app", APP_TAGS), ("tools", TOOLS_TAGS))
        for tag in tags
    ]
    cut = [slice_pairs(pairs, b, batches) for b in range(batches)]
    batch = next(b for b in range(batches) if any(p.dest.repository == "stopping/app" for p in cut[b]) and any(cut[b + 1 :]))
    return batch + 1, next(p.src.tag for p in cut[batch] if p.dest.repository == "stopping/app")


def test_without_keep_going_the_batches_after_a_failed_one_are_not_started(registry, source, tmp_path):
    from fault_proxy import FaultProxy

    total = len(APP_TAGS) + len(TOOLS_TAGS)
    with FaultProxy(registry.host) as proxy:
        # The plan (check mode) writes nothing and passes; the batch that copies this tag cannot store its manifest.
        batch, tag = early_tag(registry.host, proxy.host, 4)
        proxy.add("status_500", method="PUT", path=r"/v2/stopping/app/manifests/%s$" % re.escape(tag), nth=None)
        proc, registered = mirror(tmp_path, source, "%s/stopping" % proxy.host, mirror_batch_size=3)
        stored = {e.path.rpartition("/")[2] for e in proxy.exchanges("PUT", r"/manifests/") if e.status in (200, 201)}
    assert proc.returncode != 0 and registered == {}
    assert re.search(r"batch %d of 4: .*stopping/app:%s" % (batch, re.escape(tag)), proc.stdout), proc.stdout
    # A line for each batch up to the failed one, none after it; the later batches' images were not attempted, and the message says how many.
    progress = lines(proc)
    assert [int(p[0]) for p in progress] == list(range(1, batch + 1)), proc.stdout
    done = int(progress[-1][2])
    assert progress[-1][7] == "1" and len(stored) == done - 1 and tag not in stored and done < total
    assert "%d images of the batches after it not attempted (set mirror_keep_going" % (total - done) in proc.stdout
