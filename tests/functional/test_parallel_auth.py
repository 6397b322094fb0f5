"""Parallel copies into registries that need a login: every parallel path, Basic and token auth, zero failures.

Each module run is a new process with a new authenticator, so its first requests race each other
for the registry's challenge (and, with token auth, for the token of each scope). Every path that
copies or reads in parallel runs at ``parallel_images: 8`` against the htpasswd+TLS registry and the
token registry, three times into empty destinations and twice more as no-op runs, with credentials
given as ``dest_username``/``dest_password`` and read from an ``auth_file`` in turn.

One play does it for both registries: its two hosts, ``basic`` and ``token``, stand for them
(``reg_*`` host variables), and Ansible runs each task for both at once.
"""

from __future__ import annotations

import base64
import json
import sys
import uuid

import pytest
from ansible_run import isolated_auth_env, run_tasks_on_hosts
from images import build_image

pytestmark = pytest.mark.timeout(600)

TAGS = ["1.0.%d" % i for i in range(8)]
PARALLEL = 8
COLD_ROUNDS = 3
NOOP_ROUNDS = 2
STRESS_COPIES = 50
# image_info reads a repository four manifests at a time; once with each form of credentials is enough.
FOOTPRINT_ROUNDS = (COLD_ROUNDS - 1, COLD_ROUNDS)
KINDS = ("basic", "token")


@pytest.fixture(scope="module")
def upstream(registry, tmp_path_factory, skopeo) -> str:
    """Eight small images in one repository of the plain registry (no login needed to read them)."""
    layout = str(tmp_path_factory.mktemp("parallel-auth-src") / "layout")
    for i, tag in enumerate(TAGS):
        build_image(layout, ref=tag, seed=900 + i, layer_sizes=(1536, 512))
        skopeo.copy("oci:%s:%s" % (layout, tag), "docker://%s/pauth/app:%s" % (registry.host, tag))
    return "%s/pauth/app" % registry.host


@pytest.fixture
def hosts(basic_registry, token_registry, tmp_path) -> str:
    """An inventory: host ``basic`` and host ``token``, each with its registry's address, CA, credentials and an auth file."""
    inventory = {}
    for kind, reg in zip(KINDS, (basic_registry, token_registry)):
        auth_file = tmp_path / ("%s-auth.json" % kind)
        entry = base64.b64encode(("%s:%s" % (reg.username, reg.password)).encode()).decode()
        auth_file.write_text(json.dumps({"auths": {reg.host: {"auth": entry}}}))
        inventory[kind] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "reg_host": reg.host,
            "reg_user": reg.username,
            "reg_password": reg.password,
            "reg_ca": reg.ca_cert,
            "reg_auth_file": str(auth_file),
        }
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps({"all": {"hosts": inventory}}))
    return str(path)


def run_tasks(tmp_path, inventory: str, tasks: list, names: list[str]) -> dict:
    """Run ``tasks`` on both hosts (errors ignored, so every task runs); returns, per host, each registered result by name."""
    return run_tasks_on_hosts(tmp_path, inventory, KINDS, tasks, names, env=isolated_auth_env(tmp_path))


def failures_of(result: dict) -> list[str]:
    """Why a registered image_copy result failed: its message and each failed copy's."""
    found = []
    if result.get("failed"):
        found.append(result.get("msg", "failed"))
    found += ["%s: %s" % (r.get("dest"), r.get("msg")) for r in result.get("results") or [] if r.get("failed")]
    return found


