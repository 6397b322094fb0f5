#!/usr/bin/python
# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sigstore_key
short_description: Create a sigstore (cosign) key pair for signing container images
version_added: 0.1.0
description:
  - Creates an ECDSA P-256 key pair in the files C(cosign generate-key-pair) writes - the private key encrypted
    with a passphrase (scrypt and NaCl secretbox, in cosign's C(ENCRYPTED COSIGN PRIVATE KEY) PEM format) and the
    public key as a PEM C(PUBLIC KEY) - so no other tool is needed to sign with
    M(oci.images.image_copy) (O(oci.images.image_copy#module:sign_by_sigstore_private_key)), skopeo or cosign.
  - Idempotent. An existing private key is decrypted with O(passphrase) and kept; its public key file is
    written again only when it differs. A wrong passphrase fails the task, and the key is never replaced unless O(force=true).
  - The private key file has mode C(0600), the public key file C(0644); both are written atomically.
author:
  - oci.images maintainers (@oci-images)
extends_documentation_fragment:
  - oci.images._auth
  - oci.images._tls
  - oci.images._retry
  - oci.images._upstreams
  - oci.images._attributes
  - oci.images._attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - In check mode an existing key is still decrypted, to tell whether the passphrase is right.
  diff_mode:
    support: full
    details:
      - The diff shows whether the private key is present and the public key; never the private key or the passphrase.
  idempotent:
    support: full
options:
  path:
    description:
      - The private key file, for example V(/etc/pki/cosign.key).
    type: path
    required: true
  public_key_path:
    description:
      - The public key file. Default is O(path) with C(.key) replaced by C(.pub) (C(cosign.key) and C(cosign.pub)),
        or O(path) with C(.pub) appended.
    type: path
  passphrase:
    description:
      - The passphrase that encrypts the private key. An empty string leaves the key protected by an empty passphrase, as cosign allows.
      - Required with O(state=present).
    type: str
  state:
    description:
      - V(present) makes sure the key pair exists; V(absent) removes both files.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Replace an existing private key with a new one (the passphrase of the old one is not needed then).
    type: bool
    default: false
  pem_label:
    description:
      - The PEM label of the private key. V(cosign) (C(ENCRYPTED COSIGN PRIVATE KEY)) is read by every cosign and skopeo
        version; V(sigstore) (C(ENCRYPTED SIGSTORE PRIVATE KEY)) is what cosign 2 writes, which skopeo 1.9 cannot read.
    type: str
    choices: [cosign, sigstore]
    default: cosign
notes:
  - The passphrase is never returned or logged.
  - The registry connection options are accepted so that C(module_defaults) for C(group/oci.images.images) apply to
    every module of the group; this module makes no connection and does not use them.
seealso:
  - module: oci.images.image_copy
  - name: cosign generate-key-pair
    description: The command whose files this module writes.
    link: https://github.com/sigstore/cosign/blob/main/doc/cosign_generate-key-pair.md
requirements:
  - cryptography
  - PyNaCl
"""

EXAMPLES = r"""
- name: Create the key the mirror signs with
  oci.images.sigstore_key:
    path: /etc/pki/mirror/cosign.key
    passphrase: "{{ vault_cosign_passphrase }}"
  register: signing_key

- name: Publish the public key for the policy of the hosts that pull from the mirror
  ansible.builtin.copy:
    content: "{{ signing_key.public_key }}"
    dest: /etc/containers/mirror-cosign.pub
    mode: "0644"
"""

RETURN = r"""
rate_limit_waits:
  description:
    - What waiting for registries cost, in the form RV(oci.images.image_copy#module:rate_limit_waits) describes, as every module of the
      group returns it. Always empty here - this module makes no connection.
  returned: always
  type: dict
private_key_path:
  description: The private key file.
  returned: always
  type: str
  sample: /etc/pki/mirror/cosign.key
public_key_path:
  description: The public key file.
  returned: always
  type: str
  sample: /etc/pki/mirror/cosign.pub
public_key:
  description: The public key, PEM.
  returned: when O(state=present)
  type: str
  sample: "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...\n-----END PUBLIC KEY-----\n"
key_id:
  description: C(sha256:) of the public key (its DER SubjectPublicKeyInfo), as image_copy and image_info name the key.
  returned: when O(state=present)
  type: str
  sample: sha256:0d7d1a6ee6b6d4e0f4a4f3a6b1d0f3a5c2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._module_setup import start_module


def main() -> None:
    module = start_module(
        AnsibleModule,
        missing_required_lib,
        dict(
            path=dict(type="path", required=True),
            public_key_path=dict(type="path"),
            passphrase=dict(type="str", no_log=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            force=dict(type="bool", default=False),
            pem_label=dict(type="str", choices=["cosign", "sigstore"], default="cosign"),
        ),
        libraries=("cryptography", "nacl"),
        required_if=[("state", "present", ("passphrase",))],
    )
    from ansible_collections.oci.images.plugins.module_utils._sigstore import PEM_LABELS, default_public_key_path, ensure_key_pair

    params = module.params
    try:
        result = ensure_key_pair(
            params["path"],
            params["public_key_path"] or default_public_key_path(params["path"]),
            params["passphrase"] or "",
            state=params["state"],
            force=params["force"],
            label=PEM_LABELS[params["pem_label"]],
            check_mode=module.check_mode,
        )
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:
        module.fail_json(msg="cannot write the key pair %s: %s" % (params["path"], exc.strerror or exc))
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
