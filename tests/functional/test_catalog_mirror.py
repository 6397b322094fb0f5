"""A whole registry (or a namespace of it) mirrored in one task: image_copy with ``catalog``, and the mirror role.

The source namespace holds six repositories in two namespaces below it, sharing a base layer; one
repository is left out by ``repositories.exclude`` and one tag of each by ``tags``. Both registries
that need a login (htpasswd+TLS, token) are source and destination at once, at ``parallel_images: 8``:
two cold runs into new prefixes, then no-op runs, then check mode into a prefix that stays empty.
"""

from __future__ import annotations

import json
import sys
import uuid

import pytest
from ansible_run import run_module, run_tasks_on_hosts
from images import build_image
from many_repositories import RegistryFiller

from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._catalog import list_repositories
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient

pytestmark = pytest.mark.timeout(600)

KINDS = ("basic", "token")
REPOSITORIES = ("team/app", "team/db", "team/web", "tools/cli", "tools/lint", "scratch-tmp")
TAGS = ("1.0", "1.1", "dev")
PARALLEL = 8


def client_of(reg) -> RegistryClient:
    return RegistryClient(reg.host, ConnectionOptions(username=reg.username, password=reg.password, ca_cert=reg.ca_cert))


@pytest.fixture(scope="module")
def filled(basic_registry, token_registry, tmp_path_factory) -> dict:
    """Per kind: its registry and the namespace holding REPOSITORIES x TAGS (each image a shared base and its own layer)."""
    layout = str(tmp_path_factory.mktemp("catalog-mirror") / "layout")
    images = {}
    for r, repository in enumerate(REPOSITORIES):
        for t, tag in enumerate(TAGS):
            key = "%s:%s" % (repository, tag)
            images[key] = build_image(layout, ref="i%d-%d" % (r, t), layer_sizes=(4096, 1024), layer_keys=["base", key], seed=key)
    found = {}
    for kind, reg in zip(KINDS, (basic_registry, token_registry)):
        namespace = "cat-%s" % uuid.uuid4().hex[:6]
        with client_of(reg) as client:
            plan = [("%s/%s" % (namespace, key.split(":")[0]), image, [key.split(":")[1]]) for key, image in images.items()]
            RegistryFiller(client).push_all(plan, parallel=4)
        found[kind] = (reg, namespace, {key: image["manifest_digest"] for key, image in images.items()})
    return found


def inventory(tmp_path, filled) -> str:
    hosts = {}
    for kind, (reg, namespace, _digests) in filled.items():
        hosts[kind] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "reg_host": reg.host,
            "reg_user": reg.username,
            "reg_password": reg.password,
            "reg_ca": reg.ca_cert,
            "namespace": namespace,
        }
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return str(path)


def run_tasks(tmp_path, filled, tasks: list, names: list[str]) -> dict:
    return run_tasks_on_hosts(tmp_path, inventory(tmp_path, filled), KINDS, tasks, names)


def mirror_task(name: str, prefix: str, **extra) -> dict:
    args = {
        "catalog": "{{ reg_host }}/{{ namespace }}",
        "repositories": {"exclude": ["{{ namespace }}/scratch-.*"]},
        "tags": {"exclude": ["dev"]},
        "dest": "{{ reg_host }}/%s" % prefix,
        "src_username": "{{ reg_user }}",
        "src_password": "{{ reg_password }}",
        "src_ca_cert": "{{ reg_ca }}",
        "dest_username": "{{ reg_user }}",
        "dest_password": "{{ reg_password }}",
        "dest_ca_cert": "{{ reg_ca }}",
        "parallel_images": PARALLEL,
        "retries": 1,
    }
    args.update(extra)
    return {"name": name, "oci.images.image_copy": args, "register": name, "ignore_errors": True}


def expected_pairs(reg, namespace: str, prefix: str, digests: dict) -> dict:
    """dest reference -> source digest, for every image the selection names."""
    wanted = {}
    for key, digest in digests.items():
        repository, tag = key.split(":")
        if repository.startswith("scratch-") or tag == "dev":
            continue
        wanted["docker://%s/%s/%s/%s:%s" % (reg.host, prefix, namespace, repository, tag)] = digest
    return wanted


def test_a_namespace_is_mirrored_in_one_task_with_its_repository_names_at_parallelism_8(filled, tmp_path):
    run = uuid.uuid4().hex[:6]
    rounds = [("cold0", "m-%s-0" % run), ("cold1", "m-%s-1" % run), ("noop0", "m-%s-0" % run), ("noop1", "m-%s-1" % run)]
    tasks = [mirror_task(name, prefix) for name, prefix in rounds]
    results = run_tasks(tmp_path, filled, tasks, [name for name, _prefix in rounds])

    for kind, (reg, namespace, digests) in filled.items():
        for name, prefix in rounds:
            result = results[kind][name]
            failures = [r.get("msg") for r in result.get("results") or [] if r.get("failed")]
            assert not result.get("failed") and failures == [], (kind, name, result.get("msg"), failures)
            wanted = expected_pairs(reg, namespace, prefix, digests)
            got = {r["dest"]: r["dest_digest_after"] for r in result["results"]}
            assert got == wanted, (kind, name)
            assert {r["src"] for r in result["results"]} == {
                "docker://%s/%s/%s" % (reg.host, namespace, dest.split("/%s/%s/" % (prefix, namespace), 1)[1]) for dest in wanted
            }
            assert result["copied"] == (len(wanted) if name.startswith("cold") else 0), (kind, name)
            assert result["changed"] is name.startswith("cold")
        # What the registry itself lists under the prefix: the five selected repositories, nothing else.
        with client_of(reg) as client:
            listed = [r for r in list_repositories(client) if r.startswith("m-%s-0/" % run)]
            assert sorted(listed) == sorted("m-%s-0/%s/%s" % (run, namespace, r) for r in REPOSITORIES if not r.startswith("scratch-"))
            assert sorted(client.list_tags("m-%s-0/%s/team/app" % (run, namespace))) == ["1.0", "1.1"]


