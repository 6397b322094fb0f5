"""containers-policy.json: scopes, signedIdentity forms, strict parsing, payloads and stored signatures (no crypto peers)."""

from __future__ import annotations

import pytest

from ansible_collections.oci.images.plugins.module_utils._policy import (
    IdentityRule,
    InvalidPolicy,
    docker_namespaces,
    parse_named,
    parse_policy,
    policy_scopes,
)
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._signatures import (
    SIGSTORE,
    SIMPLE_SIGNING,
    InvalidSignature,
    make_payload,
    parse_payload,
    signature_from_blob,
    sigstore_signature,
)

DIGEST = "sha256:" + "a" * 64
ACCEPT = [{"type": "insecureAcceptAnything"}]
REJECT = [{"type": "reject"}]


def scope_of(policy: dict, reference: str) -> str:
    return parse_policy(policy, "test").requirements_for(parse_reference(reference))[0]


def test_the_most_specific_docker_scope_wins():
    policy = {
        "default": REJECT,
        "transports": {
            "docker": {
                "": ACCEPT,
                "*.example.com": ACCEPT,
                "registry.example.com:5000": ACCEPT,
                "registry.example.com:5000/team": ACCEPT,
                "registry.example.com:5000/team/app": ACCEPT,
                "registry.example.com:5000/team/app:1": ACCEPT,
            }
        },
    }
    assert scope_of(policy, "docker://registry.example.com:5000/team/app:1") == 'docker "registry.example.com:5000/team/app:1"'
    assert scope_of(policy, "docker://registry.example.com:5000/team/app:2") == 'docker "registry.example.com:5000/team/app"'
    assert scope_of(policy, "docker://registry.example.com:5000/team/other:1") == 'docker "registry.example.com:5000/team"'
    assert scope_of(policy, "docker://registry.example.com:5000/x/y:1") == 'docker "registry.example.com:5000"'
    assert scope_of(policy, "docker://mirror.example.com/x:1") == 'docker "*.example.com"'
    assert scope_of(policy, "docker://quay.io/x/y:1") == 'docker ""'
    assert scope_of(policy, "oci:/srv/layout:app") == "default"


def test_namespaces_end_with_domain_wildcards_without_the_port():
    assert docker_namespaces("a.b.example.com:5000/team/app") == [
        "a.b.example.com:5000/team/app",
        "a.b.example.com:5000/team",
        "a.b.example.com:5000",
        "*.b.example.com",
        "*.example.com",
        "*.com",
    ]


def test_docker_hub_names_are_normalized_in_scopes():
    assert policy_scopes(parse_reference("busybox"))[0] == "docker.io/library/busybox:latest"


def test_path_scopes_are_the_resolved_path_then_its_parents(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "images")
    identity, namespaces = policy_scopes(parse_reference("dir:%s/link/app" % tmp_path))
    assert identity == "%s/images/app" % tmp_path.resolve()
    assert namespaces[0] == "%s/images" % tmp_path.resolve()
    policy = {"default": REJECT, "transports": {"dir": {str(tmp_path.resolve()): ACCEPT}}}
    assert scope_of(policy, "dir:%s/link/app" % tmp_path) == 'dir "%s"' % tmp_path.resolve()


@pytest.mark.parametrize(
    ("rule", "image", "signed", "accepted"),
    [
        ({"type": "matchRepoDigestOrExact"}, "quay.io/a/b:1", "quay.io/a/b:1", True),
        ({"type": "matchRepoDigestOrExact"}, "quay.io/a/b:1", "quay.io/a/b:2", False),
        ({"type": "matchRepoDigestOrExact"}, "quay.io/a/b@" + DIGEST, "quay.io/a/b:2", True),
        ({"type": "matchRepoDigestOrExact"}, "quay.io/a/b:1", "quay.io/a/b", False),
        ({"type": "matchExact"}, "quay.io/a/b:1", "quay.io/a/b:1", True),
        ({"type": "matchExact"}, "quay.io/a/b@" + DIGEST, "quay.io/a/b:1", False),
        ({"type": "matchRepository"}, "quay.io/a/b:1", "quay.io/a/b:9", True),
        ({"type": "matchRepository"}, "quay.io/a/b:1", "quay.io/a/c:1", False),
        ({"type": "matchRepository"}, "busybox:1", "docker.io/library/busybox:2", True),
        ({"type": "exactReference", "dockerReference": "quay.io/a/b:1"}, "x.io/y:1", "quay.io/a/b:1", True),
        ({"type": "exactReference", "dockerReference": "quay.io/a/b:1"}, "x.io/y:1", "quay.io/a/b:2", False),
        ({"type": "exactRepository", "dockerRepository": "quay.io/a/b"}, "x.io/y:1", "quay.io/a/b:7", True),
        ({"type": "exactRepository", "dockerRepository": "quay.io/a/b"}, "x.io/y:1", "quay.io/a/bb:7", False),
        ({"type": "remapIdentity", "prefix": "mirror.io/v", "signedPrefix": "vendor.io"}, "mirror.io/v/p/i:1", "vendor.io/p/i:1", True),
        ({"type": "remapIdentity", "prefix": "mirror.io/v", "signedPrefix": "vendor.io"}, "mirror.io/vv/p/i:1", "vendor.io/p/i:1", False),
        ({"type": "remapIdentity", "prefix": "mirror.io/v", "signedPrefix": "vendor.io"}, "mirror.io/v/p/i:1", "vendor.io/p/i:2", False),
    ],
)
def test_signed_identity_forms(rule, image, signed, accepted):
    from ansible_collections.oci.images.plugins.module_utils._policy import parse_identity_rule

    parsed = parse_identity_rule(rule, "test")
    assert isinstance(parsed, IdentityRule)
    assert parsed.matches(parse_named(image), signed) is accepted


