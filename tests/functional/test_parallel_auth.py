"""Parallel copies into registries that need a login: every parallel path, Basic and token auth, zero failures.

Each module run is a new process with a new authenticator, so its first requests race each other
for the registry's challenge (and, with token auth, for the token of each scope). Every path that
copies or reads in parallel runs at ``parallel_images: 8`` against the htpasswd+TLS registry and the
token registry, three times into empty destinations and twice more as no-op runs, with credentials
given as ``dest_username``/``dest_password`` and read from an ``auth_file`` in turn.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from ansible_run import isolated_auth_env, run_playbook
from images import build_image

pytestmark = pytest.mark.timeout(600)

TAGS = ["1.0.%d" % i for i in range(8)]
PARALLEL = 8
COLD_ROUNDS = 3
NOOP_ROUNDS = 2
STRESS_COPIES = 50
# image_info reads a repository four manifests at a time; once with each form of credentials is enough.
FOOTPRINT_ROUNDS = (COLD_ROUNDS - 1, COLD_ROUNDS)


@pytest.fixture(scope="module")
def upstream(registry, tmp_path_factory, skopeo):
    """Eight small images in one repository of the plain registry (no login needed to read them)."""
    layout = str(tmp_path_factory.mktemp("parallel-auth-src") / "layout")
    for i, tag in enumerate(TAGS):
        build_image(layout, ref=tag, seed=900 + i, layer_sizes=(1536, 512))
        skopeo.copy("oci:%s:%s" % (layout, tag), "docker://%s/pauth/app:%s" % (registry.host, tag))
    return {"host": registry.host, "repository": "pauth/app"}


@pytest.fixture(params=["basic_registry", "token_registry"])
def dest_registry(request):
    return request.getfixturevalue(request.param)


def write_auth_file(tmp_path, reg) -> str:
    path = tmp_path / "auth.json"
    entry = base64.b64encode(("%s:%s" % (reg.username, reg.password)).encode()).decode()
    path.write_text(json.dumps({"auths": {reg.host: {"auth": entry}}}))
    return str(path)


def credentials(form: str, reg, auth_file: str) -> dict:
    if form == "options":
        return {"dest_username": reg.username, "dest_password": reg.password}
    return {"auth_file": auth_file}


def run_tasks(tmp_path, tasks: list, names: list[str], env: dict) -> dict:
    """Run ``tasks`` in one play (errors ignored, so every task runs); returns each registered result by name."""
    summary = tmp_path / "summary.json"
    collect = ", ".join("'%s': %s" % (name, name) for name in names)
    keep = {"name": "Keep every result", "ansible.builtin.copy": {"dest": str(summary), "content": "{{ {%s} | to_json }}" % collect}}
    playbook = tmp_path / "parallel.yml"
    # JSON is YAML: the play is written as data, so no quoting can go wrong.
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [*tasks, keep]}]))
    proc = run_playbook(str(playbook), env=env, timeout=600)
    assert summary.exists(), proc.stdout + proc.stderr
    return json.loads(summary.read_text())


def failures_of(result: dict) -> list[str]:
    """Why a registered image_copy result failed: its message and each failed copy's."""
    found = []
    if result.get("failed"):
        found.append(result.get("msg", "failed"))
    found += ["%s: %s" % (r.get("dest"), r.get("msg")) for r in result.get("results") or [] if r.get("failed")]
    return found


