"""Every module operation through every fault kind: it survives, or it fails cleanly and leaves nothing half-written.

One registry and one fault proxy for the whole module. The proxy is reached under two names
(``127.0.0.1:P`` for sources, ``localhost:P`` for destinations) so registry-to-registry copies
move real bytes instead of mounting. The destination is always checked straight at the registry
(skopeo and plain HTTP, not through the proxy): a tag is either absent or names an image whose
every manifest and blob is present, and a successful copy has the source's digest byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
import zlib

import pytest
from ansible_run import run_module
from fault_proxy import KINDS, FaultProxy
from images import build_image, build_index
from registries import start_registry
from skopeo import copy as skopeo_copy
from skopeo import inspect_raw

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 1.5
RETRIES = 2
MANIFEST_ACCEPT = ",".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
# Wrong bytes under a digest are not a transient fault: stopping with a digest mismatch is the right answer.
MAY_FAIL = ("corrupt_body",)
OPERATIONS = ("copy_single", "copy_multi", "copy_repository", "copy_to_layout", "info", "delete")
MATRIX: dict[tuple[str, str], str] = {}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """A registry of its own (it gets restarted), a fault proxy before it, and the source images in it."""
    work = tmp_path_factory.mktemp("faults")
    registry = start_registry(str(work / "registry"), "plain")
    proxy = FaultProxy(registry.host, registry=registry)
    try:
        single = build_image(str(work / "single"), ref="1", layer_sizes=(384 * 1024, 24 * 1024), seed=701)
        multi = build_index(str(work / "multi"), ref="1", platforms=["linux/amd64", "linux/arm64/v8"], layer_sizes=(160 * 1024,), seed=702)
        repo_a = build_image(str(work / "repo"), ref="a", layer_sizes=(96 * 1024,), seed=703)
        repo_b = build_image(str(work / "repo"), ref="b", layer_sizes=(96 * 1024,), seed=704)
        skopeo_copy("oci:%s:1" % single["layout"], "docker://%s/src/single:1" % registry.host)
        skopeo_copy("oci:%s:1" % multi["layout"], "docker://%s/src/multi:1" % registry.host, "--multi-arch", "all")
        skopeo_copy("oci:%s:a" % repo_a["layout"], "docker://%s/src/repo:a" % registry.host)
        skopeo_copy("oci:%s:b" % repo_b["layout"], "docker://%s/src/repo:b" % registry.host)
        yield {
            "work": work,
            "registry": registry,
            "proxy": proxy,
            "port": proxy.host.split(":")[1],
            "single": single,
            "multi": multi,
            "repo": {"a": repo_a["manifest_digest"], "b": repo_b["manifest_digest"]},
            "delete_image": str(work / "single"),
        }
    finally:
        proxy.stop()
        registry.stop()
    if MATRIX:
        lines = ["%-20s %s" % ("kind", " ".join("%-16s" % op for op in OPERATIONS))]
        for kind in KINDS:
            lines.append("%-20s %s" % (kind, " ".join("%-16s" % MATRIX.get((kind, op), "-") for op in OPERATIONS)))
        print("\nfault matrix (survived / clean failure):\n" + "\n".join(lines))
        out = os.environ.get("OCI_IMAGES_FAULT_MATRIX")
        if out:
            with open(out, "w") as f:
                json.dump({"%s %s" % key: value for key, value in MATRIX.items()}, f, indent=1, sort_keys=True)


# --- straight at the registry ------------------------------------------------------------------


def _get(registry, path: str, method: str = "GET", accept: str | None = None):
    request = urllib.request.Request(registry.url + path, method=method, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, b"", {}


def tag_state(registry, repository: str, ref: str) -> str | None:
    """The digest ``ref`` names at the registry, after proving every manifest and blob under it is present; None when absent."""
    status, raw, _headers = _get(registry, "/v2/%s/manifests/%s" % (repository, ref), accept=MANIFEST_ACCEPT)
    if status == 404:
        return None
    assert status == 200, "registry answered %d for %s:%s" % (status, repository, ref)
    _assert_complete(registry, repository, raw)
    return digest_of(raw)


def _assert_complete(registry, repository: str, raw: bytes) -> None:
    doc = json.loads(raw)
    for child in doc.get("manifests") or []:
        status, child_raw, _headers = _get(registry, "/v2/%s/manifests/%s" % (repository, child["digest"]), accept=MANIFEST_ACCEPT)
        assert status == 200, "index in %s names child %s, which is missing" % (repository, child["digest"])
        assert digest_of(child_raw) == child["digest"]
        _assert_complete(registry, repository, child_raw)
    for blob in ([doc["config"]] if doc.get("config") else []) + (doc.get("layers") or []):
        status, _body, headers = _get(registry, "/v2/%s/blobs/%s" % (repository, blob["digest"]), method="HEAD")
        assert status == 200, "manifest in %s names blob %s, which is missing" % (repository, blob["digest"])
        assert int(headers.get("Content-Length", -1)) == blob["size"]


def assert_clean(run, rig) -> str:
    """Success, or a failure whose msg names the registry and carries no traceback; returns the matrix cell."""
    text = run.output
    assert "Traceback" not in text, text
    assert "MODULE FAILURE" not in text and "exception occurred" not in text, text
    assert "module_stderr" not in run.result and "exception" not in run.result, run.result
    if not run.failed:
        return "survived"
    msg = run.result.get("msg") or ""
    assert msg, run.result
    assert rig["port"] in msg or rig["registry"].host in msg, "failure does not name the registry: %s" % msg
    return "clean failure"


# --- the faults, aimed at the request where each one hurts ---------------------------------------


def _targets(rig, op: str) -> dict[str, tuple[str, str]]:
    big_layer = rig["single"]["layer_digests"][0]
    multi_layer = rig["multi"]["manifests"][1]["layer_digests"][0]
    blob = {
        "copy_single": big_layer,
        "copy_to_layout": big_layer,
        "copy_multi": multi_layer,
        "copy_repository": "sha256:",
        "info": rig["single"]["config_digest"],
    }.get(op)
    manifest_get = ("GET", r"/manifests/")
    targets = {"manifest_get": manifest_get, "first": ("*", r"^/v2/")}
    targets["blob_get"] = ("GET", "/blobs/" + blob) if blob else ("*", r"/manifests/")
    if op in ("copy_single", "copy_multi", "copy_repository"):
        targets["upload"] = ("PUT", r"/blobs/uploads/")
        targets["write"] = ("PUT", r"/manifests/")
    elif op == "delete":
        targets["upload"] = targets["write"] = ("DELETE", r"/manifests/")
    else:
        targets["upload"] = targets["write"] = targets["blob_get"]
    return targets


# (kind, target, extra fault settings)
SCHEDULE = {
    "reset_on_request": ("manifest_get", {}),
    "reset_mid_body": ("blob_get", {"after_bytes": 100}),
    "reset_mid_upload": ("upload", {"after_bytes": 32 * 1024}),
    "reset_after_forward": ("write", {}),
    "stall_headers": ("manifest_get", {"seconds": TIMEOUT * 2}),
    "stall_mid_body": ("blob_get", {"after_bytes": 200, "seconds": TIMEOUT * 2}),
    "status_500": ("write", {"nth": (1, 2)}),
    "status_502": ("blob_get", {"nth": (1, 2)}),
    "status_503": ("first", {"nth": (1, 2)}),
    "status_429": ("manifest_get", {"retry_after": "1"}),
    "truncate_body": ("blob_get", {"after_bytes": 150}),
    "corrupt_body": ("blob_get", {"after_bytes": 64}),
    "garbage_response": ("manifest_get", {}),
    "restart_registry": ("blob_get", {}),
}


def _run(op: str, rig, case: str):
    """Run one operation through the proxy; returns (run, check) where check() asserts the destination's state."""
    registry, port = rig["registry"], rig["port"]
    src_host, dest_host = "127.0.0.1:%s" % port, "localhost:%s" % port
    common = {"timeout": TIMEOUT, "retries": RETRIES}
    copy_common = dict(common, src_validate_certs=False, dest_validate_certs=False)
    if op == "copy_single":
        run = run_module("image_copy", dict(copy_common, src="docker://%s/src/single:1" % src_host, dest="docker://%s/%s/single:1" % (dest_host, case)))
        expected = {"1": rig["single"]["manifest_digest"]}
        repository = "%s/single" % case
    elif op == "copy_multi":
        run = run_module("image_copy", dict(copy_common, src="docker://%s/src/multi:1" % src_host, dest="docker://%s/%s/multi:1" % (dest_host, case)))
        expected = {"1": rig["multi"]["index_digest"]}
        repository = "%s/multi" % case
    elif op == "copy_repository":
        run = run_module("image_copy", dict(copy_common, src="docker://%s/src/repo" % src_host, dest="docker://%s/%s/repo" % (dest_host, case)))
        expected = rig["repo"]
        repository = "%s/repo" % case
    elif op == "copy_to_layout":
        layout = rig["work"] / ("layout-" + case)
        run = run_module("image_copy", dict(copy_common, src="docker://%s/src/single:1" % src_host, dest="oci:%s:1" % layout))
        _check_layout(run, layout, rig["single"]["manifest_digest"])
        return run
    elif op == "info":
        run = run_module("image_info", dict(common, image="docker://%s/src/single:1" % src_host, validate_certs=False))
        if not run.failed:
            assert run.result["image"]["digest"] == rig["single"]["manifest_digest"], run.result
        return run
    else:
        return _run_delete(rig, case, common)
    for tag, digest in expected.items():
        state = tag_state(registry, repository, tag)
        if not run.failed:
            assert state == digest, "copy succeeded but %s:%s names %s, not %s" % (repository, tag, state, digest)
            assert digest_of(inspect_raw("docker://%s/%s:%s" % (registry.host, repository, tag))) == digest
        else:
            assert state in (None, digest)
    return run


