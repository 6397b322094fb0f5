# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containers-policy.json(5): which images are accepted, read and evaluated the way containers/image does.

A policy has a global ``default`` list of requirements and, per transport, scopes: the most
specific scope that names the image applies (the image's own identity, then its namespaces from
the narrowest, then the transport's ``""``), else the global default. Every requirement of that
list must accept the image. The requirements are ``insecureAcceptAnything``, ``reject``,
``signedBy`` (GPG simple signing, verified with gpg) and ``sigstoreSigned`` (a sigstore public
key), each with a ``signedIdentity`` rule comparing the identity a signature claims with the
image's. Parsing is strict: an unknown, duplicated or missing field refuses the whole policy.

How a transport's images are named in scopes is what the transport declares (``policy_scopes``):
``name`` (registry/repository:tag, then the repository, its parent namespaces, the host and its
``*.domain`` wildcards), ``path`` (the absolute path with symlinks resolved, then its parent
directories) or ``""`` (only the transport's default scope).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field

from ._errors import InvalidReference, OCIError
from ._options import CommandRunner
from ._reference import DOMAIN_RE, ImageReference, parse_docker_name
from ._signatures import (
    SIGSTORE,
    SIGSTORE_MIME_TYPE,
    SIGSTORE_SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    InvalidSignature,
    Signature,
    digest_matches,
    parse_payload,
    unique_keys,
)
from ._transports._table import find_transport, transport_named

USER_POLICY = os.path.join(".config", "containers", "policy.json")
SYSTEM_POLICY = "/etc/containers/policy.json"
MAX_POLICY_BYTES = 4 * 1024 * 1024
MAX_KEY_BYTES = 4 * 1024 * 1024
GPG_KEYS = "GPGKeys"
_KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")


class InvalidPolicy(OCIError):
    """A policy file (or inline policy) that is not a valid containers-policy.json."""


class PolicyRefused(OCIError):
    """The policy does not accept the image."""


# --- image identities and scopes ---------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    """A Docker reference as containers/image's reference package parses it (normalized name, tag, digest)."""

    name: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def __str__(self) -> str:
        return self.name + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")


def parse_named(text: str) -> Named | None:
    """``text`` as a normalized Docker reference (``busybox`` is ``docker.io/library/busybox``); None when invalid."""
    if not isinstance(text, str) or not text:
        return None
    rest, at, digest = text.partition("@")
    try:
        registry, repository, tag, _unused = parse_docker_name(rest, text)
        if at:
            parse_docker_name("x@" + digest, text)  # validates the digest
    except InvalidReference:
        return None
    return Named("%s/%s" % (registry, repository), tag, digest if at else None)


def image_identity(reference: ImageReference) -> Named | None:
    """The Docker reference an image is known by (what ``signedIdentity`` compares), None for path-named images."""
    if reference.repository is None:
        return None
    return Named(reference.name or "", reference.tag_or_default if not reference.digest else reference.tag, reference.digest)


def docker_namespaces(name: str) -> list[str]:
    """The repository, its parent namespaces, the host, then ``*.domain`` wildcards (containers/image's order)."""
    names = []
    while True:
        names.append(name)
        if "/" not in name:
            break
        name = name.rsplit("/", 1)[0]
    host = name.split(":", 1)[0]
    while "." in host:
        host = host.split(".", 1)[1]
        names.append("*." + host)
    return names


def _path_namespaces(path: str) -> list[str]:
    names = []
    while True:
        path = os.path.dirname(path)
        if path in ("", "/"):
            return names
        names.append(path)


def policy_scopes(reference: ImageReference) -> tuple[str, list[str]]:
    """(identity, namespaces) of ``reference`` in its transport's policy scopes; ("", []) when it has none."""
    kind = transport_named(reference.transport).policy_scopes
    if kind == "name":
        named = image_identity(reference)
        if named is None:
            return "", []
        identity = "%s@%s" % (named.name, named.digest) if named.digest else "%s:%s" % (named.name, named.tag)
        return identity, docker_namespaces(named.name)
    if kind == "path" and reference.path:
        resolved = os.path.realpath(reference.path)
        return resolved, _path_namespaces(resolved)
    return "", []


def _validate_scope(transport: str, scope: str, where: str) -> None:
    known = find_transport(transport)
    if known is None or not scope:
        return  # scopes of transports this collection does not know are kept, and never match
    if known.policy_scopes == "path":
        if not scope.startswith("/") or scope == "/" or os.path.normpath(scope) != scope:
            raise InvalidPolicy('%s: scope "%s" of transport %s must be a canonical absolute path other than "/"' % (where, scope, transport), where)
    elif known.policy_scopes != "name":
        raise InvalidPolicy('%s: transport %s supports only its default scope "", not "%s"' % (where, transport, scope), where)


# --- signedIdentity ---------------------------------------------------------------------------


def _repo_digest_or_exact(intended: Named, signed: Named) -> bool:
    if signed.name_only:
        return False
    if intended.tag is not None:
        return signed == intended
    if intended.digest is not None:
        return signed.name == intended.name
    return False


def _prefix_ok(text) -> bool:
    if not isinstance(text, str) or not text:
        return False
    if DOMAIN_RE.match(text):
        return True
    host, slash, _rest = text.partition("/")
    return bool(slash) and bool(DOMAIN_RE.match(host)) and parse_named(text) is not None and "@" not in text and ":" not in text.split("/", 1)[1]


@dataclass(frozen=True)
class IdentityRule:
    """One ``signedIdentity`` form."""

    type: str = "matchRepoDigestOrExact"
    reference: Named | None = None  # exactReference / exactRepository
    prefix: str = ""  # remapIdentity
    signed_prefix: str = ""

    def describe(self) -> str:
        if self.type in ("exactReference", "exactRepository"):
            return "%s %s" % (self.type, self.reference)
        if self.type == "remapIdentity":
            return "remapIdentity %s -> %s" % (self.prefix, self.signed_prefix)
        return self.type

    def matches(self, image: Named | None, signed_text: str) -> bool:
        signed = parse_named(signed_text)
        if signed is None:
            return False
        if self.type == "exactReference":
            return not signed.name_only and self.reference is not None and signed == self.reference
        if self.type == "exactRepository":
            return self.reference is not None and signed.name == self.reference.name
        if image is None:
            return False  # matchExact, matchRepoDigestOrExact, matchRepository and remapIdentity need a Docker identity
        if self.type == "matchExact":
            return not image.name_only and not signed.name_only and signed == image
        if self.type == "matchRepository":
            return signed.name == image.name
        if self.type == "remapIdentity":
            image = self._remap(image)
            if image is None:
                return False
        return _repo_digest_or_exact(image, signed)

    def _remap(self, image: Named) -> Named | None:
        if not (image.name == self.prefix or image.name.startswith(self.prefix + "/")):
            return image
        text = str(image).replace(self.prefix, self.signed_prefix, 1)
        remapped = parse_named(text)
        # Like containers/image's ParseNamed: the rewritten reference must already be in canonical form.
        return remapped if remapped is not None and str(remapped) == text else None


def _strict_object(value, where: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidPolicy("%s: %s must be a JSON object" % (where, what), where)
    return value


def _fields(doc: dict, allowed: tuple[str, ...], where: str, what: str) -> None:
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise InvalidPolicy('%s: unknown field "%s" in %s (allowed: %s)' % (where, unknown[0], what, ", ".join(allowed)), where)


def parse_identity_rule(value, where: str) -> IdentityRule:
    doc = _strict_object(value, where, "signedIdentity")
    kind = doc.get("type")
    simple = ("matchExact", "matchRepoDigestOrExact", "matchRepository")
    if kind in simple:
        _fields(doc, ("type",), where, "signedIdentity " + kind)
        return IdentityRule(kind)
    if kind == "exactReference":
        _fields(doc, ("type", "dockerReference"), where, "signedIdentity exactReference")
        named = parse_named(doc.get("dockerReference"))
        if named is None:
            raise InvalidPolicy("%s: exactReference dockerReference %r is not a valid Docker reference" % (where, doc.get("dockerReference")), where)
        if named.name_only:
            raise InvalidPolicy("%s: exactReference dockerReference %s contains neither a tag nor digest" % (where, named), where)
        return IdentityRule(kind, named)
    if kind == "exactRepository":
        _fields(doc, ("type", "dockerRepository"), where, "signedIdentity exactRepository")
        named = parse_named(doc.get("dockerRepository"))
        if named is None:
            raise InvalidPolicy("%s: exactRepository dockerRepository %r is not a valid Docker reference" % (where, doc.get("dockerRepository")), where)
        return IdentityRule(kind, named)
    if kind == "remapIdentity":
        _fields(doc, ("type", "prefix", "signedPrefix"), where, "signedIdentity remapIdentity")
        for key in ("prefix", "signedPrefix"):
            if not _prefix_ok(doc.get(key)):
                raise InvalidPolicy("%s: remapIdentity %s %r is not a host[:port], namespace or repository" % (where, key, doc.get(key)), where)
        return IdentityRule(kind, prefix=doc["prefix"], signed_prefix=doc["signedPrefix"])
    raise InvalidPolicy('%s: unknown signedIdentity type "%s"' % (where, kind), where)


# --- requirements ------------------------------------------------------------------------------


@dataclass
class ImageFacts:
    """What a requirement looks at: the image's identity, its manifest and its (untrusted) signatures."""

    name: str  # the reference as the user wrote it, for messages
    identity: Named | None
    raw: bytes
    digest: str
    signatures: list[Signature]


@dataclass
class Verdict:
    accepted: bool
    reason: str
    #: The signatures (by ``where``) a requirement accepted.
    accepted_by: list[str] = field(default_factory=list)


class Requirement:
    type = ""
    needs_signatures = False

    def describe(self) -> str:
        return self.type

    def evaluate(self, image: ImageFacts, session: PolicySession) -> Verdict:
        raise NotImplementedError


class AcceptAnything(Requirement):
    type = "insecureAcceptAnything"

    def evaluate(self, image: ImageFacts, session: PolicySession) -> Verdict:
        return Verdict(True, "insecureAcceptAnything accepts any image")


class RejectAll(Requirement):
    type = "reject"

    def evaluate(self, image: ImageFacts, session: PolicySession) -> Verdict:
        return Verdict(False, "running image %s is rejected by policy (reject)" % image.name)


class SignedBaseLayer(Requirement):
    type = "signedBaseLayer"

    def evaluate(self, image: ImageFacts, session: PolicySession) -> Verdict:
        return Verdict(False, "signedBaseLayer is not implemented (by containers/image either)")


class _KeyRequirement(Requirement):
    needs_signatures = True

    def __init__(self, where: str, key_paths: list[str] | None, key_data: bytes | None, identity: IdentityRule):
        self.where = where
        self.key_paths = key_paths
        self.key_data = key_data
        self.identity = identity

    def describe(self) -> str:
        keys = "keyData" if self.key_data is not None else ("keyPath %s" % ", ".join(self.key_paths or []))
        return "%s (%s, signedIdentity %s)" % (self.type, keys, self.identity.describe())

    def key_blobs(self) -> list[bytes]:
        if self.key_data is not None:
            return [self.key_data]
        blobs = []
        for path in self.key_paths or []:
            try:
                with open(path, "rb") as handle:
                    data = handle.read(MAX_KEY_BYTES + 1)
            except OSError as exc:
                raise PolicyRefused("%s: cannot read key file %s: %s" % (self.type, path, exc.strerror or exc), path) from None
            if len(data) > MAX_KEY_BYTES:
                raise PolicyRefused("%s: key file %s is over %d bytes" % (self.type, path, MAX_KEY_BYTES), path)
            blobs.append(data)
        return blobs

    def check_claims(self, image: ImageFacts, content: bytes, kind: str, where: str) -> str:
        """ "" when the signed payload names this manifest and an accepted identity; else why not."""
        try:
            payload = parse_payload(content, kind, where)
        except InvalidSignature as exc:
            return exc.msg
        if not digest_matches(image.raw, image.digest, payload.digest):
            return "signature for digest %s does not match (the manifest is %s)" % (payload.digest, image.digest)
        if not self.identity.matches(image.identity, payload.identity):
            return "signature for identity %s is not accepted (%s)" % (payload.identity, self.identity.describe())
        return ""

    def summarize(self, rejections: list[str], others: int, kind: str) -> Verdict:
        if not rejections:
            extra = " (%d signature(s) of another kind)" % others if others else ""
            return Verdict(False, "%s: a %s signature was required, but no signature exists%s" % (self.describe(), kind, extra))
        if len(rejections) == 1:
            return Verdict(False, "%s: %s" % (self.describe(), rejections[0]))
        return Verdict(False, "%s: none of the %d signatures were accepted: %s" % (self.describe(), len(rejections), "; ".join(rejections)))


class SignedBy(_KeyRequirement):
    type = "signedBy"

    def __init__(self, where: str, key_type: str, key_paths, key_data, identity: IdentityRule):
        super().__init__(where, key_paths, key_data, identity)
        self.key_type = key_type

    def evaluate(self, image: ImageFacts, session: PolicySession) -> Verdict:
        if self.key_type != GPG_KEYS:
            return Verdict(False, 'signedBy: keyType "%s" is not implemented (use GPGKeys)' % self.key_type)
        rejections, others = [], 0
        for sig in image.signatures:
            if sig.kind != SIMPLE_SIGNING:
                others += 1
                continue
            content, signer, why = session.keyring(self).verify(sig.data)
            if content is None:
                rejections.append("%s: %s" % (sig.where, why))
                continue
            why = self.check_claims(image, content, SIMPLE_SIGNING, sig.where)
            if why:
                rejections.append("%s: %s" % (sig.where, why))
                continue
            return Verdict(True, "signedBy: signed by key %s (%s)" % (signer, sig.where), [sig.where])
        return self.summarize(rejections, others, "GPG")


class SigstoreSigned(_KeyRequirement):
    type = "sigstoreSigned"

    def evaluate(self, image: ImageFacts, session: PolicySession) -> Verdict:
        public_key, key_name = session.sigstore_key(self)
        rejections, others = [], 0
        for sig in image.signatures:
            if sig.kind != SIGSTORE or sig.mime_type != SIGSTORE_MIME_TYPE:
                others += 1
                continue
            from ._sigstore import verify

            encoded = sig.annotation_map.get(SIGSTORE_SIGNATURE_ANNOTATION)
            if encoded is None:
                rejections.append("%s: missing %s annotation" % (sig.where, SIGSTORE_SIGNATURE_ANNOTATION))
                continue
            why = verify(public_key, sig.data, encoded)
            if why is None:
                why = self.check_claims(image, sig.data, SIGSTORE, sig.where)
            if why:
                rejections.append("%s: %s" % (sig.where, why))
                continue
            return Verdict(True, "sigstoreSigned: signed by key %s (%s)" % (key_name, sig.where), [sig.where])
        return self.summarize(rejections, others, "sigstore")


def _key_data(doc: dict, where: str) -> bytes | None:
    if "keyData" not in doc:
        return None
    try:
        return base64.b64decode(doc["keyData"], validate=True) if isinstance(doc["keyData"], str) else b""
    except (binascii.Error, ValueError):
        raise InvalidPolicy("%s: keyData is not valid base64" % where, where) from None


def parse_requirement(value, where: str) -> Requirement:
    doc = _strict_object(value, where, "a policy requirement")
    kind = doc.get("type")
    if kind in ("insecureAcceptAnything", "reject"):
        _fields(doc, ("type",), where, kind)
        return AcceptAnything() if kind == "insecureAcceptAnything" else RejectAll()
    if kind == "signedBaseLayer":
        _fields(doc, ("type", "baseLayerIdentity"), where, kind)
        parse_identity_rule(doc.get("baseLayerIdentity"), where)
        return SignedBaseLayer()
    identity = parse_identity_rule(doc["signedIdentity"], where) if "signedIdentity" in doc else IdentityRule()
    if kind == "signedBy":
        _fields(doc, ("type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"), where, kind)
        if doc.get("keyType") not in _KEY_TYPES:
            raise InvalidPolicy('%s: signedBy needs keyType "GPGKeys" (got %r)' % (where, doc.get("keyType")), where)
        sources = [k for k in ("keyPath", "keyPaths", "keyData") if k in doc]
        if len(sources) != 1:
            raise InvalidPolicy("%s: signedBy needs exactly one of keyPath, keyPaths and keyData (%s given)" % (where, ", ".join(sources) or "none"), where)
        paths = [doc["keyPath"]] if "keyPath" in doc else doc.get("keyPaths")
        if paths is not None and (not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths) or not paths):
            raise InvalidPolicy("%s: signedBy keyPath must be a path and keyPaths a list of paths" % where, where)
        return SignedBy(where, doc["keyType"], paths, _key_data(doc, where), identity)
    if kind == "sigstoreSigned":
        allowed = ("type", "keyPath", "keyData", "signedIdentity")
        for unsupported in ("fulcio", "rekorPublicKeyPath", "rekorPublicKeyData", "keyPaths", "keyDatas", "pki"):
            if unsupported in doc:
                raise InvalidPolicy("%s: sigstoreSigned %s is not supported (skopeo 1.9 neither): use keyPath or keyData" % (where, unsupported), where)
        _fields(doc, allowed, where, kind)
        sources = [k for k in ("keyPath", "keyData") if k in doc]
        if len(sources) != 1:
            raise InvalidPolicy("%s: sigstoreSigned needs exactly one of keyPath and keyData (%s given)" % (where, ", ".join(sources) or "none"), where)
        if "keyPath" in doc and not (isinstance(doc["keyPath"], str) and doc["keyPath"]):
            raise InvalidPolicy("%s: sigstoreSigned keyPath must be a path" % where, where)
        return SigstoreSigned(where, [doc["keyPath"]] if "keyPath" in doc else None, _key_data(doc, where), identity)
    raise InvalidPolicy('%s: unknown policy requirement type "%s" (known: insecureAcceptAnything, reject, signedBy, sigstoreSigned)' % (where, kind), where)


def parse_requirements(value, where: str) -> list[Requirement]:
    if not isinstance(value, list):
        raise InvalidPolicy("%s: must be a list of requirements" % where, where)
    if not value:
        raise InvalidPolicy("%s: the list of requirements must not be empty" % where, where)
    return [parse_requirement(item, "%s[%d]" % (where, position)) for position, item in enumerate(value)]


# --- the policy --------------------------------------------------------------------------------


@dataclass
class Policy:
    """A parsed policy; ``source`` says where it came from (a path, or ``inline``)."""

    source: str
    default: list[Requirement]
    transports: dict[str, dict[str, list[Requirement]]]

    def requirements_for(self, reference: ImageReference) -> tuple[str, list[Requirement]]:
        """(the scope that applies, as text for messages, its requirements): the most specific match wins."""
        scopes = self.transports.get(reference.transport)
        if scopes is not None:
            kind = transport_named(reference.transport).policy_scopes
            if kind not in ("name", "path") and any(scopes.keys() - {""}):
                raise PolicyRefused(
                    '%s: the policy has scopes for transport %s, whose images this collection names only by its default scope ""'
                    % (reference, reference.transport),
                    str(reference),
                )
            identity, namespaces = policy_scopes(reference)
            for scope in ([identity] if identity else []) + namespaces + [""]:
                if scope in scopes:
                    return '%s "%s"' % (reference.transport, scope), scopes[scope]
        return "default", self.default


def parse_policy(value, source: str) -> Policy:
    """A policy from JSON text or an already decoded mapping; InvalidPolicy names ``source`` and the problem."""
    if isinstance(value, (bytes, str)):
        if len(value) > MAX_POLICY_BYTES:
            raise InvalidPolicy("%s: the policy is over %d bytes" % (source, MAX_POLICY_BYTES), source)
        try:
            value = json.loads(value, object_pairs_hook=unique_keys)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidPolicy("invalid policy in %s: %s" % (source, exc), source) from None
    doc = _strict_object(value, source, "the policy")
    _fields(doc, ("default", "transports"), source, "the policy")
    if "default" not in doc:
        raise InvalidPolicy("invalid policy in %s: the default policy is missing" % source, source)
    default = parse_requirements(doc["default"], "%s: default" % source)
    transports: dict[str, dict[str, list[Requirement]]] = {}
    for transport, scopes in _strict_object(doc.get("transports") or {}, source, "transports").items():
        scopes = _strict_object(scopes, source, "transports.%s" % transport)
        transports[transport] = {}
        for scope, requirements in scopes.items():
            where = '%s: transports.%s."%s"' % (source, transport, scope)
            _validate_scope(transport, scope, where)
            transports[transport][scope] = parse_requirements(requirements, where)
    return Policy(source, default, transports)


def default_policy_path(home: str | None = None) -> str | None:
    """The file skopeo reads without --policy: ``$HOME/.config/containers/policy.json``, else ``/etc/containers/policy.json``."""
    user = os.path.join(home if home is not None else os.path.expanduser("~"), USER_POLICY)
    for path in (user, SYSTEM_POLICY):
        if os.path.exists(path):
            return path
    return None


def load_policy(option, home: str | None = None) -> Policy | None:
    """The policy ``signature_policy`` names (a path, a mapping, JSON text), else skopeo's default file; None when none exists."""
    if isinstance(option, dict):
        return parse_policy(option, "signature_policy (inline)")
    if isinstance(option, str) and option.lstrip().startswith("{"):
        return parse_policy(option, "signature_policy (inline)")
    path = option if option else default_policy_path(home)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise InvalidPolicy("cannot read signature policy %s: %s" % (path, exc.strerror or exc), path) from None
    return parse_policy(data, path)


class PolicySession:
    """Keys loaded while evaluating one task's images (gpg keyrings are temporary directories); ``close()`` removes them."""

    def __init__(self, runner: CommandRunner | None = None) -> None:
        self.runner = runner
        self._keyrings: dict[int, object] = {}
        self._sigstore: dict[int, tuple] = {}

    def keyring(self, requirement: SignedBy):
        from ._gpg import Keyring

        found = self._keyrings.get(id(requirement))
        if found is None:
            found = self._keyrings[id(requirement)] = Keyring(requirement.key_blobs(), requirement.describe(), self.runner)
        return found

    def sigstore_key(self, requirement: SigstoreSigned) -> tuple:
        from ._sigstore import KeyFileError, key_id, load_public_key

        found = self._sigstore.get(id(requirement))
        if found is None:
            where = requirement.key_paths[0] if requirement.key_paths else "%s keyData" % requirement.type
            try:
                key = load_public_key(requirement.key_blobs()[0], where)
            except KeyFileError as exc:
                raise PolicyRefused("sigstoreSigned: %s" % exc.msg, where) from None
            found = self._sigstore[id(requirement)] = (key, key_id(key))
        return found

    def close(self) -> None:
        for keyring in self._keyrings.values():
            keyring.close()  # type: ignore[attr-defined]
        self._keyrings.clear()


def evaluate(requirements: list[Requirement], image: ImageFacts, session: PolicySession) -> tuple[bool, list[str], list[str]]:
    """(accepted, one reason per requirement, the signatures that were accepted): every requirement must accept."""
    reasons, used = [], []
    for requirement in requirements:
        verdict = requirement.evaluate(image, session)
        reasons.append(verdict.reason)
        used += verdict.accepted_by
        if not verdict.accepted:
            return False, reasons, used
    return True, reasons, used
