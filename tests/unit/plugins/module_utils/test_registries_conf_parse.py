"""registries.conf read and applied as containers/image does: files and drop-ins, prefixes, mirrors, short names."""

from __future__ import annotations

import pytest

from ansible_collections.oci.images.plugins.module_utils import _registries_conf
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._registries_conf import RegistriesConfError, prefix_match_length, read_registries_conf

DIGEST = "sha256:" + "c" * 64


@pytest.fixture
def system(tmp_path, monkeypatch):
    """A fake /etc/containers (file and drop-in directory) and a home, so the machine's own files are never read."""
    etc = tmp_path / "etc"
    (etc / "registries.conf.d").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(_registries_conf, "SYSTEM_FILE", str(etc / "registries.conf"))
    monkeypatch.setattr(_registries_conf, "SYSTEM_DIR", str(etc / "registries.conf.d"))
    monkeypatch.setattr(_registries_conf, "_alias_cache_path", lambda env, home: str(tmp_path / "no-cache.conf"))

    def read(setting=None, env=None):
        return read_registries_conf(setting, env=env or {}, home=str(home))

    return {"etc": etc, "home": home, "read": read}


@pytest.mark.parametrize(
    "name,prefix,length",
    [
        # containers/image's refMatchingPrefix table
        ("example.com/foo", "example.com", 11),
        ("example.com:5000/foo", "example.com", 11),  # (an accident of containers/image, kept for parity)
        ("example.com/foo/bar", "example.com/foo", 15),
        ("example.com/foobar", "example.com/foo", -1),
        ("example.com/foo:tag", "example.com/foo", 15),
        ("example.com/foo@" + DIGEST, "example.com/foo", 15),
        ("other.com/foo", "example.com", -1),
        ("a.example.com/foo", "*.example.com", 13),
        ("b.a.example.com/foo", "*.example.com", 15),
        ("example.com/foo", "*.example.com", -1),
        ("x.notexample.com/foo", "*.example.com", -1),
        ("host/x.example.com/foo", "*.example.com", -1),
    ],
)
def test_prefixes_match_as_containers_image_matches_them(name, prefix, length):
    assert prefix_match_length(name, prefix) == length


MIRRORS = """
[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar"

[[registry.mirror]]
location = "mirror-0.local/mirror-for-foo"

[[registry.mirror]]
location = "mirror-1.local/mirrors/foo"
insecure = true
pull-from-mirror = "tag-only"

[[registry.mirror]]
location = "mirror-2.local/foo"
pull-from-mirror = "digest-only"

[[registry]]
location = "example.com"
blocked = true
"""


def _locations(conf, text):
    return [(s.location, s.mirror, s.insecure) for s in conf.pull_sources(parse_reference(text))]


def test_reads_try_mirrors_in_order_then_the_location_with_the_name_rewritten(system, tmp_path):
    path = tmp_path / "r.conf"
    path.write_text(MIRRORS)
    conf = system["read"](str(path))
    assert _locations(conf, "example.com/foo/image:latest") == [
        ("mirror-0.local/mirror-for-foo/image:latest", True, False),
        ("mirror-1.local/mirrors/foo/image:latest", True, True),
        ("internal.example.com/bar/image:latest", False, False),
    ]
    assert _locations(conf, "example.com/foo/image@" + DIGEST) == [
        ("mirror-0.local/mirror-for-foo/image@" + DIGEST, True, False),
        ("mirror-2.local/foo/image@" + DIGEST, True, False),
        ("internal.example.com/bar/image@" + DIGEST, False, False),
    ]
    # The longest prefix wins: example.com/foo/... is not blocked, example.com/other is.
    assert conf.blocked_by(parse_reference("example.com/foo/image")) is None
    assert conf.blocked_by(parse_reference("example.com/other")) == "example.com"
    with pytest.raises(RegistriesConfError, match=r"writing is refused: registry example.com is blocked in .*r.conf.*prefix example.com"):
        conf.check_not_blocked(parse_reference("example.com/other:1"), "writing")
    # No entry: the name itself.
    assert _locations(conf, "quay.io/x/y:1") == [("quay.io/x/y:1", False, False)]