def _check_layout(run, layout, digest: str) -> None:
    leftovers = [p for p in os.listdir(layout.parent) if p.startswith(".oci-images-tmp")]
    assert not leftovers, leftovers
    if not run.failed:
        assert digest_of(inspect_raw("oci:%s:1" % layout)) == digest
    else:
        assert not layout.exists(), "failed copy left %s behind: %s" % (layout, sorted(os.listdir(layout)))


def _run_delete(rig, case: str, common: dict):
    registry = rig["registry"]
    repository = "%s/del" % case
    skopeo_copy("oci:%s:1" % rig["delete_image"], "docker://%s/%s:1" % (registry.host, repository))
    keep = build_image(str(rig["work"] / ("keep-" + case)), ref="keep", layer_sizes=(1024,), seed=zlib.crc32(case.encode()) % 1000 + 800)
    skopeo_copy("oci:%s:keep" % keep["layout"], "docker://%s/%s:keep" % (registry.host, repository))
    run = run_module("image_delete", dict(common, image="docker://localhost:%s/%s:1" % (rig["port"], repository), validate_certs=False))
    state = tag_state(registry, repository, "1")
    if not run.failed:
        assert state is None, "delete reported success but the tag is still there"
    else:
        assert state in (None, rig["single"]["manifest_digest"])
    assert tag_state(registry, repository, "keep") == keep["manifest_digest"], "delete removed a tag it was not asked to"
    return run


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_operation_survives_or_fails_cleanly_under_fault(rig, kind, op):
    proxy = rig["proxy"]
    proxy.clear()
    target, settings = SCHEDULE[kind]
    method, path = _targets(rig, op)[target]
    settings = dict(settings)
    nth = settings.pop("nth", (1,))
    fault = proxy.add(kind, method, path, nth, **settings)
    case = "%s-%s" % (op.replace("_", "-"), kind.replace("_", "-"))
    try:
        run = _run(op, rig, case)
    finally:
        proxy.wait_restarts()
        assert rig["registry"].running
    assert fault.fired, "the %s fault never struck %s %s during %s" % (kind, method, path, op)
    outcome = MATRIX[(kind, op)] = assert_clean(run, rig)
    if outcome == "clean failure" and kind == "corrupt_body":
        # Named as the source's bad blob, before its bytes went on: not the destination registry's verdict.
        msg = run.result["msg"]
        assert "digest mismatch" in msg and "DIGEST_INVALID" not in msg and "refused the upload" not in msg, msg
    if kind not in MAY_FAIL:
        # Each of these is transient and within two retries: giving up would be the skopeo #1343 bug.
        assert outcome == "survived", "%s gave up under %s: %s" % (op, kind, run.result.get("msg"))


