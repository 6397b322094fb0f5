"""The registry catalog: every page of /v2/_catalog, Link headers as registries write them, loops and registries without one."""

from __future__ import annotations

import json
import urllib.request

import pytest
from many_tags import push_many_tags

from ansible_collections.oci.images.plugins.module_utils._catalog import CatalogScope, parse_catalog_scope, select_repositories
from ansible_collections.oci.images.plugins.module_utils._errors import InvalidReference, OCIError, RegistryError, Unsupported
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._catalog import list_repositories, next_page_url
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient

PAGE = "http://registry.example.com/v2/_catalog?n=2"


@pytest.mark.parametrize(
    "header, expected",
    [
        ('</v2/_catalog?last=b&n=2>; rel="next"', "http://registry.example.com/v2/_catalog?last=b&n=2"),
        ("<https://mirror.example.com/v2/_catalog?last=b>; rel=next", "https://mirror.example.com/v2/_catalog?last=b"),
        ('<_catalog?last=b&n=2>; rel="next"', "http://registry.example.com/v2/_catalog?last=b&n=2"),
        ('</v2/_catalog?last=a>; rel="prev", </v2/_catalog?last=c>; rel="next"', "http://registry.example.com/v2/_catalog?last=c"),
        ('</v2/_catalog?last=c>; title="a, b; c"; rel="last next"', "http://registry.example.com/v2/_catalog?last=c"),
        ('</v2/_catalog?last=c>;rel="NEXT"', "http://registry.example.com/v2/_catalog?last=c"),
        ('</v2/_catalog?last=a>; rel="prev"', None),
        ('</v2/_catalog?last=a>; rel="nextpage"', None),
        ("", None),
        (None, None),
    ],
)
def test_next_page_from_link_headers_as_registries_write_them(header, expected):
    assert next_page_url(header, PAGE) == expected


def _client_for(server) -> RegistryClient:
    return RegistryClient(server.host, ConnectionOptions(validate_certs=False, retries=0), backoff_base=0.01)


def _pages(fake_server, pages: dict):
    """A scripted registry answering GETs of the paths in ``pages`` with (status, headers, body)."""
    return fake_server(lambda req: pages.get(req.path, (404, {}, b'{"errors":[{"code":"NOT_FOUND","message":"no page"}]}')))


def _body(*names: str) -> bytes:
    return json.dumps({"repositories": list(names)}).encode()


def test_catalog_follows_relative_absolute_and_unquoted_links_to_the_end(fake_server):
    pages: dict = {}
    server = _pages(fake_server, pages)
    pages["/v2/_catalog?n=2"] = (200, {"Link": '</v2/_catalog?last=b&n=2>; rel="next"'}, _body("a", "b"))
    pages["/v2/_catalog?last=b&n=2"] = (200, {"Link": "<http://%s/v2/_catalog?last=d&n=2>; rel=next" % server.host}, _body("c", "d"))
    pages["/v2/_catalog?last=d&n=2"] = (200, {"Link": '<_catalog?last=f&n=2>; rel="next"'}, _body("e", "f", "a"))
    pages["/v2/_catalog?last=f&n=2"] = (200, {}, _body("g"))
    with _client_for(server) as client:
        assert list_repositories(client, page_size=2) == ["a", "b", "c", "d", "e", "f", "g"]  # "a" twice is listed once
    assert len(server.requests) == 4


def test_catalog_that_sends_back_to_a_page_already_read_is_an_error(fake_server):
    pages: dict = {}
    server = _pages(fake_server, pages)
    pages["/v2/_catalog?n=2"] = (200, {"Link": '</v2/_catalog?last=b&n=2>; rel="next"'}, _body("a", "b"))
    pages["/v2/_catalog?last=b&n=2"] = (200, {"Link": '</v2/_catalog?n=2>; rel="next"'}, _body("c"))
    with _client_for(server) as client, pytest.raises(RegistryError) as err:
        list_repositories(client, page_size=2)
    assert "loops" in err.value.msg and "already sent" in err.value.msg
    assert len(server.requests) == 2


