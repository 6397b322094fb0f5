"""Signatures, both directions, with skopeo 1.9.3 and Debian's gpg as the oracles.

skopeo signs (GPG simple signing into a registry's lookaside store or a dir:) and the collection's
policy check must accept exactly what skopeo's does; the collection signs and ``skopeo copy
--policy`` must accept it, and refuse it once the image is altered. Every signedIdentity form
has a case that accepts and one that refuses, decided by both skopeo and the collection.

Debian's skopeo 1.9.3 is built with sigstore disabled ("Debian-local change: sigstore disabled",
for signing and verifying alike), so sigstore signatures are checked against skopeo only where
skopeo can (test_skopeo_verifies_our_sigstore_signature skips otherwise), and are otherwise
verified by the collection and, independently, by ``openssl dgst``.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess

import pytest
from ansible_run import run_module
from collection_tree import subprocess_runner
from images import build_image, build_index
from signing import make_gpg_key, skopeo_accepts, skopeo_run, write_policy, write_registries_d

from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._policy import PolicyRefused, parse_policy
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient
from ansible_collections.oci.images.plugins.module_utils._signature_stores import load_registries_d
from ansible_collections.oci.images.plugins.module_utils._trust import Trust

pytestmark = pytest.mark.timeout(900)

PLAIN = ConnectionOptions(validate_certs=False)
ACCEPT = {"type": "insecureAcceptAnything"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, registry):
    """One registry, two gpg keys, a sigstore key pair made by oci.images.sigstore_key, registries.d, images."""
    base = tmp_path_factory.mktemp("signatures")
    signer, other = make_gpg_key(str(base), "signer"), make_gpg_key(str(base), "other")
    try:
        registries_d = write_registries_d(str(base / "registries.d"), lookaside=str(base / "lookaside"), attachments=True)
        layout = str(base / "layout")
        world = {
            "base": base,
            "signer": signer,
            "other": other,
            "registries_d": registries_d,
            "host": registry.host,
            "image": build_image(layout, ref="v1", seed=901),
            "image2": build_image(layout, ref="v2", seed=902),
            "index": build_index(layout, ref="multi", platforms=["linux/amd64", "linux/arm64"], seed=903),
        }
        keys = {}
        for name, passphrase in (("ours", "pass-ours"), ("wrong", "pass-wrong")):
            path = str(base / ("%s.key" % name))
            run = run_module("sigstore_key", {"path": path, "passphrase": passphrase})
            assert run.changed and not run.failed, run.output
            keys[name] = {"key": path, "pub": str(base / ("%s.pub" % name)), "passphrase": passphrase}
        world["sigstore"] = keys
        yield world
    finally:
        signer.remove()
        other.remove()


def ref(world, repo: str, tag: str = "1") -> str:
    return "docker://%s/%s:%s" % (world["host"], repo, tag)


def skopeo_sign_push(world, src: str, dest: str, *extra: str) -> None:
    """skopeo copy with --sign-by (its lookaside store is the one of world's registries.d)."""
    tls = ["--dest-tls-verify=false"] if dest.startswith("docker://") else []
    proc = skopeo_run(
        "--insecure-policy",
        "--registries.d",
        world["registries_d"],
        "copy",
        "--quiet",
        *tls,
        "--sign-by",
        world["signer"].fingerprint,
        *extra,
        src,
        dest,
        env=world["signer"].env,
    )
    assert proc.returncode == 0, proc.stderr


def signed_by(world, key: str = "signer", identity: dict | None = None) -> dict:
    requirement = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": world[key].public_path}
    if identity is not None:
        requirement["signedIdentity"] = identity
    return requirement


def policy_file(world, name: str, requirement: dict, transport: str = "docker") -> str:
    policy = {"default": [{"type": "reject"}], "transports": {transport: {"": [requirement]}}}
    return write_policy(str(world["base"] / ("%s.json" % name)), policy)


def our_decision(world, policy: dict, src: str) -> tuple[bool, str]:
    """The collection's policy check, in-process, for copying ``src`` (nothing is copied)."""
    trust = Trust(parse_policy(policy, "test policy"), load_registries_d(world["registries_d"]), runner=subprocess_runner)
    try:
        trust.admit(parse_reference(src), parse_reference("dir:%s" % (world["base"] / "never-written")), PLAIN, PLAIN, CopyOptions())
        return True, ""
    except PolicyRefused as exc:
        return False, exc.msg
    finally:
        trust.close()


def copy(world, src: str, dest: str, env: dict | None = None, **options):
    args = {"src": src, "dest": dest, "registries_d": world["registries_d"], "src_validate_certs": False, "dest_validate_certs": False}
    args.update(options)
    return run_module("image_copy", args, env=env)


# --- skopeo signs, the collection verifies --------------------------------------------------------


@pytest.fixture(scope="module")
def skopeo_signed(world):
    """team/app:1 pushed and GPG-signed by skopeo (identity <host>/team/app:1), then team/app:2 = same image, unsigned tag."""
    skopeo_sign_push(world, world["image"]["reference"], ref(world, "team/app", "1"))
    run = copy(world, ref(world, "team/app", "1"), ref(world, "team/app", "2"))
    assert not run.failed, run.output
    return world


def test_an_image_skopeo_signed_with_gpg_is_accepted_and_its_signature_travels(skopeo_signed, tmp_path):
    world = skopeo_signed
    policy = policy_file(world, "gpg-accept", signed_by(world))
    run = copy(world, ref(world, "team/app", "1"), "dir:%s" % (tmp_path / "out"), signature_policy=policy)
    assert not run.failed, run.output
    entry = run.result["results"][0]
    assert entry["policy"]["accepted"] and "signed by key %s" % world["signer"].fingerprint in entry["policy"]["reasons"][0]
    assert entry["signatures"]["carried"] == 1
    assert run.result["signature_policy"] == policy
    # skopeo accepts what the collection wrote (the carried signature, in dir: form) under an exactReference policy.
    dir_policy = policy_file(world, "gpg-dir", signed_by(world, identity={"type": "exactReference", "dockerReference": "%s/team/app:1" % world["host"]}), "dir")
    assert skopeo_accepts(dir_policy, "dir:%s" % (tmp_path / "out"), "dir:%s" % (tmp_path / "again"), world["registries_d"]) == (True, "")


def test_an_image_skopeo_signed_is_refused_with_the_wrong_key_and_nothing_is_written(skopeo_signed, tmp_path):
    world = skopeo_signed
    policy = policy_file(world, "gpg-wrong", signed_by(world, "other"))
    run = copy(world, ref(world, "team/app", "1"), "dir:%s" % (tmp_path / "out"), signature_policy=policy)
    assert run.failed
    assert "refused by signature policy" in run.result["msg"] and "not one of the policy's keys" in run.result["msg"]
    assert not os.path.exists(tmp_path / "out")
    assert skopeo_accepts(policy, ref(world, "team/app", "1"), "dir:%s" % (tmp_path / "sk"), world["registries_d"])[0] is False


def test_a_tampered_manifest_is_refused_by_both(world, tmp_path):
    signed = str(tmp_path / "signed")
    skopeo_sign_push(world, world["image"]["reference"], "dir:" + signed, "--sign-identity", "%s/team/app:1" % world["host"])
    with open(os.path.join(signed, "manifest.json"), "rb") as handle:
        manifest = json.load(handle)
    manifest["annotations"] = {"tampered": "yes"}
    with open(os.path.join(signed, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    identity = {"type": "exactReference", "dockerReference": "%s/team/app:1" % world["host"]}
    policy = policy_file(world, "gpg-tampered", signed_by(world, identity=identity), "dir")
    run = copy(world, "dir:" + signed, "dir:%s" % (tmp_path / "out"), signature_policy=policy)
    assert run.failed and "does not match" in run.result["msg"], run.output
    assert not os.path.exists(tmp_path / "out")
    accepted, message = skopeo_accepts(policy, "dir:" + signed, "dir:%s" % (tmp_path / "sk"), world["registries_d"])
    assert not accepted and "does not match" in message


# --- every signedIdentity form: one case that accepts, one that refuses, decided by both ------------


@pytest.fixture(scope="module")
def identity_world(skopeo_signed):
    """The signed team/app:1 also at team/copy:1 and mirror/app:1, signatures carried by the collection."""
    world = skopeo_signed
    for dest in (ref(world, "team/copy", "1"), ref(world, "mirror/app", "1")):
        run = copy(world, ref(world, "team/app", "1"), dest)
        assert not run.failed and run.result["results"][0]["signatures"]["carried"] == 1, run.output
    return world


IDENTITY_CASES = [
    # (form, signedIdentity (HOST is the registry), image checked, accepted)
    ("matchRepoDigestOrExact", {"type": "matchRepoDigestOrExact"}, "team/app:1", True),
    ("matchRepoDigestOrExact", {"type": "matchRepoDigestOrExact"}, "team/app:2", False),
    ("matchExact", {"type": "matchExact"}, "team/app:1", True),
    ("matchExact", {"type": "matchExact"}, "team/app@DIGEST", False),
    ("matchRepository", {"type": "matchRepository"}, "team/app:2", True),
    ("matchRepository", {"type": "matchRepository"}, "team/copy:1", False),
    ("exactReference", {"type": "exactReference", "dockerReference": "HOST/team/app:1"}, "team/copy:1", True),
    ("exactReference", {"type": "exactReference", "dockerReference": "HOST/team/app:2"}, "team/copy:1", False),
    ("exactRepository", {"type": "exactRepository", "dockerRepository": "HOST/team/app"}, "team/copy:1", True),
    ("exactRepository", {"type": "exactRepository", "dockerRepository": "HOST/team/other"}, "team/copy:1", False),
    ("remapIdentity", {"type": "remapIdentity", "prefix": "HOST/mirror", "signedPrefix": "HOST/team"}, "mirror/app:1", True),
    ("remapIdentity", {"type": "remapIdentity", "prefix": "HOST/mirror", "signedPrefix": "HOST/elsewhere"}, "mirror/app:1", False),
]


@pytest.mark.parametrize(
    ("form", "identity", "image", "accepted"), IDENTITY_CASES, ids=["%s-%s" % (c[0], "accepts" if c[3] else "refuses") for c in IDENTITY_CASES]
)
def test_signed_identity_forms_decide_like_skopeo(identity_world, tmp_path, form, identity, image, accepted):
    world = identity_world
    identity = json.loads(json.dumps(identity).replace("HOST", world["host"]))
    src = "docker://%s/%s" % (world["host"], image.replace("DIGEST", world["image"]["manifest_digest"]))
    policy = {"default": [{"type": "reject"}], "transports": {"docker": {"": [signed_by(world, identity=identity)]}}}
    path = write_policy(str(tmp_path / "policy.json"), policy)
    skopeo_says, skopeo_message = skopeo_accepts(path, src, "dir:%s" % (tmp_path / "sk"), world["registries_d"])
    ours, message = our_decision(world, policy, src)
    assert skopeo_says is accepted, skopeo_message
    assert ours is accepted, message
    if not accepted:
        assert "is not accepted" in message and "is not accepted" in skopeo_message


# --- the collection signs, skopeo verifies -------------------------------------------------------------


def test_an_image_we_signed_with_gpg_is_accepted_by_skopeo_and_refused_once_altered(world, tmp_path):
    dest = ref(world, "ours/gpg", "1")
    run = copy(world, world["image"]["reference"], dest, env=world["signer"].env, sign_by=world["signer"].fingerprint)
    assert run.changed and not run.failed, run.output
    assert run.result["results"][0]["signatures"]["added"] == 1
    policy = policy_file(world, "ours-gpg", signed_by(world))
    assert skopeo_accepts(policy, dest, "dir:%s" % (tmp_path / "ok"), world["registries_d"]) == (True, "")
    assert skopeo_accepts(policy_file(world, "ours-gpg-wrong", signed_by(world, "other")), dest, "dir:%s" % (tmp_path / "w"), world["registries_d"])[0] is False
    # Signing again is a no-op: the valid signature by the same key for the same identity is there.
    again = copy(world, world["image"]["reference"], dest, env=world["signer"].env, sign_by=world["signer"].fingerprint)
    assert not again.changed and again.result["results"][0]["signatures"] == {
        "carried": 0,
        "added": 0,
        "identity": dest[len("docker://") :],
        "signed_by": [world["signer"].fingerprint],
    }
    # Altered: another image under the signed tag.
    skopeo_run("--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", world["image2"]["reference"], dest)
    accepted, message = skopeo_accepts(policy, dest, "dir:%s" % (tmp_path / "altered"), world["registries_d"])
    assert not accepted and "no signature exists" in message


def test_a_multi_arch_image_we_signed_is_accepted_by_skopeo_per_image(world, tmp_path):
    dest = ref(world, "ours/multi", "1")
    run = copy(world, world["index"]["reference"], dest, env=world["signer"].env, sign_by=world["signer"].fingerprint)
    assert not run.failed, run.output
    assert run.result["results"][0]["signatures"]["added"] == 3  # the index and each of its two images, as skopeo signs them
    policy = policy_file(world, "ours-multi", signed_by(world))
    assert skopeo_accepts(policy, dest, "dir:%s" % (tmp_path / "ok"), world["registries_d"], "--multi-arch", "all") == (True, "")


def test_a_dir_image_we_signed_with_a_passphrase_protected_key_is_accepted_by_skopeo(world, tmp_path):
    key = make_gpg_key(str(tmp_path), "locked", passphrase="open sesame")
    try:
        out = str(tmp_path / "out")
        identity = "registry.example.com/team/app:1"
        run = copy(
            world, world["image"]["reference"], "dir:" + out, env=key.env, sign_by=key.fingerprint, sign_passphrase="open sesame", sign_identity=identity
        )
        assert not run.failed, run.output
        assert "open sesame" not in run.output
        assert sorted(n for n in os.listdir(out) if n.startswith("signature-")) == ["signature-1"]
        requirement = {
            "type": "signedBy",
            "keyType": "GPGKeys",
            "keyPath": key.public_path,
            "signedIdentity": {"type": "exactReference", "dockerReference": identity},
        }
        policy = policy_file(world, "ours-dir", requirement, "dir")
        assert skopeo_accepts(policy, "dir:" + out, "dir:%s" % (tmp_path / "sk"), world["registries_d"]) == (True, "")
    finally:
        key.remove()


# --- sigstore --------------------------------------------------------------------------------------------


def test_sigstore_key_pair_is_made_once_with_a_private_key_only_its_owner_reads(world, tmp_path):
    path = str(tmp_path / "cosign.key")
    check = run_module("sigstore_key", {"path": path, "passphrase": "pw"}, check=True, diff=True)
    assert check.changed and not os.path.exists(path)
    first = run_module("sigstore_key", {"path": path, "passphrase": "pw"})
    assert first.changed and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "rb") as handle:
        assert handle.readline() == b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n"
    second = run_module("sigstore_key", {"path": path, "passphrase": "pw"}, diff=True)
    assert not second.changed and second.result["public_key"] == first.result["public_key"]
    with open(str(tmp_path / "cosign.pub")) as handle:
        assert handle.read() == first.result["public_key"]
    wrong = run_module("sigstore_key", {"path": path, "passphrase": "not it"})
    assert wrong.failed and "wrong passphrase" in wrong.result["msg"] and "not it" not in wrong.output


def _attachment_layer(world, repo: str, digest: str) -> tuple[bytes, str]:
    client = RegistryClient(world["host"], PLAIN)
    try:
        raw, _media_type, _digest = client.get_manifest(repo, digest.replace(":", "-") + ".sig")
        layer = json.loads(raw)["layers"][-1]
        with client.get_blob(repo, layer["digest"], layer["size"]) as stream:
            payload = stream.read()
        return payload, layer["annotations"]["dev.cosignproject.cosign/signature"]
    finally:
        client.close()


def test_an_image_we_signed_with_sigstore_is_accepted_by_our_policy_and_by_openssl(world, tmp_path):
    keys = world["sigstore"]
    dest = ref(world, "ours/sigstore", "1")
    run = copy(world, world["image"]["reference"], dest, sign_by_sigstore_private_key=keys["ours"]["key"], sign_passphrase=keys["ours"]["passphrase"])
    assert not run.failed, run.output
    assert run.result["results"][0]["signatures"]["added"] == 1 and keys["ours"]["passphrase"] not in run.output
    again = copy(world, world["image"]["reference"], dest, sign_by_sigstore_private_key=keys["ours"]["key"], sign_passphrase=keys["ours"]["passphrase"])
    assert not again.changed and again.result["results"][0]["signatures"]["added"] == 0
    # openssl, an implementation of its own, verifies the ECDSA signature over the payload stored in the .sig tag.
    payload, encoded = _attachment_layer(world, "ours/sigstore", world["image"]["manifest_digest"])
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(encoded))
    proc = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", keys["ours"]["pub"], "-signature", str(tmp_path / "sig.der"), str(tmp_path / "payload")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "Verified OK" in proc.stdout, proc.stdout + proc.stderr
    claims = json.loads(payload)["critical"]
    assert claims["type"] == "cosign container image signature"
    assert claims["image"]["docker-manifest-digest"] == world["image"]["manifest_digest"]
    assert claims["identity"]["docker-reference"] == dest[len("docker://") :]
    ok = {"type": "sigstoreSigned", "keyPath": keys["ours"]["pub"]}
    assert our_decision(world, {"default": [ok]}, dest) == (True, "")
    accepted, message = our_decision(world, {"default": [{"type": "sigstoreSigned", "keyPath": keys["wrong"]["pub"]}]}, dest)
    assert not accepted and "cryptographic signature verification failed" in message
    # Altered: another image under the signed tag has no signature.
    skopeo_run("--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", world["image2"]["reference"], dest)
    accepted, message = our_decision(world, {"default": [ok]}, dest)
    assert not accepted and "no signature exists" in message


def test_an_openssl_signature_over_our_payload_is_accepted_and_one_over_another_manifest_refused(world, tmp_path):
    """The other direction for sigstore: a signature made by openssl (not by the collection) in a dir: image."""
    from ansible_collections.oci.images.plugins.module_utils._signatures import SIGSTORE, make_payload, sigstore_signature

    keys = world["sigstore"]
    out = str(tmp_path / "img")
    assert not copy(world, world["image"]["reference"], "dir:" + out).failed
    pem = subprocess.run(["openssl", "pkey", "-out", str(tmp_path / "plain.pem")], input=_decrypted_pem(keys["ours"]), capture_output=True, check=True)
    assert pem.returncode == 0
    for position, digest in ((1, world["image"]["manifest_digest"]), (2, world["image2"]["manifest_digest"])):
        payload = make_payload(SIGSTORE, digest, "registry.example.com/team/app:1")
        (tmp_path / "payload").write_bytes(payload)
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(tmp_path / "plain.pem"), str(tmp_path / "payload")], capture_output=True, check=True
        ).stdout
        with open(os.path.join(out, "signature-%d" % position), "wb") as handle:
            handle.write(sigstore_signature(payload, base64.b64encode(signature).decode()).blob())
    policy = {
        "default": [
            {
                "type": "sigstoreSigned",
                "keyPath": keys["ours"]["pub"],
                "signedIdentity": {"type": "exactRepository", "dockerRepository": "registry.example.com/team/app"},
            }
        ]
    }
    accepted, message = our_decision(world, policy, "dir:" + out)
    assert accepted, message
    os.unlink(os.path.join(out, "signature-1"))
    os.rename(os.path.join(out, "signature-2"), os.path.join(out, "signature-1"))
    accepted, message = our_decision(world, policy, "dir:" + out)
    assert not accepted and "does not match" in message


