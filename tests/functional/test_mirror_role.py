"""The oci.images.mirror role: a sync spec as state, split over three workers with every image copied once."""

from __future__ import annotations

import collections
import json
import re
import sys

import pytest
from ansible_run import run_module, run_playbook
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


# The role's checks, each with words only its own failure message has.
CHECKS = {
    "dest": "mirror_dest is empty",
    "spec": "give exactly one of mirror_sync",
    "slice": "must be one of the workers",
    "selection": "mirror_repositories and mirror_tags select what mirror_catalog mirrors",
}
_SPEC = {"example.com": {"images": {"a": []}}}


@pytest.mark.parametrize(
    "check, extra, detail",
    [
        ("dest", {"mirror_dest": "", "mirror_sync": _SPEC}, ""),
        ("spec", {"mirror_dest": "example.com/m"}, "none is set"),
        ("spec", {"mirror_dest": "example.com/m", "mirror_sync": _SPEC, "mirror_sync_file": "/x.yaml"}, "mirror_sync and mirror_sync_file are set"),
        ("spec", {"mirror_dest": "example.com/m", "mirror_sync": _SPEC, "mirror_catalog": "example.com"}, "mirror_sync and mirror_catalog are set"),
        ("selection", {"mirror_dest": "example.com/m", "mirror_sync": _SPEC, "mirror_tags": {"include": ["1.*"]}}, ""),
        (
            "slice",
            {"mirror_dest": "example.com/m", "mirror_sync": _SPEC, "mirror_slice": True, "mirror_slice_hosts": ["w1", "w2"]},
            "(worker-a) must be one of the workers (w1, w2)",
        ),
    ],
    ids=["empty-dest", "no-spec", "two-specs", "spec-and-catalog", "tags-without-catalog", "not-a-worker"],
)
def test_role_says_which_check_failed(playbook, tmp_path, check, extra, detail):
    proc = run_playbook(playbook, extra, inventory=inventory(tmp_path, ["worker-a"]))
    assert proc.returncode != 0
    assert CHECKS[check] in proc.stdout and detail in proc.stdout, proc.stdout
    assert [name for name, words in CHECKS.items() if name != check and words in proc.stdout] == [], proc.stdout


def _seed(skopeo, reg, layout: str, repository: str, tags: list[str]) -> None:
    creds = ["--dest-creds", "%s:%s" % (reg.username, reg.password)] if reg.username else []
    for tag in tags:
        skopeo.copy("oci:%s:%s" % (layout, tag), "docker://%s/%s:%s" % (reg.host, repository, tag), *creds)


