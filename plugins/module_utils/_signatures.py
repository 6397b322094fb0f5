# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image signatures as containers/image keeps them: the two kinds, their payloads, their stored form.

Two kinds exist (containers-signature(5), containers-sigstore-signing):

- **simple signing**: an OpenPGP signed message (``gpg --sign``, binary) over a JSON payload whose
  ``critical.type`` is ``atomic container signature``;
- **sigstore**: the same JSON payload with ``critical.type`` ``cosign container image signature``,
  signed with a sigstore (cosign) key; the signature travels base64 in the annotation
  ``dev.cosignproject.cosign/signature`` beside the payload and its MIME type.

Both payloads name the manifest digest they sign and a Docker reference (the identity). Stored
alone (``dir:`` ``signature-N`` files, lookaside stores) a signature is the OpenPGP message as is,
or a zero byte, the format name, a newline and the format's JSON (``sigstore-json``). Parsing is
as strict as containers/image's: unknown or missing critical fields refuse the signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field

from ._convert import go_json
from ._digest import new_hasher, sha256_digest
from ._errors import OCIError
from ._reference import validate_digest
from ._version import COLLECTION_VERSION

SIMPLE_SIGNING = "simple-signing"
SIGSTORE = "sigstore"
SIGSTORE_MIME_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGSTORE_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING_TYPE = "atomic container signature"
SIGSTORE_PAYLOAD_TYPE = "cosign container image signature"
#: The most a signature (or a sigstore payload) may weigh, as containers/image limits it.
MAX_SIGNATURE_BYTES = 4 * 1024 * 1024
CREATOR = "oci.images %s" % COLLECTION_VERSION

_SIGSTORE_FORMAT = b"sigstore-json"
_SIMPLE_FORMAT = b"simple-signing"
# First bytes of an OpenPGP message: a compressed data, one-pass signature or signature packet (old or new format).
_OPENPGP_STARTS = frozenset((0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0x3D, 0xC4, 0x88, 0x89, 0x8A, 0x8B, 0xC2))


class InvalidSignature(OCIError):
    """A signature that cannot be parsed, is too large, or whose payload is not what it must be."""


@dataclass(frozen=True)
class Signature:
    """One signature. ``data`` is the OpenPGP message (simple signing) or the signed payload (sigstore)."""

    kind: str
    data: bytes
    mime_type: str | None = None
    #: sigstore: the annotations, sorted (key, value) pairs; the signature itself is one of them.
    annotations: tuple = ()
    #: Where it was found (a file, a URL, an attachment tag), for messages and image_info.
    where: str = field(default="", compare=False)

    @property
    def annotation_map(self) -> dict[str, str]:
        return dict(self.annotations)

    def blob(self) -> bytes:
        """The stored form containers/image reads from ``dir:`` and lookaside stores."""
        if self.kind == SIMPLE_SIGNING:
            return self.data
        chunk = json.dumps(
            {"mimeType": self.mime_type or "", "payload": base64.b64encode(self.data).decode("ascii"), "annotations": self.annotation_map},
            separators=(",", ":"),
        ).encode("utf-8")
        return b"\x00" + _SIGSTORE_FORMAT + b"\n" + chunk


def sigstore_signature(
    payload: bytes, base64_signature: str, where: str = "", mime_type: str = SIGSTORE_MIME_TYPE, annotations: dict | None = None
) -> Signature:
    """A sigstore signature from its parts (the payload and the base64 signature over it)."""
    merged = dict(annotations or {})
    merged[SIGSTORE_SIGNATURE_ANNOTATION] = base64_signature
    return Signature(SIGSTORE, bytes(payload), mime_type, tuple(sorted(merged.items())), where)


