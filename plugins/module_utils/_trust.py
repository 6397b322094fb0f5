# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Trust around a copy: the policy check before anything is written, signatures carried and made after.

``Trust.admit`` runs before ``copy_image``: it evaluates the signature policy on what the copy
would copy (as skopeo does: the image, or each image of an index that is copied), decides which
signatures travel and refuses what could not be kept (a destination that holds no signatures, a
copy that rewrites a signed manifest). It pins a registry source to the digest it verified, so
the copy reads exactly what was checked. ``Trust.finish`` runs after a successful copy: it adds
the signatures that travel and are not there yet, and signs with the task's keys unless the
destination already carries a valid signature by the same key for the same identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import _media
from ._errors import LocalFormatError, NotFound, OCIError
from ._options import CommandRunner, ConnectionOptions
from ._policy import ImageFacts, Named, Policy, PolicyRefused, PolicySession, evaluate, image_identity, parse_named
from ._reference import ImageReference
from ._signature_stores import RegistriesD, SignatureStore
from ._signatures import SIGSTORE, SIGSTORE_SIGNATURE_ANNOTATION, SIMPLE_SIGNING, InvalidSignature, Signature, make_payload, parse_payload, sigstore_signature
from ._transports._table import open_destination, open_source, transport_named

if TYPE_CHECKING:  # pragma: no cover
    from ._plan import CopyOptions

TOP, INSTANCE = "top", "instance"


def open_signature_store(reference: ImageReference, options: ConnectionOptions, settings: RegistriesD) -> SignatureStore | None:
    """The signature store of ``reference``'s transport, or None when it keeps none."""
    return transport_named(reference.transport).open_signatures(reference, options, settings)


class SigningKey:
    """A key the task signs with: a sigstore private key, or a GPG key of the caller's keyring."""

    def __init__(self, kind: str, name: str, private=None, fingerprint: str | None = None, passphrase: str | None = None, runner: CommandRunner | None = None):
        self.kind = kind
        self.runner = runner
        self.name = name
        self._private = private
        self._fingerprint = fingerprint
        self._passphrase = passphrase
        self._keyring = None

    @classmethod
    def sigstore(cls, path: str, passphrase: str | None) -> SigningKey:
        from ._sigstore import KeyFileError, decrypt_private_key, key_id

        try:
            with open(path, "rb") as handle:
                data = handle.read(64 * 1024 + 1)
        except OSError as exc:
            raise KeyFileError("sign_by_sigstore_private_key: cannot read %s: %s" % (path, exc.strerror or exc), path) from None
        key = decrypt_private_key(data, (passphrase or "").encode("utf-8"), path)
        return cls(SIGSTORE, key_id(key), private=key)

    @classmethod
    def gpg(cls, fingerprint: str, passphrase: str | None, runner: CommandRunner | None) -> SigningKey:
        from ._gpg import Keyring, export_public_key

        key = cls(SIMPLE_SIGNING, fingerprint.upper(), fingerprint=fingerprint, passphrase=passphrase, runner=runner)
        key._keyring = Keyring([export_public_key(fingerprint, runner)], "sign_by %s" % fingerprint, runner)
        key.name = key._keyring.fingerprints[0]
        return key

    def sign(self, digest: str, identity: str) -> Signature:
        payload = make_payload(self.kind, digest, identity)
        if self.kind == SIGSTORE:
            from ._sigstore import sign

            return sigstore_signature(payload, sign(self._private, payload), where="new")
        from ._gpg import sign

        return Signature(SIMPLE_SIGNING, sign(payload, self._fingerprint or "", self._passphrase, self.runner), where="new")

    def recognizes(self, signature: Signature, digest: str, identity: Named) -> bool:
        """Whether ``signature`` is valid, by this key, over ``digest``, for ``identity``."""
        if signature.kind != self.kind:
            return False
        if self.kind == SIGSTORE:
            from ._sigstore import verify

            encoded = signature.annotation_map.get(SIGSTORE_SIGNATURE_ANNOTATION)
            if encoded is None or verify(self._private.public_key(), signature.data, encoded) is not None:
                return False
            content = signature.data
        else:
            content, _signer, _why = self._keyring.verify(signature.data)  # type: ignore[union-attr]
            if content is None:
                return False
        try:
            payload = parse_payload(content, self.kind, signature.where)
        except InvalidSignature:
            return False
        return payload.digest == digest and parse_named(payload.identity) == identity

    def close(self) -> None:
        if self._keyring is not None:
            self._keyring.close()
            self._keyring = None


