"""mirror_config's mappings and renderings without Ansible: sync naming, containerd's whole-registry rule, parsing back."""

from __future__ import annotations

import pytest

from ansible_collections.oci.images.plugins.module_utils._mirror_config import (
    MirrorConfigError,
    containerd_hosts,
    mirrors_from_mapping,
    mirrors_from_sync,
    registries_conf_text,
)
from ansible_collections.oci.images.plugins.module_utils._registries_conf import USER_DIR, read_registries_conf
from ansible_collections.oci.images.plugins.module_utils._toml import loads

SPEC = {
    "quay.io": {"images": {"team/app": ["1"], "team/tool": []}, "images-by-tag-regex": {"team/db": "^1\\."}},
    "docker.io": {"images-by-semver": {"alpine": ">= 3.18"}},
}


def test_sync_spec_maps_each_repository_where_image_copy_puts_it():
    unscoped = {m.source: m.mirror for m in mirrors_from_sync(SPEC, "docker://mirror.example.com:5000/m")}
    assert unscoped == {
        "quay.io/team/app": "mirror.example.com:5000/m/app",
        "quay.io/team/tool": "mirror.example.com:5000/m/tool",
        "quay.io/team/db": "mirror.example.com:5000/m/db",
        "docker.io/library/alpine": "mirror.example.com:5000/m/alpine",
    }
    scoped = {m.source: m.mirror for m in mirrors_from_sync(SPEC, "mirror.example.com:5000/m", scoped=True)}
    assert scoped["docker.io/library/alpine"] == "mirror.example.com:5000/m/docker.io/library/alpine"
    assert scoped["quay.io/team/db"] == "mirror.example.com:5000/m/quay.io/team/db"


def test_containerd_gets_one_host_file_per_registry_with_the_common_mirror_root():
    mirrors = mirrors_from_sync(SPEC, "mirror.example.com:5000/m", scoped=True)
    files = containerd_hosts(mirrors)
    assert sorted(files) == ["docker.io", "quay.io"]
    quay = loads(files["quay.io"])
    assert quay == {
        "server": "https://quay.io",
        "host": {"https://mirror.example.com:5000/v2/m/quay.io": {"capabilities": ["pull", "resolve"], "override_path": True}},
    }
    assert loads(files["docker.io"])["server"] == "https://registry-1.docker.io"


def test_containerd_refuses_prefixes_of_one_registry_with_different_roots():
    mirrors = mirrors_from_sync(SPEC, "mirror.example.com:5000/m")  # unscoped: team/app -> m/app
    with pytest.raises(MirrorConfigError, match=r"whole registries: docker.io/library/alpine -> mirror.example.com:5000/m/alpine keeps no common"):
        containerd_hosts(mirrors)


def test_the_drop_in_is_read_as_a_drop_in_by_the_collections_registries_conf_reader(tmp_path):
    mirrors = mirrors_from_mapping({"quay.io": "m.example.com/q", "quay.io/team": "m.example.com/t"})
    drop_ins = tmp_path / USER_DIR
    drop_ins.mkdir(parents=True)
    (drop_ins / "50-mirror.conf").write_text(registries_conf_text(mirrors, insecure=True))
    main = tmp_path / "registries.conf"
    main.write_text("")
    conf = read_registries_conf(str(main), env={}, home=str(tmp_path))
    entries = {p: [(m.location, m.insecure) for m in e.mirrors] for p, e in conf.registries.items() if p.startswith("quay.io")}
    assert entries == {"quay.io/team": [("m.example.com/t", True)], "quay.io": [("m.example.com/q", True)]}


@pytest.mark.parametrize("mapping", [{}, {"quay.io": ["a", "b"]}, {"https://quay.io/Team": "m"}, {"quay.io": "m/UPPER"}, {"quay.io/": "m", "quay.io": "n"}])
def test_mappings_that_are_not_prefixes_are_refused(mapping):
    with pytest.raises(MirrorConfigError, match="mirrors"):
        mirrors_from_mapping(mapping)
