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
  - A blob that several images of the task need in one registry is read from the source once, uploaded into the first
    repository and mounted into the others. With O(blob_cache), where blobs were seen is remembered between runs, so a
    later task mounts them from any repository of the same registry instead of uploading them again.
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
      - A registry reference without a tag or digest names a whole repository (repository mode) -
        the tags chosen by O(tags) are copied to the O(dest) repository under the same names.
      - A local place that holds many images is copied image by image, as C(skopeo sync --src dir) does - a C(dir:PATH) tree
        (a directory with no C(manifest.json) of its own; every directory below it holding one is an image, as
        C(skopeo sync --dest dir) writes them) and a bundle (C(oci:PATH) or C(oci-archive:PATH) without REF whose index names
        several images). Each image lands under the O(dest) registry prefix at the last path component of its name
        (its whole name with O(scoped)), or in the O(dest) tree or bundle. See the collection's docs/air-gap.md.
      - With O(sync) or O(sync_file), the tree or bundle an export of that spec wrote, to read the images from (an air-gap import).
      - Required unless O(images), O(sync), O(sync_file) or O(catalog) is given.
    type: str
  dest:
    description:
      - Where to copy it, in the same syntax. Supported destinations are C(docker://), C(dir:), C(oci:), C(oci-archive:), C(docker-archive:),
        C(docker-daemon:name:tag) and C(containers-storage:name:tag).
      - In repository mode, a registry repository without a tag. With O(sync), O(sync_file) or O(catalog), a registry prefix
        such as V(registry.example.com/mirror).
      - In repository mode, with O(sync) or O(sync_file), and from a local tree or bundle, also a local place for many images -
        C(dir:PATH) writes one directory per image, C(PATH/<last path component>:tag) (C(PATH/<registry>/<path>:tag) with O(scoped)),
        exactly the tree C(skopeo sync --dest dir) writes; C(oci:PATH) writes a bundle, one OCI layout holding every image
        with each blob stored once, each image named by its full reference (C(registry/path:tag)) in
        C(org.opencontainers.image.ref.name), its manifests kept byte for byte so digests survive.
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
  catalog:
    description:
      - A whole registry, or a namespace of it (V(registry.example.com), V(registry.example.com/team), V(127.0.0.1:5000)), to mirror
        into the registry prefix O(dest) in one task - every repository its catalog (C(GET /v2/_catalog)) lists, chosen by O(repositories),
        and in each the tags chosen by O(tags) (every tag without it).
      - A repository keeps its whole path under O(dest) - V(registry.example.com/team/app:1.2) lands at O(dest)C(/team/app:1.2), or at
        O(dest)C(/registry.example.com/team/app:1.2) with O(scoped) - so a registry mirrored to a bare host (O(dest=mirror.example.com))
        keeps its repository names, and repositories of different namespaces never collide.
      - Tags of O(parallel_images) repositories are listed at the same time, and images copied O(parallel_images) at a time, sharing
        one blob ledger, as with O(sync). O(slice) splits the images over several hosts.
      - Registries that list their repositories only to an administrator, or not at all, fail saying so; give the list in
        O(repositories.names) instead.
      - O(dest) may also be a local C(dir:) tree (each repository under its whole path) or a bundle (C(oci:PATH), C(oci-archive:PATH)),
        where every image is named by its full reference; see the collection's docs/air-gap.md.
      - Mutually exclusive with O(src), O(images), O(sync) and O(sync_file).
    type: str
  repositories:
    description:
      - With O(catalog), which repositories to mirror. Without it, every repository of the registry (or namespace).
    type: dict
    suboptions:
      include:
        description: Regular expressions; a repository is a candidate when one of them matches its whole name (V(team/app)). All when not given.
        type: list
        elements: str
      exclude:
        description: Regular expressions; a repository matching one of them as a whole is left out, even when an O(repositories.include) matches.
        type: list
        elements: str
      names:
        description:
          - The repositories to start from instead of the catalog, for registries that do not list theirs (names without the host).
            O(repositories.include), O(repositories.exclude) and a namespace in O(catalog) still apply.
        type: list
        elements: str
  tags:
    description:
      - With O(src) naming a registry repository (no tag, no digest), which of its tags to copy; each lands under the same tag
        in the O(dest) repository. Without O(tags), every tag is copied.
      - With O(catalog), which tags of each repository to copy.
      - Note that O(src) without a tag means the whole repository here, not C(:latest) as in C(skopeo copy).
    type: dict
    suboptions:
      include:
        description: Regular expressions; a tag is a candidate when one of them matches the whole tag. All tags when not given.
        type: list
        elements: str
      exclude:
        description: Regular expressions; a tag matching one of them (the whole tag) is left out.
        type: list
        elements: str
      semver:
        description:
          - A version range such as V(>=1.3.0,<2.1.0), V(^1.2), V(~1.2.3), V(1.2.x), or alternatives joined with V(||).
          - Tags that are not versions (one to three numbers, optional leading V(v), optional pre-release) are skipped.
          - Pre-releases match only a range that names a pre-release.
        type: str
      latest:
        description:
          - Keep only the N highest versions among the selected tags; when none of them is a version, the N most recently created.
        type: int
  sync:
    description:
      - A C(skopeo sync) YAML structure, as a mapping, copied to the registry prefix O(dest).
      - Registry keys with C(images) (repository to a list of tags or digests; an empty list means every tag),
        C(images-by-tag-regex) (unanchored regular expression, as skopeo), C(images-by-semver), C(credentials),
        C(tls-verify) and C(cert-dir).
      - Keys of ours beside skopeo's pace one registry - C(requests-per-second), C(max-concurrent-requests) and
        C(rate-limit-floor), the meanings of O(requests_per_second), O(max_concurrent_requests) and O(rate_limit_floor).
      - Images land at O(dest)C(/<last path component>:tag), or at O(dest)C(/<registry>/<path>:tag) with O(scoped).
      - With O(src) naming a C(dir:) tree or a bundle that an export of the same spec wrote (an air-gap import), every image the spec
        names is read from there instead of its registry (tags are listed from there too), verified first, and lands where a direct
        mirror would put it. An image the spec names that is not there fails the task before anything is written.
      - Mutually exclusive with O(images) and O(sync_file).
    type: dict
  sync_file:
    description:
      - Path of a C(skopeo sync) YAML file, used as O(sync).
    type: path
  scoped:
    description:
      - With O(sync) or O(sync_file), in repository mode into a C(dir:) tree, and from a local tree or bundle, keep the full
        source path (registry included) under O(dest), like C(skopeo sync --scoped). Images in a bundle are always named in full.
      - With O(catalog), put the source registry's host between O(dest) and the repository path.
    type: bool
    default: false
  append_suffix:
    description:
      - With O(sync) or O(sync_file), in repository mode into a C(dir:) tree or bundle, and from a local tree or bundle,
        append this string to every destination tag.
    type: str
  inventory:
    description:
      - The inventory file of an air-gapped side - plain JSON (version 1) listing, per repository of the bundle, the blobs that side
        holds, and where each image of the bundle went. See the collection's docs/air-gap.md.
      - With O(src) a bundle or C(dir:) tree (an import), written after the copies - what this task imported is added to what
        the file already lists.
      - With O(dest) a bundle (an export), read - blobs it lists for an image's repository are left out of the bundle, so the
        bundle carries only what the other side lacks (a delta bundle); its manifests are all written, so the import checks
        that the destination holds every blob left out before anything moves.
    type: path
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
  compression:
    description:
      - Compress every image layer with this algorithm on the way, like C(skopeo copy --dest-compress --dest-compress-format).
        Without it, each layer keeps the compression it has at the source.
      - V(gzip) writes C(tar+gzip) layers; V(zstd) C(tar+zstd) layers; V(zstd:chunked) C(tar+zstd) layers laid out
        so podman can pull only the files it lacks, with the C(io.containers.zstd-chunked.*) annotations skopeo 1.9 and podman 4.3 write.
      - Decided per layer, by its type - a layer already in that compression is copied as it is (a zstd:chunked layer counts as zstd),
        a regular layer stays regular and a non-distributable one non-distributable; foreign layers (with URLs) and blobs that are not
        image layers (artifacts) are never touched.
      - zstd exists only in OCI manifests, so Docker schema 2 images are converted to OCI with V(zstd) and V(zstd:chunked)
        (O(format=v2s2) cannot be combined with them).
      - Applies to every image the task copies, with O(images), in repository mode and with O(sync) or O(sync_file).
        Destinations that store layers uncompressed (C(docker-archive:), C(docker-daemon:), C(containers-storage:)) ignore it.
      - Converted layers get new digests, known only after the copy. The destination is then up to date when it holds the same
        content in the asked compression - the same manifest format, the same config (so the same diff IDs), every converted
        layer in the asked compression and every other layer the same blob - so a second run changes nothing.
      - zstd needs the Python library C(zstandard).
    type: str
    choices: [gzip, zstd, "zstd:chunked"]
  compression_level:
    description:
      - The compression level for O(compression) - V(0) to V(9) for gzip, V(1) to V(22) for zstd.
      - Default for zstd is V(3), as skopeo. Default for gzip is V(1) - zlib at level 1 writes layers about the size skopeo's gzip
        writes at its default level, twice as fast as zlib's level 6; V(6) to V(9) write smaller layers, more slowly.
    type: int
  split_size:
    description:
      - Write an C(oci-archive:PATH) destination as numbered volumes C(PATH.000), C(PATH.001), ... of at most this many bytes each,
        plus C(PATH.volumes.json), which lists the volumes with the size and sha256 of each - for media with a file-size limit.
      - Bytes, or a number with V(K), V(M), V(G) or V(T) (powers of 1024), such as V(700M). FAT32 holds files up to one byte less
        than 4 GiB, so give V(4095M) there, not V(4G). At least 1024 bytes, at most 1000 volumes.
      - C(cat PATH.??? > PATH) joins the volumes into the archive skopeo reads. An C(oci-archive:PATH) source whose volumes are there
        (and PATH is not) reads them as one archive without joining them, after checking each against C(PATH.volumes.json);
        a missing or damaged volume is named.
      - The volumes are up to date when they hold the image and were written with the same O(split_size); then nothing is written.
        Otherwise all volumes and the index are written under temporary names and put in place at the end, volumes past the new
        last one and an unsplit archive at PATH are removed. Without O(split_size), writing PATH removes volumes of it.
      - Only for C(oci-archive:) destinations (with O(images) and O(sync), every destination must be one).
    type: raw
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
      - How many images are copied at the same time, with O(images), in repository mode (one image per tag), with O(sync) or O(sync_file)
        and with O(catalog) (where it is also how many repositories have their tags listed at the same time).
    type: int
    default: 4
  blob_cache:
    description:
      - Remember between runs, in the file O(blob_cache_path), which repositories of which registries hold which blobs
        (registry and repository names and digests only, never a credential or a token), and mount a blob from one of
        them instead of uploading it, as skopeo's blob-info cache does. A mount that fails falls back to the upload.
      - Off by default, so nothing outlives the task. Several tasks may use the same file at the same time.
      - Check mode reads the file but never creates or changes it.
    type: bool
    default: false
  blob_cache_path:
    description:
      - The file O(blob_cache) keeps (SQLite), created with mode C(0600) when missing.
      - Defaults to C(oci.images/blob-info-cache.sqlite) under C($XDG_CACHE_HOME), or C(~/.cache) when that is not set,
        on the host the task runs on.
      - A file that cannot be used (unreadable, not writable, another format) gives a warning and the task goes on without it.
    type: path
  keep_going:
    description:
      - With O(images), in repository mode, with O(sync) or O(sync_file) and with O(catalog), when a copy (or a repository's tag list)
        fails, go on with the others and fail at the end listing every failure.
      - When V(false), the first failure stops the task (copies already running finish, no new one starts).
    type: bool
    default: false
  referrers:
    description:
      - Also copy what refers to each image (and to each image of a multi-arch index), keeping it attached -
        manifests listed by the OCI referrers API or its fallback tag C(sha256-<hex>) (signatures, SBOMs, attestations pushed with a C(subject)),
        copied by digest, and cosign-style tags C(sha256-<hex>.sig), C(.att) and C(.sbom), copied under the same names.
      - When the destination registry has no referrers API (like distribution 2.8), its fallback tag index is written or merged,
        as the OCI distribution spec tells clients to.
      - One level only - referrers of referrers are not followed. Artifacts that are not images copy like images.
      - Registry to registry only, and only when the destination keeps the source digest (no O(format), O(platforms) or O(multi_arch=system)).
    type: bool
    default: false
  signature_policy:
    description:
      - The signature verification policy every source image must satisfy before anything is written, in the
        containers-policy.json(5) format skopeo reads - a path, or the policy itself as a mapping.
      - Without it, the policy is read from the files skopeo reads, C($HOME/.config/containers/policy.json), else
        C(/etc/containers/policy.json); RV(signature_policy) says which one applied.
      - When neither file exists, no policy applies and every image is accepted (skopeo refuses to copy then) - so
        playbooks written before signatures were supported keep working. Give a policy to make verification mandatory.
      - An image the policy refuses fails with a message naming the scope and the requirement that failed;
        nothing of it is written. See the collection's docs/signatures.md.
    type: raw
  registries_d:
    description:
      - The containers-registries.d(5) directory that says where registries keep signatures (C(lookaside),
        C(lookaside-staging), C(use-sigstore-attachments)), like C(skopeo --registries.d).
      - Default C($HOME/.config/containers/registries.d) when it exists, else C(/etc/containers/registries.d).
    type: path
  sign_by:
    description:
      - Sign each copied image with this GPG key (its fingerprint) of the keyring of the user the module runs as
        (C(GNUPGHOME) or C(~/.gnupg)), as C(skopeo copy --sign-by) does ("simple signing"); needs the C(gpg) program.
      - Registry destinations store these signatures in their lookaside store (see O(registries_d)).
    type: str
  sign_by_sigstore_private_key:
    description:
      - Sign each copied image with this sigstore (cosign) private key file, as C(skopeo copy --sign-by-sigstore-private-key) does.
        M(oci.images.sigstore_key) creates one. Needs the PyNaCl Python library.
      - Registry destinations store these signatures as cosign-style C(sha256-<hex>.sig) attachments, which needs
        C(use-sigstore-attachments) set to true for the destination in O(registries_d).
    type: path
  sign_passphrase:
    description:
      - The passphrase of the O(sign_by_sigstore_private_key) or O(sign_by) key. It is given to gpg on its standard input only.
    type: str
  sign_identity:
    description:
      - The identity (a registry reference with a tag or digest) the new signatures claim. Default is the destination reference,
        which must then be a registry name (a C(dir:) destination needs O(sign_identity)).
    type: str
  remove_signatures:
    description:
      - Do not copy the source's signatures. By default they travel with the image, and a copy fails before writing anything
        when the destination cannot hold them or the copy would rewrite a signed manifest.
      - Signatures already at the destination are kept either way.
    type: bool
    default: false
  slice:
    description:
      - Copy only the images of this slice, so several workers split one mirror with every image copied exactly once.
      - An image belongs to slice V(index) when the sha256 of its C("<src> -> <dest>") (normalized references) modulo V(count) is V(index).
      - The M(oci.images.image_copy) calls of all workers must be given the same images and the same V(count).
    type: dict
    suboptions:
      index:
        description: This worker's slice, from V(0) to V(count - 1).
        type: int
        required: true
      count:
        description: How many slices (workers) there are.
        type: int
        required: true
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
  - PyNaCl (only with O(sign_by_sigstore_private_key))
  - zstandard (only for zstd and zstd:chunked layers)
  - gpg (only for O(sign_by) and C(signedBy) policies)
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

- name: Convert an image's layers to zstd:chunked, for partial pulls by podman
  oci.images.image_copy:
    src: docker://registry.example.com/team/app:1.2
    dest: docker://registry.example.com/team/app:1.2-zstd
    compression: "zstd:chunked"

- name: Save a zstd image for an old Docker engine (its layers are decompressed for it)
  oci.images.image_copy:
    src: docker://registry.example.com/team/app:1.2-zstd
    dest: docker-daemon:team/app:1.2

- name: Mirror the 1.x releases of a repository, the three newest only
  oci.images.image_copy:
    src: docker://quay.io/team/app
    dest: docker://registry.example.com/mirror/app
    tags:
      semver: ">=1.0.0,<2.0.0"
      latest: 3

- name: Run an existing skopeo sync YAML file
  oci.images.image_copy:
    sync_file: /etc/mirror/sync.yaml
    dest: registry.example.com/mirror
    keep_going: true

- name: Mirror a whole namespace of an internal registry, release tags only, keeping repository names
  oci.images.image_copy:
    catalog: registry.internal.example.com/team
    repositories:
      exclude: ["team/scratch-.*"]
    tags:
      include: ["v?[0-9]+[.][0-9]+[.][0-9]+"]
    dest: registry.example.com/mirror
    parallel_images: 8
    keep_going: true

- name: Save every tag of a repository as the dir tree skopeo sync --dest dir writes (app:1.0, app:1.1, ...)
  oci.images.image_copy:
    src: docker://registry.example.com/team/app
    dest: dir:/media/carry/mirror

- name: On the other side of the gap, push that tree into a registry (registry.internal/mirror/app:1.0, ...)
  oci.images.image_copy:
    src: dir:/media/carry/mirror
    dest: docker://registry.internal/mirror

- name: On the connected side, export only what the air-gapped side lacks (its inventory came back with the last carry)
  oci.images.image_copy:
    sync_file: /etc/mirror/sync.yaml
    dest: oci-archive:/media/carry/delta-2026-12-02.tar
    inventory: /media/carry/inventory.json

- name: On the air-gapped side, import the bundle (verified first) and update the inventory for the next export
  oci.images.image_copy:
    src: oci-archive:/media/carry/delta-2026-12-02.tar
    dest: docker://registry.internal/mirror
    inventory: /media/carry/inventory.json

- name: Mirror a repository with its signatures, SBOMs and other referrers
  oci.images.image_copy:
    src: docker://quay.io/team/app
    dest: docker://registry.example.com/mirror/app
    referrers: true

- name: One of three workers of a split mirror (each image falls to exactly one worker)
  oci.images.image_copy:
    sync_file: /etc/mirror/sync.yaml
    dest: registry.example.com/mirror
    slice:
      index: 1
      count: 3

- name: Mirror only what the vendor signed, refusing anything else before it is written
  oci.images.image_copy:
    src: docker://quay.io/vendor/app:1.2
    dest: docker://registry.example.com/mirror/app:1.2
    signature_policy:
      default:
        - type: reject
      transports:
        docker:
          quay.io/vendor:
            - type: sigstoreSigned
              keyPath: /etc/pki/vendor-cosign.pub
              signedIdentity:
                type: matchRepository

- name: Sign what is mirrored with our own sigstore key
  oci.images.image_copy:
    src: docker://quay.io/vendor/app:1.2
    dest: docker://registry.example.com/mirror/app:1.2
    registries_d: /etc/containers/registries.d
    sign_by_sigstore_private_key: /etc/pki/mirror-cosign.key
    sign_passphrase: "{{ vault_cosign_passphrase }}"

- name: Report what changed
  ansible.builtin.debug:
    msg: "{{ copied.results | selectattr('changed') | map(attribute='dest') | list }}"
"""

RETURN = r"""
signature_policy:
  description: The signature policy that applied (a path, or V(signature_policy (inline))); V(null) when none applied.
  returned: always
  type: str
  sample: /etc/containers/policy.json
rate_limit_waits:
  description:
    - Per registry host that made the task wait, or that reported a rate-limit quota - how many requests waited,
      the wall time during which at least one did (seconds), the longest single wait, why (C(rate_limit) for the quota
      and O(rate_limit_floor), C(retry_after), C(requests_per_second), C(concurrency)), and the last quota it reported.
    - Empty when no registry made the task wait or reported a quota.
  returned: always
  type: dict
  sample: {"registry-1.docker.io": {"waits": 12, "seconds": 41.5, "longest": 6.2, "reasons": {"rate_limit": 12},
           "quota": {"limit": 100, "remaining": 3, "window": 21600}}}
digest:
  description: Digest the destination names after the copy (for a single O(src)/O(dest) copy).
  returned: when O(src) is given and the copy succeeded
  type: str
  sample: sha256:2f9d3ef1f0c4a3a42c4a1d33d3b9f1d4e5c2f7a0e1b2c3d4e5f60718293a4b5c
verified:
  description:
    - When O(src) is a local tree or bundle, what was checked before the first copy started - the blobs read and checked
      against their digests, their bytes, and the blobs the bundle leaves out that the destination already holds (a delta bundle).
  returned: when O(src) is a local tree or bundle
  type: dict
  sample: {"blobs": 13, "bytes": 52480, "held_by_destination": 0}
unfinished:
  description:
    - When O(dest) is an C(oci-archive:) bundle and a copy failed, why the archive was not written and where the images copied
      so far wait for the next run.
  returned: when an oci-archive bundle was left unfinished
  type: str
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
  description: How many copies failed (a repository of a sync spec whose tags could not be listed counts as one).
  returned: always
  type: int
  sample: 0
not_attempted:
  description: How many copies were not started because an earlier one failed and O(keep_going) is not set.
  returned: always
  type: int
  sample: 0
results:
  description:
    - One entry per image, in the order given; a repository of a sync spec whose tags could not be listed comes first,
      as an entry with RV(results[].failed) and RV(results[].msg).
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
    src_location:
      description:
        - For a registry source, where the image was read - the name itself, or the mirror or remapped location
          O(registries_conf) sent the read to (the first that had the image).
      type: str
      sample: mirror.example.com/dockerhub/library/fedora:39
    dest_digest_before:
      description: Digest the destination named before (V(null) when it did not exist). For C(docker-archive:) destinations, the image ID.
      type: str
    dest_digest_after:
      description: Digest the destination names after the copy (in check mode, would name).
      type: str
    changed:
      description:
        - Whether this image was (or, in check mode, would be) written; stays V(true) when the image was written and a
          later step (its referrers) failed.
      type: bool
    blobs:
      description:
        - What happened to the blobs (in check mode, would happen). Check mode counts the way the real run does, so a blob
          that several images of the same task need in one place counts as skipped for all but the first.
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
    referrers:
      description: With O(referrers), how many referrers and cosign-style tags the image has (each one present at the destination after the run).
      type: int
    note:
      description:
        - In check mode, why RV(results[].dest_digest_after) is V(null) although the copy would write. Layers that the source
          serves uncompressed (C(docker-archive:), engines) are compressed during the copy, so the new digest is known only after it.
      type: str
      returned: in check mode, for such copies
    policy:
      description: How the signature policy judged the source image.
      type: dict
      returned: when a signature policy applied
      contains:
        policy:
          description: The policy file (or V(signature_policy (inline))).
          type: str
        scope:
          description: The policy scope that applied, like V(docker "registry.example.com/team"), or V(default).
          type: str
        accepted:
          description: Always V(true) here (a refused image is a failed entry whose RV(results[].msg) says why).
          type: bool
        requirements:
          description: The requirements of the scope.
          type: list
          elements: str
        reasons:
          description: Why each requirement accepted the image (for an index, each image that was copied).
          type: list
          elements: str
    signatures:
      description: Signatures copied from the source and made by this task (or that would be, in check mode).
      type: dict
      returned: when the source had signatures to copy or a signing key was given
      contains:
        carried:
          description: Source signatures written to the destination (those already there are not counted).
          type: int
        added:
          description: New signatures made (none where a valid signature by the same key for the same identity was already there).
          type: int
        identity:
          description: The identity new signatures claim.
          type: str
        signed_by:
          description: The signing keys (GPG fingerprint, or C(sha256:) of the sigstore public key).
          type: list
          elements: str
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

from dataclasses import replace

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError, describe_os_error
from ansible_collections.oci.images.plugins.module_utils._module_setup import side_options, start_module

SIDES = ("src_", "dest_")


def main() -> None:
    module = start_module(
        AnsibleModule,
        missing_required_lib,
        dict(
            src=dict(type="str"),
            dest=dict(type="str"),
            images=dict(type="list", elements="dict", options=dict(src=dict(type="str", required=True), dest=dict(type="str", required=True))),
            tags=dict(type="dict"),
            sync=dict(type="dict"),
            sync_file=dict(type="path"),
            catalog=dict(type="str"),
            repositories=dict(
                type="dict",
                options=dict(include=dict(type="list", elements="str"), exclude=dict(type="list", elements="str"), names=dict(type="list", elements="str")),
            ),
            scoped=dict(type="bool", default=False),
            append_suffix=dict(type="str"),
            inventory=dict(type="path"),
            multi_arch=dict(type="str", choices=["all", "system", "index_only"]),
            platforms=dict(type="list", elements="str"),
            format=dict(type="str", choices=["oci", "v2s2"]),
            compression=dict(type="str", choices=["gzip", "zstd", "zstd:chunked"]),
            compression_level=dict(type="int"),
            split_size=dict(type="raw"),
            preserve_digests=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            parallel=dict(type="int", default=6),
            parallel_images=dict(type="int", default=4),
            keep_going=dict(type="bool", default=False),
            blob_cache=dict(type="bool", default=False),
            blob_cache_path=dict(type="path"),
            referrers=dict(type="bool", default=False),
            slice=dict(type="dict", options=dict(index=dict(type="int", required=True), count=dict(type="int", required=True))),
            signature_policy=dict(type="raw"),
            registries_d=dict(type="path"),
            sign_by=dict(type="str"),
            sign_by_sigstore_private_key=dict(type="path"),
            sign_passphrase=dict(type="str", no_log=True),
            sign_identity=dict(type="str"),
            remove_signatures=dict(type="bool", default=False),
        ),
        sides=SIDES,
        daemon=True,
        mutually_exclusive=[
            ["images", "src"],
            ["images", "dest"],
            ["sync", "sync_file"],
            ["images", "sync"],
            ["images", "sync_file"],
            ["catalog", "src"],
            ["catalog", "images"],
            ["catalog", "sync"],
            ["catalog", "sync_file"],
        ],
        required_one_of=[["src", "images", "sync", "sync_file", "catalog"]],
        required_by={"repositories": "catalog"},
    )

    # Imported after the dependency check so a missing library gives a clear message.
    from ansible_collections.oci.images.plugins.module_utils._batch import BatchOptions, Selection, failure_message, resolve_batch, run_batch
    from ansible_collections.oci.images.plugins.module_utils._blob_reuse import default_cache_path
    from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions
    from ansible_collections.oci.images.plugins.module_utils._media import parse_platform
    from ansible_collections.oci.images.plugins.module_utils._mirror import read_sync_file
    from ansible_collections.oci.images.plugins.module_utils._registry._clients import close_clients
    from ansible_collections.oci.images.plugins.module_utils._trust import trust_from_options

    params = module.params
    if params["parallel"] < 1 or params["parallel_images"] < 1:
        module.fail_json(msg="parallel and parallel_images must be at least 1")
    if (params["src"] or params["sync"] or params["sync_file"] or params["catalog"]) and not params["dest"]:
        module.fail_json(msg="dest is required with src, sync, sync_file or catalog")
    if params["referrers"] and (params["format"] or params["platforms"] or params["multi_arch"] == "system" or params["compression"]):
        module.fail_json(msg="referrers name their subject by digest: they cannot stay attached with format, compression, platforms or multi_arch: system")
    if params["signature_policy"] is not None and not isinstance(params["signature_policy"], (str, dict)):
        module.fail_json(msg="signature_policy must be a path or the policy as a mapping")
    src_options = side_options(module, "src_")
    dest_options = side_options(module, "dest_")
    trust = None
    try:
        if params["split_size"] is not None:
            from ansible_collections.oci.images.plugins.module_utils._transports._volumes import parse_size

            dest_options = replace(dest_options, split_size=parse_size(params["split_size"]))
        # Policy, registries.d and keys are read (and passphrases checked) before anything is copied.
        trust = trust_from_options(
            params["signature_policy"],
            params["registries_d"],
            params["sign_by"],
            params["sign_by_sigstore_private_key"],
            params["sign_passphrase"],
            params["sign_identity"],
            params["remove_signatures"],
            runner=src_options.runner,
        )
        options = CopyOptions(
            multi_arch=params["multi_arch"],
            platforms=[parse_platform(p) for p in params["platforms"]] if params["platforms"] else None,
            format=params["format"],
            compression=params["compression"],
            compression_level=params["compression_level"],
            preserve_digests=params["preserve_digests"],
            force=params["force"],
            parallel=params["parallel"],
            retries=params["retries"],
        )
        selection = Selection(
            src=params["src"],
            dest=params["dest"],
            images=params["images"],
            tags=params["tags"],
            sync=params["sync"] if params["sync"] is not None else (read_sync_file(params["sync_file"]) if params["sync_file"] else None),
            scoped=params["scoped"],
            append_suffix=params["append_suffix"],
            slice=(params["slice"]["index"], params["slice"]["count"]) if params["slice"] else None,
            catalog=params["catalog"],
            repositories=params["repositories"],
        )
        batch = resolve_batch(selection, src_options, keep_going=params["keep_going"], parallel=params["parallel_images"])
        summary = run_batch(
            batch,
            dest_options,
            options,
            BatchOptions(
                parallel_images=params["parallel_images"],
                keep_going=params["keep_going"],
                referrers=params["referrers"],
                trust=trust,
                inventory=params["inventory"],
                blob_cache=(params["blob_cache_path"] or default_cache_path()) if params["blob_cache"] else None,
            ),
            check_mode=module.check_mode,
        )
        summary["signature_policy"] = trust.policy.source if trust.policy else None
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:  # a file the transport did not expect to fail: still a message, not a traceback
        module.fail_json(msg="%s: %s" % (params["src"] or params["sync_file"] or params["catalog"] or "images", describe_os_error(exc)))
    finally:
        if trust is not None:
            trust.close()
        close_clients()
    msg = failure_message(summary, batch.single)
    if msg:
        module.fail_json(msg=msg, **summary)
    module.exit_json(**summary)


if __name__ == "__main__":
    main()
