"""The collection as users get it: the galaxy artifact, ansible-builder's view of its dependencies, ansible-doc."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml
from ansible_run import BIN, REPO, ansible_env
from collection_tree import ensure_collection_tree

pytestmark = pytest.mark.timeout(300)

# An artifact over this size has picked up something that is not the collection (venvs, test data, caches).
MAX_ARTIFACT_BYTES = 400 * 1024  # about 310 KiB with zstd, signatures, the registry footprint and index assembly
# Everything the artifact may hold, as path patterns (`*` stays within one path component, `**/` is any
# number of directories). Anything else fails the test: development files (the demo, CI, linters' and
# pytest's settings, tests) are left out with build_ignore in galaxy.yml.
ALLOWED_FILES = (
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "CHANGELOG.md",
    "requirements.txt",
    "bindep.txt",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
    "plugins/modules/*.py",
    "plugins/lookup/*.py",
    "plugins/doc_fragments/*.py",
    "plugins/module_utils/**/*.py",
    "roles/*/README.md",
    "roles/*/defaults/main.yml",
    "roles/*/vars/main.yml",
    "roles/*/meta/main.yml",
    "roles/*/meta/argument_specs.yml",
    "roles/*/tasks/*.yml",
    "docs/*.md",
    "docs/examples/*.yml",
    "changelogs/changelog.yaml",
    "changelogs/config.yaml",
    "changelogs/fragments/.keep",
    "changelogs/fragments/*.yml",
)
# The optional ones too: an execution environment should handle every image (PyNaCl: sigstore keys; zstandard: zstd layers).
RUNTIME_LIBRARIES = ("requests", "pynacl", "zstandard")


def _tool(name: str) -> str:
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        pytest.fail("%s is not installed in the test venv: run tests/setup/venv.sh (make deps)" % name)
    return path


def _run(*cmd: str, cwd: str | None = None, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, env=ansible_env(env), cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def _plugin_names(kind: str) -> list[str]:
    return sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "plugins", kind, "*.py")) if not os.path.basename(p).startswith("_"))


PLUGINS = [("module", name) for name in _plugin_names("modules")] + [("lookup", name) for name in _plugin_names("lookup")]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> str:
    """``ansible-galaxy collection build`` of this checkout, as it is on disk."""
    out = tmp_path_factory.mktemp("galaxy")
    proc = _run(_tool("ansible-galaxy"), "collection", "build", "--output-path", str(out), REPO, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = glob.glob(os.path.join(str(out), "oci-images-*.tar.gz"))
    assert len(built) == 1, os.listdir(str(out))
    return built[0]


def test_galaxy_artifact_is_small_and_holds_only_the_collection(artifact, record_property):
    size = os.path.getsize(artifact)
    record_property("artifact_bytes", size)
    with tarfile.open(artifact) as tar:
        entries = tar.getmembers()
    members = [m.name for m in entries]
    assert [m.name for m in entries if not (m.isfile() or m.isdir())] == []  # no links, devices or fifos
    files = [m.name for m in entries if m.isfile()]
    unexpected = [name for name in files if not any(p.fullmatch(name) for p in ALLOWED_PATTERNS)]
    assert unexpected == [], "not on the list of what the artifact may hold (add to build_ignore in galaxy.yml): %s" % unexpected
    # Directories only as the parents of allowed files: no empty leftovers (demo/, tests/) either.
    parents = {os.path.dirname(name) for name in files}
    parents |= {p[:i] for p in parents for i in range(len(p)) if p[i] == "/"}
    assert sorted(m.name for m in entries if m.isdir() and m.name not in parents) == []
    assert size < MAX_ARTIFACT_BYTES, "artifact is %d bytes; largest members: %s" % (size, _largest(artifact))
    for needed in ("MANIFEST.json", "FILES.json", "meta/runtime.yml", "meta/execution-environment.yml", "requirements.txt", "bindep.txt"):
        assert needed in members
    for kind, name in PLUGINS:
        assert "plugins/%s/%s.py" % ("modules" if kind == "module" else kind, name) in members


def _pattern(glob_pattern: str) -> re.Pattern:
    """A path glob as a regex: `*` within one component, `**/` any number of directories."""
    out = ""
    for token in re.split(r"(\*\*/|\*)", glob_pattern):
        out += {"**/": "(?:[^/]+/)*", "*": "[^/]*"}.get(token, re.escape(token))
    return re.compile(out)


ALLOWED_PATTERNS = [_pattern(p) for p in ALLOWED_FILES]


def test_the_allow_list_is_strict():
    # The patterns must not let through what build_ignore is there to keep out.
    for name in ("demo/run.sh", "tests/functional/test_x.py", ".ansible-lint", "ruff.toml", "pytest.ini", "Makefile", "docs/x/y.md", "plugins/x.py"):
        assert not any(p.fullmatch(name) for p in ALLOWED_PATTERNS), name
    for name in ("plugins/module_utils/_registry/_http.py", "plugins/module_utils/_copy.py", "roles/mirror/tasks/main.yml"):
        assert any(p.fullmatch(name) for p in ALLOWED_PATTERNS), name


def _largest(artifact: str) -> list[tuple[str, int]]:
    with tarfile.open(artifact) as tar:
        return sorted(((m.name, m.size) for m in tar.getmembers()), key=lambda item: -item[1])[:5]


def _introspect(collections_dir: str) -> dict:
    proc = _run(_tool("ansible-builder"), "introspect", "--sanitize", collections_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return yaml.safe_load(proc.stdout)


def _python_requirements(report: dict) -> dict[str, str]:
    """requirement name -> the collection it is from, out of ansible-builder's sanitized ``python`` list."""
    found = {}
    for line in report.get("python") or []:
        requirement, _hash, origin = line.partition("#")
        name = requirement.strip().split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip()
        found[name.lower()] = origin.strip()
    return found