@dataclass
class Admission:
    """What ``Trust.admit`` decided for one copy."""

    source: ImageReference  # what copy_image reads (pinned to the verified digest for a registry)
    policy: dict | None = None
    #: (source manifest digest, TOP or INSTANCE at the destination, its signatures) for signatures that travel.
    carry: list = field(default_factory=list)
    #: Digests of the instances an index copy writes unchanged (signed beside the top when signing).
    instances: list = field(default_factory=list)
    #: The copy writes an index and its images (multi_arch all or platforms): each image is signed too, as skopeo does.
    index_copy: bool = False
    sign_identity: Named | None = None


def _same(a: Signature, b: Signature) -> bool:
    return a.kind == b.kind and a.data == b.data and a.mime_type == b.mime_type and a.annotations == b.annotations


class Trust:
    """The policy, the registries.d settings and the signing keys of one task; ``close()`` removes temporary keyrings."""

    def __init__(
        self,
        policy: Policy | None,
        settings: RegistriesD,
        keys: list[SigningKey] | None = None,
        sign_identity: str | None = None,
        remove_signatures: bool = False,
        runner: CommandRunner | None = None,
    ):
        self.policy = policy
        self.runner = runner
        self.settings = settings
        self.keys = list(keys or [])
        self.remove_signatures = remove_signatures
        self.session = PolicySession(runner)
        self.sign_identity = None
        if sign_identity:
            named = parse_named(sign_identity)
            if named is None or named.name_only:
                raise OCIError("sign_identity %r must be a full reference with a tag or digest (registry/repository:tag)" % sign_identity)
            self.sign_identity = named

    def close(self) -> None:
        self.session.close()
        for key in self.keys:
            key.close()

    @property
    def signs_sigstore(self) -> bool:
        return any(key.kind == SIGSTORE for key in self.keys)

    # --- before the copy ------------------------------------------------------------------------
    def admit(
        self,
        src: ImageReference,
        dest: ImageReference,
        src_options: ConnectionOptions,
        dest_options: ConnectionOptions,
        options: CopyOptions,
        referrers: bool = False,
    ) -> Admission:
        """Evaluate the policy and plan the signatures; raises (PolicyRefused, OCIError) before anything is written.

        With ``referrers`` and a sigstore signing key, the source's cosign ``.sig`` tag is read as signatures
        (``copy_referrers`` then leaves it to this step, which merges instead of replacing).
        """
        scope, requirements = self.policy.requirements_for(src) if self.policy else ("none", [])
        src_store = None if self.remove_signatures else open_signature_store(src, src_options, self.settings)
        if referrers and self.signs_sigstore and hasattr(src_store, "attachments"):
            src_store.attachments = True  # type: ignore[union-attr]
        carrying = src_store is not None and src_store.may_hold_any()
        dest_store = open_signature_store(dest, dest_options, self.settings) if (carrying or self.keys) else None
        admission = Admission(src)
        if self.keys:
            admission.sign_identity = self._check_signing(dest, dest_store)
        needs_manifests = carrying or any(r.needs_signatures for r in requirements) or bool(self.keys)
        if not needs_manifests:
            if self.policy is not None:
                facts = ImageFacts(str(src), image_identity(src), b"", "", [])
                admission.policy = self._judge(src, scope, requirements, [facts])
            return admission
        with open_source(src, src_options) as source, open_destination(dest, dest_options) as destination:
            raw, media_type = source.get_manifest()
            doc, media_type = _media.parse_manifest(raw, media_type, str(src))
            top_digest = source.manifest_digest(raw)
            if src.is_registry and not src.digest:
                admission.source = replace(src, digest=top_digest)  # the copy reads what was verified
            read_store = src_store if src_store is not None else (open_signature_store(src, src_options, self.settings) if requirements else None)

            def signatures(digest: str, instance: bool) -> list[Signature]:
                return read_store.read(digest, instance) if read_store is not None else []

            checked, travel = [], []
            if _media.is_index(media_type):
                from ._plan import effective_multi_arch, selected_instances  # copies only: image_info's listing needs neither

                mode = effective_multi_arch(destination, options)
                entries = selected_instances(doc, mode, options, str(src))
                admission.index_copy = mode in ("all", "subset")
                top_sigs = signatures(top_digest, False)
                if mode == "index_only":
                    checked.append((raw, top_digest, top_sigs))
                for entry in entries:
                    child_raw, child_type = source.get_manifest(entry["digest"])
                    child_sigs = signatures(entry["digest"], True)
                    checked.append((child_raw, entry["digest"], child_sigs))
                    rewritten = self._rewrites(source, destination, child_raw, child_type or entry.get("mediaType"), options, str(src))
                    if mode == "system":
                        travel.append((entry["digest"], TOP, child_sigs, rewritten))
                    else:
                        travel.append((entry["digest"], INSTANCE, child_sigs, rewritten))
                        if not rewritten:
                            admission.instances.append(entry["digest"])
                if mode != "system":
                    index_rewritten = mode == "subset" or self._rewrites(source, destination, raw, media_type, options, str(src))
                    travel.insert(0, (top_digest, TOP, top_sigs, index_rewritten))
            else:
                top_sigs = signatures(top_digest, False)
                checked.append((raw, top_digest, top_sigs))
                travel.append((top_digest, TOP, top_sigs, self._rewrites(source, destination, raw, media_type, options, str(src))))
            if self.policy is not None:
                facts = [ImageFacts(str(src), image_identity(src), r, d, s) for r, d, s in checked]
                admission.policy = self._judge(src, scope, requirements, facts)
            if carrying:
                for digest, role, sigs, rewritten in travel:
                    if not sigs:
                        continue
                    if rewritten:
                        raise OCIError(
                            "%s -> %s: the copy would rewrite manifest %s, which has %d signature(s) that would then be invalid; "
                            "set remove_signatures: true to copy without them, or drop format/platforms" % (src, dest, digest, len(sigs)),
                            str(src),
                        )
                    self._check_storable(src, dest, dest_store, sigs)
                    admission.carry.append((digest, role, sigs))
        return admission

    def _check_signing(self, dest: ImageReference, dest_store: SignatureStore | None) -> Named:
        identity = self.sign_identity or image_identity(dest)
        if identity is None:
            raise OCIError("%s has no registry name to sign for: give sign_identity (registry/repository:tag)" % dest, str(dest))
        for key in self.keys:
            why = "%s cannot hold signatures" % dest if dest_store is None else dest_store.cannot_store(key.kind)
            if why:
                raise OCIError("cannot sign %s: %s" % (dest, why), str(dest))
        return identity

    def _check_storable(self, src: ImageReference, dest: ImageReference, dest_store: SignatureStore | None, sigs: list[Signature]) -> None:
        for kind in sorted({s.kind for s in sigs}):
            why = "%s cannot hold signatures" % dest if dest_store is None else dest_store.cannot_store(kind)
            if why:
                raise OCIError(
                    "%s -> %s: the source has %s signatures and %s; set remove_signatures: true to copy without them" % (src, dest, kind, why),
                    str(src),
                )

    @staticmethod
    def _rewrites(source, destination, raw: bytes, media_type: str, options: CopyOptions, context: str) -> bool:
        """Whether the copy writes this manifest with other bytes (so signatures over it could not travel)."""
        if destination.identity != "manifest" or destination.wants_uncompressed_layers or source.layers_stored_uncompressed:
            return True
        target = options.format or destination.required_format
        if not target:
            return False
        doc, media_type = _media.parse_manifest(raw, media_type, context)
        if _media.is_index(media_type):
            return media_type != (_media.DOCKER_LIST if target == "v2s2" else _media.OCI_INDEX)
        from ._convert import convert_manifest

        return convert_manifest(doc, media_type, target, context)[0] is not doc

    def _judge(self, src: ImageReference, scope: str, requirements: list, facts: list[ImageFacts]) -> dict:
        source = self.policy.source if self.policy else None
        reasons: list[str] = []
        for image in facts:
            accepted, image_reasons, _used = evaluate(requirements, image, self.session)
            where = " (manifest %s)" % image.digest if len(facts) > 1 else ""
            reasons += [r + where for r in image_reasons]
            if not accepted:
                raise PolicyRefused(
                    "%s: refused by signature policy %s (scope %s)%s: %s" % (src, source, scope, where, image_reasons[-1]),
                    str(src),
                )
        return {"policy": source, "scope": scope, "accepted": True, "requirements": [r.describe() for r in requirements], "reasons": reasons}

    # --- after the copy -------------------------------------------------------------------------
    def finish(self, admission: Admission, result: dict, dest: ImageReference, dest_options: ConnectionOptions, check_mode: bool) -> None:
        """Carry and make signatures for a copy that succeeded; updates ``result`` (``signatures``, ``changed``)."""
        report = {"carried": 0, "added": 0}
        if admission.policy is not None:
            result["policy"] = admission.policy
        if not admission.carry and not self.keys:
            return
        dest_store = open_signature_store(dest, dest_options, self.settings)
        top = result.get("dest_digest_after")
        if top is None:
            result["signatures"] = dict(report, note="the destination digest is known only after the copy, so signatures cannot be predicted")
            return
        written: dict = {}

        def existing(digest: str, instance: bool) -> list[Signature]:
            key = (digest, instance)
            if key not in written:
                try:
                    written[key] = dest_store.read(digest, instance) if dest_store is not None else []
                except (NotFound, LocalFormatError):
                    written[key] = []
            return written[key]

        for digest, role, sigs in admission.carry:
            if role == TOP and digest != top:
                raise OCIError("%s: the copy wrote %s, not the signed %s; its signatures were not copied" % (dest, top, digest), str(dest))
            present = existing(digest, role == INSTANCE)
            missing = [s for s in sigs if not any(_same(s, p) for p in present)]
            if missing:
                if not check_mode:
                    dest_store.add(digest, missing, role == INSTANCE)  # type: ignore[union-attr]
                present.extend(missing)
                report["carried"] += len(missing)
        if self.keys:
            identity = admission.sign_identity
            instances = self._written_instances(admission, dest, dest_options, check_mode) if admission.index_copy else []
            targets = [(top, False)] + [(d, True) for d in instances]
            for key in self.keys:
                for digest, instance in targets:
                    present = existing(digest, instance)
                    if any(key.recognizes(s, digest, identity) for s in present):  # type: ignore[arg-type]
                        continue
                    if not check_mode:
                        signature = key.sign(digest, str(identity))
                        dest_store.add(digest, [signature], instance)  # type: ignore[union-attr]
                        present.append(signature)
                    report["added"] += 1
            report["identity"] = str(identity)
            report["signed_by"] = [key.name for key in self.keys]
        result["signatures"] = report
        if report["carried"] or report["added"]:
            result["changed"] = True

    @staticmethod
    def _written_instances(admission: Admission, dest: ImageReference, dest_options: ConnectionOptions, check_mode: bool) -> list[str]:
        """The images of the index the destination now names (from the copy's prediction in check mode)."""
        if check_mode:
            return list(admission.instances)
        try:
            with open_source(dest, dest_options) as written:
                raw, media_type = written.get_manifest()
        except (NotFound, LocalFormatError):
            return []
        doc, media_type = _media.parse_manifest(raw, media_type, str(dest))
        if not _media.is_index(media_type):
            return []
        return [entry["digest"] for entry in doc.get("manifests") or [] if entry.get("digest")]


