# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sigstore (cosign) keys and signatures: the encrypted private key file, signing, verifying.

The private key file is what ``cosign generate-key-pair`` writes and skopeo
``--sign-by-sigstore-private-key`` reads: a PEM block whose body is JSON
``{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher": {"name": "nacl/secretbox",
"nonce"}, "ciphertext"}`` (byte strings base64), the plaintext being the PKCS#8 DER private key.
The block is labelled ``ENCRYPTED COSIGN PRIVATE KEY``: cosign 1 and 2 and every skopeo read that
label, while skopeo 1.9 (containers/image 5.23) does not read cosign 2's ``ENCRYPTED SIGSTORE
PRIVATE KEY``; both labels are read here. The public key is a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo).

Signatures are over the payload bytes with SHA-256: ECDSA (ASN.1 DER), RSA PKCS#1 v1.5 or Ed25519,
as sigstore's verifiers take them. ``cryptography`` does the ECDSA; PyNaCl the secretbox (imported
only when a private key is read or written).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
import tempfile

from ._errors import OCIError

WRITE_PEM_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
READ_PEM_LABELS = ("ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED SIGSTORE PRIVATE KEY")
PEM_LABELS = {"cosign": "ENCRYPTED COSIGN PRIVATE KEY", "sigstore": "ENCRYPTED SIGSTORE PRIVATE KEY"}
# What cosign writes (go-tuf's encrypted package); readers refuse other values so a tampered file cannot make them work for hours.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
ACCEPTED_SCRYPT_PARAMS = ((32768, 8, 1), (65536, 8, 1))
_SALT_BYTES, _NONCE_BYTES, _KEY_BYTES = 32, 24, 32
_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
MAX_KEY_FILE_BYTES = 64 * 1024


class KeyFileError(OCIError):
    """A key file that cannot be read, decrypted or used."""


def _secretbox():
    try:
        from nacl.exceptions import CryptoError
        from nacl.secret import SecretBox
    except ImportError:
        raise KeyFileError(
            "sigstore private keys need the Python library PyNaCl (pip install PyNaCl) on the host the module runs on; "
            "it is in the collection's requirements.txt and execution environment"
        ) from None
    return SecretBox, CryptoError


def _scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=_KEY_BYTES, n=n, r=r, p=p).derive(passphrase)


def _pem(label: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)).encode("ascii")


def _pem_block(data: bytes, where: str) -> tuple[str, bytes]:
    match = _PEM_RE.search(data)
    if match is None:
        raise KeyFileError("%s: not a PEM file (no -----BEGIN ...----- block)" % where, where)
    try:
        body = base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except binascii.Error:
        raise KeyFileError("%s: the PEM block is not valid base64" % where, where) from None
    return match.group(1).decode("ascii"), body


def generate_private_key():
    """A new ECDSA P-256 private key (what cosign generates)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def encrypt_private_key(private_key, passphrase: bytes, label: str = WRITE_PEM_LABEL) -> bytes:
    """The encrypted private key file for ``private_key`` (scrypt + nacl secretbox, as cosign writes it)."""
    from cryptography.hazmat.primitives import serialization

    secret_box, _unused = _secretbox()
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt, nonce = os.urandom(_SALT_BYTES), os.urandom(_NONCE_BYTES)
    box = secret_box(_scrypt(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    ciphertext = box.encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}, "salt": base64.b64encode(salt).decode("ascii")},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode("ascii")},
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
    }
    return _pem(label, json.dumps(doc, separators=(",", ":")).encode("ascii"))


def decrypt_private_key(data: bytes, passphrase: bytes, where: str):
    """The private key in an encrypted sigstore key file; KeyFileError says what is wrong (format, passphrase, key type)."""
    from cryptography.hazmat.primitives import serialization

    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError("%s: %d bytes is too large for a sigstore private key file" % (where, len(data)), where)
    label, body = _pem_block(data, where)
    if label not in READ_PEM_LABELS:
        raise KeyFileError(
            "%s: a %r PEM block is not an encrypted sigstore private key (expected %s, as cosign generate-key-pair "
            "or oci.images.sigstore_key write)" % (where, label, " or ".join(READ_PEM_LABELS)),
            where,
        )
    try:
        doc = json.loads(body.decode("utf-8"))
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        ciphertext = base64.b64decode(doc["ciphertext"], validate=True)
        kdf_name, cipher_name = kdf["name"], cipher["name"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KeyFileError("%s: the encrypted key is not in cosign's format (%s)" % (where, exc), where) from None
    if kdf_name != "scrypt" or cipher_name != "nacl/secretbox":
        raise KeyFileError("%s: key encrypted with %s/%s; only scrypt/nacl/secretbox is supported" % (where, kdf_name, cipher_name), where)
    if (n, r, p) not in ACCEPTED_SCRYPT_PARAMS:
        raise KeyFileError("%s: unexpected scrypt parameters N=%d r=%d p=%d" % (where, n, r, p), where)
    if len(nonce) != _NONCE_BYTES:
        raise KeyFileError("%s: the nonce is %d bytes, not %d" % (where, len(nonce), _NONCE_BYTES), where)
    secret_box, crypto_error = _secretbox()
    try:
        der = secret_box(_scrypt(passphrase, salt, n, r, p)).decrypt(ciphertext, nonce)
    except crypto_error:
        raise KeyFileError("%s: cannot decrypt the private key: wrong passphrase, or the file is damaged" % where, where) from None
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError as exc:
        raise KeyFileError("%s: the decrypted key is not a PKCS#8 private key (%s)" % (where, exc), where) from None
    _check_key_type(key, where)
    return key


def _check_key_type(key, where: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if not isinstance(
        key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey, rsa.RSAPrivateKey, rsa.RSAPublicKey, ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)
    ):
        raise KeyFileError("%s: unsupported key type %s (ECDSA, RSA and Ed25519 keys are)" % (where, type(key).__name__), where)


def public_key_pem(key) -> bytes:
    """The PEM ``PUBLIC KEY`` of a private or public key."""
    from cryptography.hazmat.primitives import serialization

    public = key.public_key() if hasattr(key, "private_bytes") else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key) -> str:
    """A short stable name of a key for results: sha256 of its SubjectPublicKeyInfo DER."""
    from cryptography.hazmat.primitives import serialization

    public = key.public_key() if hasattr(key, "private_bytes") else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_public_key(data: bytes, where: str):
    """A sigstore public key from PEM (``PUBLIC KEY``); KeyFileError for anything else (a GPG key, a private key...)."""
    from cryptography.hazmat.primitives import serialization

    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError("%s: %d bytes is too large for a sigstore public key" % (where, len(data)), where)
    gpg = b"-----BEGIN PGP " in data or (data[:1] and data[0] in (0x98, 0x99, 0xC6))
    label = "" if gpg or b"-----BEGIN" not in data else _pem_block(data, where)[0]
    if label != "PUBLIC KEY":
        hint = " (this looks like a GPG key: use it with signedBy)" if gpg else ""
        raise KeyFileError("%s: not a sigstore public key: expected a PEM 'PUBLIC KEY' block%s" % (where, hint), where)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError("%s: the public key cannot be parsed (%s)" % (where, exc), where) from None
    _check_key_type(key, where)
    return key


def sign(private_key, payload: bytes) -> str:
    """The base64 signature over ``payload`` with SHA-256, as cosign annotates it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        raw = private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        raw = private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = private_key.sign(payload)
    return base64.b64encode(raw).decode("ascii")