def test_check_mode_predicts_the_copies_and_writes_nothing(filled, tmp_path):
    run = uuid.uuid4().hex[:6]
    task = dict(mirror_task("plan", "p-%s" % run), check_mode=True)
    results = run_tasks(tmp_path, filled, [task], ["plan"])
    for kind, (reg, namespace, digests) in filled.items():
        result = results[kind]["plan"]
        assert not result.get("failed"), result.get("msg")
        wanted = expected_pairs(reg, namespace, "p-%s" % run, digests)
        assert {r["dest"] for r in result["results"]} == set(wanted)
        assert result["copied"] == len(wanted) and result["changed"]
        with client_of(reg) as client:
            assert [r for r in list_repositories(client) if r.startswith("p-%s/" % run)] == []


def test_a_repository_whose_tags_cannot_be_listed_fails_alone_with_keep_going(filled):
    reg, namespace, _digests = filled["basic"]
    run = uuid.uuid4().hex[:6]
    common = dict(
        catalog="%s/%s" % (reg.host, namespace),
        dest="%s/k-%s" % (reg.host, run),
        src_username=reg.username,
        src_password=reg.password,
        src_ca_cert=reg.ca_cert,
        dest_username=reg.username,
        dest_password=reg.password,
        dest_ca_cert=reg.ca_cert,
        tags={"include": ["1[.]0"]},
    )
    named = dict(common, repositories={"names": ["%s/team/app" % namespace, "%s/team/gone" % namespace]}, keep_going=True)
    result = run_module("image_copy", named)
    assert result.failed
    failed = [r for r in result.result["results"] if r.get("failed")]
    assert [r["src"] for r in failed] == ["docker://%s/%s/team/gone" % (reg.host, namespace)]
    assert failed[0]["dest"] == "docker://%s/k-%s/%s/team/gone" % (reg.host, run, namespace)
    assert result.result["copied"] == 1 and "team/gone" in result.result["msg"]
    assert reg.password not in result.output

    stop = run_module("image_copy", dict(named, keep_going=False, dest="%s/s-%s" % (reg.host, run)))
    assert stop.failed and "team/gone" in stop.result["msg"] and "Traceback" not in stop.output


def test_a_namespace_carried_in_one_bundle_arrives_with_the_same_digests(filled, registry, tmp_path):
    # The connected side: the whole namespace (less what is excluded) into one oci-archive; the other side: the bundle into a registry.
    reg, namespace, digests = filled["token"]
    bundle = str(tmp_path / "carry.tar")
    export = dict(
        catalog="%s/%s" % (reg.host, namespace),
        repositories={"exclude": ["%s/scratch-.*" % namespace]},
        tags={"exclude": ["dev"]},
        dest="oci-archive:" + bundle,
        src_username=reg.username,
        src_password=reg.password,
        src_ca_cert=reg.ca_cert,
        parallel_images=PARALLEL,
    )
    first = run_module("image_copy", export)
    assert not first.failed and first.changed, first.result.get("msg")
    wanted = {key: digest for key, digest in digests.items() if not key.startswith("scratch-") and not key.endswith(":dev")}
    assert first.result["copied"] == len(wanted)
    assert reg.password not in first.output

    run = uuid.uuid4().hex[:6]
    back = run_module("image_copy", dict(src="oci-archive:" + bundle, dest="%s/back-%s" % (registry.host, run), dest_validate_certs=False))
    assert not back.failed, back.result.get("msg")
    with RegistryClient(registry.host, ConnectionOptions(validate_certs=False)) as client:
        for key, digest in wanted.items():
            repository, tag = key.split(":")
            # Without scoped, each image lands at the last path component of its name (team/app -> back-RUN/app).
            assert client.head_manifest("back-%s/%s" % (run, repository.rsplit("/", 1)[1]), tag).digest == digest, key


def test_catalog_is_exclusive_with_the_other_selections(registry):
    result = run_module("image_copy", dict(catalog=registry.host, src="docker://%s/a:1" % registry.host, dest=registry.host))
    assert result.failed and "mutually exclusive" in result.result["msg"]
    alone = run_module("image_copy", dict(src="docker://%s/a" % registry.host, dest="docker://%s/b" % registry.host, repositories={"include": ["a"]}))
    assert alone.failed and "catalog" in alone.result["msg"]
