# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifest, index and config parsing and validation; platform parsing and selection."""

from __future__ import annotations

import json

import pytest

from ansible_collections.oci.images.plugins.module_utils import _media
from ansible_collections.oci.images.plugins.module_utils._errors import InvalidManifest, InvalidReference, NotFound

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def raw(doc) -> bytes:
    return json.dumps(doc).encode()


def oci_manifest(**extra) -> dict:
    doc = {
        "schemaVersion": 2,
        "mediaType": _media.OCI_MANIFEST,
        "config": {"mediaType": _media.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": _media.OCI_LAYER_GZIP, "digest": D2, "size": 20}],
    }
    doc.update(extra)
    return doc


def docker_manifest() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": _media.DOCKER_MANIFEST,
        "config": {"mediaType": _media.DOCKER_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": _media.DOCKER_LAYER_GZIP, "digest": D2, "size": 20}],
    }


def index(media_type=_media.OCI_INDEX, platforms=("linux/amd64", "linux/arm64/v8")) -> dict:
    manifests = []
    for i, text in enumerate(platforms):
        parts = text.split("/")
        platform = {"os": parts[0], "architecture": parts[1]}
        if len(parts) > 2:
            platform["variant"] = parts[2]
        manifests.append({"mediaType": _media.OCI_MANIFEST, "digest": "sha256:%064x" % (i + 1), "size": 100 + i, "platform": platform})
    return {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}


def v2s1(signed=False) -> dict:
    doc = {
        "schemaVersion": 1,
        "name": "library/app",
        "tag": "1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": D3}, {"blobSum": D2}, {"blobSum": D1}],
        "history": [
            {
                "v1Compatibility": json.dumps(
                    {
                        "architecture": "amd64",
                        "os": "linux",
                        "created": "2020-01-01T00:00:00Z",
                        "config": {"Labels": {"a": "b"}, "Env": ["X=1"]},
                    }
                )
            },
            {"v1Compatibility": json.dumps({"throwaway": True})},
            {"v1Compatibility": json.dumps({})},
        ],
    }
    if signed:
        doc["signatures"] = [{"header": {}, "signature": "x", "protected": "y"}]
    return doc


# --- parse_manifest: what is accepted ------------------------------------------------------------


@pytest.mark.parametrize(
    "doc, declared, expected",
    [
        (oci_manifest(), _media.OCI_MANIFEST, _media.OCI_MANIFEST),
        (oci_manifest(), None, _media.OCI_MANIFEST),
        (docker_manifest(), _media.DOCKER_MANIFEST, _media.DOCKER_MANIFEST),
        (docker_manifest(), None, _media.DOCKER_MANIFEST),
        (index(), None, _media.OCI_INDEX),
        (index(_media.DOCKER_LIST), None, _media.DOCKER_LIST),
        (index(_media.DOCKER_LIST), _media.DOCKER_LIST, _media.DOCKER_LIST),
        (v2s1(), None, _media.DOCKER_V2S1),
        (v2s1(signed=True), None, _media.DOCKER_V2S1_SIGNED),
        (v2s1(signed=True), "application/json", _media.DOCKER_V2S1_SIGNED),
        (v2s1(signed=True), _media.DOCKER_V2S1, _media.DOCKER_V2S1),
        (oci_manifest(), _media.OCI_MANIFEST + "; charset=utf-8", _media.OCI_MANIFEST),
    ],
)
def test_manifest_media_type_is_declared_or_read_or_guessed(doc, declared, expected):
    parsed, media_type = _media.parse_manifest(raw(doc), declared, "ctx")
    assert media_type == expected
    assert parsed == doc


def test_manifest_without_media_type_is_guessed_from_its_shape():
    doc = oci_manifest()
    del doc["mediaType"]
    assert _media.parse_manifest(raw(doc), None, "ctx")[1] == _media.OCI_MANIFEST
    doc = index()
    del doc["mediaType"]
    assert _media.parse_manifest(raw(doc), None, "ctx")[1] == _media.OCI_INDEX
    doc = docker_manifest()
    del doc["mediaType"]
    assert _media.parse_manifest(raw(doc), None, "ctx")[1] == _media.DOCKER_MANIFEST


