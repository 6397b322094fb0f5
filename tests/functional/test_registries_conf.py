"""registries.conf as podman and skopeo read it: remapping, mirrors tried in order, blocked, insecure, short names.

Two real registries: an origin and a mirror that lacks some images and holds a stale one under a tag
the origin has too (so a digest tells which of them served a read). Each case writes a real
registries.conf; skopeo (and podman, for short names) read the same file through
``--registries-conf`` and ``CONTAINERS_REGISTRIES_CONF`` and are the oracle for which image a name resolves to. Both
registries speak plain HTTP, so the file's ``insecure = true`` is what lets anyone reach them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest
from ansible_run import run_module
from images import build_image
from registries import start_registry
from skopeo import SKOPEO
from skopeo import copy as skopeo_copy

pytestmark = pytest.mark.timeout(300)

LOGICAL = "example.invalid"  # a name that resolves nowhere: only registries.conf can send reads somewhere


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    work = tmp_path_factory.mktemp("registries-conf")
    origin = start_registry(str(work / "origin"), "plain")
    mirror = start_registry(str(work / "mirror"), "plain")
    # podman's run root must be a short path (its limit is 50 characters).
    podman_store = tempfile.mkdtemp(prefix="oip-", dir="/tmp")
    try:
        images = {name: build_image(str(work / name), ref="x", layer_sizes=(2048,), seed=seed) for name, seed in (("v1", 811), ("v2", 812), ("stale", 813))}
        for name, dest in (
            ("v1", "docker://%s/lib/app:1" % origin.host),
            ("v2", "docker://%s/lib/app:2" % origin.host),
            ("v2", "docker://%s/library/hubtest:1" % origin.host),
            ("stale", "docker://%s/mirror/lib/app:1" % mirror.host),  # the mirror's app:1 is not the origin's
        ):
            skopeo_copy("oci:%s:x" % images[name]["layout"], dest)
        yield {
            "work": work,
            "origin": origin,
            "mirror": mirror,
            "digest": {name: image["manifest_digest"] for name, image in images.items()},
            "podman": podman_store,
        }
    finally:
        shutil.rmtree(podman_store, ignore_errors=True)
        origin.stop()
        mirror.stop()


def write_conf(two, name: str, text: str) -> str:
    path = str(two["work"] / (name + ".conf"))
    text = text.replace("ORIGIN", two["origin"].host).replace("MIRROR", two["mirror"].host).replace("LOGICAL", LOGICAL)
    with open(path, "w") as f:
        f.write(text)
    return path


def skopeo_digest(conf: str, ref: str) -> str | None:
    """The digest of the manifest skopeo reads for ``ref`` with ``conf`` as its registries.conf; None when it cannot read it.

    ``inspect --raw``: skopeo 1.9's plain inspect asks the name as written for its digest and tags, mirrors aside.
    skopeo 1.9 takes the file with ``--registries-conf`` (it does not read CONTAINERS_REGISTRIES_CONF; podman does).
    """
    cmd = [SKOPEO, "--insecure-policy", "--registries-conf", conf, "inspect", "--raw", ref]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest() if proc.returncode == 0 else None


def info(conf, image: str, **extra):
    args = {"image": image, "registries_conf": conf}
    args.update(extra)
    return run_module("image_info", args)


REMAP_AND_MIRROR = """
[[registry]]
prefix = "LOGICAL"
location = "ORIGIN"
insecure = true

