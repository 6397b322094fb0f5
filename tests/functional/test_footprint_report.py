"""footprint_report: the registry's footprint as a page, rendered by a real browser (Debian's headless Chromium)."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser

import pytest
from ansible_run import REPO, run_module
from browser import dump_dom, screenshot
from many_repositories import fill_sharing_repositories

pytestmark = pytest.mark.timeout(300)

SCREENSHOT = os.path.join(REPO, "tests", "output", "footprint-report.png")


class _Rows(HTMLParser):
    """The text of each row of the table with ``id``, in document order."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id = table_id
        self.inside = False
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.inside = dict(attrs).get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif tag in ("td", "th") and self._cell is not None and self.inside:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_rows(dom: str, table_id: str) -> list[list[str]]:
    parser = _Rows(table_id)
    parser.feed(dom)
    return parser.rows


@pytest.fixture
def measured(fresh_registry, tmp_path):
    registry = fresh_registry()
    images = fill_sharing_repositories(registry.host, str(tmp_path / "layout"))
    run = run_module("image_info", dict(catalog=registry.host, footprint=True, registry_storage=registry.data_dir, validate_certs=False))
    assert not run.failed, run.output
    return registry, images, run.result["footprint"]


def report(footprint: dict, dest: str, check: bool = False, diff: bool = False, **extra):
    return run_module("footprint_report", dict(footprint=footprint, dest=dest, **extra), check=check, diff=diff)


def test_report_is_written_once_and_its_summary_is_the_text_of_the_page(measured, tmp_path):
    registry, _images, footprint = measured
    dest = str(tmp_path / "registry.html")
    planned = report(footprint, dest, check=True)
    assert not planned.failed, planned.output
    assert planned.changed and not os.path.exists(dest)

    written = report(footprint, dest, diff=True, mode="0640")
    assert not written.failed, written.output
    assert written.changed and oct(os.stat(dest).st_mode & 0o777) == "0o640"
    assert "+<!DOCTYPE html>" in written.stdout  # the diff Ansible prints
    summary = written.result["summary"]
    assert summary[0].startswith("Registry %s: 4 repositories, 8 tags" % registry.host)
    assert summary[1].startswith("Untagged manifests: 1, holding ")
    assert [line.split()[0] for line in summary[3:7]] == ["gc/app", "gc/dup", "gc/base", "gc/tool"]  # largest first
    assert summary[7] == "Most shared blobs:"

    again = report(footprint, dest)
    assert not again.failed and not again.changed, again.output
    with open(dest) as handle:
        page = handle.read()
    # Self-contained: nothing to fetch, from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page) and "@import" not in page and "url(" not in page

    wrong = report({"total_bytes": 1, "tags": {}}, str(tmp_path / "other.html"))
    assert wrong.failed and "catalog and footprint" in wrong.result["msg"]


def test_browser_renders_the_report_sorts_its_tables_and_takes_a_screenshot(measured, tmp_path, capsys):
    images, footprint = measured[1:]
    dest = str(tmp_path / "registry.html")
    assert not report(footprint, dest, title="Storage of the test registry").failed
    url = "file://" + dest

    dom = dump_dom(url)
    assert "<title>Storage of the test registry</title>" in dom
    repositories = table_rows(dom, "repositories")
    assert repositories[0][:6] == ["Repository", "Tags", "Manifests", "Size", "Shared", "Freed if deleted"]
    assert [row[0] for row in repositories[1:]] == ["gc/app", "gc/dup", "gc/base", "gc/tool"]  # as written: largest first
    app = footprint["repositories"]["gc/app"]
    assert repositories[1][1:3] == [str(app["tags"]), str(app["manifests"])]
    blobs = table_rows(dom, "blobs")
    base_layer = images["base"]["layer_digests"][0]
    assert blobs[1][0] == base_layer[:19] and blobs[1][3] == "3" and blobs[1][5] == "gc/app, gc/base, gc/dup"
    assert 'aria-label="gc/app: ' in dom and 'class="freed"' in dom and 'class="shared"' in dom

    # The script ran in the browser: the address asks for the repositories by name, smallest name first.
    by_name = table_rows(dump_dom(url + "#sort=repositories.name.asc"), "repositories")
    assert [row[0] for row in by_name[1:]] == ["gc/app", "gc/base", "gc/dup", "gc/tool"]
    by_freed = table_rows(dump_dom(url + "#sort=repositories.freed.asc"), "repositories")
    freed = [int(footprint["repositories"][row[0]]["freed_bytes"]) for row in by_freed[1:]]
    assert freed == sorted(freed) and [row[0] for row in by_freed[1:]] != [row[0] for row in repositories[1:]]

    width, height = screenshot(url, SCREENSHOT)
    assert (width, height) == (1280, 900) and os.path.getsize(SCREENSHOT) > 10000
    with capsys.disabled():  # shown in every run, not only with -s
        print("\nscreenshot of the report: %s" % SCREENSHOT)
