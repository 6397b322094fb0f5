# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deleting images: one tag, one manifest, or a pruned set of tags, wherever a transport can delete.

Every path works the same way: read what is there, decide what goes (for a prune, with
``decide_prune``), count the bytes that would be freed, and only then, outside check mode,
act. Check mode and the real run share everything up to that point, so they cannot disagree.

Each transport gives a ``DeleteTarget`` (the place and how its images are removed); this module
keeps what is the same everywhere (the request, the prune decision, the result) and the tag-safe
method for places where deleting a manifest takes every tag on it along (registries).

Registry deletes never take a kept tag with them. Distribution has no "delete tag" call
(deleting a manifest removes every tag on it), so:

- a digest whose tags all go is deleted by digest (``method: manifest``), after re-reading
  every kept tag right before acting; that also frees the manifest for plain garbage collection;
- a tag whose digest keeps other tags (or sits inside a kept index) is detached
  (``method: placeholder``): the tag is pointed at a unique, tiny placeholder manifest and the
  placeholder is deleted by digest; the real manifest and its other tags are untouched.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass

from . import _media
from ._digest import sha256_digest
from ._errors import InvalidReference, NotFound, OCIError, RegistryError, Unsupported
from ._footprint import RepositoryScan, freed_bytes, scan_source
from ._options import ConnectionOptions
from ._prune import PrunePolicy, TagState, decide_prune, parse_created
from ._reference import ImageReference
from ._transports._base import DeleteTarget
from ._transports._table import delete_target

METHODS = ("auto", "placeholder")
EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = sha256_digest(EMPTY_JSON)
PLACEHOLDER_ANNOTATION = "io.github.oci-images.placeholder"


@dataclass
class DeleteRequest:
    """What to delete beyond the reference itself: a prune policy for a whole repository, and the registry method."""

    prune: PrunePolicy | None = None
    method: str = "auto"


def delete_image(reference: ImageReference, options: ConnectionOptions | None = None, request: DeleteRequest | None = None, check_mode: bool = False) -> dict:
    """Delete what ``reference`` names (or prune its repository); returns the module result (``changed``, ``deleted``, ...)."""
    request = request or DeleteRequest()
    if request.method not in METHODS:
        raise OCIError("method must be one of %s, not %r" % (", ".join(METHODS), request.method))
    if request.prune is not None:
        request.prune.validate()
    target = delete_target(reference, options)
    if target.deleting_a_manifest_takes_its_tags:
        return _delete_in_registry(target, request, check_mode)
    return _delete_named(target, request, check_mode)


def _result(
    deleted: list[dict],
    kept: list[str],
    freed: int,
    method: str,
    before: dict,
    errors: list[str] | None = None,
    skipped: list[dict] | None = None,
    reasons: dict | None = None,
    manifests: list[str] | None = None,
    after: dict | None = None,
) -> dict:
    # diff keys are tags (refs), or the digest when what went had no tag
    gone = {d["tag"] for d in deleted} | {d["digest"] for d in deleted}
    return {
        "changed": bool(deleted or manifests),
        "deleted": deleted,
        "kept": kept,
        "kept_reasons": reasons or {},
        "skipped_tags": skipped or [],
        "deleted_manifests": manifests or [],
        "freed_bytes": freed,
        "errors": errors or [],
        "method": method,
        "diff": {"before": before, "after": {k: v for k, v in before.items() if k not in gone} if after is None else after},
    }


def _tag_states(scan: RepositoryScan) -> list[TagState]:
    return [TagState(tag, digest, parse_created(scan.created_of(digest)), tuple(sorted(scan.descendants(digest)))) for tag, digest in scan.tags.items()]


# --- registries ---------------------------------------------------------------------------------


def _is_refusal(exc: OCIError) -> bool:
    """True when the registry refuses deletes altogether (405 / UNSUPPORTED), not just this one."""
    return isinstance(exc, Unsupported) or (isinstance(exc, RegistryError) and (exc.status == 405 or exc.code == "UNSUPPORTED"))


def _deletes_disabled(where: str, exc: OCIError, done: list[dict]) -> OCIError:
    so_far = "nothing was changed" if not done else "only %s were deleted before that" % ", ".join(d["tag"] or d["digest"] for d in done)
    return Unsupported(
        "%s: the registry does not allow deletes (HTTP 405 UNSUPPORTED; for distribution set storage.delete.enabled: true); %s. Registry said: %s"
        % (where, so_far, exc.msg),
        where,
    )