def test_role_takes_credentials_and_a_ca_for_each_side(fresh_registry, skopeo, playbook, tmp_path):
    # Source and destination each need a password and trust their own CA; the sync spec holds neither.
    src = fresh_registry("basic", username="reader", password="src-Secret-1")
    dest = fresh_registry("basic", username="writer", password="dest-Secret-2")
    assert src.ca_cert != dest.ca_cert
    layout = str(tmp_path / "layout")
    for i, tag in enumerate(["0.9.0", "1.1.0", "2.0.0"]):
        build_image(layout, ref=tag, seed=700 + i, layer_sizes=(1024,))
    _seed(skopeo, src, layout, "team/app", ["1.1.0", "2.0.0"])
    _seed(skopeo, dest, layout, "mirror/app", ["0.9.0"])  # left over from an older mirror: the prune removes it
    extra = {
        "mirror_sync": {src.host: {"images": {"team/app": ["1.1.0", "2.0.0"]}}},
        "mirror_dest": "%s/mirror" % dest.host,
        "mirror_src_username": src.username,
        "mirror_src_password": src.password,
        "mirror_src_ca_cert": src.ca_cert,
        "mirror_dest_username": dest.username,
        "mirror_dest_password": dest.password,
        "mirror_dest_ca_cert": dest.ca_cert,
        "mirror_prune": {"keep_latest": 2, "order": "semver"},
    }
    # No credential file anywhere: what the role is given is all there is.
    (tmp_path / "run").mkdir()
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path / "home"), "REGISTRY_AUTH_FILE": "", "DOCKER_CONFIG": str(tmp_path / "docker")}
    one = inventory(tmp_path, ["worker-a"])
    first = run_playbook(playbook, extra, inventory=one, env=env, verbosity=3)
    assert first.returncode == 0, first.stdout + first.stderr
    assert src.password not in first.stdout + first.stderr and dest.password not in first.stdout + first.stderr
    creds = "--creds=%s:%s" % (dest.username, dest.password)
    tags = json.loads(skopeo.skopeo("list-tags", "--tls-verify=false", creds, "docker://%s/mirror/app" % dest.host))["Tags"]
    assert sorted(tags) == ["1.1.0", "2.0.0"]
    second = run_playbook(playbook, extra, inventory=one, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second)["worker-a"]["changed"] == 0

    # A registry's credentials in the spec take precedence over the role's source variables.
    in_spec = dict(extra, mirror_src_password="not-" + src.password)
    in_spec["mirror_sync"] = {src.host: {"credentials": {"username": src.username, "password": src.password}, "images": {"team/app": ["1.1.0"]}}}
    proc = run_playbook(playbook, in_spec, inventory=one, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    wrong = dict(extra, mirror_src_password="not-" + src.password)
    failed = run_playbook(playbook, wrong, inventory=one, env=env, verbosity=3)
    assert failed.returncode != 0
    # The copy's output is hidden (a password was handed to it); the next task gives the module's own message.
    report = failed.stdout[failed.stdout.index("TASK [oci.images.mirror : Report why the mirror failed]") :]
    assert src.host in report.split("PLAY RECAP")[0], failed.stdout
    for secret in (src.password, dest.password, wrong["mirror_src_password"]):
        assert secret not in failed.stdout + failed.stderr


def test_parallel_copies_from_a_basic_auth_registry(fresh_registry, skopeo, tmp_path):
    src = fresh_registry("basic", username="reader", password="src-Secret-1")
    layout = str(tmp_path / "layout")
    tags = ["t%d" % i for i in range(4)]
    for i, tag in enumerate(tags):
        build_image(layout, ref=tag, seed=800 + i, layer_sizes=(1024,))
    _seed(skopeo, src, layout, "team/app", tags)
    args = {"images": [{"src": "docker://%s/team/app:%s" % (src.host, t), "dest": "oci:%s/out:%s" % (tmp_path, t)} for t in tags]}
    args.update(src_username=src.username, src_password=src.password, src_ca_cert=src.ca_cert, parallel_images=4)
    run = run_module("image_copy", args)
    assert not run.failed, run.result.get("msg")


def test_group_module_defaults_reach_the_roles_copy_and_prune(registry, source, skopeo, tmp_path):
    # One setting for a plain-HTTP destination: validate_certs in module_defaults for the group, no role variable.
    path = tmp_path / "with-defaults.yml"
    path.write_text(
        "- hosts: all\n  gather_facts: false\n  module_defaults:\n    group/oci.images.images:\n      validate_certs: false\n"
        "  roles:\n    - role: oci.images.mirror\n"
    )
    extra = {"mirror_sync": source, "mirror_dest": "%s/defaults" % registry.host, "mirror_prune": {"keep_latest": 2, "order": "semver", "include": ["[0-9].*"]}}
    proc = run_playbook(str(path), extra, inventory=inventory(tmp_path, ["worker-a"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tags = json.loads(skopeo.skopeo("list-tags", "--tls-verify=false", "docker://%s/defaults/app" % registry.host))["Tags"]
    assert sorted(tags) == ["3.0.0", "3.1.0"]


def test_role_with_keep_going_prunes_what_did_copy_and_then_fails_naming_the_repository_that_did_not(registry, source, skopeo, playbook, tmp_path):
    # A leftover tag in the good repository that the policy drops, and a repository upstream that does not exist.
    skopeo.copy("docker://%s/role-src/tools:a" % registry.host, "docker://%s/kg/app:0.9.0" % registry.host)
    spec = json.loads(json.dumps(source))
    spec[registry.host]["images"] = {"role-src/app": [], "role-src/missing": []}
    one = inventory(tmp_path, ["worker-a"])
    extra = {
        "mirror_sync": spec,
        "mirror_dest": "%s/kg" % registry.host,
        "mirror_dest_validate_certs": False,
        "mirror_keep_going": True,
        "mirror_prune": {"keep_latest": len(TAGS), "order": "semver"},
    }
    run = run_playbook(playbook, extra, inventory=one)
    assert run.returncode != 0
    assert "role-src/missing" in run.stdout
    tags = sorted(json.loads(skopeo.skopeo("list-tags", "--tls-verify=false", "docker://%s/kg/app" % registry.host))["Tags"])
    assert tags == sorted(TAGS)  # copied, and 0.9.0 pruned although another repository failed


def test_role_failure_without_keep_going_names_the_roles_variable(registry, source, playbook, tmp_path):
    spec = json.loads(json.dumps(source))
    spec[registry.host]["images"] = {"role-src/tools": ["a", "nope", "b"]}
    extra = {"mirror_sync": spec, "mirror_dest": "%s/kgoff" % registry.host, "mirror_dest_validate_certs": False, "mirror_parallel": 1}
    run = run_playbook(playbook, extra, inventory=inventory(tmp_path, ["worker-a"]))
    assert run.returncode != 0
    assert "set mirror_keep_going" in run.stdout and "set keep_going" not in run.stdout.replace("set mirror_keep_going", ""), run.stdout[-1500:]


def test_role_tls_failure_names_the_roles_variables(basic_registry, registry, playbook, tmp_path):
    spec = {registry.host: {"tls-verify": False, "images": {"role-src/tools": ["a"]}}}
    extra = {"mirror_sync": spec, "mirror_dest": "%s/tls" % basic_registry.host, "mirror_dest_username": "x", "mirror_dest_password": "y"}
    run = run_playbook(playbook, extra, inventory=inventory(tmp_path, ["worker-a"]))
    assert run.returncode != 0
    assert "set mirror_dest_ca_cert (or put the CA" in run.stdout and "set mirror_dest_validate_certs: false" in run.stdout, run.stdout[-2000:]


def test_role_mirrors_a_whole_registry_namespace_sliced_over_three_hosts(registry, source, skopeo, playbook, tmp_path):
    # The namespace role-src holds app (eight tags) and tools (two); the catalog is listed on each host, the images split between them.
    with CountingProxy(registry.host) as proxy:
        extra = {
            "mirror_catalog": "%s/role-src" % registry.host,
            "mirror_tags": {"semver": ">=2.0.0", "include": ["[0-9.]+", "a"]},
            "mirror_dest": "%s/whole" % proxy.host,
            "mirror_src_validate_certs": False,
            "mirror_dest_validate_certs": False,
            "mirror_slice": True,
            "mirror_parallel": 8,
        }
        proc = run_playbook(playbook, extra, inventory=inventory(tmp_path, ["worker-a", "worker-b", "worker-c"]))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # semver applies to every repository: tools' "a" is not a version, so only app's 2.x and 3.x tags are mirrored, each once.
        wanted = [t for t in TAGS if t >= "2"]
        assert sorted(manifest_puts(proxy)) == sorted("/v2/whole/role-src/app/manifests/%s" % t for t in wanted)
        for tag in wanted:
            assert skopeo.inspect_raw("docker://%s/whole/role-src/app:%s" % (registry.host, tag)) == skopeo.inspect_raw(
                "docker://%s/role-src/app:%s" % (registry.host, tag)
            )
        assert sum(h["changed"] for h in recap(proc).values()) >= 1

        again = run_playbook(playbook, extra, inventory=inventory(tmp_path, ["worker-a", "worker-b", "worker-c"]))
        assert again.returncode == 0 and [h["changed"] for h in recap(again).values()] == [0, 0, 0], again.stdout
        assert len(manifest_puts(proxy)) == len(wanted)


AIR_GAP_PLAYBOOK = """
- hosts: all
  gather_facts: false
  roles:
    - role: oci.images.mirror
  post_tasks:
    - name: Keep the copy result for the test
      ansible.builtin.copy:
        content: "{{ mirror_copy | to_json }}"
        dest: "{{ result_file }}"
      check_mode: false
"""


def test_role_exports_a_bundle_and_imports_it_with_check_mode_predicting_the_import(registry, fresh_registry, source, skopeo, tmp_path):
    playbook = tmp_path / "air-gap.yml"
    playbook.write_text(AIR_GAP_PLAYBOOK)
    bundle = "oci-archive:%s" % (tmp_path / "bundle.tar")
    inventory_file = str(tmp_path / "inventory.json")
    other = fresh_registry()
    # The same variables serve both plays; only mirror_air_gap differs.
    common = {"mirror_sync": source, "mirror_bundle": bundle, "mirror_inventory": inventory_file, "mirror_dest": "%s/mirror" % other.host}

    def play(mode: str, name: str, check: bool = False) -> dict:
        result_file = str(tmp_path / (name + ".json"))
        proc = run_playbook(str(playbook), dict(common, mirror_air_gap=mode, mirror_dest_validate_certs=False, result_file=result_file), check=check)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with open(result_file) as handle:
            return json.load(handle)

    exported = play("export", "export")
    assert exported["copied"] == len(TAGS) + 2
    predicted = play("import", "predicted", check=True)
    assert predicted["copied"] == len(TAGS) + 2
    assert __import__("requests").get("http://%s/v2/_catalog" % other.host, timeout=10).json()["repositories"] == [], "check mode writes nothing"
    imported = play("import", "imported")

    def outcome(result: dict) -> list:
        return sorted((r["dest"], r["changed"], r["dest_digest_after"], r["blobs"]["copied"], r["blobs"]["skipped"]) for r in result["results"])

    assert outcome(predicted) == outcome(imported)
    assert imported["copied"] == len(TAGS) + 2
    for tag in TAGS:
        assert skopeo.inspect_raw("docker://%s/mirror/app:%s" % (other.host, tag)) == skopeo.inspect_raw("docker://%s/role-src/app:%s" % (registry.host, tag))
    again = play("import", "again")
    assert (again["copied"], again["changed"]) == (0, False)
    with open(inventory_file) as handle:
        assert len(json.load(handle)["images"]) == len(TAGS) + 2


def test_role_with_the_blob_cache_mounts_a_later_mirror_instead_of_uploading(registry, source, playbook, tmp_path):
    """Three workers share one cache file; a second mirror into new repositories sends no blob, it mounts them all."""
    workers = inventory(tmp_path, ["worker-a", "worker-b", "worker-c"])
    cache = str(tmp_path / "blob-cache.sqlite")
    with CountingProxy(registry.host) as proxy:

        def mirror(prefix: str) -> None:
            extra = {"mirror_sync": source, "mirror_dest": "%s/%s" % (proxy.host, prefix), "mirror_dest_validate_certs": False, "mirror_slice": True}
            extra.update(mirror_blob_cache=True, mirror_blob_cache_path=cache)
            proc = run_playbook(playbook, extra, inventory=workers)
            assert proc.returncode == 0, proc.stdout + proc.stderr

        mirror("cached-first")
        assert proxy.blob_uploads()
        proxy.reset()
        mirror("cached-second")
        assert proxy.blob_uploads() == {}
        assert proxy.blob_mounts() and len(manifest_puts(proxy)) == len(TAGS) + 2