def test_every_parallel_path_logs_in_without_failures(dest_registry, upstream, tmp_path):
    reg = dest_registry
    src_repo = "%s/%s" % (upstream["host"], upstream["repository"])
    auth_file = write_auth_file(tmp_path, reg)
    sync_spec = {upstream["host"]: {"tls-verify": False, "images": {upstream["repository"]: []}}}
    run = uuid.uuid4().hex[:6]
    tasks: list = []
    names: list[str] = []
    expected: dict[str, int] = {}  # name -> copies expected (cold) or 0 (no-op)

    for round_no in range(COLD_ROUNDS + NOOP_ROUNDS):
        cold = round_no < COLD_ROUNDS
        target = round_no if cold else round_no - COLD_ROUNDS  # no-op rounds repeat the first cold rounds
        form = ("options", "auth_file")[round_no % 2]
        creds = credentials(form, reg, auth_file)
        prefix = "%s/pa-%s-%d" % (reg.host, run, target)
        common = dict(creds, src_validate_certs=False, dest_ca_cert=reg.ca_cert, parallel_images=PARALLEL, retries=1)
        copies = {
            "repo": dict(common, src="docker://" + src_repo, dest="docker://%s/repo/app" % prefix),
            "list": dict(
                common,
                images=[{"src": "docker://%s:%s" % (src_repo, tag), "dest": "docker://%s/list-%d/app:%s" % (prefix, i, tag)} for i, tag in enumerate(TAGS)],
            ),
            "sync": dict(common, sync=sync_spec, dest=prefix + "/sync"),
        }
        for path, args in copies.items():
            name = "r_%s_%d" % (path, round_no)
            tasks.append({"name": name, "oci.images.image_copy": args, "register": name, "ignore_errors": True})
            names.append(name)
            expected[name] = len(TAGS) if cold else 0

        role_vars = {"mirror_sync": sync_spec, "mirror_dest": prefix + "/role", "mirror_dest_validate_certs": False, "mirror_parallel": PARALLEL}
        if form == "options":
            role_vars.update(mirror_dest_username=reg.username, mirror_dest_password=reg.password)
        else:
            role_vars["mirror_auth_file"] = auth_file
        name = "r_role_%d" % round_no
        tasks.append({"name": name, "ansible.builtin.import_role": {"name": "oci.images.mirror"}, "vars": role_vars, "ignore_errors": True})
        tasks.append({"name": "keep " + name, "ansible.builtin.set_fact": {name: "{{ mirror_copy }}"}})
        names.append(name)
        expected[name] = len(TAGS) if cold else 0

        if round_no in FOOTPRINT_ROUNDS:
            name = "r_footprint_%d" % round_no
            info = {"image": "docker://%s/repo/app" % prefix, "footprint": True, "ca_cert": reg.ca_cert, "retries": 1}
            info.update({"username": reg.username, "password": reg.password} if form == "options" else {"auth_file": auth_file})
            tasks.append({"name": name, "oci.images.image_info": info, "register": name, "ignore_errors": True})
            names.append(name)

    results = run_tasks(tmp_path, tasks, names, isolated_auth_env(tmp_path))

    problems = []
    copies = 0
    for name in names:
        result = results[name]
        if name.startswith("r_footprint"):
            if result.get("failed"):
                problems.append("%s: %s" % (name, result.get("msg")))
            elif sorted((result.get("footprint") or {}).get("tags") or {}) != sorted(TAGS):
                problems.append("%s: footprint tags %s" % (name, sorted((result.get("footprint") or {}).get("tags") or {})))
            continue
        problems += ["%s: %s" % (name, msg) for msg in failures_of(result)]
        copies += len(result.get("results") or [])
        if not result.get("failed") and (result.get("copied"), len(result.get("results") or [])) != (expected[name], len(TAGS)):
            problems.append("%s: copied %s of %d images, expected %d" % (name, result.get("copied"), len(result.get("results") or []), expected[name]))
    assert problems == [], "\n".join(problems)
    assert copies == 4 * len(TAGS) * (COLD_ROUNDS + NOOP_ROUNDS)


def test_fifty_parallel_copies_in_one_task_all_log_in(dest_registry, upstream, tmp_path):
    reg = dest_registry
    src_repo = "%s/%s" % (upstream["host"], upstream["repository"])
    run = uuid.uuid4().hex[:6]
    images = [
        {"src": "docker://%s:%s" % (src_repo, TAGS[i % len(TAGS)]), "dest": "docker://%s/stress-%s/img-%02d:%s" % (reg.host, run, i, TAGS[i % len(TAGS)])}
        for i in range(STRESS_COPIES)
    ]
    args = {
        "images": images,
        "auth_file": write_auth_file(tmp_path, reg),
        "src_validate_certs": False,
        "dest_ca_cert": reg.ca_cert,
        "parallel_images": PARALLEL,
        "retries": 1,
    }
    task = {"name": "stress", "oci.images.image_copy": args, "register": "stress", "ignore_errors": True}
    result = run_tasks(tmp_path, [task], ["stress"], isolated_auth_env(tmp_path))["stress"]
    assert failures_of(result) == []
    assert (result["copied"], result["failed_count"], len(result["results"])) == (STRESS_COPIES, 0, STRESS_COPIES)
