"""The collection's version is written once in galaxy.yml; the code's copy must agree with it."""

from __future__ import annotations

import os

import yaml

from ansible_collections.oci.images.plugins.module_utils._registry._http import USER_AGENT
from ansible_collections.oci.images.plugins.module_utils._version import COLLECTION_VERSION

GALAXY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "galaxy.yml")


def test_version_in_the_code_is_galaxy_yml_version():
    with open(GALAXY, encoding="utf-8") as handle:
        assert yaml.safe_load(handle)["version"] == COLLECTION_VERSION


def test_user_agent_carries_the_version():
    assert USER_AGENT == "oci.images/%s" % COLLECTION_VERSION
