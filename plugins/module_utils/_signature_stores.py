# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where signatures are kept, read and written the way containers/image does.

- ``dir:`` holds ``signature-N`` beside ``manifest.json`` (N from 1), and ``<hex>.signature-N`` for each
  image of an index.
- A registry repository has two places, configured in containers-registries.d(5): a *lookaside*
  store (``lookaside`` for reading, ``lookaside-staging`` for writing; ``file://`` or ``http(s)://``),
  where a signature of ``sha256:HEX`` in ``host/team/app`` is ``BASE/team/app@sha256=HEX/signature-N``;
  and, with ``use-sigstore-attachments: true``, cosign-style attachments: an OCI image manifest
  tagged ``sha256-HEX.sig`` whose layers are the signed payloads, the signatures in annotations.
  Without configuration the lookaside store is ``/var/lib/containers/sigstore`` (root) or
  ``~/.local/share/containers/sigstore``, as with skopeo. GPG signatures go to the lookaside store,
  sigstore signatures to attachments.

The registries.d directory is ``registries_d`` when given, else ``~/.config/containers/registries.d``
when it exists, else ``/etc/containers/registries.d``; every ``*.yaml`` in it is merged, and a
repository's settings come from its most specific ``docker:`` namespace, then ``default-docker``.
"""

from __future__ import annotations

import io
import json
import os
import threading
from urllib.parse import unquote, urlparse

from . import _media
from ._convert import go_json
from ._digest import sha256_digest
from ._errors import NotFound, OCIError, Unsupported
from ._options import ConnectionOptions
from ._policy import docker_namespaces, image_identity
from ._reference import ImageReference, validate_digest
from ._signatures import MAX_SIGNATURE_BYTES, SIGSTORE, SIMPLE_SIGNING, InvalidSignature, Signature, signature_from_blob, sigstore_attachment_tag
from ._transports._local import replace_file

USER_REGISTRIES_D = os.path.join(".config", "containers", "registries.d")
SYSTEM_REGISTRIES_D = "/etc/containers/registries.d"
ROOT_LOOKASIDE = "/var/lib/containers/sigstore"
USER_LOOKASIDE = os.path.join(".local", "share", "containers", "sigstore")
MAX_SIGNATURES = 1000
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

# Writers of one signature place in this process take turns (two tags of one image signed in one batch).
_locks: dict = {}
_locks_guard = threading.Lock()


def _lock(key) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


class RegistriesD:
    """The merged registries.d configuration; ``directory`` is where it was read from."""

    def __init__(self, directory: str | None, default: dict | None, namespaces: dict[str, dict]):
        self.directory = directory
        self.default = default
        self.namespaces = namespaces

    def settings_for(self, name: str, identity: str) -> list[dict]:
        """The namespace settings that apply to a repository, most specific first, ``default-docker`` last."""
        found = [self.namespaces[key] for key in [identity, *docker_namespaces(name)] if key in self.namespaces]
        return found + ([self.default] if self.default is not None else [])


def _setting(candidates: list[dict], keys: tuple[str, ...]):
    """The first value of ``keys`` (in order) in the most specific namespace that sets one (containers/image's rule)."""
    for settings in candidates:
        for key in keys:
            value = settings.get(key)
            if value not in (None, ""):
                return value
    return None


def _normalized(doc, where: str) -> dict:
    # containers/image reads these files through YAML -> JSON with Go's case-insensitive field names.
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise OCIError("%s: registries.d configuration must be a mapping" % where, where)
    return {str(k).lower(): v for k, v in doc.items()}


def load_registries_d(directory: str | None = None, home: str | None = None) -> RegistriesD:
    """Read every ``*.yaml`` of the registries.d directory (see the module docstring for which one)."""
    if directory is None:
        user = os.path.join(home if home is not None else os.path.expanduser("~"), USER_REGISTRIES_D)
        directory = user if os.path.exists(user) else SYSTEM_REGISTRIES_D
    default, namespaces, origin = None, {}, {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return RegistriesD(directory, None, {})
    except OSError as exc:
        raise OCIError("cannot read registries.d directory %s: %s" % (directory, exc.strerror or exc), directory) from None
    import yaml

    for name in names:
        if not name.endswith(".yaml"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as handle:
                doc = _normalized(yaml.safe_load(handle), path)
        except (OSError, yaml.YAMLError) as exc:
            raise OCIError("cannot read registries.d file %s: %s" % (path, exc), path) from None
        if doc.get("default-docker") is not None:
            if default is not None:
                raise OCIError('registries.d: "default-docker" is defined both in %s and %s' % (origin["default-docker"], path), path)
            default, origin["default-docker"] = _normalized(doc["default-docker"], path), path
        for namespace, settings in (_normalized(doc.get("docker"), path) if doc.get("docker") is not None else {}).items():
            if namespace in namespaces:
                raise OCIError('registries.d: docker namespace "%s" is defined both in %s and %s' % (namespace, origin[namespace], path), path)
            namespaces[namespace], origin[namespace] = _normalized(settings, path), path
    return RegistriesD(directory, default, namespaces)


class SignatureStore:
    """The signatures of the images in one place. ``instance`` tells a child of an index from the top manifest."""

    where = ""

    def may_hold_any(self) -> bool:
        """False only when it is certain, without a request, that no image here has a signature."""
        return True

    def read(self, digest: str, instance: bool = False) -> list[Signature]:
        raise NotImplementedError

    def cannot_store(self, kind: str) -> str | None:
        """Why signatures of ``kind`` cannot be written here; None when they can."""
        return "%s cannot hold signatures" % self.where

    def add(self, digest: str, signatures: list[Signature], instance: bool = False) -> None:
        """Store ``signatures`` beside those already there (which stay)."""
        raise Unsupported(self.cannot_store(signatures[0].kind if signatures else SIMPLE_SIGNING) or self.where, self.where)


# --- dir: ---------------------------------------------------------------------------------------


class DirectorySignatureStore(SignatureStore):
    """``signature-N`` files of a ``dir:`` image (``<hex>.signature-N`` for a child of an index)."""

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None, settings: RegistriesD | None = None):
        self.path = reference.path or ""
        self.where = str(reference)

    def _name(self, digest: str, position: int, instance: bool) -> str:
        return "%s.signature-%d" % (digest.partition(":")[2], position) if instance else "signature-%d" % position

    def may_hold_any(self) -> bool:
        try:
            return any("signature-" in name for name in os.listdir(self.path))
        except OSError:
            return False

    def read(self, digest: str, instance: bool = False) -> list[Signature]:
        validate_digest(digest, self.where)
        found = []
        for position in range(1, MAX_SIGNATURES + 1):
            path = os.path.join(self.path, self._name(digest, position, instance))
            try:
                with open(path, "rb") as handle:
                    blob = handle.read(MAX_SIGNATURE_BYTES + 1)
            except FileNotFoundError:
                break
            except OSError as exc:
                raise OCIError("%s: cannot read %s: %s" % (self.where, path, exc.strerror or exc), self.where) from None
            found.append(signature_from_blob(blob, path))
        return found

    def cannot_store(self, kind: str) -> str | None:
        return None

    def add(self, digest: str, signatures: list[Signature], instance: bool = False) -> None:
        with _lock(("dir", os.path.realpath(self.path))):
            start = len(self.read(digest, instance))
            for offset, signature in enumerate(signatures):
                replace_file(os.path.join(self.path, self._name(digest, start + offset + 1, instance)), signature.blob())


# --- registries ---------------------------------------------------------------------------------


def _default_lookaside() -> str:
    if os.geteuid() == 0:
        return "file://" + ROOT_LOOKASIDE
    return "file://" + os.path.join(os.path.expanduser("~"), USER_LOOKASIDE)


class RegistrySignatureStore(SignatureStore):
    """A registry repository's lookaside store and sigstore attachments, as registries.d configures them."""

    def __init__(self, reference: ImageReference, options: ConnectionOptions | None = None, settings: RegistriesD | None = None):
        self.reference = reference
        self.options = options or ConnectionOptions()
        self.repository = reference.repository or ""
        self.where = "docker://%s/%s" % (reference.registry, self.repository)
        settings = settings or load_registries_d()
        named = image_identity(reference)
        name = named.name if named else "%s/%s" % (reference.registry, self.repository)
        identity = "%s@%s" % (name, named.digest) if named and named.digest else "%s:%s" % (name, named.tag if named else "latest")
        candidates = settings.settings_for(name, identity)
        self.read_base = _setting(candidates, ("lookaside", "sigstore")) or _default_lookaside()
        self.write_base = _setting(candidates, ("lookaside-staging", "sigstore-staging", "lookaside", "sigstore")) or _default_lookaside()
        attachments = _setting(candidates, ("use-sigstore-attachments",))
        self.attachments = attachments is True or str(attachments).lower() == "true"

    # lookaside
    def _url(self, base: str, digest: str, position: int) -> str:
        algorithm, _unused, encoded = digest.partition(":")
        return "%s/%s@%s=%s/signature-%d" % (base.rstrip("/"), self.repository, algorithm, encoded, position)

    def _file_path(self, url: str) -> str | None:
        parsed = urlparse(url)
        return unquote(parsed.path) if parsed.scheme == "file" else None

    def may_hold_any(self) -> bool:
        if self.attachments:
            return True
        base = self._file_path(self.read_base)
        if base is None:
            return True
        parent = os.path.join(base, os.path.dirname(self.repository))
        prefix = os.path.basename(self.repository) + "@"
        try:
            return any(name.startswith(prefix) for name in os.listdir(parent))
        except OSError:
            return False

    def _read_lookaside(self, digest: str) -> list[Signature]:
        found = []
        for position in range(1, MAX_SIGNATURES + 1):
            url = self._url(self.read_base, digest, position)
            blob = self._fetch(url)
            if blob is None:
                break
            found.append(signature_from_blob(blob, url))
        return found

    def _fetch(self, url: str) -> bytes | None:
        path = self._file_path(url)
        if path is not None:
            try:
                with open(path, "rb") as handle:
                    return handle.read(MAX_SIGNATURE_BYTES + 1)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise OCIError("cannot read signature %s: %s" % (url, exc.strerror or exc), url) from None
        scheme = urlparse(url).scheme
        if scheme not in ("http", "https"):
            raise OCIError("lookaside %s: unsupported URL scheme %r (file, http and https are)" % (url, scheme), url)
        import requests

        verify = self.options.ca_cert or self.options.validate_certs
        try:
            with requests.get(url, timeout=self.options.timeout, stream=True, verify=verify) as response:
                if response.status_code == 404:
                    return None
                if response.status_code != 200:
                    raise OCIError("reading signature %s: HTTP %d" % (url, response.status_code), url)
                return response.raw.read(MAX_SIGNATURE_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            raise OCIError("reading signature %s: %s" % (url, exc.__class__.__name__), url) from None

    # attachments
    def _client(self):
        from ._registry._clients import registry_client

        return registry_client(self.reference.registry, self.options)

    def _attachment(self, digest: str) -> tuple[dict | None, str]:
        tag = sigstore_attachment_tag(digest)
        where = "%s:%s" % (self.where, tag)
        try:
            raw, media_type, _unused = self._client().get_manifest(self.repository, tag)
        except NotFound:
            return None, where
        if media_type != _media.OCI_MANIFEST:
            raise InvalidSignature("%s: the sigstore attachment is %s, not an OCI image manifest" % (where, media_type), where)
        doc, _unused = _media.parse_manifest(raw, media_type, where)
        return doc, where

    def _read_attachments(self, digest: str) -> list[Signature]:
        doc, where = self._attachment(digest)
        if doc is None:
            return []
        found = []
        for position, layer in enumerate(doc.get("layers") or []):
            size = layer.get("size")
            if isinstance(size, int) and size > MAX_SIGNATURE_BYTES:
                raise InvalidSignature("%s: layer %d is %d bytes, over the %d-byte signature limit" % (where, position + 1, size, MAX_SIGNATURE_BYTES), where)
            with self._client().get_blob(self.repository, layer["digest"], size) as stream:
                payload = stream.read(MAX_SIGNATURE_BYTES + 1)
                if len(payload) > MAX_SIGNATURE_BYTES:
                    raise InvalidSignature("%s: layer %d is over the %d-byte signature limit" % (where, position + 1, MAX_SIGNATURE_BYTES), where)
                while stream.read(65536):
                    pass  # to the end, so the digest is checked
            annotations = layer.get("annotations") or {}
            found.append(Signature(SIGSTORE, payload, layer.get("mediaType"), tuple(sorted(annotations.items())), "%s layer %d" % (where, position + 1)))
        return found

    def read(self, digest: str, instance: bool = False) -> list[Signature]:
        validate_digest(digest, self.where)
        found = self._read_lookaside(digest)
        if self.attachments:
            found += self._read_attachments(digest)
        return found

    def cannot_store(self, kind: str) -> str | None:
        if kind == SIGSTORE:
            if not self.attachments:
                return (
                    "%s: sigstore signatures are stored as attachments, and use-sigstore-attachments is not enabled for this repository "
                    "in registries.d (%s)" % (self.where, "set it in a registries.d YAML file, see docs/signatures.md")
                )
            return None
        if self._file_path(self.write_base) is None:
            return "%s: writing to the lookaside %s is not supported: configure a file:// lookaside-staging in registries.d" % (self.where, self.write_base)
        return None

    def add(self, digest: str, signatures: list[Signature], instance: bool = False) -> None:
        validate_digest(digest, self.where)
        for kind in {s.kind for s in signatures}:
            why = self.cannot_store(kind)
            if why:
                raise Unsupported(why, self.where)
        with _lock(("registry", self.reference.registry, self.repository, digest)):
            simple = [s for s in signatures if s.kind != SIGSTORE]
            if simple:
                # The staging store may differ from the read store: count what is in the one written to.
                base = self.write_base
                start = 0
                while start < MAX_SIGNATURES and os.path.exists(self._file_path(self._url(base, digest, start + 1)) or ""):
                    start += 1
                for offset, signature in enumerate(simple):
                    path = self._file_path(self._url(base, digest, start + offset + 1)) or ""
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    replace_file(path, signature.blob())
            sigstore = [s for s in signatures if s.kind == SIGSTORE]
            if sigstore:
                self._add_attachments(digest, sigstore)

    def _put_blob(self, data: bytes) -> dict:
        client, digest = self._client(), sha256_digest(data)
        if client.head_blob(self.repository, digest) is None:
            client.upload_blob(self.repository, digest, io.BytesIO(data), len(data))
        return {"digest": digest, "size": len(data)}

    def _add_attachments(self, digest: str, signatures: list[Signature]) -> None:
        doc, where = self._attachment(digest)
        if doc is None:
            doc = {"schemaVersion": 2, "mediaType": _media.OCI_MANIFEST, "config": {}, "layers": []}
            config = {"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
        else:
            descriptor = doc.get("config") or {}
            config = json.loads(self._client_blob(descriptor))
            if not isinstance(config, dict):
                raise InvalidSignature("%s: the attachment's config is not a JSON object" % where, where)
        rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        diff_ids = rootfs.setdefault("diff_ids", [])
        layers = list(doc.get("layers") or [])
        for signature in signatures:
            descriptor = dict(mediaType=signature.mime_type or "", **self._put_blob(signature.data))
            if signature.annotations:
                descriptor["annotations"] = signature.annotation_map
            layers.append(descriptor)
            diff_ids.append(descriptor["digest"])
        config_descriptor = dict(mediaType=OCI_CONFIG, **self._put_blob(go_json(config)))
        new_doc = dict(doc, config=config_descriptor, layers=layers)
        self._client().put_manifest(self.repository, sigstore_attachment_tag(digest), go_json(new_doc), _media.OCI_MANIFEST)

    def _client_blob(self, descriptor: dict) -> bytes:
        with self._client().get_blob(self.repository, descriptor["digest"], descriptor.get("size")) as stream:
            data = stream.read(_media.MAX_CONFIG_BYTES + 1)
            while stream.read(65536):
                pass
        if len(data) > _media.MAX_CONFIG_BYTES:
            raise InvalidSignature("%s: the attachment's config is too large" % self.where, self.where)
        return data
