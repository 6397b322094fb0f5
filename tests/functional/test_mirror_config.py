"""mirror_config: the consumers of a mirror told where it is.

- a mirror made with image_copy from a sync spec; the registries.conf drop-in written from the same spec;
  with the origin registry stopped, skopeo, podman and image_info read the image by its original name;
- containerd (a daemon of the test's own) fetches the original name through the written hosts.toml with the origin
  stopped; the hosts.toml, read with the collection's TOML reader, against a schema written from
  containerd's documentation (docs/hosts.md), and its host URL answering for the image on the real mirror;
- ImageDigestMirrorSet / ImageTagMirrorSet against a schema written from the OpenShift API reference;
- check mode, diff, idempotency (nothing rewritten), clear refusals.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml
from ansible_run import run_module
from images import build_image
from registries import start_registry
from skopeo import SKOPEO

from ansible_collections.oci.images.plugins.module_utils._toml import loads as toml_loads

pytestmark = pytest.mark.timeout(600)

MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """An origin with team/app:1, mirrored with image_copy and a sync spec to MIRROR/mirror/app:1, and as a whole registry to MIRROR/whole/team/app:1.

    (Scoped names cannot hold the origin's 127.0.0.1:PORT: a port is no repository path component.)
    """
    work = tmp_path_factory.mktemp("mirror-config")
    origin = start_registry(str(work / "origin"), "plain")
    mirror = start_registry(str(work / "mirror"), "plain")
    store = tempfile.mkdtemp(prefix="oim-", dir="/tmp")  # podman's run root must be a short path
    try:
        image = build_image(str(work / "image"), ref="x", layer_sizes=(4096,), seed=919)
        pushed = run_module("image_copy", {"src": "oci:%s:x" % image["layout"], "dest": "docker://%s/team/app:1" % origin.host, "dest_validate_certs": False})
        assert not pushed.failed, pushed.output
        spec = {origin.host: {"images": {"team/app": ["1"]}, "tls-verify": False}}
        copied = run_module("image_copy", {"sync": spec, "dest": "docker://%s/mirror" % mirror.host, "dest_validate_certs": False})
        assert copied.changed and not copied.failed, copied.output
        whole = run_module(
            "image_copy",
            {
                "src": "docker://%s/team/app:1" % origin.host,
                "dest": "docker://%s/whole/team/app:1" % mirror.host,
                "src_validate_certs": False,
                "dest_validate_certs": False,
            },
        )
        assert whole.changed and not whole.failed, whole.output
        yield {"work": work, "origin": origin, "mirror": mirror, "spec": spec, "digest": image["manifest_digest"], "store": store}
    finally:
        shutil.rmtree(store, ignore_errors=True)
        origin.stop()
        mirror.stop()


def skopeo_digest(conf: str | None, ref: str) -> str | None:
    cmd = [SKOPEO, "--insecure-policy", *(["--registries-conf", conf] if conf else []), "inspect", "--raw", "--retry-times", "0", ref]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        return None
    import hashlib

    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def test_skopeo_podman_and_image_info_pull_the_original_name_through_the_mirror_with_the_origin_stopped(mirrored):
    conf = str(mirrored["work"] / "registries.conf.d" / "50-mirror.conf")
    run = run_module(
        "mirror_config",
        {"sync": mirrored["spec"], "mirror": "%s/mirror" % mirrored["mirror"].host, "registries_conf_drop_in": conf, "mirror_insecure": True},
    )
    assert run.changed and not run.failed, run.output
    origin = mirrored["origin"]
    name = "%s/team/app:1" % origin.host
    assert run.result["mirrors"] == [{"source": "%s/team/app" % origin.host, "mirror": "%s/mirror/app" % mirrored["mirror"].host}]
    origin.stop()
    try:
        assert skopeo_digest(None, "docker://" + name) is None  # the origin is down: without the drop-in nothing answers
        assert skopeo_digest(conf, "docker://" + name) == mirrored["digest"]
        store = mirrored["store"]
        podman = ["podman", "--root", store + "/root", "--runroot", store + "/run", "--storage-driver", "vfs"]
        env = dict(os.environ, CONTAINERS_REGISTRIES_CONF=conf)
        pulled = subprocess.run([*podman, "pull", "--quiet", name], capture_output=True, text=True, env=env, timeout=300, check=False)
        assert pulled.returncode == 0, pulled.stderr
        listed = subprocess.run([*podman, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"], capture_output=True, text=True, env=env, check=True)
        assert "%s %s" % (name, mirrored["digest"]) in listed.stdout
        info = run_module("image_info", {"image": "docker://" + name, "registries_conf": conf, "retries": 0})
        assert not info.failed, info.output
        assert info.result["image"]["digest"] == mirrored["digest"]
    finally:
        origin.start()


# containerd's docs/hosts.md: a top-level server, and [host."URL"] tables with capabilities (pull, resolve, push),
# skip_verify, ca (a path or several), client, override_path, header.
HOSTS_TOML_SCHEMA = {
    "type": "object",
    "properties": {
        "server": {"type": "string", "pattern": "^https?://[^/]+"},
        "capabilities": {"$ref": "#/$defs/capabilities"},
        "ca": {"$ref": "#/$defs/paths"},
        "skip_verify": {"type": "boolean"},
        "override_path": {"type": "boolean"},
        "host": {
            "type": "object",
            "minProperties": 1,
            "patternProperties": {
                "^https?://[^/]+(/.*)?$": {
                    "type": "object",
                    "properties": {
                        "capabilities": {"$ref": "#/$defs/capabilities"},
                        "skip_verify": {"type": "boolean"},
                        "override_path": {"type": "boolean"},
                        "ca": {"$ref": "#/$defs/paths"},
                        "client": {"type": ["string", "array"]},
                        "header": {"type": "object"},
                    },
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
    },
    "required": ["server", "host"],
    "additionalProperties": False,
    "$defs": {
        "capabilities": {"type": "array", "items": {"enum": ["pull", "resolve", "push"]}, "uniqueItems": True},
        "paths": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    },
}


def test_hosts_toml_follows_containerds_schema_and_its_url_serves_the_image(mirrored, tmp_path):
    certs = tmp_path / "certs.d"
    run = run_module(
        "mirror_config",
        {"mirrors": {mirrored["origin"].host: "%s/whole" % mirrored["mirror"].host}, "containerd_certs_d": str(certs), "mirror_insecure": True},
    )
    assert run.changed and not run.failed, run.output
    origin = mirrored["origin"].host
    path = certs / origin / "hosts.toml"
    assert sorted(os.listdir(certs)) == [origin]
    doc = toml_loads(path.read_text(), str(path))
    jsonschema.validate(doc, HOSTS_TOML_SCHEMA)
    assert doc["server"] == "https://" + origin
    ((url, host),) = doc["host"].items()
    assert host["capabilities"] == ["pull", "resolve"] and host["override_path"] is True
    # override_path: the URL is the API root; containerd asks URL/<repository>/manifests/<tag>, as here.
    request = urllib.request.Request(url + "/team/app/manifests/1", headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.headers["Docker-Content-Digest"] == mirrored["digest"]


def test_hosts_toml_of_a_whole_registry_has_no_path_and_names_the_ca(tmp_path):
    run = run_module(
        "mirror_config",
        {"mirrors": {"docker.io": "mirror.example.com:5000"}, "containerd_certs_d": str(tmp_path), "mirror_ca_cert": "/etc/pki/mirror-ca.crt"},
    )
    assert not run.failed, run.output
    doc = toml_loads((tmp_path / "docker.io" / "hosts.toml").read_text())
    jsonschema.validate(doc, HOSTS_TOML_SCHEMA)
    assert doc == {
        "server": "https://registry-1.docker.io",
        "host": {"https://mirror.example.com:5000": {"capabilities": ["pull", "resolve"], "ca": "/etc/pki/mirror-ca.crt"}},
    }


# The OpenShift API reference (config.openshift.io/v1 ImageDigestMirrorSet / ImageTagMirrorSet): spec.<list> of
# {source (required), mirrors (a set), mirrorSourcePolicy (NeverContactSource or AllowContactingSource)};
# source and mirrors are host[:port][/namespace...] (source may also be a *.domain wildcard).
_HOST = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?"
_PATHS = r"(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?"


def mirror_set_schema(kind: str, key: str) -> dict:
    entry = {
        "type": "object",
        "required": ["source"],
        "properties": {
            "source": {"type": "string", "pattern": r"^\*(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+$|^(%s)%s$" % (_HOST, _PATHS)},
            "mirrors": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": r"^((%s)%s)$" % (_HOST, _PATHS)}},
            "mirrorSourcePolicy": {"enum": ["NeverContactSource", "AllowContactingSource"]},
        },
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "config.openshift.io/v1"},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}},
            },
            "spec": {"type": "object", "properties": {key: {"type": "array", "items": entry}}, "additionalProperties": False},
        },
        "additionalProperties": False,
    }


MAPPING = {
    "quay.io/team": "mirror.example.com:5000/quay.io/team",
    "docker.io/library": "mirror.example.com:5000/hub/library",
    "registry.example.com:8443/platform/base": "mirror.example.com:5000/platform-base",
}


@pytest.mark.parametrize(
    "option, kind, key",
    [("image_digest_mirror_set", "ImageDigestMirrorSet", "imageDigestMirrors"), ("image_tag_mirror_set", "ImageTagMirrorSet", "imageTagMirrors")],
)
def test_mirror_sets_follow_the_openshift_schema(tmp_path, option, kind, key):
    path = str(tmp_path / "set.yaml")
    run = run_module("mirror_config", {"mirrors": MAPPING, option: path, "name": "air-gap", "mirror_source_policy": "NeverContactSource"})
    assert run.changed and not run.failed, run.output
    with open(path) as f:
        doc = yaml.safe_load(f)
    jsonschema.validate(doc, mirror_set_schema(kind, key))
    assert doc["metadata"]["name"] == "air-gap"
    assert {e["source"]: e["mirrors"] for e in doc["spec"][key]} == {source: [mirror] for source, mirror in MAPPING.items()}
    assert {e["mirrorSourcePolicy"] for e in doc["spec"][key]} == {"NeverContactSource"}


def test_check_mode_and_diff_then_a_second_run_writes_nothing(tmp_path):
    conf = str(tmp_path / "50-mirror.conf")
    args = {"mirrors": MAPPING, "registries_conf_drop_in": conf, "image_digest_mirror_set": str(tmp_path / "idms.yaml")}
    check = run_module("mirror_config", args, check=True, diff=True)
    assert check.changed and not check.failed, check.output
    assert not os.listdir(tmp_path)
    assert '+prefix = "quay.io/team"' in check.stdout  # the diff Ansible prints
    first = run_module("mirror_config", args)
    assert first.changed and [f["changed"] for f in first.result["files"]] == [True, True]
    before = {n: os.stat(tmp_path / n).st_mtime_ns for n in os.listdir(tmp_path)}
    again = run_module("mirror_config", args, diff=True)
    assert not again.changed and not again.failed, again.output
    assert {n: os.stat(tmp_path / n).st_mtime_ns for n in os.listdir(tmp_path)} == before
    assert sorted(os.listdir(tmp_path)) == ["50-mirror.conf", "idms.yaml"]  # nothing temporary left
    with open(conf, "a") as f:
        f.write('[[registry]]\nprefix = "by-hand"\n')
    fixed = run_module("mirror_config", args, diff=True)
    assert fixed.changed and [f["changed"] for f in fixed.result["files"]] == [True, False]
    assert '-prefix = "by-hand"' in fixed.stdout
    # What was written is what the collection's registries.conf reader takes.
    with open(conf) as f:
        doc = toml_loads(f.read())
    assert [(r["prefix"], r["mirror"][0]["location"]) for r in doc["registry"]] == sorted(MAPPING.items(), key=lambda kv: -len(kv[0]))


@pytest.mark.parametrize(
    "args, words",
    [
        (
            {"mirrors": {"quay.io/a": "m.example.com/x", "quay.io/b": "m.example.com/y"}, "containerd_certs_d": "{tmp}"},
            ["containerd", "quay.io/a", "whole registries"],
        ),
        ({"mirrors": {"Quay.io/Team": "m.example.com/x"}, "registries_conf_drop_in": "{tmp}/r.conf"}, ["Quay.io/Team", "host[:port][/path]"]),
        ({"mirrors": {"quay.io": "m.example.com"}}, ["one of the following"]),
        ({"sync": {"quay.io": {"images": {"a": []}}}, "registries_conf_drop_in": "{tmp}/r.conf"}, ["mirror is required"]),
        ({"mirrors": {"quay.io": "m.example.com"}, "image_tag_mirror_set": "{tmp}/t.yaml", "name": "Not A Name"}, ["Not A Name", "Kubernetes"]),
    ],
)
def test_refusals_are_clear_and_write_nothing(tmp_path, args, words):
    args = json.loads(json.dumps(args).replace("{tmp}", str(tmp_path)))
    run = run_module("mirror_config", args)
    assert run.failed, run.result
    assert "Traceback" not in run.output and "module_stderr" not in run.result, run.output
    for word in words:
        assert word in run.result["msg"], run.result["msg"]
    assert not os.listdir(tmp_path)


@pytest.fixture
def containerd():
    """A containerd of this test's own (its own root, state and socket; no CRI), stopped afterwards; yields the ctr command."""
    work = tempfile.mkdtemp(prefix="oic-", dir="/tmp")  # a unix socket path must stay short
    sock = os.path.join(work, "c.sock")
    config = os.path.join(work, "config.toml")
    with open(config, "w") as f:
        f.write(
            'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            '[grpc]\n  address = "%s"\n[ttrpc]\n  address = "%s.ttrpc"\n' % (work, work, sock, sock)
        )
    log = open(os.path.join(work, "containerd.log"), "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(["containerd", "--config", config], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ctr = ["ctr", "--address", sock, "--namespace", "oci-images-test"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*ctr, "version"], capture_output=True, check=False).returncode != 0:
            assert process.poll() is None and time.monotonic() < deadline, Path(work, "containerd.log").read_text()
            time.sleep(0.2)
        yield ctr
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def test_containerd_fetches_the_original_name_through_hosts_toml_with_the_origin_stopped(mirrored, containerd, tmp_path):
    certs = tmp_path / "certs.d"
    origin = mirrored["origin"]
    run = run_module(
        "mirror_config", {"mirrors": {origin.host: "%s/whole" % mirrored["mirror"].host}, "containerd_certs_d": str(certs), "mirror_insecure": True}
    )
    assert run.changed and not run.failed, run.output
    name = "%s/team/app:1" % origin.host
    origin.stop()
    try:
        without = subprocess.run([*containerd, "content", "fetch", "--plain-http", name], capture_output=True, text=True, timeout=120, check=False)
        assert without.returncode != 0  # the origin is down: without hosts.toml nothing answers
        fetched = subprocess.run([*containerd, "content", "fetch", "--hosts-dir", str(certs), name], capture_output=True, text=True, timeout=300, check=False)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        listed = subprocess.run([*containerd, "images", "list"], capture_output=True, text=True, check=True).stdout
        assert name in listed and mirrored["digest"] in listed, listed
    finally:
        origin.start()
