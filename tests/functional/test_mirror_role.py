"""The oci.images.mirror role: a sync spec as state, split over three workers with every image copied once."""

from __future__ import annotations

import collections
import json
import re
import sys

import pytest
from ansible_run import run_playbook
from counting_proxy import CountingProxy
from images import build_image

pytestmark = pytest.mark.timeout(900)

TAGS = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "2.2.0", "3.0.0", "3.1.0"]
PLAYBOOK = """
- hosts: all
  gather_facts: false
  roles:
    - role: oci.images.mirror
"""
_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@pytest.fixture(scope="module")
def source(tmp_path_factory, registry):
    """Two repositories upstream: app with eight version tags, tools with two."""
    from skopeo import copy

    layout = str(tmp_path_factory.mktemp("role-src") / "layout")
    for i, tag in enumerate(TAGS):
        build_image(layout, ref=tag, seed=500 + i, layer_sizes=(1024,))
        copy("oci:%s:%s" % (layout, tag), "docker://%s/role-src/app:%s" % (registry.host, tag))
    for i, tag in enumerate(["a", "b"]):
        build_image(layout, ref="tools-" + tag, seed=600 + i, layer_sizes=(1024,))
        copy("oci:%s:tools-%s" % (layout, tag), "docker://%s/role-src/tools:%s" % (registry.host, tag))
    return {registry.host: {"tls-verify": False, "images": {"role-src/app": [], "role-src/tools": ["a", "b"]}}}


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "mirror.yml"
    path.write_text(PLAYBOOK)
    return str(path)


def inventory(tmp_path, hosts: list[str]) -> str:
    path = tmp_path / ("hosts-%d.ini" % len(hosts))
    lines = ["%s ansible_connection=local ansible_python_interpreter=%s" % (h, sys.executable) for h in hosts]
    path.write_text("[workers]\n" + "\n".join(lines) + "\n")
    return str(path)


def recap(proc) -> dict[str, dict[str, int]]:
    return {m.group(1): {"changed": int(m.group(3)), "failed": int(m.group(5)) + int(m.group(4))} for m in _RECAP.finditer(proc.stdout)}


def manifest_puts(proxy: CountingProxy) -> list[str]:
    return [path for method, path in proxy.writes() if method == "PUT" and "/manifests/" in path]


def test_role_sliced_over_three_hosts_copies_each_image_exactly_once(registry, source, skopeo, playbook, tmp_path):
    workers = inventory(tmp_path, ["worker-c", "worker-a", "worker-b"])
    with CountingProxy(registry.host) as proxy:
        extra = {"mirror_sync": source, "mirror_dest": "%s/sliced" % proxy.host, "mirror_dest_validate_certs": False, "mirror_slice": True}
        first = run_playbook(playbook, extra, inventory=workers)
        assert first.returncode == 0, first.stdout + first.stderr
        puts = manifest_puts(proxy)
        expected = ["/v2/sliced/app/manifests/%s" % t for t in TAGS] + ["/v2/sliced/tools/manifests/a", "/v2/sliced/tools/manifests/b"]
        assert sorted(puts) == sorted(expected)  # every image once, none twice
        hosts = recap(first)
        assert set(hosts) == {"worker-a", "worker-b", "worker-c"} and not any(h["failed"] for h in hosts.values())
        assert sum(1 for h in hosts.values() if h["changed"]) >= 2  # the work really was split
        for tag in TAGS:
            assert skopeo.inspect_raw("docker://%s/sliced/app:%s" % (registry.host, tag)) == skopeo.inspect_raw(
                "docker://%s/role-src/app:%s" % (registry.host, tag)
            )

        proxy.reset()
        second = run_playbook(playbook, extra, inventory=workers)
        assert second.returncode == 0, second.stdout + second.stderr
        assert all(h["changed"] == 0 for h in recap(second).values())
        assert proxy.writes() == []


def test_role_without_slicing_mirrors_everything_and_prunes_what_the_policy_drops(registry, source, skopeo, playbook, tmp_path):
    # A tag left over from an older mirror run (an image of its own): the prune policy (keep the 8 highest versions) removes it.
    skopeo.copy("docker://%s/role-src/tools:a" % registry.host, "docker://%s/plain/app:0.9.0" % registry.host)
    one = inventory(tmp_path, ["worker-a"])
    extra = {
        "mirror_sync": source,
        "mirror_dest": "%s/plain" % registry.host,
        "mirror_dest_validate_certs": False,
        "mirror_prune": {"keep_latest": len(TAGS), "order": "semver", "exclude": ["a", "b"]},
    }
    first = run_playbook(playbook, extra, inventory=one)
    assert first.returncode == 0, first.stdout + first.stderr
    tags = sorted(json.loads(skopeo.skopeo("list-tags", "--tls-verify=false", "docker://%s/plain/app" % registry.host))["Tags"])
    assert tags == sorted(TAGS)
    tools = json.loads(skopeo.skopeo("list-tags", "--tls-verify=false", "docker://%s/plain/tools" % registry.host))["Tags"]
    assert sorted(tools) == ["a", "b"]
    second = run_playbook(playbook, extra, inventory=one)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second)["worker-a"]["changed"] == 0


def test_role_refuses_a_spec_without_destination(playbook, tmp_path):
    proc = run_playbook(playbook, {"mirror_sync": {"example.com": {"images": {"a": []}}}}, inventory=inventory(tmp_path, ["worker-a"]))
    assert proc.returncode != 0
    assert "mirror_dest" in proc.stdout
    counts = collections.Counter(h["failed"] for h in recap(proc).values())
    assert counts[1] == 1
