# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rewrite manifests: OCI <-> Docker schema 2 conversion, index subsets, and Go-compatible JSON.

Manifests are re-serialized only when their content changes; then they are written the way
containers/image (skopeo) writes them — compact JSON, fields in the Go structs' order, and
``<``, ``>``, ``&`` escaped — so the same conversion gives the same digest as ``skopeo copy --format``.
"""

from __future__ import annotations

import json
import re

from . import _media
from ._errors import OCIError

# OCI layer type -> Docker schema 2 layer type.
_OCI_TO_DOCKER_LAYER = {
    _media.OCI_LAYER_GZIP: _media.DOCKER_LAYER_GZIP,
    _media.OCI_LAYER_TAR: _media.DOCKER_LAYER_TAR,
    _media.OCI_LAYER_NONDISTRIBUTABLE_GZIP: _media.DOCKER_LAYER_FOREIGN_GZIP,
}
_DOCKER_TO_OCI_LAYER = {
    _media.DOCKER_LAYER_GZIP: _media.OCI_LAYER_GZIP,
    _media.DOCKER_LAYER_TAR: _media.OCI_LAYER_TAR,
    _media.DOCKER_LAYER_FOREIGN_GZIP: _media.OCI_LAYER_NONDISTRIBUTABLE_GZIP,
}
# (layer kind, compression) -> media type, for layers compressed on the way.
_COMPRESSED_LAYER = {
    ("oci", "gzip"): _media.OCI_LAYER_GZIP,
    ("oci", "zstd"): _media.OCI_LAYER_ZSTD,
    ("oci-nondistributable", "gzip"): _media.OCI_LAYER_NONDISTRIBUTABLE_GZIP,
    ("oci-nondistributable", "zstd"): _media.OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    ("docker", "gzip"): _media.DOCKER_LAYER_GZIP,
    ("docker-foreign", "gzip"): _media.DOCKER_LAYER_FOREIGN_GZIP,
}
_LAYER_KIND = {
    _media.OCI_LAYER_TAR: "oci",
    _media.OCI_LAYER_GZIP: "oci",
    _media.OCI_LAYER_ZSTD: "oci",
    _media.OCI_LAYER_NONDISTRIBUTABLE_TAR: "oci-nondistributable",
    _media.OCI_LAYER_NONDISTRIBUTABLE_GZIP: "oci-nondistributable",
    _media.OCI_LAYER_NONDISTRIBUTABLE_ZSTD: "oci-nondistributable",
    _media.DOCKER_LAYER_TAR: "docker",
    _media.DOCKER_LAYER_GZIP: "docker",
    _media.DOCKER_LAYER_FOREIGN_GZIP: "docker-foreign",
}
FORMAT_MANIFEST = {"oci": _media.OCI_MANIFEST, "v2s2": _media.DOCKER_MANIFEST}
FORMAT_INDEX = {"oci": _media.OCI_INDEX, "v2s2": _media.DOCKER_LIST}


def go_json(doc) -> bytes:
    """Serialize like Go's encoding/json Marshal: compact, insertion order kept, HTML characters escaped."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def _oci_descriptor(d: dict, media_type: str | None = None, with_platform: bool = False) -> dict:
    out: dict = {"mediaType": media_type or d.get("mediaType"), "digest": d["digest"], "size": d["size"]}
    for key in ("urls", "annotations", "data"):
        if d.get(key):
            out[key] = d[key]
    if with_platform and d.get("platform"):
        out["platform"] = _oci_platform(d["platform"])
    if d.get("artifactType"):
        out["artifactType"] = d["artifactType"]
    return out


def _docker_descriptor(d: dict, media_type: str | None = None, with_platform: bool = False) -> dict:
    out: dict = {"mediaType": media_type or d.get("mediaType"), "size": d["size"], "digest": d["digest"]}
    if d.get("urls"):
        out["urls"] = d["urls"]
    if with_platform:
        out["platform"] = _docker_platform(d.get("platform") or {})
    return out


def _oci_platform(p: dict) -> dict:
    out = {"architecture": p.get("architecture", ""), "os": p.get("os", "")}
    for key in ("os.version", "os.features", "variant"):
        if p.get(key):
            out[key] = p[key]
    return out


def _docker_platform(p: dict) -> dict:
    out = {"architecture": p.get("architecture", ""), "os": p.get("os", "")}
    for key in ("os.version", "os.features", "variant", "features"):
        if p.get(key):
            out[key] = p[key]
    return out


def layer_type_for(media_type: str, compression: str, context: str) -> str:
    """The media type of a layer of type ``media_type`` once compressed with ``compression`` (zstd:chunked is
    ``tar+zstd`` with annotations); the same kind of layer (regular, non-distributable) in the same format."""
    kind = _LAYER_KIND.get(media_type)
    target = _COMPRESSED_LAYER.get((kind or "", "zstd" if compression == "zstd:chunked" else compression))
    if target is None:
        raise OCIError("%s: a %s layer cannot be compressed with %s in its manifest format" % (context, media_type, compression), context)
    return target