def trust_from_options(
    signature_policy=None,
    registries_d: str | None = None,
    sign_by: str | None = None,
    sign_by_sigstore_private_key: str | None = None,
    sign_passphrase: str | None = None,
    sign_identity: str | None = None,
    remove_signatures: bool = False,
    runner: CommandRunner | None = None,
) -> Trust:
    """The task's Trust from image_copy's options; keys are loaded (and passphrases checked) before anything is copied."""
    from ._policy import load_policy
    from ._signature_stores import load_registries_d

    policy = load_policy(signature_policy)
    settings = load_registries_d(registries_d)
    keys: list[SigningKey] = []
    try:
        if sign_by_sigstore_private_key:
            keys.append(SigningKey.sigstore(sign_by_sigstore_private_key, sign_passphrase))
        if sign_by:
            keys.append(SigningKey.gpg(sign_by, sign_passphrase, runner))
        return Trust(policy, settings, keys, sign_identity, remove_signatures, runner)
    except BaseException:
        for key in keys:
            key.close()
        raise


def _describe(signature: Signature, digest: str, runner: CommandRunner | None) -> dict:
    """What a signature claims, read without verifying it (image_info)."""
    entry = {"digest": digest, "kind": signature.kind, "where": signature.where, "identity": None, "signed_digest": None, "signer": None}
    content = signature.data
    if signature.kind == SIMPLE_SIGNING:
        from ._gpg import GpgError, untrusted_contents

        try:
            content, entry["signer"] = untrusted_contents(signature.data, runner)
        except GpgError as exc:
            entry["error"] = exc.msg
            return entry
        if content is None:
            entry["error"] = "not a readable OpenPGP signed message"
            return entry
    try:
        payload = parse_payload(content, signature.kind, signature.where)
    except InvalidSignature as exc:
        entry["error"] = exc.msg
        return entry
    entry.update(identity=payload.identity, signed_digest=payload.digest, creator=payload.creator, timestamp=payload.timestamp)
    return entry


