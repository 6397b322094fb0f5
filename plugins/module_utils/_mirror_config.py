# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror_config: tell the hosts that pull where the mirror is.

From source prefixes mapped to mirror prefixes (given, or derived from a sync spec and the
mirror it was copied to, with the naming image_copy uses), the files each consumer reads:

- a ``registries.conf.d`` drop-in (containers-registries.conf(5): podman, CRI-O, skopeo, buildah):
  one ``[[registry]]`` per source prefix with its ``[[registry.mirror]]``;
- containerd's ``hosts.toml``, one per source registry host under a ``certs.d``-style tree
  (``HOST/hosts.toml``): containerd maps whole hosts, so every prefix of one host must map to
  the same mirror root;
- OpenShift's ``ImageDigestMirrorSet`` and ``ImageTagMirrorSet`` (config.openshift.io/v1) as YAML.

Each file is rendered completely, compared with what is there, and replaced atomically only when it
differs; check mode and diff use the same comparison.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ._errors import OCIError
from ._mirror import sync_pairs
from ._options import ConnectionOptions
from ._transports._local import replace_file

MANAGED = "# Written by oci.images.mirror_config; changes made here are replaced on its next run."
_HOST_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$")
_PATH_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
#: Where containerd and Docker Hub disagree with the name: the API host of docker.io.
_SERVER = {"docker.io": "https://registry-1.docker.io"}


class MirrorConfigError(OCIError):
    """A mapping or option that cannot be written as the asked configuration."""


@dataclass(frozen=True)
class Mirror:
    """One source prefix (``registry[/path]``) and the prefix it is mirrored at (``host[:port][/path]``)."""

    source: str
    mirror: str

    @property
    def source_host(self) -> str:
        return self.source.partition("/")[0]

    @property
    def source_path(self) -> str:
        return self.source.partition("/")[2]

    @property
    def mirror_host(self) -> str:
        return self.mirror.partition("/")[0]

    @property
    def mirror_path(self) -> str:
        return self.mirror.partition("/")[2]


def _prefix(text, what: str) -> str:
    value = str(text or "").strip().rstrip("/")
    if "://" in value:
        value = value.partition("://")[2]
    host, _unused, path = value.partition("/")
    if not value or not _HOST_RE.match(host) or (path and not _PATH_RE.match(path)):
        raise MirrorConfigError(
            "mirrors: %s %r is not a registry prefix; write host[:port][/path] in lower case, such as registry.example.com:5000/team" % (what, text)
        )
    return value


def mirrors_from_mapping(mapping) -> list[Mirror]:
    """The mapping of source prefixes to mirror prefixes, checked and in a stable order (longest source first)."""
    if not isinstance(mapping, dict) or not mapping:
        raise MirrorConfigError("mirrors: expected a mapping of source prefixes to mirror prefixes, such as {quay.io/team: mirror.example.com/quay.io/team}")
    entries = {}
    for source, mirror in mapping.items():
        if not isinstance(mirror, str):
            raise MirrorConfigError("mirrors: the mirror of %s must be one prefix (a string), not %r" % (source, mirror))
        src = _prefix(source, "source")
        if src in entries:
            raise MirrorConfigError("mirrors: %s is given twice" % src)
        entries[src] = Mirror(src, _prefix(mirror, "mirror of %s:" % src))
    return sorted(entries.values(), key=lambda m: (-len(m.source), m.source))


def mirrors_from_sync(spec, mirror: str, scoped: bool = False) -> list[Mirror]:
    """Each repository of a skopeo-sync-style spec and where image_copy puts it under ``mirror`` (the same naming)."""
    if not isinstance(spec, dict) or not spec:
        raise MirrorConfigError("sync: expected a mapping of registry names to their images, as skopeo sync's YAML")
    repositories_only = {}
    for registry, entry in spec.items():
        names = set()
        for key in ("images", "images-by-tag-regex", "images-by-semver"):
            names.update((entry or {}).get(key) or {} if isinstance(entry, dict) else {})
        repositories_only[registry] = {"images": {name: ["latest"] for name in sorted(names)}}
    mapping = {}
    for pair in sync_pairs(repositories_only, mirror, ConnectionOptions(), lambda *args: [], scoped=scoped):
        mapping[pair.src.name] = pair.dest.name
    return mirrors_from_mapping(mapping)


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def _yaml_string(value: str) -> str:
    return json.dumps(value)  # YAML reads JSON's double-quoted strings


