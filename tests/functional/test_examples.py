"""The playbooks the documentation shows, run as a reader would run them, against local registries.

Each example runs with ``--check`` on a fresh machine, then for real, then for real again, and must
do what its page says: the check run reports per task what the first real run then does, the
second real run changes nothing. Host names are rewritten to the local registries; certificates
are trusted through a ``certs.d`` directory (the way the docs recommend), never by an option the
example does not show.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import yaml
from ansible_run import REPO, ansible_env, run_playbook
from images import build_image
from registries import start_registry

pytestmark = pytest.mark.timeout(900)

EXAMPLES = os.path.join(REPO, "docs", "examples")
UPSTREAM_USER, UPSTREAM_PASSWORD = "robot", "Upstream-Pw-1"
MIRROR_USER, MIRROR_PASSWORD = "robot", "Mirror-Pw-2"

_TASK = re.compile(r"^TASK \[(?P<name>[^\]]+)\] \*+$", re.M)
_STATUS = re.compile(r"^(?P<status>ok|changed|skipping|fatal|failed): \[(?P<host>[^\]]+)\]", re.M)
_RANK = ["skipping", "ok", "changed", "failed"]  # what a task that printed several lines for a host (a loop) counts as
_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def task_statuses(stdout: str) -> list[tuple[str, str, str]]:
    """(task, host, status) in the order Ansible printed them; a loop counts as changed when an item changed."""
    out = []
    heads = list(_TASK.finditer(stdout))
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else stdout.find("PLAY RECAP")
        seen: dict[str, str] = {}
        for match in _STATUS.finditer(stdout, head.end(), end):
            status = "failed" if match["status"] in ("fatal", "failed") else match["status"]
            seen[match["host"]] = max(seen.get(match["host"], status), status, key=_RANK.index)
        out += [(head["name"], host, status) for host, status in sorted(seen.items())]
    return out


def task_outcomes(stdout: str) -> list[tuple[str, str]]:
    """(task, status) over all hosts: what a play did, whichever host did it (several workers may prune one repository)."""
    out: list[tuple[str, str]] = []
    for task, _host, status in task_statuses(stdout):
        if out and out[-1][0] == task:
            out[-1] = (task, max(out[-1][1], status, key=_RANK.index))
        else:
            out.append((task, status))
    return out


def changed_total(stdout: str) -> int:
    return sum(int(m.group(3)) for m in _RECAP.finditer(stdout))


def tags_of(skopeo, reg, repository: str, creds: str | None = None) -> list[str]:
    args = ["list-tags", "--tls-verify=false"] + (["--creds=" + creds] if creds else [])
    try:
        return sorted(json.loads(skopeo.skopeo(*args, "docker://%s/%s" % (reg.host, repository)))["Tags"])
    except skopeo.SkopeoFailed as exc:
        if "404 (Not Found)" in str(exc):  # no such repository (yet)
            return []
        raise


def trust(home, reg) -> None:
    """Put a registry's CA (and its token server's) into ~/.config/containers/certs.d, as a user would."""
    hosts = [reg.host]
    if reg.token_server is not None:
        hosts.append(urlsplit(reg.token_server.realm).netloc)
    for host in hosts:
        directory = home / ".config" / "containers" / "certs.d" / host
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(reg.ca_cert, str(directory / "ca.crt"))


def machine(tmp_path, name: str, home) -> dict:
    """A fresh machine's environment: its own runtime dir (where logins go), no credential files, certs.d in ``home``."""
    run = tmp_path / ("run-" + name)
    run.mkdir()
    return {"HOME": str(home), "XDG_RUNTIME_DIR": str(run), "REGISTRY_AUTH_FILE": "", "DOCKER_CONFIG": str(tmp_path / "no-docker-config")}


def example(name: str, tmp_path, replacements: dict[str, str]) -> str:
    """The example playbook with its host names (and paths) replaced; returns the path of the copy."""
    with open(os.path.join(EXAMPLES, name)) as f:
        text = f.read()
    for old, new in replacements.items():
        assert old in text, "%s no longer mentions %s" % (name, old)
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_example_playbook_has_a_test():
    tested = {"first-playbook.yml", "mirror-with-role.yml"}
    assert sorted(os.listdir(EXAMPLES)) == sorted(tested), "add a test here for each new example"


