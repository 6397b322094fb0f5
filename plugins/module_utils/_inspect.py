# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Describe an image from any ImageSource, with the facts ``skopeo inspect`` reports."""

from __future__ import annotations

import json

from . import _media
from ._errors import InvalidManifest, NotFound, OCIError
from ._reference import ImageReference
from ._transports._base import ImageSource

# Config media types that carry an image configuration (architecture, os, Env, Labels, ...).
IMAGE_CONFIG_TYPES = (_media.OCI_CONFIG, _media.DOCKER_CONFIG)
ANNOTATION_CREATED = "org.opencontainers.image.created"


def _layer_view(descriptor: dict) -> dict:
    return {
        "digest": descriptor.get("digest"),
        "size": descriptor.get("size"),
        "media_type": descriptor.get("mediaType"),
        "annotations": descriptor.get("annotations"),
        "compression": _media.layer_compression(descriptor),
    }


def _platform_entries(index: dict) -> list[dict]:
    entries = []
    for descriptor in index.get("manifests") or []:
        platform = descriptor.get("platform") or {}
        entries.append(
            {
                "os": platform.get("os"),
                "architecture": platform.get("architecture"),
                "variant": platform.get("variant"),
                "os_version": platform.get("os.version"),
                "digest": descriptor.get("digest"),
                "size": descriptor.get("size"),
                "media_type": descriptor.get("mediaType"),
                "annotations": descriptor.get("annotations"),
            }
        )
    return entries


def _image_facts(config: dict) -> dict:
    container_config = config.get("config") or {}
    return {
        "created": config.get("created"),
        "architecture": config.get("architecture"),
        "os": config.get("os"),
        "variant": config.get("variant"),
        "labels": container_config.get("Labels"),
        "env": container_config.get("Env"),
        "docker_version": config.get("docker_version"),
        "author": config.get("author"),
    }


def _describe_v2s1(doc: dict) -> dict:
    view = _media.v2s1_image(doc)
    config = view.get("config") or {}
    facts = _image_facts(config)
    layers = [{"digest": layer.get("digest"), "size": layer.get("size"), "media_type": None, "annotations": None} for layer in view.get("layers") or []]
    facts.update({"layers": layers, "config_digest": None, "size": None, "config": config})
    return facts


def names_repository(source: ImageSource) -> bool:
    """True when the reference names a repository or layout as a whole (no tag, digest or ref) whose tags can be listed."""
    reference = source.reference
    if not source.can_list_tags:
        return False
    if reference.is_registry:
        return not reference.has_explicit_tag_or_digest
    return reference.ref_name is None


def repository_reference(reference: ImageReference) -> str:
    """How results name a repository or layout: ``docker://host/repo`` (not ``:latest``), ``oci:/path``."""
    if reference.is_registry:
        return "docker://%s" % reference.name
    return str(reference)


def describe_repository(source: ImageSource) -> dict:
    """The ``image`` dict for a repository or layout with list_tags: its name and tags, no image. NotFound when it is not there."""
    return {"name": source.reference.name, "reference": repository_reference(source.reference), "tags": source.list_tags()}


def describe_image(source: ImageSource, platform: dict | None = None, list_tags: bool = False, raw: bool = False) -> dict:
    """The ``image`` dict image_info returns. Raise NotFound only when the reference names nothing.

    Anything missing below the top-level manifest (a platform, a child manifest, the config)
    is an error about the image, not "does not exist", so it is raised as a plain OCIError.
    """
    top_raw, top_type = source.get_manifest()
    try:
        return _describe(source, top_raw, top_type, platform, list_tags, raw)
    except NotFound as exc:
        raise OCIError(exc.msg, exc.reference) from None


def _describe(source: ImageSource, top_raw: bytes, top_type: str, platform: dict | None, list_tags: bool, raw: bool) -> dict:
    context = str(source.reference)
    top_doc, top_type = _media.parse_manifest(top_raw, top_type, context)
    top_digest = source.manifest_digest(top_raw)
    reference = source.reference
    result: dict = {
        "name": reference.name,
        "reference": context,
        "digest": top_digest,
        "media_type": top_type,
        "platforms": None,
        "tags": None,
    }
    manifest_doc, manifest_type, manifest_digest = top_doc, top_type, top_digest
    if _media.is_index(top_type):
        wanted = platform or _media.host_platform()
        result["platforms"] = _platform_entries(top_doc)
        chosen = _media.select_manifest(top_doc, wanted, context)
        child_raw, child_type = source.get_manifest(chosen["digest"])
        manifest_doc, manifest_type = _media.parse_manifest(child_raw, child_type or chosen.get("mediaType"), context)
        manifest_digest = chosen["digest"]
        if _media.is_index(manifest_type):
            raise InvalidManifest("%s: nested index %s is not supported for image_info" % (context, manifest_digest), context)
    result["manifest_digest"] = manifest_digest
    result["manifest_media_type"] = manifest_type
    result["artifact_type"] = manifest_doc.get("artifactType")
    result["annotations"] = manifest_doc.get("annotations")

    config = None
    if manifest_type in (_media.DOCKER_V2S1, _media.DOCKER_V2S1_SIGNED):
        facts = _describe_v2s1(manifest_doc)
        config = facts.pop("config")
        result.update(facts)
    else:
        config_descriptor = manifest_doc.get("config") or {}
        config_type = config_descriptor.get("mediaType")
        layers = [_layer_view(d) for d in manifest_doc.get("layers") or []]
        result["layers"] = layers
        result["config_digest"] = config_descriptor.get("digest")
        result["config_media_type"] = config_type
        result["size"] = (config_descriptor.get("size") or 0) + sum(layer.get("size") or 0 for layer in layers)
        facts = _image_facts({})
        if config_type in IMAGE_CONFIG_TYPES:
            config = _media.parse_config(source.get_blob_bytes(config_descriptor["digest"], config_descriptor.get("size")), context)
            facts = _image_facts(config)
        else:
            # An artifact (Helm chart, SBOM, signature): describe it; its config is not an image config.
            if raw and config_descriptor.get("digest") and (config_descriptor.get("size") or 0) <= 64 * 1024:
                try:
                    config = json.loads(source.get_blob_bytes(config_descriptor["digest"], config_descriptor.get("size")))
                except (ValueError, NotFound):
                    config = None
            facts["created"] = (manifest_doc.get("annotations") or {}).get(ANNOTATION_CREATED)
        result.update(facts)
    if list_tags:
        result["tags"] = source.list_tags() if source.can_list_tags else None
    if raw:
        result["manifest"] = manifest_doc
        result["config"] = config
        if manifest_doc is not top_doc:
            result["index"] = top_doc
    return result