def test_mirror_by_digest_only_uses_mirrors_only_for_digests(system, tmp_path):
    path = tmp_path / "r.conf"
    path.write_text('[[registry]]\nlocation = "a.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.io"\n')
    conf = system["read"](str(path))
    assert _locations(conf, "a.io/x:1") == [("a.io/x:1", False, False)]
    assert [s.location for s in conf.pull_sources(parse_reference("a.io/x@" + DIGEST))] == ["m.io/x@" + DIGEST, "a.io/x@" + DIGEST]


def test_docker_hub_is_matched_by_its_library_path(system, tmp_path):
    path = tmp_path / "r.conf"
    path.write_text('[[registry]]\nprefix = "docker.io/library"\nlocation = "hub.local/dockerhub"\n')
    conf = system["read"](str(path))
    assert _locations(conf, "fedora:39") == [("hub.local/dockerhub/fedora:39", False, False)]
    assert _locations(conf, "docker.io/team/app:1") == [("docker.io/team/app:1", False, False)]


def test_files_and_drop_ins_are_found_and_merged_as_containers_image_merges_them(system):
    etc, home = system["etc"], system["home"]
    (etc / "registries.conf").write_text(
        'unqualified-search-registries = ["one.io"]\nshort-name-mode = "permissive"\n'
        '[[registry]]\nlocation = "a.io"\ninsecure = true\n[[registry]]\nlocation = "b.io"\n[aliases]\n"x" = "one.io/x"\n"y" = "one.io/y"\n'
    )
    (etc / "registries.conf.d" / "10-first.conf").write_text('[[registry]]\nlocation = "a.io"\nblocked = true\n[aliases]\n"y" = ""\n')
    (etc / "registries.conf.d" / "20-second.conf").write_text('unqualified-search-registries = ["two.io", "three.io"]\n')
    (etc / "registries.conf.d" / "ignored.txt").write_text("not toml at all [")
    user_dir = home / ".config" / "containers" / "registries.conf.d"
    user_dir.mkdir(parents=True)
    (user_dir / "99-user.conf").write_text('short-name-mode = "enforcing"\n[aliases]\n"z" = "quay.io/z"\n')
    conf = system["read"]()
    assert conf.files == [
        str(etc / "registries.conf"),
        str(etc / "registries.conf.d" / "10-first.conf"),
        str(etc / "registries.conf.d" / "20-second.conf"),
        str(user_dir / "99-user.conf"),
    ]
    # A drop-in's [[registry]] replaces the one with the same prefix whole (a.io is blocked, no longer insecure).
    assert conf.registries["a.io"].blocked and not conf.registries["a.io"].endpoint.insecure
    assert "b.io" in conf.registries
    assert conf.search == ["two.io", "three.io"] and conf.short_name_mode == "enforcing"
    assert {k: v[0] for k, v in conf.aliases.items()} == {"x": "one.io/x", "z": "quay.io/z"}


def test_a_per_user_file_replaces_the_system_file_and_its_drop_ins(system):
    etc, home = system["etc"], system["home"]
    (etc / "registries.conf").write_text('unqualified-search-registries = ["system.io"]\n')
    (etc / "registries.conf.d" / "a.conf").write_text('[aliases]\n"s" = "system.io/s"\n')
    user = home / ".config" / "containers"
    user.mkdir(parents=True)
    (user / "registries.conf").write_text('unqualified-search-registries = ["user.io"]\n')
    conf = system["read"]()
    assert conf.search == ["user.io"] and conf.aliases == {}
    # An explicit file (option or CONTAINERS_REGISTRIES_CONF) replaces both, and the system drop-ins are read again.
    explicit = system["read"](env={"CONTAINERS_REGISTRIES_CONF": str(etc / "registries.conf")})
    assert explicit.search == ["system.io"] and "s" in explicit.aliases


def test_a_missing_explicit_file_is_an_error_and_a_missing_system_file_is_not(system, tmp_path):
    assert system["read"]().registries == {}
    with pytest.raises(RegistriesConfError, match="cannot be read"):
        system["read"](str(tmp_path / "nope.conf"))