# --- docs/examples/first-playbook.yml (docs/getting-started.md) ------------------------------


@pytest.fixture(scope="module")
def first_rig(tmp_path_factory, skopeo):
    """registry.example.com wants a login (token auth); mirror.example.com is open. Both over TLS with their own CA."""
    base = tmp_path_factory.mktemp("first-playbook")
    upstream = start_registry(str(base / "upstream"), "token", username=UPSTREAM_USER, password=UPSTREAM_PASSWORD)
    mirror = start_registry(str(base / "mirror"), "tls")
    layout = str(base / "layout")
    tags = ["1.0.0", "1.1.0", "1.2", "1.3.0-rc.1", "2.0.0", "latest"]
    for i, tag in enumerate(tags):
        build_image(layout, ref=tag, seed=1200 + i, layer_sizes=(2048, 1024), created="2024-0%d-01T00:00:00Z" % (i + 1))
        skopeo.copy("oci:%s:%s" % (layout, tag), "docker://%s/team/app:%s" % (upstream.host, tag), "--dest-creds", "%s:%s" % (UPSTREAM_USER, UPSTREAM_PASSWORD))
    home = base / "home"
    trust(home, upstream)
    trust(home, mirror)
    yield {"upstream": upstream, "mirror": mirror, "home": home, "tags": tags}
    upstream.stop()
    mirror.stop()


def _first_playbook(tmp_path, rig, drop: str = "") -> str:
    hosts = {"registry.example.com": rig["upstream"].host, "mirror.example.com": rig["mirror"].host}
    path = example("first-playbook.yml", tmp_path, hosts)
    if drop:
        with open(path) as f:
            text = f.read()
        assert drop in text
        with open(path, "w") as f:
            f.write(text.replace(drop, ""))
    return path


