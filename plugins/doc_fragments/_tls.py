# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # TLS settings for one registry.
    DOCUMENTATION = r"""
options:
  validate_certs:
    description:
      - Verify the registry's TLS certificate.
      - When V(false), a registry that does not speak TLS at all is reached over plain HTTP.
    type: bool
    default: true
  ca_cert:
    description:
      - PEM file of the certificate authorities to trust for the registry, in addition to
        the C(*.crt) files found in C(certs.d) directories.
      - The C(certs.d) directories searched, per registry C(HOST[:PORT]), are
        C(~/.config/containers/certs.d/), C(/etc/containers/certs.d/) and C(/etc/docker/certs.d/).
    type: path
  client_cert:
    description:
      - PEM client certificate for registries that require mutual TLS. Needs O(client_key).
    type: path
  client_key:
    description:
      - PEM private key of O(client_cert).
    type: path
"""
