# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Media types; parsing and validation of manifests, indexes and configs; platform matching.

Every document read from anywhere goes through ``parse_manifest`` or ``parse_config``:
size-limited, JSON-decoded, its real media type decided, and checked against a schema of
our own so the rest of the code can trust the shape it indexes into.
"""

from __future__ import annotations

import json
import platform as _host
import re

from ._errors import InvalidManifest, InvalidReference, NotFound

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
# zstd:chunked annotations on a layer descriptor: (TOC digest, TOC position), as containers/storage 1.43 (skopeo 1.9,
# podman 4.3) writes them, then as later versions do.
ZSTD_CHUNKED_MANIFEST_CHECKSUM = "io.containers.zstd-chunked.manifest-checksum"
ZSTD_CHUNKED_MANIFEST_POSITION = "io.containers.zstd-chunked.manifest-position"
ZSTD_CHUNKED_ANNOTATIONS = (
    (ZSTD_CHUNKED_MANIFEST_CHECKSUM, ZSTD_CHUNKED_MANIFEST_POSITION),
    ("io.github.containers.zstd-chunked.manifest-checksum", "io.github.containers.zstd-chunked.manifest-position"),
)
ZSTD_CHUNKED_ANNOTATION_KEYS = (
    *(key for pair in ZSTD_CHUNKED_ANNOTATIONS for key in pair),
    "io.github.containers.zstd-chunked.tarsplit-position",
    "io.github.containers.zstd-chunked.tarsplit-checksum",
)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_V2S1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_V2S1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# Configs of container images; any other config type makes a manifest an artifact.
IMAGE_CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
V2S1_MEDIA_TYPES = (DOCKER_V2S1_SIGNED, DOCKER_V2S1)
# Preference order for Accept headers: indexes and current formats first, schema 1 last.
MANIFEST_MEDIA_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_V2S1_SIGNED, DOCKER_V2S1)
LAYER_MEDIA_TYPES = (
    OCI_LAYER_TAR,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_LAYER_NONDISTRIBUTABLE_TAR,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP,
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_FOREIGN_GZIP,
)

GZIP_LAYER_TYPES = (OCI_LAYER_GZIP, OCI_LAYER_NONDISTRIBUTABLE_GZIP, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN_GZIP)
ZSTD_LAYER_TYPES = (OCI_LAYER_ZSTD, OCI_LAYER_NONDISTRIBUTABLE_ZSTD)
UNCOMPRESSED_LAYER_TYPES = (OCI_LAYER_TAR, OCI_LAYER_NONDISTRIBUTABLE_TAR, DOCKER_LAYER_TAR)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024

# Content types that say nothing about which manifest format a body is (registries send them for schema 1).
_UNINFORMATIVE_TYPES = ("", "application/json", "text/plain", "application/octet-stream")

_DIGEST_PATTERN = r"^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$"
_MEDIA_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_PLATFORM_SCHEMA = {
    "type": "object",
    "required": ["architecture", "os"],
    "properties": {
        "architecture": {"type": "string"},
        "os": {"type": "string"},
        "variant": {"type": "string"},
        "os.version": {"type": "string"},
        "os.features": {"type": "array", "items": {"type": "string"}},
        "features": {"type": "array", "items": {"type": "string"}},
    },
}
_DESCRIPTOR_SCHEMA = {
    "type": "object",
    "required": ["mediaType", "digest", "size"],
    "properties": {
        "mediaType": {"type": "string", "pattern": _MEDIA_TYPE_PATTERN},
        "digest": {"type": "string", "pattern": _DIGEST_PATTERN},
        "size": {"type": "integer", "minimum": 0},
        "urls": {"type": "array", "items": {"type": "string"}},
        "annotations": _STRING_MAP,
        "artifactType": {"type": "string", "pattern": _MEDIA_TYPE_PATTERN},
        "platform": _PLATFORM_SCHEMA,
    },
}


def _image_schema(media_type: str) -> dict:
    return {
        "type": "object",
        "required": ["schemaVersion", "config", "layers"],
        "properties": {
            "schemaVersion": {"const": 2},
            "mediaType": {"const": media_type},
            "artifactType": {"type": "string", "pattern": _MEDIA_TYPE_PATTERN},
            "config": _DESCRIPTOR_SCHEMA,
            "layers": {"type": "array", "items": _DESCRIPTOR_SCHEMA},
            "subject": _DESCRIPTOR_SCHEMA,
            "annotations": _STRING_MAP,
        },
    }


def _index_schema(media_type: str) -> dict:
    return {
        "type": "object",
        "required": ["schemaVersion", "manifests"],
        "properties": {
            "schemaVersion": {"const": 2},
            "mediaType": {"const": media_type},
            "artifactType": {"type": "string", "pattern": _MEDIA_TYPE_PATTERN},
            "manifests": {"type": "array", "items": _DESCRIPTOR_SCHEMA},
            "subject": _DESCRIPTOR_SCHEMA,
            "annotations": _STRING_MAP,
        },
    }


_V2S1_SCHEMA = {
    "type": "object",
    "required": ["schemaVersion", "fsLayers", "history"],
    "properties": {
        "schemaVersion": {"const": 1},
        "name": {"type": "string"},
        "tag": {"type": "string"},
        "architecture": {"type": "string"},
        "fsLayers": {
            "type": "array",
            "items": {"type": "object", "required": ["blobSum"], "properties": {"blobSum": {"type": "string", "pattern": _DIGEST_PATTERN}}},
        },
        "history": {
            "type": "array",
            "items": {"type": "object", "required": ["v1Compatibility"], "properties": {"v1Compatibility": {"type": "string"}}},
        },
        "signatures": {"type": "array"},
    },
}

_SCHEMAS = {
    OCI_MANIFEST: _image_schema(OCI_MANIFEST),
    OCI_INDEX: _index_schema(OCI_INDEX),
    # Docker's spec requires mediaType, but like containers/image we read documents that omit it.
    DOCKER_MANIFEST: _image_schema(DOCKER_MANIFEST),
    DOCKER_LIST: _index_schema(DOCKER_LIST),
    DOCKER_V2S1: _V2S1_SCHEMA,
    DOCKER_V2S1_SIGNED: _V2S1_SCHEMA,
}


def is_index(media_type: str) -> bool:
    """True for an OCI index or a Docker manifest list."""
    return media_type in INDEX_MEDIA_TYPES


def layer_compression(descriptor: dict) -> str | None:
    """How a layer descriptor says its blob is compressed: ``gzip``, ``zstd``, ``zstd:chunked`` (zstd with a TOC
    named by annotations), ``none`` (a plain tar), or None for blobs that are not image layers."""
    media_type = descriptor.get("mediaType")
    if media_type in GZIP_LAYER_TYPES:
        return "gzip"
    if media_type in ZSTD_LAYER_TYPES:
        annotations = descriptor.get("annotations") or {}
        chunked = any(checksum in annotations and position in annotations for checksum, position in ZSTD_CHUNKED_ANNOTATIONS)
        return "zstd:chunked" if chunked else "zstd"
    if media_type in UNCOMPRESSED_LAYER_TYPES:
        return "none"
    return None


def _bare_media_type(media_type: str | None) -> str:
    # "application/json; charset=utf-8" -> "application/json"
    return (media_type or "").split(";", 1)[0].strip().lower()


def decode_object(raw: bytes, limit: int, what: str, context: str) -> dict:
    """A JSON object from ``raw`` (InvalidManifest for anything else, or past ``limit`` bytes)."""
    if len(raw) > limit:
        raise InvalidManifest("%s: %s is %d bytes, over the %d-byte limit" % (context, what, len(raw), limit), context)
    try:
        doc = json.loads(raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidManifest("%s: %s is not valid JSON: %s" % (context, what, e), context) from None
    if not isinstance(doc, dict):
        raise InvalidManifest("%s: %s is JSON but not an object (got %s)" % (context, what, type(doc).__name__), context)
    return doc


def _guess_media_type(doc: dict) -> str | None:
    """The format of a document that does not say (like containers/image's GuessMIMEType)."""
    version = doc.get("schemaVersion")
    if version == 1:
        return DOCKER_V2S1_SIGNED if "signatures" in doc else DOCKER_V2S1
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc or "layers" in doc:
        config = doc.get("config")
        if isinstance(config, dict) and config.get("mediaType") == DOCKER_CONFIG:
            return DOCKER_MANIFEST
        return OCI_MANIFEST
    return None


def sniff_media_type(raw: bytes, declared: str | None) -> str:
    """The media type of a manifest a server sent: its declared type when that is a manifest type, else what
    its ``mediaType`` field says or its shape suggests; else the declared type as it was."""
    declared = _bare_media_type(declared)
    if declared in MANIFEST_MEDIA_TYPES:
        return declared
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return declared
    if not isinstance(doc, dict):
        return declared
    inner = doc.get("mediaType")
    if isinstance(inner, str):
        return inner
    return _guess_media_type(doc) or declared


def _same_format(a: str, b: str) -> bool:
    return a == b or (a in V2S1_MEDIA_TYPES and b in V2S1_MEDIA_TYPES)


def parse_manifest(raw: bytes, media_type: str | None, context: str) -> tuple[dict, str]:
    """Decode and validate a manifest or index; return (document, its real media type).

    ``media_type`` is what the transport declared (None or a generic JSON type when unknown).
    """
    doc = decode_object(raw, MAX_MANIFEST_BYTES, "manifest", context)
    declared = _bare_media_type(media_type)
    if declared in _UNINFORMATIVE_TYPES:
        declared = ""
    inner = doc.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise InvalidManifest("%s: manifest mediaType must be a string, got %r" % (context, inner), context)
    if declared and inner and not _same_format(declared, inner):
        raise InvalidManifest(
            "%s: manifest was served as %s but its mediaType says %s; refusing a document that contradicts its declared type" % (context, declared, inner),
            context,
        )
    actual = declared or inner or _guess_media_type(doc)
    if actual not in _SCHEMAS:
        raise InvalidManifest(
            "%s: unsupported manifest media type %r; supported: %s" % (context, actual, ", ".join(MANIFEST_MEDIA_TYPES)),
            context,
        )
    _validate(doc, _SCHEMAS[actual], actual, context)
    if actual in V2S1_MEDIA_TYPES and len(doc["fsLayers"]) != len(doc["history"]):
        raise InvalidManifest("%s: schema 1 manifest has %d fsLayers but %d history entries" % (context, len(doc["fsLayers"]), len(doc["history"])), context)
    return doc, actual


def _validate(doc: dict, schema: dict, media_type: str, context: str) -> None:
    errors: list[tuple[list, str]] = []
    _check(doc, schema, [], errors)
    if errors:
        path, message = min(errors, key=lambda e: [(0, p) if isinstance(p, int) else (1, p) for p in e[0]])
        where = "/".join(str(p) for p in path) or "(top level)"
        raise InvalidManifest("%s: invalid %s at %s: %s" % (context, media_type, where, message), context)


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, float) and v.is_integer())),
}