class _RegistryRemover:
    """Carries out decided deletions in one repository, re-checking every tag right before it acts."""

    def __init__(self, client, repository: str, where: str, scan: RepositoryScan, forced_placeholder: bool):
        self.client = client
        self.repository = repository
        self.where = where
        self.scan = scan
        self.forced_placeholder = forced_placeholder
        self.deleted: list[dict] = []
        self.skipped: list[dict] = []
        self.errors: list[str] = []
        self.methods: set[str] = set()
        self.manifests: list[str] = []
        self._deletes_checked = False

    def _current(self, tag: str) -> str | None:
        head = self.client.head_manifest(self.repository, tag)
        return head.digest if head else None

    def protected_digests(self, kept_tags: list[str]) -> set[str]:
        """What the kept tags point at right now, and every manifest inside those (never deleted by digest)."""
        protected: set[str] = set()
        for tag in kept_tags:
            digest = self._current(tag)
            if not digest:
                continue
            protected.add(digest)
            if digest in self.scan.manifests:
                protected |= self.scan.descendants(digest)
            else:
                # The tag moved to something the scan never saw: read it for its children.
                raw, media_type, _digest = self.client.get_manifest(self.repository, digest)
                doc, media_type = _media.parse_manifest(raw, media_type, self.where)
                protected |= {d.get("digest") for d in doc.get("manifests") or [] if isinstance(d, dict)}
        return protected

    def remove(self, digest: str, tags: list[str], all_tags_go: bool, protected: set[str]) -> None:
        """Remove ``tags`` (all on ``digest`` when scanned): by digest when nothing kept needs it, else by detaching each tag."""
        still = []
        for tag in tags:
            now = self._current(tag)
            if now == digest:
                still.append(tag)
            else:
                reason = "vanished before it was deleted" if now is None else "moved to %s before it was deleted" % now
                self.skipped.append({"tag": tag, "digest": digest, "reason": reason})
        if not still:
            return
        if all_tags_go and not self.forced_placeholder and digest not in protected:
            self._delete_manifest(digest, still, protected)
        else:
            for tag in still:
                self._detach(tag, digest)

    def _delete_manifest(self, digest: str, tags: list[str], protected: set[str]) -> None:
        try:
            self.client.delete_manifest(self.repository, digest)
        except NotFound:
            self.skipped.extend({"tag": t, "digest": digest, "reason": "manifest vanished before it was deleted"} for t in tags)
            return
        except OCIError as exc:
            if _is_refusal(exc):
                raise _deletes_disabled(self.where, exc, self.deleted) from None
            self.errors.append("%s@%s: %s" % (self.where, digest, exc.msg))
            return
        self.methods.add("manifest")
        self.deleted.extend({"tag": t, "digest": digest, "method": "manifest"} for t in tags)
        self.manifests.append(digest)
        self._delete_children(digest, protected)

    def _delete_children(self, digest: str, protected: set[str]) -> None:
        # Distribution keeps an index's images when the index goes; they would hold their blobs until
        # a garbage collection with --delete-untagged. Delete the ones nothing that stays uses.
        staying: set[str] = set(protected)
        gone = {d["digest"] for d in self.deleted}
        for tag_digest in self.scan.tags.values():
            if tag_digest not in gone:
                staying.add(tag_digest)
                staying |= self.scan.descendants(tag_digest)
        for child in sorted(self.scan.descendants(digest) - staying):
            try:
                self.client.delete_manifest(self.repository, child)
                self.manifests.append(child)
            except NotFound:
                continue
            except OCIError as exc:
                self.errors.append("%s@%s (image inside deleted index %s): %s" % (self.where, child, digest, exc.msg))

    def check_deletes_allowed(self) -> None:
        """Refuse early where the registry does not allow deletes (asked without changing anything).

        A DELETE of a digest that cannot exist answers 404 where deletes work and 405 where they are
        disabled. The tag-safe method asks before writing a placeholder (which could not be deleted
        again), and check mode asks so that it predicts the failure the real run would meet.
        """
        if self._deletes_checked:
            return
        probe = sha256_digest(("oci-images delete probe %s" % uuid.uuid4().hex).encode())
        try:
            self.client.delete_manifest(self.repository, probe)
        except NotFound:
            pass
        except OCIError as exc:
            if _is_refusal(exc):
                raise _deletes_disabled(self.where, exc, self.deleted) from None
            raise
        self._deletes_checked = True

    def _detach(self, tag: str, digest: str) -> None:
        self.check_deletes_allowed()
        original = self.client.get_manifest(self.repository, digest)
        if self.client.head_blob(self.repository, EMPTY_JSON_DIGEST) is None:
            self.client.upload_blob(self.repository, EMPTY_JSON_DIGEST, io.BytesIO(EMPTY_JSON), len(EMPTY_JSON))
        placeholder = _placeholder_manifest(tag)
        if self._current(tag) != digest:
            self.skipped.append({"tag": tag, "digest": digest, "reason": "moved before it was deleted"})
            return
        placeholder_digest = self.client.put_manifest(self.repository, tag, placeholder, _media.OCI_MANIFEST)
        try:
            self.client.delete_manifest(self.repository, placeholder_digest)
        except OCIError as exc:
            # Put the tag back where it was, so a failed delete changes nothing.
            self.client.put_manifest(self.repository, tag, original[0], original[1])
            if _is_refusal(exc):
                raise _deletes_disabled(self.where, exc, self.deleted) from None
            self.errors.append("%s:%s: %s (the tag was restored)" % (self.where, tag, exc.msg))
            return
        self.methods.add("placeholder")
        self.deleted.append({"tag": tag, "digest": digest, "method": "placeholder"})