# --- resumes and ambiguous writes --------------------------------------------------------------


def test_blob_get_cut_mid_body_resumes_with_range_from_the_last_byte(rig):
    proxy = rig["proxy"]
    proxy.clear()
    layer, size = rig["single"]["layer_digests"][0], rig["single"]["layer_sizes"][0]
    cut = 100_000
    proxy.add("reset_mid_body", "GET", "/blobs/" + layer, after_bytes=cut)
    layout = rig["work"] / "resume-layout"
    run = run_module("image_copy", {"src": "docker://%s/src/single:1" % proxy.host, "dest": "oci:%s:1" % layout, "src_validate_certs": False, "retries": 1})
    assert not run.failed, run.output
    fetches = proxy.exchanges("GET", "/blobs/" + layer)
    assert [(e.range, e.body_bytes) for e in fetches] == [(None, cut), ("bytes=%d-" % cut, size - cut)]
    assert digest_of(inspect_raw("oci:%s:1" % layout)) == rig["single"]["manifest_digest"]


def test_upload_reset_mid_body_starts_a_fresh_upload(rig):
    proxy = rig["proxy"]
    proxy.clear()
    proxy.add("reset_mid_upload", "PUT", r"/blobs/uploads/", after_bytes=64 * 1024)
    dest = "docker://localhost:%s/resume/upload:1" % rig["port"]
    run = run_module("image_copy", {"src": "oci:%s:1" % rig["single"]["layout"], "dest": dest, "dest_validate_certs": False, "retries": 1})
    assert not run.failed, run.output
    assert tag_state(rig["registry"], "resume/upload", "1") == rig["single"]["manifest_digest"]
    puts = proxy.exchanges("PUT", r"/blobs/uploads/")
    assert puts[0].fault == "reset_mid_upload" and len(puts) == 4  # three blobs, the cut one twice
    assert len(proxy.exchanges("POST", r"/blobs/uploads/")) == 4  # a new upload session, not a replay into the dead one


