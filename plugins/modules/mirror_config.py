#!/usr/bin/python
# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mirror_config
short_description: Write the configuration that makes podman, CRI-O, skopeo, containerd and OpenShift pull from a mirror
version_added: 0.1.0
description:
  - After a mirror (M(oci.images.image_copy) with O(oci.images.image_copy#module:sync), or the C(oci.images.mirror) role),
    every node that pulls must be told where the mirror is. From a mapping of source prefixes to mirror prefixes
    (O(mirrors)), or from the sync spec and the mirror it was copied to (O(sync), O(sync_file), O(mirror)), this module writes,
    each only when its option is given -
  - a C(registries.conf.d) drop-in (O(registries_conf_drop_in)) read by podman, CRI-O, skopeo and buildah - one C([[registry]])
    per source prefix with its C([[registry.mirror]]), so an image pulled by its original name comes from the mirror first;
  - containerd C(hosts.toml) files under a C(certs.d)-style tree (O(containerd_certs_d)), one C(HOST/hosts.toml) per source registry;
  - an OpenShift C(ImageDigestMirrorSet) (O(image_digest_mirror_set)) and C(ImageTagMirrorSet) (O(image_tag_mirror_set)) as YAML,
    to apply with C(oc apply -f).
  - Idempotent. Each file is rendered in full and compared with what is there; only a file that differs is written, atomically
    (a temporary file beside it, then a rename). Check mode and diff use the same comparison.
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
  diff_mode:
    support: full
    details:
      - The diff shows each file that would change, before and after.
  idempotent:
    support: full
options:
  mirrors:
    description:
      - Source prefixes (C(registry[/path])) mapped to the prefix each is mirrored at (C(host[:port][/path])),
        for example V(quay.io/team) mapped to V(mirror.example.com:5000/quay.io/team).
      - An image named by a source prefix and a rest (C(quay.io/team/app:1)) is pulled as the mirror prefix and the same rest
        (C(mirror.example.com:5000/quay.io/team/app:1)); the longest matching prefix wins, as registries.conf and OpenShift choose.
      - Mutually exclusive with O(sync) and O(sync_file).
    type: dict
  sync:
    description:
      - A sync spec, as M(oci.images.image_copy) takes it; each repository it names is mapped to where image_copy puts it
        under O(mirror) (with O(scoped) as given to image_copy). Tags are not read; no registry is contacted.
    type: dict
  sync_file:
    description:
      - The sync spec in a YAML file, as C(skopeo sync --src yaml) reads it.
    type: path
  mirror:
    description:
      - The registry prefix the sync spec was copied to (image_copy's O(oci.images.image_copy#module:dest)), such as V(mirror.example.com:5000/mirror).
      - Required with O(sync) or O(sync_file).
    type: str
  scoped:
    description:
      - As image_copy's O(oci.images.image_copy#module:scoped) - images were copied to C(MIRROR/REGISTRY/PATH) rather than C(MIRROR/LAST-PATH-COMPONENT).
    type: bool
    default: false
  registries_conf_drop_in:
    description:
      - Write this C(registries.conf.d) drop-in (containers-registries.conf(5), version 2), such as V(/etc/containers/registries.conf.d/50-mirror.conf).
      - Each source prefix gets a C([[registry]]) whose C(location) stays the source, and one C([[registry.mirror]]); podman, CRI-O and skopeo
        try the mirror first and the source after it (with the source unreachable, the mirror alone serves).
    type: path
  containerd_certs_d:
    description:
      - Write C(HOST/hosts.toml) under this directory for each source registry, such as V(/etc/containerd/certs.d)
        (containerd's C(config_path), or C(ctr images pull --hosts-dir)).
      - containerd maps whole registries - every prefix of one registry must keep the same mirror root (the mirror path ends with the
        source path, as with O(scoped)), or the task fails saying which entries differ.
      - A mirror prefix with a path becomes a host URL with C(override_path = true), as containerd's documentation describes.
    type: path
  image_digest_mirror_set:
    description:
      - Write an OpenShift C(ImageDigestMirrorSet) (config.openshift.io/v1) here, for pulls by digest.
    type: path
  image_tag_mirror_set:
    description:
      - Write an OpenShift C(ImageTagMirrorSet) (config.openshift.io/v1) here, for pulls by tag.
    type: path
  name:
    description:
      - C(metadata.name) of the C(ImageDigestMirrorSet) and C(ImageTagMirrorSet) (a DNS subdomain name).
    type: str
    default: oci-images-mirror
  mirror_source_policy:
    description:
      - C(mirrorSourcePolicy) of every OpenShift entry - V(NeverContactSource) pulls only from the mirror,
        V(AllowContactingSource) (OpenShift's default when absent) falls back to the source.
    type: str
    choices: [AllowContactingSource, NeverContactSource]
  mirror_insecure:
    description:
      - The mirror serves plain HTTP - C(insecure = true) for every registries.conf mirror (which also accepts a certificate that does
        not verify), C(http://) host URLs in C(hosts.toml).
    type: bool
    default: false
  mirror_ca_cert:
    description:
      - The CA certificate file that verifies the mirror on the nodes, written as C(ca) in C(hosts.toml). podman, CRI-O and skopeo
        read CA certificates from C(/etc/containers/certs.d/HOST/) instead.
    type: str
  digest_only:
    description:
      - In the registries.conf drop-in, use the mirror only for pulls by digest (C(mirror-by-digest-only = true)), as an
        C(ImageDigestMirrorSet) does.
    type: bool
    default: false
notes:
  - The registry connection options are accepted so that C(module_defaults) for C(group/oci.images.images) apply to
    every module of the group; this module makes no connection and does not use them.
  - Each written file starts with a comment saying oci.images.mirror_config wrote it; changes made to it by hand are replaced on the next run.
  - A registry removed from the mapping keeps its C(hosts.toml); remove it with M(ansible.builtin.file).
seealso:
  - module: oci.images.image_copy
  - name: containers-registries.conf(5)
    description: The registries.conf format, with C([[registry]]) and C([[registry.mirror]]).
    link: https://github.com/containers/image/blob/main/docs/containers-registries.conf.5.md
  - name: containerd registry host configuration
    description: The C(hosts.toml) format.
    link: https://github.com/containerd/containerd/blob/main/docs/hosts.md
  - name: ImageDigestMirrorSet
    description: The OpenShift API.
    link: https://docs.okd.io/latest/rest_api/config_apis/imagedigestmirrorset-config-openshift-io-v1.html
"""

EXAMPLES = r"""
- name: Point podman, CRI-O and skopeo at the mirror
  oci.images.mirror_config:
    mirrors:
      quay.io/team: mirror.example.com:5000/quay.io/team
      docker.io/library: mirror.example.com:5000/docker.io/library
    registries_conf_drop_in: /etc/containers/registries.conf.d/50-mirror.conf

- name: Configure containerd and OpenShift from the sync spec the mirror was made from
  oci.images.mirror_config:
    sync_file: /srv/mirror/sync.yml
    mirror: mirror.example.com:5000/mirror
    scoped: true
    containerd_certs_d: /etc/containerd/certs.d
    image_digest_mirror_set: /srv/mirror/idms.yaml
    image_tag_mirror_set: /srv/mirror/itms.yaml
    mirror_source_policy: NeverContactSource
"""

RETURN = r"""
mirrors:
  description: The mapping written, longest source prefix first.
  returned: always
  type: list
  elements: dict
  contains:
    source:
      description: The source prefix.
      type: str
      sample: quay.io/team
    mirror:
      description: The mirror prefix.
      type: str
      sample: mirror.example.com:5000/quay.io/team
rate_limit_waits:
  description:
    - What waiting for registries cost, in the form RV(oci.images.image_copy#module:rate_limit_waits) describes, as every module of the
      group returns it. Always empty here - this module makes no connection.
  returned: always
  type: dict
files:
  description: Each file this task manages and whether it was (or in check mode would be) written.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
      sample: /etc/containers/registries.conf.d/50-mirror.conf
    changed:
      description: Whether its content differed.
      type: bool
      sample: true
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._module_setup import start_module

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
OUTPUTS = ("registries_conf_drop_in", "containerd_certs_d", "image_digest_mirror_set", "image_tag_mirror_set")


def main() -> None:
    module = start_module(
        AnsibleModule,
        missing_required_lib,
        dict(
            mirrors=dict(type="dict"),
            sync=dict(type="dict"),
            sync_file=dict(type="path"),
            mirror=dict(type="str"),
            scoped=dict(type="bool", default=False),
            registries_conf_drop_in=dict(type="path"),
            containerd_certs_d=dict(type="path"),
            image_digest_mirror_set=dict(type="path"),
            image_tag_mirror_set=dict(type="path"),
            name=dict(type="str", default="oci-images-mirror"),
            mirror_source_policy=dict(type="str", choices=["AllowContactingSource", "NeverContactSource"]),
            mirror_insecure=dict(type="bool", default=False),
            mirror_ca_cert=dict(type="str"),
            digest_only=dict(type="bool", default=False),
        ),
        libraries=(),
        mutually_exclusive=[["mirrors", "sync"], ["mirrors", "sync_file"], ["sync", "sync_file"]],
        required_one_of=[["mirrors", "sync", "sync_file"], list(OUTPUTS)],
    )
    from ansible_collections.oci.images.plugins.module_utils._mirror import read_sync_file
    from ansible_collections.oci.images.plugins.module_utils._mirror_config import (
        apply_files,
        containerd_hosts,
        mirror_set_text,
        mirrors_from_mapping,
        mirrors_from_sync,
        plan_files,
        registries_conf_text,
    )

    params = module.params
    if (params["sync"] is not None or params["sync_file"]) and not params["mirror"]:
        module.fail_json(msg="mirror is required with sync or sync_file: the registry prefix the images were copied to")
    if not _NAME_RE.match(params["name"]) or len(params["name"]) > 253:
        module.fail_json(msg="name %r is not a Kubernetes object name: use lower-case letters, digits, '-' and '.'" % params["name"])
    try:
        if params["mirrors"] is not None:
            mirrors = mirrors_from_mapping(params["mirrors"])
        else:
            spec = params["sync"] if params["sync"] is not None else read_sync_file(params["sync_file"])
            mirrors = mirrors_from_sync(spec, params["mirror"], params["scoped"])
        wanted = {}
        if params["registries_conf_drop_in"]:
            wanted[params["registries_conf_drop_in"]] = registries_conf_text(mirrors, params["mirror_insecure"], params["digest_only"])
        if params["containerd_certs_d"]:
            hosts = containerd_hosts(mirrors, params["mirror_insecure"], params["mirror_ca_cert"])
            for host, text in hosts.items():
                wanted[os.path.join(params["containerd_certs_d"], host, "hosts.toml")] = text
        if params["image_digest_mirror_set"]:
            wanted[params["image_digest_mirror_set"]] = mirror_set_text("ImageDigestMirrorSet", params["name"], mirrors, params["mirror_source_policy"])
        if params["image_tag_mirror_set"]:
            wanted[params["image_tag_mirror_set"]] = mirror_set_text("ImageTagMirrorSet", params["name"], mirrors, params["mirror_source_policy"])
        changes = plan_files(wanted)
        if not module.check_mode:
            apply_files(changes)
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:
        module.fail_json(
            msg="cannot write %s: %s; check that the directory exists and is writable" % (exc.filename or "the configuration", exc.strerror or exc)
        )
    result = dict(
        changed=any(c.changed for c in changes),
        mirrors=[{"source": m.source, "mirror": m.mirror} for m in mirrors],
        files=[{"path": c.path, "changed": c.changed} for c in changes],
    )
    if module._diff:
        result["diff"] = [{"before_header": c.path, "after_header": c.path, "before": c.before or "", "after": c.after} for c in changes if c.changed]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
