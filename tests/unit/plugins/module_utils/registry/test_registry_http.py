"""Transport behaviour: TLS choice and certs.d, retries, 429/503, resumed blob reads, pagination.

TLS cases use real registries; retry and truncation cases use a scripted server on 127.0.0.1
because a real registry cannot be made to answer 429, 503 bursts or cut a body short.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import make_client

from ansible_collections.oci.images.plugins.module_utils._errors import ConnectionFailure, DigestMismatch, RegistryError, TLSFailure
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference
from ansible_collections.oci.images.plugins.module_utils._registry._client import RegistryClient
from ansible_collections.oci.images.plugins.module_utils._registry._http import USER_AGENT, find_certs_d, parse_retry_after
from ansible_collections.oci.images.plugins.module_utils._transports._docker import RegistrySource

# --- TLS -----------------------------------------------------------------------------------------


def test_unknown_ca_is_a_tls_failure_saying_what_to_set(basic_registry):
    with make_client(basic_registry, ca_cert=None) as client, pytest.raises(TLSFailure) as err:
        client.ping()
    message = str(err.value)
    assert basic_registry.host in message and "ca_cert" in message and "validate_certs" in message


def test_ca_cert_option_verifies_registry(basic_registry):
    with make_client(basic_registry) as client:
        assert client.ping() is True
        assert client.http.scheme == "https"


def test_certs_d_in_home_supplies_the_ca(basic_registry, isolated_credentials):
    certs_dir = isolated_credentials / ".config" / "containers" / "certs.d" / basic_registry.host
    certs_dir.mkdir(parents=True)
    shutil.copy(basic_registry.ca_cert, str(certs_dir / "ca.crt"))
    with make_client(basic_registry, ca_cert=None) as client:
        assert client.ping() is True


def oci_images_temp_files() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("oci-images")}


def test_ca_cert_writes_no_file_and_serves_parallel_requests(basic_registry):
    before = oci_images_temp_files()
    with make_client(basic_registry) as client:
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(lambda _i: client.ping(), range(16))) == [True] * 16
        # The CA is in memory: nothing in the temporary directory, even while the client is open.
        assert oci_images_temp_files() - before == set()


def test_unreadable_ca_cert_is_a_tls_failure_naming_it(basic_registry, tmp_path):
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("not a certificate")
    with make_client(basic_registry, ca_cert=str(bad)) as client, pytest.raises(TLSFailure) as err:
        client.ping()
    assert str(bad) in str(err.value) and basic_registry.host in str(err.value)


def test_client_certificate_with_ca_cert_passes_mutual_tls(fresh_registry):
    reg = fresh_registry("tls", mutual_tls=True)
    cert, key = reg.ca.issue("client", client=True)
    with make_client(reg, client_cert=cert, client_key=key) as client:
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(lambda _i: client.ping(), range(8))) == [True] * 8
    with make_client(reg) as client, pytest.raises((TLSFailure, ConnectionFailure)):
        client.ping()


def test_certs_d_finds_client_certificate_pair(tmp_path):
    directory = tmp_path / "certs.d" / "reg.example:5000"
    directory.mkdir(parents=True)
    for name in ("ca.crt", "client.cert", "client.key", "lonely.cert"):
        (directory / name).write_text("x")
    cas, pair = find_certs_d("reg.example:5000", [str(tmp_path / "none"), str(tmp_path / "certs.d")])
    assert cas == [str(directory / "ca.crt")]
    assert pair == (str(directory / "client.cert"), str(directory / "client.key"))


def test_validate_certs_false_accepts_unknown_ca_over_https(basic_registry):
    with make_client(basic_registry, ca_cert=None, validate_certs=False) as client:
        assert client.ping() is True
        assert client.http.scheme == "https"


def test_plain_http_registry_needs_validate_certs_false(registry):
    with make_client(registry, validate_certs=True) as client, pytest.raises(TLSFailure) as err:
        client.ping()
    assert "validate_certs: false" in str(err.value)
    with make_client(registry, validate_certs=False) as client:
        assert client.ping() is True
        assert client.http.scheme == "http"


# --- retries -------------------------------------------------------------------------------------


def test_registry_down_is_a_connection_failure_after_retries(fresh_registry):
    reg = fresh_registry("plain")
    host = reg.host
    reg.stop()
    client = RegistryClient(host, ConnectionOptions(validate_certs=False, retries=2), backoff_base=0.01)
    with pytest.raises(ConnectionFailure) as err:
        client.ping()
    client.close()
    assert host in str(err.value) and "3 attempts" in str(err.value)


def test_registry_restart_is_survived_between_requests(fresh_registry):
    reg = fresh_registry("plain")
    with make_client(reg) as client:
        assert client.ping()
        reg.restart()
        assert client.ping()


def _client_for(server, retries: int = 3) -> RegistryClient:
    return RegistryClient(server.host, ConnectionOptions(validate_certs=False, retries=retries), backoff_base=0.01)


def test_429_retry_after_is_honoured(fake_server):
    answers = iter([(429, {"Retry-After": "1"}, b""), (200, {}, b"{}")])
    server = fake_server(lambda req: next(answers))
    with _client_for(server) as client:
        start = time.monotonic()
        assert client.ping() is True
        elapsed = time.monotonic() - start
    assert len(server.requests) == 2
    assert elapsed >= 0.9


def test_503_burst_is_retried(fake_server):
    answers = iter([(503, {}, b""), (503, {}, b""), (200, {}, b"{}")])
    server = fake_server(lambda req: next(answers))
    with _client_for(server) as client:
        assert client.ping() is True
    assert len(server.requests) == 3
    assert all(r.headers.get("User-Agent") == USER_AGENT for r in server.requests)


def test_503_beyond_retries_reports_registry_error(fake_server):
    body = b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}'
    server = fake_server(lambda req: (503, {"Content-Type": "application/json"}, body))
    with _client_for(server, retries=1) as client, pytest.raises(RegistryError) as err:
        client.get_manifest("app", "1")
    assert len(server.requests) == 2
    assert "503" in str(err.value) and "UNAVAILABLE: try later" in str(err.value)


def test_non_idempotent_request_is_not_retried(fake_server):
    server = fake_server(lambda req: (503, {}, b""))
    with _client_for(server) as client, pytest.raises(RegistryError):
        client.mount_blob("app", "sha256:" + "a" * 64, "other")
    assert len(server.requests) == 1


def test_retry_after_accepts_seconds_and_dates_and_is_capped():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("100000", cap=60) == 60
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(soon) <= 30
    assert parse_retry_after("garbage") is None


# --- streaming -----------------------------------------------------------------------------------


def test_interrupted_blob_read_resumes_with_range(fake_server):
    blob = bytes(range(256)) * 400
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()

    def answer(req):
        if req.headers.get("Range"):
            start = int(req.headers["Range"].split("=")[1].rstrip("-"))
            return (206, {"Content-Range": "bytes %d-%d/%d" % (start, len(blob) - 1, len(blob))}, blob[start:])
        return (200, {}, blob, 30000)  # the connection drops after 30000 bytes

    server = fake_server(answer)
    with _client_for(server) as client, client.get_blob("app", digest, len(blob)) as reader:
        data = b""
        while True:
            chunk = reader.read(8192)
            if not chunk:
                break
            data += chunk
    assert data == blob
    assert [r.headers.get("Range") for r in server.requests] == [None, "bytes=30000-"]


def test_tag_list_follows_relative_and_absolute_link_headers(fake_server):
    pages = {}

    def answer(req):
        return pages[req.path]

    server = fake_server(answer)
    pages["/v2/app/tags/list?n=2"] = (200, {"Link": '</v2/app/tags/list?n=2&last=b>; rel="next"'}, b'{"name":"app","tags":["a","b"]}')
    pages["/v2/app/tags/list?n=2&last=b"] = (
        200,
        {"Link": '<http://%s/v2/app/tags/list?n=2&last=d>; rel="next"' % server.host},
        b'{"name":"app","tags":["c","d"]}',
    )
    pages["/v2/app/tags/list?n=2&last=d"] = (200, {}, b'{"name":"app","tags":["e"]}')
    pages["/v2/empty/tags/list?n=2"] = (200, {}, b'{"name":"empty","tags":null}')
    with _client_for(server) as client:
        assert client.list_tags("app", page_size=2) == ["a", "b", "c", "d", "e"]
        assert client.list_tags("empty", page_size=2) == []


# --- manifests the real registry will not serve ----------------------------------------------------

V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def test_signed_v2s1_manifest_trusts_registry_digest(fake_server):
    raw = b'{"schemaVersion": 1, "name": "app", "tag": "1", "fsLayers": [], "history": [], "signatures": [{"signature": "x"}]}'
    payload_digest = "sha256:" + hashlib.sha256(b"payload without signatures").hexdigest()
    server = fake_server(lambda req: (200, {"Content-Type": V1_SIGNED, "Docker-Content-Digest": payload_digest}, raw))
    ref = parse_reference("docker://%s/app:1" % server.host)
    with RegistrySource(ref, ConnectionOptions(validate_certs=False, retries=0)) as source:
        got, media_type = source.get_manifest()
        assert (got, media_type) == (raw, V1_SIGNED)
        assert source.manifest_digest(got) == payload_digest
    assert "application/vnd.docker.distribution.manifest.v1+prettyjws" in server.requests[0].headers["Accept"]


def test_manifest_not_matching_registry_digest_is_refused(fake_server):
    raw = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}'
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    server = fake_server(lambda req: (200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": wrong}, raw))
    with _client_for(server, retries=0) as client:
        with pytest.raises(DigestMismatch):
            client.get_manifest("app", "1")
        with pytest.raises(DigestMismatch):
            client.get_manifest("app", wrong)
