# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: image_digest
short_description: The digest an image reference names now, for pinning tags in templates
version_added: 0.1.0
description:
  - Returns, for each reference given, the digest of its top-level manifest (the index for a multi-arch image),
    the digest C(skopeo inspect --format '{{.Digest}}') reports and C(repo@digest) pins.
  - Registry references cost one manifest C(HEAD) (a C(GET) when the registry sends no digest header);
    local references (C(oci:), C(dir:), C(oci-archive:), C(docker-archive:), ...) are read from disk.
  - Runs on the controller, like every lookup.
author:
  - oci.images maintainers (@oci-images)
extends_documentation_fragment:
  - oci.images._auth
  - oci.images._tls
  - oci.images._retry
options:
  _terms:
    description:
      - Image references, as C(transport:details) like skopeo takes them; a reference without a transport is a registry reference.
    type: list
    elements: str
    required: true
  # The TLS options come from the oci.images._tls fragment; only where they can also be set is added here.
  validate_certs:
    env:
      - name: OCI_IMAGES_VALIDATE_CERTS
  ca_cert:
    env:
      - name: OCI_IMAGES_CA_CERT
  client_cert:
    env:
      - name: OCI_IMAGES_CLIENT_CERT
  client_key:
    env:
      - name: OCI_IMAGES_CLIENT_KEY
notes:
  - The TLS options can be set once for every call in the controller's environment - C(OCI_IMAGES_VALIDATE_CERTS=false),
    C(OCI_IMAGES_CA_CERT=/path/ca.pem) - instead of on each call; an option given to the call wins.
    A CA in a C(certs.d) directory (C(/etc/containers/certs.d/HOST:PORT/ca.crt)) needs no option at all.
  - Credentials are never part of an error message.
  - The same options apply to every reference of one call; call the lookup once per registry that needs other credentials.
seealso:
  - module: oci.images.image_info
requirements:
  - requests
"""

EXAMPLES = r"""
- name: Pin the deployed image to the digest the tag names today
  ansible.builtin.template:
    src: deployment.yaml.j2
    dest: /srv/app/deployment.yaml
  vars:
    app_digest: "{{ lookup('oci.images.image_digest', 'registry.example.com/team/app:1.2') }}"
    # in the template: image: registry.example.com/team/app@{{ app_digest }}

- name: Several references at once, a private registry and a local OCI layout
  ansible.builtin.debug:
    msg: "{{ query('oci.images.image_digest', 'docker://registry.internal:5000/app:1.2', 'oci:/srv/layout:app',
                   validate_certs=false, username='robot', password=vault_registry_password) }}"
"""

RETURN = r"""
_raw:
  description: One digest per reference, in the order given.
  type: list
  elements: str
  sample:
    - sha256:2f9d3ef1f0c4a3a42c4a1d33d3b9f1d4e5c2f7a0e1b2c3d4e5f60718293a4b5c
"""

import subprocess

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

from ansible_collections.oci.images.plugins.module_utils._deps import missing_libraries
from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._options import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ConnectionOptions


def _run_program(args, data=None):
    """How the lookup runs credential helpers on the controller: the program, its input on stdin, no shell."""
    proc = subprocess.run(args, input=data, capture_output=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        for library, _error in missing_libraries():
            raise AnsibleError("the oci.images.image_digest lookup needs the Python library %s on the controller" % library)
        from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
        from ansible_collections.oci.images.plugins.module_utils._transports._table import open_source

        timeout = self.get_option("timeout")
        retries = self.get_option("retries")
        options = ConnectionOptions(
            username=self.get_option("username"),
            password=self.get_option("password"),
            registry_token=self.get_option("registry_token"),
            auth_file=self.get_option("auth_file"),
            validate_certs=self.get_option("validate_certs") is not False,
            ca_cert=self.get_option("ca_cert"),
            client_cert=self.get_option("client_cert"),
            client_key=self.get_option("client_key"),
            timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
            retries=DEFAULT_RETRIES if retries is None else int(retries),
            runner=_run_program,
        )
        if options.registry_token and (options.username or options.password):
            raise AnsibleError("oci.images.image_digest: give registry_token or username/password, not both")
        digests = []
        for term in terms:
            try:
                with open_source(parse_reference(str(term)), options) as source:
                    digest = source.head_digest()
                    if digest is None:
                        raw, _media_type = source.get_manifest()
                        digest = source.manifest_digest(raw)
            except OCIError as exc:
                raise AnsibleError("oci.images.image_digest: %s: %s" % (term, exc.msg)) from None
            except Exception as exc:  # a lookup must answer with AnsibleError naming the reference, whatever broke
                raise AnsibleError("oci.images.image_digest: %s: %s" % (term, to_native(exc))) from exc
            digests.append(digest)
        return digests
