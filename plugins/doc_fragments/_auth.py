# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Credentials for one registry.
    DOCUMENTATION = r"""
options:
  username:
    description:
      - User name for the registry.
      - When neither O(username) nor O(registry_token) is given, credentials are looked up like podman and skopeo do,
        see O(auth_file).
    type: str
  password:
    description:
      - Password or access token for O(username).
    type: str
  registry_token:
    description:
      - A bearer token sent as it is in C(Authorization) headers; no token exchange is done.
      - Mutually exclusive with O(username) and O(password).
    type: str
  auth_file:
    description:
      - Path of a C(containers-auth.json) or Docker C(config.json) file to read credentials from.
      - Files are searched in this order, first match wins, as podman and skopeo do (see C(containers-auth.json(5))).
        This file, else C(REGISTRY_AUTH_FILE), else C(${XDG_RUNTIME_DIR}/containers/auth.json), or without C(XDG_RUNTIME_DIR)
        C(/run/containers/UID/auth.json) (where podman run as root logs in).
        Then C(${XDG_CONFIG_HOME:-~/.config}/containers/auth.json), C(${DOCKER_CONFIG}/config.json) or C(~/.docker/config.json),
        and Docker's legacy C(~/.dockercfg).
      - Entries are matched most specific first (C(host/namespace/repo), then its namespaces, then C(host));
        C(credHelpers) and C(credsStore) helpers are run with the server name on standard input.
    type: path
"""