def test_every_parallel_path_logs_in_without_failures(upstream, hosts, tmp_path):
    sync_spec = {upstream.split("/")[0]: {"tls-verify": False, "images": {upstream.split("/", 1)[1]: []}}}
    run = uuid.uuid4().hex[:6]
    tasks: list = []
    names: list[str] = []
    expected: dict[str, int] = {}  # name -> copies expected: all on cold rounds, none on no-op rounds

    for round_no in range(COLD_ROUNDS + NOOP_ROUNDS):
        cold = round_no < COLD_ROUNDS
        target = round_no if cold else round_no - COLD_ROUNDS  # no-op rounds repeat the first cold rounds
        by_options = round_no % 2 == 0
        creds = {"dest_username": "{{ reg_user }}", "dest_password": "{{ reg_password }}"} if by_options else {"auth_file": "{{ reg_auth_file }}"}
        prefix = "{{ reg_host }}/pa-%s-%d" % (run, target)
        common = dict(creds, src_validate_certs=False, dest_ca_cert="{{ reg_ca }}", parallel_images=PARALLEL, retries=1)
        copies = {
            "repo": dict(common, src="docker://" + upstream, dest="docker://%s/repo/app" % prefix),
            "list": dict(
                common,
                images=[{"src": "docker://%s:%s" % (upstream, tag), "dest": "docker://%s/list-%d/app:%s" % (prefix, i, tag)} for i, tag in enumerate(TAGS)],
            ),
            "sync": dict(common, sync=sync_spec, dest=prefix + "/sync"),
        }
        for path, args in copies.items():
            name = "r_%s_%d" % (path, round_no)
            tasks.append({"name": name, "oci.images.image_copy": args, "register": name, "ignore_errors": True})
            names.append(name)
            expected[name] = len(TAGS) if cold else 0

        role_vars = {"mirror_sync": sync_spec, "mirror_dest": prefix + "/role", "mirror_dest_validate_certs": False, "mirror_parallel": PARALLEL}
        if by_options:
            role_vars.update(mirror_dest_username="{{ reg_user }}", mirror_dest_password="{{ reg_password }}")
        else:
            role_vars["mirror_auth_file"] = "{{ reg_auth_file }}"
        name = "r_role_%d" % round_no
        tasks.append({"name": name, "ansible.builtin.import_role": {"name": "oci.images.mirror"}, "vars": role_vars, "ignore_errors": True})
        tasks.append({"name": "keep " + name, "ansible.builtin.set_fact": {name: "{{ mirror_copy }}"}})
        names.append(name)
        expected[name] = len(TAGS) if cold else 0

        if round_no in FOOTPRINT_ROUNDS:
            name = "r_footprint_%d" % round_no
            info = {"image": "docker://%s/repo/app" % prefix, "footprint": True, "ca_cert": "{{ reg_ca }}", "retries": 1}
            info.update({"username": "{{ reg_user }}", "password": "{{ reg_password }}"} if by_options else {"auth_file": "{{ reg_auth_file }}"})
            tasks.append({"name": name, "oci.images.image_info": info, "register": name, "ignore_errors": True})
            names.append(name)

    results = run_tasks(tmp_path, hosts, tasks, names)

    problems = []
    for kind in KINDS:
        copies = 0
        for name in names:
            result = results[kind][name]
            if name.startswith("r_footprint"):
                tags = sorted((result.get("footprint") or {}).get("tags") or {})
                if result.get("failed") or tags != TAGS:
                    problems.append("%s %s: %s" % (kind, name, result.get("msg") or "footprint tags %s" % tags))
                continue
            problems += ["%s %s: %s" % (kind, name, msg) for msg in failures_of(result)]
            done = len(result.get("results") or [])
            copies += done
            if not result.get("failed") and (result.get("copied"), done) != (expected[name], len(TAGS)):
                problems.append("%s %s: copied %s of %d images, expected %d" % (kind, name, result.get("copied"), done, expected[name]))
        problems += [] if copies == 4 * len(TAGS) * (COLD_ROUNDS + NOOP_ROUNDS) else ["%s: %d images attempted" % (kind, copies)]
    assert problems == [], "\n".join(problems)


def test_fifty_parallel_copies_in_one_task_all_log_in(upstream, hosts, tmp_path):
    run = uuid.uuid4().hex[:6]
    images = [
        {"src": "docker://%s:%s" % (upstream, TAGS[i % len(TAGS)]), "dest": "docker://{{ reg_host }}/stress-%s/img-%02d:%s" % (run, i, TAGS[i % len(TAGS)])}
        for i in range(STRESS_COPIES)
    ]
    args = {
        "images": images,
        "auth_file": "{{ reg_auth_file }}",
        "src_validate_certs": False,
        "dest_ca_cert": "{{ reg_ca }}",
        "parallel_images": PARALLEL,
        "retries": 1,
    }
    task = {"name": "stress", "oci.images.image_copy": args, "register": "stress", "ignore_errors": True}
    results = run_tasks(tmp_path, hosts, [task], ["stress"])
    for kind in KINDS:
        result = results[kind]["stress"]
        assert failures_of(result) == [], kind
        assert (result["copied"], result["failed_count"], len(result["results"])) == (STRESS_COPIES, 0, STRESS_COPIES), kind