def _check(value, schema: dict, path: list, errors: list) -> None:
    """The JSON Schema subset the manifest schemas above use (type, required, properties, additionalProperties,
    items, pattern, minimum, const), with jsonschema's messages; importing jsonschema cost more than a module's work."""
    for keyword, rule in schema.items():
        if keyword == "type" and not _TYPES[rule](value):
            errors.append((path, "%r is not of type %r" % (value, rule)))
            return  # the other keywords of a wrong type say nothing more
        if keyword == "const" and (value != rule or isinstance(value, bool) != isinstance(rule, bool)):
            errors.append((path, "%r was expected" % (rule,)))
        elif keyword == "pattern" and isinstance(value, str) and not re.search(rule, value):
            errors.append((path, "%r does not match %r" % (value, rule)))
        elif keyword == "minimum" and isinstance(value, (int, float)) and not isinstance(value, bool) and value < rule:
            errors.append((path, "%r is less than the minimum of %r" % (value, rule)))
        elif keyword == "required" and isinstance(value, dict):
            errors.extend((path, "%r is a required property" % name) for name in rule if name not in value)
        elif keyword == "properties" and isinstance(value, dict):
            for name, sub in rule.items():
                if name in value:
                    _check(value[name], sub, [*path, name], errors)
        elif keyword == "additionalProperties" and isinstance(value, dict):
            known = schema.get("properties") or {}
            for name, item in value.items():
                if name not in known:
                    _check(item, rule, [*path, name], errors)
        elif keyword == "items" and isinstance(value, list):
            for index, item in enumerate(value):
                _check(item, rule, [*path, index], errors)


