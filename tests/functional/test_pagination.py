"""Tag lists in pages, for real: a 2,500-tag repository in a real registry, served in pages of 100 by a paging front.

docker-registry 2.8 ignores ``n=`` on tag lists, so the front (tests/lib/paging_front.py) does the
paging registries such as Docker Hub, GHCR, Harbor and Artifactory do. skopeo lists through the
same front as the oracle. Broken pagination (a refused ``n=``, a loop, a page served again) ends
in the full list or in an error, never in a hang or a silently short list.
"""

from __future__ import annotations

import pytest
from ansible_run import run_module
from many_tags import push_many_tags
from paging_front import PagingFront
from registries import start_registry
from skopeo import list_tags as skopeo_list_tags

from ansible_collections.oci.images.plugins.module_utils._errors import RegistryError
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient

pytestmark = pytest.mark.timeout(300)

TAG_COUNT = 2500
PAGE = 100
REPOSITORY = "paged/big"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    work = tmp_path_factory.mktemp("pagination")
    registry = start_registry(str(work / "registry"), "plain")
    try:
        tags = ["v%04d" % i for i in range(TAG_COUNT)]
        push_many_tags(registry.host, REPOSITORY, tags, str(work))
        yield {"registry": registry, "tags": tags}
    finally:
        registry.stop()


def _front(big, **kw) -> PagingFront:
    return PagingFront(big["registry"].host, page_size=PAGE, **kw)


def _list(host: str) -> list[str]:
    with RegistryClient(host, ConnectionOptions(validate_certs=False, retries=0, timeout=10)) as client:
        return client.list_tags(REPOSITORY)


def test_the_registry_itself_ignores_n_and_answers_every_tag_at_once(big):
    assert sorted(_list(big["registry"].host)) == big["tags"]


@pytest.mark.parametrize("link", ["relative", "absolute", "unquoted"])
def test_2500_tags_in_pages_of_100_are_listed_as_skopeo_lists_them(big, link):
    with _front(big, link=link) as front:
        ours = _list(front.host)
        pages = front.pages_served
        theirs = skopeo_list_tags("docker://%s/%s" % (front.host, REPOSITORY))["Tags"]
    assert ours == big["tags"]
    assert pages == TAG_COUNT // PAGE
    assert theirs == ours


@pytest.mark.parametrize("link", ["quoted_value", "with_prev"])
def test_link_headers_skopeo_cannot_follow_are_followed(big, link):
    # skopeo 1.9 takes the first <...> up to ';' of the header: a quoted value or a rel="first" link before
    # rel="next" sends it astray, so here the registry's own full list is the reference.
    with _front(big, link=link) as front:
        assert _list(front.host) == big["tags"]
        assert front.pages_served == TAG_COUNT // PAGE


def test_a_registry_that_refuses_n_is_asked_again_without_it(big):
    with _front(big, misbehave="refuse_n") as front:
        assert _list(front.host) == big["tags"]
        statuses = [e.status for e in front.exchanges("GET", r"/tags/list")]
    assert statuses[0] == 400 and statuses[1:] == [200] * (TAG_COUNT // PAGE)


def test_a_link_back_to_a_page_already_read_is_an_error_not_a_hang(big):
    with _front(big, misbehave="loop") as front:
        with pytest.raises(RegistryError, match="loops"):
            _list(front.host)
        assert front.pages_served <= TAG_COUNT // PAGE + 1


def test_a_page_served_again_under_a_new_url_is_an_error_not_a_hang(big):
    with _front(big, misbehave="repeat") as front:
        with pytest.raises(RegistryError, match="repeats itself"):
            _list(front.host)
        assert front.pages_served == 2


def test_image_info_lists_every_tag_of_a_paged_repository(big):
    with _front(big) as front:
        run = run_module("image_info", {"image": "docker://%s/%s" % (front.host, REPOSITORY), "list_tags": True, "validate_certs": False})
    assert not run.failed, run.output[-3000:]
    assert run.result["image"]["tags"] == big["tags"]


def test_image_copy_reports_broken_pagination_with_the_registry_named(big):
    with _front(big, misbehave="repeat") as front:
        run = run_module(
            "image_copy",
            {"src": "docker://%s/%s" % (front.host, REPOSITORY), "dest": "docker://%s/copy/big" % front.host, "validate_certs": False},
        )
    assert run.failed
    assert front.host in run.result["msg"] and "repeats itself" in run.result["msg"]
