# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registries.conf (containers-registries.conf(5), version 2): where an image name is read from.

Found and merged as containers/image (podman, skopeo) does it: ``CONTAINERS_REGISTRIES_CONF``
(or the ``registries_conf`` option), else ``~/.config/containers/registries.conf`` when it
exists, else ``/etc/containers/registries.conf``; then the drop-ins (``*.conf``, by name) of
``/etc/containers/registries.conf.d`` and ``~/.config/containers/registries.conf.d`` (only the
latter with the per-user file). A drop-in's ``[[registry]]`` replaces one with the same prefix,
its ``unqualified-search-registries`` and ``short-name-mode`` replace earlier ones, its aliases
are merged (an empty value removes one). The short-name alias cache podman writes
(``/var/cache/containers/short-name-aliases.conf``, ``~/.cache/...`` for others) comes first.

What it changes, as in containers/image: reading an image goes to the mirrors of the
``[[registry]]`` with the longest matching ``prefix`` and then to its ``location``; ``blocked``
refuses an endpoint; ``insecure`` allows plain HTTP and unverified TLS. Writes, deletes and
tag lists use the name as written (only ``blocked`` and ``insecure`` apply). Short names are
resolved through aliases and ``unqualified-search-registries``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace

from ._errors import InvalidReference, OCIError
from ._reference import DOMAIN_RE, ImageReference, parse_docker_name
from ._toml import TomlError, loads

SYSTEM_FILE = "/etc/containers/registries.conf"
SYSTEM_DIR = "/etc/containers/registries.conf.d"
USER_FILE = os.path.join(".config", "containers", "registries.conf")
USER_DIR = os.path.join(".config", "containers", "registries.conf.d")
ALIAS_CACHE = os.path.join("containers", "short-name-aliases.conf")
SHORT_NAME_MODES = ("enforcing", "permissive", "disabled")
PULL_FROM_MIRROR = ("", "all", "digest-only", "tag-only")
MAX_FILE_BYTES = 4 * 1024 * 1024


class RegistriesConfError(OCIError):
    """registries.conf cannot be read, or refuses what was asked (a blocked registry, an ambiguous short name)."""