def test_the_version_1_format_is_read_into_search_insecure_and_blocked(system, tmp_path):
    path = tmp_path / "v1.conf"
    path.write_text(
        "\n".join(
            (
                "[registries.search]",
                "registries = ['one.io', 'two.io']",
                "[registries.insecure]",
                "registries = ['plain.io']",
                "[registries.block]",
                "registries = ['bad.io']",
            )
        )
    )
    conf = system["read"](str(path))
    assert conf.search == ["one.io", "two.io"]
    assert conf.insecure(parse_reference("plain.io/x")) and conf.blocked_by(parse_reference("bad.io/x")) == "bad.io"


@pytest.mark.parametrize(
    "text,message",
    [
        ('[[registry]]\nprefix = "a.io"\n', "has no location"),
        ('[[registry]]\nlocation = "https://a.io"\n', "URI schemes are not supported"),
        ('[[registry]]\nlocation = "a.io"\npull-from-mirror = "all"\n', "must not be set for a non-mirror"),
        ('[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\nlocation = "m.io"\npull-from-mirror = "sometimes"\n', "unsupported pull-from-mirror"),
        (
            '[[registry]]\nlocation = "a.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.io"\npull-from-mirror = "all"\n',
            "use one of them",
        ),
        ('[[registry]]\nprefix = "*.a.io/x"\nlocation = "a.io"\n', "must look like"),
        ('[[registry]]\nlocation = "a.io"\ninsecure = true\n[[registry]]\nprefix = "a.io/x"\nlocation = "a.io"\n', "conflicting"),
        ('short-name-mode = "prompt"\n', "invalid short-name-mode"),
        ('unqualified-search-registries = ["not a host"]\n', "invalid unqualified-search-registries"),
        ('[aliases]\n"x" = "x"\n', "must name a registry and repository"),
        ('[aliases]\n"x" = "quay.io/x:1"\n', "without tag or digest"),
        ("[[registry]\n", "not valid TOML.*line 1"),
    ],
)
def test_a_wrong_file_is_an_error_naming_it_and_what_is_wrong(system, tmp_path, text, message):
    path = tmp_path / "bad.conf"
    path.write_text(text)
    with pytest.raises(RegistriesConfError, match=message) as err:
        system["read"](str(path))
    assert str(path) in err.value.msg


SEARCH = (
    'unqualified-search-registries = ["registry.fedoraproject.org", "docker.io"]\nshort-name-mode = "MODE"\n'
    '[aliases]\n"fed" = "registry.fedoraproject.org/fedora"\n'
)


def _conf(system, tmp_path, mode):
    path = tmp_path / ("%s.conf" % mode)
    path.write_text(SEARCH.replace("MODE", mode))
    return system["read"](str(path))


def test_a_short_name_alias_wins_and_keeps_the_tag_or_digest(system, tmp_path):
    conf = _conf(system, tmp_path, "enforcing")
    for text, expected in (
        ("fed", "registry.fedoraproject.org/fedora:latest"),
        ("fed:39", "registry.fedoraproject.org/fedora:39"),
        ("fed@" + DIGEST, "registry.fedoraproject.org/fedora@" + DIGEST),
    ):
        names, how = conf.resolve_short_name(parse_reference(text))
        assert [n.docker_reference for n in names] == [expected] and "alias 'fed'" in how


def test_an_ambiguous_short_name_is_an_error_in_enforcing_mode_and_tried_in_order_otherwise(system, tmp_path):
    ref = parse_reference("app:1")
    assert ref.short_name == "app"
    with pytest.raises(RegistriesConfError, match=r"enforcing.*docker://registry.fedoraproject.org/app:1, docker://docker.io/library/app:1"):
        _conf(system, tmp_path, "enforcing").resolve_short_name(ref)
    for mode in ("permissive", "disabled"):
        names, _how = _conf(system, tmp_path, mode).resolve_short_name(ref)
        assert [n.docker_reference for n in names] == ["registry.fedoraproject.org/app:1", "docker.io/library/app:1"]


@pytest.mark.parametrize(
    "text,short",
    [
        ("fedora", "fedora"),
        ("fedora:39", "fedora"),
        ("team/app@" + DIGEST, "team/app"),
        ("docker://fedora", None),  # skopeo's docker:// is never a short name
        ("docker.io/fedora", None),
        ("localhost/app", None),
        ("registry.example.com:5000/app", None),
        ("oci:/tmp/layout:fedora", None),
    ],
)
def test_only_names_written_without_registry_and_transport_are_short_names(text, short):
    assert parse_reference(text).short_name == short
