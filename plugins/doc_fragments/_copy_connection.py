# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Credentials and TLS for both sides of a copy. Each option means what its unprefixed twin
    # means in oci.images.image_info, for the source (src_) or the destination (dest_) registry.
    DOCUMENTATION = r"""
options:
  src_username:
    description:
      - User name for the source registry.
      - Without it, credentials are looked up like podman and skopeo do (see O(src_auth_file) and O(auth_file)).
    type: str
  src_password:
    description: Password or access token for O(src_username).
    type: str
  src_registry_token:
    description: Bearer token sent as it is to the source registry. Mutually exclusive with O(src_username).
    type: str
  src_validate_certs:
    description:
      - Verify the source registry's TLS certificate.
      - When V(false), a registry that does not speak TLS at all is reached over plain HTTP.
      - When not set, O(validate_certs) applies.
    type: bool
  src_ca_cert:
    description: PEM file of CAs to trust for the source registry, in addition to C(certs.d) directories.
    type: path
  src_client_cert:
    description: PEM client certificate for the source registry. Needs O(src_client_key).
    type: path
  src_client_key:
    description: PEM private key of O(src_client_cert).
    type: path
  dest_username:
    description:
      - User name for the destination registry.
      - Without it, credentials are looked up like podman and skopeo do (see O(dest_auth_file) and O(auth_file)).
    type: str
  dest_password:
    description: Password or access token for O(dest_username).
    type: str
  dest_registry_token:
    description: Bearer token sent as it is to the destination registry. Mutually exclusive with O(dest_username).
    type: str
  dest_validate_certs:
    description:
      - Verify the destination registry's TLS certificate.
      - When V(false), a registry that does not speak TLS at all is reached over plain HTTP.
      - When not set, O(validate_certs) applies.
    type: bool
  dest_ca_cert:
    description: PEM file of CAs to trust for the destination registry, in addition to C(certs.d) directories.
    type: path
  dest_client_cert:
    description: PEM client certificate for the destination registry. Needs O(dest_client_key).
    type: path
  dest_client_key:
    description: PEM private key of O(dest_client_cert).
    type: path
  src_daemon_host:
    description:
      - Address of the Docker engine for a C(docker-daemon:) source, as V(unix:///path/to/docker.sock) or V(tcp://HOST:PORT).
      - When not set, C(DOCKER_HOST) is used, else V(unix:///var/run/docker.sock).
      - Over V(tcp://), TLS is used when C(DOCKER_TLS_VERIFY) is set (with C(ca.pem), C(cert.pem), C(key.pem) from
        C(DOCKER_CERT_PATH), default C(~/.docker)) or when O(src_ca_cert) or O(src_client_cert) is given; these then apply to the engine.
    type: str
  dest_daemon_host:
    description:
      - Address of the Docker engine for a C(docker-daemon:) destination, in the same form as O(src_daemon_host).
      - Over V(tcp://), O(dest_ca_cert), O(dest_client_cert) and O(dest_client_key) then apply to the engine.
    type: str
  validate_certs:
    description:
      - Verify TLS certificates on both sides, unless O(src_validate_certs) or O(dest_validate_certs) says otherwise.
      - So that C(validate_certs) in C(module_defaults) for the group C(oci.images.images) reaches this module too.
    type: bool
    default: true
  auth_file:
    description:
      - Path of a C(containers-auth.json) or Docker C(config.json) file to read credentials from, for both sides,
        unless O(src_auth_file) or O(dest_auth_file) names another for its side.
      - Files are searched in this order, first match wins, as podman and skopeo do (see C(containers-auth.json(5))).
        This file, else C(REGISTRY_AUTH_FILE), else C(${XDG_RUNTIME_DIR}/containers/auth.json), or without C(XDG_RUNTIME_DIR)
        C(/run/containers/UID/auth.json) (where podman run as root logs in).
        Then C(${XDG_CONFIG_HOME:-~/.config}/containers/auth.json), C(${DOCKER_CONFIG}/config.json) or C(~/.docker/config.json),
        and Docker's legacy C(~/.dockercfg).
    type: path
  src_auth_file:
    description:
      - Auth file for the source registry (like C(skopeo copy --src-authfile)), searched first as O(auth_file) is.
      - When not set, O(auth_file) applies.
    type: path
  dest_auth_file:
    description:
      - Auth file for the destination registry (like C(skopeo copy --dest-authfile)), searched first as O(auth_file) is.
      - When not set, O(auth_file) applies.
    type: path
"""