def signature_from_blob(blob: bytes, where: str) -> Signature:
    """Parse the stored form (see ``Signature.blob``); InvalidSignature names ``where`` and what is wrong."""
    if len(blob) > MAX_SIGNATURE_BYTES:
        raise InvalidSignature("%s: the signature is %d bytes, over the %d-byte limit" % (where, len(blob), MAX_SIGNATURE_BYTES), where)
    if not blob:
        raise InvalidSignature("%s: the signature is empty" % where, where)
    if blob[0] in _OPENPGP_STARTS:
        return Signature(SIMPLE_SIGNING, bytes(blob), where=where)
    if blob[0] != 0:
        raise InvalidSignature("%s: unrecognized signature format (first byte 0x%02x)" % (where, blob[0]), where)
    name, newline, chunk = blob[1:].partition(b"\n")
    if not newline:
        raise InvalidSignature("%s: invalid signature format, no newline after the format name" % where, where)
    if name == _SIMPLE_FORMAT:
        return Signature(SIMPLE_SIGNING, bytes(chunk), where=where)
    if name != _SIGSTORE_FORMAT:
        raise InvalidSignature("%s: unrecognized signature format %r" % (where, name.decode("ascii", "replace")), where)
    try:
        doc = json.loads(chunk.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        mime_type = doc.get("mimeType") or ""
        payload = base64.b64decode(doc.get("payload") or "", validate=True)
        annotations = doc.get("annotations") or {}
        if not isinstance(mime_type, str) or not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            raise ValueError("mimeType must be a string and annotations an object of strings")
    except (UnicodeDecodeError, ValueError, binascii.Error) as exc:
        raise InvalidSignature("%s: the sigstore signature is not valid: %s" % (where, exc), where) from None
    return Signature(SIGSTORE, payload, mime_type, tuple(sorted(annotations.items())), where)


# --- payloads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """What a signature claims (untrusted until its cryptographic signature verified)."""

    digest: str
    identity: str
    creator: str | None = None
    timestamp: int | None = None


def make_payload(kind: str, digest: str, identity: str, timestamp: int | None = None) -> bytes:
    """The JSON a signature of ``kind`` signs, serialized as containers/image does (keys sorted, Go escaping)."""
    if not digest or not identity:
        raise OCIError("a signature needs a manifest digest and an identity")
    doc = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLE_SIGNING_TYPE if kind == SIMPLE_SIGNING else SIGSTORE_PAYLOAD_TYPE,
        },
        "optional": {"creator": CREATOR, "timestamp": int(time.time()) if timestamp is None else timestamp},
    }
    return go_json(doc)


def unique_keys(pairs):
    """json object_pairs_hook refusing a key given twice (containers/image's parsers do)."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError('duplicate key "%s"' % key)
        seen[key] = value
    return seen


def _exact(doc, fields: tuple[str, ...], what: str) -> dict:
    if not isinstance(doc, dict):
        raise ValueError("%s is not a JSON object" % what)
    unknown = sorted(set(doc) - set(fields))
    missing = [f for f in fields if f not in doc]
    if unknown:
        raise ValueError('unknown key "%s" in %s' % (unknown[0], what))
    if missing:
        raise ValueError('key "%s" missing in %s' % (missing[0], what))
    return doc


def parse_payload(data: bytes, kind: str, where: str) -> Payload:
    """The claims of a payload, refused (InvalidSignature) unless exactly in the form containers/image accepts."""
    expected = SIMPLE_SIGNING_TYPE if kind == SIMPLE_SIGNING else SIGSTORE_PAYLOAD_TYPE
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=unique_keys)
        doc = _exact(doc, ("critical", "optional"), "the payload")
        critical = _exact(doc["critical"], ("type", "image", "identity"), "critical")
        if critical["type"] != expected:
            raise ValueError("unrecognized signature type %r (expected %r)" % (critical["type"], expected))
        digest = _exact(critical["image"], ("docker-manifest-digest",), "critical.image")["docker-manifest-digest"]
        identity = _exact(critical["identity"], ("docker-reference",), "critical.identity")["docker-reference"]
        if not isinstance(digest, str) or not isinstance(identity, str):
            raise ValueError("the digest and the identity must be strings")
        optional = doc["optional"]
        if optional is not None and not isinstance(optional, dict):
            raise ValueError("optional is not a JSON object")
        optional = optional or {}
        creator, timestamp = optional.get("creator"), optional.get("timestamp")
        if creator is not None and not isinstance(creator, str):
            raise ValueError("optional.creator is not a string")
        if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or int(timestamp) != timestamp):
            raise ValueError("optional.timestamp is not an integer")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidSignature("%s: the signed payload is not a valid %s: %s" % (where, expected, exc), where) from None
    return Payload(digest, identity, creator, int(timestamp) if timestamp is not None else None)


def digest_matches(raw: bytes, known_digest: str, claimed: str) -> bool:
    """Whether the manifest ``raw`` (whose digest as its source names it is ``known_digest``) is the one ``claimed``."""
    if claimed == known_digest:
        return True
    try:
        validate_digest(claimed)
    except OCIError:
        return False
    hasher = new_hasher(claimed)
    hasher.update(raw)
    return "%s:%s" % (claimed.partition(":")[0], hasher.hexdigest()) == claimed and known_digest == sha256_digest(raw)


def sigstore_attachment_tag(digest: str) -> str:
    """The tag cosign (and containers/image with use-sigstore-attachments) attaches signatures of ``digest`` under."""
    algorithm, _unused, encoded = digest.partition(":")
    return "%s-%s.sig" % (algorithm, encoded)
