# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The prune decision (pure: tags, digests, creation times in; deleted and kept out) and size accounting."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._footprint import footprint, freed_bytes, scan_tags
from ansible_collections.oci.images.plugins.module_utils._prune import PrunePolicy, TagState, decide_prune, parse_created, parse_duration

NOW = datetime.datetime(2024, 6, 30, 12, 0, tzinfo=datetime.timezone.utc)


def day(n: int) -> datetime.datetime:
    return datetime.datetime(2024, 6, n, 12, 0, tzinfo=datetime.timezone.utc)


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def states(*items) -> list[TagState]:
    """(tag, image name, day created) -> TagState; the image name makes the digest, so equal names share one."""
    return [TagState(tag, digest(image), day(created) if created else None) for tag, image, created in items]


def deleted_tags(decision) -> list[str]:
    return [d["tag"] for d in decision.deleted]


@pytest.mark.parametrize(
    "text, seconds",
    [("30d", 30 * 86400), ("12h", 43200), ("15m", 900), ("2w", 1209600), ("45s", 45), ("1d12h", 129600), ("90", 90), (3600, 3600)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30x", "d30", "1.5d", "3 days"])
def test_bad_durations_are_refused(text):
    with pytest.raises(OCIError) as err:
        parse_duration(text, "prune.keep_newer_than")
    assert "prune.keep_newer_than" in err.value.msg


def test_created_times_with_nanoseconds_and_offsets():
    assert parse_created("2024-01-02T03:04:05.123456789Z") == datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)
    assert parse_created("2024-01-02T05:04:05+02:00") == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert parse_created("not a time") is None
    assert parse_created(None) is None


def test_keep_latest_keeps_newest_images_and_deletes_the_rest():
    tags = states(("a", "a", 1), ("b", "b", 5), ("c", "c", 3), ("d", "d", 4))
    decision = decide_prune(tags, PrunePolicy(keep_latest=2), NOW)
    assert deleted_tags(decision) == ["a", "c"]
    assert decision.kept == ["b", "d"]
    assert decision.reasons["b"] == "among the 2 most recently created"


def test_keep_latest_counts_images_not_tags():
    tags = states(("v1", "one", 1), ("v2", "two", 2), ("stable", "two", 2), ("v3", "three", 3))
    decision = decide_prune(tags, PrunePolicy(keep_latest=2), NOW)
    assert deleted_tags(decision) == ["v1"]


def test_keep_latest_keeps_what_it_cannot_rank():
    tags = states(("a", "a", 1), ("b", "b", 2), ("c", "c", 3), ("sig", "s", None))
    decision = decide_prune(tags, PrunePolicy(keep_latest=1), NOW)
    assert deleted_tags(decision) == ["a", "b"]
    assert decision.reasons["sig"] == "creation time unknown"


def test_keep_latest_by_semver_ranks_versions_not_dates():
    tags = states(("1.10.0", "i10", 1), ("1.9.2", "i9", 5), ("v2.0.0-rc.1", "rc", 6), ("2.0.0", "i20", 2), ("edge", "e", 7))
    decision = decide_prune(tags, PrunePolicy(keep_latest=2, order="semver"), NOW)
    assert decision.kept == ["v2.0.0-rc.1", "2.0.0", "edge"]
    assert deleted_tags(decision) == ["1.10.0", "1.9.2"]
    assert decision.reasons["edge"] == "not a version (order: semver)"
    assert decision.reasons["2.0.0"] == "among the 2 highest versions"


def test_keep_tags_always_kept_and_shared_digest_protects_other_tags():
    tags = states(("latest", "x", 1), ("build-1", "x", 1), ("build-2", "y", 2), ("release-1", "z", 1))
    decision = decide_prune(tags, PrunePolicy(include=[".*"], keep_tags=["latest", "release-.*"]), NOW)
    assert deleted_tags(decision) == ["build-2"]
    assert decision.reasons["build-1"] == "shares digest with kept tag latest"
    assert decision.reasons["release-1"] == "matches keep_tags"


def test_tags_not_selected_are_kept_and_protect_their_digest():
    tags = states(("pr-1", "p", 1), ("main", "p", 1), ("pr-2", "q", 2))
    decision = decide_prune(tags, PrunePolicy(include=["pr-.*"]), NOW)
    assert deleted_tags(decision) == ["pr-2"]
    assert decision.reasons["main"] == "not selected by include/exclude"
    assert decision.reasons["pr-1"] == "shares digest with kept tag main"


def test_keep_newer_than_keeps_recent_and_unknown_ages():
    tags = states(("old", "o", 1), ("new", "n", 29), ("unknown", "u", None))
    decision = decide_prune(tags, PrunePolicy(keep_newer_than=parse_duration("7d")), NOW)
    assert deleted_tags(decision) == ["old"]
    assert decision.reasons["unknown"] == "creation time unknown"


def test_rules_combine_as_any_rule_keeps():
    tags = states(*[("b%d" % n, "img%d" % n, n) for n in range(1, 11)] + [("recent", "r", 28)])
    decision = decide_prune(tags, PrunePolicy(keep_latest=2, keep_newer_than=parse_duration("5d"), keep_tags=["b1"]), NOW)
    # newest two images: recent and b10; newer than 5 days: recent; by name: b1
    assert decision.kept == ["b1", "b10", "recent"]
    assert deleted_tags(decision) == ["b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"]


def test_image_inside_a_kept_index_is_kept():
    index = TagState("multi", digest("index"), day(3), children=(digest("amd64"), digest("arm64")))
    tags = [index, TagState("amd64-only", digest("amd64"), day(1)), TagState("other", digest("other"), day(1))]
    decision = decide_prune(tags, PrunePolicy(include=[".*"], keep_tags=["multi"]), NOW)
    assert deleted_tags(decision) == ["other"]
    assert decision.reasons["amd64-only"] == "is an image inside kept index multi"


def test_empty_policy_is_refused():
    with pytest.raises(OCIError) as err:
        decide_prune(states(("a", "a", 1)), PrunePolicy(), NOW)
    assert "include: ['.*']" in err.value.msg


@pytest.mark.parametrize(
    "policy",
    [
        PrunePolicy(keep_latest=0),
        PrunePolicy(keep_latest=0, order="semver"),
        PrunePolicy(keep_newer_than=parse_duration("0s")),
        PrunePolicy(keep_tags=[]),
        PrunePolicy(exclude=[]),
        PrunePolicy(include=[]),
        PrunePolicy(include=[], keep_latest=0, keep_tags=[]),
    ],
    ids=["keep_latest-0", "keep_latest-0-semver", "keep_newer_than-0s", "keep_tags-empty", "exclude-empty", "include-empty", "all-empty"],
)
def test_policy_that_keeps_nothing_without_include_is_refused(policy):
    with pytest.raises(OCIError) as err:
        decide_prune(states(("latest", "a", 1), ("1.0", "b", 2)), policy, NOW)
    assert "prune.include: ['.*']" in err.value.msg
    assert "would delete every tag" in err.value.msg


@pytest.mark.parametrize(
    "policy, deleted",
    [
        (PrunePolicy(include=[".*"], keep_latest=0), ["latest", "1.0", "build-1"]),
        (PrunePolicy(include=["build-.*"]), ["build-1"]),
        (PrunePolicy(keep_latest=0, keep_tags=["latest"]), ["1.0", "build-1"]),
        (PrunePolicy(keep_newer_than=0, exclude=["1\\..*"]), ["latest", "build-1"]),
    ],
)
def test_policy_that_says_what_to_delete_is_accepted(policy, deleted):
    decision = decide_prune(states(("latest", "a", 1), ("1.0", "b", 2), ("build-1", "c", 3)), policy, NOW)
    assert deleted_tags(decision) == deleted


@pytest.mark.parametrize(
    "policy",
    [PrunePolicy(keep_newer_than=parse_duration("7d")), PrunePolicy(keep_tags=["latest"]), PrunePolicy(exclude=["release-.*"])],
    ids=["all-older", "keep_tags-no-match", "exclude-no-match"],
)
def test_rules_that_keep_none_of_these_tags_without_include_are_refused(policy):
    tags = states(("1.0", "a", 1), ("1.1", "b", 2))
    with pytest.raises(OCIError) as err:
        decide_prune(tags, policy, NOW)
    assert "would delete every tag of the repository (2: 1.0, 1.1)" in err.value.msg
    assert "prune.include: ['.*']" in err.value.msg
    with_include = PrunePolicy(include=[".*"], keep_newer_than=policy.keep_newer_than, keep_tags=policy.keep_tags, exclude=policy.exclude)
    assert deleted_tags(decide_prune(tags, with_include, NOW)) == ["1.0", "1.1"]


def test_decision_is_the_same_every_time():
    tags = states(*[("t%d" % n, "i%d" % (n % 5), n % 7 + 1) for n in range(12)])
    policy = PrunePolicy(keep_latest=2, keep_tags=["t1"])
    assert decide_prune(tags, policy, NOW) == decide_prune(list(tags), policy, NOW)


# --- size accounting over a scan ----------------------------------------------------------------


def _image(config: str, layers: dict) -> tuple[bytes, str]:
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": 10},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(n), "size": s} for n, s in layers.items()],
    }
    raw = json.dumps(doc).encode()
    return raw, "sha256:" + hashlib.sha256(raw).hexdigest()


