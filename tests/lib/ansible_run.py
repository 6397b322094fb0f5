"""Run collection modules through Ansible itself (ad-hoc ``ansible`` and ``ansible-playbook``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

from collection_tree import ensure_collection_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
_RESULT_RE = re.compile(r"^localhost \| (SUCCESS|CHANGED|FAILED!|UNREACHABLE!) => \{", re.M)


@dataclass
class ModuleRun:
    """One module invocation: its parsed result and everything Ansible printed."""

    status: str
    result: dict
    stdout: str
    stderr: str
    rc: int
    args: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("FAILED!", "UNREACHABLE!") or bool(self.result.get("failed"))

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def ansible_env(extra: dict | None = None) -> dict:
    """Environment that makes this checkout the oci.images collection Ansible loads."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": ensure_collection_tree(REPO),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
        }
    )
    if extra:
        env.update(extra)
    return env


def isolated_auth_env(tmp_path) -> dict:
    """Environment with no user's auth files (HOME is ``tmp_path/home``) and ``tmp_path/run`` standing in for /run.

    Credentials then come only from what a test gives or writes; podman's root login file
    (``/run/containers/0/auth.json``) is ``tmp_path/run/containers/0/auth.json``.
    """
    home = os.path.join(str(tmp_path), "home")
    os.makedirs(home, exist_ok=True)
    return {
        "HOME": home,
        "REGISTRY_AUTH_FILE": "",
        "XDG_RUNTIME_DIR": "",
        "XDG_CONFIG_HOME": "",
        "DOCKER_CONFIG": "",
        "OCI_IMAGES_TEST_RUN_DIR": os.path.join(str(tmp_path), "run"),
    }


def run_module(
    module: str, args: dict, check: bool = False, diff: bool = False, verbosity: int = 0, env: dict | None = None, timeout: float = 300
) -> ModuleRun:
    """Run ``oci.images.<module>`` ad hoc on localhost and parse the result Ansible prints."""
    name = module if "." in module else "oci.images." + module
    cmd = [os.path.join(BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", name, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(env), timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    matches = list(_RESULT_RE.finditer(proc.stdout))
    if not matches:
        raise AssertionError("no module result in ansible output (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    last = matches[-1]
    body = proc.stdout[last.end() - 1 :]
    result, _unused = json.JSONDecoder().raw_decode(body)
    return ModuleRun(last.group(1), result, proc.stdout, proc.stderr, proc.returncode, args)


def run_playbook(
    path: str,
    extra_vars: dict | None = None,
    check: bool = False,
    diff: bool = False,
    verbosity: int = 0,
    env: dict | None = None,
    inventory: str = "localhost,",
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run a playbook with this checkout as the collection; returns the finished process."""
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, "-c", "local", path]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(env), timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def run_tasks_on_hosts(tmp_path, inventory: str, hosts: tuple[str, ...], tasks: list, names: list[str], env: dict | None = None) -> dict:
    """Run ``tasks`` as one play on every host of ``inventory``; returns, per host of ``hosts``, each registered result by name.

    Tasks should ignore their errors so every one runs; the results are written by the play itself, one JSON file per host.
    """
    collect = ", ".join("'%s': %s" % (name, name) for name in names)
    keep = {
        "name": "Keep every result",
        "ansible.builtin.copy": {"dest": "%s/{{ inventory_hostname }}.json" % tmp_path, "content": "{{ {%s} | to_json }}" % collect},
    }
    playbook = tmp_path / "tasks-on-hosts.yml"
    # JSON is YAML: the play is written as data, so no quoting can go wrong.
    playbook.write_text(json.dumps([{"hosts": "all", "gather_facts": False, "tasks": [*tasks, keep]}]))
    proc = run_playbook(str(playbook), env=env, inventory=inventory, timeout=600)
    results = {}
    for host in hosts:
        summary = tmp_path / ("%s.json" % host)
        assert summary.exists(), proc.stdout + proc.stderr
        results[host] = json.loads(summary.read_text())
    return results
