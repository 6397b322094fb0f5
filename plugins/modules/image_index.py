#!/usr/bin/python
# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_index
short_description: Assemble a multi-arch index (manifest list) from separate images
version_added: 0.1.0
description:
  - Makes O(dest) name a multi-arch index of the images in O(images) - the last step of pipelines that build each
    architecture on its own, what C(podman manifest), C(docker buildx imagetools create), C(crane index append) and
    C(regctl index create) do, with no engine and no other tool.
  - Each image's platform is read from its config (os, architecture, variant, os.version, os.features), or taken from
    O(images[].platform); an image given as an index is picked out of it by that platform.
  - With O(merge=true), the index O(dest) names now keeps its other platforms, and an image replaces the entry of its platform;
    O(remove) takes platforms out. Without O(merge), the index holds exactly O(images).
  - Each image (its manifest, config and layers) is copied into O(dest) first, then the index; blobs already there are skipped,
    and within one registry they are mounted. Local destinations are written under a temporary name and renamed into place.
  - Idempotent. The index is written the same way every time (entries in a stable order, Go's JSON), so an index that already
    holds the same images for the same platforms has the same digest, and nothing is written.
author:
  - oci.images maintainers (@oci-images)
extends_documentation_fragment:
  - oci.images._copy_connection
  - oci.images._retry
  - oci.images._upstreams
  - oci.images._attributes
  - oci.images._attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads every image and the current index and reports the digest the index would get, writing nothing.
  diff_mode:
    support: full
    details:
      - The diff shows the platforms of the index before and after, each with its image digest.
  idempotent:
    support: full
options:
  dest:
    description:
      - Where the index is written, as C(transport:details) like skopeo takes it - C(docker://), C(oci:), C(oci-archive:) or C(dir:),
        the destinations that can hold an index.
    type: str
    required: true
  images:
    description:
      - The images to put in the index, one per platform.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description:
          - The image, as C(transport:details) (C(docker://), C(oci:), C(oci-archive:), C(dir:)). Engines and C(docker-archive:) serve
            layers uncompressed; copy such an image to a registry or an OCI layout first.
        type: str
        required: true
      platform:
        description:
          - File the image under this platform, C(os/arch[/variant]) (for example V(linux/arm64/v8)), instead of the one its config names.
          - Required when O(images[].src) is an index (the platform picks the image out of it) or an artifact without an image config.
        type: str
  merge:
    description:
      - Keep the other platforms of the index O(dest) names now; an image of O(images) replaces the entry of its platform.
      - When V(false), the index holds exactly O(images).
    type: bool
    default: false
  remove:
    description:
      - Platforms (C(os/arch[/variant])) to take out of the index O(dest) names now. The other entries are kept, as with O(merge=true).
      - A platform the index does not hold is no change.
    type: list
    elements: str
    default: []
  format:
    description:
      - V(oci) writes an OCI image index, V(v2s2) a Docker manifest list (which holds Docker schema 2 images only).
      - Default is a Docker manifest list when every image is a Docker schema 2 image, else an OCI index.
      - C(oci:) and C(oci-archive:) hold OCI manifests only; images and index are converted there, as with M(oci.images.image_copy).
    type: str
    choices: [oci, v2s2]
  annotations:
    description:
      - Annotations of the OCI index itself (not with O(format=v2s2)).
    type: dict
  parallel:
    description:
      - How many blobs are transferred at the same time.
    type: int
    default: 6
notes:
  - Credentials are never returned or logged; secret options are marked C(no_log).
  - The O(src_username) family of options applies to every image of O(images); O(dest_username) and the others to O(dest).
seealso:
  - module: oci.images.image_copy
  - module: oci.images.image_info
  - name: podman manifest
    description: The podman commands that assemble a manifest list.
    link: https://docs.podman.io/en/latest/markdown/podman-manifest.1.html
requirements:
  - requests
  - jsonschema
"""

EXAMPLES = r"""
- name: One multi-arch tag from the images each build job pushed
  oci.images.image_index:
    dest: docker://registry.example.com/team/app:1.2
    images:
      - src: docker://registry.example.com/team/app:1.2-amd64
      - src: docker://registry.example.com/team/app:1.2-arm64

- name: Add (or replace) the s390x image of an existing multi-arch tag
  oci.images.image_index:
    dest: docker://registry.example.com/team/app:1.2
    merge: true
    images:
      - src: docker://registry.example.com/team/app:1.2-s390x

- name: Take a platform out of the index
  oci.images.image_index:
    dest: docker://registry.example.com/team/app:1.2
    remove:
      - linux/arm/v7

- name: An index in an OCI layout, filing an image under a platform its config does not name
  oci.images.image_index:
    dest: oci:/srv/images/app:1.2
    images:
      - src: oci:/build/amd64:1.2
      - src: oci:/build/generic:1.2
        platform: linux/riscv64
  register: assembled

- name: Report the digest of the index
  ansible.builtin.debug:
    msg: "{{ assembled.digest }} holds {{ assembled.manifests | map(attribute='platform') | list }}"
"""

RETURN = r"""
rate_limit_waits:
  description:
    - Per registry host that made the task wait or reported a quota, what it cost, in the form
      RV(oci.images.image_copy#module:rate_limit_waits) describes. Empty when none did.
  returned: always
  type: dict
digest:
  description: The digest O(dest) names after the task (in check mode, would name).
  returned: success
  type: str
  sample: sha256:2f9d3ef1f0c4a3a42c4a1d33d3b9f1d4e5c2f7a0e1b2c3d4e5f60718293a4b5c
media_type:
  description: The media type of the index.
  returned: success
  type: str
  sample: application/vnd.oci.image.index.v1+json
manifests:
  description: The entries of the index, in order.
  returned: success
  type: list
  elements: dict
  contains:
    platform:
      description: The entry's platform, C(os/arch[/variant]).
      type: str
      sample: linux/arm64/v8
    digest:
      description: The digest of the image manifest.
      type: str
    media_type:
      description: The media type of the image manifest.
      type: str
    src:
      description: The image of O(images) the entry comes from; V(null) for an entry kept from the index O(dest) named before.
      type: str
blobs:
  description: What happened to the blobs of the images (in check mode, would happen).
  returned: success
  type: dict
  contains:
    copied:
      description: Blobs transferred.
      type: int
    skipped:
      description: Blobs the destination already had.
      type: int
    mounted:
      description: Blobs linked from another repository of the same registry, without transfer.
      type: int
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError, describe_os_error
from ansible_collections.oci.images.plugins.module_utils._module_setup import side_options, start_module


def main() -> None:
    module = start_module(
        AnsibleModule,
        missing_required_lib,
        dict(
            dest=dict(type="str", required=True),
            images=dict(type="list", elements="dict", default=[], options=dict(src=dict(type="str", required=True), platform=dict(type="str"))),
            merge=dict(type="bool", default=False),
            remove=dict(type="list", elements="str", default=[]),
            format=dict(type="str", choices=["oci", "v2s2"]),
            annotations=dict(type="dict"),
            parallel=dict(type="int", default=6),
        ),
        sides=("src_", "dest_"),
        daemon=True,
    )

    # Imported after the dependency check so a missing library gives a clear message.
    from ansible_collections.oci.images.plugins.module_utils._index import IndexImage, IndexRequest, assemble_index
    from ansible_collections.oci.images.plugins.module_utils._media import parse_platform
    from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
    from ansible_collections.oci.images.plugins.module_utils._registry._clients import close_clients

    params = module.params
    if params["parallel"] < 1:
        module.fail_json(msg="parallel must be at least 1")
    if not params["images"] and not params["remove"]:
        module.fail_json(msg="give images to put in the index, or remove to take platforms out of it")
    try:
        request = IndexRequest(
            dest=parse_reference(params["dest"]),
            images=[IndexImage(parse_reference(i["src"]), parse_platform(i["platform"]) if i.get("platform") else None) for i in params["images"]],
            merge=params["merge"],
            remove=[parse_platform(p) for p in params["remove"]],
            format=params["format"],
            annotations={str(k): str(v) for k, v in params["annotations"].items()} if params["annotations"] else None,
        )
        result = assemble_index(
            request,
            side_options(module, "src_"),
            side_options(module, "dest_"),
            check_mode=module.check_mode,
            parallel=params["parallel"],
            retries=params["retries"],
        )
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (params["dest"], describe_os_error(exc)))
    finally:
        close_clients()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