def parse_config(raw: bytes, context: str) -> dict:
    """Decode an image config (a JSON object of at most 4 MiB)."""
    return decode_object(raw, MAX_CONFIG_BYTES, "image config", context)


# --- platforms -------------------------------------------------------------------------------

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
}


def _normalize(os_name: str, arch: str, variant: str) -> dict:
    os_name = os_name.lower()
    arch = arch.lower()
    variant = variant.lower()
    if arch in _ARCH_ALIASES:
        arch, implied = _ARCH_ALIASES[arch]
        variant = variant or implied
    if variant and variant[0].isdigit():
        variant = "v" + variant  # "8" -> "v8", as Docker writes it
    platform = {"os": os_name, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return platform


def parse_platform(text: str) -> dict:
    """``os/arch[/variant]`` -> ``{"os", "architecture"[, "variant"]}`` (aliases like x86_64 normalized)."""
    parts = (text or "").split("/")
    if not 2 <= len(parts) <= 3 or not all(parts) or any(p != p.strip() for p in parts):
        raise InvalidReference("invalid platform %r: use os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8" % text, text)
    return _normalize(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def host_platform() -> dict:
    """The platform of this machine as images name it (linux + normalized architecture and variant)."""
    machine = _host.machine().lower()
    if machine in ("x86_64", "amd64"):
        arch, variant = "amd64", ""
    elif machine in ("aarch64", "arm64", "armv8l", "armv8b"):
        arch, variant = "arm64", "v8"
    elif machine.startswith("armv") and machine[4:5].isdigit():
        arch, variant = "arm", "v" + machine[4]
    elif machine in ("i386", "i486", "i586", "i686"):
        arch, variant = "386", ""
    else:
        arch, variant = machine, ""
    return _normalize("linux", arch, variant)


def platform_string(platform: dict) -> str:
    """``{"os": "linux", "architecture": "arm64", "variant": "v8"}`` -> ``linux/arm64/v8``."""
    parts = [platform.get("os") or "unknown", platform.get("architecture") or "unknown"]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)


def _variant_preference(arch: str, variant: str) -> list[str]:
    """Variants that run on ``arch``/``variant``, best first; "" (no variant given) is always the last resort."""
    if arch == "arm64":
        order = [variant or "v8"] + (["v8"] if variant not in ("", "v8") else [])
    elif arch == "arm" and variant[1:].isdigit():
        order = ["v%d" % n for n in range(int(variant[1:]), 4, -1)]
    else:
        order = [variant] if variant else []
    return [*order, ""]


def select_manifest(index: dict, platform: dict, context: str) -> dict:
    """The descriptor in ``index`` for ``platform`` (exact variant first, then compatible ones); NotFound lists what exists."""
    want = _normalize(platform.get("os", ""), platform.get("architecture", ""), platform.get("variant", ""))
    entries = []
    for descriptor in index.get("manifests") or []:
        p = descriptor.get("platform")
        if not isinstance(p, dict):
            continue
        entries.append((_normalize(p.get("os", ""), p.get("architecture", ""), p.get("variant", "")), descriptor))
    candidates = [(p, d) for p, d in entries if p["os"] == want["os"] and p["architecture"] == want["architecture"]]
    for variant in _variant_preference(want["architecture"], want.get("variant", "")):
        for p, descriptor in candidates:
            if p.get("variant", "") == variant:
                return descriptor
    offered = sorted({platform_string(p) for p, _unused in entries})
    raise NotFound(
        "%s: no image for platform %s in the index; it offers: %s" % (context, platform_string(want), ", ".join(offered) or "no platforms"),
        context,
    )


# --- schema 1 -------------------------------------------------------------------------------


def v2s1_image(doc: dict) -> dict:
    """``{"config": <config-like view>, "layers": [...]}`` for a schema 1 manifest, layers base first.

    The view holds architecture, os, created and config.Labels/Env from the newest history entry.
    Schema 1 does not record layer sizes, so each layer's ``size`` is None; ``empty`` marks throwaway layers.
    """
    history = []
    for entry in doc.get("history") or []:
        try:
            item = json.loads(entry["v1Compatibility"])
        except (ValueError, KeyError, TypeError):
            item = {}
        history.append(item if isinstance(item, dict) else {})
    top = history[0] if history else {}
    container_config = top.get("config") if isinstance(top.get("config"), dict) else {}
    layers = []
    fs_layers = doc.get("fsLayers") or []
    # fsLayers and history run newest first; images list layers base first.
    for i in reversed(range(len(fs_layers))):
        empty = bool(history[i].get("throwaway")) if i < len(history) else False
        layers.append({"digest": fs_layers[i]["blobSum"], "size": None, "empty": empty})
    config = {
        "architecture": top.get("architecture") or doc.get("architecture"),
        "os": top.get("os") or "linux",
        "created": top.get("created"),
        "config": {"Labels": container_config.get("Labels"), "Env": container_config.get("Env")},
    }
    if top.get("docker_version"):
        config["docker_version"] = top["docker_version"]
    return {"config": config, "layers": layers, "name": doc.get("name"), "tag": doc.get("tag")}
