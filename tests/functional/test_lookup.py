"""The oci.images.image_digest lookup, through ansible-playbook, against the real registry and skopeo."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
from ansible_run import BIN, ansible_env, run_playbook
from images import build_image, build_index

pytestmark = pytest.mark.timeout(600)

TEMPLATE = """\
app: {{ registry }}/lookup/app@{{ lookup('oci.images.image_digest', 'docker://' ~ registry ~ '/lookup/app:1', validate_certs=false) }}
{% for d in query('oci.images.image_digest', registry ~ '/lookup/multi:1', 'oci:' ~ layout ~ ':v1', validate_certs=false, retries=0) %}
pinned{{ loop.index }}: {{ d }}
{% endfor %}
"""
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.template:
        src: "{{ template_path }}"
        dest: "{{ out_path }}"
"""


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_lookup_renders_registry_and_local_digests_in_a_template(registry, skopeo, tmp_path):
    image = build_image(str(tmp_path / "layout"), ref="v1", layer_sizes=(1024,), seed=81)
    index = build_index(str(tmp_path / "multi"), ref="m", platforms=["linux/amd64", "linux/arm64/v8"], seed=82)
    skopeo.copy(image["reference"], "docker://%s/lookup/app:1" % registry.host)
    skopeo.copy(index["reference"], "docker://%s/lookup/multi:1" % registry.host, "--multi-arch", "all")
    (tmp_path / "pins.j2").write_text(TEMPLATE)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    out = tmp_path / "pins.yaml"
    extra = {"template_path": str(tmp_path / "pins.j2"), "out_path": str(out), "registry": registry.host, "layout": str(tmp_path / "layout")}
    proc = run_playbook(str(tmp_path / "play.yml"), extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    app = digest_of(skopeo.inspect_raw("docker://%s/lookup/app:1" % registry.host))
    multi = digest_of(skopeo.inspect_raw("docker://%s/lookup/multi:1" % registry.host))
    assert multi == index["index_digest"]
    assert out.read_text().splitlines() == [
        "app: %s/lookup/app@%s" % (registry.host, app),
        "pinned1: %s" % multi,
        "pinned2: %s" % digest_of(skopeo.inspect_raw(image["reference"])),
    ]


def test_lookup_error_names_the_reference(registry, tmp_path):
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: \"{{ lookup('oci.images.image_digest', ref, validate_certs=false, retries=0) }}\"\n"
    )
    ref = "docker://%s/lookup/absent:9" % registry.host
    proc = run_playbook(str(tmp_path / "play.yml"), {"ref": ref})
    assert proc.returncode != 0
    assert "oci.images.image_digest: %s" % ref in proc.stdout


def test_lookup_documentation_renders():
    cmd = [os.path.join(BIN, "ansible-doc"), "-t", "lookup", "oci.images.image_digest"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=ansible_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    for word in ("registry_token", "validate_certs", "client_key", "retries", "_raw"):
        assert word in proc.stdout


def test_lookup_takes_its_tls_settings_from_the_environment(registry, fresh_registry, skopeo, tmp_path):
    # One setting for every call of a play: OCI_IMAGES_VALIDATE_CERTS for a plain-HTTP registry,
    # OCI_IMAGES_CA_CERT for a private CA. The calls themselves name no TLS option.
    tls = fresh_registry("tls")
    image = build_image(str(tmp_path / "layout"), ref="v1", layer_sizes=(1024,), seed=83)
    skopeo.copy(image["reference"], "docker://%s/lookup/env:1" % registry.host)
    skopeo.copy(image["reference"], "docker://%s/lookup/env:1" % tls.host)
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        '    - ansible.builtin.copy:\n        dest: "{{ out }}"\n'
        "        content: \"{{ lookup('oci.images.image_digest', ref, retries=0) }}\"\n        mode: '0644'\n"
    )
    out = tmp_path / "digest"
    plain = {"out": str(out), "ref": "docker://%s/lookup/env:1" % registry.host}
    proc = run_playbook(str(tmp_path / "play.yml"), plain)
    assert proc.returncode != 0  # certificates are verified unless told otherwise
    proc = run_playbook(str(tmp_path / "play.yml"), plain, env={"OCI_IMAGES_VALIDATE_CERTS": "false"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_text() == image["manifest_digest"]

    out.unlink()
    private = {"out": str(out), "ref": "docker://%s/lookup/env:1" % tls.host}
    home = {"HOME": str(tmp_path / "home")}  # no certs.d of the machine's user
    proc = run_playbook(str(tmp_path / "play.yml"), private, env=home)
    assert proc.returncode != 0 and "TLS" in proc.stdout
    proc = run_playbook(str(tmp_path / "play.yml"), private, env=dict(home, OCI_IMAGES_CA_CERT=tls.ca_cert))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_text() == image["manifest_digest"]
    # An option given to the call wins over the environment.
    (tmp_path / "play.yml").write_text((tmp_path / "play.yml").read_text().replace("retries=0", "retries=0, validate_certs=true"))
    proc = run_playbook(str(tmp_path / "play.yml"), plain, env={"OCI_IMAGES_VALIDATE_CERTS": "false"})
    assert proc.returncode != 0


def test_lookup_asks_a_credential_helper_on_the_controller(basic_registry, skopeo, tmp_path):
    """The helper runs through the runner the lookup passes down (there is no process-wide one to forget)."""
    image = build_image(str(tmp_path / "layout"), ref="v1", layer_sizes=(1024,), seed=83)
    creds = "%s:%s" % (basic_registry.username, basic_registry.password)
    skopeo.copy(image["reference"], "docker://%s/lookup/helped:1" % basic_registry.host, "--dest-creds", creds)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked"
    helper = bin_dir / "docker-credential-testhelper"
    helper.write_text(
        "#!/bin/sh\n"
        'cat > "%s"\n'
        'printf \'{"ServerURL": "%s", "Username": "%s", "Secret": "%s"}\'\n' % (asked, basic_registry.host, basic_registry.username, basic_registry.password)
    )
    helper.chmod(0o755)
    auth = tmp_path / "auth.json"
    auth.write_text('{"credHelpers": {"%s": "testhelper"}}' % basic_registry.host)
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"pinned={{ lookup('oci.images.image_digest', ref, auth_file=auth, ca_cert=ca) }}\"\n"
    )
    env = {"PATH": "%s:%s" % (bin_dir, os.environ.get("PATH", ""))}
    extra = {"ref": "docker://%s/lookup/helped:1" % basic_registry.host, "auth": str(auth), "ca": basic_registry.ca_cert}
    proc = run_playbook(str(tmp_path / "play.yml"), extra, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pinned=%s" % image["manifest_digest"] in proc.stdout
    assert asked.read_text() == basic_registry.host  # the server name came on stdin
