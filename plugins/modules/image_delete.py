#!/usr/bin/python
# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_delete
short_description: Delete a tag, a manifest or a policy-chosen set of tags, without taking other tags along
version_added: 0.1.0
description:
  - Deletes one tag, one manifest by digest, or prunes a registry repository (or OCI layout) by a policy,
    and reports the bytes that garbage collection will reclaim.
  - Deleting a tag deletes only that tag. Other tags on the same digest survive, unlike C(skopeo delete),
    which deletes the manifest and every tag on it. See O(method) for how.
  - Deleting by digest (V(docker://host/repo@sha256:...)) deletes the manifest and reports every tag that pointed at it.
  - Something already absent is V(changed=false). A tag that vanishes or moves while the module runs is skipped, not an error.
  - Check mode computes the same decision as a real run (one function decides both) and writes nothing.
  - Also works on C(oci:PATH:REF) (the ref leaves index.json; blobs no other ref uses are removed) and
    C(dir:PATH) (the directory is removed, only if it holds an image written by the C(dir:) transport).
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
      - The diff maps each tag to its digest, before and after.
  idempotent:
    support: full
options:
  image:
    description:
      - What to delete, as C(transport:details) like skopeo takes it.
      - V(docker://host/repo:tag) deletes that tag; V(docker://host/repo@sha256:...) deletes that manifest and its tags.
      - V(docker://host/repo) (no tag, no digest) with O(prune) prunes the repository; without O(prune) it is refused,
        so a missing tag never means C(latest) here.
      - V(oci:PATH:REF) deletes one ref of an OCI layout; V(oci:PATH) with O(prune) prunes its refs. V(dir:PATH) removes a C(dir:) image.
    type: str
    required: true
  prune:
    description:
      - Delete the tags of the repository in O(image) that this policy does not keep.
      - A tag is kept when any rule keeps it. Every tag on a kept digest, and every tag on an image inside a kept index,
        is kept too, so no kept tag ever loses its manifest.
      - At least one option must be given; to delete every tag, say O(prune.include=[".*"]).
      - Without O(prune.include) every tag is a candidate, so a policy with no rule that can keep a tag (O(prune.keep_latest=0),
        O(prune.keep_newer_than=0s), empty O(prune.keep_tags) or O(prune.exclude)) would delete every tag; it is refused
        unless O(prune.include) says which tags may go.
      - Likewise, without O(prune.include), a run in which the rules keep none of the repository's tags (all older than
        O(prune.keep_newer_than), no tag matching O(prune.keep_tags)) fails and deletes nothing.
    type: dict
    suboptions:
      include:
        description:
          - Only tags matching one of these regular expressions are candidates for deletion (default all).
          - Expressions match whole tags (V(1\\.2) does not match V(1.20)).
        type: list
        elements: str
      exclude:
        description: Tags matching one of these regular expressions are never candidates.
        type: list
        elements: str
      keep_latest:
        description:
          - Keep the N newest images among the candidates, ranked as O(prune.order) says.
            Images count once however many tags they have.
          - A candidate that cannot be ranked (no creation time; with V(semver), a tag that is not a version) is kept.
          - V(0) keeps none, so it needs O(prune.include) or another rule that keeps tags.
        type: int
      order:
        description:
          - How O(prune.keep_latest) ranks images.
          - V(created) by the C(created) time of their configuration (an index counts as its newest image).
          - V(semver) by the version in the tag (V(1.2.3), V(v1.2), V(2.0.0-rc.1)); an image ranks by its highest version tag.
        type: str
        choices: [created, semver]
        default: created
      keep_newer_than:
        description:
          - Keep candidates created less than this long ago, as a number and a unit (V(s), V(m), V(h), V(d), V(w)),
            like V(30d), V(12h), V(15m), V(2w) or V(1d12h).
          - O(prune.older_than) is the same rule worded the other way (delete only what is older than this).
          - Images whose creation time is unknown are kept.
          - V(0s) keeps none, so it needs O(prune.include) or another rule that keeps tags.
        type: str
        aliases: [older_than]
      keep_tags:
        description: Tags matching one of these regular expressions are always kept (for example V(latest), V(release-.*)).
        type: list
        elements: str
  method:
    description:
      - How a registry tag is removed.
      - V(auto) deletes the manifest by digest when every tag on it goes and nothing kept uses it (re-checked right before acting),
        so plain registry garbage collection reclaims its blobs; a tag whose digest keeps other tags is detached with a placeholder.
      - V(placeholder) always detaches tags with a placeholder (the tag is pointed at a unique tiny manifest which is then deleted).
        The images stay in the registry untagged; C(registry garbage-collect --delete-untagged) reclaims them.
        Choose it when other clients may tag the same images while the module runs.
    type: str
    choices: [auto, placeholder]
    default: auto
notes:
  - Credentials are never returned or logged; secret options are marked C(no_log).
  - The registry must allow deletes (for the distribution registry, C(storage.delete.enabled=true)); when it does not,
    the module fails saying so and changes nothing.
  - RV(freed_bytes) counts blobs of this repository only; blobs the registry also holds for other repositories stay on disk.
  - The collection's C(docs/pruning.md) explains how pruning decides and how freed bytes are counted.
seealso:
  - module: oci.images.image_info
  - name: skopeo delete
    description: The command this module improves on; it deletes the manifest and with it every tag on it.
    link: https://github.com/containers/skopeo/blob/main/docs/skopeo-delete.1.md
requirements:
  - requests
"""

EXAMPLES = r"""
- name: Delete one tag; other tags on the same image stay
  oci.images.image_delete:
    image: docker://registry.example.com/team/app:1.2-rc1

- name: Delete a manifest and every tag on it
  oci.images.image_delete:
    image: docker://registry.example.com/team/app@sha256:2f9d3ef1f0c4a3a42c4a1d33d3b9f1d4e5c2f7a0e1b2c3d4e5f60718293a4b5c
  register: gone

- name: Keep the 10 newest builds, anything from the last two weeks, and every release
  oci.images.image_delete:
    image: docker://registry.example.com/team/app
    prune:
      include: ['build-.*', 'pr-.*']
      keep_latest: 10
      keep_newer_than: 2w
      keep_tags: ['latest', 'release-.*']
    username: robot
    password: "{{ vault_registry_password }}"
  register: pruned

- name: Report what went and what it frees
  ansible.builtin.debug:
    msg: "{{ pruned.deleted | map(attribute='tag') | list }} ({{ pruned.freed_bytes | human_readable }})"

- name: Remove one ref from an OCI layout (blobs no other ref uses go with it)
  oci.images.image_delete:
    image: oci:/srv/images:app-1.2
"""

RETURN = r"""
rate_limit_waits:
  description:
    - Per registry host that made the task wait or reported a quota, what it cost, in the form
      RV(oci.images.image_copy#module:rate_limit_waits) describes. Empty when none did.
  returned: always
  type: dict
deleted:
  description: What was deleted (in check mode, what would be), one entry per tag.
  returned: always
  type: list
  elements: dict
  contains:
    tag:
      description: The tag (or OCI ref); V(null) for an untagged manifest or a C(dir:) image.
      type: str
    digest:
      description: Digest the tag pointed at.
      type: str
    method:
      description: How it was removed, see RV(method).
      type: str
  sample: [{"tag": "build-17", "digest": "sha256:9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081", "method": "manifest"}]
kept:
  description: Tags of the repository that stay.
  returned: always
  type: list
  elements: str
  sample: ["latest", "release-1.2", "build-18"]
kept_reasons:
  description: With O(prune), why each kept tag is kept.
  returned: always
  type: dict
  sample: {"latest": "matches keep_tags", "build-18": "among the 10 most recently created"}
skipped_tags:
  description:
    - Tags chosen for deletion that vanished or moved to another digest before the module acted on them; they were left alone.
    - Not called C(skipped), since Ansible would report the whole task as skipped.
  returned: always
  type: list
  elements: dict
  sample: []
deleted_manifests:
  description: Digests of manifests deleted by digest (with O(method=auto), also the images of a deleted index that nothing else uses).
  returned: always
  type: list
  elements: str
freed_bytes:
  description:
    - Bytes of blobs (configs and layers; for an index, those of its images) used only by what was deleted and by nothing that stays
      in the repository, which registry garbage collection reclaims. Manifests themselves are not counted.
    - With O(method=placeholder) the images of the deleted tags stay in the repository, untagged. Their blobs are counted here all the
      same, but a plain C(registry garbage-collect) frees none of them; C(registry garbage-collect --delete-untagged) does.
      (With O(method=auto) a tag is only detached with a placeholder when what it points at stays, and that is not counted.)
    - For C(oci:) and C(dir:), the bytes of the files removed.
  returned: always
  type: int
  sample: 73400320
errors:
  description: Deletions that failed while others went on (the module fails when this is not empty).
  returned: always
  type: list
  elements: str
method:
  description:
    - V(manifest) (deleted by digest), V(placeholder) (tag detached with a placeholder manifest), V(mixed) (both),
      V(index) (OCI layout ref removed), V(directory) (C(dir:) removed), or V(none) when nothing was deleted.
  returned: always
  type: str
  sample: manifest
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError, describe_os_error
from ansible_collections.oci.images.plugins.module_utils._module_setup import side_options, start_module


def main() -> None:
    module = start_module(
        AnsibleModule,
        missing_required_lib,
        dict(
            image=dict(type="str", required=True),
            prune=dict(
                type="dict",
                options=dict(
                    include=dict(type="list", elements="str"),
                    exclude=dict(type="list", elements="str"),
                    keep_latest=dict(type="int"),
                    order=dict(type="str", choices=["created", "semver"], default="created"),
                    keep_newer_than=dict(type="str", aliases=["older_than"]),
                    keep_tags=dict(type="list", elements="str"),
                ),
            ),
            method=dict(type="str", choices=["auto", "placeholder"], default="auto"),
        ),
    )

    from ansible_collections.oci.images.plugins.module_utils._delete import DeleteRequest, delete_image
    from ansible_collections.oci.images.plugins.module_utils._prune import PrunePolicy, parse_duration
    from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference

    params = module.params
    try:
        reference = parse_reference(params["image"])
        prune = None
        if params["prune"] is not None:
            rules = params["prune"]
            prune = PrunePolicy(
                include=rules["include"],
                exclude=rules["exclude"],
                keep_latest=rules["keep_latest"],
                order=rules["order"],
                keep_newer_than=parse_duration(rules["keep_newer_than"], "prune.keep_newer_than") if rules["keep_newer_than"] is not None else None,
                keep_tags=rules["keep_tags"],
            )
        result = delete_image(reference, side_options(module), DeleteRequest(prune=prune, method=params["method"]), check_mode=module.check_mode)
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:  # a file the transport did not expect to fail: still a message, not a traceback
        module.fail_json(msg="%s: %s" % (params["image"], describe_os_error(exc)))
    if result["errors"]:
        module.fail_json(msg="%d deletion(s) failed: %s" % (len(result["errors"]), "; ".join(result["errors"])), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