def verify(public_key, payload: bytes, base64_signature: str) -> str | None:
    """None when ``base64_signature`` is a valid signature of ``payload`` by ``public_key``; else why not."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    try:
        raw = base64.b64decode(base64_signature, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return "the signature annotation is not valid base64"
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(raw, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            public_key.verify(raw, payload)
    except (InvalidSignature, ValueError):
        return "cryptographic signature verification failed"
    return None


# --- a key pair on disk (oci.images.sigstore_key) ----------------------------------------------


def _read(path: str, limit: int = MAX_KEY_FILE_BYTES) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError("cannot read %s: %s" % (path, exc.strerror or exc), path) from None


def _write(path: str, data: bytes, mode: int) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def default_public_key_path(private_key_path: str) -> str:
    """``cosign.key`` -> ``cosign.pub`` (cosign's names); any other name gets ``.pub`` appended."""
    return private_key_path[: -len(".key")] + ".pub" if private_key_path.endswith(".key") else private_key_path + ".pub"


def ensure_key_pair(
    path: str, public_path: str, passphrase: str, state: str = "present", force: bool = False, label: str = WRITE_PEM_LABEL, check_mode: bool = False
) -> dict:
    """Make the key pair files what ``state`` asks; returns the module result (never the private key or passphrase)."""
    secret = passphrase.encode("utf-8")
    private_data, public_data = _read(path), _read(public_path)
    before = {"private_key": "present" if private_data is not None else "absent", "public_key": (public_data or b"").decode("ascii", "replace") or None}
    result: dict = {"changed": False, "private_key_path": path, "public_key_path": public_path}
    if state == "absent":
        after = {"private_key": "absent", "public_key": None}
        if private_data is not None or public_data is not None:
            result["changed"] = True
            if not check_mode:
                for name in (path, public_path):
                    if os.path.lexists(name):
                        os.unlink(name)
        result["diff"] = {"before": before, "after": after}
        return result
    key = None
    if private_data is not None and not force:
        key = decrypt_private_key(private_data, secret, path)  # a wrong passphrase fails: an existing key is never replaced silently
    relabel = key is not None and _pem_block(private_data or b"", path)[0] != label
    if key is None or relabel:
        key = key or generate_private_key()
        result["changed"] = True
        if not check_mode:
            _write(path, encrypt_private_key(key, secret, label), 0o600)
    elif stat.S_IMODE(os.stat(path).st_mode) != 0o600:
        result["changed"] = True
        if not check_mode:
            os.chmod(path, 0o600)
    public = public_key_pem(key)
    if public_data != public:
        result["changed"] = True
        if not check_mode:
            _write(public_path, public, 0o644)
    result.update(public_key=public.decode("ascii"), key_id=key_id(key))
    result["diff"] = {"before": before, "after": {"private_key": "present", "public_key": public.decode("ascii")}}
    return result
