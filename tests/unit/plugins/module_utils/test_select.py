# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tag selection by whole-tag regular expressions."""

from __future__ import annotations

import pytest

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError
from ansible_collections.oci.images.plugins.module_utils._select import select_tags

TAGS = ["latest", "1.2", "1.20", "1.2.3", "release-1", "pr-7", "build-17"]


def test_no_rules_select_every_tag_in_order():
    assert select_tags(TAGS) == TAGS


def test_include_matches_whole_tags_only():
    assert select_tags(TAGS, include=[r"1\.2"]) == ["1.2"]
    assert select_tags(TAGS, include=[r"1\.2.*"]) == ["1.2", "1.20", "1.2.3"]


def test_any_include_pattern_selects():
    assert select_tags(TAGS, include=["pr-.*", "build-.*"]) == ["pr-7", "build-17"]


def test_exclude_wins_over_include():
    assert select_tags(TAGS, include=[r"1\..*"], exclude=[r".*\.3"]) == ["1.2", "1.20"]


def test_single_string_pattern_is_accepted():
    assert select_tags(TAGS, include="latest") == ["latest"]


def test_exclude_alone_keeps_the_rest():
    assert select_tags(TAGS, exclude=["latest", "release-.*"]) == ["1.2", "1.20", "1.2.3", "pr-7", "build-17"]


def test_invalid_regex_names_option_and_pattern():
    with pytest.raises(OCIError) as err:
        select_tags(TAGS, exclude=["build-("])
    assert "exclude" in err.value.msg and "build-(" in err.value.msg
