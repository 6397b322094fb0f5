# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy what refers to an image: OCI referrers (API or fallback tag) and cosign-style tags.

Runs after the image itself was copied (or found up to date), registry to registry, and only
when the destination keeps the source's digest: a referrer names its subject by digest, so it
stays attached only to the same digest. Referrers are copied by digest; a destination without
the referrers API (distribution 2.8) gets the fallback tag ``sha256-<hex>`` written or merged
the way the distribution spec tells clients to. One level only: referrers of referrers are
not followed.
"""

from __future__ import annotations

import json
from typing import Any

from . import _media
from ._convert import go_json
from ._errors import NotFound, OCIError, Unsupported
from ._options import ConnectionOptions
from ._reference import ImageReference
from ._registry._clients import registry_client

# cosign (sigstore) attaches by tag: signatures, attestations and SBOMs of sha256:HEX are sha256-HEX.<suffix>.
COSIGN_SUFFIXES = ("sig", "att", "sbom")


def fallback_tag(digest: str) -> str:
    """The referrers fallback tag of a digest (``sha256:HEX`` -> ``sha256-HEX``)."""
    return digest.replace(":", "-", 1)


def _subjects(src: ImageReference, src_options: ConnectionOptions, top_digest: str) -> list[str]:
    """The top digest, and for an index, each child it lists."""
    client = registry_client(src.registry, src_options)
    head = client.head_manifest(src.repository or "", top_digest)
    if head is not None and head.media_type and not _media.is_index(head.media_type):
        return [top_digest]  # a HEAD answers it: no manifest GET (a pull, on Docker Hub) for a single image
    raw, media_type, _digest = client.get_manifest(src.repository or "", top_digest)
    doc, media_type = _media.parse_manifest(raw, media_type, str(src.with_digest(top_digest)))
    subjects = [top_digest]
    if _media.is_index(media_type):
        subjects += [entry["digest"] for entry in doc.get("manifests") or [] if entry.get("digest") not in subjects]
    return subjects


def _merge_fallback(dest: ImageReference, dest_options: ConnectionOptions, subject: str, missing: list[dict], check_mode: bool) -> bool:
    """Add descriptors to the destination's fallback tag index; True when it was (or would be) written."""
    client = registry_client(dest.registry, dest_options)
    repository = dest.repository or ""
    tag = fallback_tag(subject)
    try:
        raw, _media_type, _digest = client.get_manifest(repository, tag)
        index = json.loads(raw.decode("utf-8"))
    except NotFound:
        index = {"schemaVersion": 2, "mediaType": _media.OCI_INDEX, "manifests": []}
    listed = {d.get("digest") for d in index.get("manifests") or [] if isinstance(d, dict)}
    added = [d for d in missing if d["digest"] not in listed]
    if not added:
        return False
    if not check_mode:
        index["manifests"] = list(index.get("manifests") or []) + added
        client.put_manifest(repository, tag, go_json(index), _media.OCI_INDEX)
    return True


def _descriptor(entry: dict) -> dict:
    """What a referrers index lists about one referrer (the spec's fields, nothing else)."""
    keep = ("mediaType", "digest", "size", "artifactType", "annotations")
    return {k: entry[k] for k in keep if k in entry}


def copy_referrers(
    src: ImageReference,
    dest: ImageReference,
    image_result: dict,
    src_options: ConnectionOptions,
    dest_options: ConnectionOptions,
    copy_one,
    check_mode: bool = False,
    suffixes: tuple[str, ...] = COSIGN_SUFFIXES,
) -> dict[str, Any]:
    """Copy the referrers and cosign tags of one copied image (and of each child of an index).

    ``copy_one(src_ref, dest_ref)`` copies one manifest and returns its result entry (the engine's
    ``copy_image`` with the task's options). ``suffixes`` are the cosign tag kinds copied as they are.
    Returns ``{"referrers": count, "changed": bool}``.
    """
    if not (src.is_registry and dest.is_registry):
        raise Unsupported("%s -> %s: referrers are copied between registries only (docker:// on both sides)" % (src, dest), str(src))
    top = image_result.get("src_digest")
    if not top:
        return {"referrers": 0, "changed": False}
    if image_result.get("dest_digest_after") != top:
        raise OCIError(
            "%s -> %s: the destination digest %s differs from the source's %s, so referrers (which name their subject by digest) "
            "cannot stay attached; drop format, platforms or multi_arch: system, or set referrers: false"
            % (src, dest, image_result.get("dest_digest_after"), top),
            str(src),
        )
    src_client = registry_client(src.registry, src_options)
    dest_client = registry_client(dest.registry, dest_options)
    count = 0
    changed = False
    for subject in _subjects(src, src_options, top):
        wanted = [_descriptor(d) for d in src_client.get_referrers(src.repository or "", subject)]
        wanted = [d for d in wanted if d.get("digest")]
        if wanted:
            present = {d.get("digest") for d in dest_client.get_referrers(dest.repository or "", subject)}
            missing = [d for d in wanted if d["digest"] not in present]
            for entry in missing:
                # By digest: the subject field inside ties it to the image, and the digest is the name.
                changed |= bool(copy_one(src.with_digest(entry["digest"]), dest.with_digest(entry["digest"])).get("changed"))
            if missing and not check_mode:
                # A registry with the referrers API lists what was just pushed; one without needs the fallback tag.
                present = {d.get("digest") for d in dest_client.get_referrers(dest.repository or "", subject)}
                missing = [d for d in missing if d["digest"] not in present]
            if missing:
                changed |= _merge_fallback(dest, dest_options, subject, missing, check_mode)
            count += len(wanted)
        for suffix in suffixes:
            tag = "%s.%s" % (fallback_tag(subject), suffix)
            if src_client.head_manifest(src.repository or "", tag) is None:
                continue
            changed |= bool(copy_one(src.with_tag(tag), dest.with_tag(tag)).get("changed"))
            count += 1
    return {"referrers": count, "changed": changed}
