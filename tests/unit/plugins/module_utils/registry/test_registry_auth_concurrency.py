"""One client shared by many threads (as every image of a task shares it): each logs in, none is refused.

Real registries (htpasswd Basic, token auth). Threads start together behind a barrier, so their first
requests race for the registry's challenge and for the token of their scope.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import build_layout, make_client, skopeo_push

from ansible_collections.oci.images.plugins.module_utils._errors import PermissionDenied

THREADS = 8
ROUNDS = 3


def together(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads released at the same moment; returns results or the exceptions raised."""
    barrier = threading.Barrier(count)

    def one(i):
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:  # every failure is reported, not only the first
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def push_four(reg, tmp_path_factory, seed: str):
    """One small image at ``par/app-0:1`` .. ``par/app-3:1`` of ``reg``."""
    image = build_layout(str(tmp_path_factory.mktemp("layout-" + seed)), seed)
    for i in range(4):
        skopeo_push(image, reg, "par/app-%d:1" % i, creds=True)
    return image


@pytest.fixture(scope="module")
def basic_image(basic_registry, tmp_path_factory):
    return push_four(basic_registry, tmp_path_factory, "par-basic")


@pytest.fixture(scope="module")
def token_image(token_registry, tmp_path_factory):
    return push_four(token_registry, tmp_path_factory, "par-token")


def test_threads_sharing_a_basic_client_all_log_in(basic_registry, basic_image):
    for _round in range(ROUNDS):
        with make_client(basic_registry, username=basic_registry.username, password=basic_registry.password) as client:
            answers = together(THREADS, lambda i: client.head_manifest("par/app-0", "1").digest)
        assert answers == [basic_image.manifest_digest] * THREADS


def test_threads_sharing_a_token_client_fetch_one_token_per_scope(token_registry, token_image):
    ts = token_registry.token_server
    for _round in range(ROUNDS):
        before = {i: len(ts.token_requests("repository:par/app-%d:pull" % i)) for i in range(2)}
        with make_client(token_registry, username=token_registry.username, password=token_registry.password) as client:
            answers = together(THREADS, lambda i: client.head_manifest("par/app-%d" % (i % 2), "1").digest)
        assert answers == [token_image.manifest_digest] * THREADS
        # One challenge answered once: every thread waited for the one token of its scope.
        assert {i: len(ts.token_requests("repository:par/app-%d:pull" % i)) - before[i] for i in range(2)} == {0: 1, 1: 1}


def tokens_granting_nothing(monkeypatch, token_server, count: int) -> list:
    """Make the token server's first ``count`` tokens carry no access (the registry refuses them); returns what was asked."""
    sign = token_server.sign
    asked: list = []

    def sign_some_empty(access):
        asked.append(access)
        return sign([] if len(asked) <= count else access)

    monkeypatch.setattr(token_server, "sign", sign_some_empty)
    return asked


def test_a_refused_token_is_replaced_once_before_it_counts_as_a_refusal(token_registry, token_image, monkeypatch):
    asked = tokens_granting_nothing(monkeypatch, token_registry.token_server, 1)
    with make_client(token_registry, username=token_registry.username, password=token_registry.password) as client:
        assert client.get_manifest("par/app-1", "1")[2] == token_image.manifest_digest
    assert len(asked) == 2


def test_a_token_refused_twice_is_a_refusal(token_registry, token_image, monkeypatch):
    asked = tokens_granting_nothing(monkeypatch, token_registry.token_server, 99)
    with make_client(token_registry, username=token_registry.username, password=token_registry.password) as client, pytest.raises(PermissionDenied) as err:
        client.get_manifest("par/app-1", "1")
    assert "insufficient_scope" in str(err.value)
    assert len(asked) == 2


def test_credential_helper_runs_once_for_many_threads_and_repositories(basic_registry, basic_image, tmp_path, monkeypatch, isolated_credentials):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    helper = bin_dir / "docker-credential-slow"
    # Slow on purpose: every thread asks while the first call is still running.
    answer = json.dumps({"Username": basic_registry.username, "Secret": basic_registry.password})
    helper.write_text("#!/bin/sh\ncat >/dev/null\necho call >> %s\nsleep 0.3\nprintf '%%s' '%s'\n" % (log, answer))
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    config = isolated_credentials / ".docker" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"credHelpers": {basic_registry.host: "slow"}}))
    with make_client(basic_registry) as client:
        answers = together(THREADS, lambda i: client.head_manifest("par/app-%d" % (i % 4), "1").digest)
    assert answers == [basic_image.manifest_digest] * THREADS
    assert log.read_text().splitlines() == ["call"]


def test_threads_with_credentials_from_an_auth_file_all_log_in(basic_registry, basic_image, tmp_path):
    auth = tmp_path / "auth.json"
    entry = base64.b64encode(("%s:%s" % (basic_registry.username, basic_registry.password)).encode()).decode()
    auth.write_text(json.dumps({"auths": {basic_registry.host: {"auth": entry}}}))
    for _round in range(ROUNDS):
        with make_client(basic_registry, auth_file=str(auth)) as client:
            answers = together(THREADS, lambda i: client.head_manifest("par/app-%d" % (i % 4), "1").digest)
        assert answers == [basic_image.manifest_digest] * THREADS