def convert_manifest(doc: dict, media_type: str, target: str, context: str) -> tuple[dict, str]:
    """An image manifest in ``target`` format ("oci" or "v2s2"); the config blob is unchanged, only types change."""
    want = FORMAT_MANIFEST[target]
    if media_type == want:
        return doc, media_type
    if media_type not in _media.IMAGE_MEDIA_TYPES:
        raise OCIError("%s: cannot convert a %s manifest to %s" % (context, media_type, target), context)
    config = doc.get("config") or {}
    if config.get("mediaType") not in (_media.OCI_CONFIG, _media.DOCKER_CONFIG):
        raise OCIError(
            "%s: an artifact with config type %s cannot be converted to %s: copy it without format" % (context, config.get("mediaType"), target),
            context,
        )
    if target == "v2s2":
        layers = []
        for layer in doc.get("layers") or []:
            new_type = _OCI_TO_DOCKER_LAYER.get(layer.get("mediaType"))
            if new_type is None:
                raise OCIError(
                    "%s: layer %s of type %s has no Docker schema 2 equivalent: use format oci" % (context, layer["digest"], layer.get("mediaType")),
                    context,
                )
            layers.append(_docker_descriptor(layer, new_type))
        out = {"schemaVersion": 2, "mediaType": want, "config": _docker_descriptor(config, _media.DOCKER_CONFIG), "layers": layers}
        return out, want
    layers = [_oci_descriptor(layer, _DOCKER_TO_OCI_LAYER.get(layer.get("mediaType"), layer.get("mediaType"))) for layer in doc.get("layers") or []]
    out = {"schemaVersion": 2, "mediaType": want, "config": _oci_descriptor(config, _media.OCI_CONFIG), "layers": layers}
    return out, want


# The OCI image config as containers/image marshals it (image-spec's Go structs): field order,
# which fields exist, and which are left out when empty.
_OCI_CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal", "ArgsEscaped")
_OCI_CONFIG_MAPS = ("ExposedPorts", "Volumes", "Labels")
_HISTORY_FIELDS = ("created", "created_by", "author", "comment", "empty_layer")
_RFC3339_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _go_time(value):
    """A time as Go's time.Time marshals it (RFC 3339, trailing zeros of the fraction dropped); others unchanged."""
    if not isinstance(value, str):
        return value
    match = _RFC3339_RE.match(value)
    if not match:
        return value
    whole, fraction, zone = match.groups()
    fraction = (fraction or "").rstrip("0")
    return whole + ("" if fraction in ("", ".") else fraction) + zone


def oci_config_from_docker(raw: bytes, context: str) -> bytes:
    """The OCI image config skopeo writes when it converts a Docker image to OCI (Docker-only fields dropped)."""
    docker = _media.parse_config(raw, context)
    out: dict = {}
    if docker.get("created"):
        out["created"] = _go_time(docker["created"])
    if docker.get("author"):
        out["author"] = docker["author"]
    out["architecture"] = docker.get("architecture") or ""
    if docker.get("variant"):
        out["variant"] = docker["variant"]
    out["os"] = docker.get("os") or ""
    for key in ("os.version", "os.features"):
        if docker.get(key):
            out[key] = docker[key]
    source = docker.get("config") or {}
    config: dict = {}
    for key in _OCI_CONFIG_FIELDS:
        value = source.get(key)
        if value in (None, "", [], {}, False):
            continue
        config[key] = {k: value[k] for k in sorted(value)} if key in _OCI_CONFIG_MAPS and isinstance(value, dict) else value
        if key in ("ExposedPorts", "Volumes"):
            config[key] = {k: {} for k in config[key]}
    out["config"] = config
    rootfs = docker.get("rootfs") or {}
    out["rootfs"] = {"type": rootfs.get("type") or "", "diff_ids": rootfs.get("diff_ids")}
    history = []
    for entry in docker.get("history") or []:
        item = {}
        for key in _HISTORY_FIELDS:
            value = entry.get(key)
            if value in (None, "", False):
                continue
            item[key] = _go_time(value) if key == "created" else value
        history.append(item)
    if history:
        out["history"] = history
    return go_json(out)


def rewrite_index(doc: dict, media_type: str, entries: list[dict], target: str | None) -> tuple[dict, str]:
    """An index of the same kind (or ``target`` format) holding exactly ``entries``."""
    want = FORMAT_INDEX[target] if target else media_type
    if want == _media.DOCKER_LIST:
        return {"schemaVersion": 2, "mediaType": want, "manifests": [_docker_descriptor(e, with_platform=True) for e in entries]}, want
    out: dict = {"schemaVersion": 2, "mediaType": want}
    if doc.get("artifactType") and want == media_type:
        out["artifactType"] = doc["artifactType"]
    out["manifests"] = [_oci_descriptor(e, with_platform=True) for e in entries]
    if doc.get("annotations") and want == media_type:
        out["annotations"] = doc["annotations"]
    return out, want


def uncompressed_manifest(doc: dict, config: dict, context: str) -> dict:
    """A Docker schema 2 manifest whose layers are the uncompressed tars (digests = diff IDs, sizes unknown: -1)."""
    diff_ids = ((config.get("rootfs") or {}).get("diff_ids")) or []
    layers = doc.get("layers") or []
    if len(diff_ids) != len(layers):
        raise OCIError("%s: the config lists %d diff IDs for %d layers" % (context, len(diff_ids), len(layers)), context)
    return {
        "schemaVersion": 2,
        "mediaType": _media.DOCKER_MANIFEST,
        "config": _docker_descriptor(doc["config"], _media.DOCKER_CONFIG),
        "layers": [{"mediaType": _media.DOCKER_LAYER_TAR, "size": -1, "digest": d} for d in diff_ids],
    }