@dataclass(frozen=True)
class Endpoint:
    """A place images of a prefix are read from: the registry's own location or one of its mirrors."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = ""


@dataclass
class RegistryEntry:
    """One ``[[registry]]`` table, after the checks containers/image makes."""

    prefix: str
    endpoint: Endpoint
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: list[Endpoint] = field(default_factory=list)
    origin: str = ""


@dataclass(frozen=True)
class PullSource:
    """One place to read an image from: its name there (``physical``), and whether it is a mirror or insecure."""

    physical: ImageReference
    insecure: bool
    mirror: bool
    blocked_by: str | None = None  # the registries.conf prefix that blocks this place, when one does

    @property
    def location(self) -> str:
        """``host/repository[:tag|@digest]`` as it was read there."""
        return self.physical.docker_reference or ""


def prefix_match_length(name: str, prefix: str) -> int:
    """How much of ``name`` (``host/path[:tag|@digest]``) ``prefix`` matches, or -1 (containers/image's refMatchingPrefix)."""
    if prefix.startswith("*."):
        index = name.find(prefix[1:])
        if index < 0 or "/" in name[:index]:
            return -1
        end = index + len(prefix) - 1
        return end if end == len(name) or name[end] in ":/@" else -1
    if len(name) < len(prefix) or not name.startswith(prefix):
        return -1
    if len(name) == len(prefix) or name[len(prefix)] in ":/@":
        return len(prefix)
    return -1


def _full_name(reference: ImageReference) -> str:
    name = "%s/%s" % (reference.registry, reference.repository)
    if reference.digest:
        return name + "@" + reference.digest
    return name + ":" + (reference.tag_or_default or "latest")


class RegistriesConf:
    """The merged configuration of the registries.conf files that were read."""

    def __init__(self, sources: list[str]):
        self.sources = sources  # the file and directories consulted, for messages
        self.registries: dict[str, RegistryEntry] = {}
        self.search: list[str] = []
        self.search_origin = ""
        self.short_name_mode = ""
        self.aliases: dict[str, tuple[str, str]] = {}  # short name -> (full name, file)
        self.files: list[str] = []  # the files actually read

    @property
    def described(self) -> str:
        return ", ".join(self.sources)

    # --- lookups -------------------------------------------------------------------------------
    def find(self, name: str) -> RegistryEntry | None:
        """The ``[[registry]]`` whose prefix matches ``host/repository`` longest, or None."""
        best = None
        for prefix, entry in self.registries.items():
            if prefix_match_length(name, prefix) >= 0 and (best is None or len(prefix) > len(best.prefix)):
                best = entry
        return best

    def blocked_by(self, reference: ImageReference) -> str | None:
        entry = self.find("%s/%s" % (reference.registry, reference.repository))
        return entry.prefix if entry is not None and entry.blocked else None

    def insecure(self, reference: ImageReference) -> bool:
        entry = self.find("%s/%s" % (reference.registry, reference.repository))
        return bool(entry and entry.endpoint.insecure)

    def check_not_blocked(self, reference: ImageReference, doing: str) -> None:
        """Raise when the registries.conf blocks ``reference`` (writes, deletes and tag lists use the name as written)."""
        prefix = self.blocked_by(reference)
        if prefix is not None:
            raise RegistriesConfError(
                "%s: %s is refused: registry %s is blocked in %s (prefix %s)" % (reference, doing, reference.registry, self.described, prefix),
                str(reference),
            )

    def pull_sources(self, reference: ImageReference) -> list[PullSource]:
        """Where to read ``reference`` from, in order: the usable mirrors, then the location (containers/image's PullSourcesFromReference)."""
        name = "%s/%s" % (reference.registry, reference.repository)
        entry = self.find(name)
        if entry is None:
            return [PullSource(reference, False, False, self.blocked_by(reference))]
        digested = reference.digest is not None
        endpoints: list[tuple[Endpoint, bool]] = []
        for mirror in entry.mirrors:
            if entry.mirror_by_digest_only and not digested:
                continue
            if mirror.pull_from_mirror == "digest-only" and not digested:
                continue
            if mirror.pull_from_mirror == "tag-only" and digested:
                continue
            endpoints.append((mirror, True))
        endpoints.append((entry.endpoint, False))
        sources = []
        full = _full_name(reference)
        for endpoint, is_mirror in endpoints:
            physical = self._rewrite(reference, full, entry, endpoint)
            sources.append(PullSource(physical, endpoint.insecure or self.insecure(physical), is_mirror, self.blocked_by(physical)))
        return sources

    def _rewrite(self, reference: ImageReference, full: str, entry: RegistryEntry, endpoint: Endpoint) -> ImageReference:
        if not endpoint.location:
            return reference  # a wildcard prefix without location: the name as it is
        matched = prefix_match_length(full, entry.prefix)
        text = endpoint.location + full[matched:]
        try:
            registry, repository, tag, digest = parse_docker_name(text, text)
        except InvalidReference as exc:
            raise RegistriesConfError(
                "%s: the location %s in %s makes %r, which is not an image name: %s" % (reference, endpoint.location, entry.origin, text, exc.msg)
            ) from None
        return replace(reference, registry=registry, repository=repository, tag=tag, digest=digest, short_name=None, text=text)

    # --- short names ---------------------------------------------------------------------------
    def resolves_short_name(self, reference: ImageReference) -> bool:
        """True when an alias or the search registries decide what the short name ``reference`` means."""
        return bool(reference.short_name) and (reference.short_name in self.aliases or bool(self.search))

    def short_name_candidates(self, reference: ImageReference) -> list[ImageReference]:
        """The names a short name may mean, in the order they are tried: its alias, else one per search registry."""
        short = reference.short_name or ""
        alias = self.aliases.get(short)
        if alias is not None:
            return [self._qualified(reference, alias[0])]
        return [self._qualified(reference, "%s/%s" % (registry, short)) for registry in self.search]

    def resolve_short_name(self, reference: ImageReference) -> tuple[list[ImageReference], str]:
        """The names a short name may mean, in the order they are tried, and how that was decided.

        With ``short-name-mode = "enforcing"``, a name more than one search registry could serve is
        an error listing them: podman would prompt, and a module cannot.
        """
        short = reference.short_name or ""
        candidates = self.short_name_candidates(reference)
        if short in self.aliases:
            return candidates, "alias %r in %s" % (short, self.aliases[short][1])
        if len(candidates) > 1 and self.short_name_mode == "enforcing":
            raise RegistriesConfError(
                "%r is a short name that more than one registry could serve, and short-name-mode is enforcing in %s (there is no prompt here): "
                "write the full name, one of %s, or add an alias for it in [aliases]"
                % (self._written(reference), self.described, ", ".join("docker://%s" % c.docker_reference for c in candidates)),
                self._written(reference),
            )
        return candidates, "unqualified-search-registries in %s" % self.search_origin

    @staticmethod
    def _written(reference: ImageReference) -> str:
        return reference.text or reference.short_name or ""

    @staticmethod
    def _qualified(reference: ImageReference, name: str) -> ImageReference:
        registry, repository, _tag, _digest = parse_docker_name(name, name)
        return replace(reference, registry=registry, repository=repository, short_name=None, text="")


# --- reading the files ---------------------------------------------------------------------------


def _read_toml(path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RegistriesConfError("registries.conf %s cannot be read: %s" % (path, exc.strerror or exc), path) from None
    if len(data) > MAX_FILE_BYTES:
        raise RegistriesConfError("registries.conf %s is over %d bytes" % (path, MAX_FILE_BYTES), path)
    try:
        return loads(data.decode("utf-8"), path)
    except UnicodeDecodeError:
        raise RegistriesConfError("registries.conf %s is not UTF-8 text" % path, path) from None
    except TomlError as exc:
        raise RegistriesConfError("registries.conf %s is not valid TOML: %s" % (path, exc), path) from None


def _location(value, path: str, what: str) -> str:
    if not isinstance(value, str):
        raise RegistriesConfError("%s: %s must be a string, not %r" % (path, what, value), path)
    value = value.rstrip("/")
    if value.startswith(("http://", "https://")):
        raise RegistriesConfError("%s: invalid %s %r: URI schemes are not supported" % (path, what, value), path)
    return value


def _bool(table: dict, key: str, path: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise RegistriesConfError("%s: %s must be true or false, not %r" % (path, key, value), path)
    return value


def _endpoint(table: dict, path: str, mirror: bool) -> Endpoint:
    pull = table.get("pull-from-mirror", "")
    if pull and not mirror:
        raise RegistriesConfError("%s: pull-from-mirror must not be set for a non-mirror registry" % path, path)
    if pull not in PULL_FROM_MIRROR:
        raise RegistriesConfError("%s: unsupported pull-from-mirror value %r (use all, digest-only or tag-only)" % (path, pull), path)
    return Endpoint(_location(table.get("location", ""), path, "location"), _bool(table, "insecure", path), pull)


def _registry(table: dict, path: str) -> RegistryEntry:
    if not isinstance(table, dict):
        raise RegistriesConfError("%s: [[registry]] entries must be tables" % path, path)
    endpoint = _endpoint(table, path, mirror=False)
    prefix = _location(table.get("prefix", ""), path, "prefix")
    if not prefix:
        if not endpoint.location:
            raise RegistriesConfError("%s: a [[registry]] has neither location nor prefix" % path, path)
        prefix = endpoint.location
    elif not endpoint.location and not prefix.startswith("*."):
        raise RegistriesConfError("%s: [[registry]] prefix %r has no location (only a *.example.com prefix may go without)" % (path, prefix), path)
    if prefix.startswith("*.") and any(c in prefix for c in "/@:"):
        raise RegistriesConfError("%s: wildcard prefix %r must look like *.example.com" % (path, prefix), path)
    by_digest = _bool(table, "mirror-by-digest-only", path)
    mirrors = []
    for mirror in table.get("mirror") or []:
        if not isinstance(mirror, dict):
            raise RegistriesConfError("%s: mirror entries of %s must be tables" % (path, prefix), path)
        found = _endpoint(mirror, path, mirror=True)
        if not found.location:
            raise RegistriesConfError("%s: a mirror of %s has no location" % (path, prefix), path)
        if by_digest and found.pull_from_mirror:
            raise RegistriesConfError(
                "%s: %s sets mirror-by-digest-only and its mirror %s sets pull-from-mirror: use one of them" % (path, prefix, found.location), path
            )
        mirrors.append(found)
    return RegistryEntry(prefix, endpoint, _bool(table, "blocked", path), by_digest, mirrors, path)


def _apply_file(conf: RegistriesConf, path: str, drop_in: bool) -> None:
    """Read one file into ``conf``: its [[registry]] tables replace those with the same prefix, the rest overrides."""
    doc = _read_toml(path)
    conf.files.append(path)
    if "registries" in doc:
        if drop_in:
            raise RegistriesConfError("%s: drop-in files must be in the version 2 format ([[registry]] tables), not [registries.*]" % path, path)
        _apply_v1(conf, doc["registries"], path)
        return
    entries = {}
    for table in doc.get("registry") or []:
        entry = _registry(table, path)
        entries.setdefault(entry.prefix, entry)  # the first with a prefix wins within a file
    _check_conflicts(list(entries.values()), path)
    conf.registries.update(entries)
    if "unqualified-search-registries" in doc:
        search = doc["unqualified-search-registries"]
        if not isinstance(search, list) or not all(isinstance(s, str) for s in search):
            raise RegistriesConfError("%s: unqualified-search-registries must be a list of host[:port] strings" % path, path)
        search = [s.rstrip("/") for s in search]
        bad = [s for s in search if not DOMAIN_RE.match(s)]
        if bad:
            raise RegistriesConfError("%s: invalid unqualified-search-registries entry %r: give host[:port]" % (path, bad[0]), path)
        conf.search, conf.search_origin = search, path
    mode = doc.get("short-name-mode", "")
    if mode:
        if mode not in SHORT_NAME_MODES:
            raise RegistriesConfError("%s: invalid short-name-mode %r (use enforcing, permissive or disabled)" % (path, mode), path)
        conf.short_name_mode = mode
    _apply_aliases(conf, doc.get("aliases") or {}, path)


def _check_conflicts(entries: list[RegistryEntry], path: str) -> None:
    by_location: dict[str, RegistryEntry] = {}
    for entry in entries:
        key = entry.endpoint.location or entry.prefix
        other = by_location.setdefault(key, entry)
        if other.endpoint.insecure != entry.endpoint.insecure or other.blocked != entry.blocked:
            raise RegistriesConfError("%s: registry %r is defined more than once with conflicting insecure or blocked settings" % (path, key), path)


def _apply_aliases(conf: RegistriesConf, aliases, path: str) -> None:
    if not isinstance(aliases, dict):
        raise RegistriesConfError('%s: [aliases] must be a table of "short-name" = "registry/repository"' % path, path)
    for name, value in aliases.items():
        if not isinstance(value, str):
            raise RegistriesConfError("%s: alias %r must be a string" % (path, name), path)
        if not value:
            conf.aliases.pop(name, None)  # an empty value removes an alias set earlier
            continue
        first = value.split("/", 1)[0]
        if "/" not in value or not ("." in first or ":" in first or first == "localhost") or "@" in value or ":" in value.split("/", 1)[1]:
            raise RegistriesConfError("%s: alias %r = %r must name a registry and repository, without tag or digest" % (path, name, value), path)
        conf.aliases[name] = (value, path)


def _apply_v1(conf: RegistriesConf, registries, path: str) -> None:
    """The deprecated version 1 format: [registries.search], [registries.insecure], [registries.block]."""
    if not isinstance(registries, dict):
        raise RegistriesConfError("%s: [registries] must be a table" % path, path)

    def listed(kind: str) -> list[str]:
        return list((registries.get(kind) or {}).get("registries") or [])

    for location in listed("block") + listed("insecure"):
        location = _location(location, path, "registry")
        entry = conf.registries.setdefault(location, RegistryEntry(location, Endpoint(location), origin=path))
        if location in listed("block"):
            entry.blocked = True
        if location in listed("insecure"):
            entry.endpoint = Endpoint(location, True)
    if listed("search"):
        conf.search, conf.search_origin = listed("search"), path


def _drop_ins(directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names if n.endswith(".conf") and os.path.isfile(os.path.join(directory, n))]


def config_paths(setting: str | None, env: dict[str, str], home: str) -> tuple[str, list[str], bool]:
    """(main file, drop-in directories, whether the main file must exist), as containers/image picks them."""
    explicit = setting or env.get("CONTAINERS_REGISTRIES_CONF") or env.get("REGISTRIES_CONFIG_PATH")
    user_file = os.path.join(home, USER_FILE)
    if explicit:
        return explicit, [SYSTEM_DIR, os.path.join(home, USER_DIR)], True
    if os.path.exists(user_file):
        return user_file, [os.path.join(home, USER_DIR)], False
    return SYSTEM_FILE, [SYSTEM_DIR, os.path.join(home, USER_DIR)], False


def _alias_cache_path(env: dict[str, str], home: str) -> str:
    if os.geteuid() == 0:
        return os.path.join("/var/cache", ALIAS_CACHE)
    return os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), ALIAS_CACHE)


def read_registries_conf(setting: str | None = None, env: dict[str, str] | None = None, home: str | None = None) -> RegistriesConf:
    """Read and merge registries.conf as containers/image does (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    home = home or env.get("HOME") or os.path.expanduser("~")
    main, directories, required = config_paths(setting, env, home)
    conf = RegistriesConf([main, *directories])
    if os.path.exists(main) or required:
        _apply_file(conf, main, drop_in=False)
    for directory in directories:
        for path in _drop_ins(directory):
            _apply_file(conf, path, drop_in=True)
    cache = _alias_cache_path(env, home)
    if os.path.isfile(cache):
        _apply_aliases(conf, _read_toml(cache).get("aliases") or {}, cache)  # the cache podman writes wins
    return conf


_cache: dict = {}
_cache_lock = threading.Lock()


def registries_conf_for(setting: str | bool | None) -> RegistriesConf | None:
    """The registries.conf for a ``registries_conf`` setting (None: found as podman finds it, False: none); read once per process."""
    if setting is False:
        return None
    key = (setting, os.environ.get("CONTAINERS_REGISTRIES_CONF"), os.environ.get("REGISTRIES_CONFIG_PATH"), os.environ.get("HOME"))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = read_registries_conf(setting if isinstance(setting, str) else None)
        return _cache[key]


def forget_registries_conf() -> None:
    """Read the files again on the next use (tests that change them)."""
    with _cache_lock:
        _cache.clear()
