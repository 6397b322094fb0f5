"""Bad input around signatures: each case fails the task with a clear msg, and nothing is written.

Malformed policies, unknown requirement types, a signature over another manifest, truncated, huge or
garbled signatures, and keys in the wrong format, through oci.images.image_copy as a playbook runs it.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from ansible_run import run_module
from images import build_image
from signing import make_gpg_key, skopeo_run, write_registries_d

pytestmark = pytest.mark.timeout(900)

IDENTITY = "registry.example.com/team/app:1"


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad-signatures")
    key = make_gpg_key(str(base), "signer")
    try:
        layout = str(base / "layout")
        images = [build_image(layout, ref="v%d" % n, seed=950 + n) for n in (1, 2)]
        signed = []
        for image in images:
            path = str(base / ("signed-%s" % image["ref"]))
            proc = skopeo_run(
                "--insecure-policy",
                "copy",
                "--quiet",
                "--sign-by",
                key.fingerprint,
                "--sign-identity",
                IDENTITY,
                image["reference"],
                "dir:" + path,
                env=key.env,
            )
            assert proc.returncode == 0, proc.stderr
            signed.append(path)
        from ansible_collections.oci.images.plugins.module_utils._sigstore import encrypt_private_key, generate_private_key, public_key_pem

        private = generate_private_key()
        (base / "cosign.key").write_bytes(encrypt_private_key(private, b"right"))
        (base / "cosign.pub").write_bytes(public_key_pem(private))
        yield {
            "base": base,
            "key": key,
            "image": images[0],
            "signed": signed,
            "registries_d": write_registries_d(str(base / "registries.d"), lookaside=str(base / "lookaside")),
        }
    finally:
        key.remove()


def signed_by(bad) -> dict:
    return {
        "type": "signedBy",
        "keyType": "GPGKeys",
        "keyPath": bad["key"].public_path,
        "signedIdentity": {"type": "exactReference", "dockerReference": IDENTITY},
    }


def refused(bad, tmp_path, expected: str, src: str | None = None, dest: str | None = None, env: dict | None = None, **options) -> str:
    """Run image_copy; it must fail with ``expected`` in msg and leave ``dest`` unwritten."""
    dest = dest or "dir:%s" % (tmp_path / "out")
    args = {"src": src or bad["image"]["reference"], "dest": dest, "registries_d": bad["registries_d"]}
    args.update(options)
    run = run_module("image_copy", args, env=env)
    assert run.failed, run.output
    assert expected in run.result["msg"], run.result["msg"]
    path = dest.split(":", 1)[1].split(":")[0]
    assert not os.path.exists(path) or (dest.startswith("oci:") and not os.listdir(os.path.join(path, "blobs", "sha256"))), "%s was written" % dest
    return run.result["msg"]


def policy_path(tmp_path, text: str) -> str:
    path = tmp_path / "policy.json"
    path.write_text(text)
    return str(path)


POLICY_CASES = [
    ("not-json", '{"default": [', "invalid policy in"),
    ("no-default", '{"transports": {}}', "the default policy is missing"),
    ("unknown-type", '{"default": [{"type": "signedByMagic"}]}', 'unknown policy requirement type "signedByMagic"'),
    ("unknown-field", '{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyFile": "/k"}]}', 'unknown field "keyFile"'),
    (
        "two-key-sources",
        '{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "keyData": "AA=="}]}',
        "exactly one of keyPath, keyPaths and keyData",
    ),
    (
        "unknown-identity",
        '{"default": [{"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "matchAnything"}}]}',
        'unknown signedIdentity type "matchAnything"',
    ),
    ("empty-requirements", '{"default": []}', "must not be empty"),
    ("duplicate-key", '{"default": [{"type": "reject"}], "default": [{"type": "insecureAcceptAnything"}]}', 'duplicate key "default"'),
    ("fulcio", '{"default": [{"type": "sigstoreSigned", "fulcio": {}}]}', "fulcio is not supported"),
    (
        "name-only-reference",
        '{"default": [{"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "exactReference", "dockerReference": "quay.io/a/b"}}]}',
        "contains neither a tag nor digest",
    ),
    (
        "relative-dir-scope",
        '{"default": [{"type": "reject"}], "transports": {"dir": {"relative/path": [{"type": "insecureAcceptAnything"}]}}}',
        "canonical absolute path",
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), POLICY_CASES, ids=[c[0] for c in POLICY_CASES])
def test_a_malformed_policy_is_refused_before_anything_is_written(bad, tmp_path, case, text, expected):
    refused(bad, tmp_path, expected, signature_policy=policy_path(tmp_path, text))


def test_a_missing_policy_file_is_refused(bad, tmp_path):
    refused(bad, tmp_path, "cannot read signature policy", signature_policy=str(tmp_path / "nowhere.json"))


def _dir_with_signature(bad, tmp_path, blob: bytes) -> str:
    path = str(tmp_path / "src")
    shutil.copytree(bad["signed"][0], path)
    with open(os.path.join(path, "signature-1"), "wb") as handle:
        handle.write(blob)
    return "dir:" + path


def _signature(bad, index: int) -> bytes:
    with open(os.path.join(bad["signed"][index], "signature-1"), "rb") as handle:
        return handle.read()


def test_a_signature_over_another_manifest_is_refused(bad, tmp_path):
    src = _dir_with_signature(bad, tmp_path, _signature(bad, 1))
    refused(bad, tmp_path, "does not match", src=src, signature_policy={"default": [signed_by(bad)]})


def test_a_truncated_signature_is_refused(bad, tmp_path):
    blob = _signature(bad, 0)
    src = _dir_with_signature(bad, tmp_path, blob[: len(blob) // 2])
    refused(bad, tmp_path, "refused by signature policy", src=src, signature_policy={"default": [signed_by(bad)]})


def test_a_huge_signature_is_refused(bad, tmp_path):
    src = _dir_with_signature(bad, tmp_path, b"\xa3" * (4 * 1024 * 1024 + 1))
    refused(bad, tmp_path, "over the 4194304-byte limit", src=src, signature_policy={"default": [signed_by(bad)]})


def test_a_signature_in_an_unknown_format_is_refused(bad, tmp_path):
    src = _dir_with_signature(bad, tmp_path, b"-----BEGIN PGP SIGNATURE-----\nnot binary\n")
    refused(bad, tmp_path, "unrecognized signature format", src=src, signature_policy={"default": [signed_by(bad)]})


def test_a_gpg_key_given_as_a_sigstore_key_is_refused(bad, tmp_path):
    src = "dir:" + bad["signed"][0]
    refused(bad, tmp_path, "looks like a GPG key", src=src, signature_policy={"default": [{"type": "sigstoreSigned", "keyPath": bad["key"].public_path}]})


def test_a_sigstore_key_given_as_a_gpg_key_is_refused(bad, tmp_path):
    src = "dir:" + bad["signed"][0]
    requirement = dict(signed_by(bad), keyPath=str(bad["base"] / "cosign.pub"))
    refused(bad, tmp_path, "no valid OpenPGP data found", src=src, signature_policy={"default": [requirement]})


def test_a_public_key_given_as_the_sigstore_private_key_is_refused(bad, tmp_path):
    refused(
        bad,
        tmp_path,
        "is not an encrypted sigstore private key",
        sign_by_sigstore_private_key=str(bad["base"] / "cosign.pub"),
        sign_passphrase="right",
        sign_identity=IDENTITY,
    )


def test_a_wrong_passphrase_for_the_sigstore_key_is_refused_and_not_shown(bad, tmp_path):
    msg = refused(
        bad, tmp_path, "wrong passphrase", sign_by_sigstore_private_key=str(bad["base"] / "cosign.key"), sign_passphrase="wrong-one", sign_identity=IDENTITY
    )
    assert "wrong-one" not in msg


def test_a_gpg_fingerprint_not_in_the_keyring_is_refused(bad, tmp_path):
    refused(bad, tmp_path, "is not in the gpg keyring", env=bad["key"].env, sign_by="0123456789ABCDEF0123456789ABCDEF01234567", sign_identity=IDENTITY)


def test_a_sign_identity_without_tag_is_refused(bad, tmp_path):
    refused(bad, tmp_path, "must be a full reference", env=bad["key"].env, sign_by=bad["key"].fingerprint, sign_identity="registry.example.com/team/app")


def test_signing_into_a_destination_that_holds_no_signatures_is_refused(bad, tmp_path):
    dest = "oci:%s:app" % (tmp_path / "layout")
    refused(bad, tmp_path, "cannot hold signatures", dest=dest, env=bad["key"].env, sign_by=bad["key"].fingerprint, sign_identity=IDENTITY)


def test_signatures_that_cannot_travel_are_refused_unless_removed(bad, tmp_path):
    dest = "oci:%s:app" % (tmp_path / "layout")
    refused(bad, tmp_path, "set remove_signatures: true", src="dir:" + bad["signed"][0], dest=dest)
    run = run_module("image_copy", {"src": "dir:" + bad["signed"][0], "dest": dest, "remove_signatures": True})
    assert run.changed and not run.failed, run.output


def test_a_signed_manifest_the_copy_would_rewrite_is_refused(bad, tmp_path):
    refused(bad, tmp_path, "would rewrite manifest", src="dir:" + bad["signed"][0], dest="dir:%s" % (tmp_path / "out"), format="v2s2")


def test_the_policy_as_json_text_is_read_like_a_file(bad, tmp_path):
    run = run_module(
        "image_copy",
        {"src": bad["image"]["reference"], "dest": "dir:%s" % (tmp_path / "out"), "signature_policy": json.dumps({"default": [{"type": "reject"}]})},
    )
    assert run.failed and "rejected by policy (reject)" in run.result["msg"] and not os.path.exists(tmp_path / "out")