[[registry.mirror]]
location = "MIRROR/mirror"
insecure = true
"""


def test_reads_try_the_mirror_first_then_the_location_as_skopeo_does(two):
    conf = write_conf(two, "mirror", REMAP_AND_MIRROR)
    # app:1 is on the mirror (a stale image): the mirror serves it. app:2 is not: the origin does.
    for tag, served_by, digest in (
        ("1", "%s/mirror/lib/app:1" % two["mirror"].host, two["digest"]["stale"]),
        ("2", "%s/lib/app:2" % two["origin"].host, two["digest"]["v2"]),
    ):
        run = info(conf, "docker://%s/lib/app:%s" % (LOGICAL, tag))
        assert not run.failed, run.output[-2000:]
        assert run.result["image"]["digest"] == digest
        assert run.result["image"]["location"] == served_by
        assert run.result["image"]["name"] == "%s/lib/app" % LOGICAL  # the logical name stays the image's name
        assert skopeo_digest(conf, "docker://%s/lib/app:%s" % (LOGICAL, tag)) == digest


def test_image_copy_reports_the_location_that_served_each_image(two):
    conf = write_conf(two, "mirror-copy", REMAP_AND_MIRROR)
    dest = two["origin"].host
    run = run_module(
        "image_copy",
        {
            "images": [
                {"src": "docker://%s/lib/app:1" % LOGICAL, "dest": "docker://%s/copied/app:1" % dest},
                {"src": "docker://%s/lib/app:2" % LOGICAL, "dest": "docker://%s/copied/app:2" % dest},
            ],
            "registries_conf": conf,
            "dest_validate_certs": False,
        },
    )
    assert not run.failed, run.output[-3000:]
    locations = {r["src"]: r["src_location"] for r in run.result["results"]}
    assert locations == {
        "docker://%s/lib/app:1" % LOGICAL: "%s/mirror/lib/app:1" % two["mirror"].host,
        "docker://%s/lib/app:2" % LOGICAL: "%s/lib/app:2" % two["origin"].host,
    }
    assert [r["dest_digest_after"] for r in run.result["results"]] == [two["digest"]["stale"], two["digest"]["v2"]]


@pytest.mark.parametrize(
    "setting,by_tag,by_digest",
    [
        # (mirror settings, who serves app:1 by tag, who serves the stale image by digest)
        ('pull-from-mirror = "digest-only"', "v1", "stale"),
        ('pull-from-mirror = "tag-only"', "stale", None),
        ('pull-from-mirror = "all"', "stale", "stale"),
    ],
)
def test_pull_from_mirror_decides_which_reads_a_mirror_serves(two, setting, by_tag, by_digest):
    conf = write_conf(two, "pull-from", REMAP_AND_MIRROR.replace('location = "MIRROR/mirror"', 'location = "MIRROR/mirror"\n' + setting))
    by_tag_ref = "docker://%s/lib/app:1" % LOGICAL
    by_digest_ref = "docker://%s/lib/app@%s" % (LOGICAL, two["digest"]["stale"])
    run = info(conf, by_tag_ref)
    assert run.result["image"]["digest"] == two["digest"][by_tag]
    assert skopeo_digest(conf, by_tag_ref) == two["digest"][by_tag]
    run = info(conf, by_digest_ref)
    expected = two["digest"][by_digest] if by_digest else None
    assert (run.result["image"].get("digest") if run.result.get("exists") else None) == expected, run.output[-2000:]
    assert skopeo_digest(conf, by_digest_ref) == expected


def test_mirror_by_digest_only_keeps_tag_reads_at_the_location(two):
    conf = write_conf(
        two,
        "by-digest",
        REMAP_AND_MIRROR.replace("insecure = true\n\n[[registry.mirror]]", "insecure = true\nmirror-by-digest-only = true\n\n[[registry.mirror]]"),
    )
    run = info(conf, "docker://%s/lib/app:1" % LOGICAL)
    assert run.result["image"]["digest"] == two["digest"]["v1"]
    assert skopeo_digest(conf, "docker://%s/lib/app:1" % LOGICAL) == two["digest"]["v1"]


def test_a_blocked_registry_is_refused_with_a_clear_message_and_its_mirrors_still_serve(two):
    conf = write_conf(
        two,
        "blocked",
        '[[registry]]\nlocation = "ORIGIN"\ninsecure = true\nblocked = true\n\n[[registry.mirror]]\nlocation = "MIRROR/mirror"\ninsecure = true\n',
    )
    origin = two["origin"].host
    served = info(conf, "docker://%s/lib/app:1" % origin)  # the mirror has it: containers/image reads it there
    assert served.result["image"]["digest"] == two["digest"]["stale"]
    assert served.result["image"]["location"] == "%s/mirror/lib/app:1" % two["mirror"].host
    assert skopeo_digest(conf, "docker://%s/lib/app:1" % origin) == two["digest"]["stale"]
    refused = info(conf, "docker://%s/lib/app:2" % origin)  # only the blocked registry would have it
    assert refused.failed
    assert "registry %s is blocked in %s" % (origin, conf) in refused.result["msg"]
    assert "(mirror): not found" in refused.result["msg"]  # what the mirror said is there too
    assert skopeo_digest(conf, "docker://%s/lib/app:2" % origin) is None


def test_writing_to_a_blocked_registry_is_refused_before_anything_is_sent(two):
    conf = write_conf(two, "blocked-dest", '[[registry]]\nlocation = "ORIGIN"\ninsecure = true\nblocked = true\n')
    run = run_module(
        "image_copy",
        {"src": "docker://%s/lib/app:2" % two["mirror"].host, "dest": "docker://%s/never/app:1" % two["origin"].host, "registries_conf": conf},
    )
    assert run.failed
    assert "writing is refused: registry %s is blocked in %s" % (two["origin"].host, conf) in run.result["msg"]


def test_insecure_in_registries_conf_reaches_a_plain_http_registry_without_validate_certs(two):
    conf = write_conf(two, "insecure", '[[registry]]\nlocation = "ORIGIN"\ninsecure = true\n')
    run = info(conf, "docker://%s/lib/app:2" % two["origin"].host)
    assert not run.failed, run.output[-2000:]
    strict = info(write_conf(two, "secure", '[[registry]]\nlocation = "ORIGIN"\n'), "docker://%s/lib/app:2" % two["origin"].host)
    assert strict.failed  # without insecure (and with validate_certs left on) plain HTTP is not used


def test_registries_conf_false_ignores_it_and_the_environment_variable_finds_it(two):
    conf = write_conf(two, "env", REMAP_AND_MIRROR)
    ignored = run_module("image_info", {"image": "docker://%s/lib/app:2" % LOGICAL, "registries_conf": False, "retries": 0, "timeout": 5})
    assert ignored.failed  # example.invalid itself is asked, and does not exist
    found = run_module("image_info", {"image": "docker://%s/lib/app:2" % LOGICAL}, env={"CONTAINERS_REGISTRIES_CONF": conf})
    assert not found.failed and found.result["image"]["digest"] == two["digest"]["v2"]


DOCKER_HUB_FORMS = [
    "docker://hubtest:1",
    "docker://docker.io/hubtest:1",
    "docker://index.docker.io/library/hubtest:1",
    "docker.io/library/hubtest:1",
    "hubtest:1",
]


def test_docker_hub_names_all_read_the_same_repository_as_skopeo(two):
    # Docker Hub remapped to the origin: every spelling must land on ORIGIN/library/hubtest, as skopeo's do.
    conf = write_conf(two, "hub", '[[registry]]\nprefix = "docker.io"\nlocation = "ORIGIN"\ninsecure = true\n')
    for form in DOCKER_HUB_FORMS:
        run = info(conf, form)
        assert not run.failed, (form, run.output[-2000:])
        assert run.result["image"]["digest"] == two["digest"]["v2"], form
        assert run.result["image"]["location"] == "%s/library/hubtest:1" % two["origin"].host, form
        skopeo_form = form if form.startswith("docker://") else "docker://" + form
        assert skopeo_digest(conf, skopeo_form) == two["digest"]["v2"], form


# --- short names (podman is the oracle: skopeo's docker:// never takes short names) ---------------


def podman_pull(two, conf: str, name: str) -> subprocess.CompletedProcess:
    return _podman(two, conf, "pull", "--quiet", name)


def _podman(two, conf: str, *args: str) -> subprocess.CompletedProcess:
    store = two["podman"]
    cmd = ["podman", "--root", store + "/root", "--runroot", store + "/run", "--storage-driver", "vfs", *args]
    env = dict(os.environ, CONTAINERS_REGISTRIES_CONF=conf)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL, check=False)


SEARCH = """
unqualified-search-registries = ["MIRROR", "ORIGIN"]
short-name-mode = "MODE"