def inspect_signatures(
    reference: ImageReference, options: ConnectionOptions, settings: RegistriesD, policy: Policy | None = None
) -> tuple[list[dict], dict | None]:
    """The signatures of an image (and of each image of an index), and how ``policy`` would judge copying it."""
    store = open_signature_store(reference, options, settings)
    if policy is None and (store is None or not store.may_hold_any()):
        return [], None  # nothing to find: no request made
    session = PolicySession(options.runner)
    try:
        with open_source(reference, options) as source:
            raw, media_type = source.get_manifest()
            doc, media_type = _media.parse_manifest(raw, media_type, str(reference))
            top = source.manifest_digest(raw)
            manifests = [(raw, top, False)]
            if _media.is_index(media_type):
                for entry in doc.get("manifests") or []:
                    child_raw, _unused = source.get_manifest(entry["digest"])
                    manifests.append((child_raw, entry["digest"], True))
        found = [(r, d, store.read(d, instance) if store is not None else []) for r, d, instance in manifests]
        entries = [_describe(s, d, options.runner) for _raw, d, sigs in found for s in sigs]
        if policy is None:
            return entries, None
        scope, requirements = policy.requirements_for(reference)
        # As skopeo copies it: an index is judged by each of its images.
        judged = found[1:] if len(found) > 1 else found
        verdict = {"policy": policy.source, "scope": scope, "requirements": [r.describe() for r in requirements], "accepted": True, "reasons": []}
        used: list[str] = []
        for judged_raw, digest, sigs in judged:
            accepted, reasons, accepted_by = evaluate(requirements, ImageFacts(str(reference), image_identity(reference), judged_raw, digest, sigs), session)
            where = " (manifest %s)" % digest if len(judged) > 1 else ""
            verdict["reasons"] += [r + where for r in reasons]
            used += accepted_by
            verdict["accepted"] = verdict["accepted"] and accepted
        for entry in entries:
            entry["accepted"] = entry["where"] in used
        return entries, verdict
    finally:
        session.close()
