#!/usr/bin/python
# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: Inspect a container image in a registry or a local format without pulling it
version_added: 0.1.0
description:
  - Reads the manifest and configuration of an image and returns what C(skopeo inspect) reports
    (digest, creation date, platform, labels, environment, every layer with its size), plus every
    platform of a multi-arch image and, on request, the tags of the repository.
  - Works on registries (C(docker://), the default when a reference has no transport), on the local
    formats C(dir:), C(oci:), C(oci-archive:) and C(docker-archive:), and on the images of a Docker engine
    (C(docker-daemon:), see O(daemon_host)) and of podman's store (C(containers-storage:), through the C(podman) command),
    with the reference syntax skopeo uses.
  - Nothing is downloaded but manifests and the image configuration; no container engine is needed, except for
    C(docker-daemon:) and C(containers-storage:), which export the image to a temporary file to read it.
  - A repository or tag that does not exist is not a failure, see RV(exists).
author:
  - oci.images maintainers (@oci-images)
extends_documentation_fragment:
  - oci.images._auth
  - oci.images._tls
  - oci.images._daemon
  - oci.images._retry
  - oci.images._attributes
  - oci.images._attributes.INFO_MODULE
  - oci.images._attributes.ACTIONGROUP
options:
  image:
    description:
      - The image to inspect, as C(transport:details) like skopeo takes it, for example
        V(docker://registry.example.com/team/app:1.2), V(oci:/srv/layout:app), V(dir:/tmp/app),
        V(oci-archive:/tmp/app.tar), V(docker-archive:/tmp/app.tar).
      - A reference without a transport is a registry reference, so V(registry.example.com/team/app:1.2)
        means V(docker://registry.example.com/team/app:1.2) and V(fedora) means V(docker://docker.io/library/fedora:latest).
      - Required unless O(footprint_of) is given.
    type: str
  platform:
    description:
      - For a multi-arch image, the platform whose manifest and configuration are described, as C(os/arch[/variant]),
        for example V(linux/arm64/v8).
      - Defaults to the platform of the machine the module runs on.
      - Every platform of the index is listed in RV(image.platforms) whichever is chosen.
    type: str
  list_tags:
    description:
      - Also return the tags of the repository (all of them, following pagination) in RV(image.tags).
      - For an C(oci:) layout these are the image references it holds.
      - When O(image) names a repository without tag or digest (V(docker://host/repo)) or a layout without ref
        (V(oci:/path)), only the tags are returned, like C(skopeo list-tags); no image is described (not even C(latest),
        which need not exist), RV(image) holds only RV(image.name), RV(image.reference) and RV(image.tags), and RV(exists)
        says whether the repository or layout exists. O(platform) and O(raw) do not apply then.
    type: bool
    default: false
  raw:
    description:
      - Also return the parsed manifest and configuration in RV(image.manifest) and RV(image.config)
        (and the index in RV(image.index) for a multi-arch image).
    type: bool
    default: false
  footprint_of:
    description:
      - Instead of O(image), a list of references (any repositories, registries or local formats) whose combined
        footprint is returned in RV(footprint), keyed by reference, each blob counted once wherever it is stored.
      - A reference to a repository without tag or digest (V(docker://host/repo)) or to an OCI layout without ref
        (V(oci:/path)) stands for every tag of it; each tag appears in RV(footprint.tags) under its own reference
        (V(docker://host/repo:1.2), V(oci:/path:1.2)). A layout whose only image has no ref counts as that image, under V(oci:/path).
      - RV(image) is left empty; references that name nothing (a repository or layout without tags included) are listed in
        RV(missing) and RV(exists) is V(false).
    type: list
    elements: str
  footprint:
    description:
      - Also return the storage footprint in RV(footprint), counting every blob once however many tags share it.
      - When O(image) names a repository without tag or digest (V(docker://host/repo), V(oci:/path)), every tag
        is counted and RV(image) is left empty (with O(list_tags), it holds the tags); with a tag, only that image is counted.
      - Works for registry repositories and OCI layouts. Reads every tag's manifest (and each index's images), no layer.
    type: bool
    default: false
  signature_policy:
    description:
      - A signature policy (containers-policy.json(5), a path or the policy as a mapping) to judge the image by;
        RV(policy) says whether M(oci.images.image_copy) would accept it, and why.
      - As skopeo does when copying, a multi-arch image is judged by each of its images.
    type: raw
  registries_d:
    description:
      - The containers-registries.d(5) directory that says where registries keep signatures, like C(skopeo --registries.d).
      - Default C($HOME/.config/containers/registries.d) when it exists, else C(/etc/containers/registries.d).
    type: path
notes:
  - Credentials are never returned or logged. Secrets options are marked C(no_log).
seealso:
  - name: skopeo inspect
    description: The command whose answers this module gives.
    link: https://github.com/containers/skopeo/blob/main/docs/skopeo-inspect.1.md
requirements:
  - requests
  - jsonschema
"""

EXAMPLES = r"""
- name: How much space do these images take together (shared layers counted once)?
  oci.images.image_info:
    footprint_of:
      - docker://registry.example.com/team/app:1.2
      - docker://registry.example.com/team/worker:1.2
      - oci:/srv/images/app:1.1
  register: together

- name: Inspect an image in a registry
  oci.images.image_info:
    image: registry.example.com/team/app:1.2
  register: app

- name: Show its digest and creation date
  ansible.builtin.debug:
    msg: "{{ app.image.digest }} created {{ app.image.created }}"

- name: Describe the arm64 image of a multi-arch index, with the repository's tags
  oci.images.image_info:
    image: docker://registry.example.com/team/app:1.2
    platform: linux/arm64/v8
    list_tags: true
  register: app_arm

- name: Fail when an image is missing
  oci.images.image_info:
    image: docker://registry.example.com/team/app:2.0
  register: wanted
  failed_when: not wanted.exists

- name: Inspect an OCI layout on disk, with the raw manifest and config
  oci.images.image_info:
    image: oci:/srv/images/app:1.2
    raw: true

- name: How much space does a repository take, and what would deleting each tag free?
  oci.images.image_info:
    image: docker://registry.example.com/team/app
    footprint: true
  register: usage

- name: Show it
  ansible.builtin.debug:
    msg: "{{ usage.footprint.total_bytes | human_readable }}, {{ usage.footprint.shared_bytes | human_readable }} shared"

- name: Use credentials for a private registry
  oci.images.image_info:
    image: docker://registry.example.com/private/app:1.2
    username: robot
    password: "{{ vault_registry_password }}"
    ca_cert: /etc/pki/registry-ca.pem
"""

RETURN = r"""
signatures:
  description:
    - The signatures of the image, and of each image of a multi-arch index, where skopeo finds them -
      C(signature-N) files of a C(dir:) image, the lookaside store and cosign-style C(.sig) attachments of a registry
      (as O(registries_d) configures them).
    - What each one claims is read without verifying it; with O(signature_policy), RV(signatures[].accepted) says whether the policy accepted it.
  returned: when the image exists
  type: list
  elements: dict
  contains:
    digest:
      description: The manifest the signature is stored for.
      type: str
    kind:
      description: V(simple-signing) (GPG) or V(sigstore).
      type: str
    where:
      description: Where it was found (a file, a URL, an attachment tag and layer).
      type: str
    identity:
      description: The image identity (Docker reference) the signature claims.
      type: str
    signed_digest:
      description: The manifest digest the signature claims.
      type: str
    signer:
      description: For GPG signatures, the fingerprint or key ID of the signing key (as the signature says).
      type: str
    accepted:
      description: With O(signature_policy), whether a requirement of the policy accepted this signature.
      type: bool
    error:
      description: Why the signature could not be read.
      type: str
  sample:
    - digest: sha256:6dd3bfd1de056cf7b63ec83a4d40e3788b793c73c75ad3ad63c65586896c65de
      kind: simple-signing
      where: file:///var/lib/containers/sigstore/team/app@sha256=6dd3bfd1de056cf7b63ec83a4d40e3788b793c73c75ad3ad63c65586896c65de/signature-1
      identity: registry.example.com/team/app:1.2
      signed_digest: sha256:6dd3bfd1de056cf7b63ec83a4d40e3788b793c73c75ad3ad63c65586896c65de
      signer: 2004E1DA6914EF28CF752B5887470B9C0AA856DF
policy:
  description: With O(signature_policy), whether that policy accepts the image, and why.
  returned: when O(signature_policy) is given and the image exists
  type: dict
  contains:
    accepted:
      description: Whether M(oci.images.image_copy) would copy the image under this policy.
      type: bool
    scope:
      description: The policy scope that applies, or V(default).
      type: str
    requirements:
      description: The requirements of that scope.
      type: list
      elements: str
    reasons:
      description: What each requirement concluded (the last one is why the image is refused, when it is).
      type: list
      elements: str
footprint:
  description:
    - The storage the tags (with O(footprint)) or the references (with O(footprint_of)) take.
      Sizes are of configs and layers as stored (compressed); manifests are not counted.
    - With O(footprint_of), what this section calls tags are the references, see RV(footprint.tags).
  returned: when O(footprint=true) or O(footprint_of) is given
  type: dict
  contains:
    total_bytes:
      description: Bytes of every distinct blob (configs and layers) used by the tags, each counted once.
      type: int
      sample: 104857600
    shared_bytes:
      description: Bytes of the blobs used by two tags or more (two tags on one digest share all of theirs).
      type: int
      sample: 73400320
    tags:
      description:
        - Per tag, its digest, its C(size) (config and layers; for an index, all its images') and its
          C(unique_bytes), what deleting that tag alone would free.
        - With O(footprint), keyed by tag (the O(image) tag, digest or ref when it names one image).
        - With O(footprint_of), keyed by reference instead (the key is still C(tags)); a repository or layout given
          without tag or ref is listed as one key per tag, V(docker://host/repo:1.2), V(oci:/path:1.2).
      type: dict
      sample: {"1.2": {"digest": "sha256:9a8b...", "size": 52428800, "unique_bytes": 1048576}}
    layers:
      description:
        - Every blob the tags use, largest first, with how many tags use it. Despite the name this holds the configs
          too, not only the layers (as RV(footprint.total_bytes) counts them); tell them apart by RV(footprint.layers[].media_type).
      type: list
      elements: dict
      contains:
        digest:
          description: Digest of the blob.
          type: str
        size:
          description: Size in bytes.
          type: int
        media_type:
          description: Media type from the manifest (a config media type for a config).
          type: str
        tags_using:
          description: How many tags (with O(footprint_of), references) use it.
          type: int
missing:
  description:
    - With O(footprint_of), the references that name nothing (left out of RV(footprint)).
    - A repository or layout given without tag or ref is listed as given (V(docker://host/repo), not V(docker://host/repo:latest))
      when it does not exist or has no tags.
  returned: when O(footprint_of) is given
  type: list
  elements: str
  sample: []
exists:
  description:
    - Whether the image exists. V(false) when the repository, tag or local image is not there.
    - With O(list_tags) and a repository or layout named without tag or ref, whether the repository or layout exists.
  returned: always
  type: bool
  sample: true
image:
  description:
    - The facts about the image. Empty when RV(exists) is V(false).
    - With O(list_tags) and a repository or layout named without tag or ref, only RV(image.name), RV(image.reference)
      and RV(image.tags).
  returned: always
  type: dict
  contains:
    name:
      description: Normalized repository name, for references that have one.
      type: str
      sample: docker.io/library/fedora
    reference:
      description: The normalized reference that was inspected (for a repository or layout as a whole, V(docker://host/repo), V(oci:/path)).
      type: str
      sample: docker://docker.io/library/fedora:latest
    digest:
      description: Digest of the top-level manifest (for a multi-arch image, the digest of the index).
      type: str
      sample: sha256:2f9d3ef1f0c4a3a42c4a1d33d3b9f1d4e5c2f7a0e1b2c3d4e5f60718293a4b5c
    media_type:
      description: Media type of the top-level manifest.
      type: str
      sample: application/vnd.oci.image.index.v1+json
    manifest_digest:
      description: Digest of the image manifest described (the chosen platform's for a multi-arch image).
      type: str
      sample: sha256:9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081
    manifest_media_type:
      description: Media type of the image manifest described.
      type: str
      sample: application/vnd.oci.image.manifest.v1+json
    artifact_type:
      description: The manifest's C(artifactType), for OCI artifacts that declare one.
      type: str
      sample: application/vnd.example.sbom
    annotations:
      description: The manifest's annotations.
      type: dict
      sample: {"org.opencontainers.image.source": "https://example.com/app"}
    created:
      description: Creation time from the image configuration (or the C(org.opencontainers.image.created) annotation of an artifact).
      type: str
      sample: "2024-01-02T03:04:05Z"
    architecture:
      description: CPU architecture of the image.
      type: str
      sample: amd64
    os:
      description: Operating system of the image.
      type: str
      sample: linux
    variant:
      description: CPU variant, when the configuration has one.
      type: str
      sample: v8
    labels:
      description: Labels of the image configuration.
      type: dict
      sample: {"org.opencontainers.image.version": "1.2"}
    env:
      description: Environment of the image configuration.
      type: list
      elements: str
      sample: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    docker_version:
      description: The C(docker_version) field of the configuration, when present.
      type: str
      sample: "20.10.24"
    author:
      description: The C(author) field of the configuration, when present.
      type: str
      sample: ""
    config_digest:
      description: Digest of the configuration blob (the image ID).
      type: str
      sample: sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
    config_media_type:
      description: Media type of the configuration blob.
      type: str
      sample: application/vnd.oci.image.config.v1+json
    layers:
      description: The layers, base first.
      type: list
      elements: dict
      contains:
        digest:
          description: Digest of the layer blob.
          type: str
        size:
          description: Size of the layer blob in bytes.
          type: int
        media_type:
          description: Media type of the layer.
          type: str
        annotations:
          description: Annotations of the layer descriptor.
          type: dict
        compression:
          description:
            - How the layer is compressed, from its media type and annotations - V(gzip), V(zstd), V(zstd:chunked)
              (zstd with the table of contents podman uses for partial pulls), V(none) (a plain tar).
            - V(null) for blobs that are not image layers (artifacts).
          type: str
      sample: [{"digest": "sha256:4f5e...", "size": 3370628, "media_type": "application/vnd.oci.image.layer.v1.tar+gzip", "annotations": null,
                "compression": "gzip"}]
    size:
      description: Bytes of the configuration and all layers (compressed, as stored).
      type: int
      sample: 3371212
    platforms:
      description: For a multi-arch image, every entry of the index; V(null) for a single image.
      type: list
      elements: dict
      contains:
        os:
          description: Operating system.
          type: str
        architecture:
          description: CPU architecture.
          type: str
        variant:
          description: CPU variant.
          type: str
        os_version:
          description: The C(os.version) of the platform (Windows images).
          type: str
        digest:
          description: Digest of that platform's manifest.
          type: str
        size:
          description: Size of that platform's manifest.
          type: int
        media_type:
          description: Media type of that platform's manifest.
          type: str
        annotations:
          description: Annotations of the index entry.
          type: dict
      sample: [{"os": "linux", "architecture": "arm64", "variant": "v8", "digest": "sha256:...", "size": 1042,
                "media_type": "application/vnd.oci.image.manifest.v1+json", "os_version": null, "annotations": null}]
    tags:
      description:
        - Tags of the repository with O(list_tags), sorted as the registry lists them (for an OCI layout, its refs
          in C(index.json) order); V(null) otherwise.
      type: list
      elements: str
      sample: ["1.1", "1.2", "latest"]
    manifest:
      description: The parsed image manifest, with O(raw).
      type: dict
    config:
      description: The parsed image configuration, with O(raw).
      type: dict
    index:
      description: The parsed index of a multi-arch image, with O(raw).
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._errors import NotFound, OCIError, describe_os_error
from ansible_collections.oci.images.plugins.module_utils._module_setup import side_options, start_module


def main() -> None:
    module = start_module(
        AnsibleModule,
        missing_required_lib,
        dict(
            image=dict(type="str"),
            footprint_of=dict(type="list", elements="str"),
            platform=dict(type="str"),
            list_tags=dict(type="bool", default=False),
            raw=dict(type="bool", default=False),
            footprint=dict(type="bool", default=False),
            signature_policy=dict(type="raw"),
            registries_d=dict(type="path"),
        ),
        daemon=True,
        mutually_exclusive=[["image", "footprint_of"]],
        required_one_of=[["image", "footprint_of"]],
    )

    # Imported after the dependency check so a missing library gives a clear message.
    from ansible_collections.oci.images.plugins.module_utils._inspect import describe_image, describe_repository, names_repository
    from ansible_collections.oci.images.plugins.module_utils._media import parse_platform
    from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
    from ansible_collections.oci.images.plugins.module_utils._transports._table import open_source

    params = module.params
    extra = {}
    if params["footprint_of"] is not None:
        _footprint_of(module, params, parse_reference, open_source)
    try:
        reference = parse_reference(params["image"])
        platform = parse_platform(params["platform"]) if params["platform"] else None
        with open_source(reference, side_options(module)) as source:
            if params["footprint"]:
                from ansible_collections.oci.images.plugins.module_utils._footprint import reference_footprint

                extra["footprint"], whole_repository = reference_footprint(source)
                if whole_repository and not params["list_tags"]:
                    module.exit_json(changed=False, exists=bool(extra["footprint"]["tags"]), image={}, **extra)
            if params["list_tags"] and names_repository(source):
                # A repository or layout as a whole: its tags, no image described (not even latest).
                try:
                    repository = describe_repository(source)
                except NotFound as exc:
                    module.exit_json(changed=False, exists=False, image={}, msg=exc.msg, **extra)
                module.exit_json(changed=False, exists=True, image=repository, **extra)
            try:
                image = describe_image(source, platform=platform, list_tags=params["list_tags"], raw=params["raw"])
            except NotFound as exc:
                module.exit_json(changed=False, exists=False, image={}, msg=exc.msg, **extra)
        extra.update(_signatures(module, reference))
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:  # a file the transport did not expect to fail: still a message, not a traceback
        module.fail_json(msg="%s: %s" % (params["image"], describe_os_error(exc)))
    module.exit_json(changed=False, exists=True, image=image, **extra)


def _signatures(module, reference) -> dict:
    """The image's signatures, and with signature_policy, whether that policy accepts the image."""
    params = module.params
    from ansible_collections.oci.images.plugins.module_utils._policy import load_policy
    from ansible_collections.oci.images.plugins.module_utils._signature_stores import load_registries_d
    from ansible_collections.oci.images.plugins.module_utils._trust import inspect_signatures

    policy = load_policy(params["signature_policy"]) if params["signature_policy"] is not None else None
    signatures, verdict = inspect_signatures(reference, side_options(module), load_registries_d(params["registries_d"]), policy)
    return {"signatures": signatures, "policy": verdict} if verdict is not None else {"signatures": signatures}


def _footprint_of(module, params, parse_reference, open_source) -> None:
    """Exit with the footprint of the images in ``footprint_of``, each blob counted once."""
    from contextlib import ExitStack

    from ansible_collections.oci.images.plugins.module_utils._footprint import references_footprint

    try:
        references = [parse_reference(text) for text in params["footprint_of"]]
        with ExitStack() as stack:
            sources = [stack.enter_context(open_source(reference, side_options(module))) for reference in references]
            result, missing = references_footprint(sources)
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:
        module.fail_json(msg="footprint_of: %s" % describe_os_error(exc))
    module.exit_json(changed=False, exists=not missing, image={}, footprint=result, missing=missing)


if __name__ == "__main__":
    main()