def _decrypted_pem(key: dict) -> bytes:
    from cryptography.hazmat.primitives import serialization

    from ansible_collections.oci.images.plugins.module_utils._sigstore import decrypt_private_key

    with open(key["key"], "rb") as handle:
        private = decrypt_private_key(handle.read(), key["passphrase"].encode(), key["key"])
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def test_skopeo_verifies_our_sigstore_signature(world, tmp_path):
    """Runs where skopeo can verify sigstore signatures; Debian's 1.9.3 says "sigstore disabled" and the test skips there."""
    keys = world["sigstore"]
    dest = ref(world, "ours/sigstore-skopeo", "1")
    run = copy(world, world["image"]["reference"], dest, sign_by_sigstore_private_key=keys["ours"]["key"], sign_passphrase=keys["ours"]["passphrase"])
    assert not run.failed, run.output
    policy = write_policy(str(tmp_path / "p.json"), {"default": [{"type": "sigstoreSigned", "keyPath": keys["ours"]["pub"]}]})
    accepted, message = skopeo_accepts(policy, dest, "dir:%s" % (tmp_path / "ok"), world["registries_d"])
    if "sigstore disabled" in message:
        pytest.skip("this skopeo is built without sigstore: %s" % message[-60:])
    assert (accepted, message) == (True, "")
    wrong = write_policy(str(tmp_path / "w.json"), {"default": [{"type": "sigstoreSigned", "keyPath": keys["wrong"]["pub"]}]})
    assert skopeo_accepts(wrong, dest, "dir:%s" % (tmp_path / "w"), world["registries_d"])[0] is False


def test_image_info_lists_signatures_and_judges_the_image(skopeo_signed):
    world = skopeo_signed
    policy = {"default": [signed_by(world)]}
    run = run_module(
        "image_info", {"image": ref(world, "team/app", "1"), "registries_d": world["registries_d"], "validate_certs": False, "signature_policy": policy}
    )
    assert not run.failed, run.output
    (signature,) = run.result["signatures"]
    assert signature["kind"] == "simple-signing" and signature["identity"] == "%s/team/app:1" % world["host"]
    assert signature["signed_digest"] == world["image"]["manifest_digest"] and signature["signer"] == world["signer"].fingerprint
    assert signature["accepted"] is True and run.result["policy"]["accepted"] is True
    refused = run_module(
        "image_info",
        {
            "image": ref(world, "team/app", "1"),
            "registries_d": world["registries_d"],
            "validate_certs": False,
            "signature_policy": {"default": [signed_by(world, "other")]},
        },
    )
    assert refused.result["policy"]["accepted"] is False and "not one of the policy's keys" in refused.result["policy"]["reasons"][-1]