def test_catalog_whose_next_page_brings_nothing_new_is_an_error(fake_server):
    # A registry that ignores last= sends the first page again under every new address.
    server = fake_server(lambda req: (200, {"Link": '</v2/_catalog?n=2&last=%d>; rel="next"' % len(req.path)}, _body("a", "b")))
    with _client_for(server) as client, pytest.raises(RegistryError) as err:
        list_repositories(client, page_size=2)
    assert "does not advance" in err.value.msg
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "status, body",
    [
        (404, b"404 page not found"),
        (404, b'{"errors":[{"code":"NOT_FOUND","message":"catalog disabled"}]}'),
        (405, b""),
        (400, b'{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}'),
    ],
)
def test_a_registry_without_a_catalog_is_told_clearly(fake_server, status, body):
    server = fake_server(lambda req: (status, {"Content-Type": "application/json"}, body))
    with _client_for(server) as client, pytest.raises(Unsupported) as err:
        list_repositories(client)
    assert "does not list its repositories" in err.value.msg and "name the repositories instead" in err.value.msg
    assert "HTTP %d" % status in err.value.msg


def test_a_registry_with_smaller_pages_chooses_their_size(fake_server):
    pages: dict = {}
    server = _pages(fake_server, pages)
    pages["/v2/_catalog?n=1000"] = (400, {}, b'{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested"}]}')
    pages["/v2/_catalog"] = (200, {"Link": '</v2/_catalog?last=a&n=1>; rel="next"'}, _body("a"))
    pages["/v2/_catalog?last=a&n=1"] = (200, {}, _body("b"))
    with _client_for(server) as client:
        assert list_repositories(client) == ["a", "b"]


def test_a_catalog_page_that_is_not_a_repository_list_is_an_error(fake_server):
    server = fake_server(lambda req: (200, {}, b'{"repositories": "a,b"}'))
    with _client_for(server) as client, pytest.raises(RegistryError) as err:
        list_repositories(client)
    assert "not a repository list" in err.value.msg


def test_catalog_pages_of_the_real_registry_match_its_one_page_list(fresh_registry, tmp_path):
    registry = fresh_registry()
    names = ["team/app", "team/db/pg", "teamwork", "tools/a", "tools/b", "zeta", "alpha"]
    for seed, name in enumerate(names):
        push_many_tags(registry.host, name, ["1"], str(tmp_path), seed=seed)
    with urllib.request.urlopen("http://%s/v2/_catalog?n=1000" % registry.host, timeout=10) as response:
        whole = json.loads(response.read())["repositories"]
    assert sorted(whole) == sorted(names)
    with RegistryClient(registry.host, ConnectionOptions(validate_certs=False)) as client:
        assert list_repositories(client, page_size=3) == whole
        assert list_repositories(client) == whole


def test_catalog_scope_is_a_host_and_a_whole_path_namespace():
    assert parse_catalog_scope("registry.example.com") == CatalogScope("registry.example.com")
    assert parse_catalog_scope("docker://127.0.0.1:5000/team/") == CatalogScope("127.0.0.1:5000", "team")
    assert parse_catalog_scope("localhost/a/b").reference("a/b/c") == "docker://localhost/a/b/c"
    for wrong in ("fedora", "docker://fedora", "", "registry.example.com/Team"):
        with pytest.raises(InvalidReference):
            parse_catalog_scope(wrong)
    names = ["team/app", "team/db/pg", "teamwork", "tools/a"]
    assert select_repositories(names, CatalogScope("h.example", "team")) == ["team/app", "team/db/pg"]
    assert select_repositories(names, CatalogScope("h.example"), include=["t.*"], exclude=["team/.*"]) == ["teamwork", "tools/a"]
    with pytest.raises(OCIError) as err:
        select_repositories(names, CatalogScope("h.example"), include=["("])
    assert "repositories.include" in err.value.msg