def test_artifact_manifests_parse():
    helm = oci_manifest(
        config={"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": D1, "size": 10},
        layers=[{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": D2, "size": 20}],
    )
    assert _media.parse_manifest(raw(helm), None, "ctx")[1] == _media.OCI_MANIFEST
    sbom = oci_manifest(
        artifactType="application/spdx+json",
        config={"mediaType": _media.OCI_EMPTY, "digest": D1, "size": 2},
        layers=[{"mediaType": "application/spdx+json", "digest": D2, "size": 20}],
        subject={"mediaType": _media.OCI_MANIFEST, "digest": D3, "size": 30},
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    parsed, media_type = _media.parse_manifest(raw(sbom), _media.OCI_MANIFEST, "ctx")
    assert media_type == _media.OCI_MANIFEST
    assert parsed["artifactType"] == "application/spdx+json"


def test_is_index_only_for_indexes():
    assert _media.is_index(_media.OCI_INDEX) and _media.is_index(_media.DOCKER_LIST)
    assert not _media.is_index(_media.OCI_MANIFEST) and not _media.is_index(_media.DOCKER_MANIFEST)
    assert set(_media.INDEX_MEDIA_TYPES) < set(_media.MANIFEST_MEDIA_TYPES)
    assert _media.DOCKER_V2S1_SIGNED in _media.MANIFEST_MEDIA_TYPES


# --- parse_manifest: what is refused -------------------------------------------------------------


def _without(doc: dict, *path):
    *parents, last = path
    target = doc
    for key in parents:
        target = target[key]
    del target[last]
    return doc


def _with(doc: dict, value, *path):
    *parents, last = path
    target = doc
    for key in parents:
        target = target[key]
    target[last] = value
    return doc


@pytest.mark.parametrize(
    "body, declared, says",
    [
        (b"{not json", None, "not valid JSON"),
        (b"\xff\xfe", None, "not valid JSON"),
        (b"[1, 2]", None, "not an object"),
        (b'"text"', None, "not an object"),
        (raw(oci_manifest()), _media.DOCKER_MANIFEST, "contradicts"),
        (raw(docker_manifest()), _media.OCI_INDEX, "contradicts"),
        (raw(oci_manifest(mediaType="application/vnd.example.unknown+json")), None, "unsupported manifest media type"),
        (raw({"hello": "world"}), None, "unsupported manifest media type"),
        (raw(_without(oci_manifest(), "config")), None, "'config' is a required property"),
        (raw(_without(oci_manifest(), "layers")), _media.OCI_MANIFEST, "'layers' is a required property"),
        (raw(_without(docker_manifest(), "config", "mediaType")), _media.DOCKER_MANIFEST, "'mediaType' is a required property"),
        (raw(_with(oci_manifest(), 3, "schemaVersion")), None, "schemaVersion"),
        (raw(_with(oci_manifest(), "sha256:abc", "config", "digest")), None, "config/digest"),
        (raw(_with(oci_manifest(), "md5:" + "0" * 32, "layers", 0, "digest")), None, "layers/0/digest"),
        (raw(_with(oci_manifest(), -1, "layers", 0, "size")), None, "layers/0/size"),
        (raw(_with(oci_manifest(), "20", "layers", 0, "size")), None, "layers/0/size"),
        (raw(_with(oci_manifest(), 5, "config", "mediaType")), None, "config/mediaType"),
        (raw(_without(oci_manifest(), "layers", 0, "digest")), None, "'digest' is a required property"),
        (raw(_with(oci_manifest(), {"a": 1}, "annotations")), None, "annotations"),
        (raw(_with(index(), "linux", "manifests", 0, "platform")), None, "manifests/0/platform"),
        (raw(_without(index(), "manifests", 1, "platform", "os")), None, "'os' is a required property"),
        (raw(_with(index(), {}, "manifests")), None, "manifests"),
        (raw(_without(v2s1(), "fsLayers")), None, "'fsLayers' is a required property"),
        (raw(_with(v2s1(), [{"v1Compatibility": "{}"}], "history")), None, "3 fsLayers but 1 history"),
        (raw(oci_manifest(mediaType=7)), None, "must be a string"),
    ],
)
def test_invalid_manifests_are_refused_naming_the_context(body, declared, says):
    with pytest.raises(InvalidManifest) as caught:
        _media.parse_manifest(body, declared, "docker://r.example.com/app:1")
    assert says in str(caught.value)
    assert "docker://r.example.com/app:1" in str(caught.value)


def test_manifest_over_4_mib_is_refused():
    doc = oci_manifest(annotations={"padding": "x" * (4 * 1024 * 1024)})
    with pytest.raises(InvalidManifest, match="over the 4194304-byte limit"):
        _media.parse_manifest(raw(doc), None, "ctx")


def test_manifest_just_under_the_limit_parses():
    doc = oci_manifest(annotations={"padding": ""})
    overhead = len(raw(doc))
    doc["annotations"]["padding"] = "x" * (_media.MAX_MANIFEST_BYTES - overhead)
    assert len(raw(doc)) == _media.MAX_MANIFEST_BYTES
    assert _media.parse_manifest(raw(doc), None, "ctx")[1] == _media.OCI_MANIFEST


def test_config_parses_and_is_limited():
    assert _media.parse_config(b'{"architecture": "amd64"}', "ctx") == {"architecture": "amd64"}
    with pytest.raises(InvalidManifest, match="not valid JSON"):
        _media.parse_config(b"nope", "ctx")
    with pytest.raises(InvalidManifest, match="not an object"):
        _media.parse_config(b"[]", "ctx")
    with pytest.raises(InvalidManifest, match="limit"):
        _media.parse_config(b'{"a": "' + b"x" * (4 * 1024 * 1024) + b'"}', "ctx")


def test_v2s1_image_gives_config_view_and_layers_base_first():
    view = _media.v2s1_image(v2s1())
    assert view["config"]["architecture"] == "amd64"
    assert view["config"]["os"] == "linux"
    assert view["config"]["created"] == "2020-01-01T00:00:00Z"
    assert view["config"]["config"] == {"Labels": {"a": "b"}, "Env": ["X=1"]}
    assert [layer["digest"] for layer in view["layers"]] == [D1, D2, D3]
    assert all(layer["size"] is None for layer in view["layers"])
    assert [layer["empty"] for layer in view["layers"]] == [False, True, False]


# --- platforms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("linux/amd64", {"os": "linux", "architecture": "amd64"}),
        ("linux/arm64/v8", {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ("linux/arm/v7", {"os": "linux", "architecture": "arm", "variant": "v7"}),
        ("linux/arm/7", {"os": "linux", "architecture": "arm", "variant": "v7"}),
        ("linux/x86_64", {"os": "linux", "architecture": "amd64"}),
        ("linux/aarch64", {"os": "linux", "architecture": "arm64"}),
        ("Linux/AMD64", {"os": "linux", "architecture": "amd64"}),
        ("windows/amd64", {"os": "windows", "architecture": "amd64"}),
    ],
)
def test_platform_strings_parse(text, expected):
    assert _media.parse_platform(text) == expected


@pytest.mark.parametrize("text", ["", "linux", "linux/", "/amd64", "linux/arm/v7/extra", "linux//v7", "linux/ amd64"])
def test_bad_platform_strings_are_refused_naming_the_text(text):
    with pytest.raises(InvalidReference) as caught:
        _media.parse_platform(text)
    assert repr(text) in str(caught.value)


def test_platform_string_round_trips():
    for text in ("linux/amd64", "linux/arm64/v8", "linux/arm/v6", "windows/amd64"):
        assert _media.platform_string(_media.parse_platform(text)) == text


@pytest.mark.parametrize(
    "machine, expected",
    [
        ("x86_64", "linux/amd64"),
        ("AMD64", "linux/amd64"),
        ("aarch64", "linux/arm64/v8"),
        ("arm64", "linux/arm64/v8"),
        ("armv7l", "linux/arm/v7"),
        ("armv6l", "linux/arm/v6"),
        ("i686", "linux/386"),
        ("ppc64le", "linux/ppc64le"),
        ("s390x", "linux/s390x"),
        ("riscv64", "linux/riscv64"),
    ],
)
def test_host_platform_names_the_machine_as_images_do(monkeypatch, machine, expected):
    monkeypatch.setattr(_media._host, "machine", lambda: machine)
    assert _media.platform_string(_media.host_platform()) == expected


def _pick(platforms, wanted):
    doc = index(platforms=platforms)
    chosen = _media.select_manifest(doc, _media.parse_platform(wanted), "ctx")
    return platforms[[m["digest"] for m in doc["manifests"]].index(chosen["digest"])]


@pytest.mark.parametrize(
    "platforms, wanted, expected",
    [
        (["linux/amd64", "linux/arm64/v8"], "linux/amd64", "linux/amd64"),
        (["linux/amd64", "linux/arm64/v8"], "linux/arm64/v8", "linux/arm64/v8"),
        # arm64 with no variant and arm64/v8 are the same platform, either way round.
        (["linux/amd64", "linux/arm64/v8"], "linux/arm64", "linux/arm64/v8"),
        (["linux/amd64", "linux/arm64"], "linux/arm64/v8", "linux/arm64"),
        # An exact variant wins over an entry without one, whatever the order.
        (["linux/arm", "linux/arm/v7"], "linux/arm/v7", "linux/arm/v7"),
        (["linux/arm/v7", "linux/arm"], "linux/arm/v7", "linux/arm/v7"),
        # Without the exact variant: a compatible older one, then one with no variant.
        (["linux/arm/v5", "linux/arm/v6"], "linux/arm/v7", "linux/arm/v6"),
        (["linux/arm"], "linux/arm/v7", "linux/arm"),
        (["linux/amd64"], "linux/amd64", "linux/amd64"),
        (["windows/amd64", "linux/amd64"], "linux/amd64", "linux/amd64"),
    ],
)
def test_select_manifest_follows_variant_rules(platforms, wanted, expected):
    assert _pick(platforms, wanted) == expected


def test_select_manifest_ignores_os_version_and_unplatformed_entries():
    doc = index(platforms=["windows/amd64"])
    doc["manifests"][0]["platform"]["os.version"] = "10.0.17763.5576"
    doc["manifests"].insert(0, {"mediaType": _media.OCI_MANIFEST, "digest": D3, "size": 1})
    chosen = _media.select_manifest(doc, {"os": "windows", "architecture": "amd64"}, "ctx")
    assert chosen["platform"]["os.version"] == "10.0.17763.5576"


@pytest.mark.parametrize(
    "platforms, wanted",
    [
        (["linux/amd64", "linux/arm64/v8"], "linux/s390x"),
        (["linux/arm/v7"], "linux/arm/v6"),
        (["linux/arm64/v8"], "linux/arm/v7"),
        (["windows/amd64"], "linux/amd64"),
    ],
)
def test_select_manifest_not_found_lists_offered_platforms(platforms, wanted):
    with pytest.raises(NotFound) as caught:
        _pick(platforms, wanted)
    message = str(caught.value)
    assert wanted in message
    for offered in platforms:
        assert offered in message


def _mutations(doc, path=()):
    """Every document one change away from ``doc``: a value removed, or replaced by one of a wrong kind."""
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in children:
        for replacement in (None, "x", -1, 1.5, True, [], {}, "sha256:bad", "no/such type!"):
            yield _replaced(doc, key, replacement), (*path, key)
        yield _replaced(doc, key, _media), (*path, key)  # a marker: removed
        for changed, where in _mutations(value, (*path, key)):
            yield _replaced(doc, key, changed), where


def _path_order(path) -> list:
    return [(0, p) if isinstance(p, int) else (1, p) for p in path]


def _replaced(doc, key, value):
    copy = json.loads(json.dumps(doc))
    if value is _media:
        del copy[key]
    else:
        copy[key] = value
    return copy


@pytest.mark.parametrize(
    "media_type, doc",
    [
        (_media.OCI_MANIFEST, oci_manifest(annotations={"a": "b"})),
        (_media.DOCKER_MANIFEST, docker_manifest()),
        (_media.OCI_INDEX, index()),
        (_media.DOCKER_V2S1, v2s1()),
    ],
)
def test_manifest_checks_say_what_jsonschema_says(media_type, doc):
    """The hand-written check of the manifest schemas gives jsonschema's first error for every one-change mutation."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = _media._SCHEMAS[media_type]
    checked = 0
    for mutated, _where in _mutations(doc):
        expected = sorted(jsonschema.Draft7Validator(schema).iter_errors(mutated), key=lambda e: _path_order(e.absolute_path))
        ours: list = []
        _media._check(mutated, schema, [], ours)
        assert bool(ours) == bool(expected), (mutated, expected, ours)
        if expected:
            path, message = min(ours, key=lambda e: _path_order(e[0]))
            assert (path, message) == (list(expected[0].absolute_path), expected[0].message), mutated
            checked += 1
    assert checked > 50