def test_manifest_put_whose_answer_is_lost_is_rechecked_not_resent(rig):
    proxy = rig["proxy"]
    proxy.clear()
    proxy.add("reset_after_forward", "PUT", r"/manifests/1$")
    dest = "docker://localhost:%s/resume/manifest:1" % rig["port"]
    run = run_module("image_copy", {"src": "oci:%s:1" % rig["single"]["layout"], "dest": dest, "dest_validate_certs": False, "retries": 2})
    assert not run.failed, run.output
    assert run.result["digest"] == rig["single"]["manifest_digest"]
    assert len(proxy.exchanges("PUT", r"/manifests/")) == 1
    methods = [e.method for e in proxy.exchanges(path=r"/manifests/1$")]
    assert methods[-2:] == ["PUT", "HEAD"]  # the tag was looked at, and it already had the digest


def test_manifest_delete_whose_answer_is_lost_counts_as_deleted(rig):
    proxy, registry = rig["proxy"], rig["registry"]
    skopeo_copy("oci:%s:1" % rig["single"]["layout"], "docker://%s/resume/delete:1" % registry.host)
    proxy.clear()
    proxy.add("reset_after_forward", "DELETE", r"/manifests/")
    run = run_module("image_delete", {"image": "docker://localhost:%s/resume/delete:1" % rig["port"], "validate_certs": False, "retries": 2})
    assert not run.failed, run.output
    assert run.changed and [d["tag"] for d in run.result["deleted"]] == ["1"], run.result
    assert len(proxy.exchanges("DELETE")) == 1
    assert tag_state(registry, "resume/delete", "1") is None