[[registry]]
location = "MIRROR"
insecure = true

[[registry]]
location = "ORIGIN"
insecure = true
"""


def test_an_ambiguous_short_name_in_enforcing_mode_is_an_error_listing_the_candidates(two):
    conf = write_conf(two, "enforcing", SEARCH.replace("MODE", "enforcing"))
    run = info(conf, "lib/app:2")
    assert run.failed
    for host in (two["mirror"].host, two["origin"].host):
        assert "docker://%s/lib/app:2" % host in run.result["msg"]
    assert "enforcing" in run.result["msg"]
    pulled = podman_pull(two, conf, "lib/app:2")
    assert pulled.returncode != 0 and "short-name resolution enforced but cannot prompt without a TTY" in pulled.stderr


def test_a_short_name_in_permissive_mode_is_read_from_the_first_search_registry_that_has_it(two):
    conf = write_conf(two, "permissive", SEARCH.replace("MODE", "permissive"))
    run = info(conf, "lib/app:2")  # the mirror registry has no lib/app: the origin serves
    assert not run.failed, run.output[-2000:]
    assert run.result["image"]["digest"] == two["digest"]["v2"]
    assert run.result["image"]["name"] == "%s/lib/app" % two["origin"].host
    pulled = podman_pull(two, conf, "lib/app:2")
    assert pulled.returncode == 0, pulled.stderr
    names = _podman(two, conf, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}").stdout
    assert "%s/lib/app:2 %s" % (two["origin"].host, two["digest"]["v2"]) in names


def test_a_short_name_alias_names_the_image_and_registries_conf_then_places_it(two):
    conf = write_conf(two, "alias", REMAP_AND_MIRROR + '\n[aliases]\n"myapp" = "LOGICAL/lib/app"\n')
    run = info(conf, "myapp:2")
    assert not run.failed, run.output[-2000:]
    assert run.result["image"]["name"] == "%s/lib/app" % LOGICAL
    assert run.result["image"]["location"] == "%s/lib/app:2" % two["origin"].host
    assert run.result["image"]["digest"] == two["digest"]["v2"]
    pulled = podman_pull(two, conf, "myapp:2")
    assert pulled.returncode == 0, pulled.stderr


def test_a_short_name_registries_conf_resolves_is_refused_as_a_destination(two):
    conf = write_conf(two, "alias-dest", REMAP_AND_MIRROR + '\n[aliases]\n"myapp" = "LOGICAL/lib/app"\n')
    run = run_module("image_copy", {"src": "docker://%s/lib/app:2" % LOGICAL, "dest": "myapp:copy", "registries_conf": conf})
    assert run.failed
    assert "give the full name" in run.result["msg"] and "docker://%s/lib/app" % LOGICAL in run.result["msg"]
