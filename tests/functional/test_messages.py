"""Failure messages name the option a user can set where they are: in image_copy, the one of the side that failed."""

from __future__ import annotations

import pytest
from ansible_run import isolated_auth_env, run_module
from images import build_image

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return build_image(str(tmp_path_factory.mktemp("messages")), ref="1", layer_sizes=(1024,), seed=1201)


def test_tls_failure_on_the_destination_names_the_destination_options(basic_registry, image):
    run = run_module("image_copy", {"src": "oci:%s:1" % image["layout"], "dest": "docker://%s/messages/app:1" % basic_registry.host, "retries": 0})
    assert run.failed
    msg = run.result["msg"]
    assert "set dest_ca_cert (or put the CA in certs.d/%s)" % basic_registry.host in msg and "set dest_validate_certs: false" in msg, msg


def test_tls_failure_on_the_source_names_the_source_options(basic_registry, tmp_path):
    run = run_module("image_copy", {"src": "docker://%s/messages/app:1" % basic_registry.host, "dest": "oci:%s:1" % (tmp_path / "out"), "retries": 0})
    assert run.failed
    assert "set src_ca_cert" in run.result["msg"] and "set src_validate_certs: false" in run.result["msg"], run.result["msg"]


def test_missing_credentials_name_the_sides_options(basic_registry, image, tmp_path):
    env = isolated_auth_env(tmp_path)
    args = {"src": "oci:%s:1" % image["layout"], "dest": "docker://%s/messages/app:1" % basic_registry.host, "dest_ca_cert": basic_registry.ca_cert}
    run = run_module("image_copy", dict(args, retries=0), env=env)
    assert run.failed
    assert "set dest_username/dest_password, dest_registry_token or dest_auth_file" in run.result["msg"], run.result["msg"]
    wrong = run_module("image_copy", dict(args, dest_username=basic_registry.username, dest_password="not-it", retries=0), env=env)
    assert "rejected the credentials" in wrong.result["msg"] and "(from dest_username/dest_password): check dest_username/dest_password" in wrong.result["msg"]


def test_modules_with_one_side_name_their_plain_options(basic_registry, tmp_path):
    env = isolated_auth_env(tmp_path)
    run = run_module("image_info", {"image": "docker://%s/messages/app:1" % basic_registry.host, "retries": 0})
    assert "set ca_cert (or put the CA" in run.result["msg"] and "set validate_certs: false" in run.result["msg"]
    run = run_module("image_info", {"image": "docker://%s/messages/app:1" % basic_registry.host, "ca_cert": basic_registry.ca_cert}, env=env)
    assert "set username/password, registry_token or auth_file" in run.result["msg"], run.result["msg"]
