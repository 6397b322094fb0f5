"""The Link header forms registries send on tag lists, and what the next page is."""

from __future__ import annotations

import pytest

from ansible_collections.oci.images.plugins.module_utils._registry._client import link_next

FORMS = [
    # distribution, Harbor, Artifactory: relative, rel quoted
    ('</v2/a/tags/list?n=2&last=b>; rel="next"', "/v2/a/tags/list?n=2&last=b"),
    # absolute URL (the host is dropped: the next page is asked of the same registry, as skopeo does)
    ('<https://ghcr.example/v2/a/tags/list?last=b&n=2>; rel="next"', "/v2/a/tags/list?last=b&n=2"),
    # rel unquoted, no space
    ("</v2/a/tags/list?last=b>;rel=next", "/v2/a/tags/list?last=b"),
    # the whole value quoted by a proxy
    ('"</v2/a/tags/list?last=b>; rel=\\"next\\""', "/v2/a/tags/list?last=b"),
    ("'</v2/a/tags/list?last=b>; rel=next'", "/v2/a/tags/list?last=b"),
    # several links: the one whose rel is next
    ('</v2/a/tags/list?last=a>; rel="prev", </v2/a/tags/list?last=c>; rel="next"', "/v2/a/tags/list?last=c"),
    # a parameter holding a comma, several rel values, upper case
    ('</x?last=b>; type="a,b"; REL="prev next"', "/x?last=b"),
    # a percent-encoded last stays encoded
    ("<https://h/v2/a/tags/list?last=b%2Fc&n=1>;rel=next", "/v2/a/tags/list?last=b%2Fc&n=1"),
    # the target quoted inside the brackets
    ('<"/v2/a/tags/list?last=q">; rel="next"', "/v2/a/tags/list?last=q"),
    # no next page
    ('</v2/a/tags/list?last=a>; rel="previous"', None),
    ("", None),
    (None, None),
    ("garbage", None),
]


@pytest.mark.parametrize("header,expected", FORMS)
def test_link_next_finds_the_next_page_in_every_form_registries_send(header, expected):
    assert link_next(header) == expected