def _scan(tag_images: dict):
    manifests = {}
    tags = {}
    for tag, raw_digest in tag_images.items():
        raw, d = raw_digest
        manifests[d] = raw
        tags[tag] = d
    return scan_tags(
        list(tags),
        lambda t: (manifests[tags[t]], "application/vnd.oci.image.manifest.v1+json", tags[t]),
        lambda d: (manifests[d], "application/vnd.oci.image.manifest.v1+json"),
    )


def test_footprint_counts_shared_layers_once():
    one = _image("c1", {"base": 1000, "app1": 200})
    two = _image("c2", {"base": 1000, "app2": 300})
    scan = _scan({"v1": one, "v2": two, "also-v1": one})
    result = footprint(scan)
    assert result["total_bytes"] == 1000 + 200 + 300 + 10 + 10
    assert result["shared_bytes"] == 1000 + 200 + 10  # base everywhere; app1 and c1 under two tags
    assert result["tags"]["v2"] == {"digest": two[1], "size": 1310, "unique_bytes": 310}
    assert result["tags"]["v1"]["unique_bytes"] == 0  # also-v1 holds the same image
    assert result["layers"][0] == {"digest": digest("base"), "size": 1000, "media_type": "application/vnd.oci.image.layer.v1.tar+gzip", "tags_using": 3}


def test_freed_bytes_counts_only_blobs_nothing_else_uses():
    one = _image("c1", {"base": 1000, "app1": 200})
    two = _image("c2", {"base": 1000, "app2": 300})
    scan = _scan({"v1": one, "v2": two, "also-v1": one})
    assert freed_bytes(scan, ["v2"]) == 310
    assert freed_bytes(scan, ["v1"]) == 0
    assert freed_bytes(scan, ["v1", "also-v1"]) == 210
    assert freed_bytes(scan, ["v1", "also-v1", "v2"]) == 1520
