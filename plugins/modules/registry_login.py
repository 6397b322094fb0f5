#!/usr/bin/python
# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_login
short_description: Log in to a container registry and keep the credentials in a containers auth.json file
version_added: 0.1.0
description:
  - Checks a user name and password against a registry and writes them to the auth file that
    C(podman login) and C(skopeo login) write, in the C(containers-auth.json) format that podman,
    skopeo, buildah, docker and every module of this collection read.
  - With O(state=absent), removes the registry's entry from the file, like C(podman logout).
  - Only the registry's entry changes. Every other entry and every other key of the file (for example
    C(credHelpers) or C(credsStore)) is kept as it was. An unchanged entry is not rewritten.
  - The file is written atomically (a temporary file renamed over it) with mode C(0600); a missing
    directory is created with mode C(0700).
author:
  - oci.images maintainers (@oci-images)
extends_documentation_fragment:
  - oci.images._tls
  - oci.images._retry
  - oci.images._attributes
  - oci.images._attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - In check mode the credentials are still verified against the registry (unless O(verify=false)); nothing is written.
  diff_mode:
    support: full
    details:
      - The diff lists the registry keys of the file before and after. It never shows a password or the encoded C(auth) value.
  idempotent:
    support: full
options:
  registry:
    description:
      - The registry to log in to, as C(host[:port]), for example V(registry.example.com:5000) or V(docker.io).
      - A URL form such as V(https://registry.example.com/) or V(https://index.docker.io/v1/) is accepted and
        stored under the same key C(podman login) uses (V(registry.example.com), V(docker.io)).
      - A V(host/namespace) key gives credentials for the repositories under that namespace only, as podman allows;
        they are verified against C(host).
    type: str
    required: true
  username:
    description:
      - User name for the registry. Required with O(state=present).
    type: str
  password:
    description:
      - Password or access token for O(username). Required with O(state=present).
    type: str
  auth_file:
    description:
      - The auth file to change.
      - When not set, the file C(podman login) uses on Linux
        C($REGISTRY_AUTH_FILE) when that variable is set,
        else C(${XDG_RUNTIME_DIR}/containers/auth.json) when C(XDG_RUNTIME_DIR) is set and that directory exists,
        else, as root without C(XDG_RUNTIME_DIR), C(/run/containers/0/auth.json),
        else C(${XDG_CONFIG_HOME:-~/.config}/containers/auth.json).
      - C(/run) is emptied at every boot, as podman's own login there is; set O(auth_file) for a login that lasts.
      - The last one is for a runtime directory that does not exist (podman refuses to log in then) and for a user other
        than root without C(XDG_RUNTIME_DIR); podman, skopeo and this collection all read it after the runtime file.
      - A Docker C(config.json) works too; an existing entry keeps the key spelling it has there
        (such as C(https://index.docker.io/v1/) for Docker Hub).
      - When the path is a symbolic link, the file it points to is changed.
    type: path
  state:
    description:
      - V(present) logs in and stores the credentials; V(absent) removes every entry for the registry (logs out).
    type: str
    choices: [present, absent]
    default: present
  verify:
    description:
      - Check the credentials against the registry before writing them, by an authenticated C(GET /v2/)
        answering the registry's challenge (Basic, or a token from its token server).
      - Rejected credentials fail the task and leave the file unchanged.
      - A registry that lets anyone read C(/v2/) cannot refuse the credentials here.
      - With V(false) no connection is made and the credentials are written as given.
    type: bool
    default: true
notes:
  - The password and the encoded C(auth) value are never returned, logged or shown in a diff.
  - A C(credHelpers) entry for the registry in the file takes precedence over C(auths) for every reader;
    the module warns when there is one.
  - Docker Hub's Docker CLI looks only at the key C(https://index.docker.io/v1/); podman, skopeo and this
    collection also read C(docker.io).
seealso:
  - name: podman login
    description: The command whose file this module writes.
    link: https://docs.podman.io/en/latest/markdown/podman-login.1.html
  - name: containers-auth.json(5)
    description: The file format and where podman and skopeo look for it.
    link: https://github.com/containers/image/blob/main/docs/containers-auth.json.5.md
requirements:
  - requests
"""

EXAMPLES = r"""
- name: Log in to a private registry (written where podman and skopeo look)
  oci.images.registry_login:
    registry: registry.example.com
    username: robot
    password: "{{ vault_registry_password }}"

- name: Log in with a private CA, into a file of the job's own
  oci.images.registry_login:
    registry: registry.example.com:5000
    username: robot
    password: "{{ vault_registry_password }}"
    ca_cert: /etc/pki/registry-ca.pem
    auth_file: "{{ playbook_dir }}/.auth.json"

- name: Use the login in later tasks
  oci.images.image_info:
    image: docker://registry.example.com:5000/team/app:1.2
    auth_file: "{{ playbook_dir }}/.auth.json"
    ca_cert: /etc/pki/registry-ca.pem

- name: Log out
  oci.images.registry_login:
    registry: registry.example.com
    state: absent
"""

RETURN = r"""
registry:
  description: The key the entry is stored under (the normalized registry).
  returned: always
  type: str
  sample: registry.example.com:5000
auth_file:
  description: The auth file that was changed (or would be, in check mode), symbolic links resolved.
  returned: always
  type: str
  sample: /run/user/1000/containers/auth.json
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._deps import missing_libraries
from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._module_setup import side_options, start_module
from ansible_collections.oci.images.plugins.module_utils._options import DEFAULT_RETRIES, DEFAULT_TIMEOUT


def main() -> None:
    module = start_module(
        AnsibleModule,
        missing_required_lib,
        dict(
            registry=dict(type="str", required=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            auth_file=dict(type="path"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            verify=dict(type="bool", default=True),
            validate_certs=dict(type="bool", default=True),
            ca_cert=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path"),
            timeout=dict(type="float", default=DEFAULT_TIMEOUT),
            retries=dict(type="int", default=DEFAULT_RETRIES),
        ),
        sides=None,
        libraries=(),  # requests only when the login is verified, below
        required_if=[("state", "present", ("username", "password"))],
        required_together=[("client_cert", "client_key")],
    )
    params = module.params
    if params["state"] == "present" and params["verify"]:
        for library, error in missing_libraries(("requests",)):
            module.fail_json(msg=missing_required_lib(library), exception=error)

    # Imported after the dependency check so a missing library gives a clear message.
    from ansible_collections.oci.images.plugins.module_utils._login import ensure_login, ensure_logout

    try:
        if params["state"] == "present":
            result = ensure_login(
                params["registry"],
                params["username"],
                params["password"],
                auth_file=params["auth_file"],
                options=side_options(module),
                verify=params["verify"],
                check_mode=module.check_mode,
            )
        else:
            result = ensure_logout(params["registry"], auth_file=params["auth_file"], check_mode=module.check_mode)
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    for warning in result.warnings:
        module.warn(warning)
    output = dict(changed=result.changed, registry=result.registry, auth_file=result.auth_file)
    if module._diff:
        output["diff"] = result.diff
    module.exit_json(**output)


if __name__ == "__main__":
    main()
