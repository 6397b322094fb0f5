"""The documentation users read: rendered plugin docs that match the plugins, a README that links every guide."""

from __future__ import annotations

import filecmp
import glob
import os
import re
import subprocess

import pytest
from ansible_run import REPO

# The first run creates the tools venv (antsibull-docs, ansible-lint), which takes about a minute.
pytestmark = pytest.mark.timeout(600)

RENDERED = os.path.join(REPO, "docs", "modules")
RENDER = os.path.join(REPO, "tests", "setup", "render_docs.sh")


def _render(dest: str) -> None:
    proc = subprocess.run([RENDER, dest], capture_output=True, text=True, timeout=540, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, "rendering the docs failed:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-3000:])


def _plugin_pages() -> set[str]:
    pages = {os.path.basename(p)[:-3] + "_module.rst" for p in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))}
    pages |= {os.path.basename(p)[:-3] + "_lookup.rst" for p in glob.glob(os.path.join(REPO, "plugins", "lookup", "*.py"))}
    pages |= {
        os.path.basename(os.path.dirname(os.path.dirname(p))) + "_role.rst" for p in glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml"))
    }
    return {page for page in pages if not page.startswith("_")}


def test_rendered_docs_match_the_plugins(tmp_path):
    fresh = str(tmp_path / "modules")
    _render(fresh)
    committed = sorted(os.listdir(RENDERED)) if os.path.isdir(RENDERED) else []
    assert sorted(os.listdir(fresh)) == committed, "docs/modules/ has other files than a fresh rendering: run `make docs` and commit docs/modules/"
    stale = [name for name in committed if not filecmp.cmp(os.path.join(fresh, name), os.path.join(RENDERED, name), shallow=False)]
    assert not stale, "docs/modules/ is stale for %s: run `make docs` and commit docs/modules/" % ", ".join(stale)


def test_rendered_docs_have_a_page_per_plugin_and_role():
    pages = set(os.listdir(RENDERED))
    missing = _plugin_pages() - pages
    assert not missing, "no rendered page for %s" % ", ".join(sorted(missing))
    assert "index.rst" in pages
    # antsibull-docs writes an error page instead of failing when a plugin's documentation does not parse.
    for page in sorted(pages):
        with open(os.path.join(RENDERED, page)) as f:
            text = f.read()
        assert "did not return correct DOCUMENTATION" not in text, page


def _readme_links() -> set[str]:
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    return {target.split("#")[0].rstrip("/") for target in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in target}


def test_readme_links_every_guide_and_the_module_docs():
    links = _readme_links()
    guides = {os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md"))}
    missing = guides - links
    assert not missing, "README.md does not link %s" % ", ".join(sorted(missing))
    assert "docs/modules" in links or "docs/modules/index.rst" in links


def test_readme_links_lead_to_files_that_exist():
    broken = sorted(link for link in _readme_links() if not os.path.exists(os.path.join(REPO, link)))
    assert not broken, "README.md links to missing files: %s" % ", ".join(broken)


@pytest.mark.parametrize("example, page", [("first-playbook.yml", "getting-started.md"), ("mirror-with-role.yml", "mirroring.md")])
def test_guide_shows_the_linted_and_tested_example_playbook(example, page):
    with open(os.path.join(REPO, "docs", "examples", example)) as f:
        # The guide shows the playbook without its two header lines (document start and comment).
        text = f.read().split("\n", 2)[2]
    with open(os.path.join(REPO, "docs", page)) as f:
        guide = f.read()
    assert "```yaml\n" + text + "```" in guide, "docs/%s and docs/examples/%s differ" % (page, example)