def _placeholder_manifest(tag: str) -> bytes:
    """A tiny OCI manifest unique to this call (empty config, one empty layer, a random annotation)."""
    empty = {"mediaType": _media.OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": len(EMPTY_JSON)}
    doc = {
        "schemaVersion": 2,
        "mediaType": _media.OCI_MANIFEST,
        "artifactType": "application/vnd.oci-images.placeholder",
        "config": empty,
        "layers": [empty],
        "annotations": {PLACEHOLDER_ANNOTATION: "%s %s" % (tag, uuid.uuid4().hex)},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _delete_in_registry(target: DeleteTarget, request: DeleteRequest, check_mode: bool) -> dict:
    reference = target.reference
    repository = reference.repository or ""
    where = "docker://%s/%s" % (reference.registry, repository)
    if not reference.has_explicit_tag_or_digest and request.prune is None:
        raise InvalidReference(
            "%s names a repository, not an image: add :TAG or @DIGEST to delete one image, or give prune to delete tags by policy" % where, where
        )
    if reference.has_explicit_tag_or_digest and request.prune is not None:
        raise InvalidReference("%s: prune works on a whole repository; give it without a tag or digest" % reference, str(reference))
    with target.open_source() as source:
        client = target.client
        if reference.digest or reference.tag:
            ref = reference.digest or reference.tag or ""
            if client.head_manifest(repository, ref) is None:
                return _result([], [], 0, "none", {})
        try:
            tags = client.list_tags(repository)
        except NotFound:
            tags = []
        extra = [reference.digest] if reference.digest else []
        scan = scan_source(source, tags, with_created=request.prune is not None, extra_digests=extra)
        before = dict(scan.tags)
        remover = _RegistryRemover(client, repository, where, scan, request.method == "placeholder")

        if reference.digest:
            return _delete_registry_digest(reference.digest, scan, before, remover, where, check_mode)

        if reference.tag:
            tag = reference.tag
            digest = scan.tags.get(tag)
            if digest is None:  # vanished between the HEAD and the scan
                return _result([], [], 0, "none", before)
            others = [t for t in scan.tags if t != tag]
            decision_deleted = [{"tag": tag, "digest": digest}]
            reasons: dict = {}
        else:
            decision = decide_prune(_tag_states(scan), request.prune)  # type: ignore[arg-type]
            decision_deleted, others, reasons = decision.deleted, decision.kept, decision.reasons

        groups: dict[str, list[str]] = {}
        for item in decision_deleted:
            groups.setdefault(item["digest"], []).append(item["tag"])
        deleting = {item["tag"] for item in decision_deleted}
        kept_digests = {scan.tags[t] for t in others}
        kept_inside = set().union(*(scan.descendants(d) for d in kept_digests)) if kept_digests else set()
        planned = {
            digest: ("placeholder" if request.method == "placeholder" or digest in kept_digests or digest in kept_inside else "manifest") for digest in groups
        }
        if check_mode:
            if groups:
                remover.check_deletes_allowed()  # what the real run would meet first: a registry with deletes disabled
            deleted = [dict(item, method=planned[item["digest"]]) for item in decision_deleted]
            staying = kept_digests | kept_inside
            by_digest = sorted(d for d in groups if planned[d] == "manifest")
            inside = sorted(set().union(*(scan.descendants(d) for d in by_digest)) - staying) if by_digest else []
            return _result(
                deleted, others, freed_bytes(scan, deleting), _method_name(set(planned.values())), before, reasons=reasons, manifests=by_digest + inside
            )

        protected = remover.protected_digests(others) if "manifest" in planned.values() else set()
        for digest, group in groups.items():
            all_go = all(scan.tags[t] != digest or t in deleting for t in scan.tags)
            remover.remove(digest, group, all_go, protected)
        done = {d["tag"] for d in remover.deleted}
        kept = others + [s["tag"] for s in remover.skipped if s["tag"] not in others]
        return _result(
            remover.deleted,
            kept,
            freed_bytes(scan, done),
            _method_name(remover.methods),
            before,
            remover.errors,
            remover.skipped,
            reasons,
            remover.manifests,
        )


def _delete_registry_digest(digest: str, scan: RepositoryScan, before: dict, remover: _RegistryRemover, where: str, check_mode: bool) -> dict:
    tags_on = [t for t, d in scan.tags.items() if d == digest]
    parents = [t for t, d in scan.tags.items() if d != digest and digest in scan.descendants(d)]
    if parents:
        raise OCIError(
            "%s@%s is an image inside the index tagged %s; deleting it would break that index. Delete those tags first"
            % (where, digest, ", ".join(sorted(parents))),
            where,
        )
    deleted = [{"tag": t, "digest": digest, "method": "manifest"} for t in tags_on] or [{"tag": None, "digest": digest, "method": "manifest"}]
    kept = [t for t in scan.tags if t not in tags_on]
    freed = freed_bytes(scan, tags_on, [digest])
    if not tags_on:
        before = dict(before, **{digest: digest})
    if check_mode:
        remover.check_deletes_allowed()
        return _result(deleted, kept, freed, "manifest", before, manifests=[digest])
    try:
        remover.client.delete_manifest(remover.repository, digest)
    except NotFound:
        return _result([], kept, 0, "none", before)
    except OCIError as exc:
        if _is_refusal(exc):
            raise _deletes_disabled(where, exc, []) from None
        raise
    remover.deleted = deleted
    remover.manifests.append(digest)
    remover._delete_children(digest, set())
    return _result(deleted, kept, freed, "manifest", before, remover.errors, manifests=remover.manifests)


def _method_name(methods: set[str]) -> str:
    if not methods:
        return "none"
    return methods.pop() if len(methods) == 1 else "mixed"


# --- places whose names are removed one by one (OCI layouts, dir:) ---------------------------------


def _delete_named(target: DeleteTarget, request: DeleteRequest, check_mode: bool) -> dict:
    reference = target.reference
    where = str(reference)
    if not target.holds_names:
        if request.prune is not None:
            raise InvalidReference("%s: prune needs a repository or an OCI layout; %s holds one image" % (where, where), where)
        if not target.exists():
            return _result([], [], 0, "none", {})
        removed, freed = target.remove([], check_mode)
        deleted = [{"tag": None, "digest": digest, "method": target.method} for digest in removed.values()]
        return _result(deleted, [], freed, target.method, removed, after={})
    if request.prune is None and not reference.ref_name:
        raise InvalidReference("%s names a whole layout: add :REF to delete one image, or give prune to delete refs by policy" % where, where)
    if request.prune is not None and reference.ref_name:
        raise InvalidReference("%s: prune works on a whole layout; give it without :REF" % where, where)
    if not target.exists():
        return _result([], [], 0, "none", {})
    before = target.names()
    reasons: dict = {}
    if request.prune is None:
        names = [reference.ref_name] if reference.ref_name in before else []
        kept = [n for n in before if n not in names]
    else:
        with target.open_source() as source:
            scan = scan_source(source, list(before), with_created=True)
        decision = decide_prune(_tag_states(scan), request.prune)
        names = [d["tag"] for d in decision.deleted]
        kept, reasons = decision.kept, decision.reasons
    if not names:
        return _result([], kept, 0, "none", before, reasons=reasons)
    removed, freed = target.remove(names, check_mode)
    deleted = [{"tag": name, "digest": digest, "method": target.method} for name, digest in removed.items()]
    return _result(deleted, kept, freed, target.method if deleted else "none", before, reasons=reasons)
