# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Where the Docker engine listens, for docker-daemon: references.
    DOCUMENTATION = r"""
options:
  daemon_host:
    description:
      - Address of the Docker engine for C(docker-daemon:) references, as V(unix:///path/to/docker.sock) or V(tcp://HOST:PORT).
      - When not set, C(DOCKER_HOST) is used, else V(unix:///var/run/docker.sock).
      - Over V(tcp://), TLS is used when C(DOCKER_TLS_VERIFY) is set (with C(ca.pem), C(cert.pem), C(key.pem) from
        C(DOCKER_CERT_PATH), default C(~/.docker)) or when O(ca_cert) or O(client_cert) is given; these then apply to the engine.
    type: str
"""
