#!/usr/bin/python
# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_copy
short_description: Copy container images between registries and local formats, only when they differ
version_added: 0.1.0
description:
  - Copies an image or a multi-arch index from a registry or a local format to another, like C(skopeo copy),
    with no skopeo binary and no container engine.
  - Idempotent. The source digest is compared with what the destination names now, and nothing is written
    when they match (not one upload or manifest write request), so a second run reports C(changed=false).
  - Check mode resolves both sides and reports exactly what a real run would do, writing nothing.
  - Blobs stream from source to destination and are verified with sha256 as they stream; a mismatch stops the copy
    before any manifest is written. Local destinations are written under a temporary name and renamed into place.
  - Blobs the destination already has are skipped; within one registry, blobs are mounted from the source repository.
author:
  - oci.images maintainers (@oci-images)
extends_documentation_fragment:
  - oci.images._copy_connection
  - oci.images._retry
  - oci.images._attributes
  - oci.images._attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows, per destination, the digest before and after.
  idempotent:
    support: full
options:
  src:
    description:
      - The image to copy, as C(transport:details) like skopeo takes it; a reference without a transport is a registry reference.
      - Supported sources are C(docker://), C(dir:), C(oci:), C(oci-archive:), C(docker-archive:),
        C(docker-daemon:) (a Docker engine, see O(src_daemon_host)) and C(containers-storage:) (podman's store, through the C(podman) command).
      - Required unless O(images) is given.
    type: str
  dest:
    description:
      - Where to copy it, in the same syntax. Supported destinations are C(docker://), C(dir:), C(oci:), C(oci-archive:), C(docker-archive:),
        C(docker-daemon:name:tag) and C(containers-storage:name:tag).
      - Required unless O(images) is given.
    type: str
  images:
    description:
      - Several copies in one task, each with its own O(images[].src) and O(images[].dest); every other option applies to all.
      - Mutually exclusive with O(src) and O(dest).
    type: list
    elements: dict
    suboptions:
      src:
        description: Source reference.
        type: str
        required: true
      dest:
        description: Destination reference.
        type: str
        required: true
  multi_arch:
    description:
      - What to copy when the source is a multi-arch index (the meanings of C(skopeo copy --multi-arch)).
      - V(all) copies the index and every image in it; the destination digest equals the source digest.
      - V(system) copies only the image for the platform of the machine the module runs on (or the one in O(platforms)), as a single image.
      - V(index_only) copies only the index, for destinations that already hold its images.
      - Default is V(all) where the destination can hold an index, and V(system) for C(docker-archive:), C(docker-daemon:)
        and C(containers-storage:), which hold one image.
    type: str
    choices: [all, system, index_only]
  platforms:
    description:
      - Copy only these platforms of a multi-arch index, as C(os/arch[/variant]) (for example V(linux/arm64/v8)),
        as a new index holding exactly those entries. Its digest differs from the source's.
      - For a destination that holds one image, give one platform.
    type: list
    elements: str
  format:
    description:
      - Convert manifests to this format. V(oci) writes OCI manifests and indexes, V(v2s2) Docker schema 2 manifests and manifest lists.
      - Conversion changes digests, so it cannot be combined with O(preserve_digests).
      - Without it, manifests are copied byte for byte.
    type: str
    choices: [oci, v2s2]
  preserve_digests:
    description:
      - Fail rather than write anything whose digest would differ from the source's.
    type: bool
    default: false
  force:
    description:
      - Copy even when the destination already names the same digest.
    type: bool
    default: false
  parallel:
    description:
      - How many blobs of one image are transferred at the same time.
    type: int
    default: 6
  parallel_images:
    description:
      - With O(images), how many images are copied at the same time.
    type: int
    default: 4
  keep_going:
    description:
      - With O(images), when a copy fails, go on with the others and fail at the end listing every failure.
      - When V(false), the first failure stops the task (copies already running finish, no new one starts).
    type: bool
    default: false
notes:
  - Credentials are never returned or logged; secret options are marked C(no_log).
  - C(docker-daemon:) talks to the Docker engine API on its socket; C(containers-storage:) runs C(podman) (which must be installed),
    honouring a C([driver@root+runroot:options]) store specifier. Both are up to date when the name already has the same image ID,
    and both store layers uncompressed, so a copy out of them has the layer digests C(skopeo) reports for them (the diff IDs).
seealso:
  - module: oci.images.image_info
  - name: skopeo copy
    description: The command whose work this module does.
    link: https://github.com/containers/skopeo/blob/main/docs/skopeo-copy.1.md
requirements:
  - requests
  - jsonschema
"""

EXAMPLES = r"""
- name: Mirror one tag from a public registry into ours (nothing is written when it is already there)
  oci.images.image_copy:
    src: docker://quay.io/team/app:1.2
    dest: docker://registry.example.com/mirror/app:1.2
    dest_username: robot
    dest_password: "{{ vault_registry_password }}"

- name: Save an image to an OCI layout on disk
  oci.images.image_copy:
    src: registry.example.com/team/app:1.2
    dest: oci:/srv/images/app:1.2

- name: Publish an image saved as a docker archive
  oci.images.image_copy:
    src: docker-archive:/tmp/app.tar
    dest: docker://registry.example.com/team/app:1.2

- name: Copy only two platforms of a multi-arch image, as Docker schema 2
  oci.images.image_copy:
    src: docker://registry.example.com/team/app:1.2
    dest: docker://registry.example.com/edge/app:1.2
    platforms:
      - linux/amd64
      - linux/arm64/v8
    format: v2s2

- name: Copy several images, going on past failures
  oci.images.image_copy:
    images:
      - src: docker://registry.example.com/team/app:1.2
        dest: docker://backup.example.com/team/app:1.2
      - src: docker://registry.example.com/team/worker:1.2
        dest: docker://backup.example.com/team/worker:1.2
    parallel_images: 4
    keep_going: true
  register: copied

- name: Report what changed
  ansible.builtin.debug:
    msg: "{{ copied.results | selectattr('changed') | map(attribute='dest') | list }}"
"""

RETURN = r"""
digest:
  description: Digest the destination names after the copy (for a single O(src)/O(dest) copy).
  returned: when O(src) is given and the copy succeeded
  type: str
  sample: sha256:2f9d3ef1f0c4a3a42c4a1d33d3b9f1d4e5c2f7a0e1b2c3d4e5f60718293a4b5c
copied:
  description: How many images were copied (or would be, in check mode).
  returned: always
  type: int
  sample: 1
unchanged:
  description: How many destinations already held the source's digest.
  returned: always
  type: int
  sample: 0
failed_count:
  description: How many copies failed.
  returned: always
  type: int
  sample: 0
results:
  description: One entry per image, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    src:
      description: Normalized source reference.
      type: str
      sample: docker://registry.example.com/team/app:1.2
    dest:
      description: Normalized destination reference.
      type: str
      sample: oci:/srv/images/app:1.2
    src_digest:
      description: Digest of the source's top-level manifest (the index for a multi-arch image).
      type: str
    dest_digest_before:
      description: Digest the destination named before (V(null) when it did not exist). For C(docker-archive:) destinations, the image ID.
      type: str
    dest_digest_after:
      description: Digest the destination names after the copy (in check mode, would name).
      type: str
    changed:
      description: Whether this image was (or, in check mode, would be) written.
      type: bool
    blobs:
      description: What happened to the blobs (in check mode, would happen).
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
    bytes_copied:
      description: Bytes read from the source for transferred blobs.
      type: int
    seconds:
      description: Wall time of this copy.
      type: float
    failed:
      description: Present and V(true) when this copy failed.
      type: bool
    msg:
      description: Why this copy failed.
      type: str
  sample:
    - src: docker://registry.example.com/team/app:1.2
      dest: oci:/srv/images/app:1.2
      src_digest: sha256:2f9d3ef1f0c4a3a42c4a1d33d3b9f1d4e5c2f7a0e1b2c3d4e5f60718293a4b5c
      dest_digest_before: null
      dest_digest_after: sha256:2f9d3ef1f0c4a3a42c4a1d33d3b9f1d4e5c2f7a0e1b2c3d4e5f60718293a4b5c
      changed: true
      blobs: {copied: 3, skipped: 0, mounted: 0}
      bytes_copied: 31457792
      seconds: 1.52
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._connection_args import (
    connection_argument_spec,
    connection_constraints,
    connection_options,
    daemon_argument_spec,
)
from ansible_collections.oci.images.plugins.module_utils._deps import missing_libraries
from ansible_collections.oci.images.plugins.module_utils._errors import OCIError

SIDES = ("src_", "dest_")


def main() -> None:
    argument_spec = dict(
        src=dict(type="str"),
        dest=dict(type="str"),
        images=dict(type="list", elements="dict", options=dict(src=dict(type="str", required=True), dest=dict(type="str", required=True))),
        multi_arch=dict(type="str", choices=["all", "system", "index_only"]),
        platforms=dict(type="list", elements="str"),
        format=dict(type="str", choices=["oci", "v2s2"]),
        preserve_digests=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        parallel=dict(type="int", default=6),
        parallel_images=dict(type="int", default=4),
        keep_going=dict(type="bool", default=False),
    )
    argument_spec.update(connection_argument_spec(SIDES))
    argument_spec.update(daemon_argument_spec(SIDES))
    constraints = connection_constraints(SIDES)
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=constraints["mutually_exclusive"] + [["images", "src"], ["images", "dest"]],
        required_together=constraints["required_together"] + [["src", "dest"]],
        required_one_of=[["src", "images"]],
    )
    for library, error in missing_libraries():
        module.fail_json(msg=missing_required_lib(library), exception=error)

    from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions, copy_image
    from ansible_collections.oci.images.plugins.module_utils._media import parse_platform
    from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference

    params = module.params
    if params["parallel"] < 1 or params["parallel_images"] < 1:
        module.fail_json(msg="parallel and parallel_images must be at least 1")
    pairs = params["images"] or [{"src": params["src"], "dest": params["dest"]}]
    try:
        references = [(parse_reference(pair["src"]), parse_reference(pair["dest"])) for pair in pairs]
        options = CopyOptions(
            multi_arch=params["multi_arch"],
            platforms=[parse_platform(p) for p in params["platforms"]] if params["platforms"] else None,
            format=params["format"],
            preserve_digests=params["preserve_digests"],
            force=params["force"],
            parallel=params["parallel"],
            retries=params["retries"],
        )
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    src_options = connection_options(params, "src_")
    dest_options = connection_options(params, "dest_")

    stop = threading.Event()

    def run_one(pair):
        if stop.is_set():
            return None
        src, dest = pair
        try:
            return copy_image(src, dest, src_options, dest_options, options, check_mode=module.check_mode)
        except OCIError as exc:
            if not params["keep_going"]:
                stop.set()
            return {"src": str(src), "dest": str(dest), "changed": False, "failed": True, "msg": exc.msg}

    with ThreadPoolExecutor(max_workers=min(params["parallel_images"], len(references))) as pool:
        results = list(pool.map(run_one, references))
    done = [r for r in results if r is not None]
    failures = [r for r in done if r.get("failed")]
    summary = dict(
        changed=any(r.get("changed") for r in done),
        results=done,
        copied=sum(1 for r in done if r.get("changed")),
        unchanged=sum(1 for r in done if not r.get("changed") and not r.get("failed")),
        failed_count=len(failures),
        diff=dict(
            before={r["dest"]: r.get("dest_digest_before") for r in done if not r.get("failed")},
            after={r["dest"]: r.get("dest_digest_after") for r in done if not r.get("failed")},
        ),
    )
    if params["src"] and done and not failures:
        summary["digest"] = done[0]["dest_digest_after"]
    if failures:
        if len(references) == 1:
            module.fail_json(msg=failures[0]["msg"], **summary)
        lines = ["%s -> %s: %s" % (r["src"], r["dest"], r["msg"]) for r in failures]
        skipped = len(references) - len(done)
        tail = " (%d not attempted after the first failure; set keep_going to copy the rest)" % skipped if skipped else ""
        module.fail_json(msg="%d of %d copies failed%s: %s" % (len(failures), len(references), tail, "; ".join(lines)), **summary)
    module.exit_json(**summary)


if __name__ == "__main__":
    main()