def test_path_named_images_match_only_exact_identity_forms():
    rule = IdentityRule("matchRepository")
    assert rule.matches(None, "quay.io/a/b:1") is False
    assert IdentityRule("exactRepository", parse_named("quay.io/a/b")).matches(None, "quay.io/a/b:1") is True


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"default": ACCEPT, "extra": 1}, 'unknown field "extra"'),
        ({"default": [{"type": "reject", "why": "x"}]}, 'unknown field "why"'),
        ({"default": [{"type": "signedBy", "keyPath": "/k"}]}, 'needs keyType "GPGKeys"'),
        ({"default": [{"type": "signedBy", "keyType": "GPGKeys"}]}, "exactly one of keyPath, keyPaths and keyData (none given)"),
        ({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "%%%"}]}, "keyData is not valid base64"),
        ({"default": [{"type": "sigstoreSigned"}]}, "exactly one of keyPath and keyData"),
        (
            {"default": [{"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "remapIdentity", "prefix": "", "signedPrefix": "x.io"}}]},
            "remapIdentity prefix",
        ),
        ({"default": ACCEPT, "transports": {"docker-archive": {"/x": ACCEPT}}}, 'supports only its default scope ""'),
        ({"default": ACCEPT, "transports": {"oci": {"/srv/../etc": ACCEPT}}}, "canonical absolute path"),
        ({"default": "reject"}, "must be a list of requirements"),
    ],
)
def test_policies_are_parsed_strictly(policy, message):
    with pytest.raises(InvalidPolicy, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_policy(policy, "test")


def test_unknown_transports_in_a_policy_are_kept_like_containers_image_does():
    assert parse_policy({"default": ACCEPT, "transports": {"atomic": {"host/ns": REJECT}}}, "t").transports["atomic"]


def test_payloads_round_trip_and_refuse_unknown_critical_fields():
    payload = make_payload(SIGSTORE, DIGEST, "quay.io/a/b:1", timestamp=1700000000)
    assert payload.startswith(b'{"critical":{"identity":{"docker-reference":"quay.io/a/b:1"},"image":{"docker-manifest-digest":"sha256:')
    parsed = parse_payload(payload, SIGSTORE, "t")
    assert (parsed.digest, parsed.identity, parsed.timestamp) == (DIGEST, "quay.io/a/b:1", 1700000000)
    with pytest.raises(InvalidSignature, match="unrecognized signature type"):
        parse_payload(payload, SIMPLE_SIGNING, "t")
    extra = payload.replace(b'"type":', b'"evil":1,"type":')
    with pytest.raises(InvalidSignature, match='unknown key "evil"'):
        parse_payload(extra, SIGSTORE, "t")
    with pytest.raises(InvalidSignature, match="duplicate key"):
        parse_payload(payload.replace(b'{"critical"', b'{"optional":{},"critical"'), SIGSTORE, "t")


def test_stored_sigstore_signatures_round_trip_and_unknown_formats_are_refused():
    signature = sigstore_signature(b"payload", "c2ln", where="x")
    again = signature_from_blob(signature.blob(), "y")
    assert again == signature and again.where == "y"
    assert signature_from_blob(b"\xa3\x01rest", "z").kind == SIMPLE_SIGNING
    with pytest.raises(InvalidSignature, match="unrecognized signature format"):
        signature_from_blob(b"\x00other-format\n{}", "z")
    with pytest.raises(InvalidSignature, match="empty"):
        signature_from_blob(b"", "z")


def test_sigstore_keys_round_trip_and_refuse_tampering():
    from ansible_collections.oci.images.plugins.module_utils._sigstore import (
        KeyFileError,
        decrypt_private_key,
        encrypt_private_key,
        generate_private_key,
        key_id,
        load_public_key,
        public_key_pem,
        sign,
        verify,
    )

    key = generate_private_key()
    pem = encrypt_private_key(key, b"pw")
    assert key_id(decrypt_private_key(pem, b"pw", "k")) == key_id(key)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        decrypt_private_key(pem, b"no", "k")
    public = load_public_key(public_key_pem(key), "p")
    signature = sign(key, b"payload")
    assert verify(public, b"payload", signature) is None
    assert verify(public, b"payloaD", signature) == "cryptographic signature verification failed"
    with pytest.raises(KeyFileError, match="not an encrypted sigstore private key"):
        decrypt_private_key(public_key_pem(key), b"pw", "k")