def test_ansible_builder_introspect_finds_python_requirements_of_the_checkout():
    report = _introspect(ensure_collection_tree(REPO))
    found = _python_requirements(report)
    for library in RUNTIME_LIBRARIES:
        assert found.get(library) == "from collection oci.images", report


def test_ansible_builder_introspect_finds_requirements_in_the_installed_artifact(artifact, tmp_path):
    # What an execution environment build does: install the artifact, then read its meta/execution-environment.yml.
    # Only the target in the collections path: with the checkout's tree there, galaxy would call it installed already.
    proc = _run(_tool("ansible-galaxy"), "collection", "install", "--offline", "-p", str(tmp_path), artifact, env={"ANSIBLE_COLLECTIONS_PATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.path.isfile(os.path.join(str(tmp_path), "ansible_collections", "oci", "images", "meta", "execution-environment.yml"))
    report = _introspect(str(tmp_path))
    found = _python_requirements(report)
    assert set(RUNTIME_LIBRARIES) <= set(found), report
    # bindep.txt lists gpg, for GPG signatures (image_copy sign_by, signedBy policies), nothing else.
    assert sorted(line.split("#")[0].strip() for line in report.get("system") or []) == ["gnupg [platform:dpkg]", "gnupg2 [platform:rpm]"], report


@pytest.mark.parametrize("kind, name", PLUGINS, ids=["%s:%s" % plugin for plugin in PLUGINS])
def test_ansible_doc_renders_plugin(kind, name):
    fqcn = "oci.images." + name
    text = _run(_tool("ansible-doc"), "-t", kind, fqcn)
    assert text.returncode == 0, text.stdout + text.stderr
    assert fqcn in text.stdout
    assert "WARNING" not in text.stderr and "ERROR" not in text.stderr, text.stderr
    as_json = _run(_tool("ansible-doc"), "-t", kind, "--json", fqcn)
    assert as_json.returncode == 0, as_json.stderr
    entry = json.loads(as_json.stdout)[fqcn]
    assert entry["doc"]["short_description"]
    assert entry["examples"] and fqcn in entry["examples"]


@pytest.mark.parametrize("kind, directory", [("module", "modules"), ("lookup", "lookup")])
def test_ansible_doc_lists_every_plugin_in_the_tree(kind, directory):
    proc = _run(_tool("ansible-doc"), "-t", kind, "-l", "oci.images", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = sorted(name[len("oci.images.") :] for name in json.loads(proc.stdout))
    assert listed == _plugin_names(directory)


def _ee_definition_from_docs() -> str:
    """The ansible-builder 3 example of docs/awx-ee.md (the yaml block with ``version: 3``)."""
    with open(os.path.join(REPO, "docs", "awx-ee.md")) as f:
        blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
    examples = [block for block in blocks if re.search(r"^version: 3$", block, re.M)]
    assert len(examples) == 1, "docs/awx-ee.md should hold one ansible-builder 3 definition"
    return examples[0]


def test_awx_ee_doc_example_makes_a_build_context_that_installs_the_collection(artifact, tmp_path):
    # What the image build would do, short of the container: create the context, then run its galaxy step.
    shutil.copy(artifact, str(tmp_path / "oci-images.tar.gz"))
    (tmp_path / "execution-environment.yml").write_text(_ee_definition_from_docs())
    created = _run(_tool("ansible-builder"), "create", "--file", "execution-environment.yml", "--context", "context", cwd=str(tmp_path))
    assert created.returncode == 0, created.stdout + created.stderr
    build_dir = tmp_path / "context" / "_build"
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "WORKDIR /build" in containerfile and "-r requirements.yml" in containerfile
    installed = tmp_path / "installed"
    galaxy = _run(
        _tool("ansible-galaxy"),
        "collection",
        "install",
        "--offline",
        "-r",
        "requirements.yml",
        "--collections-path",
        str(installed),
        cwd=str(build_dir),
        env={"ANSIBLE_COLLECTIONS_PATH": str(installed)},
    )
    assert galaxy.returncode == 0, galaxy.stdout + galaxy.stderr
    found = _python_requirements(_introspect(str(installed)))
    assert set(RUNTIME_LIBRARIES) <= set(found)


def test_action_group_holds_every_module_and_each_takes_the_group_wide_options():
    # docs/awx-ee.md and docs/getting-started.md tell users to set these under group/oci.images.images; a module without one would fail there.
    with open(os.path.join(REPO, "meta", "runtime.yml")) as f:
        group = yaml.safe_load(f)["action_groups"]["images"]
    assert sorted(group) == _plugin_names("modules")
    proc = _run(_tool("ansible-doc"), "--json", *("oci.images." + name for name in group))
    assert proc.returncode == 0, proc.stderr
    for fqcn, entry in json.loads(proc.stdout).items():
        assert {"auth_file", "timeout", "retries", "validate_certs"} <= set(entry["doc"]["options"]), fqcn