def registries_conf_text(mirrors: list[Mirror], insecure: bool = False, digest_only: bool = False) -> str:
    """A registries.conf v2 drop-in: each source prefix pulled from its mirror first (then from the source, if reachable)."""
    lines = [MANAGED, ""]
    for entry in mirrors:
        lines += ["[[registry]]", "prefix = %s" % _toml_string(entry.source), "location = %s" % _toml_string(entry.source)]
        if digest_only:
            lines.append("mirror-by-digest-only = true")
        lines += ["", "[[registry.mirror]]", "location = %s" % _toml_string(entry.mirror)]
        if insecure:
            lines.append("insecure = true")
        lines.append("")
    return "\n".join(lines)


def containerd_hosts(mirrors: list[Mirror], plain_http: bool = False, ca_cert: str | None = None) -> dict[str, str]:
    """``{source host: hosts.toml text}``; every prefix of one host must map to the same mirror root."""
    roots: dict[str, tuple[str, Mirror]] = {}
    for entry in mirrors:
        path, mpath = entry.source_path, entry.mirror_path
        if path and not (mpath == path or mpath.endswith("/" + path)):
            raise MirrorConfigError(
                "containerd_certs_d: containerd maps whole registries: %s -> %s keeps no common mirror root for %s "
                "(the mirror path must end with %s); map the registry %s as a whole, or leave containerd out"
                % (entry.source, entry.mirror, entry.source_host, path, entry.source_host)
            )
        base = mpath[: len(mpath) - len(path)].rstrip("/") if path else mpath
        root = entry.mirror_host + ("/" + base if base else "")
        seen = roots.get(entry.source_host)
        if seen is not None and seen[0] != root:
            raise MirrorConfigError(
                "containerd_certs_d: %s and %s map %s to different mirror roots (%s, %s); containerd maps whole registries"
                % (seen[1].source, entry.source, entry.source_host, seen[0], root)
            )
        roots[entry.source_host] = (root, entry)
    files = {}
    scheme = "http" if plain_http else "https"
    for host in sorted(roots):
        root = roots[host][0]
        mhost, _unused, mpath = root.partition("/")
        # With a path, the host URL is the API root itself (override_path), as containerd's docs describe.
        url = "%s://%s%s" % (scheme, mhost, "/v2/" + mpath if mpath else "")
        lines = [MANAGED, "", "server = %s" % _toml_string(_SERVER.get(host, "https://" + host)), "", "[host.%s]" % _toml_string(url)]
        lines.append('  capabilities = ["pull", "resolve"]')
        if mpath:
            lines.append("  override_path = true")
        if ca_cert:
            lines.append("  ca = %s" % _toml_string(ca_cert))
        files[host] = "\n".join(lines) + "\n"
    return files


def mirror_set_text(kind: str, name: str, mirrors: list[Mirror], source_policy: str | None = None) -> str:
    """An ImageDigestMirrorSet or ImageTagMirrorSet (config.openshift.io/v1) as YAML."""
    key = {"ImageDigestMirrorSet": "imageDigestMirrors", "ImageTagMirrorSet": "imageTagMirrors"}[kind]
    lines = [MANAGED, "apiVersion: config.openshift.io/v1", "kind: %s" % kind, "metadata:", "  name: %s" % _yaml_string(name), "spec:", "  %s:" % key]
    for entry in mirrors:
        lines += ["    - source: %s" % _yaml_string(entry.source), "      mirrors:", "        - %s" % _yaml_string(entry.mirror)]
        if source_policy:
            lines.append("      mirrorSourcePolicy: %s" % source_policy)
    return "\n".join(lines) + "\n"


@dataclass
class FileChange:
    path: str
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _current(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return "(not UTF-8 text)"


def plan_files(wanted: dict[str, str]) -> list[FileChange]:
    """What each file holds now against what it should hold (the one comparison check mode and the real run share)."""
    changes = []
    for path in sorted(wanted):
        if os.path.isdir(path):
            raise MirrorConfigError("%s is a directory; give the path of a file" % path)
        changes.append(FileChange(path, _current(path), wanted[path]))
    return changes


def apply_files(changes: list[FileChange]) -> None:
    """Write each changed file atomically (a temporary file beside it, then a rename), making its directory if needed."""
    for change in changes:
        if change.changed:
            directory = os.path.dirname(change.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            replace_file(change.path, change.after.encode("utf-8"))
