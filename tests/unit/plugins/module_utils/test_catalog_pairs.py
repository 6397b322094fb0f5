"""Where a registry-wide mirror puts each image (catalog_pairs with the repositories named, so no registry is asked).

The functional tests (tests/functional/test_catalog_mirror.py) run it against real registries; here
the naming, the selection order and the failures of one repository's tag list, with tags given by a function.
"""

from __future__ import annotations

import threading

import pytest

from ansible_collections.oci.images.plugins.module_utils._catalog import catalog_pairs, parse_catalog_scope
from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._mirror import TagSelection
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._clients import close_clients

TAGS = {"team/app": ["1.0", "1.1", "dev"], "team/db": ["2.0"], "other/app": ["1.0"], "teamwork/x": ["1"]}


@pytest.fixture(autouse=True)
def no_clients_left():
    yield
    close_clients()


def listed(reference, options):
    if reference.repository not in TAGS:
        raise OCIError("repository %s not found" % reference.repository, str(reference))
    return list(TAGS[reference.repository])


def pairs(scope: str, dest: str, **kwargs) -> list[tuple[str, str]]:
    names = kwargs.pop("names", list(TAGS))
    tags = kwargs.pop("tags", TagSelection())
    found = catalog_pairs(parse_catalog_scope(scope), dest, ConnectionOptions(), listed, tags, {"names": names, **kwargs.pop("repositories", {})}, **kwargs)
    return [(str(p.src), str(p.dest)) for p in found]


def test_a_namespace_keeps_whole_repository_paths_under_dest_in_catalog_order():
    assert pairs("src.example.com/team", "mirror.example.com/backup", tags=TagSelection(exclude=["dev"])) == [
        ("docker://src.example.com/team/app:1.0", "docker://mirror.example.com/backup/team/app:1.0"),
        ("docker://src.example.com/team/app:1.1", "docker://mirror.example.com/backup/team/app:1.1"),
        ("docker://src.example.com/team/db:2.0", "docker://mirror.example.com/backup/team/db:2.0"),
    ]


def test_a_registry_mirrored_to_a_bare_host_keeps_its_names_and_scoped_adds_the_source_host():
    plain = pairs("docker://src.example.com", "docker://mirror.example.com", repositories={"include": ["other/.*"]})
    assert plain == [("docker://src.example.com/other/app:1.0", "docker://mirror.example.com/other/app:1.0")]
    scoped = pairs("src.example.com", "mirror.example.com/m", repositories={"include": ["other/.*"]}, scoped=True)
    assert scoped == [("docker://src.example.com/other/app:1.0", "docker://mirror.example.com/m/src.example.com/other/app:1.0")]


def test_tags_are_listed_for_several_repositories_at_once_and_the_order_stays_the_catalog_order():
    started = threading.Barrier(3, timeout=10)

    def slow(reference, options):
        started.wait()  # three lists must be running together for any of them to go on
        return listed(reference, options)

    found = catalog_pairs(
        parse_catalog_scope("src.example.com"),
        "m.example.com",
        ConnectionOptions(),
        slow,
        TagSelection(),
        {"names": ["team/db", "team/app", "other/app"]},
        parallel=3,
    )
    assert [p.src.repository for p in found] == ["team/db", "team/app", "team/app", "team/app", "other/app"]


def test_a_repository_without_a_tag_list_is_one_failure_with_keep_going_and_an_error_without():
    failures = []
    found = catalog_pairs(
        parse_catalog_scope("src.example.com"),
        "m.example.com/x",
        ConnectionOptions(),
        listed,
        TagSelection(),
        {"names": ["gone/app", "team/db"]},
        on_error=failures.append,
    )
    assert [str(p.dest) for p in found] == ["docker://m.example.com/x/team/db:2.0"]
    assert failures == [
        {
            "src": "docker://src.example.com/gone/app",
            "dest": "docker://m.example.com/x/gone/app",
            "changed": False,
            "failed": True,
            "msg": "repository gone/app not found",
        }
    ]
    with pytest.raises(OCIError, match="gone/app not found"):
        pairs("src.example.com", "m.example.com", names=["gone/app"])


@pytest.mark.parametrize("dest, words", [("fedora", "must name a registry"), ("", "must name a registry"), ("dir:/srv/tree:1.0/x", None)])
def test_the_destination_is_a_registry_prefix_or_a_local_place(dest, words):
    if words is None:  # a path with a colon is a path
        assert pairs("src.example.com", dest, names=["team/db"]) == [("docker://src.example.com/team/db:2.0", "dir:/srv/tree:1.0/x/team/db:2.0")]
        return
    with pytest.raises(OCIError, match=words):
        pairs("src.example.com", dest)


@pytest.mark.parametrize(
    "dest, scoped, landed",
    [
        ("dir:/srv/tree", False, "dir:/srv/tree/team/db:2.0"),
        ("dir:/srv/tree", True, "dir:/srv/tree/src.example.com/team/db:2.0"),
        ("oci:/srv/bundle", False, "oci:/srv/bundle:src.example.com/team/db:2.0"),
        ("oci:/srv/bundle", True, "oci:/srv/bundle:src.example.com/team/db:2.0"),
    ],
)
def test_into_a_tree_the_repository_path_is_kept_and_into_a_bundle_the_full_reference(dest, scoped, landed):
    assert pairs("src.example.com", dest, names=["team/db"], scoped=scoped) == [("docker://src.example.com/team/db:2.0", landed)]


def test_unknown_repository_selection_keys_are_named():
    with pytest.raises(OCIError, match=r"unknown key.*regex"):
        pairs("src.example.com", "m.example.com", repositories={"regex": "x"})
