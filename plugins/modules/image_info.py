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
  - With O(catalog), lists the repositories of a registry instead (see RV(repositories)), and with O(footprint) measures them
    together - what the registry stores, what each repository shares with others and what deleting it would free.
author:
  - oci.images maintainers (@oci-images)
extends_documentation_fragment:
  - oci.images._auth
  - oci.images._tls
  - oci.images._daemon
  - oci.images._retry
  - oci.images._upstreams
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
      - Required unless O(footprint_of) or O(catalog) is given.
    type: str
  catalog:
    description:
      - Instead of O(image), a registry whose repositories are listed in RV(repositories), from its catalog (C(GET /v2/_catalog),
        every page), such as V(registry.example.com), V(docker://registry.example.com) or V(127.0.0.1:5000).
      - With a namespace (V(registry.example.com/team)), only the repositories below it (V(team/app), V(team/db/pg), not V(teamwork)).
      - Many registries list their repositories only to an administrator (Harbor, GitLab) or not at all (Docker Hub, ghcr.io);
        the task then fails saying so, and O(repositories.names) gives the list instead.
      - With O(footprint), the footprint of those repositories together, see RV(footprint).
    type: str
  repositories:
    description:
      - With O(catalog), which repositories to list (and measure).
    type: dict
    suboptions:
      include:
        description: Regular expressions; a repository is selected when one of them matches its whole name (V(team/app)). All when not given.
        type: list
        elements: str
      exclude:
        description: Regular expressions; a repository matching one of them as a whole is left out, even when an O(repositories.include) matches.
        type: list
        elements: str
      names:
        description:
          - The repositories to start from instead of the catalog, for registries that do not list theirs.
            O(repositories.include), O(repositories.exclude) and a namespace in O(catalog) still apply.
        type: list
        elements: str
  registry_storage:
    description:
      - With O(catalog) and O(footprint), the storage root directory of a CNCF distribution registry (C(docker-registry), C(registry:2))
        with the filesystem driver - what its configuration names in C(storage.filesystem.rootdirectory) - on the host the task runs on.
      - The registry API lists tags only; from this directory the footprint also sees the manifests each repository keeps without a tag
        (an image whose tag moved on, an image pushed by digest), which C(garbage-collect) keeps until they are deleted. Only read.
      - It also reads what each tag names from there, so each distinct manifest is requested once (through the API, by digest)
        instead of once per tag.
      - Without it, RV(footprint.untagged.visible) is V(false) and untagged manifests are not counted.
    type: path
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
      - With O(catalog), the footprint of the repositories listed, counting every blob and manifest once however many repositories
        hold it. Reads every tag's manifest once and every other manifest once (not once per repository); no layer.
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

- name: List the repositories of a namespace, without the test ones
  oci.images.image_info:
    catalog: registry.example.com/team
    repositories:
      exclude: ['.*-test']
  register: found

- name: What the whole registry stores, what each repository shares and what deleting it would free
  oci.images.image_info:
    catalog: registry.example.com
    footprint: true
    registry_storage: /var/lib/docker-registry  # on the registry's host: untagged manifests counted too
  register: registry_usage

- name: Write it as a page people read
  oci.images.footprint_report:
    footprint: "{{ registry_usage.footprint }}"
    dest: /var/www/reports/registry.html

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
rate_limit_waits:
  description:
    - Per registry host that made the task wait or reported a quota, what it cost, in the form
      RV(oci.images.image_copy#module:rate_limit_waits) describes. Empty when none did.
  returned: always
  type: dict
catalog:
  description: With O(catalog), the registry (or namespace) whose repositories are listed, as V(docker://HOST[/NAMESPACE]).
  returned: when O(catalog) is given
  type: str
  sample: docker://registry.example.com/team
repositories:
  description:
    - With O(catalog), the repositories selected, in the order the registry lists them (by name for CNCF distribution), without the host.
    - Prefix them with RV(catalog)'s host to name them, for example V(docker://registry.example.com/team/app).
  returned: when O(catalog) is given
  type: list
  elements: str
  sample: ["team/app", "team/db/pg"]
footprint:
  description:
    - The storage the tags (with O(footprint)) or the references (with O(footprint_of)) take.
      Sizes are of configs and layers as stored (compressed); manifests are not counted.
    - With O(footprint_of), what this section calls tags are the references, see RV(footprint.tags).
    - With O(catalog), the storage of the repositories listed, with other keys - RV(footprint.registry), RV(footprint.total_bytes),
      RV(footprint.manifest_bytes), RV(footprint.shared_bytes), RV(footprint.untagged), RV(footprint.repositories) and RV(footprint.blobs).
      A registry stores each blob (and each manifest) once, whichever repositories use it, so each is counted once, manifests included.
      M(oci.images.footprint_report) turns it into a page people read.
  returned: when O(footprint=true) or O(footprint_of) is given
  type: dict
  contains:
    registry:
      description: With O(catalog), the registry host.
      type: str
      sample: registry.example.com
    manifest_bytes:
      description: With O(catalog), how much of RV(footprint.total_bytes) is manifests (each stored as a blob).
      type: int
      sample: 48213
    untagged:
      description:
        - With O(catalog), the manifests repositories keep without a tag (an image whose tag moved on, an image pushed by digest).
          The registry API does not list them; they are seen only with O(registry_storage).
      type: dict
      contains:
        visible:
          description: Whether they could be seen (V(true) with O(registry_storage)). When V(false), the other keys are V(null).
          type: bool
        manifests:
          description: How many manifests no tag reaches (directly, or as an image of a tagged index).
          type: int
        bytes:
          description:
            - Bytes of what only those manifests hold (themselves, and blobs no tagged image uses) -
              what C(garbage-collect --delete-untagged) would free.
          type: int
    repositories:
      description:
        - With O(catalog), per repository (keyed by name) -
        - C(tags), how many.
        - C(manifests), how many its tags reach (the images of an index included).
        - C(size), everything its tags reach, each blob and manifest once.
        - C(shared_bytes), the part of C(size) another repository of the set also holds.
        - C(freed_bytes), what deleting every tag of it, then C(garbage-collect), frees - what no other repository of the set holds
          and none of its own untagged manifests holds.
        - C(unique_bytes), what no other repository holds, its untagged manifests included - what removing the repository as a whole frees.
        - C(untagged_manifests) and C(untagged_bytes), its manifests no tag reaches and what only they hold (V(null) without O(registry_storage)).
        - The figures are against the repositories listed. C(freed_bytes) is what C(garbage-collect) frees only when no repository left
          out (by O(repositories) or a namespace) shares blobs with it; the whole catalog (the default) is exact.
      type: dict
      sample:
        team/app: {"tags": 12, "manifests": 14, "size": 734003200, "shared_bytes": 524288000, "freed_bytes": 209715200,
                   "unique_bytes": 209715200, "untagged_manifests": null, "untagged_bytes": null}
    blobs:
      description: With O(catalog), every config and layer, largest first, with the repositories that hold it (manifests are left out).
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
        repositories:
          description: The repositories that hold it, sorted.
          type: list
          elements: str
    total_bytes:
      description:
        - Bytes of every distinct blob (configs and layers) used by the tags, each counted once.
        - With O(catalog), of every distinct blob and manifest the repositories hold, untagged ones included when visible.
      type: int
      sample: 104857600
    shared_bytes:
      description:
        - Bytes of the blobs used by two tags or more (two tags on one digest share all of theirs).
        - With O(catalog), of the blobs and manifests held by two repositories or more.
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
    - With O(catalog), whether any repository was selected.
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
    location:
      description:
        - For a registry image, where it was read - the name itself, or the mirror or remapped location
          O(registries_conf) sent the read to (the first that had the image).
      type: str
      returned: for registry images
      sample: mirror.example.com/dockerhub/library/fedora:39
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
            catalog=dict(type="str"),
            repositories=dict(
                type="dict",
                options=dict(
                    include=dict(type="list", elements="str"),
                    exclude=dict(type="list", elements="str"),
                    names=dict(type="list", elements="str"),
                ),
            ),
            registry_storage=dict(type="path"),
            platform=dict(type="str"),
            list_tags=dict(type="bool", default=False),
            raw=dict(type="bool", default=False),
            footprint=dict(type="bool", default=False),
            signature_policy=dict(type="raw"),
            registries_d=dict(type="path"),
        ),
        daemon=True,
        mutually_exclusive=[["image", "footprint_of", "catalog"]],
        required_one_of=[["image", "footprint_of", "catalog"]],
        required_by={"repositories": "catalog", "registry_storage": "catalog"},
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
    if params["catalog"] is not None:
        _catalog(module, params)
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
                if source.location:
                    image["location"] = source.location
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


def _catalog(module, params) -> None:
    """Exit with the repositories of a registry (or a namespace of it) and, with footprint, what they store together."""
    from ansible_collections.oci.images.plugins.module_utils._catalog import catalog_repositories, parse_catalog_scope
    from ansible_collections.oci.images.plugins.module_utils._registry._clients import registry_client
    from ansible_collections.oci.images.plugins.module_utils._registry._distribution_storage import DistributionStorage
    from ansible_collections.oci.images.plugins.module_utils._registry_footprint import registry_footprint, scan_registry

    selection = params["repositories"] or {}
    try:
        scope = parse_catalog_scope(params["catalog"])
        client = registry_client(scope.registry, side_options(module))
        repositories = catalog_repositories(client, scope, selection.get("include"), selection.get("exclude"), selection.get("names"))
        result = {"changed": False, "exists": bool(repositories), "image": {}, "catalog": scope.reference(), "repositories": repositories}
        if params["footprint"]:
            storage = DistributionStorage(params["registry_storage"]) if params["registry_storage"] else None
            result["footprint"] = registry_footprint(scan_registry(client, repositories, storage))
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:
        module.fail_json(msg="catalog %s: %s" % (params["catalog"], describe_os_error(exc)))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