def test_first_playbook_checks_then_runs_then_changes_nothing(first_rig, skopeo, tmp_path):
    upstream, mirror = first_rig["upstream"], first_rig["mirror"]
    path = _first_playbook(tmp_path, first_rig)
    password = {"REGISTRY_PASSWORD": UPSTREAM_PASSWORD}

    check = run_playbook(path, check=True, env=dict(machine(tmp_path, "check", first_rig["home"]), **password))
    assert check.returncode == 0, check.stdout + check.stderr
    assert tags_of(skopeo, mirror, "team/app") == []  # check mode wrote nothing to the mirror
    assert "copied 3, already there 0" in check.stdout

    env = dict(machine(tmp_path, "real", first_rig["home"]), **password)
    first = run_playbook(path, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    # What the check run said of each task is what the first real run did.
    assert task_statuses(check.stdout) == task_statuses(first.stdout)
    # The 1.x releases without release candidates, as the task's name says, with the source's digests.
    assert tags_of(skopeo, mirror, "team/app") == ["1.0.0", "1.1.0", "1.2"]
    for tag in ("1.0.0", "1.1.0", "1.2"):
        creds = "--creds=%s:%s" % (UPSTREAM_USER, UPSTREAM_PASSWORD)
        theirs = skopeo.inspect("docker://%s/team/app:%s" % (upstream.host, tag), creds)["Digest"]
        assert skopeo.inspect("docker://%s/team/app:%s" % (mirror.host, tag))["Digest"] == theirs
    assert "copied 3, already there 0" in first.stdout
    assert "a prune would delete " in first.stdout  # keep_latest 5 of three tags: nothing to delete

    second = run_playbook(path, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert changed_total(second.stdout) == 0, second.stdout  # the page: a second run reports changed: false
    assert "copied 0, already there 3" in second.stdout
    # And a check run now predicts that no-op.
    again = run_playbook(path, check=True, env=env)
    assert again.returncode == 0 and changed_total(again.stdout) == 0, again.stdout
    for run in (check, first, second, again):
        assert UPSTREAM_PASSWORD not in run.stdout + run.stderr


def test_first_playbook_without_check_mode_false_fails_under_check_as_the_docs_say(first_rig, tmp_path):
    # docs/getting-started.md, "Check mode": a login in check mode writes nothing, and the next task finds no credentials.
    path = _first_playbook(tmp_path, first_rig, drop="      check_mode: false\n")
    proc = run_playbook(path, check=True, env=dict(machine(tmp_path, "fresh", first_rig["home"]), REGISTRY_PASSWORD=UPSTREAM_PASSWORD))
    assert proc.returncode != 0
    statuses = task_statuses(proc.stdout)
    assert [s[2] for s in statuses[:2]] == ["changed", "failed"], statuses
    assert "requires authentication" in proc.stdout and "no credentials were found" in proc.stdout


# --- the module_defaults and certs.d advice of docs/getting-started.md -------------------------


def page_block(page: str, after: str, lang: str = "yaml") -> str:
    """The first ``lang`` code block after the text ``after`` in ``page`` (relative to the repository)."""
    with open(os.path.join(REPO, page)) as f:
        text = f.read()
    section = text[text.index(after) :]
    return re.search(r"```%s\n(.*?)```" % lang, section, re.S).group(1)


@pytest.mark.parametrize(
    "page, after, auth",
    [
        ("docs/getting-started.md", "## Options for every module at once", "/tmp/job-auth.json"),
        ("docs/awx-ee.md", "## `module_defaults` for the whole collection", "/tmp/oci-images-auth.json"),
    ],
)
def test_module_defaults_example_reaches_every_module(first_rig, tmp_path, page, after, auth):
    upstream = first_rig["upstream"]
    block = page_block(page, after)
    if not block.startswith("  "):
        block = "".join("  " + line + "\n" for line in block.splitlines())
    assert block.startswith("  module_defaults:\n")
    block = block.replace("/etc/pki/registry-ca.pem", upstream.ca_cert).replace(auth, str(tmp_path / "job-auth.json"))
    host = upstream.host
    play = tmp_path / "defaults.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n"
        + block
        + "  tasks:\n"
        + "    - oci.images.registry_login: {registry: '%s', username: %s, password: '%s'}\n" % (host, UPSTREAM_USER, UPSTREAM_PASSWORD)
        + "    - oci.images.image_info: {image: 'docker://%s/team/app:1.2'}\n" % host
        + "    - oci.images.image_copy: {src: 'docker://%s/team/app:1.2', dest: 'docker://%s/defaults/app:1.2'}\n" % (host, host)
        + "    - oci.images.image_delete: {image: 'docker://%s/defaults/app:1.2'}\n" % host
    )
    # No certs.d: the CA reaches each module only through the module_defaults of the example.
    proc = run_playbook(str(play), env=machine(tmp_path, "defaults", tmp_path / "empty-home"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [s[2] for s in task_statuses(proc.stdout)] == ["changed", "ok", "changed", "changed"]


def test_awx_play_with_injected_credentials_checks_then_runs(first_rig, tmp_path):
    # docs/awx-ee.md: a credential type injects OCI_REGISTRY, OCI_REGISTRY_USERNAME, OCI_REGISTRY_PASSWORD; the play logs in first.
    upstream = first_rig["upstream"]
    block = page_block("docs/awx-ee.md", "Playbook:")
    injected = {"OCI_REGISTRY": upstream.host, "OCI_REGISTRY_USERNAME": UPSTREAM_USER, "OCI_REGISTRY_PASSWORD": UPSTREAM_PASSWORD}
    runs = {}
    # The check run and the real runs each start with no auth file, as fresh jobs in fresh EE containers do.
    for name in ("check", "real"):
        path = tmp_path / ("awx-%s.yml" % name)
        path.write_text(block.replace("/tmp/oci-images-auth.json", str(tmp_path / ("auth-%s.json" % name))))
        runs[name] = str(path)
    check = run_playbook(runs["check"], check=True, env=dict(machine(tmp_path, "check", first_rig["home"]), **injected))
    assert check.returncode == 0, check.stdout + check.stderr
    env = dict(machine(tmp_path, "real", first_rig["home"]), **injected)
    first = run_playbook(runs["real"], env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert task_statuses(check.stdout) == task_statuses(first.stdout)
    second = run_playbook(runs["real"], env=env)
    assert second.returncode == 0 and changed_total(second.stdout) == 0, second.stdout
    assert oct(os.stat(tmp_path / "auth-real.json").st_mode & 0o777) == "0o600"
    for run in (check, first, second):
        assert UPSTREAM_PASSWORD not in run.stdout + run.stderr


def test_certs_d_alone_reaches_every_module_the_lookup_and_the_role(first_rig, skopeo, tmp_path):
    # The docs' advice for a private CA: one file in certs.d, no option anywhere.
    upstream, mirror = first_rig["upstream"], first_rig["mirror"]
    auth = tmp_path / "auth.json"
    play = tmp_path / "certs-d.yml"
    play.write_text(
        f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/oci.images.images:
      auth_file: {auth}
  tasks:
    - oci.images.registry_login: {{registry: '{upstream.host}', username: {UPSTREAM_USER}, password: '{UPSTREAM_PASSWORD}'}}
    - oci.images.image_info: {{image: 'docker://{upstream.host}/team/app:1.0.0'}}
    - oci.images.image_copy: {{src: 'docker://{upstream.host}/team/app:1.0.0', dest: 'docker://{mirror.host}/certs-d/app:1.0.0'}}
    - oci.images.image_delete: {{image: 'docker://{mirror.host}/certs-d/app:1.0.0'}}
    - ansible.builtin.copy:
        content: "{{{{ lookup('oci.images.image_digest', 'docker://{upstream.host}/team/app:1.0.0', auth_file='{auth}') }}}}"
        dest: {tmp_path}/digest
        mode: "0644"
- hosts: localhost
  gather_facts: false
  roles:
    - role: oci.images.mirror
      vars:
        mirror_sync: {{'{upstream.host}': {{images: {{team/app: ['1.1.0']}}}}}}
        mirror_dest: '{mirror.host}/certs-d-role'
        mirror_auth_file: {auth}
"""
    )
    proc = run_playbook(str(play), env=machine(tmp_path, "certs-d", first_rig["home"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    creds = "--creds=%s:%s" % (UPSTREAM_USER, UPSTREAM_PASSWORD)
    assert (tmp_path / "digest").read_text() == skopeo.inspect("docker://%s/team/app:1.0.0" % upstream.host, creds)["Digest"]
    assert tags_of(skopeo, mirror, "certs-d-role/app") == ["1.1.0"]
    # Without the certs.d entries the same play fails on the first task: the test does depend on them.
    bare = run_playbook(str(play), env=machine(tmp_path, "bare", tmp_path / "empty-home"))
    assert bare.returncode != 0 and "TLS" in bare.stdout


# --- docs/examples/mirror-with-role.yml (docs/mirroring.md) ------------------------------------


@pytest.fixture(scope="module")
def role_rig(tmp_path_factory, skopeo):
    """Upstream (token auth, user reader) with team/app in twelve 1.x versions and team/tools:1; a mirror (token auth, user robot)."""
    base = tmp_path_factory.mktemp("role-examples")
    upstream = start_registry(str(base / "upstream"), "token", username="reader", password=UPSTREAM_PASSWORD)
    mirror = start_registry(str(base / "mirror"), "token", username=MIRROR_USER, password=MIRROR_PASSWORD)
    layout = str(base / "layout")
    versions = ["1.%d.0" % i for i in range(12)]
    for i, tag in enumerate([*versions, "tools-1", "0.9.0"]):
        build_image(layout, ref=tag, seed=1300 + i, layer_sizes=(1024,))
    up = "%s:%s" % ("reader", UPSTREAM_PASSWORD)
    for tag in versions:
        skopeo.copy("oci:%s:%s" % (layout, tag), "docker://%s/team/app:%s" % (upstream.host, tag), "--dest-creds", up)
    skopeo.copy("oci:%s:tools-1" % layout, "docker://%s/team/tools:1" % upstream.host, "--dest-creds", up)
    inventory = base / "hosts.ini"
    hosts = "".join("%s ansible_connection=local ansible_python_interpreter=%s\n" % (h, sys.executable) for h in ("w1", "w2"))
    inventory.write_text("[mirror_workers]\n" + hosts)
    yield {"upstream": upstream, "mirror": mirror, "layout": layout, "versions": versions, "inventory": str(inventory), "base": base}
    upstream.stop()
    mirror.stop()


def _copy_statuses(stdout: str) -> dict[str, str]:
    return {host: status for task, host, status in task_statuses(stdout) if task.endswith("Mirror the images of this host's slice")}


def test_mirror_role_example_splits_prunes_and_then_changes_nothing(role_rig, tmp_path, skopeo):
    upstream, mirror, versions, inventory = role_rig["upstream"], role_rig["mirror"], role_rig["versions"], role_rig["inventory"]
    home = tmp_path / "home"
    trust(home, upstream)
    trust(home, mirror)
    sync = tmp_path / "sync.yaml"
    sync.write_text("%s:\n  images:\n    team/app: []\n    team/tools: ['1']\n" % upstream.host)
    path = example(
        "mirror-with-role.yml",
        tmp_path,
        {"/etc/mirror/sync.yaml": str(sync), "registry.example.com/mirror": "%s/mirror" % mirror.host},
    )
    secrets = {"vault_upstream_password": UPSTREAM_PASSWORD, "vault_mirror_password": MIRROR_PASSWORD}
    env = machine(tmp_path, "workers", home)
    mirror_creds = "%s:%s" % (MIRROR_USER, MIRROR_PASSWORD)

    check = run_playbook(path, secrets, check=True, env=env, inventory=inventory)
    assert check.returncode == 0, check.stdout + check.stderr
    assert tags_of(skopeo, mirror, "mirror/app", mirror_creds) == []

    first = run_playbook(path, secrets, env=env, inventory=inventory)
    assert first.returncode == 0, first.stdout + first.stderr
    # Every image copied (by one worker or the other), then each repository pruned to its ten highest versions.
    assert tags_of(skopeo, mirror, "mirror/app", mirror_creds) == sorted(versions[2:])
    assert tags_of(skopeo, mirror, "mirror/tools", mirror_creds) == ["1"]
    assert _copy_statuses(first.stdout) == {"w1": "changed", "w2": "changed"}  # the work was split
    assert _copy_statuses(check.stdout) == _copy_statuses(first.stdout)  # and the check run said so
    for run in (check, first):
        assert UPSTREAM_PASSWORD not in run.stdout + run.stderr and MIRROR_PASSWORD not in run.stdout + run.stderr

    # The spec selects every tag and the prune drops the two lowest: the next run copies those again and prunes them
    # again (docs/mirroring.md: prune what the spec no longer selects). With the spec narrowed to what is kept, a no-op.
    rerun = run_playbook(path, secrets, env=env, inventory=inventory)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert changed_total(rerun.stdout) > 0
    assert tags_of(skopeo, mirror, "mirror/app", mirror_creds) == sorted(versions[2:])
    sync.write_text("%s:\n  images-by-semver:\n    team/app: '>=1.2.0'\n  images:\n    team/tools: ['1']\n" % upstream.host)
    second = run_playbook(path, secrets, env=env, inventory=inventory)
    assert second.returncode == 0, second.stdout + second.stderr
    assert changed_total(second.stdout) == 0, second.stdout


def test_mirror_role_readme_example(role_rig, tmp_path, skopeo):
    # roles/mirror/README.md: source CA from certs.d, destination CA from mirror_dest_ca_cert; the prune removes 0.x.
    upstream, mirror, versions, inventory = role_rig["upstream"], role_rig["mirror"], role_rig["versions"], role_rig["inventory"]
    mirror_creds = "%s:%s" % (MIRROR_USER, MIRROR_PASSWORD)
    skopeo.copy("oci:%s:0.9.0" % role_rig["layout"], "docker://%s/readme/app:0.9.0" % mirror.host, "--dest-creds", mirror_creds)
    home = tmp_path / "home"
    trust(home, upstream)  # only the source: the destination's CA must come from mirror_dest_ca_cert
    block = page_block("roles/mirror/README.md", "## Example")
    for old, new in {
        "quay.io": upstream.host,
        "registry.example.com/mirror": "%s/readme" % mirror.host,
        "/etc/pki/mirror-ca.pem": mirror.ca_cert,
    }.items():
        assert old in block, old
        block = block.replace(old, new)
    path = tmp_path / "readme.yml"
    path.write_text(block)
    secrets = {"vault_quay_password": UPSTREAM_PASSWORD, "vault_mirror_password": MIRROR_PASSWORD}
    env = machine(tmp_path, "workers", home)

    check = run_playbook(str(path), secrets, check=True, env=env, inventory=inventory)
    assert check.returncode == 0, check.stdout + check.stderr
    first = run_playbook(str(path), secrets, env=env, inventory=inventory)
    assert first.returncode == 0, first.stdout + first.stderr
    assert task_outcomes(check.stdout) == task_outcomes(first.stdout)
    assert tags_of(skopeo, mirror, "readme/app", mirror_creds) == sorted(versions)  # 0.9.0 pruned, every 1.x there
    assert tags_of(skopeo, mirror, "readme/tools", mirror_creds) == ["1"]
    second = run_playbook(str(path), secrets, env=env, inventory=inventory)
    assert second.returncode == 0 and changed_total(second.stdout) == 0, second.stdout


# --- every task snippet of the docs takes only options its module has -----------------------------

TOOLS = os.path.join(REPO, ".venv-tools", "bin", "ansible-lint")
PAGES = ["README.md", "roles/mirror/README.md", *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))]


def _snippet_plays() -> dict[str, str]:
    """Each YAML block of the pages that holds plays, tasks or module_defaults, as a playbook; keyed by page and block number."""
    plays = {}
    for page in PAGES:
        with open(os.path.join(REPO, page)) as f:
            blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
        for number, block in enumerate(blocks):
            data = yaml.safe_load(block)
            name = "%s-%d.yml" % (page.replace("/", "_"), number)
            head = "---\n- name: Snippet\n  hosts: localhost\n  gather_facts: false\n"
            if isinstance(data, list) and data and all(isinstance(item, dict) and "hosts" in item for item in data):
                plays[name] = "---\n" + block
            elif isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
                plays[name] = head + "  tasks:\n" + "".join("    " + line + "\n" for line in block.splitlines())
            elif isinstance(data, dict) and set(data) == {"module_defaults"}:
                body = block if block.startswith("  ") else "".join("  " + line + "\n" for line in block.splitlines())
                plays[name] = head + body + "  tasks:\n    - name: Nothing\n      ansible.builtin.meta: noop\n"
    return plays


def test_doc_snippets_use_only_options_their_modules_take(tmp_path):
    # ansible-lint's args rule checks each task's arguments against the module's argument spec.
    if not os.path.exists(TOOLS):
        pytest.fail("ansible-lint is not installed: run tests/setup/run.sh venvs lint")
    plays = _snippet_plays()
    assert len(plays) >= 10, sorted(plays)
    directory = tmp_path / "snippets"
    directory.mkdir()
    for name, text in plays.items():
        (directory / name).write_text(text)
    # A snippet with an option its module does not have, to show the check catches one.
    (directory / "canary.yml").write_text(
        "---\n- name: Canary\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: image_copy has no ca_cert\n      oci.images.image_copy:\n        src: docker://a.example/b:1\n"
        "        dest: docker://c.example/d:1\n        ca_cert: /x.pem\n"
    )
    (tmp_path / "lint.yml").write_text("offline: true\nenable_list: [args]\nskip_action_validation: false\n")
    env = ansible_env({"PATH": os.path.dirname(TOOLS) + os.pathsep + os.environ.get("PATH", "")})
    proc = subprocess.run(
        [TOOLS, "--nocolor", "-c", str(tmp_path / "lint.yml"), str(directory)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert "canary.yml" in output and "args[" in output, output
    offenders = sorted(set(re.findall(r"snippets/(\S+?\.yml):\d+", "\n".join(b for b in output.split("\n\n") if "args[" in b))))
    assert offenders == ["canary.yml"], output
